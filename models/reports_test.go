package models

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"payfuse/channels"
)

// reportRec builds a record of any channel for the report fixtures.
func reportRec(channel, kind, ref, accountRef, method, status string, amount, fee int64, at time.Time) channels.Record {
	r := channels.Record{Channel: channel, Kind: kind, ChannelRef: ref, MerchantOrderNo: "O" + ref, Method: method, Status: status,
		Amount: amount, Fee: fee, FeeKnown: true, Currency: "CNY", AccountRef: accountRef, CreatedAt: at}
	if kind == channels.KindRefund {
		r.RefundedAt, r.RefundNo, r.MerchantOrderNo = at, "R"+ref, ""
	} else if status == channels.StatusSucceeded {
		r.PaidAt = at
	}
	return r
}

// reportWorld is SHOP_SH with a WeChat and an Alipay account and SHOP_BJ
// with a WeChat account.
type reportWorld struct {
	s              *Store
	wx, ali, bjAcc *ChannelAccount
	wxRef, aliRef  string
	bjRef          string
}

func newReportWorld(t *testing.T) *reportWorld {
	t.Helper()
	s, _ := vaultStore(t)
	sh := mustMerchant(t, s, "SHOP_SH")
	bj := mustMerchant(t, s, "SHOP_BJ")
	w := &reportWorld{s: s}
	var v map[string][]byte
	w.wx, v = mustAccount(t, s, sh, "wechat")
	w.wxRef = string(v["mch_id"])
	w.ali, v = mustAccount(t, s, sh, "alipay")
	w.aliRef = string(v["pid"])
	w.bjAcc, v = mustAccount(t, s, bj, "wechat")
	w.bjRef = string(v["mch_id"])
	return w
}

func mustIngest(t *testing.T, s *Store, acct *ChannelAccount, source string, recs ...channels.Record) {
	t.Helper()
	if _, err := s.Ingest(web, acct.ID, source, recs); err != nil {
		t.Fatal(err)
	}
}

func mustStatement(t *testing.T, s *Store, acct *ChannelAccount, name string, recs ...channels.Record) {
	t.Helper()
	if res, err := s.ImportStatement(web, acct.ID, statement(name, recs...)); err != nil || res.Refused {
		t.Fatalf("statement %s: %+v %v", name, res, err)
	}
}

// handWorld is the hand-computed fixture (Beijing business dates):
//
//	SHOP_SH WeChat 03-05: P1 100.00 fee 0.60 scan, P2 50.00 fee 0.30 quick,
//	    P3 20.00 failed, R1 (of P1) 30.00 fee 0.18 scan — statement only
//	    (reconciled: every record only in the statement → open)
//	SHOP_SH WeChat 03-10: P9 10.00 fee 0.06 scan (not reconciled)
//	SHOP_SH Alipay 03-05: A1 200.00 fee 1.20 h5 — notified and in the
//	    statement (reconciled: balanced)
//	SHOP_SH Alipay 03-06 (00:30 Beijing, 16:30 UTC the day before): A2 10.00 h5
//	SHOP_BJ WeChat 03-05: B1 999.00
func handWorld(t *testing.T) *reportWorld {
	w := newReportWorld(t)
	s := w.s
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, bj)
	wx := []channels.Record{
		reportRec("wechat", channels.KindPayment, "P1", w.wxRef, "scan", channels.StatusSucceeded, 10000, 60, at),
		reportRec("wechat", channels.KindPayment, "P2", w.wxRef, "quick", channels.StatusSucceeded, 5000, 30, at),
		reportRec("wechat", channels.KindPayment, "P3", w.wxRef, "scan", channels.StatusFailed, 2000, 0, at),
	}
	r1 := reportRec("wechat", channels.KindRefund, "R1", w.wxRef, "scan", channels.StatusSucceeded, 3000, 18, at.Add(time.Hour))
	r1.PaymentRef = "P1"
	wx = append(wx, r1)
	mustStatement(t, s, w.wx, "wx-0305.csv", wx...)
	mustIngest(t, s, w.wx, SourceNotification,
		reportRec("wechat", channels.KindPayment, "P9", w.wxRef, "scan", channels.StatusSucceeded, 1000, 6, time.Date(2026, 3, 10, 9, 0, 0, 0, bj)))
	a1 := reportRec("alipay", channels.KindPayment, "A1", w.aliRef, "h5", channels.StatusSucceeded, 20000, 120, at)
	mustIngest(t, s, w.ali, SourceNotification, a1)
	mustStatement(t, s, w.ali, "ali-0305.csv", a1)
	mustIngest(t, s, w.ali, SourceNotification,
		reportRec("alipay", channels.KindPayment, "A2", w.aliRef, "h5", channels.StatusSucceeded, 1000, 6, time.Date(2026, 3, 5, 16, 30, 0, 0, time.UTC)))
	mustIngest(t, s, w.bjAcc, SourceNotification,
		reportRec("wechat", channels.KindPayment, "B1", w.bjRef, "scan", channels.StatusSucceeded, 99900, 0, at))
	all := Scope{All: true}
	if d, err := s.Reconcile(web, all, w.wx.ID, "2026-03-05"); err != nil || d.Status != ReconOpen {
		t.Fatalf("reconcile wechat: %+v %v", d, err)
	}
	if d, err := s.Reconcile(web, all, w.ali.ID, "2026-03-05"); err != nil || d.Status != ReconBalanced {
		t.Fatalf("reconcile alipay: %+v %v", d, err)
	}
	return w
}

