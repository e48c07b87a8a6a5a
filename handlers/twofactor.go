package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// SecondFactorForm shows the second sign-in step: the authenticator code or a
// recovery code, for the sign-in whose password step this browser passed.
func (h *Handlers) SecondFactorForm(c *fiber.Ctx) error {
	next := SafeNext(c.Query("next"))
	if IdentityOf(c).User != nil {
		return redirect(c, next)
	}
	if _, err := h.Store.ChallengeUser(h.Sessions.read(c).Pending); err != nil {
		h.flash(c, "error", models.ErrChallengeExpired.Error())
		return redirect(c, "/login?next="+url.QueryEscape(next))
	}
	return h.Render(c, fiber.StatusOK, views.SecondFactorPage(views.SecondFactorForm{Next: next}))
}

// SecondFactorSubmit checks the code of the second sign-in step and, when it
// is right, opens the session (with a new id: the pending sign-in's token is
// spent). Wrong codes count towards the lockout and the address's throttle.
func (h *Handlers) SecondFactorSubmit(c *fiber.Ctx) error {
	form := views.SecondFactorForm{Next: SafeNext(c.FormValue("next"))}
	if IdentityOf(c).User != nil {
		return redirect(c, form.Next)
	}
	ip := ClientIP(c)
	if ok, wait := h.Limiter.Allow(ip); !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		h.Log.Warn("second sign-in step throttled", "ip", ip, "request_id", requestID(c))
		form.Error = "auth.throttled"
		return h.Render(c, fiber.StatusTooManyRequests, views.SecondFactorPage(form))
	}
	code := strings.TrimSpace(c.FormValue("code"))
	if code == "" {
		form.Error = "twofa.err_code_missing"
		return h.Render(c, fiber.StatusUnprocessableEntity, views.SecondFactorPage(form))
	}
	if len(code) > 64 {
		code = ""
	}
	u, token, _, err := h.Store.LoginSecondFactor(actor(c), h.Sessions.read(c).Pending, code)
	switch {
	case errors.Is(err, models.ErrBadCode):
		h.Limiter.Fail(ip)
		form.Error = "twofa.err_code"
		return h.Render(c, fiber.StatusUnauthorized, views.SecondFactorPage(form))
	case errors.Is(err, models.ErrChallengeExpired):
		h.Limiter.Fail(ip)
		if err := h.Sessions.write(c, cookiePayload{CSRF: IdentityOf(c).CSRF}); err != nil {
			return err
		}
		h.flash(c, "error", models.ErrChallengeExpired.Error())
		return redirect(c, "/login?next="+url.QueryEscape(form.Next))
	case credentialKey(err) != "":
		// The secret cannot be opened under this master key; a recovery
		// code (stored hashed, not sealed) still works.
		form.Error = credentialKey(err)
		return h.Render(c, fiber.StatusServiceUnavailable, views.SecondFactorPage(form))
	case err != nil:
		return err
	}
	return h.signedIn(c, u, token, form.Next)
}

// twoFactorPage renders the own two-factor page: the enrolment (QR code,
// manual key, first code) or, once enrolled, the status and its actions.
func (h *Handlers) twoFactorPage(c *fiber.Ctx, status int, d views.TwoFactorData) error {
	u := IdentityOf(c).User
	st, err := h.Store.TwoFactorState(u.ID)
	if err != nil {
		return err
	}
	d.State = st
	if !st.Enabled {
		secret, err := h.Store.PendingTOTP(u.ID)
		if key := credentialKey(err); key != "" {
			d.VaultError = key
		} else if err != nil {
			return err
		}
		d.ManualKey = groupKey(secret)
		d.Required, err = h.Store.MustEnrol(u)
		if err != nil {
			return err
		}
	}
	return h.Render(c, status, views.TwoFactorPage(d))
}

