package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"
	"payfuse/flows/webhook"
	"payfuse/models"
	"payfuse/views"
)

// deliveriesPerPage is how many deliveries the delivery log shows at a time.
const deliveriesPerPage = 50

// triggerDefaults are each kind's settings as the store fills them in when
// left empty: the form shows them so nobody has to guess.
var triggerDefaults = map[string]map[string]string{
	models.TriggerSuccessRate:     {"window_minutes": "30", "min_percent": "90", "min_payments": "20"},
	models.TriggerLargePayment:    {},
	models.TriggerNotifyRefusals:  {"window_minutes": "10", "max_refusals": "10"},
	models.TriggerBillMissing:     {"at": "10:00"},
	models.TriggerReconUnbalanced: {"at": "12:00"},
	models.TriggerCertExpiry:      {"days": "30"},
}

// TriggerList lists the trigger rules in scope with their condition in words.
func (h *Handlers) TriggerList(c *fiber.Ctx) error {
	sc := scope(c)
	rules, err := h.Store.ListTriggerRules(sc, models.TriggerFilter{})
	if err != nil {
		return err
	}
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	d := views.TriggersPage{Rules: rules, Merchants: merchants, Accounts: map[uint64]string{}, Endpoints: map[uint64]string{}}
	accounts, err := h.Store.ListAccounts(sc, models.AccountFilter{})
	if err != nil {
		return err
	}
	for _, a := range accounts {
		d.Accounts[a.ID] = a.DisplayName
	}
	endpoints, err := h.Store.ListWebhookEndpoints(sc, "")
	if err != nil {
		return err
	}
	for _, e := range endpoints {
		d.Endpoints[e.ID] = e.Name
	}
	return h.Render(c, fiber.StatusOK, views.TriggerListPage(d))
}

// TriggerNew shows the form for a new rule. A kind in the query (the kind
// select asks with htmx when it changes) shows that kind's settings, with
// its defaults in the fields the user left empty.
func (h *Handlers) TriggerNew(c *fiber.Ctx) error {
	form := views.TriggerForm{Kind: c.Query("kind"), MerchantCode: c.Query("merchant"), Alert: true, Enabled: true,
		Severity: models.SeverityWarning, Cooldown: strconv.Itoa(models.DefaultTriggerCooldown)}
	if !slices.Contains(models.TriggerKinds, form.Kind) {
		form.Kind = ""
	}
	form.Window, form.MinPercent, form.MinPayments = c.Query("window_minutes"), c.Query("min_percent"), c.Query("min_payments")
	form.Amount, form.MaxRefusals, form.At, form.Days = c.Query("amount"), c.Query("max_refusals"), c.Query("at"), c.Query("days")
	fillTriggerDefaults(&form)
	return h.triggerForm(c, fiber.StatusOK, form)
}

// fillTriggerDefaults puts the kind's defaults into the settings left empty.
func fillTriggerDefaults(form *views.TriggerForm) {
	for field, def := range triggerDefaults[form.Kind] {
		var p *string
		switch field {
		case "window_minutes":
			p = &form.Window
		case "min_percent":
			p = &form.MinPercent
		case "min_payments":
			p = &form.MinPayments
		case "max_refusals":
			p = &form.MaxRefusals
		case "at":
			p = &form.At
		case "days":
			p = &form.Days
		}
		if p != nil && strings.TrimSpace(*p) == "" {
			*p = def
		}
	}
}

// triggerForm renders the rule form with the merchants, accounts and
// webhook endpoints in scope.
func (h *Handlers) triggerForm(c *fiber.Ctx, status int, form views.TriggerForm) error {
	sc := scope(c)
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	form.Merchants = merchants
	if form.MerchantCode == "" && len(merchants) == 1 {
		form.MerchantCode = merchants[0].Code
	}
	if form.Accounts, err = h.Store.ListAccounts(sc, models.AccountFilter{}); err != nil {
		return err
	}
	if form.Endpoints, err = h.Store.ListWebhookEndpoints(sc, ""); err != nil {
		return err
	}
	return h.Render(c, status, views.TriggerFormPage(form))
}

