package models

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"payfuse/channels"
)

// ledgerQueryFixture fills a ledger: SHOP_SH at WeChat Pay with 30 payments
// (three share one paid time), two refunds; SHOP_BJ at Alipay with 5 payments.
func ledgerQueryFixture(t *testing.T) (*Store, *ChannelAccount, *ChannelAccount) {
	t.Helper()
	s, _ := vaultStore(t)
	sh := mustMerchant(t, s, "SHOP_SH")
	bjm := mustMerchant(t, s, "SHOP_BJ")
	wx, wxv := mustAccount(t, s, sh, "wechat")
	ali, aliv := mustAccount(t, s, bjm, "alipay")
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, bj)
	var recs []channels.Record
	for i := range 30 {
		at := base.Add(time.Duration(i) * time.Hour)
		if i >= 10 && i < 13 {
			at = base.Add(10 * time.Hour) // equal times: the cursor must break ties by id
		}
		r := pay(fmt.Sprintf("WX%03d", i), string(wxv["mch_id"]), int64(1000+i*100), channels.StatusSucceeded, at)
		if i%10 == 9 {
			r.Status, r.PaidAt = channels.StatusFailed, time.Time{}
		}
		if i%3 == 0 {
			r.Method = "app"
		}
		recs = append(recs, r)
	}
	if _, err := s.Ingest(web, wx.ID, SourceNotification, recs); err != nil {
		t.Fatal(err)
	}
	// A statement confirms WX000 with another amount: a conflict, two sources.
	c := recs[0]
	c.Amount = 999
	if _, err := s.Ingest(web, wx.ID, SourceStatement, []channels.Record{c}); err != nil {
		t.Fatal(err)
	}
	r1 := refund("RWX001", "WX001", string(wxv["mch_id"]), 1234, base.Add(40*time.Hour))
	r2 := refund("RWX002", "WX002", string(wxv["mch_id"]), 500, base.Add(41*time.Hour))
	if _, err := s.Ingest(web, wx.ID, SourceNotification, []channels.Record{r1, r2}); err != nil {
		t.Fatal(err)
	}
	var arecs []channels.Record
	for i := range 5 {
		r := pay(fmt.Sprintf("ALI%03d", i), string(aliv["pid"]), 777, channels.StatusSucceeded, base.Add(time.Duration(i)*time.Minute))
		r.Channel, r.Method = "alipay", "quick"
		arecs = append(arecs, r)
	}
	if _, err := s.Ingest(web, ali.ID, SourceNotification, arecs); err != nil {
		t.Fatal(err)
	}
	return s, wx, ali
}

func listAll(t *testing.T, s *Store, sc Scope, f LedgerFilter, size int) []Transaction {
	t.Helper()
	var all []Transaction
	var after LedgerCursor
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("the cursor does not advance")
		}
		rows, next, err := s.ListTransactions(sc, f, after, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > size {
			t.Fatalf("page of %d rows, want at most %d", len(rows), size)
		}
		all = append(all, rows...)
		if next.IsZero() {
			return all
		}
		after = ParseLedgerCursor(next.String()) // through the URL form
	}
}

func TestLedgerKeysetPagesCoverEveryRowOnceNewestFirst(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	var total int64
	s.DB.Model(&Transaction{}).Count(&total)
	for _, size := range []int{1, 2, 3, 7, 50} {
		all := listAll(t, s, Scope{All: true}, LedgerFilter{}, size)
		if len(all) != int(total) {
			t.Fatalf("page size %d: %d rows over all pages, want %d", size, len(all), total)
		}
		seen := map[uint64]bool{}
		for i, r := range all {
			if seen[r.ID] {
				t.Fatalf("page size %d: row %d twice", size, r.ID)
			}
			seen[r.ID] = true
			if i > 0 {
				p := all[i-1]
				if p.OccurredAt.Before(*r.OccurredAt) || p.OccurredAt.Equal(*r.OccurredAt) && p.ID < r.ID {
					t.Fatalf("page size %d: not newest first at %d", size, i)
				}
			}
		}
	}
	if got := ParseLedgerCursor("garbage!"); !got.IsZero() {
		t.Errorf("a bad cursor should mean the first page, got %+v", got)
	}
}

