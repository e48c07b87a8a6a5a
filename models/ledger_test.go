package models

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
)

func ledgerFixture(t testing.TB) (*Store, *ChannelAccount, string) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "wechat")
	return s, acct, string(values["mch_id"])
}

var bj = time.FixedZone("CST", 8*3600)

func pay(ref, mch string, amount int64, status string, at time.Time) channels.Record {
	return channels.Record{Channel: "wechat", Kind: channels.KindPayment, ChannelRef: ref, MerchantOrderNo: "O" + ref,
		Method: "scan", Status: status, Amount: amount, Currency: "CNY", AccountRef: mch, CreatedAt: at, PaidAt: at}
}

func refund(ref, payRef, mch string, amount int64, at time.Time) channels.Record {
	return channels.Record{Channel: "wechat", Kind: channels.KindRefund, ChannelRef: ref, PaymentRef: payRef, RefundNo: "R" + ref,
		Method: "scan", Status: channels.StatusSucceeded, Amount: amount, Currency: "CNY", AccountRef: mch, RefundedAt: at}
}

func statement(name string, recs ...channels.Record) StatementFile {
	return StatementFile{Name: name, Hash: fmt.Sprintf("%064x", len(name)*7919+len(recs)), Bytes: 100,
		Parse: func(fn func(channels.Record) error) (channels.Totals, error) {
			var tot channels.Totals
			for _, r := range recs {
				if err := fn(r); err != nil {
					return tot, err
				}
				if r.Kind == channels.KindPayment {
					tot.Payments++
				} else {
					tot.Refunds++
				}
			}
			return tot, nil
		}}
}

func txn(t *testing.T, s *Store, kind, ref string) Transaction {
	t.Helper()
	var tr Transaction
	if err := s.DB.Where("kind = ? AND channel_ref = ?", kind, ref).First(&tr).Error; err != nil {
		t.Fatalf("%s %s: %v", kind, ref, err)
	}
	return tr
}

func TestNotificationAndStatementMergeIntoOneRecord(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	paidNotif := time.Date(2026, 3, 1, 23, 59, 58, 0, bj) // Beijing: still 1 March
	n := pay("T1", mch, 1000, channels.StatusSucceeded, paidNotif)
	n.Payer = "o***x"
	if st, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{n}); err != nil || st.Inserted != 1 {
		t.Fatalf("notification: %+v %v", st, err)
	}
	// The same notification again changes nothing.
	if st, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{n}); err != nil || st.Duplicates != 1 || st.Inserted+st.Merged != 0 {
		t.Fatalf("repeated notification: %+v %v", st, err)
	}
	st := pay("T1", mch, 1000, channels.StatusSucceeded, paidNotif.Add(time.Second)) // the bill's time is coarser
	st.Fee, st.FeeKnown = 6, true
	st.Payer = ""
	res, err := s.ImportStatement(web, acct.ID, statement("bill-0301.csv", st))
	if err != nil || res.Refused || res.Merged != 1 || res.Inserted != 0 {
		t.Fatalf("statement: %+v %v", res, err)
	}
	got := txn(t, s, channels.KindPayment, "T1")
	if got.Sources != "notification,statement" || got.Fee != 6 || !got.FeeKnown || got.Payer != "o***x" || got.Conflict {
		t.Fatalf("merged record: %+v", got)
	}
	if !got.PaidAt.Equal(paidNotif) {
		t.Fatalf("paid time %v, want the notification's %v", got.PaidAt, paidNotif)
	}
	if got.BizDate != "2026-03-01" {
		t.Fatalf("business date %s, want 2026-03-01 (Asia/Shanghai)", got.BizDate)
	}
	var n2 int64
	s.DB.Model(&TransactionSource{}).Where("transaction_id = ?", got.ID).Count(&n2)
	if n2 != 2 {
		t.Fatalf("%d source records, want 2", n2)
	}
	// The same file again: already imported, nothing added.
	res, err = s.ImportStatement(web, acct.ID, statement("bill-0301.csv", st))
	if err != nil || !res.AlreadyImported {
		t.Fatalf("re-import: %+v %v", res, err)
	}
}

