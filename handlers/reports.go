package handlers

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// reportForm reads the report page's query: merchant ("" or "all": every
// merchant in scope; preset when the scope holds one), period (daily or
// monthly, daily by default), date (YYYY-MM-DD, yesterday by default) or
// month (YYYY-MM, this month by default), by_method (any non-empty value).
// The default dates are in the chosen merchant's time zone (Beijing for
// several).
func (h *Handlers) reportForm(vals url.Values, merchants []models.Merchant) views.ReportsView {
	get := func(k string) string { return strings.TrimSpace(vals.Get(k)) }
	d := views.ReportsView{Merchants: merchants, Date: get("date"), Month: get("month")}
	f := models.ReportFilter{Merchant: get("merchant"), Period: get("period"), ByMethod: get("by_method") != ""}
	if strings.EqualFold(f.Merchant, "all") {
		f.Merchant = ""
	}
	if f.Merchant == "" && len(merchants) == 1 {
		f.Merchant = merchants[0].Code
	}
	if f.Period == "" {
		f.Period = models.ReportDaily
	}
	loc := views.DisplayZone
	for i := range merchants {
		if strings.EqualFold(merchants[i].Code, f.Merchant) {
			loc = merchants[i].Location()
		}
	}
	today := h.Store.Now().In(loc)
	if d.Date == "" {
		d.Date = today.AddDate(0, 0, -1).Format(time.DateOnly)
	}
	if d.Month == "" {
		d.Month = today.Format("2006-01")
	}
	f.Date = d.Date
	if f.Period == models.ReportMonthly {
		f.Date = d.Month
	}
	d.Filter = f
	return d
}

// Reports is the finance report page (GET /reports): the daily or monthly
// settlement report of a merchant (or every merchant in scope) per channel
// account, optionally per method, with a totals row; each row opens the
// ledger with the same filters. A bad date gets its message (422); a
// merchant outside the scope is not found.
func (h *Handlers) Reports(c *fiber.Ctx) error {
	sc := scope(c)
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	d := h.reportForm(queryValues(c), merchants)
	if errs := d.Filter.Validate(); errs != nil {
		d.Errors = errs
		return h.Render(c, fiber.StatusUnprocessableEntity, views.ReportsPage(d))
	}
	if d.Report, err = h.Store.Report(sc, d.Filter); err != nil {
		return storeErr(err)
	}
	return h.Render(c, fiber.StatusOK, views.ReportsPage(d))
}

// ReportExport downloads the report the query selects (the page's
// parameters plus format=csv|xlsx) as CSV (UTF-8 with BOM) or XLSX. A report
// is small (a row per account and method), so it is built whole and sent;
// it changes nothing, so it is logged, not audited.
func (h *Handlers) ReportExport(c *fiber.Ctx) error {
	sc := scope(c)
	vals := queryValues(c)
	format := vals.Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "xlsx" {
		return fiber.NewError(fiber.StatusBadRequest, "format: want csv or xlsx")
	}
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	d := h.reportForm(vals, merchants)
	if errs := d.Filter.Validate(); errs != nil {
		d.Errors = errs
		return h.Render(c, fiber.StatusUnprocessableEntity, views.ReportsPage(d))
	}
	rep, err := h.Store.Report(sc, d.Filter)
	if err != nil {
		return storeErr(err)
	}
	var buf bytes.Buffer
	if format == "csv" {
		err = rep.WriteCSV(&buf)
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	} else {
		err = rep.WriteXLSX(&buf)
		c.Set(fiber.HeaderContentType, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	}
	if err != nil {
		return errors.Join(errors.New("reports: unable to export"), err)
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+ReportFileName(d.Filter, format)+`"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	user := ""
	if u := IdentityOf(c).User; u != nil {
		user = u.Username
	}
	if h.Log != nil {
		h.Log.Info("report export", "user", user, "format", format, "filter", d.Filter.Values().Encode(),
			"rows", len(rep.Rows), "request_id", requestID(c))
	}
	return c.Send(buf.Bytes())
}

// ReportFileName names an exported report: report-<period>-<merchant or
// all>-<date>.<format>.
func ReportFileName(f models.ReportFilter, format string) string {
	m := f.Merchant
	if m == "" {
		m = "all"
	}
	return "report-" + f.Period + "-" + m + "-" + f.Date + "." + format
}
