package models

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
)

// assertRollupsMatch compares the daily rollup with a direct aggregation of the ledger.
func assertRollupsMatch(t *testing.T, s *Store) {
	t.Helper()
	type agg struct {
		Method, BizDate                              string
		Payments, Succeeded, Failed, Pending, Amount int64
		Refunds, RefundAmount, PayFees, RefundFees   int64
	}
	var direct []agg
	if err := s.DB.Raw(`SELECT method, biz_date,
		SUM(CASE WHEN kind='payment' THEN 1 ELSE 0 END) AS payments,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN 1 ELSE 0 END) AS succeeded,
		SUM(CASE WHEN kind='payment' AND status='failed' THEN 1 ELSE 0 END) AS failed,
		SUM(CASE WHEN kind='payment' AND status IN ('pending','processing') THEN 1 ELSE 0 END) AS pending,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN amount ELSE 0 END) AS amount,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN 1 ELSE 0 END) AS refunds,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN amount ELSE 0 END) AS refund_amount,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN fee ELSE 0 END) AS pay_fees,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN fee ELSE 0 END) AS refund_fees
		FROM transactions GROUP BY method, biz_date ORDER BY biz_date, method`).Scan(&direct).Error; err != nil {
		t.Fatal(err)
	}
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
}

var finance = Actor{Name: "fin", IP: "192.0.2.9", RequestID: "req-fin"}