// triggerInput reads the rule form. Numbers that are not numbers become
// values the store refuses with the field's own message; an amount that is
// not yuan with at most two decimals gets a message of its own.
func triggerInput(c *fiber.Ctx) (views.TriggerForm, models.TriggerRuleInput, models.FieldErrors) {
	form := views.TriggerForm{
		Name: c.FormValue("name"), MerchantCode: c.FormValue("merchant"), Kind: c.FormValue("kind"),
		Window: strings.TrimSpace(c.FormValue("window_minutes")), MinPercent: strings.TrimSpace(c.FormValue("min_percent")),
		MinPayments: strings.TrimSpace(c.FormValue("min_payments")), Amount: strings.TrimSpace(c.FormValue("amount")),
		MaxRefusals: strings.TrimSpace(c.FormValue("max_refusals")), At: strings.TrimSpace(c.FormValue("at")),
		Days: strings.TrimSpace(c.FormValue("days")), Severity: c.FormValue("severity"), Alert: c.FormValue("alert") != "",
		Cooldown: strings.TrimSpace(c.FormValue("cooldown")), Enabled: c.FormValue("enabled") != "",
	}
	in := models.TriggerRuleInput{Name: form.Name, MerchantCode: form.MerchantCode, Kind: form.Kind, Severity: form.Severity,
		Alert: form.Alert, Enabled: form.Enabled, CooldownMinutes: formInt(form.Cooldown)}
	in.AccountID, form.AccountID = formRef(c.FormValue("account"))
	in.WebhookEndpointID, form.EndpointID = formRef(c.FormValue("endpoint"))
	own := models.FieldErrors{}
	var p models.TriggerParams
	switch form.Kind {
	case models.TriggerSuccessRate:
		p.WindowMinutes, p.MinPayments = formInt(form.Window), formInt(form.MinPayments)
		if form.MinPercent != "" {
			v, err := strconv.ParseFloat(form.MinPercent, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				v = -1 // JSON has no NaN or infinity: refused as out of range
			}
			p.MinPercent = &v
		}
	case models.TriggerLargePayment:
		if form.Amount != "" {
			fen, err := channels.ParseYuan(strings.NewReplacer(",", "", "¥", "", "￥", "", " ", "").Replace(form.Amount))
			if err != nil {
				fen, own["amount"] = -1, "triggers.err_amount_format"
			}
			p.Amount = fen
		}
	case models.TriggerNotifyRefusals:
		p.WindowMinutes = formInt(form.Window)
		if form.MaxRefusals != "" {
			n, err := strconv.Atoi(form.MaxRefusals)
			if err != nil {
				n = -1
			}
			p.MaxRefusals = &n
		}
	case models.TriggerBillMissing, models.TriggerReconUnbalanced:
		p.At = form.At // "" for the store's default
	case models.TriggerCertExpiry:
		p.Days = formInt(form.Days)
	}
	b, _ := json.Marshal(p)
	in.Params = string(b)
	return form, in, own
}

// formRef reads an optional id from a select: "" is 0 (none), anything
// that is not an id is an id no object has, which the store refuses.
func formRef(v string) (uint64, uint64) {
	if v == "" {
		return 0, 0
	}
	id := parseID(v)
	if id == 0 {
		id = math.MaxInt64 // no such row: the store says so next to the field
	}
	return id, id
}

// triggerErrors merges the store's field errors with the form's own, which
// say more precisely what is wrong with what was typed.
func triggerErrors(fe, own models.FieldErrors) models.FieldErrors {
	out := models.FieldErrors{}
	for k, v := range fe {
		out[k] = v
	}
	for k, v := range own {
		if out[k] != "" {
			out[k] = v
		}
	}
	return out
}

// TriggerCreate stores a new rule; bad input shows the form again with the
// messages next to the fields and saves nothing.
func (h *Handlers) TriggerCreate(c *fiber.Ctx) error {
	form, in, own := triggerInput(c)
	r, err := h.Store.CreateTriggerRule(actor(c), scope(c), in)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		form.Errors = triggerErrors(fe, own)
		return h.triggerForm(c, fiber.StatusUnprocessableEntity, form)
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "triggers.created", r.Name)
	return redirect(c, "/flows/triggers")
}

// TriggerEdit shows the form for a rule; its merchant stays as it is.
func (h *Handlers) TriggerEdit(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	r, err := h.Store.GetTriggerRule(scope(c), id)
	if err != nil {
		return storeErr(err)
	}
	return h.triggerForm(c, fiber.StatusOK, triggerFormOf(r))
}