func TestDisagreementsAreFlaggedNotOverwritten(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, bj)
	s.Ingest(web, acct.ID, SourceNotification, []channels.Record{pay("T2", mch, 1000, channels.StatusSucceeded, at), pay("T3", mch, 500, channels.StatusPending, at)})
	res, err := s.ImportStatement(web, acct.ID, statement("b", pay("T2", mch, 990, channels.StatusSucceeded, at), pay("T3", mch, 500, channels.StatusSucceeded, at)))
	if err != nil || res.Refused {
		t.Fatal(res, err)
	}
	t2 := txn(t, s, channels.KindPayment, "T2")
	if !t2.Conflict || t2.Amount != 990 || t2.ConflictNote == "" {
		t.Fatalf("amount disagreement: %+v", t2)
	}
	t3 := txn(t, s, channels.KindPayment, "T3")
	if t3.Conflict || t3.Status != channels.StatusSucceeded {
		t.Fatalf("pending → succeeded is progress, not a conflict: %+v", t3)
	}
	// A late notification saying something else is flagged, and the statement's value stays.
	late := pay("T2", mch, 990, channels.StatusClosed, at)
	s.Ingest(web, acct.ID, SourceNotification, []channels.Record{late})
	t2 = txn(t, s, channels.KindPayment, "T2")
	if t2.Status != channels.StatusSucceeded || !t2.Conflict {
		t.Fatalf("a notification overwrote the statement's final status: %+v", t2)
	}
}

func TestRefundsLinkToPaymentsInEitherOrder(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 3, 12, 0, 0, 0, bj)
	// The refund arrives before its payment.
	s.Ingest(web, acct.ID, SourceNotification, []channels.Record{refund("RF1", "T4", mch, 300, at)})
	s.Ingest(web, acct.ID, SourceNotification, []channels.Record{pay("T4", mch, 1000, channels.StatusSucceeded, at)})
	p := txn(t, s, channels.KindPayment, "T4")
	r := txn(t, s, channels.KindRefund, "RF1")
	if p.RefundState != RefundPartial || p.RefundedAmount != 300 || r.PaymentID == nil || *r.PaymentID != p.ID {
		t.Fatalf("partial refund: payment %+v refund %+v", p, r)
	}
	s.Ingest(web, acct.ID, SourceNotification, []channels.Record{refund("RF2", "T4", mch, 700, at.Add(time.Hour))})
	p = txn(t, s, channels.KindPayment, "T4")
	if p.RefundState != RefundFull || p.RefundedAmount != 1000 {
		t.Fatalf("full refund: %+v", p)
	}
}

