package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/handlers"
	"payfuse/models"
	"payfuse/web"
)

// apiWorld is the reports world (SHOP_SH and SHOP_BJ, each with a WeChat
// account and payments on 2026-03-05) with a full token for SHOP_SH.
type apiWorld struct {
	*ledgerWorld
	token  string // every permission, SHOP_SH, made by the system
	tok    *models.APIToken
	shTxn  uint64 // WX1, a SHOP_SH payment
	bjTxn  uint64 // BJ1, a SHOP_BJ payment
	ledger func(status int, method, path string, body any, hdr ...string) apiResp
}

func newAPIWorld(t *testing.T) *apiWorld {
	t.Helper()
	w := &apiWorld{ledgerWorld: reportsWorld(t)}
	w.tok, w.token = mustToken(t, w.store, nil, "order-system", []string{"SHOP_SH"}, models.APIPermissions...)
	w.shTxn = w.txnID(t, "payment", "WX1")
	w.bjTxn = w.txnID(t, "payment", "BJ1")
	return w
}

func (w *apiWorld) call(t *testing.T, method, path string, body any, hdr ...string) apiResp {
	t.Helper()
	return apiCall(t, w.srv, w.token, method, path, body, hdr...)
}

// apiEndpoint is one operation with a request in the token's scope and one
// naming another merchant's object.
type apiEndpoint struct {
	name         string
	perm         string
	own, foreign func(t *testing.T, w *apiWorld, token string) apiResp
}

func apiEndpoints(t *testing.T, w *apiWorld) []apiEndpoint {
	bill := readTestBill(t, "all.csv")
	n := 0
	record := func(account uint64) map[string]any {
		n++
		return map[string]any{"account_id": account, "kind": "payment", "channel_ref": fmt.Sprintf("MX%04d", n), "status": "succeeded",
			"amount": 500, "paid_at": "2026-03-05T12:00:00+08:00"}
	}
	get := func(path string) func(t *testing.T, w *apiWorld, token string) apiResp {
		return func(t *testing.T, w *apiWorld, token string) apiResp {
			return apiCall(t, w.srv, token, "GET", path, nil)
		}
	}
	return []apiEndpoint{
		{"list", models.PermLedgerRead, get("/api/v1/transactions?merchant=SHOP_SH"), get("/api/v1/transactions?merchant=SHOP_BJ")},
		{"show", models.PermLedgerRead, get("/api/v1/transactions/" + id(w.shTxn)), get("/api/v1/transactions/" + id(w.bjTxn))},
		{"record", models.PermLedgerWrite,
			func(t *testing.T, w *apiWorld, token string) apiResp {
				return apiCall(t, w.srv, token, "POST", "/api/v1/transactions", record(w.acctSH.ID))
			},
			func(t *testing.T, w *apiWorld, token string) apiResp {
				return apiCall(t, w.srv, token, "POST", "/api/v1/transactions", record(w.acctBJ.ID))
			}},
		{"record by merchant", models.PermLedgerWrite,
			func(t *testing.T, w *apiWorld, token string) apiResp {
				r := record(0)
				delete(r, "account_id")
				r["merchant"], r["channel"] = "SHOP_SH", "wechat"
				return apiCall(t, w.srv, token, "POST", "/api/v1/transactions", r)
			},
			func(t *testing.T, w *apiWorld, token string) apiResp {
				r := record(0)
				delete(r, "account_id")
				r["merchant"], r["channel"] = "SHOP_BJ", "wechat"
				return apiCall(t, w.srv, token, "POST", "/api/v1/transactions", r)
			}},
		{"annotate", models.PermLedgerWrite,
			func(t *testing.T, w *apiWorld, token string) apiResp {
				return apiCall(t, w.srv, token, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"annotation": "order 1 shipped"})
			},
			func(t *testing.T, w *apiWorld, token string) apiResp {
				return apiCall(t, w.srv, token, "PATCH", "/api/v1/transactions/"+id(w.bjTxn), map[string]any{"annotation": "order 1 shipped"})
			}},
		{"correct", models.PermLedgerWrite,
			func(t *testing.T, w *apiWorld, token string) apiResp {
				n++
				return apiCall(t, w.srv, token, "PATCH", "/api/v1/transactions/"+id(w.shTxn),
					map[string]any{"correction": map[string]any{"field": "fee", "value": 70 + n, "reason": "fee per contract"}})
			},
			func(t *testing.T, w *apiWorld, token string) apiResp {
				return apiCall(t, w.srv, token, "PATCH", "/api/v1/transactions/"+id(w.bjTxn),
					map[string]any{"correction": map[string]any{"field": "fee", "value": 1, "reason": "fee per contract"}})
			}},
		{"import", models.PermImportsWrite,
			func(t *testing.T, w *apiWorld, token string) apiResp {
				return apiUpload(t, w.srv, token, map[string]string{"account_id": id(w.acctSH.ID)}, "all.csv", bill)
			},
			func(t *testing.T, w *apiWorld, token string) apiResp {
				return apiUpload(t, w.srv, token, map[string]string{"account_id": id(w.acctBJ.ID)}, "all.csv", bill)
			}},
		{"daily report", models.PermReportsRead, get("/api/v1/reports/daily?date=2026-03-05&merchant=SHOP_SH"), get("/api/v1/reports/daily?date=2026-03-05&merchant=SHOP_BJ")},
		{"monthly report", models.PermReportsRead, get("/api/v1/reports/monthly?month=2026-03&merchant=SHOP_SH"), get("/api/v1/reports/monthly?month=2026-03&merchant=SHOP_BJ")},
		{"kpis", models.PermReportsRead, get("/api/v1/kpis?merchant=SHOP_SH&from=2026-03-01&to=2026-03-31"), get("/api/v1/kpis?merchant=SHOP_BJ&from=2026-03-01&to=2026-03-31")},
	}
}

