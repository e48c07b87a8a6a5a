package models

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"
	"gorm.io/gorm"
)

// Finance reports: the daily and monthly settlement report per merchant ×
// channel account (× method on demand), served from the daily rollups, with
// the reconciliation status of each day.
//
// The figures are those of the money that moved, the same as the ledger's
// succeeded rows of the period:
//
//	payments        succeeded payments (count), by their business date
//	payment_amount  their amount
//	refunds         succeeded refunds (count), by the refund's business date
//	refund_amount   their amount
//	fees            the payments' fees minus the fees returned with the refunds
//	net             payment_amount − refund_amount − fees
//
// So the report's totals equal the sums over a ledger export of the same
// merchant and business dates, keeping the rows whose status is succeeded
// (payments and refunds apart). Pending, failed and closed payments move no
// money and are not counted.

// Report periods.
const (
	ReportDaily   = "daily"
	ReportMonthly = "monthly"
)

// Reconciliation words of a report row. A daily row carries the day's own
// status (ReconBalanced, ReconOpen, ReconNoStatement) or ReportNotRun; a
// monthly row, and the totals row, summarise their days (or rows) with
// summariseRecon: one word when they all agree, ReconOpen when any is open,
// else ReportPartial.
const (
	// ReportNotRun: the day was not reconciled (no reconciliation recorded).
	ReportNotRun = "not_run"
	// ReportPartial: the days disagree — some balanced, others not run or
	// without a statement — and none is open.
	ReportPartial = "partial"
)

// ReportReconStatuses lists every word the reconciliation column may hold.
var ReportReconStatuses = []string{ReconBalanced, ReconOpen, ReconNoStatement, ReportNotRun, ReportPartial}

// ReportTotal is the merchant column of the totals row (merchant codes are
// upper case, so it cannot be one).
const ReportTotal = "total"

// ReportFilter selects a report. Date is YYYY-MM-DD for a daily report and
// YYYY-MM for a monthly one; Merchant "" means every merchant in scope.
type ReportFilter struct {
	Merchant string
	Period   string
	Date     string
	ByMethod bool
}