func TestRefusedStatementChangesNothing(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 4, 9, 0, 0, 0, bj)
	recs := []channels.Record{}
	for i := 0; i < 2500; i++ { // past a batch boundary, so earlier batches were already written
		recs = append(recs, pay(fmt.Sprintf("B%04d", i), mch, 100, channels.StatusSucceeded, at))
	}
	recs = append(recs, pay("FOREIGN", "9999999999", 100, channels.StatusSucceeded, at))
	res, err := s.ImportStatement(web, acct.ID, statement("foreign.csv", recs...))
	if err != nil || !res.Refused || res.Reason.EN == "" || res.Reason.ZH == "" {
		t.Fatalf("want a refusal: %+v %v", res, err)
	}
	var n int64
	s.DB.Model(&Transaction{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d transactions from a refused file", n)
	}
	s.DB.Model(&DailyRollup{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d rollup rows from a refused file", n)
	}
	list, _ := s.ListImports(ScopeFor(RoleAdmin, nil), acct.ID, 10)
	if len(list) != 1 || list[0].Status != ImportRefused || list[0].ReasonText().EN == "" {
		t.Fatalf("refusal not recorded: %+v", list)
	}
	// A bill error from the parser is refused the same way, with its line.
	bad := StatementFile{Name: "bad.csv", Hash: "ab", Parse: func(fn func(channels.Record) error) (channels.Totals, error) {
		fn(pay("X1", mch, 100, channels.StatusSucceeded, at))
		return channels.Totals{}, channels.Refuse(7, "the amount %q is not a number", "金额 %q 不是数字", "1.2.3")
	}}
	res, err = s.ImportStatement(web, acct.ID, bad)
	if err != nil || !res.Refused || res.Reason.EN != `line 7: the amount "1.2.3" is not a number` {
		t.Fatalf("bill error: %+v %v", res, err)
	}
	s.DB.Model(&Transaction{}).Count(&n)
	if n != 0 {
		t.Fatal("a refused file left rows")
	}
}

// TestRollupsEqualDirectAggregation ingests random traffic from both sources
// and compares the maintained rollups with a fresh aggregation of the rows.
func TestRollupsEqualDirectAggregation(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	rng := rand.New(rand.NewSource(42))
	statuses := []string{channels.StatusSucceeded, channels.StatusSucceeded, channels.StatusSucceeded, channels.StatusFailed, channels.StatusPending, channels.StatusClosed}
	methods := []string{"scan", "quick", "h5", "app"}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, bj)
	var notif, bill []channels.Record
	for i := 0; i < 600; i++ {
		at := base.Add(time.Duration(rng.Intn(5*24*3600)) * time.Second)
		r := pay(fmt.Sprintf("P%d", i), mch, int64(1+rng.Intn(100000)), statuses[rng.Intn(len(statuses))], at)
		r.Method = methods[rng.Intn(4)]
		r.CreatedAt = at.Add(-time.Duration(rng.Intn(600)) * time.Second) // paid up to 10 min after creation
		if rng.Intn(6) == 0 {
			r.CreatedAt = time.Time{} // creation time unknown
		}
		if rng.Intn(3) > 0 {
			n := r
			if rng.Intn(10) == 0 {
				n.Status = channels.StatusPending
			}
			notif = append(notif, n)
		}
		r.Fee, r.FeeKnown = r.Amount*6/1000, true
		bill = append(bill, r)
		if r.Status == channels.StatusSucceeded && rng.Intn(8) == 0 {
			rf := refund(fmt.Sprintf("RF%d", i), r.ChannelRef, mch, 1+r.Amount/2, at.Add(time.Hour))
			rf.Method = r.Method
			bill = append(bill, rf)
		}
	}
	if _, err := s.Ingest(web, acct.ID, SourceNotification, notif); err != nil {
		t.Fatal(err)
	}
	if res, err := s.ImportStatement(web, acct.ID, statement("random.csv", bill...)); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	type agg struct {
		Method, BizDate                              string
		Payments, Succeeded, Failed, Pending, Amount int64
		Refunds, RefundAmount, PayFees, RefundFees   int64
	}
	var direct []agg
	s.DB.Raw(`SELECT method, biz_date,
		SUM(CASE WHEN kind='payment' THEN 1 ELSE 0 END) AS payments,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN 1 ELSE 0 END) AS succeeded,
		SUM(CASE WHEN kind='payment' AND status='failed' THEN 1 ELSE 0 END) AS failed,
		SUM(CASE WHEN kind='payment' AND status IN ('pending','processing') THEN 1 ELSE 0 END) AS pending,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN amount ELSE 0 END) AS amount,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN 1 ELSE 0 END) AS refunds,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN amount ELSE 0 END) AS refund_amount,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN fee ELSE 0 END) AS pay_fees,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN fee ELSE 0 END) AS refund_fees
		FROM transactions GROUP BY method, biz_date ORDER BY biz_date, method`).Scan(&direct)
	var rolled []DailyRollup
	s.DB.Where("payments <> 0 OR refunds <> 0").Order("biz_date, method").Find(&rolled)
	if len(direct) != len(rolled) {
		t.Fatalf("%d direct groups, %d rollup rows", len(direct), len(rolled))
	}
	for i, d := range direct {
		r := rolled[i]
		if d.Method != r.Method || d.BizDate != r.BizDate || d.Payments != r.Payments || d.Succeeded != r.PaymentsSucceeded ||
			d.Failed != r.PaymentsFailed || d.Pending != r.PaymentsPending || d.Amount != r.AmountSucceeded ||
			d.Refunds != r.Refunds || d.RefundAmount != r.RefundAmount || d.PayFees-d.RefundFees != r.Fees {
			t.Fatalf("group %d differs:\ndirect %+v\nrollup %+v", i, d, r)
		}
	}
	// The KPI columns, recomputed in Go from the raw rows …
	type kpiAgg struct{ paySeconds, payTimed, statement, notified int64 }
	want := map[string]*kpiAgg{}
	var txns []Transaction
	s.DB.Find(&txns)
	for _, x := range txns {
		k := x.Method + "/" + x.BizDate
		if want[k] == nil {
			want[k] = &kpiAgg{}
		}
		if strings.Contains(x.Sources, SourceStatement) {
			want[k].statement++
			if strings.Contains(x.Sources, SourceNotification) {
				want[k].notified++
			}
		}
		if x.Kind == channels.KindPayment && x.Status == channels.StatusSucceeded && x.ChannelCreatedAt != nil && x.PaidAt != nil {
			want[k].paySeconds += int64(x.PaidAt.Sub(*x.ChannelCreatedAt) / time.Second)
			want[k].payTimed++
		}
	}
	timed := 0
	for _, r := range rolled {
		w := want[r.Method+"/"+r.BizDate]
		if w == nil || r.PaySeconds != w.paySeconds || r.PayTimed != w.payTimed || r.StatementRecords != w.statement || r.NotifiedRecords != w.notified {
			t.Fatalf("KPI columns of %s/%s differ: rollup %+v, direct %+v", r.Method, r.BizDate, r, w)
		}
		timed += int(r.PayTimed)
	}
	if timed == 0 {
		t.Fatal("no payment had both times: the test data does not exercise the pay-time column")
	}
	// … and by the databases' own SQL (what CheckRollups and the migration use).
	if c, err := s.CheckRollups(web, Scope{All: true}, "2026-02-28", "2026-03-07", false); err != nil || len(c.Diffs) != 0 {
		t.Fatalf("the rollup check finds differences: %v %+v", err, c)
	}
}

