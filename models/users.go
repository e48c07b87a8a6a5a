package models

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// User is a person who signs in to the console.
type User struct {
	ID                 uint64 `gorm:"primaryKey"`
	Username           string
	PasswordHash       string `json:"-"`
	Role               Role
	Disabled           bool
	MustChangePassword bool
	Locale             string
	FailedLogins       int
	FailedWindowStart  *time.Time
	LockedUntil        *time.Time
	PrivVersion        int
	PasswordChangedAt  time.Time
	LastLoginAt        *time.Time
	// TwoFactor is set while the user signs in with an authenticator code
	// (see twofactor.go).
	TwoFactor bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// Merchants is the user's merchant scope (codes); loaded separately.
	Merchants []string `gorm:"-"`
}

// Scope is the merchant scope the user acts in.
func (u *User) Scope() Scope { return ScopeFor(u.Role, u.Merchants) }

// UserMerchant links a user to a merchant in their scope.
type UserMerchant struct {
	UserID       uint64 `gorm:"primaryKey;autoIncrement:false"`
	MerchantCode string `gorm:"primaryKey"`
}

// Login policy: this many failures within the window lock the account.
const (
	LockThreshold = 10
	LockWindow    = 15 * time.Minute
	LockDuration  = 30 * time.Minute
)

// FieldErrors maps a form field to the message key of what is wrong with it.
// The keys are translation keys (views translate them; the CLI prints English).
type FieldErrors map[string]string

func (e FieldErrors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+e[k])
	}
	return "invalid input: " + strings.Join(parts, ", ")
}

