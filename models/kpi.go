package models

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// KPI keys, in the order the pages show them.
const (
	KPICount            = "count"              // succeeded payments
	KPISuccessRate      = "success_rate"       // succeeded / all payments, %
	KPIGMV              = "gmv"                // succeeded payment amount, yuan
	KPIAvgTicket        = "avg_ticket"         // GMV / succeeded payments, yuan
	KPIRefundRateCount  = "refund_rate_count"  // succeeded refunds / succeeded payments, %
	KPIRefundRateAmount = "refund_rate_amount" // refund amount / GMV, %
	KPIFeeRate          = "fee_rate"           // fees / GMV, %
	KPINet              = "net"                // GMV − refunds − fees, yuan
	KPIPayTime          = "pay_time"           // mean seconds from creation to payment
	KPINotifyCoverage   = "notify_coverage"    // statement records also notified, %
)

// KPI units: how a value reads.
const (
	UnitCount   = "count"
	UnitPercent = "percent"
	UnitYuan    = "yuan"
	UnitSeconds = "seconds"
)

// Normalisations of a KPI to 0–100.
const (
	NormMinMax = "minmax" // across the channel accounts in view
	NormTarget = "target" // against a target the admin sets
)

// KPIDef describes one KPI: its key, unit and whether higher is better.
type KPIDef struct {
	Key    string
	Unit   string
	Higher bool // higher is better; lower is better otherwise
}

// KPIDefs lists every KPI in display order.
var KPIDefs = [...]KPIDef{
	{KPICount, UnitCount, true},
	{KPISuccessRate, UnitPercent, true},
	{KPIGMV, UnitYuan, true},
	{KPIAvgTicket, UnitYuan, true},
	{KPIRefundRateCount, UnitPercent, false},
	{KPIRefundRateAmount, UnitPercent, false},
	{KPIFeeRate, UnitPercent, false},
	{KPINet, UnitYuan, true},
	{KPIPayTime, UnitSeconds, false},
	{KPINotifyCoverage, UnitPercent, true},
}

// KPIDefOf returns the definition of a KPI key.
func KPIDefOf(key string) (KPIDef, bool) {
	for _, d := range KPIDefs {
		if d.Key == key {
			return d, true
		}
	}
	return KPIDef{}, false
}

// KPISums are the rollup sums a channel account's KPIs are computed from.
type KPISums struct {
	Payments, Succeeded, Amount, Refunds, RefundAmount, Fees int64
	PaySeconds, PayTimed, StatementRecords, NotifiedRecords  int64
}

func (k *KPISums) addRollup(r *DailyRollup) {
	k.Payments += r.Payments
	k.Succeeded += r.PaymentsSucceeded
	k.Amount += r.AmountSucceeded
	k.Refunds += r.Refunds
	k.RefundAmount += r.RefundAmount
	k.Fees += r.Fees
	k.PaySeconds += r.PaySeconds
	k.PayTimed += r.PayTimed
	k.StatementRecords += r.StatementRecords
	k.NotifiedRecords += r.NotifiedRecords
}

// Traffic reports whether the account moved anything in the range.
func (k KPISums) Traffic() bool { return k.Payments != 0 || k.Refunds != 0 }

// Values computes the KPIs in their display units. A KPI whose denominator
// is zero has no value (nil): a rate of nothing is unknown, not 0.
func (k KPISums) Values() map[string]*float64 {
	vals := k.values()
	out := make(map[string]*float64, len(KPIDefs))
	for i, def := range KPIDefs {
		out[def.Key] = nil
		if vals[i].ok {
			v := vals[i].v
			out[def.Key] = &v
		}
	}
	return out
}

// kpiValue is one KPI's value in its display unit; ok is false when it is
// unknown (a zero denominator).
type kpiValue struct {
	v  float64
	ok bool
}

// kpiValues are an account's KPI values in KPIDefs order.
type kpiValues [len(KPIDefs)]kpiValue

