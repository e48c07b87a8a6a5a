package models

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Merchant statuses.
const (
	MerchantActive    = "active"
	MerchantSuspended = "suspended"
)

// DefaultTimezone is where a merchant's business day is counted unless it says otherwise.
const DefaultTimezone = "Asia/Shanghai"

// Merchant is a business that takes money through PayFuse's channels.
type Merchant struct {
	ID        uint64 `gorm:"primaryKey"`
	Code      string
	Name      string
	Contact   string
	Timezone  string
	Currency  string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Location is the merchant's time zone (Asia/Shanghai if the stored one is unknown).
func (m *Merchant) Location() *time.Location {
	if loc, err := time.LoadLocation(m.Timezone); err == nil {
		return loc
	}
	loc, _ := time.LoadLocation(DefaultTimezone)
	return loc
}

// MerchantInput is what a form or the CLI gives for a merchant.
type MerchantInput struct {
	Code     string
	Name     string
	Contact  string
	Timezone string
	Currency string
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate normalises the input and reports what is wrong, field by field.
func (in *MerchantInput) Validate() FieldErrors {
	errs := FieldErrors{}
	in.Code = strings.ToUpper(strings.TrimSpace(in.Code))
	in.Name = strings.TrimSpace(in.Name)
	in.Contact = strings.TrimSpace(in.Contact)
	in.Timezone = strings.TrimSpace(in.Timezone)
	in.Currency = strings.ToUpper(strings.TrimSpace(in.Currency))
	if in.Timezone == "" {
		in.Timezone = DefaultTimezone
	}
	if in.Currency == "" {
		in.Currency = "CNY"
	}
	if !ValidMerchantCode(in.Code) {
		errs["code"] = "err.merchant_code"
	}
	if n := utf8.RuneCountInString(in.Name); n == 0 || n > 128 {
		errs["name"] = "err.merchant_name"
	}
	if utf8.RuneCountInString(in.Contact) > 255 {
		errs["contact"] = "err.too_long"
	}
	if _, err := time.LoadLocation(in.Timezone); err != nil || in.Timezone == "Local" {
		errs["timezone"] = "err.timezone"
	}
	if !currencyRE.MatchString(in.Currency) {
		errs["currency"] = "err.currency"
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func merchantView(m *Merchant) map[string]any {
	return map[string]any{"code": m.Code, "name": m.Name, "contact": m.Contact, "timezone": m.Timezone, "currency": m.Currency, "status": m.Status}
}

// CreateMerchant stores a new active merchant, audited.
func (s *Store) CreateMerchant(a Actor, in MerchantInput) (*Merchant, error) {
	if errs := in.Validate(); errs != nil {
		return nil, errs
	}
	now := s.now()
	m := &Merchant{Code: in.Code, Name: in.Name, Contact: in.Contact, Timezone: in.Timezone, Currency: in.Currency,
		Status: MerchantActive, CreatedAt: now, UpdatedAt: now}
	err := s.Tx(func(tx *gorm.DB) error {
		if err := tx.Create(m).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return FieldErrors{"code": "err.merchant_code_taken"}
			}
			return fmt.Errorf("store: unable to create merchant: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActMerchantCreate, ObjectType: "merchant", ObjectID: idStr(m.ID),
			MerchantCode: m.Code, After: merchantView(m)})
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// UpdateMerchant changes a merchant's name, contact, time zone and currency.
// The code never changes: it names the merchant in scopes, files and exports.
func (s *Store) UpdateMerchant(a Actor, id uint64, in MerchantInput) (*Merchant, error) {
	var out *Merchant
	err := s.Tx(func(tx *gorm.DB) error {
		var m Merchant
		if err := s.forUpdate(tx).First(&m, id).Error; err != nil {
			return notFound(err)
		}
		in.Code = m.Code
		if errs := in.Validate(); errs != nil {
			return errs
		}
		before := merchantView(&m)
		m.Name, m.Contact, m.Timezone, m.Currency, m.UpdatedAt = in.Name, in.Contact, in.Timezone, in.Currency, s.now()
		if err := tx.Model(&Merchant{}).Where("id = ?", id).Updates(map[string]any{
			"name": m.Name, "contact": m.Contact, "timezone": m.Timezone, "currency": m.Currency, "updated_at": m.UpdatedAt,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to update merchant: %w", err)
		}
		out = &m
		return writeAudit(tx, a, m.UpdatedAt, AuditEvent{Action: ActMerchantUpdate, ObjectType: "merchant", ObjectID: idStr(id),
			MerchantCode: m.Code, Before: before, After: merchantView(&m)})
	})
	return out, err
}

// SetMerchantStatus suspends or reactivates a merchant, audited.
func (s *Store) SetMerchantStatus(a Actor, id uint64, status string) error {
	if status != MerchantActive && status != MerchantSuspended {
		return fmt.Errorf("store: unknown merchant status %q", status)
	}
	return s.Tx(func(tx *gorm.DB) error {
		var m Merchant
		if err := s.forUpdate(tx).First(&m, id).Error; err != nil {
			return notFound(err)
		}
		if m.Status == status {
			return nil
		}
		now := s.now()
		if err := tx.Model(&Merchant{}).Where("id = ?", id).Updates(map[string]any{"status": status, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("store: unable to change merchant status: %w", err)
		}
		action := ActMerchantSuspend
		if status == MerchantActive {
			action = ActMerchantReactivate
		}
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "merchant", ObjectID: idStr(id), MerchantCode: m.Code,
			Before: map[string]any{"status": m.Status}, After: map[string]any{"status": status}})
	})
}

// GetMerchant returns the merchant with id when it is in scope, else ErrNotFound.
func (s *Store) GetMerchant(scope Scope, id uint64) (*Merchant, error) {
	var m Merchant
	if err := s.DB.Scopes(scope.Filter("code")).First(&m, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &m, nil
}

// GetMerchantByCode returns the merchant with that code when it is in scope.
func (s *Store) GetMerchantByCode(scope Scope, code string) (*Merchant, error) {
	var m Merchant
	if err := s.DB.Scopes(scope.Filter("code")).Where("code = ?", strings.ToUpper(code)).First(&m).Error; err != nil {
		return nil, notFound(err)
	}
	return &m, nil
}

// MerchantFilter selects merchants for the list page.
type MerchantFilter struct {
	Query  string // in code or name
	Status string
	Page   int
	Size   int
}

// ListMerchants returns one page of the merchants in scope, by code, and the total.
func (s *Store) ListMerchants(scope Scope, f MerchantFilter) ([]Merchant, int64, error) {
	if f.Size <= 0 || f.Size > 500 {
		f.Size = 25
	}
	if f.Page < 1 {
		f.Page = 1
	}
	q := s.DB.Model(&Merchant{}).Scopes(scope.Filter("code"))
	if f.Query != "" {
		like := "%" + escapeLike(f.Query) + "%"
		q = q.Where("code LIKE ? OR name LIKE ?", strings.ToUpper(like), like)
	}
	if f.Status == MerchantActive || f.Status == MerchantSuspended {
		q = q.Where("status = ?", f.Status)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: unable to count merchants: %w", err)
	}
	var out []Merchant
	if err := q.Order("code").Offset((f.Page - 1) * f.Size).Limit(f.Size).Find(&out).Error; err != nil {
		return nil, 0, fmt.Errorf("store: unable to list merchants: %w", err)
	}
	return out, total, nil
}
