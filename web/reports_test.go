package web_test

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"payfuse/channels"
	"payfuse/models"
	"payfuse/views"
)

// reportsWorld is the ledger world with business-day 2026-03-05 (Beijing)
// payments at both merchants' WeChat accounts, SHOP_SH's day reconciled
// (before any statement: no_statement), an
// admin and a finance user of both merchants.
func reportsWorld(t *testing.T) *ledgerWorld {
	t.Helper()
	w := newLedgerWorld(t)
	bj := time.FixedZone("CST", 8*3600)
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, bj)
	rec := func(kind, ref, method string, amount, fee int64) channels.Record {
		r := channels.Record{Channel: "wechat", Kind: kind, ChannelRef: ref, Method: method, Status: channels.StatusSucceeded,
			Amount: amount, Fee: fee, FeeKnown: true, Currency: "CNY", CreatedAt: at}
		if kind == channels.KindRefund {
			r.RefundedAt, r.PaymentRef, r.RefundNo = at.Add(time.Hour), "WX1", "RF"+ref
		} else {
			r.PaidAt, r.MerchantOrderNo = at, "O"+ref
		}
		return r
	}
	setup := models.Actor{Name: "setup"}
	if _, err := w.store.Ingest(setup, w.acctSH.ID, models.SourceNotification, []channels.Record{
		rec(channels.KindPayment, "WX1", "scan", 12345, 74),
		rec(channels.KindPayment, "WX2", "quick", 100000, 600),
		rec(channels.KindRefund, "WXR1", "scan", 2345, 14),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Ingest(setup, w.acctBJ.ID, models.SourceNotification, []channels.Record{
		rec(channels.KindPayment, "BJ1", "scan", 77700, 0),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Reconcile(setup, models.Scope{All: true}, w.acctSH.ID, "2026-03-05"); err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, w.store, "boss", "admin password 1", models.RoleAdmin)
	models.MustCreateUser(t, w.store, "finall", "finance all pass", models.RoleFinance, "SHOP_SH", "SHOP_BJ")
	return w
}

func TestReportsPage(t *testing.T) {
	w := reportsWorld(t)
	users := map[string]*client{
		"finsh":  w.english(t, "finsh", "finance sh pass"),
		"finall": w.english(t, "finall", "finance all pass"),
		"boss":   w.english(t, "boss", "admin password 1"),
		"opsh":   w.english(t, "opsh", "operator sh pass"),
	}
	const day = "/reports?period=daily&date=2026-03-05"
	for _, sc := range []struct {
		name, user, url string
		status          int
		want, not       []string
	}{
		{"finance sees its merchant", "finsh", day, http.StatusOK,
			[]string{"Daily settlement report", "SH WeChat", `id="report-table"`, "¥1,123.45", "¥1,093.40", `data-recon="no_statement"`, `data-report-total`},
			[]string{"BJ WeChat", `id="report-merchant"`}},
		{"drill-down keeps the filters", "finsh", day, http.StatusOK,
			[]string{`data-href="/ledger?channel=wechat&amp;from=2026-03-05&amp;merchant=SHOP_SH&amp;to=2026-03-05"`}, nil},
		{"print hides the frame and the form", "finsh", day, http.StatusOK,
			[]string{"print:[:root:has(&amp;)_.sidebar]:hidden", `<div class="print:hidden">`}, nil},
		{"export links carry the filters", "finsh", day, http.StatusOK,
			[]string{`href="/reports/export?date=2026-03-05&amp;format=csv&amp;merchant=SHOP_SH&amp;period=daily"`}, nil},
		{"by method", "finsh", day + "&by_method=1", http.StatusOK,
			[]string{"Scan code", "Quick pay", `data-href="/ledger?channel=wechat&amp;from=2026-03-05&amp;merchant=SHOP_SH&amp;method=quick&amp;to=2026-03-05"`}, nil},
		{"monthly shows each day", "finsh", "/reports?period=monthly&month=2026-03", http.StatusOK,
			[]string{"Monthly settlement report", `id="report-days"`, `data-date="2026-03-05" data-status="no_statement"`, "· 2026-03<"}, nil},
		{"finance of several: all merchants", "finall", day + "&merchant=all", http.StatusOK,
			[]string{"SH WeChat", "BJ WeChat", `id="report-merchant"`, "¥1,900.45"}, nil},
		{"admin: one merchant", "boss", day + "&merchant=SHOP_BJ", http.StatusOK,
			[]string{"BJ WeChat", `data-recon="not_run"`}, []string{"SH WeChat"}},
		{"another merchant is not found", "finsh", day + "&merchant=SHOP_BJ", http.StatusNotFound, nil, nil},
		{"bad date", "finsh", "/reports?period=daily&date=2026-02-30", http.StatusUnprocessableEntity,
			[]string{"Give the business date as YYYY-MM-DD."}, []string{`id="report-table"`}},
		{"bad month", "finsh", "/reports?period=monthly&month=2026-3", http.StatusUnprocessableEntity,
			[]string{"Give the month as YYYY-MM."}, nil},
		{"empty day", "finsh", "/reports?period=daily&date=2026-03-04", http.StatusOK,
			[]string{"No payments, refunds or reconciliations"}, nil},
		{"default: yesterday's daily report", "finsh", "/reports", http.StatusOK, []string{`id="report-date"`}, nil},
		{"operators are refused", "opsh", day, http.StatusForbidden, nil, nil},
		{"operators cannot export", "opsh", "/reports/export?period=daily&date=2026-03-05", http.StatusForbidden, nil, nil},
		{"another merchant's export is not found", "finsh", "/reports/export?merchant=SHOP_BJ&period=daily&date=2026-03-05", http.StatusNotFound, nil, nil},
		{"unknown export format", "finsh", "/reports/export?period=daily&date=2026-03-05&format=pdf", http.StatusBadRequest, nil, nil},
	} {
		t.Run(sc.name, func(t *testing.T) {
			r := users[sc.user].get(sc.url)
			if r.StatusCode != sc.status {
				t.Fatalf("%s: status %d, want %d: %s", sc.url, r.StatusCode, sc.status, clip(r.Body))
			}
			for _, s := range sc.want {
				if !strings.Contains(r.Body, s) {
					t.Errorf("%s lacks %q", sc.url, s)
				}
			}
			for _, s := range sc.not {
				if strings.Contains(r.Body, s) {
					t.Errorf("%s shows %q", sc.url, s)
				}
			}
		})
	}

	// In Chinese.
	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("finsh", "finance sh pass")
	if r := zh.get(day); !strings.Contains(r.Body, "结算日报") || !strings.Contains(r.Body, "尚无账单") {
		t.Errorf("the Chinese page: %s", clip(r.Body))
	}
}

func TestReportsExport(t *testing.T) {
	w := reportsWorld(t)
	fin := w.english(t, "finall", "finance all pass")

	r := fin.get("/reports/export?period=daily&date=2026-03-05&merchant=all&format=csv")
	if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.Header.Get("Content-Disposition"), `filename="report-daily-all-2026-03-05.csv"`) {
		t.Fatalf("csv: %d %v", r.StatusCode, r.Header)
	}
	if !strings.HasPrefix(r.Body, "\uFEFF") {
		t.Fatal("the CSV has no BOM")
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(r.Body, "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(recs))
	for i, rec := range recs {
		got[i] = strings.Join(rec, ",")
	}
	want := []string{
		"merchant,channel,account,date,payments,payment_amount,refunds,refund_amount,fees,net,reconciliation",
		"SHOP_BJ,wechat,BJ WeChat,2026-03-05,1,777.00,0,0.00,0.00,777.00,not_run",
		"SHOP_SH,wechat,SH WeChat,2026-03-05,2,1123.45,1,23.45,6.60,1093.40,no_statement",
		"total,,,2026-03-05,3,1900.45,1,23.45,6.60,1870.40,partial",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("csv:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r = fin.get("/reports/export?period=monthly&month=2026-03&merchant=SHOP_SH&by_method=1&format=xlsx")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), "spreadsheetml") {
		t.Fatalf("xlsx: %d %v", r.StatusCode, r.Header)
	}
	x, err := excelize.OpenReader(bytes.NewReader([]byte(r.Body)))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	panes, err := x.GetPanes(models.ReportSheet)
	if err != nil || !panes.Freeze || panes.YSplit != 1 || panes.TopLeftCell != "A2" {
		t.Errorf("the header is not frozen: %+v %v", panes, err)
	}
	rows, _ := x.GetRows(models.ReportSheet)
	if len(rows) != 4 || strings.Join(rows[0], ",") != "merchant,channel,account,method,date,payments,payment_amount,refunds,refund_amount,fees,net,reconciliation" ||
		rows[3][0] != "total" || rows[3][6] != "1,123.45" {
		t.Errorf("xlsx rows %q", rows)
	}
	style, _ := x.GetCellStyle(models.ReportSheet, "G2")
	if st, err := x.GetStyle(style); err != nil || st.NumFmt != 4 {
		t.Errorf("amount format %+v %v", st, err)
	}
}

// TestReportsCatalog: the words built at run time exist in both languages.
func TestReportsCatalog(t *testing.T) {
	for _, lang := range views.Languages {
		cat := views.Catalog(lang)
		for _, st := range models.ReportReconStatuses {
			for _, k := range []string{"reports.recon." + st, "reports.recon_help." + st} {
				if cat[k] == "" {
					t.Errorf("%s lacks %q", lang, k)
				}
			}
		}
	}
}
