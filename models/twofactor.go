package models

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
	"gorm.io/gorm"
)

// Two-factor sign-in: TOTP (RFC 6238) as authenticator apps expect it —
// SHA-1, 6 digits, 30-second steps — with one step of clock skew either way.
// A code is accepted once only: the newest accepted step is stored per user
// and a code for that step or an earlier one is refused.
const (
	TOTPPeriod = 30 * time.Second
	TOTPDigits = 6
	TOTPSkew   = 1
	// TOTPIssuer names the console in authenticator apps.
	TOTPIssuer = "PayFuse"
	// RecoveryCodeCount is how many one-time recovery codes a user gets.
	RecoveryCodeCount = 10
	// LoginChallengeTTL is how long the second sign-in step may take.
	LoginChallengeTTL = 5 * time.Minute
	// LoginChallengeAttempts is how many wrong codes one challenge takes
	// before the sign-in starts over from the password (each also counts
	// towards the account lockout).
	LoginChallengeAttempts = 5
	// StepUpTTL is how long a step-up check lets dangerous actions through.
	StepUpTTL = 10 * time.Minute
)

// Audit actions of two-factor sign-in and step-up checks.
const (
	ActTwoFactorEnrol      = "twofa.enrol"
	ActTwoFactorDisable    = "twofa.disable"
	ActTwoFactorReset      = "twofa.reset"
	ActTwoFactorRecovery   = "twofa.recovery_used"
	ActTwoFactorRegenerate = "twofa.recovery_regenerate"
	ActTwoFactorChallenge  = "twofa.challenge"
	ActTwoFactorPolicy     = "twofa.policy"
	ActStepUp              = "twofa.step_up"
	ActStepUpFailure       = "twofa.step_up_failure"
)

func init() {
	// The audit page offers these as filters too.
	AuditActions = append(AuditActions, ActTwoFactorEnrol, ActTwoFactorDisable, ActTwoFactorReset, ActTwoFactorRecovery,
		ActTwoFactorRegenerate, ActTwoFactorChallenge, ActTwoFactorPolicy, ActStepUp, ActStepUpFailure)
}

// Errors of two-factor sign-in. Their text is a translation key.
var (
	// ErrSecondFactorRequired: the password was right, a code must follow.
	ErrSecondFactorRequired = errors.New("twofa.err_required")
	// ErrBadCode: the code (or recovery code) is wrong, used or expired.
	ErrBadCode = errors.New("twofa.err_code")
	// ErrChallengeExpired: the second sign-in step came too late or too often.
	ErrChallengeExpired = errors.New("twofa.err_expired")
	// ErrTwoFactorEnabled: the user already has a second factor.
	ErrTwoFactorEnabled = errors.New("twofa.err_enabled")
	// ErrTwoFactorNotEnabled: the user has no second factor.
	ErrTwoFactorNotEnabled = errors.New("twofa.err_not_enabled")
	// ErrStepUpFailed: the step-up check's password or code is wrong.
	ErrStepUpFailed = errors.New("twofa.err_step_up")
)

// SettingRequireTwoFactor is the setting that makes every user enrol, not only admins.
const SettingRequireTwoFactor = "twofa.required_for_all"

// UserTOTP is a user's authenticator secret, sealed under the row's own data
// key (never stored in plain text): the confirmed secret, or the pending one
// during enrolment.
type UserTOTP struct {
	UserID        uint64 `gorm:"primaryKey;autoIncrement:false"`
	DataKeyID     uint64
	SecretSealed  []byte `json:"-"`
	PendingSealed []byte `json:"-"`
	PendingAt     *time.Time
	EnabledAt     *time.Time
	LastStep      int64
	UpdatedAt     time.Time
}

// TableName keeps the table name independent of GORM's pluralisation.
func (UserTOTP) TableName() string { return "user_totps" }

// RecoveryCode is a one-time recovery code. Only a SHA-256 of the code (with
// the user id, see recoveryHash) is stored: the codes carry 80 random bits,
// so a fast hash suffices.
type RecoveryCode struct {
	ID        uint64 `gorm:"primaryKey"`
	UserID    uint64
	CodeHash  string `json:"-"`
	UsedAt    *time.Time
	CreatedAt time.Time
}