func TestCorrectionsKeepRollupsAndRefundStateConsistent(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	rng := rand.New(rand.NewSource(7))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, bj)
	methods := []string{"scan", "quick", "h5", "app"}
	var bill []channels.Record
	for i := 0; i < 200; i++ {
		at := base.Add(time.Duration(rng.Intn(3*24*3600)) * time.Second)
		r := pay(fmt.Sprintf("P%d", i), mch, int64(100+rng.Intn(100000)), channels.StatusSucceeded, at)
		r.Method = methods[rng.Intn(4)]
		r.Fee, r.FeeKnown = r.Amount*6/1000, true
		bill = append(bill, r)
		if i%10 == 0 {
			rf := refund(fmt.Sprintf("RF%d", i), r.ChannelRef, mch, r.Amount/2, at.Add(time.Hour))
			rf.Method = r.Method
			bill = append(bill, rf)
		}
	}
	if res, err := s.ImportStatement(web, acct.ID, statement("corr.csv", bill...)); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	assertRollupsMatch(t, s)
	all := ScopeFor(RoleFinance, []string{"SHOP_SH"})

	// Amount of a payment.
	p1 := txn(t, s, channels.KindPayment, "P1")
	got, err := s.CorrectTransaction(finance, all, p1.ID, CorrectionInput{Field: "amount", NewValue: "1,234.56", Reason: "bank confirmed the real amount"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Amount != 123456 || !strings.Contains(got.Sources, SourceManual) || got.Sources != "manual,statement" {
		t.Fatalf("after the amount correction: amount %d sources %q", got.Amount, got.Sources)
	}
	assertRollupsMatch(t, s)

	// Status of a payment (succeeded -> closed leaves the succeeded totals).
	p2 := txn(t, s, channels.KindPayment, "P2")
	if _, err := s.CorrectTransaction(finance, all, p2.ID, CorrectionInput{Field: "status", NewValue: "closed", Reason: "渠道确认已关闭"}); err != nil {
		t.Fatal(err)
	}
	assertRollupsMatch(t, s)
	// Fee and method (the method moves the record between rollup rows).
	p3 := txn(t, s, channels.KindPayment, "P3")
	if _, err := s.CorrectTransaction(finance, all, p3.ID, CorrectionInput{Field: "fee", NewValue: "0.01", Reason: "fee waived by contract"}); err != nil {
		t.Fatal(err)
	}
	newMethod := "app"
	if p3.Method == "app" {
		newMethod = "h5"
	}
	if _, err := s.CorrectTransaction(finance, all, p3.ID, CorrectionInput{Field: "method", NewValue: newMethod, Reason: "wrong trade type on the bill"}); err != nil {
		t.Fatal(err)
	}
	assertRollupsMatch(t, s)

	// A refund of the whole payment makes the payment fully refunded; a
	// failed refund makes it unrefunded again.
	pay0 := txn(t, s, channels.KindPayment, "P0")
	if pay0.RefundState != RefundPartial {
		t.Fatalf("P0 refund state %s before", pay0.RefundState)
	}
	rf0 := txn(t, s, channels.KindRefund, "RF0")
	if _, err := s.CorrectTransaction(finance, all, rf0.ID, CorrectionInput{Field: "amount", NewValue: money(pay0.Amount), Reason: "the whole order was refunded"}); err != nil {
		t.Fatal(err)
	}
	if p := txn(t, s, channels.KindPayment, "P0"); p.RefundState != RefundFull || p.RefundedAmount != pay0.Amount {
		t.Fatalf("P0 after the refund's correction: %s %d", p.RefundState, p.RefundedAmount)
	}
	if _, err := s.CorrectTransaction(finance, all, rf0.ID, CorrectionInput{Field: "status", NewValue: "failed", Reason: "the refund bounced"}); err != nil {
		t.Fatal(err)
	}
	if p := txn(t, s, channels.KindPayment, "P0"); p.RefundState != RefundNone || p.RefundedAmount != 0 {
		t.Fatalf("P0 after the refund failed: %s %d", p.RefundState, p.RefundedAmount)
	}
	// Lowering a payment's amount to what was refunded makes it fully refunded.
	pay10 := txn(t, s, channels.KindPayment, "P10")
	if _, err := s.CorrectTransaction(finance, all, pay10.ID, CorrectionInput{Field: "amount", NewValue: money(pay10.RefundedAmount), Reason: "partial capture only"}); err != nil {
		t.Fatal(err)
	}
	if p := txn(t, s, channels.KindPayment, "P10"); p.RefundState != RefundFull {
		t.Fatalf("P10 after lowering its amount: %s", p.RefundState)
	}
	assertRollupsMatch(t, s)

	// The trail, the manual source and the audit log.
	trail, err := s.TransactionCorrections(p1.ID)
	if err != nil || len(trail) != 1 || trail[0].OldValue != money(p1.Amount) || trail[0].NewValue != "1234.56" || trail[0].CreatedBy != "fin" || trail[0].Reason != "bank confirmed the real amount" {
		t.Fatalf("trail %+v %v", trail, err)
	}
	srcs, _ := s.TransactionSources(p1.ID)
	if len(srcs) != 2 || srcs[1].Source != SourceManual || srcs[1].Amount != 123456 || !strings.Contains(srcs[1].Raw, `"reason":"bank confirmed the real amount"`) {
		t.Fatalf("sources %+v", srcs)
	}
	audits := auditActions(t, s, ActLedgerCorrect)
	if len(audits) != 7 {
		t.Fatalf("%d audit entries, want 7", len(audits))
	}
	var a1 *AuditLog
	for i := range audits {
		if audits[i].ObjectID == idStr(p1.ID) {
			a1 = &audits[i]
		}
	}
	if a1 == nil || a1.Actor != "fin" || a1.MerchantCode != "SHOP_SH" || a1.Detail != "amount: "+money(p1.Amount)+" → 1234.56 (bank confirmed the real amount)" {
		t.Fatalf("audit %+v", a1)
	}
}

func TestBadCorrectionsChangeNothing(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, bj)
	if res, err := s.ImportStatement(web, acct.ID, statement("one.csv", pay("X1", mch, 5000, channels.StatusSucceeded, at))); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	x := txn(t, s, channels.KindPayment, "X1")
	sh := ScopeFor(RoleFinance, []string{"SHOP_SH"})
	for name, tc := range map[string]struct {
		in    CorrectionInput
		field string
		key   string
	}{
		"no reason":        {CorrectionInput{Field: "amount", NewValue: "10.00"}, "reason", "correction.err_reason"},
		"short reason":     {CorrectionInput{Field: "amount", NewValue: "10.00", Reason: " ab "}, "reason", "correction.err_reason"},
		"bad amount":       {CorrectionInput{Field: "amount", NewValue: "12.345", Reason: "typo in the bill"}, "new_value", "correction.err_amount"},
		"negative":         {CorrectionInput{Field: "fee", NewValue: "-1", Reason: "typo in the bill"}, "new_value", "correction.err_amount"},
		"unknown status":   {CorrectionInput{Field: "status", NewValue: "SUCCESS", Reason: "typo in the bill"}, "new_value", "correction.err_status"},
		"unknown field":    {CorrectionInput{Field: "payer", NewValue: "x", Reason: "typo in the bill"}, "field", "correction.err_field"},
		"same value":       {CorrectionInput{Field: "amount", NewValue: "50", Reason: "typo in the bill"}, "new_value", "correction.err_unchanged"},
		"unknown method":   {CorrectionInput{Field: "method", NewValue: "cash", Reason: "typo in the bill"}, "new_value", "correction.err_method"},
		"status unchanged": {CorrectionInput{Field: "status", NewValue: "succeeded", Reason: "typo in the bill"}, "new_value", "correction.err_unchanged"},
	} {
		_, err := s.CorrectTransaction(finance, sh, x.ID, tc.in)
		var fe FieldErrors
		if !errors.As(err, &fe) || fe[tc.field] != tc.key {
			t.Errorf("%s: %v, want %s=%s", name, err, tc.field, tc.key)
		}
	}
	// Out of scope: not found, as if it did not exist.
	if _, err := s.CorrectTransaction(finance, ScopeFor(RoleFinance, []string{"SHOP_BJ"}), x.ID, CorrectionInput{Field: "amount", NewValue: "1.00", Reason: "not mine to fix"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("out of scope: %v", err)
	}
	if _, err := s.GetTransaction(ScopeFor(RoleOperator, []string{"SHOP_BJ"}), x.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetTransaction out of scope: %v", err)
	}
	after := txn(t, s, channels.KindPayment, "X1")
	after.UpdatedAt, x.UpdatedAt = time.Time{}, time.Time{}
	if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", x) {
		t.Errorf("the transaction changed:\n%+v\n%+v", x, after)
	}
	var n int64
	s.DB.Model(&TransactionCorrection{}).Count(&n)
	if n != 0 || len(auditActions(t, s, ActLedgerCorrect)) != 0 {
		t.Errorf("%d corrections recorded", n)
	}
	if srcs, _ := s.TransactionSources(x.ID); len(srcs) != 1 {
		t.Errorf("%d sources", len(srcs))
	}
	assertRollupsMatch(t, s)
}

