package web_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/models"
)

// ledgerServer seeds SHOP_SH (WeChat Pay, n payments O-SH-000… and one
// refund) and SHOP_BJ (Alipay, 3 payments O-BJ-0…), and signs in an admin
// and an operator of SHOP_SH.
func ledgerServer(t *testing.T, n int) (admin, op *client) {
	t.Helper()
	srv, store := newServer(t)
	setup := models.Actor{Name: "setup"}
	sh, _ := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	bj, _ := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_BJ", Name: "Beijing"})
	wv := testkeys.Credentials("wechat", time.Now())
	wx, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: sh.ID, Channel: "wechat", Methods: []string{"scan"}, Enabled: true, Values: wv})
	if err != nil {
		t.Fatal(err)
	}
	av := testkeys.Credentials("alipay", time.Now())
	ali, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: bj.ID, Channel: "alipay", Enabled: true, Values: av})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var recs []channels.Record
	for i := range n {
		recs = append(recs, channels.Record{Channel: "wechat", Kind: channels.KindPayment, ChannelRef: fmt.Sprintf("42000%05d", i),
			MerchantOrderNo: fmt.Sprintf("O-SH-%03d", i), Method: "scan", Status: channels.StatusSucceeded, Amount: 1234 + int64(i),
			Currency: "CNY", AccountRef: string(wv["mch_id"]), CreatedAt: at.Add(time.Duration(i/2) * time.Minute), PaidAt: at.Add(time.Duration(i/2) * time.Minute)})
	}
	recs = append(recs, channels.Record{Channel: "wechat", Kind: channels.KindRefund, ChannelRef: "50300REF1", PaymentRef: "4200000000",
		RefundNo: "RF-SH-1", Method: "scan", Status: channels.StatusSucceeded, Amount: 500, Currency: "CNY", AccountRef: string(wv["mch_id"]), RefundedAt: at.Add(48 * time.Hour)})
	if _, err := store.Ingest(setup, wx.ID, models.SourceNotification, recs); err != nil {
		t.Fatal(err)
	}
	var arecs []channels.Record
	for i := range 3 {
		arecs = append(arecs, channels.Record{Channel: "alipay", Kind: channels.KindPayment, ChannelRef: fmt.Sprintf("2026BJ%d", i), MerchantOrderNo: fmt.Sprintf("O-BJ-%d", i),
			Method: "quick", Status: channels.StatusSucceeded, Amount: 9900, Currency: "CNY", AccountRef: string(av["pid"]), CreatedAt: at, PaidAt: at})
	}
	if _, err := store.Ingest(setup, ali.ID, models.SourceNotification, arecs); err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, store, "boss", "admin ledger pass", models.RoleAdmin)
	models.MustCreateUser(t, store, "opsh", "operator sh pass", models.RoleOperator, "SHOP_SH")
	return loggedIn(t, srv, "boss", "admin ledger pass"), loggedIn(t, srv, "opsh", "operator sh pass")
}

var nextRE = regexp.MustCompile(`href="(/ledger\?[^"]*after=[^"]+)"`)

func ledgerRows(body string) []string {
	return regexp.MustCompile(`data-ledger-row="([^"]+)"`).FindAllString(body, -1)
}