func wantFigures(t *testing.T, what string, got ReportFigures, payments int64, amount int64, refunds int64, refundAmount, fees int64) {
	t.Helper()
	want := ReportFigures{payments, amount, refunds, refundAmount, fees}
	if got != want {
		t.Errorf("%s: figures %+v, want %+v", what, got, want)
	}
}

// TestReports runs the report cases on one world (its accounts' keys are
// slow to make): the hand-computed ones first, then the random ones, which
// add records of other dates.
func TestReports(t *testing.T) {
	w := handWorld(t)
	t.Run("daily", func(t *testing.T) { reportDaily(t, w) })
	t.Run("monthly", func(t *testing.T) { reportMonthly(t, w) })
	t.Run("csv_xlsx", func(t *testing.T) { reportFiles(t, w) })
	t.Run("empty_statement_day", func(t *testing.T) { reportEmptyStatementDay(t, w) })
	t.Run("totals_equal_ledger_export", func(t *testing.T) { reportTotalsEqualLedgerExport(t, w) })
}

func reportDaily(t *testing.T, w *reportWorld) {
	rep, err := w.s.Report(Scope{Merchants: []string{"SHOP_SH"}}, ReportFilter{Merchant: "shop_sh", Period: ReportDaily, Date: "2026-03-05"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("rows %+v", rep.Rows)
	}
	ali, wx := rep.Rows[0], rep.Rows[1] // alipay sorts before wechat
	if ali.Channel != "alipay" || wx.Channel != "wechat" || wx.MerchantCode != "SHOP_SH" || wx.Date != "2026-03-05" {
		t.Fatalf("rows %+v", rep.Rows)
	}
	wantFigures(t, "wechat", wx.ReportFigures, 2, 15000, 1, 3000, 90-18)
	wantFigures(t, "alipay", ali.ReportFigures, 1, 20000, 0, 0, 120)
	wantFigures(t, "total", rep.Total.ReportFigures, 3, 35000, 1, 3000, 192)
	if wx.Net() != 11928 || rep.Total.Net() != 31808 {
		t.Errorf("net %d, total net %d", wx.Net(), rep.Total.Net())
	}
	if wx.Reconciliation != ReconOpen || ali.Reconciliation != ReconBalanced || rep.Total.Reconciliation != ReconOpen {
		t.Errorf("reconciliation %q %q total %q", wx.Reconciliation, ali.Reconciliation, rep.Total.Reconciliation)
	}
	if wx.Account == "" || wx.AccountID != w.wx.ID {
		t.Errorf("account %q %d", wx.Account, wx.AccountID)
	}
	if v := wx.LedgerFilter().Values().Encode(); v != "channel=wechat&from=2026-03-05&merchant=SHOP_SH&to=2026-03-05" {
		t.Errorf("drill-down %s", v)
	}

	// By method: WeChat splits into scan (P1 and its refund) and quick.
	rep, err = w.s.Report(Scope{All: true}, ReportFilter{Merchant: "SHOP_SH", Period: ReportDaily, Date: "2026-03-05", ByMethod: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Rows {
		got = append(got, r.Channel+"/"+r.Method)
	}
	if strings.Join(got, " ") != "alipay/h5 wechat/scan wechat/quick" {
		t.Fatalf("by method rows %v", got)
	}
	wantFigures(t, "wechat scan", rep.Rows[1].ReportFigures, 1, 10000, 1, 3000, 60-18)
	wantFigures(t, "wechat quick", rep.Rows[2].ReportFigures, 1, 5000, 0, 0, 30)
	wantFigures(t, "by-method total", rep.Total.ReportFigures, 3, 35000, 1, 3000, 192)
	if rep.Rows[1].Reconciliation != ReconOpen || rep.Rows[1].LedgerFilter().Method != "scan" {
		t.Errorf("by-method row %+v", rep.Rows[1])
	}

	// The next day (Beijing) holds A2, not reconciled.
	rep, _ = w.s.Report(Scope{All: true}, ReportFilter{Merchant: "SHOP_SH", Period: ReportDaily, Date: "2026-03-06"})
	if len(rep.Rows) != 1 || rep.Rows[0].Payments != 1 || rep.Rows[0].Reconciliation != ReportNotRun || rep.Total.Reconciliation != ReportNotRun {
		t.Errorf("03-06: %+v", rep.Rows)
	}

	// All merchants in scope; a scope of one sees only its own.
	rep, _ = w.s.Report(Scope{All: true}, ReportFilter{Period: ReportDaily, Date: "2026-03-05"})
	if len(rep.Rows) != 3 || rep.Rows[0].MerchantCode != "SHOP_BJ" || rep.Total.PaymentAmount != 35000+99900 {
		t.Errorf("all merchants: %+v", rep.Rows)
	}
	rep, _ = w.s.Report(Scope{Merchants: []string{"SHOP_SH"}}, ReportFilter{Period: ReportDaily, Date: "2026-03-05"})
	if len(rep.Rows) != 2 || rep.Total.PaymentAmount != 35000 {
		t.Errorf("SHOP_SH's scope: %+v", rep.Rows)
	}
	if rep, _ := w.s.Report(Scope{}, ReportFilter{Period: ReportDaily, Date: "2026-03-05"}); len(rep.Rows) != 0 || rep.Total.Payments != 0 {
		t.Errorf("empty scope: %+v", rep.Rows)
	}
	// Another merchant, or an unknown one, is not found.
	for _, m := range []string{"SHOP_BJ", "NOPE"} {
		if _, err := w.s.Report(Scope{Merchants: []string{"SHOP_SH"}}, ReportFilter{Merchant: m, Period: ReportDaily, Date: "2026-03-05"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("merchant %s: %v", m, err)
		}
	}
}

func reportMonthly(t *testing.T, w *reportWorld) {
	rep, err := w.s.Report(Scope{All: true}, ReportFilter{Merchant: "SHOP_SH", Period: ReportMonthly, Date: "2026-03"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "2026-03-01" || rep.To != "2026-03-31" || len(rep.Rows) != 2 {
		t.Fatalf("%s..%s %+v", rep.From, rep.To, rep.Rows)
	}
	ali, wx := rep.Rows[0], rep.Rows[1]
	wantFigures(t, "wechat", wx.ReportFigures, 3, 16000, 1, 3000, 90-18+6)
	wantFigures(t, "alipay", ali.ReportFigures, 2, 21000, 0, 0, 126)
	if wx.Date != "2026-03" || wx.From != "2026-03-01" || wx.To != "2026-03-31" {
		t.Errorf("monthly row dates %+v", wx)
	}
	// WeChat: 03-05 open, 03-10 not run → open. Alipay: 03-05 balanced, 03-06 not run → partial.
	if wx.Reconciliation != ReconOpen || ali.Reconciliation != ReportPartial || rep.Total.Reconciliation != ReconOpen {
		t.Errorf("reconciliation %q %q total %q", wx.Reconciliation, ali.Reconciliation, rep.Total.Reconciliation)
	}
	if len(rep.Accounts) != 2 {
		t.Fatalf("accounts %+v", rep.Accounts)
	}
	days := rep.Accounts[1].Days
	if rep.Accounts[1].AccountID != w.wx.ID || len(days) != 2 || days["2026-03-05"] != ReconOpen || days["2026-03-10"] != ReportNotRun {
		t.Errorf("wechat days %+v", rep.Accounts[1])
	}
	if rep.Accounts[1].DayIDs["2026-03-05"] == 0 {
		t.Errorf("no link to the reconciled day")
	}
	j := rep.JSON()
	if j.Rows[1].Days["2026-03-10"] != ReportNotRun || string(j.Rows[1].PaymentAmount) != "160.00" || string(j.Total.Net) != fmt.Sprint(Yuan(37000-3000-204)) {
		t.Errorf("json %+v", j)
	}
	// Another month has nothing.
	if rep, _ := w.s.Report(Scope{All: true}, ReportFilter{Merchant: "SHOP_SH", Period: ReportMonthly, Date: "2026-04"}); len(rep.Rows) != 0 || rep.Total.Reconciliation != ReportNotRun {
		t.Errorf("April: %+v", rep)
	}
}

// reportEmptyStatementDay: an account reconciled on a day without trades
// (the channel said it has no bill) gets a row of zeros.
func reportEmptyStatementDay(t *testing.T, w *reportWorld) {
	if _, err := w.s.RecordEmptyStatement(web, w.ali.ID, "2026-03-07"); err != nil {
		t.Fatal(err)
	}
	rep, err := w.s.Report(Scope{All: true}, ReportFilter{Merchant: "SHOP_SH", Period: ReportDaily, Date: "2026-03-07"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Channel != "alipay" || rep.Rows[0].Payments != 0 || rep.Rows[0].Reconciliation != ReconBalanced {
		t.Errorf("a reconciled day without trades: %+v", rep.Rows)
	}
}

func TestReportFilterValidate(t *testing.T) {
	for _, c := range []struct {
		f     ReportFilter
		field string
	}{
		{ReportFilter{Period: ReportDaily, Date: "2026-02-30"}, "date"},
		{ReportFilter{Period: ReportDaily, Date: "2026-03"}, "date"},
		{ReportFilter{Period: ReportMonthly, Date: "2026-13"}, "date"},
		{ReportFilter{Period: ReportMonthly, Date: "2026-03-01"}, "date"},
		{ReportFilter{Period: "weekly", Date: "2026-03-01"}, "period"},
		{ReportFilter{Merchant: "a b", Period: ReportDaily, Date: "2026-03-01"}, "merchant"},
		{ReportFilter{Period: ReportMonthly, Date: "2026-02"}, ""},
		{ReportFilter{Merchant: "shop_sh", Period: ReportDaily, Date: "2026-02-28"}, ""},
	} {
		errs := c.f.Validate()
		if c.field == "" && errs != nil || c.field != "" && errs[c.field] == "" {
			t.Errorf("%+v: %v", c.f, errs)
		}
	}
	f := ReportFilter{Period: ReportMonthly, Date: "2024-02"}
	if from, to := f.Range(); from != "2024-02-01" || to != "2024-02-29" {
		t.Errorf("February 2024: %s..%s", from, to)
	}
}

func TestSummariseRecon(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ReportNotRun},
		{[]string{ReconBalanced, ReconBalanced}, ReconBalanced},
		{[]string{ReconBalanced, ReportNotRun, ReconOpen}, ReconOpen},
		{[]string{ReconBalanced, ReportNotRun}, ReportPartial},
		{[]string{ReconNoStatement, ReconBalanced}, ReportPartial},
		{[]string{ReconNoStatement}, ReconNoStatement},
		{[]string{ReportNotRun, ReportNotRun}, ReportNotRun},
	} {
		if got := summariseRecon(c.in); got != c.want {
			t.Errorf("%v: %q, want %q", c.in, got, c.want)
		}
	}
}

func reportFiles(t *testing.T, w *reportWorld) {
	for _, byMethod := range []bool{false, true} {
		rep, err := w.s.Report(Scope{All: true}, ReportFilter{Merchant: "SHOP_SH", Period: ReportDaily, Date: "2026-03-05", ByMethod: byMethod})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := rep.WriteCSV(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(buf.Bytes(), []byte("\uFEFF")) {
			t.Fatal("no BOM")
		}
		recs, err := csv.NewReader(bytes.NewReader(buf.Bytes()[3:])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		head := "merchant,channel,account,date,payments,payment_amount,refunds,refund_amount,fees,net,reconciliation"
		if byMethod {
			head = strings.Replace(head, "account,", "account,method,", 1)
		}
		if strings.Join(recs[0], ",") != head || len(recs) != len(rep.Rows)+2 {
			t.Fatalf("csv %v", recs)
		}
		last := strings.Join(recs[len(recs)-1], ",")
		wantLast := "total,,,2026-03-05,3,350.00,1,30.00,1.92,318.08,open"
		if byMethod {
			wantLast = "total,,,,2026-03-05,3,350.00,1,30.00,1.92,318.08,open"
		}
		if last != wantLast {
			t.Errorf("totals row %q", last)
		}
		if !byMethod && strings.Join(recs[2], ",") != "SHOP_SH,wechat,"+rep.Rows[1].Account+",2026-03-05,2,150.00,1,30.00,0.72,119.28,open" {
			t.Errorf("wechat row %q", recs[2])
		}

		buf.Reset()
		if err := rep.WriteXLSX(&buf); err != nil {
			t.Fatal(err)
		}
		x, err := excelize.OpenReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		panes, err := x.GetPanes(ReportSheet)
		if err != nil || !panes.Freeze || panes.YSplit != 1 {
			t.Errorf("panes %+v %v", panes, err)
		}
		rows, _ := x.GetRows(ReportSheet)
		if strings.Join(rows[0], ",") != head || len(rows) != len(rep.Rows)+2 {
			t.Errorf("xlsx rows %v", rows)
		}
		col := 6 // payment_amount
		if byMethod {
			col = 7
		}
		cell, _ := excelize.CoordinatesToCellName(col, len(rows))
		if v, _ := x.GetCellValue(ReportSheet, cell); v != "350.00" {
			t.Errorf("total payment amount shown as %q", v)
		}
		style, _ := x.GetCellStyle(ReportSheet, cell)
		if st, _ := x.GetStyle(style); st == nil || st.NumFmt != 4 || st.Font == nil || !st.Font.Bold {
			t.Errorf("total amount style %+v", st)
		}
		x.Close()
	}
}

// ledgerTotals sums a ledger CSV export the way the report counts: the
// succeeded rows, payments and refunds apart; fees of refunds returned.
func ledgerTotals(t *testing.T, s *Store, f LedgerFilter) (ReportFigures, map[string]ReportFigures) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteLedgerCSV(&buf, Scope{All: true}, f); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(buf.Bytes(), []byte("\uFEFF")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	var tot ReportFigures
	byKey := map[string]ReportFigures{}
	for _, r := range recs[1:] {
		if r[col["status"]] != channels.StatusSucceeded {
			continue
		}
		amount, err1 := channels.ParseYuan(r[col["amount"]])
		fee, err2 := channels.ParseYuan(r[col["fee"]])
		if err1 != nil || err2 != nil {
			t.Fatalf("row %v", r)
		}
		var g ReportFigures
		if r[col["kind"]] == channels.KindPayment {
			g = ReportFigures{Payments: 1, PaymentAmount: amount, Fees: fee}
		} else {
			g = ReportFigures{Refunds: 1, RefundAmount: amount, Fees: -fee}
		}
		tot.add(g)
		k := r[col["merchant"]] + "/" + r[col["channel"]] + "/" + r[col["method"]]
		sum := byKey[k]
		sum.add(g)
		byKey[k] = sum
	}
	return tot, byKey
}

// reportTotalsEqualLedgerExport: on random payments and refunds (every
// status, four methods, two merchants, three accounts, days across a month
// end, at any time of day), every daily and monthly report's totals, and
// every by-method row, equal the sums over the ledger export of the same
// merchant and business dates.
func reportTotalsEqualLedgerExport(t *testing.T, w *reportWorld) {
	rng := rand.New(rand.NewSource(6))
	statuses := []string{channels.StatusSucceeded, channels.StatusSucceeded, channels.StatusSucceeded, channels.StatusFailed, channels.StatusPending, channels.StatusClosed}
	start := time.Date(2026, 3, 28, 0, 0, 0, 0, bj)
	type target struct {
		acct    *ChannelAccount
		channel string
		ref     string
	}
	targets := []target{{w.wx, "wechat", w.wxRef}, {w.ali, "alipay", w.aliRef}, {w.bjAcc, "wechat", w.bjRef}}
	for ti, tg := range targets {
		var recs []channels.Record
		for i := 0; i < 120; i++ {
			at := start.Add(time.Duration(rng.Int63n(int64(8 * 24 * time.Hour))))
			st := statuses[rng.Intn(len(statuses))]
			amount := 1 + rng.Int63n(50000)
			fee := amount * 6 / 1000
			ref := fmt.Sprintf("T%d_%03d", ti, i)
			p := reportRec(tg.channel, channels.KindPayment, ref, tg.ref, Methods[rng.Intn(len(Methods))], st, amount, fee, at)
			recs = append(recs, p)
			if st == channels.StatusSucceeded && rng.Intn(3) == 0 {
				rst := channels.StatusSucceeded
				if rng.Intn(4) == 0 {
					rst = channels.StatusFailed
				}
				r := reportRec(tg.channel, channels.KindRefund, "R"+ref, tg.ref, p.Method, rst, 1+rng.Int63n(amount), fee/2,
					at.Add(time.Duration(rng.Int63n(int64(3*24*time.Hour)))))
				r.PaymentRef = ref
				recs = append(recs, r)
			}
		}
		// Half by notification, half by statement, so sources merge.
		mustIngest(t, w.s, tg.acct, SourceNotification, recs[:len(recs)/2]...)
		mustStatement(t, w.s, tg.acct, fmt.Sprintf("random-%d.csv", ti), recs[len(recs)/2:]...)
	}
	all := Scope{All: true}
	check := func(f ReportFilter) {
		t.Helper()
		rep, err := w.s.Report(all, f)
		if err != nil {
			t.Fatal(err)
		}
		from, to := f.Range()
		lf := LedgerFilter{Merchant: f.Merchant, DateFrom: from, DateTo: to}
		want, byKey := ledgerTotals(t, w.s, lf)
		if rep.Total.ReportFigures != want {
			t.Errorf("%+v: report totals %+v, ledger export %+v", f, rep.Total.ReportFigures, want)
		}
		if !f.ByMethod {
			return
		}
		for _, r := range rep.Rows {
			k := r.MerchantCode + "/" + r.Channel + "/" + r.Method
			if r.ReportFigures != byKey[k] {
				t.Errorf("%+v %s: row %+v, ledger %+v", f, k, r.ReportFigures, byKey[k])
			}
			delete(byKey, k)
		}
		for k, v := range byKey {
			t.Errorf("%+v: ledger has %s %+v, the report has no row", f, k, v)
		}
	}
	if rep, _ := w.s.Report(all, ReportFilter{Period: ReportMonthly, Date: "2026-04"}); rep.Total.Payments < 50 || rep.Total.Refunds < 10 {
		t.Fatalf("the random data is too thin to compare: %+v", rep.Total)
	}
	merchants := []string{"", "SHOP_SH", "SHOP_BJ"}
	for i, d := 0, start; i < 11; i, d = i+1, d.AddDate(0, 0, 1) {
		check(ReportFilter{Merchant: merchants[i%3], Period: ReportDaily, Date: d.Format(time.DateOnly), ByMethod: i%2 == 0})
	}
	for _, m := range merchants {
		for _, month := range []string{"2026-03", "2026-04"} {
			check(ReportFilter{Merchant: m, Period: ReportMonthly, Date: month})
			check(ReportFilter{Merchant: m, Period: ReportMonthly, Date: month, ByMethod: true})
		}
	}
}
