package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"payfuse/models"
)

var tokenSecretRE = regexp.MustCompile(`id="api-token-secret"[^>]*>(pf_[A-Za-z0-9_-]{43})<`)

// TestAPITokenConsole: an admin makes a token (after a step-up) and sees its
// secret once; operators make tokens only for their merchants with their own
// permissions and see and revoke only such tokens; finance has no token pages.
func TestAPITokenConsole(t *testing.T) {
	w := newLedgerWorld(t)
	models.MustCreateUser(t, w.store, "boss", "admin password 1", models.RoleAdmin)

	// A dangerous action: without a fresh step-up the form sends the admin to it.
	fresh := newClient(t, w.srv)
	fresh.header.Set("Accept-Language", "en")
	fresh.signIn("boss", "admin password 1")
	fresh.enrolTOTP("boss")
	if r := fresh.get("/api-tokens/new"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/account/step-up") {
		t.Fatalf("new token without a step-up: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := fresh.post("/api-tokens", url.Values{"name": {"x"}, "permissions": {"ledger:read"}, "all_merchants": {"1"}}); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/account/step-up") {
		t.Fatalf("create without a step-up: %d %q", r.StatusCode, r.Header.Get("Location"))
	}

	boss := w.english(t, "boss", "admin password 1")
	if r := boss.get("/api-tokens"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "No API tokens yet") || !strings.Contains(r.Body, `href="/api-tokens"`) {
		t.Fatalf("empty list: %d", r.StatusCode)
	}
	form := boss.get("/api-tokens/new")
	for _, want := range []string{`name="all_merchants"`, `value="SHOP_BJ"`, `value="reports:read"`, `value="imports:write"`} {
		if !strings.Contains(form.Body, want) {
			t.Errorf("admin's form lacks %s", want)
		}
	}
	r := boss.post("/api-tokens", url.Values{"name": {"finance BI"}, "all_merchants": {"1"}, "permissions": {"ledger:read", "reports:read"},
		"expires": {"2099-12-31"}, "allowed_ips": {"0.0.0.0/0\n::/0"}})
	m := tokenSecretRE.FindStringSubmatch(r.Body)
	if r.StatusCode != http.StatusOK || m == nil || !strings.Contains(r.Body, "shown only this once") {
		t.Fatalf("create: %d %s", r.StatusCode, clip(r.Body))
	}
	secret := m[1]
	if api := apiCall(t, w.srv, secret, "GET", "/api/v1/transactions?merchant=SHOP_BJ", nil); api.Status != http.StatusOK {
		t.Errorf("the new token on the API: %d %s", api.Status, api.Raw)
	}
	list := boss.get("/api-tokens")
	if strings.Contains(list.Body, secret) || !strings.Contains(list.Body, secret[:11]+"…") || !strings.Contains(list.Body, `data-token="finance BI"`) {
		t.Errorf("the list shows the secret, or not the prefix")
	}
	tokens, _ := w.store.ListAPITokens(models.Scope{All: true})
	if len(tokens) != 1 || tokens[0].TokenHash == secret || tokens[0].CreatedBy != "boss" || tokens[0].ExpiresAt == nil {
		t.Fatalf("stored: %+v", tokens)
	}
	page, _ := w.store.ListAudit(models.AuditFilter{Action: models.ActAPITokenCreate})
	if len(page.Rows) != 1 || strings.Contains(page.Rows[0].After+page.Rows[0].Detail, secret) || strings.Contains(page.Rows[0].After, tokens[0].TokenHash) {
		t.Errorf("audit of the creation: %+v", page.Rows)
	}
	if r := boss.post("/api-tokens", url.Values{"name": {"finance BI"}, "merchants": {"SHOP_SH"}, "permissions": {"ledger:read"}}); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "choose another name") {
		t.Errorf("a taken name: %d", r.StatusCode)
	}
	if r := boss.post("/api-tokens", url.Values{"name": {"ips"}, "merchants": {"SHOP_SH"}, "permissions": {"ledger:read"}, "allowed_ips": {"not-an-ip"}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a bad address: %d", r.StatusCode)
	}
	if r := boss.post("/api-tokens", url.Values{"name": {"old"}, "merchants": {"SHOP_SH"}, "permissions": {"ledger:read"}, "expires": {"2001-01-01"}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("an expiry in the past: %d", r.StatusCode)
	}
	bjTok, _ := mustToken(t, w.store, nil, "bj-orders", []string{"SHOP_BJ"}, models.PermLedgerRead)

	// Operators: their merchants, their permissions.
	op := w.english(t, "opsh", "operator sh pass")
	form = op.get("/api-tokens/new")
	if form.StatusCode != http.StatusOK || strings.Contains(form.Body, `value="SHOP_BJ"`) || strings.Contains(form.Body, `name="all_merchants"`) ||
		strings.Contains(form.Body, `value="reports:read"`) || !strings.Contains(form.Body, `value="imports:write"`) {
		t.Errorf("operator's form: %d", form.StatusCode)
	}
	for name, v := range map[string]url.Values{
		"foreign merchant":       {"name": {"a"}, "merchants": {"SHOP_BJ"}, "permissions": {"ledger:read"}},
		"all merchants":          {"name": {"b"}, "all_merchants": {"1"}, "permissions": {"ledger:read"}},
		"a permission they lack": {"name": {"c"}, "merchants": {"SHOP_SH"}, "permissions": {"reports:read"}},
		"an unknown permission":  {"name": {"d"}, "merchants": {"SHOP_SH"}, "permissions": {"ledger:delete"}},
		"no permission":          {"name": {"e"}, "merchants": {"SHOP_SH"}},
	} {
		if r := op.post("/api-tokens", v); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("operator, %s: %d", name, r.StatusCode)
		}
	}
	r = op.post("/api-tokens", url.Values{"name": {"shop till"}, "merchants": {"SHOP_SH"}, "permissions": {"ledger:read", "ledger:write"}})
	if r.StatusCode != http.StatusOK || tokenSecretRE.FindStringSubmatch(r.Body) == nil {
		t.Fatalf("operator's token: %d", r.StatusCode)
	}
	list = op.get("/api-tokens")
	if !strings.Contains(list.Body, `data-token="shop till"`) || strings.Contains(list.Body, "finance BI") || strings.Contains(list.Body, "bj-orders") {
		t.Errorf("the operator sees other merchants' tokens")
	}
	if r := op.post("/api-tokens/"+id(bjTok.ID)+"/revoke", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("operator revoking a foreign token: %d", r.StatusCode)
	}
	if r := op.post("/api-tokens/"+id(tokens[0].ID)+"/revoke", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("operator revoking the admin's all-merchant token: %d", r.StatusCode)
	}
	// The admin revokes; the list says so; the token stops at once.
	if r := boss.post("/api-tokens/"+id(tokens[0].ID)+"/revoke", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	if l := boss.get("/api-tokens"); !strings.Contains(l.Body, `data-token="finance BI" data-state="revoked"`) || !strings.Contains(l.Body, "was revoked") {
		t.Errorf("the list does not show the revocation")
	}
	if api := apiCall(t, w.srv, secret, "GET", "/api/v1/transactions", nil); api.Status != http.StatusUnauthorized {
		t.Errorf("revoked token: %d", api.Status)
	}

	// Finance has no token pages and no navigation entry; the others do, in both languages.
	fin := w.english(t, "finsh", "finance sh pass")
	if r := fin.get("/api-tokens"); r.StatusCode != http.StatusForbidden {
		t.Errorf("finance: %d", r.StatusCode)
	}
	if strings.Contains(fin.get("/").Body, `href="/api-tokens"`) || !strings.Contains(op.get("/").Body, `href="/api-tokens"`) {
		t.Error("navigation entry for the wrong roles")
	}
	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("opbj", "operator bj pass")
	if r := zh.get("/api-tokens"); !strings.Contains(r.Body, "API 令牌") || !strings.Contains(r.Body, "bj-orders") {
		t.Errorf("Chinese list: %d", r.StatusCode)
	}
}