// LoginChallenge is a sign-in between its password step and its code step.
type LoginChallenge struct {
	ID        uint64 `gorm:"primaryKey"`
	TokenHash string `json:"-"`
	UserID    uint64
	Attempts  int
	IP        string
	UserAgent string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Setting is one console-wide setting.
type Setting struct {
	Name      string `gorm:"primaryKey"`
	Value     string
	UpdatedAt time.Time
	UpdatedBy string
}

// TwoFactorState is what the account page shows about a user's second factor.
type TwoFactorState struct {
	Enabled      bool
	EnabledAt    *time.Time
	RecoveryLeft int
}

// --- TOTP ---

// TOTPStep is the RFC 6238 time step t falls in.
func TOTPStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// TOTPCode computes the code of a base32 secret for a time step with the
// given number of digits (SHA-1, as authenticator apps use).
func TOTPCode(secret string, step int64, digits int) (string, error) {
	if step < 0 {
		return "", errors.New("totp: negative time step")
	}
	return hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: otp.Digits(digits), Algorithm: otp.AlgorithmSHA1})
}

// matchTOTP returns the time step within ±TOTPSkew of now whose code is code
// and which is newer than last, or false.
func matchTOTP(secret, code string, now time.Time, last int64) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != TOTPDigits {
		return 0, false
	}
	cur := TOTPStep(now)
	for step := cur - TOTPSkew; step <= cur+TOTPSkew; step++ {
		want, err := TOTPCode(secret, step, TOTPDigits)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if step <= last {
				return 0, false // replay: this code, or a later one, was used already
			}
			return step, true
		}
	}
	return 0, false
}

// NewTOTPSecret returns a fresh random base32 secret (160 bits, as RFC 4226 recommends).
func NewTOTPSecret() string {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: TOTPIssuer, AccountName: "x", SecretSize: 20})
	if err != nil {
		panic(err) // only fails when the system's random source does
	}
	return k.Secret()
}

// TOTPKey is the otpauth key (for the QR code) of a secret and an account.
func TOTPKey(secret, account string) (*otp.Key, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		return nil, fmt.Errorf("totp: bad secret: %w", err)
	}
	return totp.Generate(totp.GenerateOpts{Issuer: TOTPIssuer, AccountName: account, Secret: raw,
		Period: uint(TOTPPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// looksLikeTOTP tells an authenticator code from a recovery code.
func looksLikeTOTP(code string) bool {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != TOTPDigits {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// --- sealing ---

func totpAAD(userID uint64, kind string) string {
	return "payfuse totp v1|" + idStr(userID) + "|" + kind
}

func (s *Store) sealTOTP(tx *gorm.DB, row *UserTOTP, kind, secret string) ([]byte, error) {
	dk, err := s.Vault.dataKey(tx, row.DataKeyID)
	if err != nil {
		return nil, err
	}
	defer clear(dk)
	return seal(dk, totpAAD(row.UserID, kind), []byte(secret))
}

func (s *Store) unsealTOTP(tx *gorm.DB, row *UserTOTP, kind string, sealed []byte) (string, error) {
	dk, err := s.Vault.dataKey(tx, row.DataKeyID)
	if err != nil {
		return "", err
	}
	defer clear(dk)
	b, err := unseal(dk, totpAAD(row.UserID, kind), sealed)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// --- recovery codes ---

// recoveryAlphabet has no 0/o, 1/l/i: codes are read off paper.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCode returns a code of 16 characters in groups of four (79 bits).
func newRecoveryCode() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		// 256 is not a multiple of 31: the bias (8 of 256) costs well under a bit.
		sb.WriteByte(recoveryAlphabet[int(c)%len(recoveryAlphabet)])
	}
	return sb.String()
}

// normalizeRecovery drops spaces and dashes and lower-cases a typed code.
func normalizeRecovery(code string) string {
	return strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.ToLower(strings.TrimSpace(code)))
}

// recoveryHash is SHA-256 over the user id and the normalised code.
func recoveryHash(userID uint64, code string) string {
	sum := sha256.Sum256([]byte("payfuse recovery code v1|" + idStr(userID) + "|" + normalizeRecovery(code)))
	return hex.EncodeToString(sum[:])
}

// replaceRecoveryCodes deletes a user's codes and stores fresh ones, returned in plain text.
func replaceRecoveryCodes(tx *gorm.DB, userID uint64, now time.Time) ([]string, error) {
	if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
		return nil, fmt.Errorf("store: unable to delete recovery codes: %w", err)
	}
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		codes[i] = newRecoveryCode()
		if err := tx.Create(&RecoveryCode{UserID: userID, CodeHash: recoveryHash(userID, codes[i]), CreatedAt: now}).Error; err != nil {
			return nil, fmt.Errorf("store: unable to store recovery codes: %w", err)
		}
	}
	return codes, nil
}

// --- state ---

// TwoFactorState reports whether a user has a second factor and how many
// recovery codes are left.
func (s *Store) TwoFactorState(userID uint64) (TwoFactorState, error) {
	var row UserTOTP
	err := s.DB.Where("user_id = ? AND enabled_at IS NOT NULL", userID).First(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return TwoFactorState{}, nil
	}
	if err != nil {
		return TwoFactorState{}, fmt.Errorf("store: unable to read two-factor state: %w", err)
	}
	var n int64
	if err := s.DB.Model(&RecoveryCode{}).Where("user_id = ? AND used_at IS NULL", userID).Count(&n).Error; err != nil {
		return TwoFactorState{}, fmt.Errorf("store: unable to count recovery codes: %w", err)
	}
	return TwoFactorState{Enabled: true, EnabledAt: row.EnabledAt, RecoveryLeft: int(n)}, nil
}

// TwoFactorRequiredForAll reports whether an admin made two-factor sign-in
// compulsory for every user (admins must enrol in any case).
func (s *Store) TwoFactorRequiredForAll() (bool, error) {
	var st Setting
	err := s.DB.Where("name = ?", SettingRequireTwoFactor).First(&st).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: unable to read setting: %w", err)
	}
	return st.Value == "1", nil
}