// Validate normalises the filter and reports what is wrong (translation
// keys by field: merchant, period, date).
func (f *ReportFilter) Validate() FieldErrors {
	f.Merchant = strings.ToUpper(strings.TrimSpace(f.Merchant))
	f.Date = strings.TrimSpace(f.Date)
	errs := FieldErrors{}
	if f.Merchant != "" && !ValidMerchantCode(f.Merchant) {
		errs["merchant"] = "reports.err_merchant"
	}
	switch f.Period {
	case ReportDaily:
		if !validBizDate(f.Date) {
			errs["date"] = "reports.err_date"
		}
	case ReportMonthly:
		if !validMonth(f.Date) {
			errs["date"] = "reports.err_month"
		}
	default:
		errs["period"] = "reports.err_period"
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func validMonth(s string) bool {
	t, err := time.Parse("2006-01", s)
	return err == nil && t.Format("2006-01") == s && t.Year() >= 2000 && t.Year() <= 2100
}

// Range returns the first and last business dates of a valid filter.
func (f ReportFilter) Range() (from, to string) {
	if f.Period == ReportDaily {
		return f.Date, f.Date
	}
	m, _ := time.Parse("2006-01", f.Date)
	return m.Format(time.DateOnly), m.AddDate(0, 1, -1).Format(time.DateOnly)
}

// Values writes the filter as the report page's query values.
func (f ReportFilter) Values() url.Values {
	v := url.Values{}
	if f.Merchant != "" {
		v.Set("merchant", f.Merchant)
	}
	v.Set("period", f.Period)
	if f.Period == ReportMonthly {
		v.Set("month", f.Date)
	} else {
		v.Set("date", f.Date)
	}
	if f.ByMethod {
		v.Set("by_method", "1")
	}
	return v
}

// ReportFigures are the money columns of a report row, in minor units.
type ReportFigures struct {
	Payments      int64
	PaymentAmount int64
	Refunds       int64
	RefundAmount  int64
	Fees          int64
}

// Net is payment_amount − refund_amount − fees.
func (f ReportFigures) Net() int64 { return f.PaymentAmount - f.RefundAmount - f.Fees }

func (f *ReportFigures) add(g ReportFigures) {
	f.Payments += g.Payments
	f.PaymentAmount += g.PaymentAmount
	f.Refunds += g.Refunds
	f.RefundAmount += g.RefundAmount
	f.Fees += g.Fees
}

// ReportRow is one merchant × channel account (× method) of the period.
type ReportRow struct {
	MerchantCode string
	AccountID    uint64
	Channel      string
	Account      string // the account's display name ("#id" once deleted)
	Method       string // by-method reports only; "" for records of unknown method
	Date         string // YYYY-MM-DD, or YYYY-MM for a monthly report
	ReportFigures
	Reconciliation string // see ReportReconStatuses
	From, To       string // the business dates the row covers, for the ledger link
}

// LedgerFilter is the ledger's filter that lists the row's records: the same
// merchant, channel, business dates and (by method) method. The ledger has
// no account filter: a merchant with two accounts at one channel sees both.
func (r *ReportRow) LedgerFilter() LedgerFilter {
	f := LedgerFilter{Merchant: r.MerchantCode, Channel: r.Channel, DateFrom: r.From, DateTo: r.To}
	if r.Method != "" {
		f.Method = r.Method
	}
	return f
}

// ReportAccountDays is one channel account's reconciliation, day by day, of
// a report's period: every day with ledger activity or a reconciliation.
type ReportAccountDays struct {
	MerchantCode string
	AccountID    uint64
	Channel      string
	Account      string
	Days         map[string]string // business date -> ReconBalanced, ReconOpen, ReconNoStatement or ReportNotRun
	DayIDs       map[string]uint64 // business date -> recon day id, for the days reconciled
}

// Report is a daily or monthly settlement report.
type Report struct {
	Filter   ReportFilter
	From, To string // business dates covered, inclusive
	Rows     []ReportRow
	Total    ReportRow // merchant ReportTotal, figures summed, reconciliation summarised
	Accounts []ReportAccountDays
}

// summariseRecon folds several days' (or rows') reconciliation words into
// one: the common word when all agree, open when any is open, not_run when
// there are none, else partial.
func summariseRecon(statuses []string) string {
	if len(statuses) == 0 {
		return ReportNotRun
	}
	same := true
	for _, s := range statuses {
		if s == ReconOpen {
			return ReconOpen
		}
		if s != statuses[0] {
			same = false
		}
	}
	if same {
		return statuses[0]
	}
	return ReportPartial
}

// Report builds the settlement report the filter selects, within scope. A
// merchant outside the scope (or unknown) is ErrNotFound; a bad filter is
// FieldErrors. Rows come from the daily rollups (every merchant × account
// with activity in the period) and from the reconciliation days (an account
// reconciled in the period without activity gets a row of zeros), sorted by
// merchant, channel, account and method.
func (s *Store) Report(scope Scope, f ReportFilter) (*Report, error) {
	if errs := f.Validate(); errs != nil {
		return nil, errs
	}
	if f.Merchant != "" {
		if _, err := s.GetMerchantByCode(scope, f.Merchant); err != nil {
			return nil, err
		}
	}
	from, to := f.Range()
	rep := &Report{Filter: f, From: from, To: to}
	base := func(model any) *gorm.DB {
		q := s.DB.Model(model).Scopes(scope.Filter("merchant_code")).Where("biz_date >= ? AND biz_date <= ?", from, to)
		if f.Merchant != "" {
			q = q.Where("merchant_code = ?", f.Merchant)
		}
		return q
	}

	type sums struct {
		MerchantCode string
		AccountID    uint64
		Channel      string
		Method       string
		Payments     int64
		PaymentAmt   int64
		Refunds      int64
		RefundAmt    int64
		Fees         int64
	}
	group := "merchant_code, account_id, channel"
	if f.ByMethod {
		group += ", method"
	}
	var agg []sums
	if err := base(&DailyRollup{}).Select(group + `, SUM(payments_succeeded) AS payments, SUM(amount_succeeded) AS payment_amt,
		SUM(refunds) AS refunds, SUM(refund_amount) AS refund_amt, SUM(fees) AS fees`).
		Group(group).Scan(&agg).Error; err != nil {
		return nil, fmt.Errorf("reports: unable to sum the daily rollups: %w", err)
	}

	// Which days each account was active, and how each was reconciled.
	type active struct {
		AccountID uint64
		BizDate   string
	}
	var act []active
	if err := base(&DailyRollup{}).Distinct("account_id", "biz_date").Scan(&act).Error; err != nil {
		return nil, fmt.Errorf("reports: unable to read active days: %w", err)
	}
	var days []ReconDay
	if err := base(&ReconDay{}).Select("id", "merchant_code", "account_id", "channel", "biz_date", "status").
		Find(&days).Error; err != nil {
		return nil, fmt.Errorf("reports: unable to read reconciliation days: %w", err)
	}

	byAcct := map[uint64]*ReportAccountDays{}
	acctOf := func(merchant string, id uint64, channel string) *ReportAccountDays {
		a := byAcct[id]
		if a == nil {
			a = &ReportAccountDays{MerchantCode: merchant, AccountID: id, Channel: channel, Days: map[string]string{}, DayIDs: map[string]uint64{}}
			byAcct[id] = a
		}
		return a
	}
	for _, r := range agg {
		acctOf(r.MerchantCode, r.AccountID, r.Channel)
	}
	for _, d := range days {
		a := acctOf(d.MerchantCode, d.AccountID, d.Channel)
		a.Days[d.BizDate], a.DayIDs[d.BizDate] = d.Status, d.ID
	}
	for _, d := range act {
		if a := byAcct[d.AccountID]; a != nil {
			if _, ok := a.Days[d.BizDate]; !ok {
				a.Days[d.BizDate] = ReportNotRun
			}
		}
	}
	ids := make([]uint64, 0, len(byAcct))
	for id := range byAcct {
		ids = append(ids, id)
	}
	if len(ids) > 0 {
		var accts []ChannelAccount
		if err := s.DB.Scopes(scope.Filter("merchant_code")).Select("id", "display_name").Where("id IN ?", ids).
			Find(&accts).Error; err != nil {
			return nil, fmt.Errorf("reports: unable to read channel accounts: %w", err)
		}
		for _, a := range accts {
			byAcct[a.ID].Account = a.DisplayName
		}
	}
	for _, a := range byAcct {
		if a.Account == "" {
			a.Account = "#" + idStr(a.AccountID)
		}
	}

	date := f.Date
	recon := func(a *ReportAccountDays) string {
		if f.Period == ReportDaily {
			if st, ok := a.Days[f.Date]; ok {
				return st
			}
			return ReportNotRun
		}
		st := make([]string, 0, len(a.Days))
		for _, d := range sortedKeys(a.Days) {
			st = append(st, a.Days[d])
		}
		return summariseRecon(st)
	}
	seen := map[uint64]bool{}
	for _, r := range agg {
		a := byAcct[r.AccountID]
		seen[r.AccountID] = true
		rep.Rows = append(rep.Rows, ReportRow{MerchantCode: r.MerchantCode, AccountID: r.AccountID, Channel: r.Channel,
			Account: a.Account, Method: r.Method, Date: date, From: from, To: to, Reconciliation: recon(a),
			ReportFigures: ReportFigures{r.Payments, r.PaymentAmt, r.Refunds, r.RefundAmt, r.Fees}})
	}
	for _, a := range byAcct {
		if !seen[a.AccountID] {
			rep.Rows = append(rep.Rows, ReportRow{MerchantCode: a.MerchantCode, AccountID: a.AccountID, Channel: a.Channel,
				Account: a.Account, Date: date, From: from, To: to, Reconciliation: recon(a)})
		}
		rep.Accounts = append(rep.Accounts, *a)
	}
	sort.Slice(rep.Rows, func(i, j int) bool { return rowLess(&rep.Rows[i], &rep.Rows[j]) })
	sort.Slice(rep.Accounts, func(i, j int) bool {
		x, y := &rep.Accounts[i], &rep.Accounts[j]
		return rowLess(&ReportRow{MerchantCode: x.MerchantCode, Channel: x.Channel, Account: x.Account, AccountID: x.AccountID},
			&ReportRow{MerchantCode: y.MerchantCode, Channel: y.Channel, Account: y.Account, AccountID: y.AccountID})
	})

	rep.Total = ReportRow{MerchantCode: ReportTotal, Date: date, From: from, To: to}
	var st []string
	for i := range rep.Rows {
		rep.Total.add(rep.Rows[i].ReportFigures)
	}
	for _, a := range rep.Accounts {
		st = append(st, recon(&a))
	}
	rep.Total.Reconciliation = summariseRecon(st)
	return rep, nil
}

func rowLess(a, b *ReportRow) bool {
	switch {
	case a.MerchantCode != b.MerchantCode:
		return a.MerchantCode < b.MerchantCode
	case a.Channel != b.Channel:
		return a.Channel < b.Channel
	case a.Account != b.Account:
		return a.Account < b.Account
	case a.AccountID != b.AccountID:
		return a.AccountID < b.AccountID
	}
	return methodRank(a.Method) < methodRank(b.Method)
}

// methodRank orders methods as Methods does; unknown ("") last.
func methodRank(m string) int {
	for i, x := range Methods {
		if x == m {
			return i
		}
	}
	return len(Methods)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Columns are the report's export columns, in order (a stable interface):
// method appears, after account, only in a by-method report.
func (r *Report) Columns() []string {
	cols := []string{"merchant", "channel", "account"}
	if r.Filter.ByMethod {
		cols = append(cols, "method")
	}
	return append(cols, "date", "payments", "payment_amount", "refunds", "refund_amount", "fees", "net", "reconciliation")
}

// Record is a row as export columns: amounts as yuan with two decimals.
func (r *Report) Record(row *ReportRow) []string {
	rec := []string{row.MerchantCode, row.Channel, row.Account}
	if r.Filter.ByMethod {
		rec = append(rec, row.Method)
	}
	return append(rec, row.Date, fmt.Sprint(row.Payments), Yuan(row.PaymentAmount), fmt.Sprint(row.Refunds),
		Yuan(row.RefundAmount), Yuan(row.Fees), Yuan(row.Net()), row.Reconciliation)
}

// WriteCSV writes the report as CSV (UTF-8 with a BOM, CRLF line ends): the
// header, one line per row, and the totals row last (merchant "total").
func (r *Report) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString("\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(bw)
	cw.UseCRLF = true
	cw.Write(r.Columns())
	for i := range r.Rows {
		cw.Write(r.Record(&r.Rows[i]))
	}
	cw.Write(r.Record(&r.Total))
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("reports: unable to write CSV: %w", err)
	}
	return bw.Flush()
}

// ReportSheet is the name of the XLSX report's sheet.
const ReportSheet = "Report"

// WriteXLSX writes the report as one XLSX sheet: a bold header frozen at
// the top, counts as whole numbers (#,##0) and amounts as numbers with two
// decimals (#,##0.00), and a bold totals row last.
func (r *Report) WriteXLSX(w io.Writer) error {
	x := excelize.NewFile()
	defer x.Close()
	if err := x.SetSheetName("Sheet1", ReportSheet); err != nil {
		return err
	}
	bold := &excelize.Font{Bold: true}
	styles := map[string]int{}
	for name, st := range map[string]*excelize.Style{
		"header": {Font: bold, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"F1F5F9"}}},
		"text":   {}, "count": {NumFmt: 3}, "money": {NumFmt: 4},
		"total_text": {Font: bold}, "total_count": {Font: bold, NumFmt: 3}, "total_money": {Font: bold, NumFmt: 4},
	} {
		id, err := x.NewStyle(st)
		if err != nil {
			return fmt.Errorf("reports: unable to style XLSX: %w", err)
		}
		styles[name] = id
	}
	sw, err := x.NewStreamWriter(ReportSheet)
	if err != nil {
		return err
	}
	cols := r.Columns()
	if err := sw.SetColWidth(1, len(cols), 15); err != nil {
		return err
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft",
		Selection: []excelize.Selection{{SQRef: "A2", ActiveCell: "A2", Pane: "bottomLeft"}}}); err != nil {
		return err
	}
	header := make([]any, len(cols))
	for i, c := range cols {
		header[i] = excelize.Cell{StyleID: styles["header"], Value: c}
	}
	if err := sw.SetRow("A1", header); err != nil {
		return err
	}
	write := func(n int, row *ReportRow, total bool) error {
		pre := ""
		if total {
			pre = "total_"
		}
		text := func(s string) excelize.Cell { return excelize.Cell{StyleID: styles[pre+"text"], Value: s} }
		yuan := func(fen int64) excelize.Cell {
			return excelize.Cell{StyleID: styles[pre+"money"], Value: float64(fen) / 100}
		}
		count := func(n int64) excelize.Cell { return excelize.Cell{StyleID: styles[pre+"count"], Value: n} }
		cells := []any{text(row.MerchantCode), text(row.Channel), text(row.Account)}
		if r.Filter.ByMethod {
			cells = append(cells, text(row.Method))
		}
		cells = append(cells, text(row.Date), count(row.Payments), yuan(row.PaymentAmount), count(row.Refunds),
			yuan(row.RefundAmount), yuan(row.Fees), yuan(row.Net()), text(row.Reconciliation))
		cell, _ := excelize.CoordinatesToCellName(1, n)
		return sw.SetRow(cell, cells)
	}
	for i := range r.Rows {
		if err := write(i+2, &r.Rows[i], false); err != nil {
			return err
		}
	}
	if err := write(len(r.Rows)+2, &r.Total, true); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	if _, err := x.WriteTo(w); err != nil {
		return fmt.Errorf("reports: unable to write XLSX: %w", err)
	}
	return nil
}

