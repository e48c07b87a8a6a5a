package handlers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"
	"payfuse/models"
	"payfuse/views"
)

const merchantsPerPage = 25

// scope is the merchant scope of the signed-in user.
func scope(c *fiber.Ctx) models.Scope {
	if u := IdentityOf(c).User; u != nil {
		return u.Scope()
	}
	return models.Scope{}
}

// MerchantList lists the merchants in the user's scope with search and status filter.
func (h *Handlers) MerchantList(c *fiber.Ctx) error {
	page, _ := strconv.Atoi(c.Query("page"))
	if page < 1 {
		page = 1
	}
	f := models.MerchantFilter{Query: strings.TrimSpace(c.Query("q")), Status: c.Query("status"), Page: page, Size: merchantsPerPage}
	if f.Status != models.MerchantActive && f.Status != models.MerchantSuspended {
		f.Status = ""
	}
	list, total, err := h.Store.ListMerchants(scope(c), f)
	if err != nil {
		return err
	}
	d := views.MerchantsList{Merchants: list, Total: total, Query: f.Query, Status: f.Status}
	if len(list) > 0 {
		d.From = (page-1)*merchantsPerPage + 1
		d.To = d.From + len(list) - 1
	}
	d.Prev, d.Next = pageLinks("/merchants", map[string]string{"q": f.Query, "status": f.Status}, page, merchantsPerPage, total)
	return h.Render(c, fiber.StatusOK, views.MerchantsListPage(d))
}

func merchantForm(c *fiber.Ctx) (views.MerchantForm, models.MerchantInput) {
	in := models.MerchantInput{
		Code: c.FormValue("code"), Name: c.FormValue("name"), Contact: c.FormValue("contact"),
		Timezone: c.FormValue("timezone"), Currency: c.FormValue("currency"),
	}
	return views.MerchantForm{Code: in.Code, Name: in.Name, Contact: in.Contact, Timezone: in.Timezone, Currency: in.Currency}, in
}

// MerchantNew shows the form for a new merchant.
func (h *Handlers) MerchantNew(c *fiber.Ctx) error {
	return h.Render(c, fiber.StatusOK, views.MerchantFormPage(views.MerchantForm{Timezone: models.DefaultTimezone, Currency: "CNY"}))
}

// MerchantCreate stores a new merchant.
func (h *Handlers) MerchantCreate(c *fiber.Ctx) error {
	form, in := merchantForm(c)
	m, err := h.Store.CreateMerchant(actor(c), in)
	var fe models.FieldErrors
	if errors.As(err, &fe) {
		form.Errors = fe
		return h.Render(c, fiber.StatusUnprocessableEntity, views.MerchantFormPage(form))
	}
	if err != nil {
		return err
	}
	h.flash(c, "success", "merchants.created", m.Code)
	return redirect(c, fmt.Sprintf("/merchants/%d", m.ID))
}

func (h *Handlers) merchantParam(c *fiber.Ctx) (*models.Merchant, error) {
	id, err := paramID(c, "id")
	if err != nil {
		return nil, err
	}
	m, err := h.Store.GetMerchant(scope(c), id)
	if err != nil {
		return nil, storeErr(err)
	}
	return m, nil
}

// MerchantShow shows a merchant with its channel accounts and their health.
func (h *Handlers) MerchantShow(c *fiber.Ctx) error {
	m, err := h.merchantParam(c)
	if err != nil {
		return err
	}
	accounts, err := h.Store.ListAccounts(scope(c), models.AccountFilter{MerchantID: m.ID})
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.MerchantShowPage(views.MerchantShow{
		Merchant: m, Accounts: accounts, Now: time.Now(), Channels: channelOptions(),
	}))
}

// MerchantEdit shows the edit form (the code cannot change).
func (h *Handlers) MerchantEdit(c *fiber.Ctx) error {
	m, err := h.merchantParam(c)
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.MerchantFormPage(views.MerchantForm{
		ID: m.ID, Code: m.Code, Name: m.Name, Contact: m.Contact, Timezone: m.Timezone, Currency: m.Currency,
	}))
}

// MerchantUpdate saves the edit form.
func (h *Handlers) MerchantUpdate(c *fiber.Ctx) error {
	m, err := h.merchantParam(c)
	if err != nil {
		return err
	}
	form, in := merchantForm(c)
	form.ID, form.Code = m.ID, m.Code
	_, err = h.Store.UpdateMerchant(actor(c), m.ID, in)
	var fe models.FieldErrors
	if errors.As(err, &fe) {
		form.Errors = fe
		return h.Render(c, fiber.StatusUnprocessableEntity, views.MerchantFormPage(form))
	}
	if err != nil {
		return storeErr(err)
	}
	h.flash(c, "success", "merchants.updated")
	return redirect(c, fmt.Sprintf("/merchants/%d", m.ID))
}

// MerchantSuspend marks a merchant suspended.
func (h *Handlers) MerchantSuspend(c *fiber.Ctx) error {
	return h.setMerchantStatus(c, models.MerchantSuspended, "merchants.suspended")
}

// MerchantReactivate makes a suspended merchant active again.
func (h *Handlers) MerchantReactivate(c *fiber.Ctx) error {
	return h.setMerchantStatus(c, models.MerchantActive, "merchants.reactivated")
}

func (h *Handlers) setMerchantStatus(c *fiber.Ctx, status, msg string) error {
	m, err := h.merchantParam(c)
	if err != nil {
		return err
	}
	if err := h.Store.SetMerchantStatus(actor(c), m.ID, status); err != nil {
		return storeErr(err)
	}
	h.flash(c, "success", msg)
	return redirect(c, fmt.Sprintf("/merchants/%d", m.ID))
}

// channelOptions lists the channels PayFuse knows, for pickers.
func channelOptions() []channels.Spec { return models.ChannelSpecs() }
