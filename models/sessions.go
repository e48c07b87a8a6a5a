package models

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Session lifetimes: a session ends after 30 minutes without a request, and 12
// hours after sign-in whatever happens.
const (
	SessionIdle     = 30 * time.Minute
	SessionAbsolute = 12 * time.Hour
	// touchEvery bounds how often a request writes last_seen_at.
	touchEvery = time.Minute
)

// Session is a signed-in browser. Only a SHA-256 of its token is stored, so a
// copy of the database does not yield working session cookies.
type Session struct {
	ID          uint64 `gorm:"primaryKey"`
	TokenHash   string `json:"-"`
	UserID      uint64
	CSRFToken   string `gorm:"column:csrf_token" json:"-"`
	PrivVersion int
	IP          string
	UserAgent   string
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time
	// StepUpAt is when the session last passed a step-up check (nil: never).
	StepUpAt *time.Time
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func insertSession(tx *gorm.DB, userID uint64, priv int, ip, ua string, now, created, expires time.Time, csrf string) (string, *Session, error) {
	token := RandomToken(32) // 256 bits
	sess := &Session{
		TokenHash: hashToken(token), UserID: userID, CSRFToken: csrf, PrivVersion: priv,
		IP: truncate(ip, 64), UserAgent: truncate(ua, 255), CreatedAt: created, LastSeenAt: now, ExpiresAt: expires,
	}
	if err := tx.Create(sess).Error; err != nil {
		return "", nil, fmt.Errorf("store: unable to create session: %w", err)
	}
	return token, sess, nil
}

// Login checks a username and password under the lockout policy and, when
// they are right, opens a new session. Every outcome is audited; every failure
// returns the same ErrBadCredentials so the caller cannot tell why. A user with
// two-factor sign-in gets ErrSecondFactorRequired instead of a session: the
// console signs them in with LoginStart and LoginSecondFactor.
func (s *Store) Login(a Actor, username, password, userAgent string) (*User, string, *Session, error) {
	out, err := s.LoginStart(a, username, password, userAgent)
	if err != nil {
		return nil, "", nil, err
	}
	if out.Challenge != "" {
		return out.User, "", nil, ErrSecondFactorRequired
	}
	return out.User, out.Token, out.Session, nil
}

// LoginOutcome is what the password step of a sign-in led to: a session
// (Token, Session), or, for a user with two-factor sign-in, a challenge token
// the second step must present with a code.
type LoginOutcome struct {
	User      *User
	Token     string
	Session   *Session
	Challenge string
}

// LoginStart is the password step of a sign-in. Users without a second factor
// get their session at once; users with one get a challenge that lasts
// LoginChallengeTTL. A right password does not clear the failure count of a
// user with a second factor: the lockout counts failures of both steps until
// the second one succeeds.
func (s *Store) LoginStart(a Actor, username, password, userAgent string) (*LoginOutcome, error) {
	name := NormalizeUsername(username)
	var u User
	err := s.DB.Where("username = ?", name).First(&u).Error
	if err != nil {
		VerifyPassword(dummyHash, password) // same work as for a real account
		if err := s.Audit(a, AuditEvent{Action: ActLoginFailure, ObjectType: "user", Detail: "unknown user",
			After: map[string]any{"username": truncate(name, 64)}}); err != nil {
			return nil, err
		}
		return nil, ErrBadCredentials
	}
	ok := VerifyPassword(u.PasswordHash, password)
	now := s.now()
	switch {
	case u.LockedUntil != nil && now.Before(*u.LockedUntil):
		return nil, s.loginRefused(a, &u, "account locked until "+u.LockedUntil.Format(time.RFC3339), false)
	case u.Disabled:
		return nil, s.loginRefused(a, &u, "account disabled", false)
	case !ok:
		return nil, s.loginRefused(a, &u, "wrong password", true)
	}
	if u.TwoFactor {
		token, err := s.newChallenge(a, &u, userAgent, now)
		if err != nil {
			return nil, err
		}
		return &LoginOutcome{User: &u, Challenge: token}, nil
	}
	token, sess, err := s.openSession(a, &u, userAgent, now, "session %d")
	if err != nil {
		return nil, err
	}
	if err := s.loadMerchants(s.DB, &u); err != nil {
		return nil, err
	}
	return &LoginOutcome{User: &u, Token: token, Session: sess}, nil
}

// openSession completes a sign-in: it clears the failure count, records the
// time, opens a session and audits the success (detail names the session id
// with %d). extra runs in the same transaction first, when given.
func (s *Store) openSession(a Actor, u *User, userAgent string, now time.Time, detail string, extra ...func(tx *gorm.DB) error) (string, *Session, error) {
	var token string
	var sess *Session
	err := s.Tx(func(tx *gorm.DB) error {
		for _, f := range extra {
			if err := f(tx); err != nil {
				return err
			}
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{
			"failed_logins": 0, "failed_window_start": nil, "locked_until": nil, "last_login_at": now,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to record sign-in: %w", err)
		}
		var err error
		token, sess, err = insertSession(tx, u.ID, u.PrivVersion, a.IP, userAgent, now, now, now.Add(SessionAbsolute), RandomToken(32))
		if err != nil {
			return err
		}
		a.UserID, a.Name = u.ID, u.Username
		return writeAudit(tx, a, now, AuditEvent{Action: ActLoginSuccess, ObjectType: "user", ObjectID: idStr(u.ID),
			Detail: fmt.Sprintf(detail, sess.ID)})
	})
	if err != nil {
		return "", nil, err
	}
	return token, sess, nil
}

// loginRefused records a failed attempt and, when count is set, counts it
// towards the lockout (locking the account at the threshold).
func (s *Store) loginRefused(a Actor, u *User, reason string, count bool) error {
	return s.refused(a, u, ActLoginFailure, reason, count, ErrBadCredentials)
}

// refused records a failed check (a sign-in step or a step-up) as action and,
// when count is set, counts it towards the lockout; it returns ret.
func (s *Store) refused(a Actor, u *User, action, reason string, count bool, ret error) error {
	err := s.Tx(func(tx *gorm.DB) error {
		now := s.now()
		if count {
			var cur User
			if err := s.forUpdate(tx).First(&cur, u.ID).Error; err != nil {
				return err
			}
			n, start := cur.FailedLogins, cur.FailedWindowStart
			if start == nil || now.Sub(*start) >= LockWindow {
				n, start = 0, &now
			}
			n++
			upd := map[string]any{"failed_logins": n, "failed_window_start": *start}
			locked := n >= LockThreshold
			if locked {
				until := now.Add(LockDuration)
				upd["locked_until"], upd["failed_logins"], upd["failed_window_start"] = until, 0, nil
			}
			if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(upd).Error; err != nil {
				return fmt.Errorf("store: unable to count failed sign-in: %w", err)
			}
			if locked {
				if err := writeAudit(tx, a, now, AuditEvent{Action: ActUserLocked, ObjectType: "user", ObjectID: idStr(u.ID),
					Detail: fmt.Sprintf("%d failed sign-ins within %s; locked for %s", LockThreshold, LockWindow, LockDuration),
					After:  map[string]any{"username": u.Username, "locked_until": upd["locked_until"]}}); err != nil {
					return err
				}
			}
		}
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "user", ObjectID: idStr(u.ID),
			Detail: reason, After: map[string]any{"username": u.Username}})
	})
	if err != nil {
		return err
	}
	return ret
}