// values computes the KPIs without allocating: the daily score trend scores
// every date of a range, so this runs thousands of times per dashboard.
func (k KPISums) values() kpiValues {
	var out kpiValues
	ratio := func(num, den int64, scale float64) kpiValue {
		if den == 0 {
			return kpiValue{}
		}
		return kpiValue{float64(num) / float64(den) * scale, true}
	}
	for i, def := range KPIDefs {
		switch def.Key {
		case KPICount:
			out[i] = kpiValue{float64(k.Succeeded), true}
		case KPISuccessRate:
			out[i] = ratio(k.Succeeded, k.Payments, 100)
		case KPIGMV:
			out[i] = kpiValue{float64(k.Amount) / 100, true}
		case KPIAvgTicket:
			out[i] = ratio(k.Amount, k.Succeeded, 0.01)
		case KPIRefundRateCount:
			out[i] = ratio(k.Refunds, k.Succeeded, 100)
		case KPIRefundRateAmount:
			out[i] = ratio(k.RefundAmount, k.Amount, 100)
		case KPIFeeRate:
			out[i] = ratio(k.Fees, k.Amount, 100)
		case KPINet:
			out[i] = kpiValue{float64(k.Amount-k.RefundAmount-k.Fees) / 100, true}
		case KPIPayTime:
			out[i] = ratio(k.PaySeconds, k.PayTimed, 1)
		case KPINotifyCoverage:
			out[i] = ratio(k.NotifiedRecords, k.StatementRecords, 100)
		}
	}
	return out
}

// AccountKPIs are one channel account's sums and KPIs over a range.
type AccountKPIs struct {
	AccountID    uint64
	MerchantCode string
	Channel      string
	Name         string
	Sums         KPISums
}

// KPIFilter selects the rollups the KPIs are computed from.
type KPIFilter struct {
	Merchant string // "" = every merchant in scope
	From, To string // business dates, inclusive
	Method   string // "" = every method
}

// Validate checks the filter's dates (field errors keyed by from / to).
func (f KPIFilter) Validate() error {
	errs := FieldErrors{}
	if !validBizDate(f.From) {
		errs["from"] = "err.recon_date"
	}
	if !validBizDate(f.To) {
		errs["to"] = "err.recon_date"
	}
	if len(errs) == 0 && f.From > f.To {
		errs["to"] = "err.date_order"
	}
	if len(errs) == 0 {
		a, _ := time.Parse(time.DateOnly, f.From)
		b, _ := time.Parse(time.DateOnly, f.To)
		if b.Sub(a) > 366*24*time.Hour {
			errs["to"] = "kpi.err_range"
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// kpiSumCols sums the rollup columns the KPIs read, named as DailyRollup's fields.
const kpiSumCols = `SUM(payments) AS payments, SUM(payments_succeeded) AS payments_succeeded,
	SUM(amount_succeeded) AS amount_succeeded, SUM(refunds) AS refunds, SUM(refund_amount) AS refund_amount,
	SUM(fees) AS fees, SUM(pay_seconds) AS pay_seconds, SUM(pay_timed) AS pay_timed,
	SUM(statement_records) AS statement_records, SUM(notified_records) AS notified_records`

// kpiRollups sums the daily rollups of the filter per account (and per
// business date with byDate) in the database: a handful of rows reach Go,
// however many days and methods the range holds.
func (s *Store) kpiRollups(scope Scope, f KPIFilter, byDate bool) ([]DailyRollup, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	group := "merchant_code, account_id, channel"
	if byDate {
		group += ", biz_date"
	}
	q := s.DB.Model(&DailyRollup{}).Scopes(scope.Filter("merchant_code")).Select(group+", "+kpiSumCols).
		Where("biz_date BETWEEN ? AND ?", f.From, f.To)
	if f.Merchant != "" {
		q = q.Where("merchant_code = ?", f.Merchant)
	}
	if f.Method != "" {
		q = q.Where("method = ?", f.Method)
	}
	var rows []DailyRollup
	if err := q.Group(group).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("kpi: unable to read the daily rollups: %w", err)
	}
	return rows, nil
}

// kpiAccounts lists the channel accounts in view: every account of the
// merchant(s) in scope, so that one without traffic shows as such.
func (s *Store) kpiAccounts(scope Scope, merchant string) (map[uint64]*AccountKPIs, error) {
	q := s.DB.Model(&ChannelAccount{}).Scopes(scope.Filter("merchant_code"))
	if merchant != "" {
		q = q.Where("merchant_code = ?", merchant)
	}
	var accts []ChannelAccount
	if err := q.Order("merchant_code, channel, id").Find(&accts).Error; err != nil {
		return nil, fmt.Errorf("kpi: unable to list channel accounts: %w", err)
	}
	out := make(map[uint64]*AccountKPIs, len(accts))
	for _, a := range accts {
		out[a.ID] = &AccountKPIs{AccountID: a.ID, MerchantCode: a.MerchantCode, Channel: a.Channel, Name: a.DisplayName}
	}
	return out, nil
}

func sortedAccounts(m map[uint64]*AccountKPIs) []AccountKPIs {
	out := make([]AccountKPIs, 0, len(m))
	for _, a := range m {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MerchantCode != out[j].MerchantCode {
			return out[i].MerchantCode < out[j].MerchantCode
		}
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].AccountID < out[j].AccountID
	})
	return out
}

