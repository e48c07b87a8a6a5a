package web_test

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/generic"
	"payfuse/channels/testkeys"
	"payfuse/flows/webhook"
	"payfuse/models"
	"payfuse/web"
)

// The security sweep's world: two merchants with one of every kind of object
// the console shows by id, so every :id route of the routes table can be
// asked for an object of the user's own merchant and one of another.

// sweepMarkers are texts only SHOP_BJ's objects carry: a page that shows
// one of them to a user scoped to SHOP_SH leaks another merchant's data.
var sweepMarkers = []string{"Beijing Hidden Store", "BJ-HIDDEN"}

// sweepCredentials are the channel credentials of the sweep's accounts,
// made once per test binary (RSA keys take a while under the race detector).
var sweepCredentials = sync.OnceValue(func() map[string]map[string][]byte {
	now := time.Now()
	out := map[string]map[string][]byte{}
	for _, ch := range []string{"wechat", "alipay", "unionpay"} {
		out[ch] = testkeys.Credentials(ch, now)
	}
	return out
})

// sweepWorld is a server over a store holding SHOP_SH and SHOP_BJ, each with
// WeChat Pay, Alipay and UnionPay accounts, a week of demo history (statement
// imports, notifications, conflicts), flows with run history, reconciled days
// with discrepancies, alerts, a trigger rule, a webhook endpoint, an API
// token, a KPI weight version and a column mapping (of the UnionPay account);
// and users: boss (admin), opsh and finsh (SHOP_SH), victim (an operator of
// SHOP_SH with a session, for the /users/:id routes).
type sweepWorld struct {
	srv   *web.Server
	store *models.Store
	// ids[merchant][kind] is an object of that merchant, by the kind of
	// route parameter that names it (see sweepKind).
	ids    map[string]map[string]string
	victim *models.User
	logs   *syncBuffer // the server's log
}

const (
	sweepAdminPass = "bosses password"
	sweepOpPass    = "operator sh pass"
	sweepFinPass   = "finance sh pass"
)

