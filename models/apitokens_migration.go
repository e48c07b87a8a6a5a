package models

import (
	"time"

	"gorm.io/gorm"
)

// --- 0011: frozen snapshots ---

// m0011APIToken is a bearer token for the REST API. Only a SHA-256 of the
// token is stored (the token is 256 random bits, so a plain hash is as good
// as a slow one); Prefix is its first characters, kept to tell tokens apart
// in lists. Names are unique for ever, so "token:<name>" in the audit log
// names one token.
type m0011APIToken struct {
	ID           uint64 `gorm:"primaryKey"`
	Name         string `gorm:"size:64;not null;uniqueIndex:ux_api_tokens_name"`
	Prefix       string `gorm:"size:16;not null"`
	TokenHash    string `gorm:"size:64;not null;uniqueIndex:ux_api_tokens_hash"`
	Permissions  string `gorm:"size:255;not null;default:''"`
	AllMerchants bool   `gorm:"not null;default:false"`
	Merchants    string `gorm:"size:2048;not null;default:''"`
	AllowedIPs   string `gorm:"size:2048;not null;default:''"`
	ExpiresAt    *time.Time
	CreatedByID  *uint64 `gorm:"index:ix_api_tokens_creator"`
	CreatedBy    string  `gorm:"size:64;not null;default:''"`
	CreatedAt    time.Time
	LastUsedAt   *time.Time
	LastUsedIP   string `gorm:"size:64;not null;default:''"`
	RevokedAt    *time.Time
	RevokedBy    string `gorm:"size:64;not null;default:''"`
}

func (m0011APIToken) TableName() string { return "api_tokens" }

// m0011IdempotencyKey is the first response to a write sent with an
// Idempotency-Key, per token and key: Status 0 while the first request is
// still running (the row is taken before it starts, so a concurrent request
// with the same key finds it), then its status and body, replayed until
// ExpiresAt.
type m0011IdempotencyKey struct {
	ID          uint64 `gorm:"primaryKey"`
	TokenID     uint64 `gorm:"not null;uniqueIndex:ux_idempotency_token_key,priority:1"`
	IdemKey     string `gorm:"size:255;not null;uniqueIndex:ux_idempotency_token_key,priority:2"`
	RequestHash string `gorm:"size:64;not null"`
	Status      int    `gorm:"not null;default:0"`
	Body        string `gorm:"type:mediumtext"`
	Location    string `gorm:"size:255;not null;default:''"`
	CreatedAt   time.Time
	ExpiresAt   time.Time `gorm:"not null;index:ix_idempotency_expires"`
}

func (m0011IdempotencyKey) TableName() string { return "idempotency_keys" }

// m0011TransactionAnnotation is an integrator's free-text note on a ledger
// record (PATCH /api/v1/transactions/{id}), one per record.
type m0011TransactionAnnotation struct {
	TransactionID uint64 `gorm:"primaryKey;autoIncrement:false"`
	Note          string `gorm:"size:500;not null;default:''"`
	UpdatedBy     string `gorm:"size:64;not null;default:''"`
	UpdatedAt     time.Time
}

func (m0011TransactionAnnotation) TableName() string { return "transaction_annotations" }

func migrate0011(tx *gorm.DB) error {
	return createMissing(tx, &m0011APIToken{}, &m0011IdempotencyKey{}, &m0011TransactionAnnotation{})
}