// groupKey writes a base32 key in groups of four for reading and typing.
func groupKey(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TwoFactor shows the own two-factor page (GET /account/2fa). While the user
// is not enrolled it keeps one pending secret for them (made on the first
// visit, kept until confirmed) so a reload shows the same QR code.
func (h *Handlers) TwoFactor(c *fiber.Ctx) error {
	return h.twoFactorPage(c, fiber.StatusOK, views.TwoFactorData{})
}

// TwoFactorQR draws the pending secret as a QR code (PNG) for an
// authenticator app. The secret is read from the user's pending enrolment,
// never from the URL; the image is not cached.
func (h *Handlers) TwoFactorQR(c *fiber.Ctx) error {
	u := IdentityOf(c).User
	secret, err := h.Store.PendingTOTP(u.ID)
	if errors.Is(err, models.ErrTwoFactorEnabled) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	key, err := models.TOTPKey(secret, u.Username)
	if err != nil {
		return err
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return fmt.Errorf("twofa: unable to draw the QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("twofa: unable to encode the QR code: %w", err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Type("png")
	return c.Send(buf.Bytes())
}

// TwoFactorEnable confirms the enrolment with a first code and shows the
// recovery codes, once (rendered from the POST, never stored in plain text).
func (h *Handlers) TwoFactorEnable(c *fiber.Ctx) error {
	u := IdentityOf(c).User
	codes, err := h.Store.ConfirmTOTP(actor(c), u.ID, c.FormValue("code"))
	switch {
	case errors.Is(err, models.ErrBadCode):
		return h.twoFactorPage(c, fiber.StatusUnprocessableEntity, views.TwoFactorData{CodeError: "twofa.err_code"})
	case errors.Is(err, models.ErrTwoFactorEnabled):
		h.flash(c, "info", "twofa.err_enabled")
		return redirect(c, "/account/2fa")
	case credentialKey(err) != "":
		return h.twoFactorPage(c, fiber.StatusUnprocessableEntity, views.TwoFactorData{VaultError: credentialKey(err)})
	case err != nil:
		return err
	}
	return h.Render(c, fiber.StatusOK, views.RecoveryCodesPage(views.RecoveryCodes{Codes: codes, Enrolled: true}))
}

// TwoFactorDisable turns the own second factor off with a current code.
func (h *Handlers) TwoFactorDisable(c *fiber.Ctx) error {
	u := IdentityOf(c).User
	err := h.Store.DisableTOTP(actor(c), u.ID, strings.TrimSpace(c.FormValue("code")))
	switch {
	case errors.Is(err, models.ErrBadCode):
		h.Limiter.Fail(ClientIP(c))
		return h.twoFactorPage(c, fiber.StatusUnprocessableEntity, views.TwoFactorData{DisableError: "twofa.err_code"})
	case errors.Is(err, models.ErrTwoFactorNotEnabled):
		return redirect(c, "/account/2fa")
	case err != nil:
		return err
	}
	h.flash(c, "success", "twofa.disabled")
	return redirect(c, "/account/2fa")
}

// TwoFactorRecoveryRegenerate replaces the own recovery codes and shows the new ones once.
func (h *Handlers) TwoFactorRecoveryRegenerate(c *fiber.Ctx) error {
	codes, err := h.Store.RegenerateRecoveryCodes(actor(c), IdentityOf(c).User.ID)
	if errors.Is(err, models.ErrTwoFactorNotEnabled) {
		return redirect(c, "/account/2fa")
	}
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.RecoveryCodesPage(views.RecoveryCodes{Codes: codes}))
}

// StepUpForm asks for the password (and a code, when the user has a second
// factor) before a dangerous action; next is where the user was going.
func (h *Handlers) StepUpForm(c *fiber.Ctx) error {
	return h.Render(c, fiber.StatusOK, views.StepUpPage(views.StepUpForm{
		Next: SafeNext(c.Query("next")), Resubmit: c.Query("resubmit") == "1", TwoFactor: IdentityOf(c).User.TwoFactor,
		Cancel: stepUpCancel(c),
	}))
}

// stepUpCancel is where the step-up form's Cancel leads: the same-site page
// the user came from (not the guarded page, which would ask again), else home.
func stepUpCancel(c *fiber.Ctx) string {
	ref, err := url.Parse(c.Get(fiber.HeaderReferer))
	if err != nil || ref.Host != string(c.Request().URI().Host()) || ref.Path == "" || ref.Path == "/account/step-up" {
		return "/"
	}
	return SafeNext(ref.RequestURI())
}

// StepUpSubmit checks the step-up form and sends the user back where they
// were going. A POST that was stopped for the check is not replayed (its
// form may have held secrets, which are never stored): the user lands back on
// the form with a message and submits it again.
func (h *Handlers) StepUpSubmit(c *fiber.Ctx) error {
	id := IdentityOf(c)
	form := views.StepUpForm{Next: SafeNext(c.FormValue("next")), Resubmit: c.FormValue("resubmit") == "1", TwoFactor: id.User.TwoFactor,
		Cancel: SafeNext(c.FormValue("cancel"))}
	ip := ClientIP(c)
	if ok, wait := h.Limiter.Allow(ip); !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		form.Error = "auth.throttled"
		return h.Render(c, fiber.StatusTooManyRequests, views.StepUpPage(form))
	}
	password, code := c.FormValue("password"), strings.TrimSpace(c.FormValue("code"))
	if len(password) > 4*models.MaxPasswordLen {
		password = ""
	}
	if len(code) > 64 {
		code = ""
	}
	err := h.Store.StepUp(actor(c), id.Session, password, code)
	if errors.Is(err, models.ErrStepUpFailed) {
		h.Limiter.Fail(ip)
		form.Error = "twofa.err_step_up"
		if !id.User.TwoFactor {
			form.Error = "twofa.err_step_up_password"
		}
		return h.Render(c, fiber.StatusUnprocessableEntity, views.StepUpPage(form))
	}
	if key := credentialKey(err); key != "" {
		form.Error = key
		return h.Render(c, fiber.StatusServiceUnavailable, views.StepUpPage(form))
	}
	if err != nil {
		return storeErr(err)
	}
	if form.Resubmit {
		h.flash(c, "info", "twofa.step_up_resubmit")
	} else {
		h.flash(c, "success", "twofa.step_up_done")
	}
	return redirect(c, form.Next)
}

// UserTwoFactorReset removes another user's second factor (a lost phone),
// with a reason for the audit log; their sessions end.
func (h *Handlers) UserTwoFactorReset(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	err = h.Store.ResetTwoFactor(actor(c), id, c.FormValue("reason"))
	var fe models.FieldErrors
	switch {
	case err == nil:
		h.flash(c, "success", "twofa.reset_done")
	case errors.As(err, &fe):
		h.flash(c, "error", fe["reason"])
	case errors.Is(err, models.ErrSelfChange), errors.Is(err, models.ErrTwoFactorNotEnabled):
		h.flash(c, "error", err.Error())
	default:
		return storeErr(err)
	}
	return redirect(c, fmt.Sprintf("/users/%d", id))
}

// TwoFactorPolicyUpdate makes two-factor sign-in compulsory for every user, or
// for admins only again.
func (h *Handlers) TwoFactorPolicyUpdate(c *fiber.Ctx) error {
	on := c.FormValue("required") == "1"
	if err := h.Store.SetTwoFactorRequiredForAll(actor(c), on); err != nil {
		return err
	}
	if on {
		h.flash(c, "success", "twofa.policy_all")
	} else {
		h.flash(c, "success", "twofa.policy_admins")
	}
	return redirect(c, "/users")
}