func newSweepWorld(t *testing.T, mut ...func(*web.Config)) *sweepWorld {
	t.Helper()
	logs := &syncBuffer{}
	mut = append([]func(*web.Config){func(c *web.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) }}, mut...)
	srv, store := newServer(t, mut...)
	w := &sweepWorld{srv: srv, store: store, ids: map[string]map[string]string{}, logs: logs}
	setup := models.Actor{Name: "setup"}
	all := models.Scope{All: true}
	creds := sweepCredentials()
	names := map[string]string{"SHOP_SH": "Shanghai Sweep Store", "SHOP_BJ": "Beijing Hidden Store"}
	tags := map[string]string{"SHOP_SH": "SH", "SHOP_BJ": "BJ-HIDDEN"}
	for _, code := range []string{"SHOP_SH", "SHOP_BJ"} {
		m, err := store.CreateMerchant(setup, models.MerchantInput{Code: code, Name: names[code], Contact: tags[code] + " contact"})
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range []string{"wechat", "alipay", "unionpay"} {
			vals := map[string][]byte{}
			for k, v := range creds[ch] {
				vals[k] = v
			}
			if _, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: m.ID, Channel: ch, DisplayName: tags[code] + " " + ch,
				Methods: []string{"scan", "quick", "h5", "app"}, FeeRateBP: 60, Enabled: true, Values: vals}); err != nil {
				t.Fatalf("%s %s account: %v", code, ch, err)
			}
		}
	}
	if _, err := store.GenerateDemoHistory(setup, models.DemoOptions{Transactions: 240, Days: 7, Seed: 9, Merchants: []string{"SHOP_SH", "SHOP_BJ"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GenerateDemoFlows(setup, 7, 9); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"SHOP_SH", "SHOP_BJ"} {
		tag := strings.ToLower(strings.TrimSuffix(tags[code], "-HIDDEN")) // sh, bj
		ep, _, err := store.CreateWebhookEndpoint(setup, all, models.WebhookInput{MerchantCode: code, Name: tags[code] + " hook",
			URL: "https://hooks.example.com/" + tag, Enabled: true}, webhook.AllowList{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.CreateTriggerRule(setup, all, models.TriggerRuleInput{Name: tags[code] + " big payment", MerchantCode: code,
			Kind: models.TriggerLargePayment, Params: `{"amount":100000}`, Alert: true, WebhookEndpointID: ep.ID, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.CreateAPIToken(setup, nil, models.APITokenInput{Name: tags[code] + " token", Merchants: []string{code},
			Permissions: []string{models.PermLedgerRead}}); err != nil {
			t.Fatal(err)
		}
		weights := models.DefaultWeights()
		weights.Name = tags[code] + " weights"
		if _, err := store.SaveWeights(setup, all, code, weights, tags[code]+" weights reason"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.RaiseAlert(models.RaiseInput{MerchantCode: code, Source: "flow", Kind: "flow_failed", Severity: models.SeverityCritical,
			DedupeKey: "sweep-" + code, Title: channels.Text{EN: tags[code] + " alert", ZH: tags[code] + " 告警"}, Body: channels.Text{EN: "x", ZH: "x"}, Link: "/ledger"}); err != nil {
			t.Fatal(err)
		}
		w.ids[code] = w.objectIDs(t, code)
		if err := store.SaveMapping(setup, parseU64(w.ids[code]["mapped_channel"]), generic.Mapping{
			Columns: map[string][]string{
				generic.FieldChannelRef: {"查询流水号"}, generic.FieldOrderNo: {"商户订单号"}, generic.FieldAmount: {"交易金额"},
				generic.FieldStatus: {"应答码"}, generic.FieldTime: {"交易时间"},
			},
			Statuses: map[string]string{"00": "succeeded", "06": "failed"},
		}); err != nil {
			t.Fatalf("mapping of %s: %v", code, err)
		}
	}
	models.MustCreateUser(t, store, "boss", sweepAdminPass, models.RoleAdmin)
	models.MustCreateUser(t, store, "opsh", sweepOpPass, models.RoleOperator, "SHOP_SH")
	models.MustCreateUser(t, store, "finsh", sweepFinPass, models.RoleFinance, "SHOP_SH")
	w.victim = models.MustCreateUser(t, store, "victim", "victims password", models.RoleOperator, "SHOP_SH")
	if _, err := store.LoginStart(models.Actor{Name: "victim"}, "victim", "victims password", "sweep"); err != nil {
		t.Fatal(err)
	}
	sessions, err := store.ListSessions(w.victim.ID)
	if err != nil || len(sessions) == 0 {
		t.Fatalf("victim's session: %v", err)
	}
	for _, code := range []string{"SHOP_SH", "SHOP_BJ"} {
		w.ids[code]["user"] = id(w.victim.ID)
		w.ids[code]["session"] = id(sessions[0].ID)
	}
	return w
}

// objectIDs finds one object of each kind for merchant code.
func (w *sweepWorld) objectIDs(t *testing.T, code string) map[string]string {
	t.Helper()
	db := w.store.DB
	out := map[string]string{}
	first := func(kind string, model any, where string, args ...any) {
		var ids []uint64
		if err := db.Model(model).Where(where, args...).Order("id").Limit(1).Pluck("id", &ids).Error; err != nil {
			t.Fatalf("%s of %s: %v", kind, code, err)
		}
		if len(ids) == 0 {
			t.Fatalf("the sweep world has no %s of %s", kind, code)
		}
		out[kind] = id(ids[0])
	}
	first("merchant", &models.Merchant{}, "code = ?", code)
	first("channel", &models.ChannelAccount{}, "merchant_code = ? AND channel = ?", code, "wechat")
	first("mapped_channel", &models.ChannelAccount{}, "merchant_code = ? AND channel = ?", code, "unionpay")
	first("ledger", &models.Transaction{}, "merchant_code = ?", code)
	first("reconcile_day", &models.ReconDay{}, "merchant_code = ?", code)
	first("reconcile_item", &models.ReconItem{}, "merchant_code = ?", code)
	first("trigger", &models.TriggerRule{}, "merchant_code = ?", code)
	first("webhook", &models.WebhookEndpoint{}, "merchant_code = ?", code)
	first("flow", &models.Flow{}, "merchant_code = ?", code)
	first("flow_run", &models.FlowRun{}, "merchant_code = ?", code)
	first("alert", &models.Alert{}, "merchant_code = ?", code)
	first("import", &models.Import{}, "merchant_code = ?", code)
	first("api_token", &models.APIToken{}, "merchants = ?", code)
	_, v, err := w.store.ActiveWeights(models.Scope{All: true}, code)
	if err != nil || v == nil {
		t.Fatalf("weights of %s: %v", code, err)
	}
	out["kpi_version"] = strconv.Itoa(v.Version)
	out["code"] = code
	return out
}

// sweepKind names the kind of object a route parameter stands for, from the
// path before it; "" for a path the sweep does not know (a new resource:
// give the sweep world one of its objects).
func sweepKind(path, param string) string {
	before := path[:strings.Index(path, param)]
	switch {
	case param == ":sid":
		return "session"
	case param == ":version" && before == "/kpis/versions/":
		return "kpi_version"
	}
	for _, k := range []struct{ prefix, kind string }{
		{"/merchants/", "merchant"}, {"/channels/", "channel"}, {"/ledger/", "ledger"},
		{"/reconcile/days/", "reconcile_day"}, {"/reconcile/items/", "reconcile_item"},
		{"/flows/triggers/", "trigger"}, {"/flows/webhooks/", "webhook"}, {"/flows/runs/", "flow_run"}, {"/flows/", "flow"},
		{"/alerts/", "alert"}, {"/imports/", "import"}, {"/api-tokens/", "api_token"}, {"/users/", "user"},
	} {
		if before == k.prefix {
			return k.kind
		}
	}
	return ""
}

// sweepParams lists a route path's parameters (":id", ":sid", …) in order.
func sweepParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, ":") {
			out = append(out, seg)
		}
	}
	return out
}

// pathFor fills a route's parameters with merchant code's objects, and adds
// the query a route needs to find them (the KPI version's merchant, the new
// account form's merchant and channel). unknown names a parameter whose kind
// the sweep does not know.
func (w *sweepWorld) pathFor(rt web.Route, code string) (path string, unknown string) {
	return w.pathWith(rt, code, "")
}

// pathWith is pathFor with every parameter set to id instead, when id is
// not "" (an id that names nothing).
func (w *sweepWorld) pathWith(rt web.Route, code, id string) (path string, unknown string) {
	path = rt.Path
	for _, p := range sweepParams(rt.Path) {
		kind := sweepKind(rt.Path, p)
		if kind == "channel" && strings.Contains(rt.Path, "/mapping") {
			kind = "mapped_channel" // column mappings are for channels without a native statement
		}
		v, ok := w.ids[code][kind]
		if kind == "" || !ok {
			return "", p
		}
		if id != "" {
			v = id
		}
		path = strings.Replace(path, p, v, 1)
	}
	switch {
	case strings.HasPrefix(rt.Path, "/kpis/versions/"):
		path += "?merchant=" + code
	case rt.Path == "/channels/new": // the form is for one merchant and channel
		path += "?merchant=" + w.ids[code]["merchant"] + "&channel=wechat"
	}
	return path, ""
}

// consoleRoute reports whether the sweep drives a route through the console
// (a browser's session): not the REST API's bearer routes, nor the channels'
// signed notifications (their own tests), nor machine endpoints.
func consoleRoute(rt web.Route) bool {
	return rt.Access != web.Bearer && !rt.Webhook && !strings.HasPrefix(rt.Path, "/api/")
}

// ingestProbeRecord brings a payment into SHOP_SH's WeChat Pay account whose
// every text came from outside and is a probe: what a statement or a
// notification could carry.
func (w *sweepWorld) ingestProbeRecord(t *testing.T) {
	t.Helper()
	var acct models.ChannelAccount
	if err := w.store.DB.First(&acct, w.ids["SHOP_SH"]["channel"]).Error; err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	rec := channels.Record{
		Channel: "wechat", Kind: channels.KindPayment, ChannelRef: "4200\"><script>alert(1)</script>", MerchantOrderNo: "PF' onmouseover='alert(1)'<img src=x onerror=alert(1)>",
		Method: "quick", Status: channels.StatusSucceeded, NativeStatus: probeXSS, Amount: 100, Currency: "CNY",
		Payer: probeXSS, AccountRef: acct.SettingsMap()["mch_id"], CreatedAt: now, PaidAt: now,
		Raw: map[string]string{probeXSS: probeXSS, "attach": "javascript:alert(1)"},
	}
	if _, err := w.store.Ingest(models.Actor{Name: "sweep"}, acct.ID, models.SourceNotification, []channels.Record{rec}); err != nil {
		t.Fatalf("ingest the probe record: %v", err)
	}
}

// logged returns the server's log lines of a request.
func (w *sweepWorld) logged(requestID string) string {
	var out []string
	for _, line := range strings.Split(w.logs.String(), "\n") {
		if requestID != "" && strings.Contains(line, requestID) && !strings.Contains(line, "msg=request ") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func parseU64(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
