package web_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"payfuse/channels/wechat"
	"payfuse/models"
	"payfuse/web"
)

const testMetricsToken = "metrics-token-for-tests-0123456789"

// readyz asks srv for its readiness and decodes the answer.
func readyz(t *testing.T, srv *web.Server) (int, map[string]any, http.Header) {
	t.Helper()
	res, err := srv.App.Test(httptest.NewRequest("GET", "/readyz", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("readyz answer is not JSON: %v", err)
	}
	return res.StatusCode, body, res.Header
}

func checksOf(body map[string]any) map[string]any {
	c, _ := body["checks"].(map[string]any)
	return c
}

// TestReadyz: ready on a migrated database; 503 naming the check when a
// migration is missing, when the database has a newer one, when every pool
// connection is busy past the deadline, and when the database is gone —
// while /healthz (the process) stays 200.
func TestReadyz(t *testing.T) {
	srv, store := newServer(t)
	status, body, hdr := readyz(t, srv)
	if status != http.StatusOK || body["status"] != "ready" || checksOf(body)["database"] != "ok" || checksOf(body)["migrations"] != "ok" {
		t.Fatalf("migrated database: %d %v", status, body)
	}
	if hdr.Get("Set-Cookie") != "" {
		t.Errorf("a probe got a cookie: %s", hdr.Get("Set-Cookie"))
	}

	latest := models.LatestVersion()
	var name string
	store.DB.Raw("SELECT name FROM schema_migrations WHERE version = ?", latest).Scan(&name)
	if err := store.DB.Exec("DELETE FROM schema_migrations WHERE version = ?", latest).Error; err != nil {
		t.Fatal(err)
	}
	status, body, _ = readyz(t, srv)
	if status != http.StatusServiceUnavailable || body["failed"] != "migrations" || checksOf(body)["migrations"] != "behind" ||
		checksOf(body)["database"] != "ok" {
		t.Errorf("a migration missing: %d %v", status, body)
	}
	if m, _ := body["missing_migrations"].([]any); len(m) != 1 || m[0] != float64(latest) {
		t.Errorf("missing migrations = %v, want [%d]", body["missing_migrations"], latest)
	}
	if err := store.DB.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?), (?, ?, ?)",
		latest, name, time.Now().UTC(), latest+1, "from a newer binary", time.Now().UTC()).Error; err != nil {
		t.Fatal(err)
	}
	status, body, _ = readyz(t, srv)
	if status != http.StatusServiceUnavailable || body["failed"] != "migrations" || checksOf(body)["migrations"] != "ahead" {
		t.Errorf("a newer migration applied: %d %v", status, body)
	}
	store.DB.Exec("DELETE FROM schema_migrations WHERE version = ?", latest+1)
	if status, body, _ = readyz(t, srv); status != http.StatusOK {
		t.Fatalf("schema restored: %d %v", status, body)
	}

	// Every connection busy: the check gives up at its deadline, not later.
	sqlDB, err := store.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	conn, err := sqlDB.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	status, body, _ = readyz(t, srv)
	took := time.Since(start)
	conn.Close()
	if status != http.StatusServiceUnavailable || body["failed"] != "database" || checksOf(body)["database"] != "timeout" {
		t.Errorf("pool exhausted: %d %v", status, body)
	}
	if took > 2*time.Second {
		t.Errorf("readiness took %v with the pool exhausted, want about %v", took, 1*time.Second)
	}
	if status, _, _ = readyz(t, srv); status != http.StatusOK {
		t.Errorf("connection released: %d", status)
	}

	// The database gone.
	sqlDB.Close()
	status, body, _ = readyz(t, srv)
	if status != http.StatusServiceUnavailable || body["failed"] != "database" || checksOf(body)["database"] != "unreachable" ||
		checksOf(body)["migrations"] != "unchecked" {
		t.Errorf("database closed: %d %v", status, body)
	}
	if strings.Contains(strings.ToLower(body["status"].(string)+body["failed"].(string)), "sql") {
		t.Errorf("the answer quotes the error: %v", body)
	}
	r := newClient(t, srv).get("/healthz")
	if r.StatusCode != http.StatusOK {
		t.Errorf("healthz with the database closed: %d, want 200 (the process is up)", r.StatusCode)
	}
}

