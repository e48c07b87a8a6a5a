package web_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/models"
)

// settled are the money figures the reports define over ledger rows:
// succeeded payments and refunds, and the payments' fees less the refunds'.
type settled struct {
	payments, paymentAmount, refunds, refundAmount, fees int64
}

func (s *settled) add(kind, status string, amount, fee int64) {
	if status != channels.StatusSucceeded {
		return
	}
	if kind == channels.KindPayment {
		s.payments++
		s.paymentAmount += amount
		s.fees += fee
		return
	}
	s.refunds++
	s.refundAmount += amount
	s.fees -= fee
}

// TestAPITotalsMatchExportAndReports: for the same merchant and business
// dates, the ledger through the API (every page), the console's CSV export,
// the daily and monthly reports through the API and the report the page and
// `payfuse report` build (models.Report) add up to the same money.
func TestAPITotalsMatchExportAndReports(t *testing.T) {
	w := newAPIWorld(t)
	if r := apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "all.csv", readTestBill(t, "all.csv")); r.Status != http.StatusCreated {
		t.Fatalf("import: %d %s", r.Status, r.Raw)
	}
	if r := w.call(t, "POST", "/api/v1/transactions", map[string]any{"account_id": w.acctSH.ID, "kind": "refund", "channel_ref": "MREF1",
		"payment_ref": "WX2", "status": "succeeded", "amount": 3000, "fee": 18, "refunded_at": "2026-03-06T09:00:00+08:00"}); r.Status != http.StatusCreated {
		t.Fatalf("record: %d %s", r.Status, r.Raw)
	}
	filter := url.Values{"merchant": {"SHOP_SH"}, "from": {"2026-02-01"}, "to": {"2026-03-31"}}

	// The API, page by page.
	var api settled
	rows := 0
	q := url.Values{}
	for k, v := range filter {
		q[k] = v
	}
	q.Set("limit", "7")
	for {
		r := w.call(t, "GET", "/api/v1/transactions?"+q.Encode(), nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		for _, it := range r.JSON["data"].([]any) {
			m := it.(map[string]any)
			fee, _ := m["fee"].(float64)
			api.add(m["kind"].(string), m["status"].(string), int64(m["amount"].(float64)), int64(fee))
			rows++
		}
		next, _ := r.JSON["next_cursor"].(string)
		if next == "" {
			break
		}
		q.Set("after", next)
	}

	// The console's export, as finance downloads it.
	fin := w.english(t, "finall", "finance all pass")
	exp := fin.get("/ledger/export?format=csv&" + filter.Encode())
	if exp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d", exp.StatusCode)
	}
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(exp.Body, "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range records[0] {
		col[c] = i
	}
	var export settled
	for _, rec := range records[1:] {
		amount, err1 := channels.ParseYuan(rec[col["amount"]])
		fee, err2 := channels.ParseYuan(rec[col["fee"]])
		if err1 != nil || err2 != nil {
			t.Fatalf("export row %v", rec)
		}
		export.add(rec[col["kind"]], rec[col["status"]], amount, fee)
	}
	if len(records)-1 != rows {
		t.Errorf("the export has %d rows, the API %d", len(records)-1, rows)
	}

	// The reports through the API: every day, and the two months.
	reportTotal := func(path string) settled {
		r := w.call(t, "GET", path, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.Status, r.Raw)
		}
		tot := r.data()["total"].(map[string]any)
		n := func(k string) int64 { return int64(tot[k].(float64)) }
		return settled{n("payments"), n("payment_amount"), n("refunds"), n("refund_amount"), n("fees")}
	}
	var daily, monthly settled
	for d := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); d.Month() <= time.March; d = d.AddDate(0, 0, 1) {
		s := reportTotal("/api/v1/reports/daily?merchant=SHOP_SH&date=" + d.Format(time.DateOnly))
		daily.payments, daily.paymentAmount, daily.refunds, daily.refundAmount, daily.fees = daily.payments+s.payments,
			daily.paymentAmount+s.paymentAmount, daily.refunds+s.refunds, daily.refundAmount+s.refundAmount, daily.fees+s.fees
	}
	for _, m := range []string{"2026-02", "2026-03"} {
		s := reportTotal("/api/v1/reports/monthly?merchant=SHOP_SH&month=" + m)
		monthly.payments, monthly.paymentAmount, monthly.refunds, monthly.refundAmount, monthly.fees = monthly.payments+s.payments,
			monthly.paymentAmount+s.paymentAmount, monthly.refunds+s.refunds, monthly.refundAmount+s.refundAmount, monthly.fees+s.fees
	}
	// The report the page and the CLI build.
	var store settled
	for _, m := range []string{"2026-02", "2026-03"} {
		rep, err := w.store.Report(models.Scope{All: true}, models.ReportFilter{Merchant: "SHOP_SH", Period: models.ReportMonthly, Date: m})
		if err != nil {
			t.Fatal(err)
		}
		store.payments += rep.Total.Payments
		store.paymentAmount += rep.Total.PaymentAmount
		store.refunds += rep.Total.Refunds
		store.refundAmount += rep.Total.RefundAmount
		store.fees += rep.Total.Fees
	}
	if api.payments == 0 || api.refunds == 0 || api.fees == 0 {
		t.Fatalf("too little to compare: %+v", api)
	}
	for name, got := range map[string]settled{"export": export, "daily reports": daily, "monthly reports": monthly, "store report": store} {
		if got != api {
			t.Errorf("%s %+v, the API ledger %+v", name, got, api)
		}
	}
}
