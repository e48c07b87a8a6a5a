package handlers

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"
	"payfuse/models"
	"payfuse/views"
)

// maxCredentialFile bounds an uploaded key, certificate or PFX file.
const maxCredentialFile = 256 << 10

// AccountList lists the channel accounts in scope.
func (h *Handlers) AccountList(c *fiber.Ctx) error {
	d := views.AccountsList{Channel: c.Query("channel"), Query: strings.TrimSpace(c.Query("q")), Now: time.Now(), Channels: channelOptions()}
	if _, ok := models.LookupChannel(d.Channel); !ok {
		d.Channel = ""
	}
	list, err := h.Store.ListAccounts(scope(c), models.AccountFilter{Channel: d.Channel, Query: d.Query})
	if err != nil {
		return err
	}
	d.Accounts = list
	return h.Render(c, fiber.StatusOK, views.AccountsListPage(d))
}

func (h *Handlers) accountParam(c *fiber.Ctx) (*models.ChannelAccount, *models.Merchant, channels.Spec, error) {
	id, err := paramID(c, "id")
	if err != nil {
		return nil, nil, channels.Spec{}, err
	}
	acct, err := h.Store.GetAccount(scope(c), id)
	if err != nil {
		return nil, nil, channels.Spec{}, storeErr(err)
	}
	m, err := h.Store.GetMerchant(scope(c), acct.MerchantID)
	if err != nil {
		return nil, nil, channels.Spec{}, storeErr(err)
	}
	spec, ok := models.LookupChannel(acct.Channel)
	if !ok {
		return nil, nil, channels.Spec{}, fiber.ErrNotFound
	}
	return acct, m, spec, nil
}

func (h *Handlers) accountShow(c *fiber.Ctx, status int, acct *models.ChannelAccount, m *models.Merchant, spec channels.Spec, report *channels.Report) error {
	d := views.AccountShow{Account: acct, Merchant: m, Spec: spec, NotifyURL: c.BaseURL() + acct.NotifyPath(), Report: report, Now: time.Now()}
	if IdentityOf(c).User.Role == models.RoleAdmin {
		d.CanEdit = true
		secrets, err := h.Store.SecretStatuses(acct.ID)
		if err != nil {
			return err
		}
		d.Secrets = secrets
	}
	return h.Render(c, status, views.AccountShowPage(d))
}

// AccountShow shows one channel account. Only admins see the secrets' status.
func (h *Handlers) AccountShow(c *fiber.Ctx) error {
	acct, m, spec, err := h.accountParam(c)
	if err != nil {
		return err
	}
	return h.accountShow(c, fiber.StatusOK, acct, m, spec, nil)
}

// AccountCheck re-runs the channel's credential checks and shows the report.
func (h *Handlers) AccountCheck(c *fiber.Ctx) error {
	acct, m, spec, err := h.accountParam(c)
	if err != nil {
		return err
	}
	report, err := h.Store.CheckAccount(actor(c), scope(c), acct.ID)
	if key := credentialKey(err); key != "" {
		msg := channels.Text{EN: views.Translate(views.LangEN, key), ZH: views.Translate(views.LangZH, key)}
		report = channels.Report{Problems: []channels.Problem{{Message: msg}}}
	} else if err != nil {
		return storeErr(err)
	}
	acct, err = h.Store.GetAccount(scope(c), acct.ID)
	if err != nil {
		return storeErr(err)
	}
	return h.accountShow(c, fiber.StatusOK, acct, m, spec, &report)
}

// credentialKey names the message for a vault error, or "".
func credentialKey(err error) string {
	switch {
	case errors.Is(err, models.ErrMasterKeyMismatch):
		return "accounts.err_master_key"
	case errors.Is(err, models.ErrNoMasterKey):
		return "accounts.err_no_master_key"
	case errors.Is(err, models.ErrSealBroken):
		return "accounts.err_seal"
	}
	return ""
}

// credentialFailure is the translated message for a vault error, or "".
func credentialFailure(c *fiber.Ctx, err error) string {
	if k := credentialKey(err); k != "" {
		return views.Translate(IdentityOf(c).Lang, k)
	}
	return ""
}

// AccountNew shows the form for a merchant's new account at a channel.
func (h *Handlers) AccountNew(c *fiber.Ctx) error {
	mid := parseID(c.Query("merchant"))
	m, err := h.Store.GetMerchant(scope(c), mid)
	if err != nil {
		return storeErr(err)
	}
	spec, ok := models.LookupChannel(c.Query("channel"))
	if !ok {
		return fiber.ErrNotFound
	}
	return h.Render(c, fiber.StatusOK, views.AccountFormPage(views.AccountForm{
		Merchant: m, Spec: spec, DisplayName: spec.Name.In(IdentityOf(c).Lang), Methods: spec.Methods,
		FeeRateBP: "60", Enabled: true, Settings: map[string]string{},
	}))
}