// triggerFormOf fills the form from a stored rule.
func triggerFormOf(r *models.TriggerRule) views.TriggerForm {
	form := views.TriggerForm{ID: r.ID, Name: r.Name, MerchantCode: r.MerchantCode, Kind: r.Kind, Severity: r.Severity,
		Alert: r.Alert, Enabled: r.Enabled, Cooldown: strconv.Itoa(r.CooldownMinutes)}
	if r.AccountID != nil {
		form.AccountID = *r.AccountID
	}
	if r.WebhookEndpointID != nil {
		form.EndpointID = *r.WebhookEndpointID
	}
	p := r.DecodeParams()
	itoaNZ := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	form.Window, form.MinPayments, form.Days, form.At = itoaNZ(p.WindowMinutes), itoaNZ(p.MinPayments), itoaNZ(p.Days), p.At
	if p.MinPercent != nil {
		form.MinPercent = strconv.FormatFloat(*p.MinPercent, 'f', -1, 64)
	}
	if p.MaxRefusals != nil {
		form.MaxRefusals = strconv.Itoa(*p.MaxRefusals)
	}
	if p.Amount > 0 {
		form.Amount = fmt.Sprintf("%d.%02d", p.Amount/100, p.Amount%100)
	}
	return form
}

// TriggerUpdate changes a rule; bad input shows the form again and changes nothing.
func (h *Handlers) TriggerUpdate(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	form, in, own := triggerInput(c)
	r, err := h.Store.UpdateTriggerRule(actor(c), sc, id, in)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		old, err := h.Store.GetTriggerRule(sc, id)
		if err != nil {
			return storeErr(err)
		}
		form.ID, form.MerchantCode, form.Enabled = old.ID, old.MerchantCode, old.Enabled
		form.Errors = triggerErrors(fe, own)
		return h.triggerForm(c, fiber.StatusUnprocessableEntity, form)
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "triggers.updated", r.Name)
	return redirect(c, "/flows/triggers")
}

// TriggerEnable lets a rule fire again.
func (h *Handlers) TriggerEnable(c *fiber.Ctx) error { return h.triggerSetEnabled(c, true) }

// TriggerDisable stops a rule from firing; it keeps its settings.
func (h *Handlers) TriggerDisable(c *fiber.Ctx) error { return h.triggerSetEnabled(c, false) }

func (h *Handlers) triggerSetEnabled(c *fiber.Ctx, enabled bool) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	r, err := h.Store.SetTriggerEnabled(actor(c), scope(c), id, enabled)
	if err != nil {
		return storeErr(err)
	}
	if enabled {
		h.flash(c, "success", "triggers.enabled_flash", r.Name)
	} else {
		h.flash(c, "success", "triggers.disabled_flash", r.Name)
	}
	return redirect(c, "/flows/triggers")
}

// WebhookList lists the webhook endpoints in scope, never their secrets
// nor the query strings of their URLs.
func (h *Handlers) WebhookList(c *fiber.Ctx) error {
	sc := scope(c)
	endpoints, err := h.Store.ListWebhookEndpoints(sc, "")
	if err != nil {
		return err
	}
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	rules, err := h.Store.ListTriggerRules(sc, models.TriggerFilter{})
	if err != nil {
		return err
	}
	d := views.WebhooksPage{Endpoints: endpoints, Merchants: merchants, Uses: map[uint64]int{}}
	for _, r := range rules {
		if r.WebhookEndpointID != nil {
			d.Uses[*r.WebhookEndpointID]++
		}
	}
	return h.Render(c, fiber.StatusOK, views.WebhookListPage(d))
}

// WebhookNew shows the form for a new endpoint.
func (h *Handlers) WebhookNew(c *fiber.Ctx) error {
	return h.webhookForm(c, fiber.StatusOK, views.WebhookForm{Enabled: true})
}

