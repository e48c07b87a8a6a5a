package handlers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

const usersPerPage = 25

// UserList shows users with search, role and status filters (admin).
func (h *Handlers) UserList(c *fiber.Ctx) error {
	page, _ := strconv.Atoi(c.Query("page"))
	if page < 1 {
		page = 1
	}
	f := models.UserFilter{Query: strings.TrimSpace(c.Query("q")), Role: c.Query("role"), Status: c.Query("status"), Page: page, Size: usersPerPage}
	if _, err := models.ParseRole(f.Role); err != nil {
		f.Role = ""
	}
	if f.Status != "active" && f.Status != "disabled" {
		f.Status = ""
	}
	users, total, err := h.Store.ListUsers(f)
	if err != nil {
		return err
	}
	d := views.UsersList{Users: users, Total: total, Query: f.Query, Role: f.Role, Status: f.Status}
	if d.RequireTwoFactor, err = h.Store.TwoFactorRequiredForAll(); err != nil {
		return err
	}
	if len(users) > 0 {
		d.From = (page-1)*usersPerPage + 1
		d.To = d.From + len(users) - 1
	}
	d.Prev, d.Next = pageLinks("/users", map[string]string{"q": f.Query, "role": f.Role, "status": f.Status}, page, usersPerPage, total)
	return h.Render(c, fiber.StatusOK, views.UsersListPage(d))
}

// UserNew shows the form for a new user.
func (h *Handlers) UserNew(c *fiber.Ctx) error {
	return h.Render(c, fiber.StatusOK, views.UserNewPage(views.UserForm{Role: string(models.RoleOperator)}))
}

// UserCreate stores a new user; they must change the initial password at first sign-in.
func (h *Handlers) UserCreate(c *fiber.Ctx) error {
	form := views.UserForm{Username: c.FormValue("username"), Role: c.FormValue("role"), Merchants: c.FormValue("merchants")}
	u, err := h.Store.CreateUser(actor(c), models.NewUser{
		Username: form.Username, Password: c.FormValue("password"), Role: form.Role,
		Merchants: []string{form.Merchants}, MustChangePassword: true,
	})
	var fe models.FieldErrors
	if errors.As(err, &fe) {
		form.Errors = fe
		return h.Render(c, fiber.StatusUnprocessableEntity, views.UserNewPage(form))
	}
	if err != nil {
		return err
	}
	h.flash(c, "success", "users.created", u.Username)
	return redirect(c, fmt.Sprintf("/users/%d", u.ID))
}

func (h *Handlers) userDetail(c *fiber.Ctx, u *models.User, form views.UserForm) (views.UserDetail, error) {
	sessions, err := h.Store.ListSessions(u.ID)
	if err != nil {
		return views.UserDetail{}, err
	}
	return views.UserDetail{User: u, Sessions: sessions, Form: form, Self: IdentityOf(c).User.ID == u.ID}, nil
}

// UserEdit shows one user: access, status actions and sessions.
func (h *Handlers) UserEdit(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	u, err := h.Store.GetUser(id)
	if err != nil {
		return storeErr(err)
	}
	d, err := h.userDetail(c, u, views.UserForm{Role: string(u.Role), Merchants: strings.Join(u.Merchants, ", ")})
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.UserDetailPage(d))
}

// UserUpdate changes a user's role and merchant scope.
func (h *Handlers) UserUpdate(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	form := views.UserForm{Role: c.FormValue("role"), Merchants: c.FormValue("merchants")}
	_, err = h.Store.UpdateUserAccess(actor(c), id, form.Role, []string{form.Merchants})
	if err == nil {
		h.flash(c, "success", "users.updated")
		return redirect(c, fmt.Sprintf("/users/%d", id))
	}
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		form.Errors = fe
	case errors.Is(err, models.ErrLastAdmin), errors.Is(err, models.ErrSelfChange):
		form.Error = err.Error()
	default:
		return storeErr(err)
	}
	u, err := h.Store.GetUser(id)
	if err != nil {
		return storeErr(err)
	}
	d, err := h.userDetail(c, u, form)
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusUnprocessableEntity, views.UserDetailPage(d))
}

// UserDisable disables a user and ends their sessions at once.
func (h *Handlers) UserDisable(c *fiber.Ctx) error { return h.setDisabled(c, true) }

// UserEnable lets a disabled user sign in again.
func (h *Handlers) UserEnable(c *fiber.Ctx) error { return h.setDisabled(c, false) }

func (h *Handlers) setDisabled(c *fiber.Ctx, disabled bool) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	err = h.Store.SetUserDisabled(actor(c), id, disabled)
	switch {
	case err == nil && disabled:
		h.flash(c, "success", "users.disabled")
	case err == nil:
		h.flash(c, "success", "users.enabled")
	case errors.Is(err, models.ErrLastAdmin), errors.Is(err, models.ErrSelfChange):
		h.flash(c, "error", err.Error())
	default:
		return storeErr(err)
	}
	return redirect(c, fmt.Sprintf("/users/%d", id))
}

// UserUnlock lifts a sign-in lockout.
func (h *Handlers) UserUnlock(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	if err := h.Store.UnlockUser(actor(c), id); err != nil {
		return storeErr(err)
	}
	h.flash(c, "success", "users.unlocked")
	return redirect(c, fmt.Sprintf("/users/%d", id))
}

// UserResetPassword issues a new random password, shown once, and ends the user's sessions.
func (h *Handlers) UserResetPassword(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	pw, err := h.Store.ResetPassword(actor(c), id)
	if err != nil {
		return storeErr(err)
	}
	u, err := h.Store.GetUser(id)
	if err != nil {
		return storeErr(err)
	}
	// Rendered straight from the POST so the password is never stored or redirected.
	return h.Render(c, fiber.StatusOK, views.PasswordIssuedPage(u, pw))
}

// UserSessionRevoke ends one session of a user.
func (h *Handlers) UserSessionRevoke(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sid, err := paramID(c, "sid")
	if err != nil {
		return err
	}
	if err := h.Store.RevokeSession(actor(c), id, sid); err != nil {
		return storeErr(err)
	}
	h.flash(c, "success", "sessions.revoked")
	return redirect(c, fmt.Sprintf("/users/%d", id))
}

// UserSessionsRevokeAll ends every session of a user.
func (h *Handlers) UserSessionsRevokeAll(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	if _, err := h.Store.GetUser(id); err != nil {
		return storeErr(err)
	}
	if _, err := h.Store.RevokeAllSessions(actor(c), id); err != nil {
		return err
	}
	h.flash(c, "success", "sessions.revoked_all")
	if IdentityOf(c).User.ID == id {
		return redirect(c, "/login")
	}
	return redirect(c, fmt.Sprintf("/users/%d", id))
}