func (a *AccountKPIs) fill(r *DailyRollup) {
	if a.Channel == "" {
		a.MerchantCode, a.Channel = r.MerchantCode, r.Channel
	}
	if a.Name == "" {
		a.Name = "#" + strconv.FormatUint(r.AccountID, 10) // a deleted account's history
	}
	a.Sums.addRollup(r)
}

// KPIs sums the daily rollups of the filter per channel account. Every
// account of the merchant(s) in view is listed, with or without traffic.
func (s *Store) KPIs(scope Scope, f KPIFilter) ([]AccountKPIs, error) {
	rows, err := s.kpiRollups(scope, f, false)
	if err != nil {
		return nil, err
	}
	accts, err := s.kpiAccounts(scope, f.Merchant)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		a := accts[r.AccountID]
		if a == nil {
			a = &AccountKPIs{AccountID: r.AccountID}
			accts[r.AccountID] = a
		}
		a.fill(r)
	}
	return sortedAccounts(accts), nil
}

func (s *Store) scoreTrend(scope Scope, merchant, from, to string) ([]ScorePoint, error) {
	rows, err := s.kpiRollups(scope, KPIFilter{Merchant: merchant, From: from, To: to}, true)
	if err != nil {
		return nil, err
	}
	w, _, err := s.ActiveWeights(scope, merchant)
	if err != nil {
		return nil, err
	}
	sums := DaySums{}
	for i := range rows {
		r := &rows[i]
		var k KPISums
		k.addRollup(r)
		sums.add(r.BizDate, r.AccountID, k)
	}
	return ScoreDays(sums, w, from, to), nil
}

// DaySums are KPI sums per business date and channel account (values, not
// pointers: one allocation per date, not per account and date).
type DaySums map[string]map[uint64]KPISums

func (d DaySums) add(date string, account uint64, k KPISums) {
	day := d[date]
	if day == nil {
		day = map[uint64]KPISums{}
		d[date] = day
	}
	have := day[account]
	have.Payments += k.Payments
	have.Succeeded += k.Succeeded
	have.Amount += k.Amount
	have.Refunds += k.Refunds
	have.RefundAmount += k.RefundAmount
	have.Fees += k.Fees
	have.PaySeconds += k.PaySeconds
	have.PayTimed += k.PayTimed
	have.StatementRecords += k.StatementRecords
	have.NotifiedRecords += k.NotifiedRecords
	day[account] = have
}

