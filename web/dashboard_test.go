package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/models"
)

// dashboardServer seeds SHOP_A (WeChat Pay: ¥1,234.56 a minute ago and
// ¥2,000.00 200 days ago) and SHOP_B (Alipay: ¥98,765.43 a minute ago),
// an open alert and an unbalanced reconciliation day for each, and signs in
// an admin and an operator of SHOP_A (both in English).
func dashboardServer(t *testing.T) (admin, opA *client, store *models.Store) {
	t.Helper()
	srv, store := newServer(t)
	setup := models.Actor{Name: "setup"}
	ma, _ := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_A", Name: "Alpha"})
	mb, _ := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_B", Name: "Bravo"})
	wx, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: ma.ID, Channel: "wechat", DisplayName: "Alpha WeChat",
		Methods: []string{"scan"}, Enabled: true, Values: testkeys.Credentials("wechat", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	ali, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: mb.ID, Channel: "alipay", DisplayName: "Bravo Alipay",
		Enabled: true, Values: testkeys.Credentials("alipay", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	recent := time.Now().Add(-time.Minute)
	old := time.Now().AddDate(0, 0, -200)
	payment := func(channel, ref, method string, amount int64, at time.Time) channels.Record {
		return channels.Record{Channel: channel, Kind: channels.KindPayment, ChannelRef: ref, MerchantOrderNo: "O" + ref, Method: method,
			Status: channels.StatusSucceeded, Amount: amount, Currency: "CNY", CreatedAt: at, PaidAt: at}
	}
	if _, err := store.Ingest(setup, wx.ID, models.SourceNotification, []channels.Record{
		payment("wechat", "4200A1", "scan", 123456, recent), payment("wechat", "4200A2", "scan", 200000, old),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Ingest(setup, ali.ID, models.SourceNotification, []channels.Record{
		payment("alipay", "2026B1", "quick", 9876543, recent),
	}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []models.RaiseInput{
		{MerchantCode: "SHOP_A", Kind: "success_rate", Severity: models.SeverityWarning, DedupeKey: "a", Title: channels.Text{EN: "Alpha alert", ZH: "Alpha 告警"}},
		{MerchantCode: "SHOP_B", Kind: "success_rate", Severity: models.SeverityCritical, DedupeKey: "b", Title: channels.Text{EN: "Bravo alert", ZH: "Bravo 告警"}},
	} {
		if _, _, err := store.RaiseAlert(in); err != nil {
			t.Fatal(err)
		}
	}
	today := recent.In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	for _, day := range []models.ReconDay{
		{MerchantCode: "SHOP_A", AccountID: wx.ID, Channel: "wechat", BizDate: today, Status: models.ReconOpen, Open: 1, RunAt: recent},
		{MerchantCode: "SHOP_B", AccountID: ali.ID, Channel: "alipay", BizDate: today, Status: models.ReconOpen, Open: 1, RunAt: recent},
	} {
		if err := store.DB.Create(&day).Error; err != nil {
			t.Fatal(err)
		}
	}
	models.MustCreateUser(t, store, "boss", "admin dashboard pass", models.RoleAdmin)
	models.MustCreateUser(t, store, "opa", "operator a password", models.RoleOperator, "SHOP_A")
	admin, opA = loggedIn(t, srv, "boss", "admin dashboard pass"), loggedIn(t, srv, "opa", "operator a password")
	admin.header.Set("Accept-Language", "en")
	opA.header.Set("Accept-Language", "en")
	return admin, opA, store
}

// bizDate is the Beijing business date days from now.
func bizDate(days int) string {
	return time.Now().AddDate(0, 0, days).In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
}

// dashboardData is the JSON the charts draw.
func dashboardData(body string) string {
	return regexp.MustCompile(`(?s)<script[^>]*id="dashboard-data"[^>]*>(.*?)</script>`).FindStringSubmatch(body + `<script id="dashboard-data"></script>`)[1]
}

func TestDashboardShowsOnlyTheScope(t *testing.T) {
	admin, opA, _ := dashboardServer(t)

	for path, gmv := range map[string]string{"/": "¥1,234.56", "/?range=30d": "¥1,234.56", "/?range=7d&merchant=SHOP_A": "¥1,234.56",
		"/?range=custom&from=" + bizDate(-300) + "&to=" + bizDate(0): "¥3,234.56"} {
		r := opA.get(path)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("operator GET %s: %d", path, r.StatusCode)
		}
		for _, theirs := range []string{"98,765.43", "9876543", "Bravo", "SHOP_B"} {
			if strings.Contains(r.Body, theirs) {
				t.Fatalf("operator of SHOP_A sees %q on %s", theirs, path)
			}
		}
		if !strings.Contains(r.Body, gmv) || !strings.Contains(r.Body, "Alpha alert") || !strings.Contains(dashboardData(r.Body), "123456") {
			t.Fatalf("operator of SHOP_A does not see SHOP_A's GMV and alert on %s", path)
		}
	}
	// The older payment counts only when the range reaches it.
	if r := opA.get("/?range=custom&from=" + bizDate(-200) + "&to=" + bizDate(-200)); !strings.Contains(r.Body, "¥2,000.00") || strings.Contains(r.Body, "¥1,234.56") {
		t.Fatal("a custom range does not sum its own dates")
	}

	// Asking for another merchant is a message, not its figures.
	r := opA.get("/?merchant=SHOP_B")
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "not a merchant you can see") ||
		strings.Contains(r.Body, "98,765.43") || strings.Contains(r.Body, "Bravo alert") {
		t.Fatalf("operator asking for SHOP_B: %d", r.StatusCode)
	}

	// The admin sees both, or one when picked.
	all := admin.get("/")
	if !strings.Contains(all.Body, "¥99,999.99") || !strings.Contains(all.Body, "Bravo alert") || !strings.Contains(all.Body, "Alpha alert") {
		t.Fatal("the admin's dashboard does not sum every merchant")
	}
	if !strings.Contains(all.Body, `<option value="SHOP_B"`) {
		t.Fatal("the admin has no merchant selector")
	}
	b := admin.get("/?merchant=SHOP_B&range=7d")
	if !strings.Contains(b.Body, "¥98,765.43") || strings.Contains(b.Body, "Alpha alert") || strings.Contains(b.Body, "¥1,234.56") {
		t.Fatal("the admin's dashboard of SHOP_B shows SHOP_A")
	}
	if !strings.Contains(b.Body, `href="/reconcile/days/`) {
		t.Fatal("the unbalanced day does not link to its reconciliation")
	}
}

func TestDashboardRefusesBadRanges(t *testing.T) {
	_, opA, _ := dashboardServer(t)
	for path, msg := range map[string]string{
		"/?range=1y":     "choose today, 7 days, 30 days, 90 days or a custom range",
		"/?range=custom": "enter a date as YYYY-MM-DD",
		"/?range=custom&from=2026-02-30&to=2026-03-01":   "enter a date as YYYY-MM-DD",
		"/?range=custom&from=2026-03-05&to=2026-03-01":   "the end date is before the start date",
		"/?range=custom&from=2020-01-01&to=2026-03-01":   "choose a range of at most 366 days",
		"/?range=custom&from=%3Cscript%3E&to=2026-03-01": "enter a date as YYYY-MM-DD",
		"/?range=7d&merchant=NO_SUCH_SHOP":               "not a merchant you can see",
	} {
		r := opA.get(path)
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, msg) {
			t.Errorf("GET %s: %d, want 422 saying %q", path, r.StatusCode, msg)
		}
		if strings.Contains(r.Body, "<script>") || strings.Contains(r.Body, `id="dashboard-data"`) {
			t.Errorf("GET %s: echoes raw input or draws charts for a bad range", path)
		}
	}
	opA.header.Set("Accept-Language", "zh-CN")
	if r := opA.get("/?range=1y"); !strings.Contains(r.Body, "请选择今天、7 天、30 天、90 天或自定义范围") {
		t.Error("the range message is not in Chinese")
	}
}

func TestDashboardEveryRangeRenders(t *testing.T) {
	admin, opA, _ := dashboardServer(t)
	for _, c := range []*client{admin, opA} {
		for _, rng := range []string{"", "today", "7d", "30d", "90d", "custom&from=" + bizDate(-100) + "&to=" + bizDate(-10)} {
			for _, lang := range []string{"en", "zh-CN"} {
				c.header.Set("Accept-Language", lang)
				r := c.get("/?range=" + rng)
				if r.StatusCode != http.StatusOK {
					t.Fatalf("range %q (%s): %d", rng, lang, r.StatusCode)
				}
				if rng != "" && !strings.Contains(r.Body, `aria-current="page" data-range="`+strings.SplitN(rng, "&", 2)[0]+`"`) {
					t.Errorf("range %q is not marked as the current one", rng)
				}
			}
		}
	}
	c := opA
	c.header.Set("Accept-Language", "en")
	// Today's payment shows in every range that reaches today.
	for _, rng := range []string{"today", "7d", "30d", "90d"} {
		if !strings.Contains(c.get("/?range="+rng).Body, "¥1,234.56") {
			t.Errorf("range %s lacks today's payment", rng)
		}
	}
}

func TestEChartsLoadsOnlyOnTheDashboard(t *testing.T) {
	admin, _, _ := dashboardServer(t)
	dash := admin.get("/").Body
	if !strings.Contains(dash, `src="/static/echarts.min.js?v=`) || !strings.Contains(dash, `src="/static/dashboard.js?v=`) {
		t.Fatal("the dashboard does not load ECharts and its chart script")
	}
	if !strings.Contains(dash, `data-chart="gmv"`) || !strings.Contains(dash, `type="application/json"`) {
		t.Fatal("the dashboard has no chart panels or no chart data")
	}
	// No inline script: each one has a src or is a JSON data block.
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(dash, -1) {
		if !strings.Contains(tag, ` src="`) && !strings.Contains(tag, `type="application/json"`) {
			t.Fatalf("inline script on the dashboard: %s", tag)
		}
	}
	for _, p := range []string{"/ledger", "/alerts", "/merchants", "/reconcile", "/account"} {
		if body := admin.get(p).Body; strings.Contains(body, "echarts") || strings.Contains(body, "/static/dashboard.js") {
			t.Errorf("%s loads the charts", p)
		}
	}
	for _, f := range []string{"/static/echarts.min.js", "/static/dashboard.js"} {
		r := admin.get(f)
		if r.StatusCode != http.StatusOK || len(r.Body) < 1000 {
			t.Errorf("GET %s: %d, %d bytes", f, r.StatusCode, len(r.Body))
		}
	}
	// Without figures in range there is nothing to draw, so nothing is loaded.
	if empty := admin.get("/?range=custom&from=2020-01-01&to=2020-01-07").Body; strings.Contains(empty, "echarts") || !strings.Contains(empty, "No payments or refunds in this range yet") {
		t.Error("an empty range loads the charts or lacks its empty state")
	}
}