// ReportJSONRow is a report row as JSON: amounts are numbers in yuan with
// two decimals (written from the integer minor units, never through a float).
type ReportJSONRow struct {
	Merchant       string            `json:"merchant"`
	Channel        string            `json:"channel,omitempty"`
	Account        string            `json:"account,omitempty"`
	AccountID      uint64            `json:"account_id,omitempty"`
	Method         *string           `json:"method,omitempty"`
	Date           string            `json:"date"`
	Payments       int64             `json:"payments"`
	PaymentAmount  json.Number       `json:"payment_amount"`
	Refunds        int64             `json:"refunds"`
	RefundAmount   json.Number       `json:"refund_amount"`
	Fees           json.Number       `json:"fees"`
	Net            json.Number       `json:"net"`
	Reconciliation string            `json:"reconciliation"`
	Days           map[string]string `json:"days,omitempty"`
}

// ReportJSON is a report as JSON (stable keys).
type ReportJSON struct {
	Period   string          `json:"period"`
	Merchant string          `json:"merchant,omitempty"`
	Date     string          `json:"date"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	ByMethod bool            `json:"by_method"`
	Rows     []ReportJSONRow `json:"rows"`
	Total    ReportJSONRow   `json:"total"`
}

// JSON returns the report in its JSON form. A monthly report's rows carry
// the reconciliation status of each active or reconciled day.
func (r *Report) JSON() ReportJSON {
	days := map[uint64]map[string]string{}
	for _, a := range r.Accounts {
		days[a.AccountID] = a.Days
	}
	conv := func(row *ReportRow) ReportJSONRow {
		out := ReportJSONRow{Merchant: row.MerchantCode, Channel: row.Channel, Account: row.Account, AccountID: row.AccountID,
			Date: row.Date, Payments: row.Payments, PaymentAmount: json.Number(Yuan(row.PaymentAmount)), Refunds: row.Refunds,
			RefundAmount: json.Number(Yuan(row.RefundAmount)), Fees: json.Number(Yuan(row.Fees)), Net: json.Number(Yuan(row.Net())),
			Reconciliation: row.Reconciliation}
		if r.Filter.ByMethod && row.MerchantCode != ReportTotal {
			m := row.Method
			out.Method = &m
		}
		if r.Filter.Period == ReportMonthly && row.AccountID != 0 && len(days[row.AccountID]) > 0 {
			out.Days = days[row.AccountID]
		}
		return out
	}
	out := ReportJSON{Period: r.Filter.Period, Merchant: r.Filter.Merchant, Date: r.Filter.Date, From: r.From, To: r.To,
		ByMethod: r.Filter.ByMethod, Rows: []ReportJSONRow{}, Total: conv(&r.Total)}
	for i := range r.Rows {
		out.Rows = append(out.Rows, conv(&r.Rows[i]))
	}
	return out
}