// ScoreDays scores each business date from..to on its own under w: the
// fused score of the accounts with traffic that day (nil when none had).
func ScoreDays(sums DaySums, w Weights, from, to string) []ScorePoint {
	var out []ScorePoint
	start, _ := time.Parse(time.DateOnly, from)
	end, _ := time.Parse(time.DateOnly, to)
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		date := d.Format(time.DateOnly)
		p := ScorePoint{Date: date}
		if day := sums[date]; day != nil {
			accts := make([]AccountKPIs, 0, len(day))
			for id, k := range day {
				accts = append(accts, AccountKPIs{AccountID: id, Sums: k})
			}
			sort.Slice(accts, func(i, j int) bool { return accts[i].AccountID < accts[j].AccountID })
			p.Fused = score(accts, w, false).Fused
		}
		out = append(out, p)
	}
	return out
}

// KPIWeight is the weight of one KPI and how it is normalised.
type KPIWeight struct {
	Weight float64 `json:"weight"`
	Norm   string  `json:"norm"`             // NormMinMax or NormTarget
	Target float64 `json:"target,omitempty"` // in the KPI's display unit, with NormTarget
}

// Weights is a weight set: a weight per KPI and per channel account.
// Accounts it does not name weigh DefaultAccountWeight.
type Weights struct {
	Name     string               `json:"name"`
	KPIs     map[string]KPIWeight `json:"kpis"`
	Accounts map[uint64]float64   `json:"accounts,omitempty"`
}

// DefaultAccountWeight is the weight of an account a set does not name.
const DefaultAccountWeight = 1.0

// MaxWeight caps a weight; it keeps typing slips (1e9) out of saved sets.
const MaxWeight = 1000.0

// DefaultWeights is what scores a merchant with no saved set and no global
// default: every KPI weighs 1, min–max across the accounts in view.
func DefaultWeights() Weights {
	w := Weights{Name: "Default", KPIs: map[string]KPIWeight{}}
	for _, d := range KPIDefs {
		w.KPIs[d.Key] = KPIWeight{Weight: 1, Norm: NormMinMax}
	}
	return w
}

// Clone returns a deep copy.
func (w Weights) Clone() Weights {
	c := Weights{Name: w.Name, KPIs: make(map[string]KPIWeight, len(w.KPIs)), Accounts: make(map[uint64]float64, len(w.Accounts))}
	for k, v := range w.KPIs {
		c.KPIs[k] = v
	}
	for k, v := range w.Accounts {
		c.Accounts[k] = v
	}
	return c
}

// AccountWeight is the weight of a channel account in the fused score.
func (w Weights) AccountWeight(id uint64) float64 {
	if v, ok := w.Accounts[id]; ok {
		return v
	}
	return DefaultAccountWeight
}

func badWeight(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > MaxWeight }