// MustEnrol reports whether u must enrol a second factor before using the
// console: admins always, everyone when the setting says so.
func (s *Store) MustEnrol(u *User) (bool, error) {
	if u.TwoFactor {
		return false, nil
	}
	if u.Role == RoleAdmin {
		return true, nil
	}
	return s.TwoFactorRequiredForAll()
}

// SetTwoFactorRequiredForAll changes the setting, audited.
func (s *Store) SetTwoFactorRequiredForAll(a Actor, on bool) error {
	return s.Tx(func(tx *gorm.DB) error {
		var st Setting
		err := s.forUpdate(tx).Where("name = ?", SettingRequireTwoFactor).First(&st).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("store: unable to read setting: %w", err)
		}
		was := st.Value == "1"
		if err == nil && was == on {
			return nil
		}
		if err != nil && !on {
			return nil // off is the default
		}
		val := "0"
		if on {
			val = "1"
		}
		now := s.now()
		row := Setting{Name: SettingRequireTwoFactor, Value: val, UpdatedAt: now, UpdatedBy: truncate(a.Name, 64)}
		if err := tx.Save(&row).Error; err != nil {
			return fmt.Errorf("store: unable to store setting: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActTwoFactorPolicy, ObjectType: "setting", ObjectID: SettingRequireTwoFactor,
			Before: map[string]any{"required_for_all": was}, After: map[string]any{"required_for_all": on}})
	})
}

// --- enrolment ---

