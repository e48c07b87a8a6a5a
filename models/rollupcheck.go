package models

import (
	"fmt"
	"sort"

	"gorm.io/gorm"
)

// ActRollupRepair is the audit action of a rollup repair.
const ActRollupRepair = "rollup.repair"

// RollupFigures are the sums a daily rollup row holds.
type RollupFigures struct {
	Payments          int64 `json:"payments"`
	PaymentsSucceeded int64 `json:"payments_succeeded"`
	PaymentsFailed    int64 `json:"payments_failed"`
	PaymentsPending   int64 `json:"payments_pending"`
	AmountSucceeded   int64 `json:"amount_succeeded"`
	Refunds           int64 `json:"refunds"`
	RefundAmount      int64 `json:"refund_amount"`
	Fees              int64 `json:"fees"`
	PaySeconds        int64 `json:"pay_seconds"`
	PayTimed          int64 `json:"pay_timed"`
	StatementRecords  int64 `json:"statement_records"`
	NotifiedRecords   int64 `json:"notified_records"`
}

func (r *DailyRollup) figures() RollupFigures {
	return RollupFigures{r.Payments, r.PaymentsSucceeded, r.PaymentsFailed, r.PaymentsPending, r.AmountSucceeded, r.Refunds, r.RefundAmount, r.Fees,
		r.PaySeconds, r.PayTimed, r.StatementRecords, r.NotifiedRecords}
}

// rollupKPISelect aggregates, per group of transactions, the rollup columns
// the KPIs add: creation → payment seconds of succeeded payments (whole
// seconds of each time, as payDelay counts them) and statement /
// notification coverage.
func rollupKPISelect(d Dialect) string {
	delay := "CAST(strftime('%s', paid_at) AS INTEGER) - CAST(strftime('%s', channel_created_at) AS INTEGER)"
	if d == MySQL {
		delay = "TIMESTAMPDIFF(SECOND, DATE_FORMAT(channel_created_at, '%Y-%m-%d %H:%i:%s'), DATE_FORMAT(paid_at, '%Y-%m-%d %H:%i:%s'))"
	}
	timed := "kind = 'payment' AND status = 'succeeded' AND paid_at IS NOT NULL AND channel_created_at IS NOT NULL AND " + delay + " >= 0"
	return `COALESCE(SUM(CASE WHEN ` + timed + ` THEN ` + delay + ` ELSE 0 END), 0) AS pay_seconds,
		COALESCE(SUM(CASE WHEN ` + timed + ` THEN 1 ELSE 0 END), 0) AS pay_timed,
		COALESCE(SUM(CASE WHEN sources LIKE '%statement%' THEN 1 ELSE 0 END), 0) AS statement_records,
		COALESCE(SUM(CASE WHEN sources LIKE '%statement%' AND sources LIKE '%notification%' THEN 1 ELSE 0 END), 0) AS notified_records`
}

// RollupDiff is one rollup row that does not agree with the transactions
// it sums: what the rollup says and what the raw rows add up to.
type RollupDiff struct {
	MerchantCode string        `json:"merchant"`
	AccountID    uint64        `json:"account_id"`
	Channel      string        `json:"channel"`
	Method       string        `json:"method"`
	BizDate      string        `json:"biz_date"`
	Rollup       RollupFigures `json:"rollup"`
	Raw          RollupFigures `json:"raw"`
}

// RollupCheck is what a check of a date range found (and, when repairing,
// fixed).
type RollupCheck struct {
	From, To string
	Groups   int          // merchant × account × method × date groups compared
	Diffs    []RollupDiff // those that differ
	Repaired bool
}