// Validate checks a weight set against the accounts in view: weights
// finite, non-negative and at most MaxWeight; at least one KPI weight and
// one account weight positive; a target set where a KPI is normalised
// against one. Field errors are keyed as the weights form names its
// fields — w.<kpi> (weight), t.<kpi> (target), a.<account id> — and kpis,
// accounts, name.
func (w Weights) Validate(accounts []uint64) error {
	errs := FieldErrors{}
	if n := len([]rune(strings.TrimSpace(w.Name))); n == 0 || n > 64 {
		errs["name"] = "kpi.err_name"
	}
	anyKPI := false
	for k, kw := range w.KPIs {
		def, ok := KPIDefOf(k)
		if !ok {
			errs["kpis"] = "kpi.err_unknown"
			continue
		}
		if badWeight(kw.Weight) {
			errs["w."+k] = "kpi.err_weight"
			continue
		}
		anyKPI = anyKPI || kw.Weight > 0
		switch kw.Norm {
		case NormMinMax:
		case NormTarget:
			if math.IsNaN(kw.Target) || math.IsInf(kw.Target, 0) || kw.Target < 0 || (def.Higher && kw.Target == 0) {
				errs["t."+k] = "kpi.err_target"
			}
		default:
			errs["w."+k] = "kpi.err_norm"
		}
	}
	if !anyKPI && errs["kpis"] == "" {
		errs["kpis"] = "kpi.err_all_zero"
	}
	for id, v := range w.Accounts {
		if badWeight(v) {
			errs["a."+strconv.FormatUint(id, 10)] = "kpi.err_weight"
		}
	}
	if len(accounts) > 0 {
		anyAcct := false
		for _, id := range accounts {
			anyAcct = anyAcct || w.AccountWeight(id) > 0
		}
		if !anyAcct {
			errs["accounts"] = "kpi.err_accounts_zero"
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// ScoredKPI is one KPI of one account: raw value, normalised value and weight.
type ScoredKPI struct {
	Key    string   `json:"key"`
	Value  *float64 `json:"value"`      // display unit; nil when unknown
	Norm   *float64 `json:"normalised"` // 0–100; nil when unknown
	Weight float64  `json:"weight"`
}

// ScoreRow is one channel account on the scoreboard.
type ScoreRow struct {
	AccountID    uint64      `json:"account_id"`
	MerchantCode string      `json:"merchant"`
	Channel      string      `json:"channel"`
	Name         string      `json:"account"`
	Traffic      bool        `json:"traffic"`
	KPIs         []ScoredKPI `json:"kpis"`
	Score        *float64    `json:"score"` // nil: no traffic, or every weighted KPI unknown
	Weight       float64     `json:"weight"`
	Rank         int         `json:"rank"` // 1 = best; 0 when not scored
	Formula      string      `json:"formula"`
}

// Scoreboard is the result of scoring the accounts in view under one weight set.
type Scoreboard struct {
	Rows         []ScoreRow `json:"accounts"` // best first; unscored last
	Fused        *float64   `json:"fused"`
	FusedFormula string     `json:"fused_formula"`
}

// Score scores channel accounts under a weight set. Each KPI is normalised
// to 0–100 (min–max across the accounts with traffic and a value, or
// against the set's target), oriented so that 100 is best; an account's
// score is Σ normᵢ·wᵢ / Σ wᵢ over the KPIs it has a value for, and the fused
// score is Σ scoreₐ·Wₐ / Σ Wₐ over the scored accounts. An account without
// traffic is listed but neither scored nor counted in a min–max range.
// Pure: the KPI page, its live preview, the CLI and the dashboard's trend
// all call it.
func Score(accts []AccountKPIs, w Weights) Scoreboard { return score(accts, w, true) }

// score is Score; detail false computes only the scores, ranks and the
// fused score — no per-KPI rows and no formula strings (the daily trend
// needs only the numbers, and scores every date of a range). The arithmetic
// is the same either way.
func score(accts []AccountKPIs, w Weights, detail bool) Scoreboard {
	const n = len(KPIDefs)
	var kws [n]KPIWeight
	for k, def := range KPIDefs {
		kws[k] = w.KPIs[def.Key]
	}
	// Min–max ranges over the accounts with traffic and a value.
	values := make([]kpiValues, len(accts))
	var lo, hi [n]float64
	var seen [n]bool
	for i, a := range accts {
		if !a.Sums.Traffic() {
			continue // listed, not scored, outside every range
		}
		values[i] = a.Sums.values()
		for k, x := range values[i] {
			if !x.ok {
				continue
			}
			if !seen[k] || x.v < lo[k] {
				lo[k] = x.v
			}
			if !seen[k] || x.v > hi[k] {
				hi[k] = x.v
			}
			seen[k] = true
		}
	}
	board := Scoreboard{Rows: make([]ScoreRow, len(accts))}
	for i, a := range accts {
		row := &board.Rows[i]
		*row = ScoreRow{AccountID: a.AccountID, MerchantCode: a.MerchantCode, Channel: a.Channel, Name: a.Name,
			Traffic: a.Sums.Traffic(), Weight: w.AccountWeight(a.AccountID)}
		var num, den float64
		var terms, weights []string
		var raw, norm *[n]float64 // what the detail rows point at
		if detail {
			row.KPIs = make([]ScoredKPI, n)
			raw, norm = new([n]float64), new([n]float64)
		}
		for k, def := range KPIDefs {
			kw := kws[k]
			if detail {
				row.KPIs[k] = ScoredKPI{Key: def.Key, Weight: kw.Weight}
			}
			x := values[i][k]
			if !x.ok {
				continue
			}
			nv := normalise(x.v, def, kw, lo[k], hi[k])
			if detail {
				raw[k], norm[k] = x.v, nv
				row.KPIs[k].Value, row.KPIs[k].Norm = &raw[k], &norm[k]
			}
			if kw.Weight > 0 {
				num += nv * kw.Weight
				den += kw.Weight
				if detail {
					terms = append(terms, fmtNum(nv)+"×"+fmtNum(kw.Weight))
					weights = append(weights, fmtNum(kw.Weight))
				}
			}
		}
		if row.Traffic && den > 0 {
			sc := num / den
			row.Score = &sc
			if detail {
				row.Formula = "(" + strings.Join(terms, " + ") + ") / (" + strings.Join(weights, " + ") + ") = " + fmtNum(sc)
			}
		}
	}
	sort.SliceStable(board.Rows, func(i, j int) bool {
		a, b := board.Rows[i].Score, board.Rows[j].Score
		if (a == nil) != (b == nil) {
			return a != nil
		}
		if a != nil && !sameScore(*a, *b) {
			return *a > *b
		}
		return false
	})
	var num, den float64
	var terms, weights []string
	for i := range board.Rows {
		r := &board.Rows[i]
		if r.Score == nil {
			continue
		}
		r.Rank = i + 1
		if i > 0 && board.Rows[i-1].Score != nil && sameScore(*board.Rows[i-1].Score, *r.Score) {
			r.Rank = board.Rows[i-1].Rank // ties share a rank
		}
		if r.Weight > 0 {
			num += *r.Score * r.Weight
			den += r.Weight
			if detail {
				terms = append(terms, fmtNum(*r.Score)+"×"+fmtNum(r.Weight))
				weights = append(weights, fmtNum(r.Weight))
			}
		}
	}
	if den > 0 {
		f := num / den
		board.Fused = &f
		if detail {
			board.FusedFormula = "(" + strings.Join(terms, " + ") + ") / (" + strings.Join(weights, " + ") + ") = " + fmtNum(f)
		}
	}
	return board
}

// normalise maps a raw value to 0–100, 100 best. Min–max: the best account
// in view gets 100 and the worst 0; when all are equal each gets 100
// (nobody is worse). Target, higher better: 100·v/target capped at 100.
// Target, lower better: 100 at or under the target, else 100·target/v.
func normalise(v float64, def KPIDef, kw KPIWeight, lo, hi float64) float64 {
	if kw.Norm == NormTarget {
		t := kw.Target
		if def.Higher {
			if t <= 0 {
				return 100
			}
			return clamp(100 * v / t)
		}
		if v <= t {
			return 100
		}
		return clamp(100 * t / v)
	}
	if hi == lo {
		return 100
	}
	if def.Higher {
		return 100 * (v - lo) / (hi - lo)
	}
	return 100 * (hi - v) / (hi - lo)
}

// sameScore treats scores that differ only by floating-point noise (the same
// weights written at another scale) as a tie.
func sameScore(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func clamp(x float64) float64 { return math.Max(0, math.Min(100, x)) }

// fmtNum writes a number for a formula: two decimals, no trailing zeros.
func fmtNum(x float64) string {
	s := strconv.FormatFloat(x, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// KPIWeightSet is the weight set of one merchant ("" = the global default).
type KPIWeightSet struct {
	ID            uint64 `gorm:"primaryKey"`
	MerchantCode  string
	ActiveVersion int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// KPIWeightVersion is one saved state of a weight set.
type KPIWeightVersion struct {
	ID        uint64 `gorm:"primaryKey"`
	SetID     uint64
	Version   int
	Name      string
	Body      string
	Reason    string
	CreatedBy string
	CreatedAt time.Time
}

// Weights decodes the version's weights.
func (v *KPIWeightVersion) Weights() (Weights, error) {
	w, err := decodeWeights(v.Body)
	if err != nil {
		return Weights{}, fmt.Errorf("kpi: weight set version %d is unreadable: %w", v.Version, err)
	}
	w.Name = v.Name
	return w, nil
}
