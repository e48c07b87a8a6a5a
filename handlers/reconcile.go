package handlers

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// ReconcileCalendar is the reconciliation workspace: one channel account's
// month, each day coloured by its reconciliation status.
func (h *Handlers) ReconcileCalendar(c *fiber.Ctx) error {
	return h.reconcileCalendar(c, fiber.StatusOK, views.ReconRunForm{})
}

func (h *Handlers) reconcileCalendar(c *fiber.Ctx, status int, form views.ReconRunForm) error {
	sc := scope(c)
	accounts, err := h.Store.ListAccounts(sc, models.AccountFilter{})
	if err != nil {
		return err
	}
	d := views.ReconCalendar{Accounts: accounts, RunForm: form}
	if len(accounts) == 0 {
		return h.Render(c, status, views.ReconCalendarPage(d))
	}
	d.Account = &accounts[0]
	if id, err := strconv.ParseUint(c.Query("account", c.FormValue("account")), 10, 64); err == nil {
		for i := range accounts {
			if accounts[i].ID == id {
				d.Account = &accounts[i]
			}
		}
	}
	loc := time.FixedZone("CST", 8*3600)
	if m, err := h.Store.GetMerchant(sc, d.Account.MerchantID); err == nil {
		loc = m.Location()
	}
	today := h.Store.Now().In(loc)
	d.Today = today.Format(time.DateOnly)
	if d.RunForm.Date == "" {
		d.RunForm.Date = today.AddDate(0, 0, -1).Format(time.DateOnly) // yesterday's bill is the newest
	}
	d.Month = time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	if m, err := time.Parse("2006-01", c.Query("month")); err == nil && m.Year() >= 2000 && m.Year() <= 2100 {
		d.Month = m
	}
	days, err := h.Store.ListReconDays(sc, models.ReconDayFilter{AccountID: d.Account.ID,
		From: d.Month.Format(time.DateOnly), To: d.Month.AddDate(0, 1, -1).Format(time.DateOnly)})
	if err != nil {
		return err
	}
	d.Days = make(map[string]models.ReconDay, len(days))
	for _, day := range days {
		d.Days[day.BizDate] = day
	}
	return h.Render(c, status, views.ReconCalendarPage(d))
}

// ReconcileRun reconciles one account's business date now and shows the day.
func (h *Handlers) ReconcileRun(c *fiber.Ctx) error {
	id := parseID(c.FormValue("account"))
	if id == 0 {
		return fiber.ErrBadRequest
	}
	date := c.FormValue("date")
	day, err := h.Store.Reconcile(actor(c), scope(c), id, date)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		return h.reconcileCalendar(c, fiber.StatusUnprocessableEntity, views.ReconRunForm{Date: date, Errors: fe})
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "recon.done")
	return redirect(c, fmt.Sprintf("/reconcile/days/%d", day.ID))
}

// ReconcileDay shows a reconciled day: its buckets and discrepancies.
func (h *Handlers) ReconcileDay(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	day, err := h.Store.GetReconDay(sc, id)
	if err != nil {
		return storeErr(err)
	}
	f := models.ReconItemFilter{Bucket: c.Query("bucket"), State: c.Query("state")}
	if !slices.Contains(models.DiscrepancyBuckets, f.Bucket) {
		f.Bucket = ""
	}
	if f.State != "open" && f.State != "resolved" {
		f.State = ""
	}
	d := views.ReconDayPage{Day: day, Filter: f, Currency: "CNY"}
	if acct, err := h.Store.GetAccount(sc, day.AccountID); err == nil {
		d.AccountName = acct.DisplayName
		if m, err := h.Store.GetMerchant(sc, acct.MerchantID); err == nil && m.Currency != "" {
			d.Currency = m.Currency
		}
	}
	if d.Items, err = h.Store.ListReconItems(sc, day.ID, f); err != nil {
		return err
	}
	if d.Amounts, err = h.Store.BucketAmounts(sc, day.ID); err != nil {
		return err
	}
	d.Amounts[models.BucketMatched] = day.MatchedAmount
	return h.Render(c, fiber.StatusOK, views.ReconDayView(d))
}

// ReconcileItem shows one discrepancy with both sides and the resolve form.
func (h *Handlers) ReconcileItem(c *fiber.Ctx) error {
	return h.reconcileItem(c, fiber.StatusOK, views.ReconResolveForm{})
}

func (h *Handlers) reconcileItem(c *fiber.Ctx, status int, form views.ReconResolveForm) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	it, err := h.Store.GetReconItem(sc, id)
	if err != nil {
		return storeErr(err)
	}
	day, err := h.Store.GetReconDay(sc, it.DayID)
	if err != nil {
		return storeErr(err)
	}
	d := views.ReconItemPage{Item: it, Day: day, Form: form}
	if form.Resolution == "" && it.Resolved {
		d.Form.Resolution = it.Resolution
	}
	if t, err := h.Store.GetTransaction(sc, it.TransactionID); err == nil {
		d.Txn = t
	} else if !errors.Is(err, models.ErrNotFound) {
		return err
	}
	if acct, err := h.Store.GetAccount(sc, day.AccountID); err == nil {
		d.AccountName = acct.DisplayName
	}
	return h.Render(c, status, views.ReconItemView(d))
}

// ReconcileResolve records finance's resolution of a discrepancy; bad input
// shows the page again with the messages and changes nothing.
func (h *Handlers) ReconcileResolve(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	in := models.ReconcileInput{Resolution: c.FormValue("resolution"), Note: c.FormValue("note")}
	it, err := h.Store.ResolveReconItem(actor(c), scope(c), id, in)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		return h.reconcileItem(c, fiber.StatusUnprocessableEntity, views.ReconResolveForm{Resolution: in.Resolution, Note: in.Note, Errors: fe})
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "recon.resolved")
	return redirect(c, fmt.Sprintf("/reconcile/days/%d?state=open", it.DayID))
}

// ReconcileNote adds a note to a discrepancy without resolving it.
func (h *Handlers) ReconcileNote(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	note := c.FormValue("note")
	_, err = h.Store.AnnotateReconItem(actor(c), scope(c), id, note)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		return h.reconcileItem(c, fiber.StatusUnprocessableEntity, views.ReconResolveForm{NoteOnly: note, NoteError: fe["note"]})
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "recon.noted")
	return redirect(c, fmt.Sprintf("/reconcile/items/%d", id))
}