// LookupSession finds the live session for a cookie token and its user. An
// expired, idle or revoked session, or one whose user is disabled, is
// ErrNotFound (and is deleted).
func (s *Store) LookupSession(token string) (*Session, *User, error) {
	if token == "" {
		return nil, nil, ErrNotFound
	}
	var sess Session
	if err := s.DB.Where("token_hash = ?", hashToken(token)).First(&sess).Error; err != nil {
		return nil, nil, notFound(err)
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= SessionIdle {
		s.DB.Delete(&Session{}, sess.ID)
		return nil, nil, ErrNotFound
	}
	u, err := s.GetUser(sess.UserID)
	if err != nil {
		return nil, nil, err
	}
	if u.Disabled {
		s.DB.Where("user_id = ?", u.ID).Delete(&Session{})
		return nil, nil, ErrNotFound
	}
	if now.Sub(sess.LastSeenAt) >= touchEvery {
		// Best effort: on SQLite a long statement import holds the only write
		// lock for minutes, and a page view must not fail for want of this
		// timestamp. A missed touch can only end the session early, never late.
		if err := s.DB.Model(&Session{}).Where("id = ?", sess.ID).Update("last_seen_at", now).Error; err == nil {
			sess.LastSeenAt = now
		}
	}
	return &sess, u, nil
}

// RotateSession replaces a session by one with a new id and token, keeping its
// absolute expiry and CSRF token. It is used when the user's privileges changed.
func (s *Store) RotateSession(old *Session, privVersion int) (string, *Session, error) {
	var token string
	var ns *Session
	err := s.Tx(func(tx *gorm.DB) error {
		res := tx.Delete(&Session{}, old.ID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound // revoked meanwhile
		}
		var err error
		token, ns, err = insertSession(tx, old.UserID, privVersion, old.IP, old.UserAgent, s.now(), old.CreatedAt, old.ExpiresAt, old.CSRFToken)
		return err
	})
	return token, ns, err
}

// Logout ends one session, audited.
func (s *Store) Logout(a Actor, sess *Session) error {
	return s.Tx(func(tx *gorm.DB) error {
		if err := tx.Delete(&Session{}, sess.ID).Error; err != nil {
			return fmt.Errorf("store: unable to end session: %w", err)
		}
		return writeAudit(tx, a, s.now(), AuditEvent{Action: ActLogout, ObjectType: "session", ObjectID: idStr(sess.ID)})
	})
}

// ListSessions returns the live sessions of a user, newest first.
func (s *Store) ListSessions(userID uint64) ([]Session, error) {
	now := s.now()
	var out []Session
	err := s.DB.Where("user_id = ? AND expires_at > ? AND last_seen_at > ?", userID, now, now.Add(-SessionIdle)).
		Order("id DESC").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to list sessions: %w", err)
	}
	return out, nil
}