// foreignMarks are strings only SHOP_BJ's data holds.
var foreignMarks = []string{"SHOP_BJ", "BJ1", "BJ WeChat", "77700"}

// TestAPIEveryEndpointByPermissionAndScope calls every endpoint with a token
// of each single permission, for an object of the token's merchant and one
// of another merchant: the permission it needs lets it through (2xx in scope,
// 404 outside, never the other merchant's data); any other permission is 403.
func TestAPIEveryEndpointByPermissionAndScope(t *testing.T) {
	w := newAPIWorld(t)
	finance := models.MustCreateUser(t, w.store, "finapi", "finance api pass", models.RoleFinance, "SHOP_SH")
	tokens := map[string]string{}
	for _, p := range models.APIPermissions {
		_, tokens[p] = mustToken(t, w.store, finance, "only-"+p, []string{"SHOP_SH"}, p)
	}
	endpoints := apiEndpoints(t, w)
	seen := map[string]bool{}
	for _, ep := range endpoints {
		seen[ep.perm] = true
		for _, p := range models.APIPermissions {
			own, foreign := ep.own(t, w, tokens[p]), ep.foreign(t, w, tokens[p])
			name := ep.name + " with " + p
			for _, r := range []apiResp{own, foreign} {
				for _, mark := range foreignMarks {
					if strings.Contains(r.Raw, mark) {
						t.Errorf("%s: the answer shows another merchant's %q: %s", name, mark, clip(r.Raw))
					}
				}
			}
			if p != ep.perm {
				for _, r := range []apiResp{own, foreign} {
					if r.Status != http.StatusForbidden || r.errCode() != "insufficient_permission" {
						t.Errorf("%s: %d %s, want 403 insufficient_permission", name, r.Status, clip(r.Raw))
					}
					checkErrorShape(t, name, r)
				}
				continue
			}
			if own.Status/100 != 2 {
				t.Errorf("%s in scope: %d %s", name, own.Status, clip(own.Raw))
			}
			if foreign.Status != http.StatusNotFound || foreign.errCode() != "not_found" {
				t.Errorf("%s outside scope: %d %s, want 404", name, foreign.Status, clip(foreign.Raw))
			}
			checkErrorShape(t, name+" outside scope", foreign)
		}
	}
	for _, p := range models.APIPermissions {
		if !seen[p] {
			t.Errorf("no endpoint needs %s", p)
		}
	}
	// Without a merchant filter, lists and reports hold only the token's merchants.
	for _, path := range []string{"/api/v1/transactions?limit=200", "/api/v1/reports/daily?date=2026-03-05", "/api/v1/reports/monthly?month=2026-03"} {
		r := w.call(t, "GET", path, nil)
		if r.Status != http.StatusOK || !strings.Contains(r.Raw, "SHOP_SH") {
			t.Fatalf("%s: %d %s", path, r.Status, clip(r.Raw))
		}
		for _, mark := range foreignMarks {
			if strings.Contains(r.Raw, mark) {
				t.Errorf("%s shows %q", path, mark)
			}
		}
	}
	// Nothing of SHOP_BJ changed.
	bj := w.txn(t, w.bjTxn)
	if bj.Fee != 0 || strings.Contains(bj.Sources, "manual") {
		t.Errorf("a foreign record changed: %+v", bj)
	}
	var notes int64
	w.store.DB.Model(&models.TransactionAnnotation{}).Where("transaction_id = ?", w.bjTxn).Count(&notes)
	if notes != 0 {
		t.Error("a foreign record was annotated")
	}
}

