package handlers

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"payfuse/models"
)

// Identity is who is making the request: a signed-in user with their session,
// or an anonymous visitor with a pre-login CSRF token.
type Identity struct {
	User    *models.User    // nil when anonymous
	Session *models.Session // nil when anonymous
	CSRF    string
	Lang    string
}

// cookiePayload is what the session cookie carries, sealed and signed by the
// gorilla/sessions codecs: a random session token when signed in (the session
// itself lives in the database), or a CSRF token (and, between the two steps
// of a two-factor sign-in, the pending sign-in's token) before sign-in.
type cookiePayload struct {
	Token string `json:"t,omitempty"`
	CSRF  string `json:"c,omitempty"`
	// Pending is the token of a sign-in whose password step passed and whose
	// second step (the authenticator code) is still to come: not a session.
	Pending string `json:"p,omitempty"`
}

// flashPayload is a one-time message carried to the next page in a cookie.
type flashPayload struct {
	Kind string `json:"k"`
	Key  string `json:"m"`
	Arg  string `json:"a,omitempty"`
}

// SessionManager reads and writes the session and flash cookies.
type SessionManager struct {
	codecs []securecookie.Codec
	secure bool
	name   string
}

// Cookie names. With --secure-cookies the session cookie takes the __Host-
// prefix, which browsers accept only over HTTPS, for path / and without a domain.
const (
	sessionCookie = "payfuse_session"
	flashCookie   = "payfuse_flash"
	langCookie    = "payfuse_lang"
)

// NewSessionManager derives the cookie signing and encryption keys from the
// master key, so cookies survive restarts without another secret to manage.
func NewSessionManager(masterKey []byte, secure bool) (*SessionManager, error) {
	if len(masterKey) != models.MasterKeySize {
		return nil, errors.New("session: master key must be 32 bytes")
	}
	hashKey, err := hkdf.Key(sha256.New, masterKey, nil, "payfuse session cookie mac", 64)
	if err != nil {
		return nil, err
	}
	blockKey, err := hkdf.Key(sha256.New, masterKey, nil, "payfuse session cookie enc", 32)
	if err != nil {
		return nil, err
	}
	store := sessions.NewCookieStore(hashKey, blockKey)
	store.MaxAge(int(models.SessionAbsolute / time.Second)) // bounds the signed timestamp too
	name := sessionCookie
	if secure {
		name = "__Host-" + sessionCookie
	}
	return &SessionManager{codecs: store.Codecs, secure: secure, name: name}, nil
}

// CookieName is the session cookie's name (it depends on --secure-cookies).
func (m *SessionManager) CookieName() string { return m.name }

func (m *SessionManager) read(c *fiber.Ctx) cookiePayload {
	var p cookiePayload
	raw := c.Cookies(m.name)
	if raw == "" {
		return p
	}
	if err := securecookie.DecodeMulti(m.name, raw, &p, m.codecs...); err != nil {
		return cookiePayload{}
	}
	return p
}

func (m *SessionManager) write(c *fiber.Ctx, p cookiePayload) error {
	enc, err := securecookie.EncodeMulti(m.name, p, m.codecs...)
	if err != nil {
		return err
	}
	c.Cookie(m.cookie(m.name, enc, time.Time{}))
	return nil
}

func (m *SessionManager) cookie(name, value string, expires time.Time) *fiber.Cookie {
	return &fiber.Cookie{
		Name: name, Value: value, Path: "/", Expires: expires,
		HTTPOnly: true, Secure: m.secure, SameSite: fiber.CookieSameSiteLaxMode,
	}
}

func (m *SessionManager) clear(c *fiber.Ctx, name string) {
	c.Cookie(m.cookie(name, "", time.Unix(0, 0)))
}

func (m *SessionManager) setFlash(c *fiber.Ctx, f flashPayload) {
	enc, err := securecookie.EncodeMulti(flashCookie, f, m.codecs...)
	if err != nil {
		return
	}
	c.Cookie(m.cookie(flashCookie, enc, time.Time{}))
}

func (m *SessionManager) takeFlash(c *fiber.Ctx) *flashPayload {
	raw := c.Cookies(flashCookie)
	if raw == "" {
		return nil
	}
	m.clear(c, flashCookie)
	var f flashPayload
	if err := securecookie.DecodeMulti(flashCookie, raw, &f, m.codecs...); err != nil {
		return nil
	}
	return &f
}
