package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
	"payfuse/channels/generic"
)

// ActMapping is the audit action of saving a channel account's column mapping.
const ActMapping = "channel.mapping"

// ColumnMapping is the saved column mapping of one channel account: how its
// CSV statements are read when the channel has no native statement format.
type ColumnMapping struct {
	ID        uint64 `gorm:"primaryKey"`
	AccountID uint64
	Mapping   string // JSON generic.Mapping
	UpdatedAt time.Time
	UpdatedBy string
}

// TableName keeps GORM on the table migration 4 created.
func (ColumnMapping) TableName() string { return "column_mappings" }

// SavedMapping is an account's mapping as saved, with who saved it and when.
type SavedMapping struct {
	Mapping   generic.Mapping
	UpdatedAt time.Time
	UpdatedBy string
}

// MappingError says why a mapping cannot be saved, field by field.
type MappingError struct{ Problems []generic.Problem }

func (e *MappingError) Error() string {
	var parts []string
	for _, p := range e.Problems {
		parts = append(parts, p.Message.EN)
	}
	return "mapping: " + strings.Join(parts, " ")
}

// GetMapping returns the saved mapping of an account in scope; ErrNotFound
// when the account is out of scope or has no mapping yet.
func (s *Store) GetMapping(scope Scope, accountID uint64) (*SavedMapping, error) {
	if _, err := s.GetAccount(scope, accountID); err != nil {
		return nil, err
	}
	return s.mappingOf(s.DB, accountID)
}

func (s *Store) mappingOf(db *gorm.DB, accountID uint64) (*SavedMapping, error) {
	var row ColumnMapping
	if err := db.Where("account_id = ?", accountID).First(&row).Error; err != nil {
		return nil, notFound(err)
	}
	var m generic.Mapping
	if err := json.Unmarshal([]byte(row.Mapping), &m); err != nil {
		return nil, fmt.Errorf("store: the column mapping of account %d is unreadable: %w", accountID, err)
	}
	return &SavedMapping{Mapping: m, UpdatedAt: row.UpdatedAt, UpdatedBy: row.UpdatedBy}, nil
}

// SaveMapping validates and stores an account's column mapping (replacing
// the one before), audited with both versions. The caller has checked the
// account is in the user's scope. A mapping that cannot read files is a
// *MappingError and changes nothing.
func (s *Store) SaveMapping(a Actor, accountID uint64, m generic.Mapping) error {
	m = m.Normalize()
	if ps := m.Validate(); len(ps) > 0 {
		return &MappingError{Problems: ps}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: unable to encode the column mapping: %w", err)
	}
	return s.Tx(func(tx *gorm.DB) error {
		var acct ChannelAccount
		if err := s.forUpdate(tx).First(&acct, accountID).Error; err != nil {
			return notFound(err)
		}
		now := s.now()
		var before any
		var row ColumnMapping
		err := tx.Where("account_id = ?", accountID).First(&row).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			row = ColumnMapping{AccountID: accountID}
		case err != nil:
			return fmt.Errorf("store: unable to read the column mapping: %w", err)
		default:
			var old generic.Mapping
			if json.Unmarshal([]byte(row.Mapping), &old) == nil {
				before = old
			}
		}
		row.Mapping, row.UpdatedAt, row.UpdatedBy = string(raw), now, truncate(a.Name, 64)
		if err := tx.Save(&row).Error; err != nil {
			return fmt.Errorf("store: unable to save the column mapping: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActMapping, ObjectType: "channel_account", ObjectID: idStr(accountID),
			MerchantCode: acct.MerchantCode, Detail: "column mapping saved", Before: before, After: m})
	})
}

// mappedStatement returns the parser for a statement read through the
// account's saved column mapping. The rows' channel merchant id (the
// mapping's account-ref column, or the id a line before the table names) is
// checked against the account's at ingest.
func (s *Store) mappedStatement(acct *ChannelAccount, r io.ReaderAt, size int64) (func(fn func(channels.Record) error) (channels.Totals, error), error) {
	saved, err := s.mappingOf(s.DB, acct.ID)
	if errors.Is(err, ErrNotFound) {
		return nil, channels.Refuse(0,
			"this account has no saved column mapping; set one at /channels/%d/mapping",
			"该账户还没有保存的列映射；请先在 /channels/%d/mapping 设置", acct.ID)
	}
	if err != nil {
		return nil, err
	}
	m := saved.Mapping
	return func(fn func(channels.Record) error) (channels.Totals, error) {
		return generic.Parse(io.NewSectionReader(r, 0, size), m, acct.Channel, fn)
	}, nil
}