// PendingTOTP returns the secret a user is enrolling with, creating one when
// there is none yet (the enrolment page shows it as a QR code and a key).
func (s *Store) PendingTOTP(userID uint64) (string, error) {
	if s.Vault == nil {
		return "", ErrNoMasterKey
	}
	var secret string
	err := s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := s.forUpdate(tx).First(&u, userID).Error; err != nil {
			return notFound(err)
		}
		if u.TwoFactor {
			return ErrTwoFactorEnabled
		}
		var row UserTOTP
		err := tx.Where("user_id = ?", userID).First(&row).Error
		now := s.now()
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			dkID, dk, err := s.Vault.newDataKey(tx, now)
			if err != nil {
				return err
			}
			clear(dk)
			row = UserTOTP{UserID: userID, DataKeyID: dkID, UpdatedAt: now}
			if err := tx.Create(&row).Error; err != nil {
				return fmt.Errorf("store: unable to start enrolment: %w", err)
			}
		case err != nil:
			return fmt.Errorf("store: unable to read enrolment: %w", err)
		case len(row.PendingSealed) > 0:
			secret, err = s.unsealTOTP(tx, &row, "pending", row.PendingSealed)
			return err
		}
		secret = NewTOTPSecret()
		sealed, err := s.sealTOTP(tx, &row, "pending", secret)
		if err != nil {
			return err
		}
		if err := tx.Model(&UserTOTP{}).Where("user_id = ?", userID).Updates(map[string]any{
			"pending_sealed": sealed, "pending_at": now, "updated_at": now,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to start enrolment: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// ConfirmTOTP completes an enrolment with a first code from the app: the
// pending secret becomes the user's, ten recovery codes are made (returned in
// plain text, to be shown once) and the user's privilege version moves on, so
// their session gets a new id.
func (s *Store) ConfirmTOTP(a Actor, userID uint64, code string) ([]string, error) {
	if s.Vault == nil {
		return nil, ErrNoMasterKey
	}
	var codes []string
	err := s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := s.forUpdate(tx).First(&u, userID).Error; err != nil {
			return notFound(err)
		}
		if u.TwoFactor {
			return ErrTwoFactorEnabled
		}
		var row UserTOTP
		if err := s.forUpdate(tx).Where("user_id = ?", userID).First(&row).Error; err != nil || len(row.PendingSealed) == 0 {
			return ErrBadCode
		}
		secret, err := s.unsealTOTP(tx, &row, "pending", row.PendingSealed)
		if err != nil {
			return err
		}
		now := s.now()
		step, ok := matchTOTP(secret, code, now, row.LastStep)
		if !ok {
			return ErrBadCode
		}
		sealed, err := s.sealTOTP(tx, &row, "active", secret)
		if err != nil {
			return err
		}
		if err := tx.Model(&UserTOTP{}).Where("user_id = ?", userID).Updates(map[string]any{
			"secret_sealed": sealed, "pending_sealed": nil, "pending_at": nil, "enabled_at": now, "last_step": step, "updated_at": now,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to enable two-factor sign-in: %w", err)
		}
		if err := tx.Model(&User{}).Where("id = ?", userID).Updates(map[string]any{
			"two_factor": true, "priv_version": gorm.Expr("priv_version + 1"), "updated_at": now,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to enable two-factor sign-in: %w", err)
		}
		if codes, err = replaceRecoveryCodes(tx, userID, now); err != nil {
			return err
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActTwoFactorEnrol, ObjectType: "user", ObjectID: idStr(userID),
			Detail: fmt.Sprintf("authenticator enrolled; %d recovery codes issued", len(codes)),
			Before: map[string]any{"username": u.Username, "two_factor": false}, After: map[string]any{"username": u.Username, "two_factor": true}})
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// verifySecondFactor checks an authenticator code or a recovery code for a
// user inside tx and, when it is right, uses it up (the time step is
// recorded; the recovery code is marked used). It reports whether a recovery
// code was used. Both checks are atomic against concurrent use of one code.
func (s *Store) verifySecondFactor(tx *gorm.DB, userID uint64, code string, now time.Time) (bool, error) {
	if looksLikeTOTP(code) {
		if s.Vault == nil {
			return false, ErrNoMasterKey
		}
		var row UserTOTP
		if err := s.forUpdate(tx).Where("user_id = ? AND enabled_at IS NOT NULL", userID).First(&row).Error; err != nil {
			return false, ErrBadCode
		}
		secret, err := s.unsealTOTP(tx, &row, "active", row.SecretSealed)
		if err != nil {
			return false, err
		}
		step, ok := matchTOTP(secret, strings.ReplaceAll(code, " ", ""), now, row.LastStep)
		if !ok {
			return false, ErrBadCode
		}
		res := tx.Model(&UserTOTP{}).Where("user_id = ? AND last_step < ?", userID, step).Updates(map[string]any{"last_step": step, "updated_at": now})
		if res.Error != nil {
			return false, fmt.Errorf("store: unable to record the code: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return false, ErrBadCode // used by a concurrent request
		}
		return false, nil
	}
	if len(normalizeRecovery(code)) != 16 {
		return false, ErrBadCode
	}
	res := tx.Model(&RecoveryCode{}).Where("user_id = ? AND code_hash = ? AND used_at IS NULL", userID, recoveryHash(userID, code)).Update("used_at", now)
	if res.Error != nil {
		return false, fmt.Errorf("store: unable to use the recovery code: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return false, ErrBadCode
	}
	return true, nil
}

// auditRecoveryUsed records that a recovery code was spent and how many are left.
func auditRecoveryUsed(tx *gorm.DB, a Actor, u *User, now time.Time, where string) error {
	var left int64
	if err := tx.Model(&RecoveryCode{}).Where("user_id = ? AND used_at IS NULL", u.ID).Count(&left).Error; err != nil {
		return fmt.Errorf("store: unable to count recovery codes: %w", err)
	}
	return writeAudit(tx, a, now, AuditEvent{Action: ActTwoFactorRecovery, ObjectType: "user", ObjectID: idStr(u.ID),
		Detail: fmt.Sprintf("recovery code used (%s); %d left", where, left)})
}

// DisableTOTP turns a user's own second factor off; it takes a current code
// (or a recovery code). The user's sessions get new ids.
func (s *Store) DisableTOTP(a Actor, userID uint64, code string) error {
	return s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := s.forUpdate(tx).First(&u, userID).Error; err != nil {
			return notFound(err)
		}
		if !u.TwoFactor {
			return ErrTwoFactorNotEnabled
		}
		now := s.now()
		recovery, err := s.verifySecondFactor(tx, userID, code, now)
		if err != nil {
			return err
		}
		if recovery {
			if err := auditRecoveryUsed(tx, a, &u, now, "to disable two-factor sign-in"); err != nil {
				return err
			}
		}
		if err := removeTwoFactor(tx, userID, now); err != nil {
			return err
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActTwoFactorDisable, ObjectType: "user", ObjectID: idStr(userID),
			Detail: "own two-factor sign-in turned off",
			Before: map[string]any{"username": u.Username, "two_factor": true}, After: map[string]any{"username": u.Username, "two_factor": false}})
	})
}

// removeTwoFactor deletes a user's secret, its data key and recovery codes,
// and clears the flag (bumping the privilege version).
func removeTwoFactor(tx *gorm.DB, userID uint64, now time.Time) error {
	var row UserTOTP
	err := tx.Where("user_id = ?", userID).First(&row).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("store: unable to read two-factor state: %w", err)
	}
	if err == nil {
		if err := tx.Where("user_id = ?", userID).Delete(&UserTOTP{}).Error; err != nil {
			return fmt.Errorf("store: unable to delete the authenticator secret: %w", err)
		}
		if err := tx.Delete(&DataKey{}, row.DataKeyID).Error; err != nil {
			return fmt.Errorf("store: unable to delete the authenticator's data key: %w", err)
		}
	}
	if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
		return fmt.Errorf("store: unable to delete recovery codes: %w", err)
	}
	if err := tx.Model(&User{}).Where("id = ?", userID).Updates(map[string]any{
		"two_factor": false, "priv_version": gorm.Expr("priv_version + 1"), "updated_at": now,
	}).Error; err != nil {
		return fmt.Errorf("store: unable to turn off two-factor sign-in: %w", err)
	}
	return nil
}

// RegenerateRecoveryCodes replaces a user's recovery codes (the old ones stop
// working) and returns the new ones in plain text, to be shown once.
func (s *Store) RegenerateRecoveryCodes(a Actor, userID uint64) ([]string, error) {
	var codes []string
	err := s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := s.forUpdate(tx).First(&u, userID).Error; err != nil {
			return notFound(err)
		}
		if !u.TwoFactor {
			return ErrTwoFactorNotEnabled
		}
		now := s.now()
		var err error
		if codes, err = replaceRecoveryCodes(tx, userID, now); err != nil {
			return err
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActTwoFactorRegenerate, ObjectType: "user", ObjectID: idStr(userID),
			Detail: fmt.Sprintf("%d new recovery codes; the old ones no longer work", len(codes))})
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// ResetTwoFactor is an admin removing another user's second factor (a lost
// phone), with a reason for the audit log. The user's sessions end; they sign
// in with their password and, when they must, enrol again.
func (s *Store) ResetTwoFactor(a Actor, userID uint64, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return FieldErrors{"reason": "twofa.err_reason"}
	}
	if len(reason) > 400 {
		return FieldErrors{"reason": "twofa.err_reason_long"}
	}
	return s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := s.forUpdate(tx).First(&u, userID).Error; err != nil {
			return notFound(err)
		}
		if a.UserID == u.ID {
			return ErrSelfChange
		}
		if !u.TwoFactor {
			return ErrTwoFactorNotEnabled
		}
		now := s.now()
		if err := removeTwoFactor(tx, userID, now); err != nil {
			return err
		}
		if err := tx.Where("user_id = ?", userID).Delete(&Session{}).Error; err != nil {
			return fmt.Errorf("store: unable to revoke sessions: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActTwoFactorReset, ObjectType: "user", ObjectID: idStr(userID),
			Detail: "two-factor sign-in reset by " + a.Name + "; sessions revoked; reason: " + reason,
			Before: map[string]any{"username": u.Username, "two_factor": true},
			After:  map[string]any{"username": u.Username, "two_factor": false, "reason": reason}})
	})
}

