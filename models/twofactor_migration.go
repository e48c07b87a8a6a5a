package models

import (
	"time"

	"gorm.io/gorm"
)

// --- 0010: frozen snapshots ---

// m0010User adds the flag that says the user signs in with a second factor
// (kept on the user so every request learns it with the user row).
type m0010User struct {
	TwoFactor bool `gorm:"not null;default:false"`
}

func (m0010User) TableName() string { return "users" }

// m0010Session adds when the session last passed a step-up check (password,
// plus a code when the user has a second factor).
type m0010Session struct {
	StepUpAt *time.Time
}

func (m0010Session) TableName() string { return "sessions" }

// m0010UserTOTP is a user's authenticator secret, sealed under the row's own
// data key: the confirmed secret, or the pending one while enrolling. LastStep
// is the newest 30-second time step a code was accepted for, so that a code
// is accepted once only.
type m0010UserTOTP struct {
	UserID        uint64 `gorm:"primaryKey;autoIncrement:false"`
	DataKeyID     uint64 `gorm:"not null"`
	SecretSealed  []byte
	PendingSealed []byte
	PendingAt     *time.Time
	EnabledAt     *time.Time
	LastStep      int64 `gorm:"not null;default:0"`
	UpdatedAt     time.Time
}

func (m0010UserTOTP) TableName() string { return "user_totps" }

// m0010RecoveryCode is one one-time recovery code, stored as a SHA-256.
type m0010RecoveryCode struct {
	ID        uint64 `gorm:"primaryKey"`
	UserID    uint64 `gorm:"not null;index:ix_recovery_codes_user"`
	CodeHash  string `gorm:"size:64;not null;uniqueIndex:ux_recovery_codes_hash"`
	UsedAt    *time.Time
	CreatedAt time.Time
}

func (m0010RecoveryCode) TableName() string { return "recovery_codes" }

// m0010LoginChallenge is a sign-in halfway through: the password was right,
// the second factor is still to come. Only a SHA-256 of its token is stored.
type m0010LoginChallenge struct {
	ID        uint64 `gorm:"primaryKey"`
	TokenHash string `gorm:"size:64;not null;uniqueIndex:ux_login_challenges_token"`
	UserID    uint64 `gorm:"not null;index:ix_login_challenges_user"`
	Attempts  int    `gorm:"not null;default:0"`
	IP        string `gorm:"size:64;not null;default:''"`
	UserAgent string `gorm:"size:255;not null;default:''"`
	CreatedAt time.Time
	ExpiresAt time.Time `gorm:"not null;index:ix_login_challenges_expires"`
}

func (m0010LoginChallenge) TableName() string { return "login_challenges" }

// m0010Setting is one console-wide setting an admin changes in the UI.
type m0010Setting struct {
	Name      string `gorm:"primaryKey;size:64"`
	Value     string `gorm:"size:255;not null;default:''"`
	UpdatedAt time.Time
	UpdatedBy string `gorm:"size:64;not null;default:''"`
}

func (m0010Setting) TableName() string { return "settings" }

func migrate0010(tx *gorm.DB) error {
	if !tx.Migrator().HasColumn(&m0010User{}, "TwoFactor") {
		if err := tx.Migrator().AddColumn(&m0010User{}, "TwoFactor"); err != nil {
			return err
		}
	}
	if !tx.Migrator().HasColumn(&m0010Session{}, "StepUpAt") {
		if err := tx.Migrator().AddColumn(&m0010Session{}, "StepUpAt"); err != nil {
			return err
		}
	}
	return createMissing(tx, &m0010UserTOTP{}, &m0010RecoveryCode{}, &m0010LoginChallenge{}, &m0010Setting{})
}
