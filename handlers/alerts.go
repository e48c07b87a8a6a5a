package handlers

import (
	"errors"
	"slices"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// AlertList is the alert inbox: what needs someone, in the user's scope.
func (h *Handlers) AlertList(c *fiber.Ctx) error {
	sc := scope(c)
	status := c.Query("status")
	if !slices.Contains(models.AlertStatuses, status) {
		status = ""
	}
	alerts, err := h.Store.ListAlerts(sc, models.AlertFilter{Status: status})
	if err != nil {
		return err
	}
	d := views.AlertsPage{Alerts: alerts, Status: status, Counts: map[string]int64{}}
	if n, err := h.Store.CountOpenAlerts(sc); err == nil {
		d.Counts[models.AlertOpen] = n
	}
	return h.Render(c, fiber.StatusOK, views.AlertsListPage(d))
}

// AlertAcknowledge marks an alert as seen and being handled.
func (h *Handlers) AlertAcknowledge(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	_, err = h.Store.AcknowledgeAlert(actor(c), scope(c), id)
	switch {
	case errors.Is(err, models.ErrAlertResolved):
		h.flash(c, "error", "err.alert_resolved")
	case err != nil:
		return storeErr(err)
	default:
		h.flash(c, "success", "alerts.acknowledged")
	}
	return redirect(c, "/alerts")
}

// AlertResolve closes an alert with an optional note.
func (h *Handlers) AlertResolve(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	_, err = h.Store.ResolveAlert(actor(c), scope(c), id, c.FormValue("note"))
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		h.flash(c, "error", "err.alert_note_long")
	case err != nil:
		return storeErr(err)
	default:
		h.flash(c, "success", "alerts.resolved")
	}
	return redirect(c, "/alerts")
}