func TestCorrectionResolvesConflict(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 3, 9, 0, 0, 0, bj)
	n := pay("C1", mch, 1000, channels.StatusSucceeded, at)
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{n}); err != nil {
		t.Fatal(err)
	}
	b := n
	b.Amount = 1200
	b.Status = channels.StatusClosed
	if res, err := s.ImportStatement(web, acct.ID, statement("conflict.csv", b)); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	c := txn(t, s, channels.KindPayment, "C1")
	if !c.Conflict || len(conflictFields(c.ConflictNote)) != 2 {
		t.Fatalf("no conflict on both fields: %+v", c)
	}
	sh := ScopeFor(RoleFinance, []string{"SHOP_SH"})
	// One field decided: still in conflict over the other.
	got, err := s.CorrectTransaction(finance, sh, c.ID, CorrectionInput{Field: "amount", NewValue: "10.00", Reason: "the notification was right"})
	if err != nil || !got.Conflict {
		t.Fatalf("after amount: %+v %v", got, err)
	}
	// A field not in conflict does not resolve it.
	if got, err = s.CorrectTransaction(finance, sh, c.ID, CorrectionInput{Field: "fee", NewValue: "0.06", Reason: "fee from the contract"}); err != nil || !got.Conflict {
		t.Fatalf("after fee: %+v %v", got, err)
	}
	got, err = s.CorrectTransaction(finance, sh, c.ID, CorrectionInput{Field: "status", NewValue: "succeeded", Reason: "the customer has the goods"})
	if err != nil || got.Conflict || !strings.Contains(got.ConflictNote, "amount: ") || !strings.Contains(got.ConflictNote, "resolved by fin: status set to succeeded") {
		t.Fatalf("after status: %+v %v", got, err)
	}
	assertRollupsMatch(t, s)
	links, err := s.LinkedTransactions(sh, got)
	if err != nil || len(links) != 0 {
		t.Fatalf("links %v %v", links, err)
	}
}