// serveLoopback serves srv on a loopback port, so requests reach it over a
// real connection from 127.0.0.1 (app.Test's peer is 0.0.0.0); it returns
// the base URL.
func serveLoopback(t *testing.T, srv *web.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.App.Listener(ln)
	t.Cleanup(func() { srv.App.Shutdown() })
	return "http://" + ln.Addr().String()
}

// httpGet sends a GET over the network with headers (name, value, …).
func httpGet(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// scrape reads srv's /metrics through app.Test with the Authorization header auth.
func scrape(t *testing.T, srv *web.Server, auth string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := srv.App.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// sample finds the value of the series name{labels} (exactly those labels)
// in a Prometheus text exposition.
func sample(text, name string, labels map[string]string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		got := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			got[l[1]] = l[2]
		}
		if len(got) != len(labels) {
			continue
		}
		same := true
		for k, v := range labels {
			same = same && got[k] == v
		}
		if same {
			v, err := strconv.ParseFloat(m[3], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitSample polls read until the series reaches want (the counters are
// bumped just after the result the test saw was committed).
func waitSample(t *testing.T, read func() string, name string, labels map[string]string, want float64) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		text := read()
		if v, _ := sample(text, name, labels); v == want || time.Now().After(deadline) {
			if v != want {
				t.Errorf("%s%v = %v, want %v", name, labels, v, want)
			}
			return text
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsAccess: /metrics is refused (403) to an address off the
// allow-list without the token, with a wrong token, and to a proxied
// request from an allowed address; it is served with the token from
// anywhere and without it from an allowed address; bad settings stop New.
func TestMetricsAccess(t *testing.T) {
	srv, store := newServer(t, func(c *web.Config) { c.MetricsToken = testMetricsToken })
	// app.Test's peer (0.0.0.0) is not loopback.
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token-wrong", "Bearer " + testMetricsToken + "x", "Basic " + testMetricsToken, testMetricsToken} {
		status, body, _ := scrape(t, srv, auth)
		if status != http.StatusForbidden || strings.Contains(body, "payfuse_") {
			t.Errorf("auth %q from a foreign address: %d, want 403 without metrics", auth, status)
		}
	}
	for _, auth := range []string{"Bearer " + testMetricsToken, "bearer " + testMetricsToken} {
		status, body, hdr := scrape(t, srv, auth)
		if status != http.StatusOK || !strings.Contains(body, "# TYPE payfuse_http_request_duration_seconds histogram") ||
			!strings.Contains(body, "go_goroutines") || !strings.Contains(body, `go_sql_open_connections{db_name="payfuse"}`) {
			t.Errorf("auth %q: %d %s", auth, status, clip(body))
		}
		if hdr.Get("Set-Cookie") != "" {
			t.Errorf("a scrape got a cookie")
		}
	}

	// Over a real connection from 127.0.0.1, on the default allow-list.
	base := serveLoopback(t, srv)
	if status, body := httpGet(t, base+"/metrics"); status != http.StatusOK || !strings.Contains(body, "payfuse_ledger_rows_ingested_total") {
		t.Errorf("loopback without a token: %d %s", status, clip(body))
	}
	// Relayed by a proxy on the same host: the token is needed.
	if status, _ := httpGet(t, base+"/metrics", "X-Forwarded-For", "203.0.113.9"); status != http.StatusForbidden {
		t.Errorf("proxied from loopback without a token: %d, want 403", status)
	}
	if status, _ := httpGet(t, base+"/metrics", "X-Forwarded-For", "203.0.113.9", "Authorization", "Bearer "+testMetricsToken); status != http.StatusOK {
		t.Errorf("proxied with the token: %d, want 200", status)
	}

	// An allow-list without loopback; and none at all.
	for _, allow := range [][]string{{"10.0.0.0/8", "192.0.2.7"}, {"none"}} {
		other, err := web.New(web.Config{MasterKey: make([]byte, 32), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MetricsAllow: allow}, store)
		if err != nil {
			t.Fatal(err)
		}
		if status, _ := httpGet(t, serveLoopback(t, other)+"/metrics"); status != http.StatusForbidden {
			t.Errorf("allow %v, from loopback: %d, want 403", allow, status)
		}
	}

	// Settings New refuses.
	for _, cfg := range []web.Config{{MetricsToken: "short"}, {MetricsAllow: []string{"10.0.0.0/33"}}, {MetricsAllow: []string{"localhost"}}} {
		cfg.MasterKey = make([]byte, 32)
		if _, err := web.New(cfg, store); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

// TestMetricsCountImportsAndRequests: after an import and a few pages, the
// scrape holds the request histogram under the routes' patterns (never a
// raw path) and the rows the import merged, counted once.
func TestMetricsCountImportsAndRequests(t *testing.T) {
	w := newLedgerWorld(t)
	op := w.english(t, "opsh", "operator sh pass")
	base := serveLoopback(t, w.srv)
	read := func() string {
		status, body := httpGet(t, base+"/metrics")
		if status != http.StatusOK {
			t.Fatalf("scrape: %d", status)
		}
		return body
	}
	ingested := func(result string) map[string]string {
		return map[string]string{"source": models.SourceStatement, "result": result}
	}
	text := read()
	if v, ok := sample(text, "payfuse_ledger_rows_ingested_total", ingested("inserted")); !ok || v != 0 {
		t.Errorf("before any import the statement series reads %v (present %v), want 0", v, ok)
	}

	bill := bigBill(3)
	if r := op.follow(op.upload(w.acctSH.ID, "bill.csv", bill)); r.StatusCode != http.StatusOK {
		t.Fatalf("import: %d %s", r.StatusCode, clip(r.Body))
	}
	waitSample(t, read, "payfuse_ledger_rows_ingested_total", ingested("inserted"), 3)
	// The same file again is "already imported": nothing more is counted.
	op.follow(op.upload(w.acctSH.ID, "bill.csv", bill))

	var txn models.Transaction
	if err := w.store.DB.First(&txn).Error; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if r := op.get("/ledger/" + id(txn.ID)); r.StatusCode != http.StatusOK {
			t.Fatalf("ledger detail: %d", r.StatusCode)
		}
	}
	op.get("/no-such-page-7f3a")
	text = read()
	if v, _ := sample(text, "payfuse_ledger_rows_ingested_total", ingested("inserted")); v != 3 {
		t.Errorf("rows inserted by imports = %v after importing a 3-row bill twice, want 3", v)
	}
	if v, _ := sample(text, "payfuse_http_request_duration_seconds_count", map[string]string{"route": "/ledger/:id", "method": "GET", "status": "2xx"}); v != 3 {
		t.Errorf("GET /ledger/:id 2xx count = %v, want 3", v)
	}
	if v, _ := sample(text, "payfuse_http_request_duration_seconds_count", map[string]string{"route": "/imports", "method": "POST", "status": "3xx"}); v != 2 {
		t.Errorf("POST /imports 3xx count = %v, want 2", v)
	}
	if v, _ := sample(text, "payfuse_http_request_duration_seconds_bucket", map[string]string{"route": "/ledger/:id", "method": "GET", "status": "2xx", "le": "+Inf"}); v != 3 {
		t.Errorf("GET /ledger/:id +Inf bucket = %v, want 3", v)
	}
	if v, _ := sample(text, "payfuse_http_request_duration_seconds_count", map[string]string{"route": "unmatched", "method": "GET", "status": "4xx"}); v < 1 {
		t.Errorf("the unknown page is not counted as unmatched:\n%s", grepLines(text, "payfuse_http_request_duration_seconds_count"))
	}
	for _, raw := range []string{"/ledger/" + id(txn.ID) + `"`, "no-such-page"} {
		if strings.Contains(text, raw) {
			t.Errorf("the metrics quote the raw path %q", raw)
		}
	}
}

// TestMetricsCountNotifications: notifications are counted by channel and
// outcome (accepted, duplicate, each refusal reason), a channel name from
// the URL never becomes a label, and a second server over the same store
// (no duplicate-registration panic) reads the same counts.
func TestMetricsCountNotifications(t *testing.T) {
	f := newNotifyFixture(t)
	rec := f.wxPayment("4200000001202603010000000901", 500)
	hdr, body := f.wxNotification(rec, time.Now())
	if status, ans := f.postWechat(f.wx.ID, hdr, body); status != http.StatusNoContent {
		t.Fatalf("notification: %d %s", status, ans)
	}
	// WeChat Pay's retry, signed afresh: taken as a duplicate.
	retryHdr := wechat.SignTestNotification(f.wxKey, string(f.wxVals["platform_public_key_id"]), body, time.Now())
	if status, ans := f.postWechat(f.wx.ID, retryHdr, body); status != http.StatusNoContent {
		t.Fatalf("retry: %d %s", status, ans)
	}
	// Refusals: a bad signature, a stale timestamp, an unknown channel.
	other := f.wxPayment("4200000001202603010000000902", 700)
	h, b := f.wxNotification(other, time.Now())
	f.postWechat(f.wx.ID, h, []byte(strings.Replace(string(b), `"summary":"`, `"summary":"x`, 1)))
	h, b = f.wxNotification(other, time.Now().Add(-time.Hour))
	f.postWechat(f.wx.ID, h, b)
	f.post("/notify/paypal/1", nil, []byte("{}"))

	key := make([]byte, 32)
	rand.Read(key)
	second, err := web.New(web.Config{MasterKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MetricsToken: testMetricsToken}, f.store)
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		status, text, _ := scrape(t, second, "Bearer "+testMetricsToken)
		if status != http.StatusOK {
			t.Fatalf("scrape: %d", status)
		}
		return text
	}
	outcome := func(ch, o string) map[string]string { return map[string]string{"channel": ch, "outcome": o} }
	text := waitSample(t, read, "payfuse_notifications_total", outcome("wechat", "duplicate"), 1)
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{outcome("wechat", "accepted"), 1},
		{outcome("wechat", "bad_signature"), 1},
		{outcome("wechat", "stale_timestamp"), 1},
		{outcome("unknown", "unknown_channel"), 1},
		{outcome("alipay", "accepted"), 0},
	} {
		if v, ok := sample(text, "payfuse_notifications_total", c.labels); !ok || v != c.want {
			t.Errorf("payfuse_notifications_total%v = %v (present %v), want %v", c.labels, v, ok, c.want)
		}
	}
	for res, want := range map[string]float64{"inserted": 1, "duplicate": 1, "merged": 0} {
		if v, _ := sample(text, "payfuse_ledger_rows_ingested_total", map[string]string{"source": models.SourceNotification, "result": res}); v != want {
			t.Errorf("notification rows %s = %v, want %v", res, v, want)
		}
	}
	if strings.Contains(text, "paypal") {
		t.Error("a channel name from the URL became a label value")
	}

	// The first server's own histogram: the notify route under its pattern.
	status, first := httpGet(t, serveLoopback(t, f.srv)+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("first server's scrape: %d", status)
	}
	if v, _ := sample(first, "payfuse_http_request_duration_seconds_count", map[string]string{"route": "/notify/:channel/:account", "method": "POST", "status": "2xx"}); v != 2 {
		t.Errorf("POST /notify/:channel/:account 2xx = %v, want 2", v)
	}
	if strings.Contains(first, "/notify/wechat/") {
		t.Error("the histogram quotes a raw notify path")
	}
}

// TestMetricsCountFlowRuns: a flow run that ends is counted by kind and result.
func TestMetricsCountFlowRuns(t *testing.T) {
	w := newLedgerWorld(t)
	op := w.english(t, "opsh", "operator sh pass")
	r := op.post("/flows", flowForm("sh-rollup"))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create flow: %d %s", r.StatusCode, clip(r.Body))
	}
	r = op.post(r.Header.Get("Location")+"/run", nil)
	runID, _ := strconv.ParseUint(strings.TrimPrefix(r.Header.Get("Location"), "/flows/runs/"), 10, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if run, err := w.srv.H.Flows.WaitRun(ctx, runID); err != nil || run.Status != models.RunSucceeded {
		t.Fatalf("the run: %+v %v", run, err)
	}
	base := serveLoopback(t, w.srv)
	read := func() string { _, b := httpGet(t, base+"/metrics"); return b }
	text := waitSample(t, read, "payfuse_flow_runs_total", map[string]string{"kind": models.FlowRollupCheck, "result": models.RunSucceeded}, 1)
	if v, ok := sample(text, "payfuse_flow_runs_total", map[string]string{"kind": models.FlowRollupCheck, "result": models.RunFailed}); !ok || v != 0 {
		t.Errorf("failed rollup-check runs = %v (present %v), want 0", v, ok)
	}
}

// TestPprof: the profiler is for signed-in admins of a server started with
// --pprof; an operator gets 403, a visitor the sign-in page, and without the
// flag even an admin gets 404. The command line (it may carry a database
// password) is never served.
func TestPprof(t *testing.T) {
	for _, on := range []bool{true, false} {
		srv, store := newServer(t, func(c *web.Config) { c.Pprof = on })
		models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
		models.MustCreateUser(t, store, "ops", "operator password", models.RoleOperator, "SHOP_SH")
		admin := loggedIn(t, srv, "boss", "bosses password")
		op := loggedIn(t, srv, "ops", "operator password")
		anon := newClient(t, srv)
		for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1"} {
			if r := op.get(p); r.StatusCode != http.StatusForbidden {
				t.Errorf("pprof %v, %s as operator: %d, want 403", on, p, r.StatusCode)
			}
			if r := anon.get(p); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
				t.Errorf("pprof %v, %s anonymous: %d, want the sign-in page", on, p, r.StatusCode)
			}
		}
		if !on {
			for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
				if r := admin.get(p); r.StatusCode != http.StatusNotFound {
					t.Errorf("without --pprof, %s as admin: %d, want 404", p, r.StatusCode)
				}
			}
			continue
		}
		if r := admin.get("/debug/pprof/"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "goroutine") {
			t.Errorf("pprof index as admin: %d %s", r.StatusCode, clip(r.Body))
		}
		if r := admin.get("/debug/pprof/heap?debug=1"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "heap profile") {
			t.Errorf("heap profile as admin: %d %s", r.StatusCode, clip(r.Body))
		}
		if r := admin.get("/debug/pprof/goroutine?debug=1"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "goroutine profile") {
			t.Errorf("goroutine profile as admin: %d %s", r.StatusCode, clip(r.Body))
		}
		if r := admin.get("/debug/pprof/cmdline"); r.StatusCode != http.StatusNotFound {
			t.Errorf("cmdline as admin: %d, want 404", r.StatusCode)
		}
		if r := admin.get("/debug/pprof/profile?seconds=600"); r.StatusCode != http.StatusBadRequest {
			t.Errorf("a 10-minute CPU profile: %d, want 400", r.StatusCode)
		}
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