func TestLedgerFiltersNarrow(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	fen := func(v int64) *int64 { return &v }
	cases := []struct {
		name string
		f    LedgerFilter
		want int
		ok   func(Transaction) bool
	}{
		{"merchant", LedgerFilter{Merchant: "SHOP_BJ"}, 5, func(t Transaction) bool { return t.MerchantCode == "SHOP_BJ" }},
		{"channel", LedgerFilter{Channel: "wechat"}, 32, func(t Transaction) bool { return t.Channel == "wechat" }},
		{"method", LedgerFilter{Method: "app"}, 10, func(t Transaction) bool { return t.Method == "app" }},
		{"kind", LedgerFilter{Kind: "refund"}, 2, func(t Transaction) bool { return t.Kind == "refund" }},
		{"status", LedgerFilter{Status: "failed"}, 3, func(t Transaction) bool { return t.Status == "failed" }},
		// Business dates in Asia/Shanghai: 09:00 on 1 March + 0..14 h is still 1 March (15 rows: i=0..14), plus 5 Alipay.
		{"date-day", LedgerFilter{DateFrom: "2026-03-01", DateTo: "2026-03-01"}, 20, func(t Transaction) bool { return t.BizDate == "2026-03-01" }},
		{"date-from", LedgerFilter{DateFrom: "2026-03-03"}, 2, func(t Transaction) bool { return t.BizDate >= "2026-03-03" }},
		{"amount", LedgerFilter{AmountMin: fen(1000), AmountMax: fen(1300)}, 4, func(t Transaction) bool { return t.Amount >= 1000 && t.Amount <= 1300 }},
		{"search-order", LedgerFilter{Query: "OWX005"}, 1, func(t Transaction) bool { return t.MerchantOrderNo == "OWX005" }},
		{"search-txn", LedgerFilter{Query: "ALI003"}, 1, func(t Transaction) bool { return t.ChannelRef == "ALI003" }},
		{"search-refund", LedgerFilter{Query: "RRWX002"}, 1, func(t Transaction) bool { return t.RefundNo == "RRWX002" }},
		{"two filters", LedgerFilter{Channel: "wechat", Method: "app", Status: "succeeded"}, 9, func(t Transaction) bool {
			return t.Channel == "wechat" && t.Method == "app" && t.Status == "succeeded"
		}},
	}
	for _, c := range cases {
		rows := listAll(t, s, Scope{All: true}, c.f, 4)
		if len(rows) != c.want {
			t.Errorf("%s: %d rows, want %d", c.name, len(rows), c.want)
		}
		for _, r := range rows {
			if !c.ok(r) {
				t.Errorf("%s: row %s does not match", c.name, r.ChannelRef)
			}
		}
		n, more, err := s.CountTransactions(Scope{All: true}, c.f, 100)
		if err != nil || more || n != c.want {
			t.Errorf("%s: count %d (more %v, %v), want %d", c.name, n, more, err, c.want)
		}
	}
}

func TestLedgerCountStopsAtTheCap(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	if n, more, err := s.CountTransactions(Scope{All: true}, LedgerFilter{}, 10); err != nil || !more || n != 10 {
		t.Fatalf("capped count: %d %v %v, want 10 and more", n, more, err)
	}
	if n, more, err := s.CountTransactions(Scope{All: true}, LedgerFilter{}, 37); err != nil || more || n != 37 {
		t.Fatalf("count at exactly the cap: %d %v %v, want 37 exact", n, more, err)
	}
}