// readAccountForm collects the form into an AccountInput and the form's
// echo (without secret values).
func readAccountForm(c *fiber.Ctx, spec channels.Spec) (models.AccountInput, views.AccountForm, error) {
	in := models.AccountInput{
		Channel: spec.Code, DisplayName: c.FormValue("display_name"), Methods: formList(c, "methods"),
		Enabled: c.FormValue("enabled") == "1", Values: map[string][]byte{},
	}
	form := views.AccountForm{Spec: spec, DisplayName: in.DisplayName, Methods: in.Methods, FeeRateBP: c.FormValue("fee_rate_bp"),
		Enabled: in.Enabled, Settings: map[string]string{}, Errors: models.FieldErrors{}}
	if mf, err := c.MultipartForm(); err == nil && mf != nil {
		in.Methods = mf.Value["methods"]
		form.Methods = in.Methods
	}
	if strings.TrimSpace(form.FeeRateBP) == "" {
		in.FeeRateBP = 0
	} else if bp, err := strconv.Atoi(strings.TrimSpace(form.FeeRateBP)); err != nil {
		form.Errors["fee_rate_bp"] = "err.fee_rate"
	} else {
		in.FeeRateBP = bp
	}
	for _, f := range spec.Fields {
		switch {
		case f.Kind == channels.KindPFX:
			fh, err := c.FormFile(f.Name)
			if err != nil {
				continue // no file chosen: keep
			}
			if fh.Size > maxCredentialFile {
				form.Errors[f.Name] = "err.file_too_large"
				continue
			}
			file, err := fh.Open()
			if err != nil {
				return in, form, err
			}
			b, err := io.ReadAll(io.LimitReader(file, maxCredentialFile+1))
			file.Close()
			if err != nil {
				return in, form, err
			}
			in.Values[f.Name] = b
		case !f.Secret:
			v := c.FormValue(f.Name)
			in.Values[f.Name] = []byte(v)
			form.Settings[f.Name] = v
		default:
			if v := c.FormValue(f.Name); strings.TrimSpace(v) != "" {
				in.Values[f.Name] = []byte(v)
			}
		}
		if f.Secret && c.FormValue("clear_"+f.Name) == "1" {
			in.Clear = append(in.Clear, f.Name)
		}
	}
	return in, form, nil
}

// saveAccount stores the form and answers with the account page, or the form
// again with what was wrong (secrets are never echoed back).
func (h *Handlers) saveAccount(c *fiber.Ctx, id uint64, m *models.Merchant, spec channels.Spec) error {
	in, form, err := readAccountForm(c, spec)
	if err != nil {
		return err
	}
	in.MerchantID = m.ID
	form.ID, form.Merchant = id, m
	if id != 0 {
		secrets, err := h.Store.SecretStatuses(id)
		if err != nil {
			return err
		}
		form.Secrets = secrets
	}
	if len(form.Errors) > 0 {
		return h.Render(c, fiber.StatusUnprocessableEntity, views.AccountFormPage(form))
	}
	acct, _, err := h.Store.SaveAccount(actor(c), id, in)
	var fe models.FieldErrors
	var ce *models.CredentialError
	switch {
	case err == nil:
		if id == 0 {
			h.flash(c, "success", "accounts.created")
		} else {
			h.flash(c, "success", "accounts.updated")
		}
		return redirect(c, fmt.Sprintf("/channels/%d", acct.ID))
	case errors.As(err, &fe):
		form.Errors = fe
	case errors.As(err, &ce):
		form.Problems = ce.Problems
	case credentialKey(err) != "":
		form.Error = credentialFailure(c, err)
	default:
		return storeErr(err)
	}
	return h.Render(c, fiber.StatusUnprocessableEntity, views.AccountFormPage(form))
}

// AccountCreate stores a new channel account after the channel's checks pass.
func (h *Handlers) AccountCreate(c *fiber.Ctx) error {
	mid := parseID(c.FormValue("merchant"))
	m, err := h.Store.GetMerchant(scope(c), mid)
	if err != nil {
		return storeErr(err)
	}
	spec, ok := models.LookupChannel(c.FormValue("channel"))
	if !ok {
		return fiber.ErrNotFound
	}
	return h.saveAccount(c, 0, m, spec)
}

// AccountEdit shows the edit form: settings filled in, secrets only as "set".
func (h *Handlers) AccountEdit(c *fiber.Ctx) error {
	acct, m, spec, err := h.accountParam(c)
	if err != nil {
		return err
	}
	secrets, err := h.Store.SecretStatuses(acct.ID)
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.AccountFormPage(views.AccountForm{
		ID: acct.ID, Merchant: m, Spec: spec, DisplayName: acct.DisplayName, Methods: acct.MethodList(),
		FeeRateBP: strconv.Itoa(acct.FeeRateBP), Enabled: acct.Enabled, Settings: acct.SettingsMap(), Secrets: secrets,
	}))
}

// AccountUpdate saves the edit form; blank secret fields keep their values.
func (h *Handlers) AccountUpdate(c *fiber.Ctx) error {
	acct, m, spec, err := h.accountParam(c)
	if err != nil {
		return err
	}
	return h.saveAccount(c, acct.ID, m, spec)
}

// AccountDelete removes a channel account and its sealed credentials.
func (h *Handlers) AccountDelete(c *fiber.Ctx) error {
	acct, m, _, err := h.accountParam(c)
	if err != nil {
		return err
	}
	if err := h.Store.DeleteAccount(actor(c), acct.ID); err != nil {
		return storeErr(err)
	}
	h.flash(c, "success", "accounts.deleted")
	return redirect(c, fmt.Sprintf("/merchants/%d", m.ID))
}
