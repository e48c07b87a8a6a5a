package handlers

import (
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"
	"payfuse/models"
	"payfuse/views"
)

// dashboardDays is how many business dates each fixed range spans, ending
// today; the other range is "custom", which takes from and to.
var dashboardDays = map[string]int{"today": 1, "7d": 7, "30d": 30, "90d": 90}

// Dashboard is the start page: GMV, counts, success rates, shares, refunds,
// fees and the fused score of a merchant (or all in scope) over a date range,
// all from the daily rollups, and what needs attention (open alerts,
// unbalanced reconciliation days, expiring certificates). The query picks
// merchant and range (today, 7d, 30d, 90d or custom with from and to; 7d by
// default); a bad one is answered with its message and no figures.
func (h *Handlers) Dashboard(c *fiber.Ctx) error {
	sc := scope(c)
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	d := views.DashboardView{
		Range:     c.Query("range", "7d"),
		Merchant:  strings.ToUpper(strings.TrimSpace(c.Query("merchant"))),
		From:      strings.TrimSpace(c.Query("from")),
		To:        strings.TrimSpace(c.Query("to")),
		Merchants: merchants,
		Now:       h.Store.Now(),
		Currency:  "CNY",
		Errors:    models.FieldErrors{},
	}
	// "Today" is the business date in the merchant's time zone (Beijing for
	// several merchants, where PayFuse's business dates default to).
	loc := views.DisplayZone
	for i := range merchants {
		if merchants[i].Code == d.Merchant {
			loc = merchants[i].Location()
			if merchants[i].Currency != "" {
				d.Currency = merchants[i].Currency
			}
		}
	}
	today := d.Now.In(loc)
	if n, ok := dashboardDays[d.Range]; ok {
		d.From = today.AddDate(0, 0, 1-n).Format(time.DateOnly)
		d.To = today.Format(time.DateOnly)
	} else if d.Range != "custom" {
		d.Errors["range"] = "dashboard.err_range"
	}
	if len(d.Errors) == 0 {
		d.Data, err = h.Store.Dashboard(sc, models.DashboardFilter{Merchant: d.Merchant, From: d.From, To: d.To})
		var fe models.FieldErrors
		switch {
		case errors.As(err, &fe):
			d.Errors = fe
		case err != nil:
			return err
		}
	}
	status := fiber.StatusOK
	if len(d.Errors) > 0 {
		status = fiber.StatusUnprocessableEntity
		// The certificates still need attention when the filter is wrong.
		if d.Expiring, err = h.Store.ExpiringAccounts(sc, d.Now, channels.ExpiringSoon); err != nil {
			return err
		}
	} else {
		d.Expiring = d.Data.Expiring
	}
	return h.Render(c, status, views.DashboardPage(d))
}