// CheckRollups recomputes the daily rollups of the business dates from..to
// (inclusive) in scope from the raw transactions and reports every row that
// differs (or is missing, or should not exist). With repair, the rollup rows
// are set to the recomputed figures in the same database transaction, and
// the repair is audited with each difference. The ledger's writers keep the
// rollups in step, so a difference means something changed the tables
// behind PayFuse's back (or a bug): the check is how it shows.
func (s *Store) CheckRollups(a Actor, scope Scope, from, to string, repair bool) (*RollupCheck, error) {
	errs := FieldErrors{}
	if !validBizDate(from) {
		errs["from"] = "err.recon_date"
	}
	if !validBizDate(to) {
		errs["to"] = "err.recon_date"
	}
	if len(errs) == 0 && from > to {
		errs["to"] = "err.date_order"
	}
	if len(errs) > 0 {
		return nil, errs
	}
	out := &RollupCheck{From: from, To: to}
	err := s.Tx(func(tx *gorm.DB) error {
		type raw struct {
			MerchantCode string
			AccountID    uint64
			Channel      string
			Method       string
			BizDate      string
			RollupFigures
			RefundFees int64
		}
		var rows []raw
		if err := tx.Model(&Transaction{}).Scopes(scope.Filter("merchant_code")).Select(`merchant_code, account_id, channel, method, biz_date,
			SUM(CASE WHEN kind = 'payment' THEN 1 ELSE 0 END) AS payments,
			SUM(CASE WHEN kind = 'payment' AND status = 'succeeded' THEN 1 ELSE 0 END) AS payments_succeeded,
			SUM(CASE WHEN kind = 'payment' AND status = 'failed' THEN 1 ELSE 0 END) AS payments_failed,
			SUM(CASE WHEN kind = 'payment' AND status IN ('pending', 'processing') THEN 1 ELSE 0 END) AS payments_pending,
			SUM(CASE WHEN kind = 'payment' AND status = 'succeeded' THEN amount ELSE 0 END) AS amount_succeeded,
			SUM(CASE WHEN kind = 'refund' AND status = 'succeeded' THEN 1 ELSE 0 END) AS refunds,
			SUM(CASE WHEN kind = 'refund' AND status = 'succeeded' THEN amount ELSE 0 END) AS refund_amount,
			SUM(CASE WHEN kind = 'payment' AND status = 'succeeded' THEN fee ELSE 0 END) AS fees,
			SUM(CASE WHEN kind = 'refund' AND status = 'succeeded' THEN fee ELSE 0 END) AS refund_fees, `+rollupKPISelect(s.Dialect)).
			Where("biz_date BETWEEN ? AND ?", from, to).
			Group("merchant_code, account_id, channel, method, biz_date").Scan(&rows).Error; err != nil {
			return fmt.Errorf("rollups: unable to aggregate the ledger: %w", err)
		}
		type key struct {
			account      uint64
			method, date string
		}
		want := make(map[key]raw, len(rows))
		for _, r := range rows {
			r.Fees -= r.RefundFees
			want[key{r.AccountID, r.Method, r.BizDate}] = r
		}
		var have []DailyRollup
		if err := tx.Scopes(scope.Filter("merchant_code")).Where("biz_date BETWEEN ? AND ?", from, to).Find(&have).Error; err != nil {
			return fmt.Errorf("rollups: unable to read the rollups: %w", err)
		}
		seen := map[key]bool{}
		for _, h := range have {
			k := key{h.AccountID, h.Method, h.BizDate}
			seen[k] = true
			w := want[k] // zero when no transaction is left in the group
			if h.figures() != w.RollupFigures {
				out.Diffs = append(out.Diffs, RollupDiff{MerchantCode: h.MerchantCode, AccountID: h.AccountID, Channel: h.Channel,
					Method: h.Method, BizDate: h.BizDate, Rollup: h.figures(), Raw: w.RollupFigures})
			}
		}
		for k, w := range want {
			if !seen[k] {
				out.Diffs = append(out.Diffs, RollupDiff{MerchantCode: w.MerchantCode, AccountID: w.AccountID, Channel: w.Channel,
					Method: w.Method, BizDate: w.BizDate, Raw: w.RollupFigures})
			}
		}
		out.Groups = len(seen)
		for k := range want {
			if !seen[k] {
				out.Groups++
			}
		}
		sort.Slice(out.Diffs, func(i, j int) bool {
			a, b := out.Diffs[i], out.Diffs[j]
			if a.BizDate != b.BizDate {
				return a.BizDate < b.BizDate
			}
			if a.AccountID != b.AccountID {
				return a.AccountID < b.AccountID
			}
			return a.Method < b.Method
		})
		if !repair || len(out.Diffs) == 0 {
			return nil
		}
		now := s.now()
		for _, d := range out.Diffs {
			r := d.Raw
			res := tx.Model(&DailyRollup{}).Where("account_id = ? AND method = ? AND biz_date = ? AND merchant_code = ?", d.AccountID, d.Method, d.BizDate, d.MerchantCode).
				Updates(map[string]any{"payments": r.Payments, "payments_succeeded": r.PaymentsSucceeded, "payments_failed": r.PaymentsFailed,
					"payments_pending": r.PaymentsPending, "amount_succeeded": r.AmountSucceeded, "refunds": r.Refunds,
					"refund_amount": r.RefundAmount, "fees": r.Fees, "pay_seconds": r.PaySeconds, "pay_timed": r.PayTimed,
					"statement_records": r.StatementRecords, "notified_records": r.NotifiedRecords, "updated_at": now})
			if res.Error != nil {
				return fmt.Errorf("rollups: unable to repair: %w", res.Error)
			}
			if res.RowsAffected == 0 {
				row := DailyRollup{MerchantCode: d.MerchantCode, AccountID: d.AccountID, Channel: d.Channel, Method: d.Method, BizDate: d.BizDate,
					Payments: r.Payments, PaymentsSucceeded: r.PaymentsSucceeded, PaymentsFailed: r.PaymentsFailed, PaymentsPending: r.PaymentsPending,
					AmountSucceeded: r.AmountSucceeded, Refunds: r.Refunds, RefundAmount: r.RefundAmount, Fees: r.Fees,
					PaySeconds: r.PaySeconds, PayTimed: r.PayTimed, StatementRecords: r.StatementRecords, NotifiedRecords: r.NotifiedRecords, UpdatedAt: now}
				if err := tx.Create(&row).Error; err != nil {
					return fmt.Errorf("rollups: unable to repair: %w", err)
				}
			}
		}
		out.Repaired = true
		merchants := map[string][]RollupDiff{}
		for _, d := range out.Diffs {
			merchants[d.MerchantCode] = append(merchants[d.MerchantCode], d)
		}
		for code, diffs := range merchants {
			before, after := map[string]any{}, map[string]any{}
			for _, d := range diffs {
				k := fmt.Sprintf("%s/%d/%s", d.BizDate, d.AccountID, d.Method)
				before[k], after[k] = d.Rollup, d.Raw
			}
			if err := writeAudit(tx, a, now, AuditEvent{Action: ActRollupRepair, ObjectType: "daily_rollup", ObjectID: from + ".." + to,
				MerchantCode: code, Detail: fmt.Sprintf("%d daily rollup rows of %s..%s set to the ledger's sums", len(diffs), from, to),
				Before: before, After: after}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