func (h *Handlers) webhookForm(c *fiber.Ctx, status int, form views.WebhookForm) error {
	merchants, _, err := h.Store.ListMerchants(scope(c), models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	form.Merchants = merchants
	if form.MerchantCode == "" && len(merchants) == 1 {
		form.MerchantCode = merchants[0].Code
	}
	return h.Render(c, status, views.WebhookFormPage(form))
}

// WebhookCreate stores a new endpoint and shows its signing secret, once,
// on the page that answers the POST: never in a redirect, a flash or a URL.
// A refused URL shows why next to the field and saves nothing.
func (h *Handlers) WebhookCreate(c *fiber.Ctx) error {
	form := views.WebhookForm{Name: c.FormValue("name"), MerchantCode: c.FormValue("merchant"),
		URL: strings.TrimSpace(c.FormValue("url")), Enabled: c.FormValue("enabled") != ""}
	e, secret, err := h.Store.CreateWebhookEndpoint(actor(c), scope(c),
		models.WebhookInput{MerchantCode: form.MerchantCode, Name: form.Name, URL: form.URL, Enabled: form.Enabled}, h.WebhookAllow)
	var fe models.FieldErrors
	var re *webhook.RefusedError
	switch {
	case errors.As(err, &re):
		form.Errors, form.URLProblem = models.FieldErrors{"url": "webhook.err_url"}, re.Message
		return h.webhookForm(c, fiber.StatusUnprocessableEntity, form)
	case errors.As(err, &fe):
		form.Errors = fe
		if fe["url"] != "" {
			if errors.As(webhook.Validate(form.URL, h.WebhookAllow), &re) {
				form.URLProblem = re.Message
			}
		}
		return h.webhookForm(c, fiber.StatusUnprocessableEntity, form)
	case err != nil:
		return storeErr(err)
	}
	return h.Render(c, fiber.StatusOK, views.WebhookSecretPage(views.WebhookSecret{Endpoint: e, Secret: secret}))
}

// WebhookRotate replaces an endpoint's signing secret and shows the new one once.
func (h *Handlers) WebhookRotate(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	secret, err := h.Store.RotateWebhookSecret(actor(c), sc, id)
	if err != nil {
		return storeErr(err)
	}
	e, err := h.Store.GetWebhookEndpoint(sc, id)
	if err != nil {
		return storeErr(err)
	}
	return h.Render(c, fiber.StatusOK, views.WebhookSecretPage(views.WebhookSecret{Endpoint: e, Secret: secret, Rotated: true}))
}

// WebhookEnable sends webhooks to an endpoint again.
func (h *Handlers) WebhookEnable(c *fiber.Ctx) error { return h.webhookSetEnabled(c, true) }

// WebhookDisable stops sending to an endpoint; its pending deliveries fail.
func (h *Handlers) WebhookDisable(c *fiber.Ctx) error { return h.webhookSetEnabled(c, false) }

func (h *Handlers) webhookSetEnabled(c *fiber.Ctx, enabled bool) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	e, err := h.Store.SetWebhookEnabled(actor(c), scope(c), id, enabled)
	if err != nil {
		return storeErr(err)
	}
	if enabled {
		h.flash(c, "success", "webhooks.enabled_flash", e.Name)
	} else {
		h.flash(c, "success", "webhooks.disabled_flash", e.Name)
	}
	return redirect(c, webhookPath(e.ID))
}

// WebhookDelete removes an endpoint. While rules still send to it, it stays
// and the endpoint's page says so.
func (h *Handlers) WebhookDelete(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	e, err := h.Store.GetWebhookEndpoint(sc, id)
	if err != nil {
		return storeErr(err)
	}
	err = h.Store.DeleteWebhookEndpoint(actor(c), sc, id)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		for _, k := range fe {
			h.flash(c, "error", k)
		}
		return redirect(c, webhookPath(id))
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "webhooks.deleted", e.Name)
	return redirect(c, "/flows/webhooks")
}

func webhookPath(id uint64) string { return fmt.Sprintf("/flows/webhooks/%d/deliveries", id) }

// WebhookDeliveries is an endpoint's page: its settings and actions, the
// rules that send to it, and its delivery log, newest first, with a status
// filter.
func (h *Handlers) WebhookDeliveries(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	e, err := h.Store.GetWebhookEndpoint(sc, id)
	if err != nil {
		return storeErr(err)
	}
	d := views.WebhookDeliveriesPage{Endpoint: e, Loc: views.DisplayZone, Status: c.Query("status")}
	if !slices.Contains(models.DeliveryStatuses, d.Status) {
		d.Status = ""
	}
	d.Before = parseID(c.Query("before"))
	if m, err := h.Store.GetMerchantByCode(sc, e.MerchantCode); err == nil {
		d.Loc = m.Location()
	}
	rules, err := h.Store.ListTriggerRules(sc, models.TriggerFilter{MerchantCode: e.MerchantCode})
	if err != nil {
		return err
	}
	for _, r := range rules {
		if r.WebhookEndpointID != nil && *r.WebhookEndpointID == e.ID {
			d.Rules = append(d.Rules, r)
		}
	}
	list, err := h.Store.ListDeliveries(sc, models.DeliveryFilter{EndpointID: e.ID, Status: d.Status, BeforeID: d.Before, Limit: deliveriesPerPage + 1})
	if err != nil {
		return err
	}
	if len(list) > deliveriesPerPage {
		list = list[:deliveriesPerPage]
		d.NextBefore = list[len(list)-1].ID
	}
	d.Deliveries = list
	return h.Render(c, fiber.StatusOK, views.WebhookDeliveriesView(d))
}