// RevokeSession ends one session of a user (an admin terminating it), audited.
func (s *Store) RevokeSession(a Actor, userID, sessionID uint64) error {
	return s.Tx(func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND user_id = ?", sessionID, userID).Delete(&Session{})
		if res.Error != nil {
			return fmt.Errorf("store: unable to revoke session: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return writeAudit(tx, a, s.now(), AuditEvent{Action: ActSessionRevoke, ObjectType: "session", ObjectID: idStr(sessionID),
			Detail: "session of user " + idStr(userID) + " terminated"})
	})
}

// RevokeAllSessions ends every session of a user, audited; it returns how many.
func (s *Store) RevokeAllSessions(a Actor, userID uint64) (int64, error) {
	var n int64
	err := s.Tx(func(tx *gorm.DB) error {
		res := tx.Where("user_id = ?", userID).Delete(&Session{})
		if res.Error != nil {
			return fmt.Errorf("store: unable to revoke sessions: %w", res.Error)
		}
		n = res.RowsAffected
		return writeAudit(tx, a, s.now(), AuditEvent{Action: ActSessionRevokeAll, ObjectType: "user", ObjectID: idStr(userID),
			Detail: fmt.Sprintf("%d session(s) terminated", n)})
	})
	return n, err
}

// PurgeExpiredSessions deletes sessions past their absolute or idle expiry.
func (s *Store) PurgeExpiredSessions() (int64, error) {
	now := s.now()
	res := s.DB.Where("expires_at <= ? OR last_seen_at <= ?", now, now.Add(-SessionIdle)).Delete(&Session{})
	return res.RowsAffected, res.Error
}
