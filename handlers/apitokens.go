package handlers

import (
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// API tokens in the console. Admins make tokens for any merchants (or all
// of them) with any permission; operators only for merchants in their own
// scope and with the permissions their role has (models.PermissionsFor), and
// they see and revoke only tokens whose merchants all lie in their scope.
// Making a token needs a fresh step-up check (the route's StepUp flag).

// APITokenList lists the tokens the user may see.
func (h *Handlers) APITokenList(c *fiber.Ctx) error {
	list, err := h.Store.ListAPITokens(scope(c))
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.APITokensListPage(views.APITokensPage{Tokens: list, Now: h.Store.Now()}))
}

// APITokenNew shows the form for a new token.
func (h *Handlers) APITokenNew(c *fiber.Ctx) error {
	return h.apiTokenForm(c, fiber.StatusOK, views.APITokenForm{Permissions: []string{models.PermLedgerRead}})
}

func (h *Handlers) apiTokenForm(c *fiber.Ctx, status int, form views.APITokenForm) error {
	user := IdentityOf(c).User
	merchants, _, err := h.Store.ListMerchants(user.Scope(), models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	form.MerchantChoices, form.PermissionChoices, form.AllowAll = merchants, models.PermissionsFor(user.Role), user.Scope().All
	if len(form.Merchants) == 0 && len(merchants) == 1 {
		form.Merchants = []string{merchants[0].Code}
	}
	return h.Render(c, status, views.APITokenFormPage(form))
}

// APITokenCreate makes a token and shows its secret, once, on the page that
// answers the POST: never in a redirect, a flash or a URL. Bad input shows
// the form again with the messages and makes nothing.
func (h *Handlers) APITokenCreate(c *fiber.Ctx) error {
	form := views.APITokenForm{Name: c.FormValue("name"), AllMerchants: c.FormValue("all_merchants") != "",
		Merchants: formList(c, "merchants"), Permissions: formList(c, "permissions"),
		Expires: strings.TrimSpace(c.FormValue("expires")), AllowedIPs: c.FormValue("allowed_ips")}
	in := models.APITokenInput{Name: form.Name, AllMerchants: form.AllMerchants, Merchants: form.Merchants,
		Permissions: form.Permissions, AllowedIPs: form.AllowedIPs}
	if form.Expires != "" {
		// The token works through the whole day named, in the console's zone.
		d, err := time.ParseInLocation(time.DateOnly, form.Expires, views.DisplayZone)
		if err != nil {
			form.Errors = models.FieldErrors{"expires": "apitokens.err_expires_date"}
			return h.apiTokenForm(c, fiber.StatusUnprocessableEntity, form)
		}
		end := d.AddDate(0, 0, 1)
		in.ExpiresAt = &end
	}
	t, secret, err := h.Store.CreateAPIToken(actor(c), IdentityOf(c).User, in)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		form.Errors = fe
		return h.apiTokenForm(c, fiber.StatusUnprocessableEntity, form)
	case err != nil:
		return err
	}
	return h.Render(c, fiber.StatusOK, views.APITokenCreatedPage(views.APITokenCreated{Token: t, Secret: secret, Origin: c.BaseURL()}))
}

// APITokenRevoke stops a token at once; the next request with it gets 401.
func (h *Handlers) APITokenRevoke(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	t, err := h.Store.RevokeAPIToken(actor(c), scope(c), id)
	if err != nil {
		return storeErr(err)
	}
	h.flash(c, "success", "apitokens.revoked_flash", t.Name)
	return redirect(c, "/api-tokens")
}