// --- sign-in, second step ---

// newChallenge opens the second sign-in step for u, audited, and returns its token.
func (s *Store) newChallenge(a Actor, u *User, userAgent string, now time.Time) (string, error) {
	token := RandomToken(32)
	err := s.Tx(func(tx *gorm.DB) error {
		if err := tx.Where("expires_at <= ?", now).Delete(&LoginChallenge{}).Error; err != nil {
			return fmt.Errorf("store: unable to purge sign-in challenges: %w", err)
		}
		ch := LoginChallenge{TokenHash: hashToken(token), UserID: u.ID, IP: truncate(a.IP, 64), UserAgent: truncate(userAgent, 255),
			CreatedAt: now, ExpiresAt: now.Add(LoginChallengeTTL)}
		if err := tx.Create(&ch).Error; err != nil {
			return fmt.Errorf("store: unable to start the second sign-in step: %w", err)
		}
		a.UserID, a.Name = u.ID, u.Username
		return writeAudit(tx, a, now, AuditEvent{Action: ActTwoFactorChallenge, ObjectType: "user", ObjectID: idStr(u.ID),
			Detail: "password accepted; waiting for the second factor"})
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// ChallengeUser returns the user a live sign-in challenge belongs to, or ErrChallengeExpired.
func (s *Store) ChallengeUser(token string) (*User, error) {
	if token == "" {
		return nil, ErrChallengeExpired
	}
	var ch LoginChallenge
	if err := s.DB.Where("token_hash = ?", hashToken(token)).First(&ch).Error; err != nil {
		return nil, ErrChallengeExpired
	}
	if !s.now().Before(ch.ExpiresAt) {
		return nil, ErrChallengeExpired
	}
	return s.GetUser(ch.UserID)
}

// LoginSecondFactor is the second sign-in step: the challenge from LoginStart
// and an authenticator or recovery code. On success the challenge is spent and
// a session with a new id and token opens. A wrong code counts towards the
// account lockout; after LoginChallengeAttempts wrong codes, or after
// LoginChallengeTTL, the challenge is gone (ErrChallengeExpired) and the
// sign-in starts over.
func (s *Store) LoginSecondFactor(a Actor, challenge, code string) (*User, string, *Session, error) {
	if challenge == "" {
		return nil, "", nil, ErrChallengeExpired
	}
	var ch LoginChallenge
	if err := s.DB.Where("token_hash = ?", hashToken(challenge)).First(&ch).Error; err != nil {
		return nil, "", nil, ErrChallengeExpired
	}
	now := s.now()
	if !now.Before(ch.ExpiresAt) || ch.Attempts >= LoginChallengeAttempts {
		s.DB.Delete(&LoginChallenge{}, ch.ID)
		return nil, "", nil, ErrChallengeExpired
	}
	var u User
	if err := s.DB.First(&u, ch.UserID).Error; err != nil {
		return nil, "", nil, ErrChallengeExpired
	}
	if u.Disabled || (u.LockedUntil != nil && now.Before(*u.LockedUntil)) || !u.TwoFactor {
		s.DB.Delete(&LoginChallenge{}, ch.ID)
		reason := "account disabled"
		if !u.Disabled {
			reason = "account locked or two-factor sign-in reset"
		}
		s.loginRefused(a, &u, reason+" (second step)", false)
		return nil, "", nil, ErrChallengeExpired
	}
	var recovery bool
	token, sess, err := s.openSession(a, &u, ch.UserAgent, now, "session %d (second step passed)", func(tx *gorm.DB) error {
		res := tx.Where("id = ?", ch.ID).Delete(&LoginChallenge{})
		if res.Error != nil {
			return fmt.Errorf("store: unable to spend the sign-in challenge: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return ErrChallengeExpired // spent by a concurrent request
		}
		var err error
		if recovery, err = s.verifySecondFactor(tx, u.ID, code, now); err != nil {
			return err
		}
		if recovery {
			a := a
			a.UserID, a.Name = u.ID, u.Username
			return auditRecoveryUsed(tx, a, &u, now, "sign-in")
		}
		return nil
	})
	if errors.Is(err, ErrBadCode) {
		if err := s.DB.Model(&LoginChallenge{}).Where("id = ?", ch.ID).Update("attempts", gorm.Expr("attempts + 1")).Error; err != nil {
			return nil, "", nil, fmt.Errorf("store: unable to count the attempt: %w", err)
		}
		if ch.Attempts+1 >= LoginChallengeAttempts {
			s.DB.Delete(&LoginChallenge{}, ch.ID)
		}
		return nil, "", nil, s.refused(a, &u, ActLoginFailure, "wrong second-factor code", true, ErrBadCode)
	}
	if err != nil {
		return nil, "", nil, err
	}
	if err := s.loadMerchants(s.DB, &u); err != nil {
		return nil, "", nil, err
	}
	return &u, token, sess, nil
}

// --- step-up ---

// StepUpFresh reports whether sess passed a step-up check within StepUpTTL of now.
func StepUpFresh(sess *Session, now time.Time) bool {
	if sess == nil || sess.StepUpAt == nil {
		return false
	}
	age := now.Sub(*sess.StepUpAt)
	return age >= -time.Minute && age < StepUpTTL
}

// StepUpFresh reports whether the session passed a step-up check within StepUpTTL.
func (s *Store) StepUpFresh(sess *Session) bool { return StepUpFresh(sess, s.now()) }

// StepUp checks the session user's password and, when they have a second
// factor, a code (an authenticator or a recovery code), and marks the
// session as freshly checked. A failure is audited and counts towards the
// account lockout, like a failed sign-in; a locked account fails.
func (s *Store) StepUp(a Actor, sess *Session, password, code string) error {
	u, err := s.GetUser(sess.UserID)
	if err != nil {
		return err
	}
	now := s.now()
	if u.LockedUntil != nil && now.Before(*u.LockedUntil) {
		return s.refused(a, u, ActStepUpFailure, "account locked", false, ErrStepUpFailed)
	}
	if !VerifyPassword(u.PasswordHash, password) {
		return s.refused(a, u, ActStepUpFailure, "wrong password", true, ErrStepUpFailed)
	}
	err = s.Tx(func(tx *gorm.DB) error {
		detail := "password checked"
		if u.TwoFactor {
			recovery, err := s.verifySecondFactor(tx, u.ID, code, now)
			if err != nil {
				return err
			}
			detail = "password and authenticator code checked"
			if recovery {
				detail = "password and recovery code checked"
				if err := auditRecoveryUsed(tx, a, u, now, "step-up"); err != nil {
					return err
				}
			}
		}
		res := tx.Model(&Session{}).Where("id = ?", sess.ID).Update("step_up_at", now)
		if res.Error != nil {
			return fmt.Errorf("store: unable to record the step-up: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return ErrNotFound
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActStepUp, ObjectType: "session", ObjectID: idStr(sess.ID), Detail: detail})
	})
	if errors.Is(err, ErrBadCode) {
		return s.refused(a, u, ActStepUpFailure, "wrong second-factor code", true, ErrStepUpFailed)
	}
	if err != nil {
		return err
	}
	sess.StepUpAt = &now
	return nil
}