// TestSamePaymentFromBothSourcesAtOnce sends one payment by notification and
// by statement concurrently, many times; the ledger ends with one row.
func TestSamePaymentFromBothSourcesAtOnce(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 5, 9, 0, 0, 0, bj)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{pay("SAME", mch, 1000, channels.StatusSucceeded, at)})
			errs <- err
		}()
		go func(i int) {
			defer wg.Done()
			st := pay("SAME", mch, 1000, channels.StatusSucceeded, at)
			st.Fee, st.FeeKnown = 6, true
			f := statement(fmt.Sprintf("bill-%d", i), st)
			f.Hash = fmt.Sprintf("%064d", i)
			res, err := s.ImportStatement(web, acct.ID, f)
			if err == nil && res.Refused {
				err = errors.New(res.Reason.EN)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int64
	s.DB.Model(&Transaction{}).Where("channel_ref = ?", "SAME").Count(&n)
	if n != 1 {
		t.Fatalf("%d rows for one payment", n)
	}
	got := txn(t, s, channels.KindPayment, "SAME")
	if got.Sources != "notification,statement" || got.Fee != 6 || got.Conflict {
		t.Fatalf("%+v", got)
	}
	var r DailyRollup
	s.DB.Where("biz_date = ?", "2026-03-05").First(&r)
	if r.Payments != 1 || r.AmountSucceeded != 1000 {
		t.Fatalf("rollup counts the payment %d times: %+v", r.Payments, r)
	}
}
