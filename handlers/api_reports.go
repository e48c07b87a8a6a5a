package handlers

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
)

// Reports and KPIs over the API: the figures of the report and KPI pages and
// of `payfuse report` and `payfuse kpi`, from the same store calls, with
// amounts in minor units.

// apiReportRow is a report row: counts, and amounts in minor units of the
// merchant's currency.
type apiReportRow struct {
	Merchant       string            `json:"merchant"`
	AccountID      uint64            `json:"account_id,omitempty"`
	Account        string            `json:"account,omitempty"`
	Channel        string            `json:"channel,omitempty"`
	Method         *string           `json:"method,omitempty"`
	Date           string            `json:"date"`
	Currency       string            `json:"currency"`
	Payments       int64             `json:"payments"`
	PaymentAmount  int64             `json:"payment_amount"`
	Refunds        int64             `json:"refunds"`
	RefundAmount   int64             `json:"refund_amount"`
	Fees           int64             `json:"fees"`
	Net            int64             `json:"net"`
	Reconciliation string            `json:"reconciliation"`
	Days           map[string]string `json:"days,omitempty"`
}

// apiReport is a daily or monthly settlement report.
type apiReport struct {
	Period   string         `json:"period"`
	Merchant string         `json:"merchant"`
	Date     string         `json:"date"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	ByMethod bool           `json:"by_method"`
	Rows     []apiReportRow `json:"rows"`
	Total    apiReportRow   `json:"total"`
}

// apiBool reads a boolean query parameter: true/1 or false/0 (or absent).
func apiBool(c *fiber.Ctx, name string) (bool, error) {
	switch strings.ToLower(c.Query(name)) {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, bad(name, "Give "+name+" as true or false.")
}

// APIReportDaily is GET /api/v1/reports/daily?date=YYYY-MM-DD: the daily
// settlement report (merchant optional: every merchant in scope).
func (h *Handlers) APIReportDaily(c *fiber.Ctx) error {
	return h.apiReport(c, models.ReportDaily, "date")
}

// APIReportMonthly is GET /api/v1/reports/monthly?month=YYYY-MM.
func (h *Handlers) APIReportMonthly(c *fiber.Ctx) error {
	return h.apiReport(c, models.ReportMonthly, "month")
}

func (h *Handlers) apiReport(c *fiber.Ctx, period, dateParam string) error {
	if err := apiQuery(c, "merchant", dateParam, "by_method"); err != nil {
		return err
	}
	byMethod, err := apiBool(c, "by_method")
	if err != nil {
		return err
	}
	f := models.ReportFilter{Merchant: c.Query("merchant"), Period: period, Date: strings.TrimSpace(c.Query(dateParam)), ByMethod: byMethod}
	if errs := f.Validate(); errs != nil {
		for k, key := range errs {
			if k == "date" {
				k = dateParam
			}
			return bad(k, apiMessage(key))
		}
	}
	sc := APIAuthOf(c).Scope
	if f.Merchant != "" && !sc.Allows(f.Merchant) {
		return apiFieldErr(http.StatusNotFound, "not_found", "merchant", "No such merchant in the token's scope.")
	}
	rep, err := h.Store.Report(sc, f)
	if err != nil {
		if errors.Is(err, models.ErrNotFound) {
			return apiFieldErr(http.StatusNotFound, "not_found", "merchant", "No such merchant in the token's scope.")
		}
		return err
	}
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	currency := map[string]string{}
	for _, m := range merchants {
		currency[m.Code] = m.Currency
	}
	js := rep.JSON() // for the per-day reconciliation of monthly rows
	conv := func(r *models.ReportRow, days map[string]string) apiReportRow {
		out := apiReportRow{Merchant: r.MerchantCode, AccountID: r.AccountID, Account: r.Account, Channel: r.Channel, Date: r.Date,
			Currency: currency[r.MerchantCode], Payments: r.Payments, PaymentAmount: r.PaymentAmount, Refunds: r.Refunds,
			RefundAmount: r.RefundAmount, Fees: r.Fees, Net: r.Net(), Reconciliation: r.Reconciliation, Days: days}
		if f.ByMethod && r.MerchantCode != models.ReportTotal {
			m := r.Method
			out.Method = &m
		}
		return out
	}
	out := apiReport{Period: period, Merchant: f.Merchant, Date: f.Date, From: rep.From, To: rep.To, ByMethod: f.ByMethod, Rows: []apiReportRow{}}
	var currencies []string
	for i := range rep.Rows {
		var days map[string]string
		if i < len(js.Rows) {
			days = js.Rows[i].Days
		}
		row := conv(&rep.Rows[i], days)
		out.Rows = append(out.Rows, row)
		if !slices.Contains(currencies, row.Currency) {
			currencies = append(currencies, row.Currency)
		}
	}
	out.Total = conv(&rep.Total, nil)
	// The totals row adds up one currency; mixed currencies leave it blank.
	out.Total.Currency = ""
	if len(currencies) == 1 {
		out.Total.Currency = currencies[0]
	}
	return apiData(c, http.StatusOK, out)
}

// APIKPIs is GET /api/v1/kpis?merchant=&from=&to=[&method=]: each channel
// account's KPIs and score under the merchant's weights in force, and the
// fused score — the KPI page's and `payfuse kpi --json`'s figures.
func (h *Handlers) APIKPIs(c *fiber.Ctx) error {
	if err := apiQuery(c, "merchant", "from", "to", "method"); err != nil {
		return err
	}
	code := strings.ToUpper(strings.TrimSpace(c.Query("merchant")))
	if code == "" {
		return bad("merchant", "Give the merchant's code.")
	}
	method := c.Query("method")
	if method != "" && !slices.Contains(models.Methods, method) {
		return bad("method", "Give method as one of: "+strings.Join(models.Methods, ", ")+".")
	}
	sc := APIAuthOf(c).Scope
	m, err := h.Store.GetMerchantByCode(sc, code)
	if errors.Is(err, models.ErrNotFound) {
		return apiFieldErr(http.StatusNotFound, "not_found", "merchant", "No such merchant in the token's scope.")
	}
	if err != nil {
		return err
	}
	res, err := h.Store.ScoreKPIs(sc, models.KPIFilter{Merchant: m.Code, From: c.Query("from"), To: c.Query("to"), Method: method})
	if err != nil {
		return err
	}
	return apiData(c, http.StatusOK, res)
}
