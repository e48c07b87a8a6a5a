package handlers

import (
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// LoadIdentity is the session middleware: it resolves the session cookie to a
// user (giving the session a new id when the user's privileges changed since
// it was issued), or keeps an anonymous visitor's pre-login CSRF token, and
// picks the language.
func (h *Handlers) LoadIdentity(c *fiber.Ctx) error {
	if strings.HasPrefix(c.Path(), "/notify/") {
		return c.Next() // channels' webhooks carry no session
	}
	p := h.Sessions.read(c)
	id := &Identity{}
	if p.Token != "" {
		sess, u, err := h.Store.LookupSession(p.Token)
		switch {
		case err == nil:
			if sess.PrivVersion != u.PrivVersion {
				token, ns, err := h.Store.RotateSession(sess, u.PrivVersion)
				if err != nil && !errors.Is(err, models.ErrNotFound) {
					return err
				}
				if err == nil {
					if err := h.Sessions.write(c, cookiePayload{Token: token}); err != nil {
						return err
					}
					sess = ns
				} else {
					sess, u = nil, nil
				}
			}
			if sess != nil {
				id.User, id.Session, id.CSRF = u, sess, sess.CSRFToken
			}
		case !errors.Is(err, models.ErrNotFound):
			return err
		}
	}
	if id.User == nil {
		id.CSRF = p.CSRF
		if id.CSRF == "" || p.Token != "" {
			id.CSRF = models.RandomToken(32)
			if err := h.Sessions.write(c, cookiePayload{CSRF: id.CSRF}); err != nil {
				return err
			}
		}
	}
	switch {
	case id.User != nil && views.NormalizeLanguage(id.User.Locale) != "":
		id.Lang = views.NormalizeLanguage(id.User.Locale)
	case views.NormalizeLanguage(c.Cookies(langCookie)) != "":
		id.Lang = views.NormalizeLanguage(c.Cookies(langCookie))
	default:
		id.Lang = views.MatchLanguage(c.Get(fiber.HeaderAcceptLanguage))
	}
	c.Locals(identityKey, id)
	return c.Next()
}

// LoginForm shows the sign-in page.
func (h *Handlers) LoginForm(c *fiber.Ctx) error {
	if IdentityOf(c).User != nil {
		return redirect(c, SafeNext(c.Query("next")))
	}
	return h.Render(c, fiber.StatusOK, views.LoginPage(views.LoginForm{Next: SafeNext(c.Query("next"))}))
}

// LoginSubmit checks the credentials and opens a session with a new id.
func (h *Handlers) LoginSubmit(c *fiber.Ctx) error {
	username, password := c.FormValue("username"), c.FormValue("password")
	form := views.LoginForm{Username: username, Next: SafeNext(c.FormValue("next"))}
	if len(form.Username) > 64 {
		form.Username = form.Username[:64]
	}
	ip := ClientIP(c)
	if ok, wait := h.Limiter.Allow(ip); !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		h.Log.Warn("sign-in throttled", "ip", ip, "request_id", requestID(c))
		form.Error = "auth.throttled"
		return h.Render(c, fiber.StatusTooManyRequests, views.LoginPage(form))
	}
	if username == "" || password == "" {
		form.Error = "auth.missing"
		return h.Render(c, fiber.StatusUnprocessableEntity, views.LoginPage(form))
	}
	if len(password) > 4*models.MaxPasswordLen { // no account has such a password; spare the hashing
		password = ""
	}
	out, err := h.Store.LoginStart(actor(c), username, password, c.Get(fiber.HeaderUserAgent))
	if errors.Is(err, models.ErrBadCredentials) {
		h.Limiter.Fail(ip)
		form.Error = "auth.failed"
		return h.Render(c, fiber.StatusUnauthorized, views.LoginPage(form))
	}
	if err != nil {
		return err
	}
	if out.Challenge != "" {
		// Two-factor sign-in: the cookie carries the pending sign-in (not a
		// session) to the code page; the session opens after the code.
		if err := h.Sessions.write(c, cookiePayload{CSRF: IdentityOf(c).CSRF, Pending: out.Challenge}); err != nil {
			return err
		}
		return redirect(c, "/login/2fa?next="+url.QueryEscape(form.Next))
	}
	return h.signedIn(c, out.User, out.Token, form.Next)
}

// signedIn writes the new session's cookie and sends the user on: to the
// forced password change, to enrolment when their role requires a second
// factor they lack, or where they were going.
func (h *Handlers) signedIn(c *fiber.Ctx, u *models.User, token, next string) error {
	if err := h.Sessions.write(c, cookiePayload{Token: token}); err != nil {
		return err
	}
	if u.MustChangePassword {
		return redirect(c, "/account")
	}
	must, err := h.Store.MustEnrol(u)
	if err != nil {
		return err
	}
	if must {
		h.flash(c, "info", "twofa.enrol_required")
		return redirect(c, "/account/2fa")
	}
	return redirect(c, next)
}

// Logout ends the session on the server and forgets the cookie.
func (h *Handlers) Logout(c *fiber.Ctx) error {
	id := IdentityOf(c)
	if id.Session != nil {
		if err := h.Store.Logout(actor(c), id.Session); err != nil {
			return err
		}
	}
	if err := h.Sessions.write(c, cookiePayload{CSRF: models.RandomToken(32)}); err != nil {
		return err
	}
	h.flash(c, "success", "auth.logged_out")
	return redirect(c, "/login")
}

// SetLanguage stores the language choice (cookie, and the user's profile when signed in).
func (h *Handlers) SetLanguage(c *fiber.Ctx) error {
	lang := views.NormalizeLanguage(c.FormValue("lang"))
	if lang == "" {
		return fiber.NewError(fiber.StatusBadRequest, "unknown language")
	}
	c.Cookie(&fiber.Cookie{Name: langCookie, Value: lang, Path: "/", Expires: time.Now().AddDate(1, 0, 0),
		HTTPOnly: true, Secure: h.Sessions.secure, SameSite: fiber.CookieSameSiteLaxMode})
	if id := IdentityOf(c); id.User != nil {
		if err := h.Store.SetLocale(actor(c), id.User.ID, lang); err != nil {
			return err
		}
	}
	return redirect(c, SafeNext(c.FormValue("next")))
}