// Errors the user store returns for rules a request broke.
var (
	ErrBadCredentials = errors.New("invalid username or password")
	ErrLastAdmin      = errors.New("err.last_admin")
	ErrSelfChange     = errors.New("err.self_change")
	ErrWrongPassword  = errors.New("err.current_password")
)

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,63}$`)

// NormalizeUsername lower-cases and trims a username; usernames compare case-insensitively.
func NormalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// PasswordError returns the message key for a password that breaks the policy, or "".
func PasswordError(pw string) string {
	switch ValidatePassword(pw) {
	case ErrPasswordTooShort:
		return "err.password_short"
	case ErrPasswordTooLong:
		return "err.password_long"
	}
	return ""
}

// NewUser is the input for creating a user.
type NewUser struct {
	Username           string
	Password           string
	Role               string
	Merchants          []string
	MustChangePassword bool
}

// Validate checks the input and normalises it in place.
func (n *NewUser) Validate() FieldErrors {
	errs := FieldErrors{}
	n.Username = NormalizeUsername(n.Username)
	if !usernameRE.MatchString(n.Username) {
		errs["username"] = "err.username_invalid"
	}
	if k := PasswordError(n.Password); k != "" {
		errs["password"] = k
	}
	role, err := ParseRole(n.Role)
	if err != nil {
		errs["role"] = "err.role_invalid"
	}
	merchants, ok := normalizeMerchants(n.Merchants)
	if !ok {
		errs["merchants"] = "err.merchant_code_invalid"
	}
	n.Merchants = merchants
	if role == RoleAdmin {
		n.Merchants = nil // admins see every merchant; a list would mislead
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func normalizeMerchants(in []string) ([]string, bool) {
	var out []string
	ok := true
	for _, raw := range in {
		for _, c := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
			c = strings.ToUpper(c)
			if !ValidMerchantCode(c) {
				ok = false
				continue
			}
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	sort.Strings(out)
	return out, ok
}

// userView is the audited shape of a user: no hash, no counters.
func userView(u *User) map[string]any {
	return map[string]any{
		"username": u.Username, "role": u.Role, "disabled": u.Disabled,
		"merchants": u.Merchants, "must_change_password": u.MustChangePassword,
	}
}

// CreateUser validates, hashes the password and stores the user with its scope, audited.
func (s *Store) CreateUser(a Actor, in NewUser) (*User, error) {
	if errs := in.Validate(); errs != nil {
		return nil, errs
	}
	hash, err := HashPassword(in.Password)
	if err != nil {
		return nil, fmt.Errorf("store: unable to hash password: %w", err)
	}
	now := s.now()
	u := &User{
		Username: in.Username, PasswordHash: hash, Role: Role(in.Role), MustChangePassword: in.MustChangePassword,
		PrivVersion: 1, PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now, Merchants: in.Merchants,
	}
	err = s.Tx(func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return FieldErrors{"username": "err.username_taken"}
			}
			return fmt.Errorf("store: unable to create user: %w", err)
		}
		if err := setMerchants(tx, u.ID, u.Merchants); err != nil {
			return err
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActUserCreate, ObjectType: "user", ObjectID: idStr(u.ID), After: userView(u)})
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func setMerchants(tx *gorm.DB, userID uint64, codes []string) error {
	if err := tx.Where("user_id = ?", userID).Delete(&UserMerchant{}).Error; err != nil {
		return fmt.Errorf("store: unable to clear merchant scope: %w", err)
	}
	for _, c := range codes {
		if err := tx.Create(&UserMerchant{UserID: userID, MerchantCode: c}).Error; err != nil {
			return fmt.Errorf("store: unable to set merchant scope: %w", err)
		}
	}
	return nil
}

func (s *Store) loadMerchants(db *gorm.DB, users ...*User) error {
	if len(users) == 0 {
		return nil
	}
	ids := make([]uint64, len(users))
	byID := map[uint64]*User{}
	for i, u := range users {
		ids[i] = u.ID
		byID[u.ID] = u
		u.Merchants = nil
	}
	var links []UserMerchant
	if err := db.Where("user_id IN ?", ids).Order("merchant_code").Find(&links).Error; err != nil {
		return fmt.Errorf("store: unable to load merchant scope: %w", err)
	}
	for _, l := range links {
		byID[l.UserID].Merchants = append(byID[l.UserID].Merchants, l.MerchantCode)
	}
	return nil
}

// GetUser returns the user with id, or ErrNotFound.
func (s *Store) GetUser(id uint64) (*User, error) {
	var u User
	if err := s.DB.First(&u, id).Error; err != nil {
		return nil, notFound(err)
	}
	if err := s.loadMerchants(s.DB, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// GetUserByUsername returns the user with that (case-insensitive) name, or ErrNotFound.
func (s *Store) GetUserByUsername(name string) (*User, error) {
	var u User
	if err := s.DB.Where("username = ?", NormalizeUsername(name)).First(&u).Error; err != nil {
		return nil, notFound(err)
	}
	if err := s.loadMerchants(s.DB, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers() (int64, error) {
	var n int64
	err := s.DB.Model(&User{}).Count(&n).Error
	return n, err
}

// UserFilter selects users for the list page.
type UserFilter struct {
	Query  string // substring of the username
	Role   string
	Status string // "", "active", "disabled"
	Page   int    // 1-based
	Size   int
}

// ListUsers returns one page of users ordered by username, and the total.
func (s *Store) ListUsers(f UserFilter) ([]User, int64, error) {
	if f.Size <= 0 || f.Size > 200 {
		f.Size = 25
	}
	if f.Page < 1 {
		f.Page = 1
	}
	q := s.DB.Model(&User{})
	if f.Query != "" {
		q = q.Where("username LIKE ?", "%"+escapeLike(NormalizeUsername(f.Query))+"%")
	}
	if f.Role != "" {
		q = q.Where("role = ?", f.Role)
	}
	switch f.Status {
	case "active":
		q = q.Where("disabled = ?", false)
	case "disabled":
		q = q.Where("disabled = ?", true)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: unable to count users: %w", err)
	}
	var users []User
	if err := q.Order("username").Offset((f.Page - 1) * f.Size).Limit(f.Size).Find(&users).Error; err != nil {
		return nil, 0, fmt.Errorf("store: unable to list users: %w", err)
	}
	ptrs := make([]*User, len(users))
	for i := range users {
		ptrs[i] = &users[i]
	}
	if err := s.loadMerchants(s.DB, ptrs...); err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// escapeLike escapes LIKE wildcards; both engines treat backslash as the default escape.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// forUpdate locks the rows a transaction reads on MySQL; on SQLite the
// immediate transaction already holds the database's write lock.
func (s *Store) forUpdate(tx *gorm.DB) *gorm.DB {
	if s.Dialect == MySQL {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}

// otherEnabledAdmins counts enabled admins other than id.
func otherEnabledAdmins(tx *gorm.DB, id uint64) (int64, error) {
	var n int64
	err := tx.Model(&User{}).Where("role = ? AND disabled = ? AND id <> ?", RoleAdmin, false, id).Count(&n).Error
	return n, err
}

// UpdateUserAccess changes a user's role and merchant scope. The change bumps
// the user's privilege version, so their sessions get a new id on their next
// request. At least one enabled admin always remains, and admins cannot change
// their own role (another admin must).
func (s *Store) UpdateUserAccess(a Actor, id uint64, role string, merchants []string) (*User, error) {
	r, err := ParseRole(role)
	if err != nil {
		return nil, FieldErrors{"role": "err.role_invalid"}
	}
	codes, ok := normalizeMerchants(merchants)
	if !ok {
		return nil, FieldErrors{"merchants": "err.merchant_code_invalid"}
	}
	if r == RoleAdmin {
		codes = nil
	}
	var out *User
	err = s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := s.forUpdate(tx).First(&u, id).Error; err != nil {
			return notFound(err)
		}
		if err := s.loadMerchants(tx, &u); err != nil {
			return err
		}
		before := userView(&u)
		if u.Role == r && slices.Equal(u.Merchants, codes) {
			out = &u
			return nil
		}
		if u.Role != r && a.UserID == u.ID {
			return ErrSelfChange
		}
		if u.Role == RoleAdmin && r != RoleAdmin && !u.Disabled {
			n, err := otherEnabledAdmins(tx, u.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLastAdmin
			}
		}
		now := s.now()
		if err := tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{
			"role": r, "priv_version": gorm.Expr("priv_version + 1"), "updated_at": now,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to update user: %w", err)
		}
		if err := setMerchants(tx, id, codes); err != nil {
			return err
		}
		u.Role, u.Merchants = r, codes
		u.PrivVersion++
		out = &u
		return writeAudit(tx, a, now, AuditEvent{Action: ActUserUpdate, ObjectType: "user", ObjectID: idStr(id), Before: before, After: userView(&u)})
	})
	return out, err
}

// SetUserDisabled disables or enables a user. Disabling revokes every session
// of the user at once. Admins cannot disable themselves nor the last admin.
func (s *Store) SetUserDisabled(a Actor, id uint64, disabled bool) error {
	return s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := s.forUpdate(tx).First(&u, id).Error; err != nil {
			return notFound(err)
		}
		if u.Disabled == disabled {
			return nil
		}
		if disabled && a.UserID == u.ID {
			return ErrSelfChange
		}
		if disabled && u.Role == RoleAdmin {
			n, err := otherEnabledAdmins(tx, u.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLastAdmin
			}
		}
		now := s.now()
		upd := map[string]any{"disabled": disabled, "updated_at": now}
		if !disabled {
			// Re-enabling also clears a lockout.
			upd["failed_logins"], upd["failed_window_start"], upd["locked_until"] = 0, nil, nil
		}
		if err := tx.Model(&User{}).Where("id = ?", id).Updates(upd).Error; err != nil {
			return fmt.Errorf("store: unable to update user: %w", err)
		}
		action := ActUserEnable
		if disabled {
			action = ActUserDisable
			if err := tx.Where("user_id = ?", id).Delete(&Session{}).Error; err != nil {
				return fmt.Errorf("store: unable to revoke sessions: %w", err)
			}
		}
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "user", ObjectID: idStr(id),
			Before: map[string]any{"username": u.Username, "disabled": u.Disabled},
			After:  map[string]any{"username": u.Username, "disabled": disabled}})
	})
}

// UnlockUser lifts a sign-in lockout before it runs out, audited.
func (s *Store) UnlockUser(a Actor, id uint64) error {
	return s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := tx.First(&u, id).Error; err != nil {
			return notFound(err)
		}
		if err := tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{
			"failed_logins": 0, "failed_window_start": nil, "locked_until": nil, "updated_at": s.now(),
		}).Error; err != nil {
			return fmt.Errorf("store: unable to unlock user: %w", err)
		}
		return writeAudit(tx, a, s.now(), AuditEvent{Action: ActUserUnlock, ObjectType: "user", ObjectID: idStr(id),
			Before: map[string]any{"username": u.Username, "locked_until": u.LockedUntil},
			After:  map[string]any{"username": u.Username, "locked_until": nil}})
	})
}

// ResetPassword gives a user a new random password that must be changed at the
// next sign-in, revokes their sessions and returns the password (shown once).
func (s *Store) ResetPassword(a Actor, id uint64) (string, error) {
	pw := RandomPassword(16)
	err := s.replacePassword(a, id, pw, true, "password reset by "+a.Name+"; sessions revoked; change required at next sign-in")
	if err != nil {
		return "", err
	}
	return pw, nil
}

// SetPassword sets a user's password directly (the CLI's `user set-password`
// and demo data use it). It clears a lockout and revokes the user's sessions.
func (s *Store) SetPassword(a Actor, id uint64, pw string, mustChange bool) error {
	if k := PasswordError(pw); k != "" {
		return FieldErrors{"password": k}
	}
	return s.replacePassword(a, id, pw, mustChange, "password set by "+a.Name+"; sessions revoked")
}

// replacePassword stores a new password for someone else's account: it clears
// a lockout, bumps the privilege version, ends every session and audits.
func (s *Store) replacePassword(a Actor, id uint64, pw string, mustChange bool, detail string) error {
	hash, err := HashPassword(pw)
	if err != nil {
		return fmt.Errorf("store: unable to hash password: %w", err)
	}
	return s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := tx.First(&u, id).Error; err != nil {
			return notFound(err)
		}
		now := s.now()
		if err := tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{
			"password_hash": hash, "must_change_password": mustChange, "password_changed_at": now,
			"priv_version": gorm.Expr("priv_version + 1"), "failed_logins": 0, "failed_window_start": nil,
			"locked_until": nil, "updated_at": now,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to set password: %w", err)
		}
		if err := tx.Where("user_id = ?", id).Delete(&Session{}).Error; err != nil {
			return fmt.Errorf("store: unable to revoke sessions: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActPasswordReset, ObjectType: "user", ObjectID: idStr(id),
			Detail: detail, After: map[string]any{"username": u.Username, "must_change_password": mustChange}})
	})
}

// ChangeOwnPassword checks the current password, stores the new one, ends the
// user's other sessions and gives the current one a new id (returned).
func (s *Store) ChangeOwnPassword(a Actor, sess *Session, current, next string) (string, *Session, error) {
	u, err := s.GetUser(sess.UserID)
	if err != nil {
		return "", nil, err
	}
	if !VerifyPassword(u.PasswordHash, current) {
		return "", nil, FieldErrors{"current": "err.current_password"}
	}
	if k := PasswordError(next); k != "" {
		return "", nil, FieldErrors{"new": k}
	}
	if next == current {
		return "", nil, FieldErrors{"new": "err.password_same"}
	}
	hash, err := HashPassword(next)
	if err != nil {
		return "", nil, err
	}
	var token string
	var ns *Session
	err = s.Tx(func(tx *gorm.DB) error {
		now := s.now()
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{
			"password_hash": hash, "must_change_password": false, "password_changed_at": now,
			"priv_version": gorm.Expr("priv_version + 1"), "updated_at": now,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to change password: %w", err)
		}
		if err := tx.Where("user_id = ?", u.ID).Delete(&Session{}).Error; err != nil {
			return err
		}
		var err error
		token, ns, err = insertSession(tx, u.ID, u.PrivVersion+1, sess.IP, sess.UserAgent, now, sess.CreatedAt, sess.ExpiresAt, RandomToken(32))
		if err != nil {
			return err
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActPasswordChange, ObjectType: "user", ObjectID: idStr(u.ID),
			Detail: "own password changed; other sessions ended"})
	})
	return token, ns, err
}

// SetLocale stores a user's language choice.
func (s *Store) SetLocale(a Actor, id uint64, locale string) error {
	return s.Tx(func(tx *gorm.DB) error {
		var u User
		if err := tx.First(&u, id).Error; err != nil {
			return notFound(err)
		}
		if u.Locale == locale {
			return nil
		}
		if err := tx.Model(&User{}).Where("id = ?", id).Update("locale", locale).Error; err != nil {
			return fmt.Errorf("store: unable to set language: %w", err)
		}
		return writeAudit(tx, a, s.now(), AuditEvent{Action: ActLocaleChange, ObjectType: "user", ObjectID: idStr(id),
			Before: map[string]any{"locale": u.Locale}, After: map[string]any{"locale": locale}})
	})
}
