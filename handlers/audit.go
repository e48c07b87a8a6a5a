package handlers

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// AuditList shows the audit log, newest first, filtered by user, action and
// dates (days in the display time zone), with keyset paging.
func (h *Handlers) AuditList(c *fiber.Ctx) error {
	d := views.AuditList{
		Actor: strings.TrimSpace(c.Query("actor")), Action: c.Query("action"),
		From: c.Query("from"), To: c.Query("to"), Actions: models.AuditActions,
	}
	f := models.AuditFilter{Actor: models.NormalizeUsername(d.Actor), Action: d.Action, Limit: 50}
	if d.Actor == "" {
		f.Actor = ""
	}
	if d.From != "" {
		t, err := time.ParseInLocation(time.DateOnly, d.From, views.DisplayZone)
		if err != nil {
			d.Error, d.From = "audit.bad_date", ""
		} else {
			f.From = t
		}
	}
	if d.To != "" {
		t, err := time.ParseInLocation(time.DateOnly, d.To, views.DisplayZone)
		if err != nil {
			d.Error, d.To = "audit.bad_date", ""
		} else {
			f.To = t.AddDate(0, 0, 1) // the whole "to" day
		}
	}
	f.Before = parseID(c.Query("before"))
	page, err := h.Store.ListAudit(f)
	if err != nil {
		return err
	}
	d.Rows = page.Rows
	q := url.Values{}
	for k, v := range map[string]string{"actor": d.Actor, "action": d.Action, "from": d.From, "to": d.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Before > 0 {
		d.First = "/audit?" + q.Encode()
	}
	if page.NextBefore > 0 {
		q.Set("before", strconv.FormatUint(page.NextBefore, 10))
		d.Next = "/audit?" + q.Encode()
	}
	return h.Render(c, fiber.StatusOK, views.AuditListPage(d))
}