func TestLedgerScope(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	sh := Scope{Merchants: []string{"SHOP_SH"}}
	for _, r := range listAll(t, s, sh, LedgerFilter{}, 10) {
		if r.MerchantCode != "SHOP_SH" {
			t.Fatalf("SHOP_SH's scope shows %s", r.MerchantCode)
		}
	}
	for _, f := range []LedgerFilter{{Merchant: "SHOP_BJ"}, {Query: "ALI001"}} {
		if rows, _, _ := s.ListTransactions(sh, f, LedgerCursor{}, 10); len(rows) != 0 {
			t.Errorf("%+v outside the scope shows %d rows", f, len(rows))
		}
		if n, _, _ := s.CountTransactions(sh, f, 100); n != 0 {
			t.Errorf("%+v outside the scope counts %d", f, n)
		}
	}
	// Several merchants in scope: merged newest first, every row once.
	both := Scope{Merchants: []string{"SHOP_SH", "SHOP_BJ"}}
	got := listAll(t, s, both, LedgerFilter{}, 3)
	want := listAll(t, s, Scope{All: true}, LedgerFilter{}, 50)
	if len(got) != len(want) {
		t.Fatalf("two-merchant scope: %d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID {
			t.Fatalf("two-merchant scope: row %d is %d, want %d", i, got[i].ID, want[i].ID)
		}
	}
	// A status filter walks each merchant's (merchant, status) index on
	// MySQL: the same rows, in the same order, as the unscoped list.
	failed := LedgerFilter{Status: channels.StatusFailed}
	got, want = listAll(t, s, both, failed, 2), listAll(t, s, Scope{All: true}, failed, 50)
	if len(got) != 3 || len(got) != len(want) {
		t.Fatalf("two-merchant scope, failed: %d rows, want 3 (unscoped: %d)", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Status != channels.StatusFailed {
			t.Fatalf("two-merchant scope, failed: row %d is %d (%s), want %d", i, got[i].ID, got[i].Status, want[i].ID)
		}
	}
	if rows, _, _ := s.ListTransactions(Scope{}, LedgerFilter{}, LedgerCursor{}, 10); len(rows) != 0 {
		t.Error("an empty scope shows rows")
	}
}

// Every index the ledger list may force exists after the migrations.
func TestLedgerIndexHintsExist(t *testing.T) {
	s, _ := testStore(t)
	for _, f := range []LedgerFilter{{}, {Merchant: "M"}, {Merchant: "M", Status: "failed"}, {Status: "failed"},
		{Channel: "wechat"}, {Method: "app"}, {Kind: "refund"}} {
		for _, merchants := range []int{0, 1, 2} {
			if ix := ledgerIndexHint(f, merchants); ix != "" && !s.DB.Migrator().HasIndex("transactions", ix) {
				t.Errorf("%+v, %d merchants: the hint names %s, which does not exist", f, merchants, ix)
			}
		}
	}
}

func TestParseLedgerFilter(t *testing.T) {
	f, errs := ParseLedgerFilter(url.Values{"merchant": {"shop_sh"}, "channel": {"wechat"}, "min": {"12.3"}, "max": {"100"}, "from": {"2026-03-01"}, "q": {" O1 "}})
	if errs != nil || f.Merchant != "SHOP_SH" || *f.AmountMin != 1230 || *f.AmountMax != 10000 || f.Query != "O1" {
		t.Fatalf("parsed %+v %v", f, errs)
	}
	back, errs := ParseLedgerFilter(f.Values())
	if errs != nil || back.Values().Encode() != f.Values().Encode() {
		t.Fatalf("round trip: %v → %v", f.Values(), back.Values())
	}
	for field, v := range map[string]url.Values{
		"min":     {"min": {"12.345"}},
		"max":     {"max": {"abc"}},
		"from":    {"from": {"2026-13-01"}},
		"to":      {"from": {"2026-03-02"}, "to": {"2026-03-01"}},
		"channel": {"channel": {"paypal"}},
		"status":  {"status": {"done"}},
		"kind":    {"kind": {"x"}},
	} {
		if _, errs := ParseLedgerFilter(v); errs[field] == "" {
			t.Errorf("%v: no error on %s (%v)", v, field, errs)
		}
	}
	if _, errs := ParseLedgerFilter(url.Values{"min": {"-1"}}); errs["min"] == "" {
		t.Error("a negative amount passes")
	}
}

func TestWriteLedgerCSV(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	var buf bytes.Buffer
	n, err := s.WriteLedgerCSV(&buf, Scope{All: true}, LedgerFilter{Merchant: "SHOP_SH"})
	if err != nil || n != 32 {
		t.Fatalf("wrote %d rows (%v), want 32", n, err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "\uFEFFmerchant,channel,kind,status,method,channel_txn_id,merchant_order_no,refund_no,amount,fee,currency,paid_at,biz_date,sources,conflict\r\n") {
		t.Fatalf("header: %q", out[:min(len(out), 200)])
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "\uFEFF"))).ReadAll()
	if err != nil || len(recs) != 33 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	byRef := map[string][]string{}
	for _, r := range recs[1:] {
		byRef[r[5]] = r
	}
	rf := byRef["RWX001"]
	if strings.Join(rf, "|") != "SHOP_SH|wechat|refund|succeeded|scan|RWX001||RRWX001|12.34|0.00|CNY|2026-03-02T17:00:00Z|2026-03-03|notification|false" {
		t.Errorf("refund row: %q", rf)
	}
	p := byRef["WX000"]
	if p[8] != "9.99" || p[13] != "notification,statement" || p[14] != "true" || p[11] != "2026-03-01T01:00:00Z" || p[4] != "app" {
		t.Errorf("conflicted payment row: %q", p)
	}
	if f := byRef["WX009"]; f[3] != "failed" || f[11] != "" {
		t.Errorf("failed payment (never paid) row: %q", f)
	}
}

func TestWriteLedgerXLSX(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	var buf bytes.Buffer
	n, err := s.WriteLedgerXLSX(&buf, Scope{Merchants: []string{"SHOP_BJ"}}, LedgerFilter{})
	if err != nil || n != 5 {
		t.Fatalf("wrote %d rows (%v), want 5", n, err)
	}
	x, err := excelize.OpenReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := x.GetRows("Sheet1")
	if err != nil || len(rows) != 6 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if strings.Join(rows[0], ",") != strings.Join(LedgerColumns, ",") {
		t.Errorf("header %v", rows[0])
	}
	if rows[1][0] != "SHOP_BJ" || rows[1][8] != "7.77" || rows[1][2] != "payment" {
		t.Errorf("first row %v", rows[1])
	}
}

func TestEachTransactionReadsInChunks(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	defer func(n int) { ledgerChunk = n }(ledgerChunk)
	ledgerChunk = 4 // 37 rows: ten chunks, ties at the chunk edges
	seen := map[uint64]bool{}
	err := s.EachTransaction(Scope{All: true}, LedgerFilter{}, func(t *Transaction) error {
		if seen[t.ID] {
			return fmt.Errorf("row %d twice", t.ID)
		}
		seen[t.ID] = true
		return nil
	})
	if err != nil || len(seen) != 37 {
		t.Fatalf("EachTransaction saw %d rows (%v), want 37", len(seen), err)
	}
}
