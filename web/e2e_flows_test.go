package web_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"payfuse/channels/wechat"
	"payfuse/models"
	"payfuse/web"
)

// TestBrowserFlowReconciliation: an admin creates a bill-sync flow pointed
// at a fake WeChat Pay, runs it now, watches the run succeed, opens the
// reconciled day and resolves a discrepancy.
func TestBrowserFlowReconciliation(t *testing.T) {
	if os.Getenv("PAYFUSE_E2E") != "1" {
		t.Skip("browser test: set PAYFUSE_E2E=1 (needs Debian's chromium at /usr/bin/chromium)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("PAYFUSE_E2E=1 but Chromium is not usable at %s: %v", chromiumPath, err)
	}
	fake := wechat.NewFakeChannel()
	defer fake.Close()
	bill, err := os.ReadFile("../channels/wechat/testdata/all.csv")
	if err != nil {
		t.Fatal(err)
	}
	fake.AddBill("2026-02-28", "ALL", []byte(strings.ReplaceAll(string(bill), testBillMchID, fake.MchID)))
	var accountID string
	base := startServerWith(t, func(c *web.Config) { c.Flows.WeChatBaseURL = fake.URL }, func(store *models.Store) {
		setup := models.Actor{Name: "setup"}
		m, err := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "上海旗舰店"})
		if err != nil {
			t.Fatal(err)
		}
		acct, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: m.ID, Channel: "wechat", DisplayName: "SH WeChat",
			Methods: []string{"scan", "quick", "h5", "app"}, Enabled: true, Values: fake.Credentials()})
		if err != nil {
			t.Fatal(err)
		}
		accountID = id(acct.ID)
	})
	b := newBrowser(t, base)
	b.navigate("open /", "/", 200)
	b.login("admin", "correct horse battery", "/")

	// Create the flow: a backfill of the bill of 28 February.
	b.navigate("new flow", "/flows/new", 200)
	b.wait("flow form", `#f-name`)
	b.do("fill the flow form",
		chromedp.SetValue(chromedp.CSS(`#f-name`), "sh-wechat-backfill"),
		chromedp.SetValue(chromedp.CSS(`#f-kind`), models.FlowBillSync),
	)
	// Choosing the kind fills its default settings in place (htmx); wait
	// for them before writing our own, or the swap would overwrite them.
	deadline := time.Now().Add(10 * time.Second)
	// Read through the DOM each time: the swap replaces the node being read.
	for !strings.Contains(evaluate[string](b, "kind defaults", `(document.querySelector('#f-params') || {}).value || ""`), "lag_days") {
		if time.Now().After(deadline) {
			b.failf("kind defaults", "the bill-sync defaults did not appear in the settings")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.do("fill in the rest",
		chromedp.SetValue(chromedp.CSS(`#f-merchant`), "SHOP_SH"),
		chromedp.SetValue(chromedp.CSS(`#f-account`), accountID),
		chromedp.SetValue(chromedp.CSS(`#f-schedule`), "0 10 * * *"),
		chromedp.SetValue(chromedp.CSS(`#f-params`), `{"date":"2026-02-28"}`),
	)
	b.shot("60-flow-form")
	b.submit("create the flow", `form[action="/flows"] button[type="submit"]`, 200)
	if !regexp.MustCompile(`^/flows/[0-9]+$`).MatchString(b.path()) {
		b.failf("create the flow", "landed on %s, want /flows/<id>", b.path())
	}
	flowPath := b.path()

	// Run it now; the run page follows it to the end by itself.
	b.submit("run now", `form[action="`+flowPath+`/run"] button[type="submit"]`, 200)
	if !regexp.MustCompile(`^/flows/runs/[0-9]+$`).MatchString(b.path()) {
		b.failf("run now", "landed on %s, want /flows/runs/<id>", b.path())
	}
	deadline = time.Now().Add(30 * time.Second)
	for evaluate[string](b, "run status", `(document.querySelector('#run-panel')||{}).dataset?.status || ""`) != models.RunSucceeded {
		if time.Now().After(deadline) {
			b.failf("run status", "the run has not succeeded 30 s after it started")
		}
		time.Sleep(300 * time.Millisecond)
	}
	page := b.text("run page", `main`)
	for _, want := range []string{"18 new", "reconciled"} {
		if !strings.Contains(page, want) {
			b.failf("run page", "the run page does not show %q", want)
		}
	}
	b.shot("61-flow-run")

	// The reconciled day is on the calendar; open it and one discrepancy.
	b.navigate("calendar", "/reconcile?account="+accountID+"&month=2026-02", 200)
	b.wait("calendar day", `a[data-date="2026-02-28"]`)
	b.shot("62-recon-calendar")
	b.response("open the day", 200, chromedp.Click(chromedp.CSS(`a[data-date="2026-02-28"]`)))
	b.wait("discrepancies", `#recon-items tr[data-bucket]`)
	b.shot("63-recon-day")
	b.response("open a discrepancy", 200, chromedp.Click(chromedp.CSS(`#recon-items tr[data-bucket] a[href^="/reconcile/items/"]`)))
	b.wait("resolve form", `#f-resolution`)
	b.do("resolve it",
		chromedp.SetValue(chromedp.CSS(`#f-resolution`), "channel_corrected"),
		chromedp.SendKeys(chromedp.CSS(`#f-note`), "Confirmed with WeChat Pay support."),
	)
	b.shot("64-recon-item")
	b.submit("resolve", `form[action$="/resolve"] button[type="submit"]`, 200)
	if flash := b.flash("resolved"); !strings.Contains(flash, "resolved") {
		b.failf("resolved", "want a message that the discrepancy is resolved, got %q", flash)
	}
	b.wait("resolved list", `#recon-buckets`)
}
