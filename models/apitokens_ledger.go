package models

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The ledger as the REST API reads and writes it: records found by their
// natural key, and the integrator's annotations.

// TransactionAnnotation is a free-text note an integrator keeps on a ledger
// record (one per record).
type TransactionAnnotation struct {
	TransactionID uint64 `gorm:"primaryKey;autoIncrement:false"`
	Note          string
	UpdatedBy     string
	UpdatedAt     time.Time
}

// MaxAnnotation is the longest annotation, in characters.
const MaxAnnotation = 500

// TransactionByKey returns the record with the natural key (channel, kind,
// channel_ref) when its merchant is in scope, else ErrNotFound.
func (s *Store) TransactionByKey(scope Scope, channel, kind, ref string) (*Transaction, error) {
	var t Transaction
	if err := s.DB.Scopes(scope.Filter("merchant_code")).Where("channel = ? AND kind = ? AND channel_ref = ?", channel, kind, ref).
		First(&t).Error; err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// Annotations returns the annotations of the given records (the caller has
// checked their scope), by transaction id; records without one are absent.
func (s *Store) Annotations(ids []uint64) (map[uint64]string, error) {
	out := map[uint64]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []TransactionAnnotation
	if err := s.DB.Where("transaction_id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("ledger: unable to read annotations: %w", err)
	}
	for _, r := range rows {
		out[r.TransactionID] = r.Note
	}
	return out, nil
}

// AnnotateTransaction sets (or, with an empty note, clears) the annotation of
// a record in scope, audited with the note before and after. A note longer
// than MaxAnnotation characters is a FieldErrors{"annotation": …}.
func (s *Store) AnnotateTransaction(a Actor, scope Scope, id uint64, note string) error {
	note = strings.TrimSpace(note)
	if utf8.RuneCountInString(note) > MaxAnnotation || !utf8.ValidString(note) {
		return FieldErrors{"annotation": "apitokens.err_annotation"}
	}
	return s.Tx(func(tx *gorm.DB) error {
		var t Transaction
		if err := tx.Scopes(scope.Filter("merchant_code")).Select("id", "merchant_code").First(&t, id).Error; err != nil {
			return notFound(err)
		}
		var before TransactionAnnotation
		err := s.forUpdate(tx).Where("transaction_id = ?", id).First(&before).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("ledger: unable to read the annotation of %d: %w", id, err)
		}
		if before.Note == note {
			return nil
		}
		now := s.now()
		if note == "" {
			if err := tx.Where("transaction_id = ?", id).Delete(&TransactionAnnotation{}).Error; err != nil {
				return fmt.Errorf("ledger: unable to clear the annotation of %d: %w", id, err)
			}
		} else {
			row := TransactionAnnotation{TransactionID: id, Note: note, UpdatedBy: truncate(a.Name, 64), UpdatedAt: now}
			if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "transaction_id"}}, UpdateAll: true}).Create(&row).Error; err != nil {
				return fmt.Errorf("ledger: unable to store the annotation of %d: %w", id, err)
			}
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActAPIAnnotate, ObjectType: "transaction", ObjectID: idStr(id),
			MerchantCode: t.MerchantCode, Detail: truncate("annotation: "+note, 500),
			Before: map[string]string{"annotation": before.Note}, After: map[string]string{"annotation": note}})
	})
}
