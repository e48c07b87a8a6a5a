package handlers

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

func (h *Handlers) accountPage(c *fiber.Ctx, status int, errs models.FieldErrors) error {
	id := IdentityOf(c)
	sessions, err := h.Store.ListSessions(id.User.ID)
	if err != nil {
		return err
	}
	return h.Render(c, status, views.AccountPage(views.AccountData{
		Errors: errs, Sessions: sessions, CurrentID: id.Session.ID, Forced: id.User.MustChangePassword,
	}))
}

// Account shows the own-account page: password change and sessions.
func (h *Handlers) Account(c *fiber.Ctx) error {
	return h.accountPage(c, fiber.StatusOK, nil)
}

// AccountPasswordUpdate changes the user's own password; other sessions end
// and this one gets a new id.
func (h *Handlers) AccountPasswordUpdate(c *fiber.Ctx) error {
	id := IdentityOf(c)
	current, next, confirm := c.FormValue("current"), c.FormValue("new"), c.FormValue("confirm")
	if next != confirm {
		return h.accountPage(c, fiber.StatusUnprocessableEntity, models.FieldErrors{"confirm": "err.password_mismatch"})
	}
	token, _, err := h.Store.ChangeOwnPassword(actor(c), id.Session, current, next)
	var fe models.FieldErrors
	if errors.As(err, &fe) {
		return h.accountPage(c, fiber.StatusUnprocessableEntity, fe)
	}
	if err != nil {
		return err
	}
	if err := h.Sessions.write(c, cookiePayload{Token: token}); err != nil {
		return err
	}
	h.flash(c, "success", "account.password_changed")
	return redirect(c, "/account")
}