// TestAPIAuthentication: no token, a wrong one, a console session, an
// expired, revoked or orphaned token are 401; a token from a place it may not
// be used is 403; revocation takes effect on the very next request.
func TestAPIAuthentication(t *testing.T) {
	w := newAPIWorld(t)
	clk := withClock(w.store)
	const path = "/api/v1/transactions?limit=1"
	for _, tc := range []struct {
		name, token, code string
	}{
		{"no token", "", "unauthorized"},
		{"wrong token", "pf_" + strings.Repeat("A", 43), "invalid_token"},
		{"not a token", "hello", "invalid_token"},
	} {
		r := apiCall(t, w.srv, tc.token, "GET", path, nil)
		if r.Status != http.StatusUnauthorized || r.errCode() != tc.code || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %s %q", tc.name, r.Status, r.Raw, r.Header.Get("WWW-Authenticate"))
		}
		checkErrorShape(t, tc.name, r)
	}
	// A signed-in console session is not an API credential, and the API sets no cookies.
	boss := w.english(t, "boss", "admin password 1")
	if r := boss.get(path); r.StatusCode != http.StatusUnauthorized || len(r.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("session on the API: %d, cookies %v", r.StatusCode, r.Header.Values("Set-Cookie"))
	}
	if r := boss.do("POST", "/api/v1/transactions", url.Values{"_csrf": {boss.csrf()}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("session post on the API: %d", r.StatusCode)
	}
	if r := w.call(t, "GET", path, nil); r.Status != http.StatusOK {
		t.Fatalf("good token: %d %s", r.Status, r.Raw)
	}

	// Expiry.
	exp := clk.Now().Add(time.Hour)
	_, short, err := w.store.CreateAPIToken(models.SystemActor, nil, models.APITokenInput{Name: "short", Merchants: []string{"SHOP_SH"}, Permissions: []string{models.PermLedgerRead}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if r := apiCall(t, w.srv, short, "GET", path, nil); r.Status != http.StatusOK {
		t.Fatalf("before expiry: %d", r.Status)
	}
	clk.Add(time.Hour)
	if r := apiCall(t, w.srv, short, "GET", path, nil); r.Status != http.StatusUnauthorized || r.errCode() != "token_expired" {
		t.Errorf("after expiry: %d %s", r.Status, r.Raw)
	}

	// Revocation, in the console, is at once.
	models.MustCreateUser(t, w.store, "opapi", "operator api pass", models.RoleOperator, "SHOP_SH")
	opUser, _ := w.store.GetUserByUsername("opapi")
	opTok, opSecret := mustToken(t, w.store, opUser, "op-token", []string{"SHOP_SH"}, models.PermLedgerRead)
	op := w.english(t, "opapi", "operator api pass")
	if r := apiCall(t, w.srv, opSecret, "GET", path, nil); r.Status != http.StatusOK {
		t.Fatalf("operator's token: %d %s", r.Status, r.Raw)
	}
	if r := op.post("/api-tokens/"+id(opTok.ID)+"/revoke", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	if r := apiCall(t, w.srv, opSecret, "GET", path, nil); r.Status != http.StatusUnauthorized || r.errCode() != "token_revoked" {
		t.Errorf("right after revocation: %d %s", r.Status, r.Raw)
	}

	// A disabled maker's tokens stop; a maker's shrunken scope shrinks the token.
	_, op2Secret := mustToken(t, w.store, opUser, "op-token-2", []string{"SHOP_SH"}, models.PermLedgerRead)
	if err := w.store.SetUserDisabled(models.SystemActor, opUser.ID, true); err != nil {
		t.Fatal(err)
	}
	if r := apiCall(t, w.srv, op2Secret, "GET", path, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("token of a disabled maker: %d", r.Status)
	}

	// Source addresses (app.Test requests come from 0.0.0.0).
	_, far, err := w.store.CreateAPIToken(models.SystemActor, nil, models.APITokenInput{Name: "far", Merchants: []string{"SHOP_SH"}, Permissions: []string{models.PermLedgerRead}, AllowedIPs: "203.0.113.7\n198.51.100.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if r := apiCall(t, w.srv, far, "GET", path, nil); r.Status != http.StatusForbidden || r.errCode() != "address_not_allowed" {
		t.Errorf("from another address: %d %s", r.Status, r.Raw)
	}
	_, near, err := w.store.CreateAPIToken(models.SystemActor, nil, models.APITokenInput{Name: "near", Merchants: []string{"SHOP_SH"}, Permissions: []string{models.PermLedgerRead}, AllowedIPs: "0.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	if r := apiCall(t, w.srv, near, "GET", path, nil); r.Status != http.StatusOK {
		t.Errorf("from an allowed address: %d %s", r.Status, r.Raw)
	}
	// Last use is noted.
	got, _ := w.store.GetAPIToken(models.Scope{All: true}, w.tok.ID)
	if got.LastUsedAt == nil || got.LastUsedIP == "" {
		t.Errorf("last use not noted: %+v", got)
	}
}

// TestAPIRateLimit: past its rate a token gets 429 with Retry-After at once,
// other tokens are unaffected, and it may go on when the time has passed.
func TestAPIRateLimit(t *testing.T) {
	w := newAPIWorld(t)
	now := time.Now()
	var mu sync.Mutex
	lim := handlers.NewRateLimiter(3, time.Minute)
	lim.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w.srv.H.APILimiter = lim
	_, other := mustToken(t, w.store, nil, "other", []string{"SHOP_SH"}, models.PermLedgerRead)
	for i := range 3 {
		if r := w.call(t, "GET", "/api/v1/transactions?limit=1", nil); r.Status != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, r.Status)
		}
	}
	r := w.call(t, "GET", "/api/v1/transactions?limit=1", nil)
	if r.Status != http.StatusTooManyRequests || r.errCode() != "rate_limited" || r.Header.Get("Retry-After") != "20" {
		t.Fatalf("4th request: %d %s Retry-After %q", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
	checkErrorShape(t, "429", r)
	if r := w.call(t, "POST", "/api/v1/transactions", map[string]any{}); r.Status != http.StatusTooManyRequests {
		t.Errorf("writes count too: %d", r.Status)
	}
	if r := apiCall(t, w.srv, other, "GET", "/api/v1/transactions?limit=1", nil); r.Status != http.StatusOK {
		t.Errorf("another token: %d", r.Status)
	}
	mu.Lock()
	now = now.Add(20 * time.Second)
	mu.Unlock()
	if r := w.call(t, "GET", "/api/v1/transactions?limit=1", nil); r.Status != http.StatusOK {
		t.Errorf("after Retry-After: %d", r.Status)
	}
}

// TestAPIErrorsHaveOneShape: unknown paths, bad input, wrong content types,
// panics and database failures all answer {"error": {code, message, field}}
// without internal text.
func TestAPIErrorsHaveOneShape(t *testing.T) {
	w := newAPIWorld(t)
	w.srv.App.Get("/api/v1/test-panic", func(*fiber.Ctx) error { panic("secret internal state at models/ledger.go:42") })
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
		field              any
	}{
		{"unknown path", "GET", "/api/v1/nope", nil, 404, "not_found", nil},
		{"api root", "GET", "/api/v1", nil, 404, "not_found", nil},
		{"unknown id", "GET", "/api/v1/transactions/999999", nil, 404, "not_found", nil},
		{"bad id", "GET", "/api/v1/transactions/abc", nil, 404, "not_found", nil},
		{"unknown parameter", "GET", "/api/v1/transactions?merchant_code=SHOP_SH", nil, 400, "unknown_parameter", "merchant_code"},
		{"bad filter", "GET", "/api/v1/transactions?from=2026-13-01", nil, 422, "validation_failed", "from"},
		{"bad amount filter", "GET", "/api/v1/transactions?min=1.5", nil, 422, "validation_failed", "min"},
		{"bad cursor", "GET", "/api/v1/transactions?after=xyz", nil, 422, "validation_failed", "after"},
		{"bad limit", "GET", "/api/v1/transactions?limit=500", nil, 422, "validation_failed", "limit"},
		{"invalid JSON", "POST", "/api/v1/transactions", `{"kind":`, 400, "invalid_json", nil},
		{"unknown field", "POST", "/api/v1/transactions", map[string]any{"account_id": 1, "colour": "red"}, 422, "validation_failed", "colour"},
		{"wrong type", "POST", "/api/v1/transactions", map[string]any{"account_id": 1, "amount": "12.34"}, 422, "validation_failed", "amount"},
		{"missing kind", "POST", "/api/v1/transactions", map[string]any{"account_id": w.acctSH.ID, "channel_ref": "X1", "status": "succeeded", "amount": 1, "paid_at": "2026-03-05T12:00:00Z"}, 422, "validation_failed", "kind"},
		{"bad time", "POST", "/api/v1/transactions", map[string]any{"account_id": w.acctSH.ID, "kind": "payment", "channel_ref": "X1", "status": "succeeded", "amount": 1, "paid_at": "yesterday"}, 422, "validation_failed", "paid_at"},
		{"empty patch", "PATCH", "/api/v1/transactions/" + id(w.shTxn), map[string]any{}, 422, "validation_failed", "annotation"},
		{"bad correction", "PATCH", "/api/v1/transactions/" + id(w.shTxn), map[string]any{"correction": map[string]any{"field": "amount", "value": 1, "reason": "x"}}, 422, "validation_failed", "correction.reason"},
		{"report without date", "GET", "/api/v1/reports/daily", nil, 422, "validation_failed", "date"},
		{"kpis without merchant", "GET", "/api/v1/kpis?from=2026-03-01&to=2026-03-31", nil, 422, "validation_failed", "merchant"},
		{"kpis bad range", "GET", "/api/v1/kpis?merchant=SHOP_SH&from=2026-03-31&to=2026-03-01", nil, 422, "validation_failed", "to"},
		{"panic", "GET", "/api/v1/test-panic", nil, 500, "internal_error", nil},
	}
	for _, tc := range cases {
		r := w.call(t, tc.method, tc.path, tc.body)
		if r.Status != tc.status || r.errCode() != tc.code || r.errField() != tc.field {
			t.Errorf("%s: %d %s, want %d %s field %v", tc.name, r.Status, r.Raw, tc.status, tc.code, tc.field)
		}
		checkErrorShape(t, tc.name, r)
		if strings.Contains(r.Raw, "secret internal") {
			t.Errorf("%s: internal text reached the client", tc.name)
		}
	}
	// Form bodies are refused on JSON endpoints.
	r := apiCall(t, w.srv, w.token, "POST", "/api/v1/transactions", nil, "Content-Type", "application/x-www-form-urlencoded")
	if r.Status != http.StatusUnsupportedMediaType {
		t.Errorf("form body: %d %s", r.Status, r.Raw)
	}
	checkErrorShape(t, "form body", r)
}

// TestAPILedgerReadWrite walks the ledger endpoints' behaviour: cursor pages
// in a stable order with the page's filters (amounts in minor units); a
// merchant-source record that merges with the channel's (conflict flagged)
// or is new (201, Location) or a duplicate; annotations; corrections (only
// with a finance or admin maker); every write audited as token:<name>.
func TestAPILedgerReadWrite(t *testing.T) {
	w := newAPIWorld(t)
	// Pages: WX1, WX2 (payments) and WXR1 (refund) at SHOP_SH.
	var ids []float64
	after := ""
	for range 5 {
		r := w.call(t, "GET", "/api/v1/transactions?merchant=SHOP_SH&limit=1"+after, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("page: %d %s", r.Status, r.Raw)
		}
		for _, d := range r.JSON["data"].([]any) {
			ids = append(ids, d.(map[string]any)["id"].(float64))
		}
		next, _ := r.JSON["next_cursor"].(string)
		if next == "" {
			break
		}
		after = "&after=" + url.QueryEscape(next)
	}
	all := w.call(t, "GET", "/api/v1/transactions?merchant=SHOP_SH", nil)
	var allIDs []float64
	for _, d := range all.JSON["data"].([]any) {
		allIDs = append(allIDs, d.(map[string]any)["id"].(float64))
	}
	if len(ids) != 3 || !slices.Equal(ids, allIDs) || all.JSON["next_cursor"] != nil {
		t.Fatalf("cursor pages %v, one page %v (next %v)", ids, allIDs, all.JSON["next_cursor"])
	}
	if r := w.call(t, "GET", "/api/v1/transactions?min=12345&max=12345", nil); len(r.JSON["data"].([]any)) != 1 {
		t.Errorf("amount filter in minor units: %s", r.Raw)
	}
	if r := w.call(t, "GET", "/api/v1/transactions?kind=refund&status=succeeded&q=WXR1", nil); len(r.JSON["data"].([]any)) != 1 {
		t.Errorf("kind/status/q filters: %s", r.Raw)
	}
	one := w.call(t, "GET", "/api/v1/transactions/"+id(w.shTxn), nil).data()
	if one["amount"].(float64) != 12345 || one["currency"] != "CNY" || one["channel_ref"] != "WX1" || len(one["source_records"].([]any)) != 1 {
		t.Fatalf("detail: %v", one)
	}

	// The merchant's view of WX1 with another amount: merged, conflict flagged.
	rec := map[string]any{"merchant": "SHOP_SH", "channel": "wechat", "kind": "payment", "channel_ref": "WX1", "status": "succeeded",
		"amount": 12000, "merchant_order_no": "OWX1", "paid_at": "2026-03-05T10:00:00+08:00"}
	r := w.call(t, "POST", "/api/v1/transactions", rec)
	d := r.data()
	if r.Status != http.StatusOK || r.JSON["result"] != "merged" || d["conflict"] != true || d["amount"].(float64) != 12345 ||
		!slices.Contains(d["sources"].([]any), any("merchant")) || !slices.Contains(d["conflict_fields"].([]any), any("amount")) {
		t.Fatalf("merge: %d %s", r.Status, r.Raw)
	}
	if r := w.call(t, "POST", "/api/v1/transactions", rec); r.Status != http.StatusOK || r.JSON["result"] != "duplicate" {
		t.Errorf("the same again: %d %v", r.Status, r.JSON["result"])
	}
	// A new one: 201 with Location.
	rec2 := map[string]any{"account_id": w.acctSH.ID, "kind": "payment", "channel_ref": "WX9", "status": "pending", "amount": 990,
		"method": "h5", "created_at": "2026-03-05T13:00:00+08:00"}
	r = w.call(t, "POST", "/api/v1/transactions", rec2)
	if r.Status != http.StatusCreated || r.JSON["result"] != "inserted" || !regexp.MustCompile(`^/api/v1/transactions/\d+$`).MatchString(r.Header.Get("Location")) {
		t.Fatalf("insert: %d %s %q", r.Status, r.Raw, r.Header.Get("Location"))
	}
	if loc := w.call(t, "GET", r.Header.Get("Location"), nil); loc.Status != http.StatusOK || loc.data()["biz_date"] != "2026-03-05" {
		t.Errorf("Location: %d %s", loc.Status, loc.Raw)
	}
	if r := w.call(t, "POST", "/api/v1/transactions", map[string]any{"account_id": w.acctSH.ID, "kind": "payment", "channel_ref": "WX8",
		"status": "succeeded", "amount": 1, "currency": "USD", "paid_at": "2026-03-05T13:00:00Z"}); r.Status != 422 || r.errField() != "currency" {
		t.Errorf("foreign currency: %d %s", r.Status, r.Raw)
	}

	// Annotation and correction.
	r = w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"annotation": "  shipped  "})
	if r.Status != http.StatusOK || r.data()["annotation"] != "shipped" {
		t.Fatalf("annotate: %d %s", r.Status, r.Raw)
	}
	if r := w.call(t, "GET", "/api/v1/transactions?q=WX1", nil); !strings.Contains(r.Raw, `"annotation":"shipped"`) {
		t.Errorf("the list lacks the annotation: %s", r.Raw)
	}
	r = w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"correction": map[string]any{"field": "amount", "value": 12000, "reason": "the order system is right"}})
	if d := r.data(); r.Status != http.StatusOK || d["amount"].(float64) != 12000 || d["conflict"] != false || len(d["corrections"].([]any)) != 1 {
		t.Fatalf("correct: %d %s", r.Status, r.Raw)
	}
	if r := w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"annotation": "x", "correction": map[string]any{"field": "fee", "value": 1, "reason": "four"}}); r.Status != 422 {
		t.Errorf("two changes at once: %d", r.Status)
	}
	// An operator's token may annotate but not correct.
	opUser := models.MustCreateUser(t, w.store, "opcorr", "operator corr pass", models.RoleOperator, "SHOP_SH")
	_, opTok := mustToken(t, w.store, opUser, "op-writer", []string{"SHOP_SH"}, models.PermLedgerWrite)
	if r := apiCall(t, w.srv, opTok, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"correction": map[string]any{"field": "status", "value": "failed", "reason": "customer says so"}}); r.Status != http.StatusForbidden {
		t.Errorf("operator's correction: %d %s", r.Status, r.Raw)
	}
	if r := apiCall(t, w.srv, opTok, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"annotation": "checked"}); r.Status != http.StatusOK {
		t.Errorf("operator's annotation: %d %s", r.Status, r.Raw)
	}

	// Every write is audited with the token's name.
	page, _ := w.store.ListAudit(models.AuditFilter{Actor: "token:order-system", Limit: 200})
	actions := map[string]int{}
	for _, a := range page.Rows {
		actions[a.Action]++
	}
	if actions[models.ActAPIRecord] != 3 || actions[models.ActAPIAnnotate] != 1 || actions[models.ActLedgerCorrect] != 1 {
		t.Errorf("audit by token:order-system: %v", actions)
	}
	if corr, _ := w.store.TransactionCorrections(w.shTxn); len(corr) != 1 || corr[0].CreatedBy != "token:order-system" {
		t.Errorf("correction trail: %+v", corr)
	}
}

