package models

import (
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
)

// DashboardMaxDays is the longest date range the dashboard sums (a year and a day).
const DashboardMaxDays = 366

// Dashboard list sizes.
const (
	dashboardAlerts     = 6
	dashboardUnbalanced = 10
	dashboardAccounts   = 20
)

// DashboardFilter selects what the dashboard sums: one merchant ("" = every
// merchant in scope) over business dates From..To, inclusive.
type DashboardFilter struct {
	Merchant string
	From, To string
}

// Validate checks the filter against the user's scope and returns the
// problems by field (translation keys), or nil. A merchant out of scope reads
// the same as one that does not exist.
func (f DashboardFilter) Validate(scope Scope) FieldErrors {
	errs := FieldErrors{}
	if f.Merchant != "" && !scope.Allows(f.Merchant) {
		errs["merchant"] = "dashboard.err_merchant"
	}
	if !validBizDate(f.From) {
		errs["from"] = "dashboard.err_date"
	}
	if !validBizDate(f.To) {
		errs["to"] = "dashboard.err_date"
	}
	if errs["from"] == "" && errs["to"] == "" {
		from, _ := time.Parse(time.DateOnly, f.From)
		to, _ := time.Parse(time.DateOnly, f.To)
		switch {
		case from.After(to):
			errs["to"] = "dashboard.err_date_order"
		case int(to.Sub(from).Hours()/24)+1 > DashboardMaxDays:
			errs["to"] = "dashboard.err_range_long"
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// DashboardTotals are the sums of the whole range. Amounts in minor units.
type DashboardTotals struct {
	GMV          int64    `json:"gmv"`       // succeeded payments' amount
	Payments     int64    `json:"payments"`  // payments of every status
	Succeeded    int64    `json:"succeeded"` // payments that succeeded
	SuccessRate  *float64 `json:"success_rate"`
	Refunds      int64    `json:"refunds"` // succeeded refunds
	RefundAmount int64    `json:"refund_amount"`
	Fees         int64    `json:"fees"` // payment fees less refunded fees
	Net          int64    `json:"net"`  // GMV − refund amount − fees
}

func (t *DashboardTotals) add(r *dashboardRow) {
	t.GMV += r.AmountSucceeded
	t.Payments += r.Payments
	t.Succeeded += r.PaymentsSucceeded
	t.Refunds += r.Refunds
	t.RefundAmount += r.RefundAmount
	t.Fees += r.Fees
}

func (t *DashboardTotals) finish() {
	t.Net = t.GMV - t.RefundAmount - t.Fees
	t.SuccessRate = rate(t.Succeeded, t.Payments)
}

// rate is num/den as a percentage, nil when den is zero (no traffic is not 0%).
func rate(num, den int64) *float64 {
	if den == 0 {
		return nil
	}
	v := float64(num) * 100 / float64(den)
	return &v
}

// DashboardSeries is one channel's day-by-day figures, aligned with
// Dashboard.Dates (a day without traffic holds zeros and a nil rate).
type DashboardSeries struct {
	Channel     string     `json:"channel"`
	GMV         []int64    `json:"gmv"`
	Payments    []int64    `json:"payments"`
	SuccessRate []*float64 `json:"success_rate"`
	succeeded   []int64
}

// DashboardShare is one channel's or method's part of the range.
type DashboardShare struct {
	Key      string `json:"key"` // channel or method code
	GMV      int64  `json:"gmv"`
	Payments int64  `json:"payments"`
}

// DashboardAccount is one channel account's sums over the range.
type DashboardAccount struct {
	AccountID    uint64
	MerchantCode string
	Channel      string
	Name         string // the account's display name ("" when the account is gone)
	DashboardTotals
}

// Dashboard is everything the start page shows for a merchant (or all in
// scope) and a date range. Every figure comes from the daily rollups, so it
// costs the same at ten thousand ledger rows as at ten million.
type Dashboard struct {
	Filter       DashboardFilter
	Dates        []string          // every business date From..To, no gaps
	Channels     []DashboardSeries // by channel, in LookupChannel order
	ChannelShare []DashboardShare  // largest GMV first
	MethodShare  []DashboardShare  // largest GMV first
	Refunds      []int64           // succeeded refunds per date
	RefundAmount []int64           // per date
	Fees         []int64           // per date
	Totals       DashboardTotals
	Accounts     []DashboardAccount // largest GMV first, at most 20
	Score        []ScorePoint       // fused score per date
	// LastScore is the fused score of the latest date that has one (nil if none).
	LastScore *float64
	// Alerts are the most severe, most recent open alerts; OpenAlerts counts all.
	Alerts     []Alert
	OpenAlerts int64
	// Unbalanced are reconciled days in range that are not balanced (newest
	// first, at most 10); UnbalancedCount counts all of them.
	Unbalanced      []ReconDay
	UnbalancedCount int64
	// Expiring are accounts whose certificate expires within channels.ExpiringSoon.
	Expiring []ChannelAccount

	scoreSums DaySums // per date and account, for the score trend
}

// dashboardRow is one group of the rollups' sums.
type dashboardRow struct {
	AccountID         uint64
	Channel           string
	Method            string
	BizDate           string
	Payments          int64
	PaymentsSucceeded int64
	AmountSucceeded   int64
	Refunds           int64
	RefundAmount      int64
	Fees              int64
	KPI               KPISums // the same row's sums for scoring
}

// Dashboard assembles the dashboard of f in scope from the daily rollups, the
// alerts, the reconciliation days, the channel accounts and the KPI scores.
// A bad filter returns FieldErrors and reads nothing.
func (s *Store) Dashboard(scope Scope, f DashboardFilter) (*Dashboard, error) {
	if errs := f.Validate(scope); errs != nil {
		return nil, errs
	}
	// One merchant narrows the scope to it (it is in scope: Validate said so).
	sc := scope
	if f.Merchant != "" {
		sc = Scope{Merchants: []string{f.Merchant}}
	}
	d := &Dashboard{Filter: f}
	from, _ := time.Parse(time.DateOnly, f.From)
	to, _ := time.Parse(time.DateOnly, f.To)
	for day := from; !day.After(to); day = day.AddDate(0, 0, 1) {
		d.Dates = append(d.Dates, day.Format(time.DateOnly))
	}

	// The reads are independent: run them side by side, so the page waits
	// for the slowest, not for their sum. The score trend is computed from
	// the rollup rows the dashboard reads anyway (one scan, not two).
	d.scoreSums = DaySums{}
	var weights Weights
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, read := range []func() error{
		func() error { return s.dashboardRollups(sc, d) },
		func() error {
			var err error
			if weights, _, err = s.ActiveWeights(scope, f.Merchant); err != nil {
				return fmt.Errorf("dashboard: unable to read the KPI weights: %w", err)
			}
			return nil
		},
		func() error { return s.dashboardAttention(sc, d) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = read()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	score := ScoreDays(d.scoreSums, weights, f.From, f.To)
	d.Score = fillScore(d.Dates, score)
	for i := len(d.Score) - 1; i >= 0; i-- {
		if d.Score[i].Fused != nil {
			d.LastScore = d.Score[i].Fused
			break
		}
	}
	return d, nil
}

// dashboardRollups reads the range's rollup rows once, as they are, along
// the covering index ix_rollup_dashboard (one contiguous index-only range),
// and sums them per channel and date (trends), per channel and per method
// (shares), per date (refunds, fees), per account and in total; the same
// rows feed the score trend. Measured on MariaDB, grouping in the database
// (and a second query for the methods) costs the server more than it saves
// here. A range of two weeks or more is read as two halves side by side, on
// two connections: the database scans and Go sums each half at once.
func (s *Store) dashboardRollups(sc Scope, d *Dashboard) error {
	index := make(map[string]int, len(d.Dates))
	for i, day := range d.Dates {
		index[day] = i
	}
	n := len(d.Dates)
	d.Refunds, d.RefundAmount, d.Fees = make([]int64, n), make([]int64, n), make([]int64, n)
	parts := []*rollupPart{{from: d.Filter.From, to: d.Filter.To}}
	if n >= 14 {
		mid := n / 2
		parts = []*rollupPart{{from: d.Dates[0], to: d.Dates[mid-1]}, {from: d.Dates[mid], to: d.Dates[n-1]}}
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.readRollupPart(sc, d, index, p)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Merge the halves: their dates are disjoint, their sums add up.
	series := map[string]*DashboardSeries{}
	channelShare, methodShare := map[string]*DashboardShare{}, map[string]*DashboardShare{}
	accounts := map[uint64]*dashboardRow{}
	for _, p := range parts {
		for ch, sr := range p.series {
			have := series[ch]
			if have == nil {
				series[ch] = sr
				continue
			}
			for i := range sr.GMV {
				have.GMV[i] += sr.GMV[i]
				have.Payments[i] += sr.Payments[i]
				have.succeeded[i] += sr.succeeded[i]
			}
		}
		for k, sh := range p.channelShare {
			share(channelShare, k, sh.GMV, sh.Payments)
		}
		for k, sh := range p.methodShare {
			share(methodShare, k, sh.GMV, sh.Payments)
		}
		for id, r := range p.accounts {
			acc := accounts[id]
			if acc == nil {
				accounts[id] = r
				continue
			}
			acc.addSums(r)
		}
		for date, day := range p.scoreSums {
			d.scoreSums[date] = day
		}
	}
	for _, acc := range accounts { // every row belongs to one account: their sums are the totals
		d.Totals.add(acc)
	}
	d.Totals.finish()
	for _, sr := range series {
		for i := range sr.SuccessRate {
			sr.SuccessRate[i] = rate(sr.succeeded[i], sr.Payments[i])
		}
		d.Channels = append(d.Channels, *sr)
	}
	sort.Slice(d.Channels, func(i, j int) bool { return channelOrder(d.Channels[i].Channel) < channelOrder(d.Channels[j].Channel) })
	d.ChannelShare, d.MethodShare = sortedShares(channelShare), sortedShares(methodShare)
	return s.dashboardAccounts(sc, d, accounts)
}

// rollupPart is what one slice of the range's dates sums to. The per-date
// slices of the Dashboard are written directly (each part owns its dates).
type rollupPart struct {
	from, to                  string
	series                    map[string]*DashboardSeries
	channelShare, methodShare map[string]*DashboardShare
	accounts                  map[uint64]*dashboardRow
	scoreSums                 DaySums
}

func (s *Store) readRollupPart(sc Scope, d *Dashboard, index map[string]int, p *rollupPart) error {
	n := len(d.Dates)
	p.series, p.channelShare, p.methodShare = map[string]*DashboardSeries{}, map[string]*DashboardShare{}, map[string]*DashboardShare{}
	p.accounts, p.scoreSums = map[uint64]*dashboardRow{}, DaySums{}
	rows, err := s.DB.Model(&DailyRollup{}).Scopes(sc.Filter("merchant_code")).
		Select("account_id, channel, method, biz_date, payments, payments_succeeded, amount_succeeded, refunds, refund_amount, fees, "+
			"pay_seconds, pay_timed, statement_records, notified_records").
		Where("biz_date BETWEEN ? AND ?", p.from, p.to).Rows()
	if err != nil {
		return fmt.Errorf("dashboard: unable to read the daily rollups: %w", err)
	}
	defer rows.Close()
	// One row value for the whole scan, and the text columns read as raw
	// bytes: the date is looked up without a copy, channel and method codes
	// are interned (a handful of distinct values). Thousands of rows a page.
	var sums [11]scanInt
	var r dashboardRow
	var channel, method, date sql.RawBytes
	codes := map[string]string{}
	intern := func(b []byte) string {
		if c, ok := codes[string(b)]; ok {
			return c
		}
		c := string(b)
		codes[c] = c
		return c
	}
	for rows.Next() {
		if err := rows.Scan(&sums[0], &channel, &method, &date, &sums[1], &sums[2], &sums[3], &sums[4],
			&sums[5], &sums[6], &sums[7], &sums[8], &sums[9], &sums[10]); err != nil {
			return fmt.Errorf("dashboard: unable to read the daily rollups: %w", err)
		}
		at, ok := index[string(date)]
		if !ok {
			continue
		}
		r.BizDate, r.Channel, r.Method = d.Dates[at], intern(channel), intern(method)
		r.AccountID = uint64(sums[0])
		r.Payments, r.PaymentsSucceeded, r.AmountSucceeded = int64(sums[1]), int64(sums[2]), int64(sums[3])
		r.Refunds, r.RefundAmount, r.Fees = int64(sums[4]), int64(sums[5]), int64(sums[6])
		r.KPI = KPISums{Payments: r.Payments, Succeeded: r.PaymentsSucceeded, Amount: r.AmountSucceeded,
			Refunds: r.Refunds, RefundAmount: r.RefundAmount, Fees: r.Fees,
			PaySeconds: int64(sums[7]), PayTimed: int64(sums[8]), StatementRecords: int64(sums[9]), NotifiedRecords: int64(sums[10])}
		p.scoreSums.add(r.BizDate, r.AccountID, r.KPI)
		sr := p.series[r.Channel]
		if sr == nil {
			sr = &DashboardSeries{Channel: r.Channel, GMV: make([]int64, n), Payments: make([]int64, n),
				SuccessRate: make([]*float64, n), succeeded: make([]int64, n)}
			p.series[r.Channel] = sr
		}
		sr.GMV[at] += r.AmountSucceeded
		sr.Payments[at] += r.Payments
		sr.succeeded[at] += r.PaymentsSucceeded
		share(p.channelShare, r.Channel, r.AmountSucceeded, r.Payments)
		share(p.methodShare, r.Method, r.AmountSucceeded, r.Payments)
		d.Refunds[at] += r.Refunds
		d.RefundAmount[at] += r.RefundAmount
		d.Fees[at] += r.Fees
		acc := p.accounts[r.AccountID]
		if acc == nil {
			acc = &dashboardRow{AccountID: r.AccountID}
			p.accounts[r.AccountID] = acc
		}
		acc.addSums(&r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dashboard: unable to read the daily rollups: %w", err)
	}
	return nil
}

func (r *dashboardRow) addSums(o *dashboardRow) {
	r.Payments += o.Payments
	r.PaymentsSucceeded += o.PaymentsSucceeded
	r.AmountSucceeded += o.AmountSucceeded
	r.Refunds += o.Refunds
	r.RefundAmount += o.RefundAmount
	r.Fees += o.Fees
}

// scanInt scans an integer column without database/sql's reflection: the
// dashboard reads eleven of them per rollup row, thousands of rows a page.
type scanInt int64

// Scan implements sql.Scanner for the drivers' integer forms: int64 (MySQL's
// binary protocol, SQLite), text digits (MySQL's text protocol), NULL as 0.
func (v *scanInt) Scan(src any) error {
	switch x := src.(type) {
	case int64:
		*v = scanInt(x)
	case []byte:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", x)
		}
		*v = scanInt(n)
	case nil:
		*v = 0
	default:
		return fmt.Errorf("not an integer: %T", src)
	}
	return nil
}

// share adds gmv and payments to key's share in m.
func share(m map[string]*DashboardShare, key string, gmv, payments int64) {
	sh := m[key]
	if sh == nil {
		sh = &DashboardShare{Key: key}
		m[key] = sh
	}
	sh.GMV += gmv
	sh.Payments += payments
}

func sortedShares(m map[string]*DashboardShare) []DashboardShare {
	out := make([]DashboardShare, 0, len(m))
	for _, sh := range m {
		out = append(out, *sh)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GMV != out[j].GMV {
			return out[i].GMV > out[j].GMV
		}
		if out[i].Payments != out[j].Payments {
			return out[i].Payments > out[j].Payments
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// channelOrder places known channels in LookupChannel's order, others after.
func channelOrder(code string) string {
	for i, c := range ChannelSpecs() {
		if c.Code == code {
			return fmt.Sprintf("%03d", i)
		}
	}
	return "999" + code
}

// fillScore aligns the score trend with the dates: a date the trend lacks
// gets a nil score.
func fillScore(dates []string, trend []ScorePoint) []ScorePoint {
	by := make(map[string]*float64, len(trend))
	for _, p := range trend {
		by[p.Date] = p.Fused
	}
	out := make([]ScorePoint, len(dates))
	for i, day := range dates {
		out[i] = ScorePoint{Date: day, Fused: by[day]}
	}
	return out
}

// dashboardAccounts keeps the accounts with the largest GMV and names them.
func (s *Store) dashboardAccounts(sc Scope, d *Dashboard, sums map[uint64]*dashboardRow) error {
	rows := make([]dashboardRow, 0, len(sums))
	for _, r := range sums {
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].AmountSucceeded != rows[j].AmountSucceeded {
			return rows[i].AmountSucceeded > rows[j].AmountSucceeded
		}
		return rows[i].AccountID < rows[j].AccountID
	})
	rows = rows[:min(len(rows), dashboardAccounts)]
	if len(rows) == 0 {
		return nil
	}
	ids := make([]uint64, len(rows))
	for i, r := range rows {
		ids[i] = r.AccountID
	}
	var accts []ChannelAccount
	if err := s.DB.Scopes(sc.Filter("merchant_code")).Select("id, merchant_code, channel, display_name").
		Where("id IN ?", ids).Find(&accts).Error; err != nil {
		return fmt.Errorf("dashboard: unable to read the channel accounts: %w", err)
	}
	byID := make(map[uint64]*ChannelAccount, len(accts))
	for i := range accts {
		byID[accts[i].ID] = &accts[i]
	}
	for i := range rows {
		a := DashboardAccount{AccountID: rows[i].AccountID}
		if acct := byID[a.AccountID]; acct != nil {
			a.MerchantCode, a.Channel, a.Name = acct.MerchantCode, acct.Channel, acct.DisplayName
		}
		a.add(&rows[i])
		a.finish()
		d.Accounts = append(d.Accounts, a)
	}
	return nil
}

// dashboardAttention reads what needs a person: open alerts, unbalanced
// reconciliation days and expiring certificates.
func (s *Store) dashboardAttention(sc Scope, d *Dashboard) error {
	alerts, err := s.ListAlerts(sc, AlertFilter{Status: AlertOpen, Limit: 100})
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	rank := map[string]int{}
	for i, sv := range AlertSeverities {
		rank[sv] = i
	}
	sort.SliceStable(alerts, func(i, j int) bool { return rank[alerts[i].Severity] < rank[alerts[j].Severity] })
	d.Alerts = alerts[:min(len(alerts), dashboardAlerts)]
	if d.OpenAlerts, err = s.CountOpenAlerts(sc); err != nil {
		return fmt.Errorf("dashboard: unable to count the open alerts: %w", err)
	}

	unbalanced := func() *gorm.DB {
		return s.DB.Model(&ReconDay{}).Scopes(sc.Filter("merchant_code")).
			Where("biz_date BETWEEN ? AND ? AND status <> ?", d.Filter.From, d.Filter.To, ReconBalanced)
	}
	if err := unbalanced().Count(&d.UnbalancedCount).Error; err != nil {
		return fmt.Errorf("dashboard: unable to count the unbalanced days: %w", err)
	}
	if d.UnbalancedCount > 0 {
		if err := unbalanced().Order("biz_date DESC, account_id").Limit(dashboardUnbalanced).Find(&d.Unbalanced).Error; err != nil {
			return fmt.Errorf("dashboard: unable to list the unbalanced days: %w", err)
		}
	}

	if d.Expiring, err = s.ExpiringAccounts(sc, s.Now(), channels.ExpiringSoon); err != nil {
		return err
	}
	return nil
}