func TestLedgerPageFiltersPagesAndScope(t *testing.T) {
	admin, op := ledgerServer(t, 60)
	r := admin.get("/ledger")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "<html") || !strings.Contains(r.Body, `hx-get="/ledger"`) {
		t.Fatalf("full page: %d", r.StatusCode)
	}
	if len(ledgerRows(r.Body)) != models.LedgerPageSize || !strings.Contains(r.Body, "64 ") {
		t.Fatalf("first page shows %d rows; count missing", len(ledgerRows(r.Body)))
	}
	// Walk the pages with the Older link: every row once (two share each paid time).
	seen := map[string]bool{}
	for page, body := 0, r.Body; ; page++ {
		for _, row := range ledgerRows(body) {
			if seen[row] {
				t.Fatalf("%s on two pages", row)
			}
			seen[row] = true
		}
		m := nextRE.FindStringSubmatch(body)
		if m == nil || page > 5 {
			break
		}
		body = admin.get(strings.ReplaceAll(m[1], "&amp;", "&")).Body
	}
	if len(seen) != 64 {
		t.Fatalf("pages show %d rows, want 64", len(seen))
	}

	// htmx asks for the table only.
	frag := admin.do("GET", "/ledger?channel=alipay", nil, "HX-Request", "true")
	if frag.StatusCode != http.StatusOK || strings.Contains(frag.Body, "<html") || len(ledgerRows(frag.Body)) != 3 {
		t.Fatalf("fragment: %d, %d rows, html=%v", frag.StatusCode, len(ledgerRows(frag.Body)), strings.Contains(frag.Body, "<html"))
	}
	if !strings.Contains(frag.Body, "/ledger/export?channel=alipay&amp;format=csv") {
		t.Error("the export link does not carry the filters")
	}
	// Search by order no, refund no, channel transaction id.
	for q, want := range map[string]string{"O-SH-007": "4200000007", "RF-SH-1": "50300REF1", "2026BJ1": "2026BJ1"} {
		rows := ledgerRows(admin.get("/ledger?q=" + q).Body)
		if len(rows) != 1 || !strings.Contains(rows[0], want) {
			t.Errorf("search %s: %v", q, rows)
		}
	}
	if rows := ledgerRows(admin.get("/ledger?kind=refund").Body); len(rows) != 1 {
		t.Errorf("refunds: %v", rows)
	}
	if b := admin.get("/ledger?kind=refund").Body; !strings.Contains(b, "−¥5.00") {
		t.Error("a refund's amount is not shown distinctly")
	}
	// Bad input: a message, no rows.
	bad := admin.get("/ledger?min=abc&to=2026-02-31")
	if bad.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(bad.Body, `role="alert"`) || len(ledgerRows(bad.Body)) != 0 {
		t.Errorf("bad filter: %d", bad.StatusCode)
	}
	// The operator of SHOP_SH never sees SHOP_BJ.
	for _, p := range []string{"/ledger", "/ledger?merchant=SHOP_BJ", "/ledger?q=O-BJ-1", "/ledger?channel=alipay"} {
		b := op.get(p).Body // (the search box echoes its own text; rows and ids must not appear)
		if strings.Contains(b, "2026BJ") || strings.Contains(b, "O-BJ-0") || strings.Contains(b, "O-BJ-2") {
			t.Errorf("operator sees SHOP_BJ at %s", p)
		}
	}
	if rows := ledgerRows(op.get("/ledger?merchant=SHOP_BJ").Body); len(rows) != 0 {
		t.Errorf("operator: merchant=SHOP_BJ shows %d rows", len(rows))
	}
	if b := op.get("/ledger").Body; strings.Contains(b, `value="SHOP_BJ"`) {
		t.Error("the operator's merchant filter offers SHOP_BJ")
	}
}

func TestLedgerExportStreamsEverything(t *testing.T) {
	admin, op := ledgerServer(t, 120) // more rows than a page
	r := admin.get("/ledger/export?channel=wechat&format=csv")
	if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") ||
		!regexp.MustCompile(`attachment; filename="ledger-\d{8}-\d{6}\.csv"`).MatchString(r.Header.Get("Content-Disposition")) {
		t.Fatalf("csv: %d %v", r.StatusCode, r.Header)
	}
	if !strings.HasPrefix(r.Body, "\uFEFFmerchant,channel,kind,status,method,channel_txn_id,merchant_order_no,refund_no,amount,fee,currency,paid_at,biz_date,sources,conflict\r\n") {
		t.Fatalf("csv header: %q", r.Body[:min(200, len(r.Body))])
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(r.Body, "\uFEFF"))).ReadAll()
	if err != nil || len(recs) != 122 {
		t.Fatalf("csv: %d records (%v), want 121 rows and the header", len(recs), err)
	}
	var sawRefund bool
	for _, rec := range recs[1:] {
		if rec[5] == "4200000000" && rec[8] != "12.34" {
			t.Errorf("amount %q, want 12.34", rec[8])
		}
		if rec[2] == "refund" {
			sawRefund = rec[8] == "5.00" && rec[7] == "RF-SH-1"
		}
	}
	if !sawRefund {
		t.Error("the refund is missing or its amount is not a positive 5.00")
	}
	x := admin.get("/ledger/export?format=xlsx&merchant=SHOP_BJ")
	if x.StatusCode != http.StatusOK {
		t.Fatalf("xlsx: %d", x.StatusCode)
	}
	f, err := excelize.OpenReader(bytes.NewReader([]byte(x.Body)))
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := f.GetRows("Sheet1")
	if len(rows) != 4 || rows[0][0] != "merchant" || rows[1][0] != "SHOP_BJ" {
		t.Fatalf("xlsx rows: %v", rows)
	}
	// Scope holds in exports too.
	o := op.get("/ledger/export?format=csv")
	if strings.Contains(o.Body, "SHOP_BJ") || strings.Count(o.Body, "\n") != 122 {
		t.Errorf("operator export: %d lines, SHOP_BJ present=%v", strings.Count(o.Body, "\n"), strings.Contains(o.Body, "SHOP_BJ"))
	}
	if b := op.get("/ledger/export?format=csv&merchant=SHOP_BJ").Body; strings.Count(b, "\n") != 1 {
		t.Errorf("operator export of SHOP_BJ has rows: %q", b)
	}
}