// TestAPIImport: a statement through the API takes the console's path (201
// with counts, then 200 already imported; a refused file is 422 and in the
// history), audited as the token.
func TestAPIImport(t *testing.T) {
	w := newAPIWorld(t)
	bill := readTestBill(t, "all.csv")
	r := apiUpload(t, w.srv, w.token, map[string]string{"merchant": "SHOP_SH", "channel": "wechat"}, "all.csv", bill)
	d := r.data()
	if r.Status != http.StatusCreated || d["status"] != "taken" || d["rows"].(float64) == 0 || d["already_imported"] != false || d["created_by"] != "token:order-system" {
		t.Fatalf("import: %d %s", r.Status, r.Raw)
	}
	r = apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "again.csv", bill)
	if r.Status != http.StatusOK || r.data()["already_imported"] != true {
		t.Errorf("again: %d %s", r.Status, r.Raw)
	}
	r = apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "bad.csv", readTestBill(t, "bad_amount.csv"))
	if r.Status != http.StatusUnprocessableEntity || r.errCode() != "statement_refused" || r.errField() != "file" {
		t.Errorf("refused: %d %s", r.Status, r.Raw)
	}
	checkErrorShape(t, "refused", r)
	if r := apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "", nil); r.Status != 422 || r.errField() != "file" {
		t.Errorf("no file: %d %s", r.Status, r.Raw)
	}
	// Over 4 MB: 413 in the error shape (over a real connection: app.Test
	// reports the refused body as a transport error).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go w.srv.App.Listener(ln)
	defer w.srv.App.Shutdown()
	req := multipartRequest(t, "/api/v1/imports", map[string]string{"account_id": id(w.acctSH.ID)}, "big.csv", make([]byte, 5<<20))
	req.RequestURI, req.URL.Scheme, req.URL.Host = "", "http", ln.Addr().String()
	req.Header.Set("Authorization", "Bearer "+w.token)
	if res, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		big := apiResp{Status: res.StatusCode, Header: res.Header, Raw: string(b)}
		json.Unmarshal(b, &big.JSON)
		if big.Status != http.StatusRequestEntityTooLarge || big.errCode() != "payload_too_large" {
			t.Errorf("5 MB: %d %s", big.Status, clip(big.Raw))
		}
		checkErrorShape(t, "too large", big)
	} else if !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("5 MB: %v", err)
	}
	if n := auditCount(t, w.store, models.ActImport); n != 2 {
		t.Errorf("%d import audit records, want 2 (taken, refused)", n)
	}

	// The merchant's own records take part in reconciliation: one the
	// statement lacks, and one whose amount the statement contradicts.
	for _, rec := range []map[string]any{
		{"account_id": w.acctSH.ID, "kind": "payment", "channel_ref": "4200009999202602280000000001", "status": "succeeded", "amount": 500, "paid_at": "2026-02-28T12:00:00+08:00"},
		{"account_id": w.acctSH.ID, "kind": "payment", "channel_ref": "4200002851202602280000000002", "status": "succeeded", "amount": 1200, "paid_at": "2026-02-28T10:20:30+08:00"},
	} {
		if r := w.call(t, "POST", "/api/v1/transactions", rec); r.Status/100 != 2 {
			t.Fatalf("record: %d %s", r.Status, r.Raw)
		}
	}
	if _, err := w.store.Reconcile(models.Actor{Name: "test"}, models.Scope{All: true}, w.acctSH.ID, "2026-02-28"); err != nil {
		t.Fatal(err)
	}
	var items []models.ReconItem
	w.store.DB.Where("channel_ref IN ?", []string{"4200009999202602280000000001", "4200002851202602280000000002"}).Order("channel_ref").Find(&items)
	if len(items) != 2 || items[0].Bucket != models.BucketAmountMismatch || items[1].Bucket != models.BucketMissingInStatement ||
		!strings.Contains(items[0].OtherSources, "merchant") || !strings.Contains(items[1].OtherSources, "merchant") {
		t.Errorf("reconciliation items: %+v", items)
	}
}

