package web_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

// TestBrowserLedger drives the statement-to-ledger path in Chromium: upload
// a WeChat Pay bill on the import page and watch its result, find one of its
// payments with the ledger's search box (the table updates in place and the
// filter lands in the address bar), open the record, and export what the
// filter selects as CSV.
func TestBrowserLedger(t *testing.T) {
	if os.Getenv("PAYFUSE_E2E") != "1" {
		t.Skip("browser test: set PAYFUSE_E2E=1 (needs Debian's chromium at /usr/bin/chromium)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("PAYFUSE_E2E=1 but Chromium is not usable at %s: %v", chromiumPath, err)
	}
	bill, err := filepath.Abs("../channels/wechat/testdata/all.csv")
	if err != nil {
		t.Fatal(err)
	}
	var accountID string
	base := startServer(t, func(store *models.Store) {
		setup := models.Actor{Name: "setup"}
		m, err := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "上海旗舰店"})
		if err != nil {
			t.Fatal(err)
		}
		values := testkeys.Credentials("wechat", time.Now())
		values["mch_id"] = []byte(testBillMchID)
		acct, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: m.ID, Channel: "wechat", DisplayName: "SH WeChat",
			Methods: []string{"scan", "quick", "h5", "app"}, Enabled: true, Values: values})
		if err != nil {
			t.Fatal(err)
		}
		accountID = id(acct.ID)
	})
	b := newBrowser(t, base)
	b.navigate("open /", "/", 200)
	b.login("admin", "correct horse battery", "/")

	// Upload the bill; the page goes to the import's result by itself.
	b.navigate("open the import page", "/imports", 200)
	b.wait("import form", `#f-file`)
	b.do("choose the account and the file",
		chromedp.SetValue(chromedp.CSS(`#f-account`), accountID),
		chromedp.SetUploadFiles(chromedp.CSS(`#f-file`), []string{bill}),
	)
	b.shot("40-import-form")
	b.do("upload", chromedp.Click(chromedp.CSS(`form[data-upload-progress] button[type="submit"]`)))
	result := regexp.MustCompile(`^/imports/[0-9]+$`)
	deadline := time.Now().Add(30 * time.Second)
	for !result.MatchString(b.path()) {
		if time.Now().After(deadline) {
			b.failf("import result", "still at %s 30 s after the upload, want /imports/<id>", b.path())
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.wait("import result", `main`)
	page := b.text("import result", `main`)
	for _, want := range []string{"all.csv", "18"} {
		if !strings.Contains(page, want) {
			b.failf("import result", "the result page does not mention %q", want)
		}
	}
	b.shot("41-import-result")

	// The ledger lists the bill; the search box narrows it to one payment
	// without a page load, and the filter is in the address bar.
	b.navigate("open the ledger", "/ledger", 200)
	b.wait("ledger rows", `#ledger-table tr[data-ledger-row]`)
	if n := evaluate[int](b, "ledger rows", `document.querySelectorAll('#ledger-table tr[data-ledger-row]').length`); n < 10 {
		b.failf("ledger rows", "the ledger shows %d rows after importing the bill, want them all", n)
	}
	evaluate[bool](b, "mark the page", `window.__pfNoReload = true`)
	const ref = "4200002851202602280000000002"
	b.do("search for a payment",
		chromedp.SendKeys(chromedp.CSS(`#ledger-q`), ref+"\n"),
	)
	deadline = time.Now().Add(10 * time.Second)
	for evaluate[int](b, "search result", `document.querySelectorAll('#ledger-table tr[data-ledger-row]').length`) != 1 {
		if time.Now().After(deadline) {
			b.failf("search result", "the table did not narrow to the one payment")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := evaluate[string](b, "search result", `document.querySelector('#ledger-table tr[data-ledger-row]').dataset.ledgerRow`); got != ref {
		b.failf("search result", "found %s, want %s", got, ref)
	}
	if !evaluate[bool](b, "search result", `window.__pfNoReload === true`) {
		b.failf("search result", "the page reloaded; the table should update in place")
	}
	if loc := evaluate[string](b, "search result", `location.search`); !strings.Contains(loc, "q="+ref) {
		b.failf("search result", "the address bar reads %q; the filter should be in it", loc)
	}
	b.shot("42-ledger-search")

	// Export what the filter selects, with the session of the page.
	csv := evaluate[string](b, "export CSV", `(async () => {
		const a = [...document.querySelectorAll('#ledger-table a[href*="/ledger/export"]')].find(a => a.href.includes("format=csv"));
		if (!a) return "no export link";
		const r = await fetch(a.href);
		const buf = new Uint8Array(await r.arrayBuffer());
		const bom = buf[0] === 0xEF && buf[1] === 0xBB && buf[2] === 0xBF;
		return (bom ? "BOM" : "NOBOM") + "|" + r.headers.get("Content-Disposition") + "|" + new TextDecoder().decode(buf.slice(bom ? 3 : 0));
	})()`, chromedp.EvalAwaitPromise)
	parts := strings.SplitN(csv, "|", 3)
	if len(parts) != 3 || parts[0] != "BOM" || !strings.Contains(parts[1], "attachment") {
		b.failf("export CSV", "want an attachment starting with a UTF-8 BOM, got %q", clip(csv))
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(parts[2], "\r\n", "\n")), "\n")
	if len(lines) != 2 || lines[0] != "merchant,channel,kind,status,method,channel_txn_id,merchant_order_no,refund_no,amount,fee,currency,paid_at,biz_date,sources,conflict" ||
		!strings.HasPrefix(lines[1], "SHOP_SH,wechat,payment,succeeded,") || !strings.Contains(lines[1], ref) || !strings.Contains(lines[1], ",12.34,") {
		b.failf("export CSV", "want the header and the one payment, got %q", clip(parts[2]))
	}

	// Open the record: its fields and the statement that saw it.
	b.response("open the record", 200, chromedp.Click(chromedp.CSS(`#ledger-table tr[data-ledger-row] a[href^="/ledger/"]`)))
	if !regexp.MustCompile(`^/ledger/[0-9]+$`).MatchString(b.path()) {
		b.failf("open the record", "landed on %s, want /ledger/<id>", b.path())
	}
	b.wait("record", `main`)
	page = b.text("record", `main`)
	for _, want := range []string{ref, "PF20260228000002", "12.34", "Statement"} {
		if !strings.Contains(page, want) {
			b.failf("record", "the detail page does not show %q", want)
		}
	}
	b.shot("43-ledger-detail")
	b.noSidewaysScroll("record")
	b.checkConsole()
}