// TestAPIRoutesAreTheTokens: every /api/v1 route but the document is a
// Bearer route with a permission, no session role passes it, and every one
// answers 401 to a request without a token, signed in to the console or not.
func TestAPIRoutesAreTheTokens(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	session := loggedIn(t, srv, "boss", "bosses password")
	n := 0
	for _, rt := range srv.Routes {
		if rt.Access == web.Bearer {
			path := strings.ReplaceAll(rt.Path, ":id", "1")
			anon := apiCall(t, srv, "", rt.Method, path, nil)
			signedIn := session.do(rt.Method, path, url.Values{"_csrf": {session.csrf()}})
			if anon.Status != http.StatusUnauthorized || signedIn.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d, with a console session: %d; want 401", rt.Method, rt.Path, anon.Status, signedIn.StatusCode)
			}
			checkErrorShape(t, rt.Method+" "+rt.Path, anon)
		}
		if !strings.HasPrefix(rt.Path, "/api/v1/") {
			continue
		}
		n++
		if rt.Path == "/api/v1/openapi.json" {
			continue
		}
		if rt.Perm == "" || !slices.Contains(models.APIPermissions, rt.Perm) || !rt.API {
			t.Errorf("%s %s: permission %q", rt.Method, rt.Path, rt.Perm)
		}
		for _, role := range models.Roles {
			if rt.Access.Allows(role) {
				t.Errorf("%s %s allows the %s session role", rt.Method, rt.Path, role)
			}
		}
	}
	if n < 9 {
		t.Errorf("only %d API routes", n)
	}
}
