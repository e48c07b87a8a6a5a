package views

import (
	"context"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"payfuse/models"
)

// KPIPage is the data of the KPI pages (GET /kpis, the preview, a version's
// comparison): the view, the accounts' KPIs and the weights in play.
type KPIPage struct {
	Merchants    []models.Merchant // in scope, for the selector
	AllowAll     bool              // may choose "all merchants" (the global default set)
	Merchant     string            // a code, "*" for all, "" when nothing is in scope
	Range        string            // 7d, 30d, 90d or custom
	Method       string
	Filter       models.KPIFilter // resolved dates
	FilterErrors models.FieldErrors

	Accounts      []models.AccountKPIs
	Active        models.Weights
	ActiveVersion *models.KPIWeightVersion // nil: built-in defaults
	Own           bool                     // the merchant has a set of its own (else the global default or built-in)
	Versions      []models.KPIWeightVersion
	Compared      *models.KPIWeightVersion // the version a comparison shows

	Draft       models.Weights
	DraftErrors models.FieldErrors
	Reason      string
	Board       KPIBoard
	CanSave     bool
}

// MerchantCode is the merchant the weights belong to: a code, or
// models.GlobalWeights for "all merchants".
func (d *KPIPage) MerchantCode() string {
	if d.Merchant == "*" {
		return models.GlobalWeights
	}
	return d.Merchant
}

// KPIBoard compares the scoreboard under the draft weights with the one
// under the active weights.
type KPIBoard struct {
	Computed bool
	Draft    models.Scoreboard
	Active   models.Scoreboard
	Moves    map[uint64]int // active rank − draft rank: > 0 moved up
	Changes  []KPIChange
	Errors   models.FieldErrors
}

// KPIChange is one weight that differs between the draft and the active set.
type KPIChange struct {
	Label    string // a translation key or an account's name
	Key      bool   // Label is a translation key
	From, To string
}

// CompareBoards scores the accounts under both weight sets and lists what
// differs: ranks that move and weights that changed.
func CompareBoards(accts []models.AccountKPIs, draft, active models.Weights) KPIBoard {
	b := KPIBoard{Computed: true, Draft: models.Score(accts, draft), Active: models.Score(accts, active), Moves: map[uint64]int{}}
	was := map[uint64]int{}
	for _, r := range b.Active.Rows {
		was[r.AccountID] = r.Rank
	}
	for _, r := range b.Draft.Rows {
		if r.Rank > 0 && was[r.AccountID] > 0 && r.Rank != was[r.AccountID] {
			b.Moves[r.AccountID] = was[r.AccountID] - r.Rank
		}
	}
	for _, def := range models.KPIDefs {
		x, y := active.KPIs[def.Key], draft.KPIs[def.Key]
		if x != y {
			b.Changes = append(b.Changes, KPIChange{Label: "kpi.name." + def.Key, Key: true, From: kpiWeightText(x), To: kpiWeightText(y)})
		}
	}
	for _, a := range accts {
		if x, y := active.AccountWeight(a.AccountID), draft.AccountWeight(a.AccountID); x != y {
			b.Changes = append(b.Changes, KPIChange{Label: kpiAccountLabel(a.MerchantCode, a.Name), From: fmtFloat(x), To: fmtFloat(y)})
		}
	}
	return b
}

func kpiAccountLabel(merchant, name string) string { return merchant + " · " + name }

func kpiWeightText(w models.KPIWeight) string {
	s := fmtFloat(w.Weight)
	if w.Norm == models.NormTarget {
		s += " @" + fmtFloat(w.Target)
	}
	return s
}

// fmtFloat writes a weight: up to two decimals, no trailing zeros.
func fmtFloat(x float64) string {
	s := strconv.FormatFloat(x, 'f', 2, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// groupThousands puts commas between groups of three digits of an integer string.
func groupThousands(digits string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// kpiValueText shows a raw KPI value in its unit: counts and yuan with
// thousands separators, rates as percentages, times in seconds.
func kpiValueText(unit string, v *float64) string {
	if v == nil {
		return "—"
	}
	x := *v
	switch unit {
	case models.UnitCount:
		return groupThousands(strconv.FormatInt(int64(math.Round(x)), 10))
	case models.UnitYuan:
		neg := x < 0
		s := strconv.FormatFloat(math.Abs(x), 'f', 2, 64)
		whole, frac, _ := strings.Cut(s, ".")
		out := "¥" + groupThousands(whole) + "." + frac
		if neg {
			out = "−" + out
		}
		return out
	case models.UnitPercent:
		return strconv.FormatFloat(x, 'f', 2, 64) + "%"
	case models.UnitSeconds:
		return strconv.FormatFloat(x, 'f', 1, 64) + " s"
	}
	return fmtFloat(x)
}

func kpiScoreText(v *float64) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64)
}

func kpiNormText(v *float64) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

// kpiDelta is the draft score minus the active one, signed, or "".
func kpiDelta(draft, active *float64) string {
	if draft == nil || active == nil {
		return ""
	}
	d := *draft - *active
	if math.Abs(d) < 0.005 {
		return "±0"
	}
	if d > 0 {
		return "+" + strconv.FormatFloat(d, 'f', 2, 64)
	}
	return "−" + strconv.FormatFloat(-d, 'f', 2, 64)
}

func (b KPIBoard) activeRow(id uint64) models.ScoreRow {
	for _, r := range b.Active.Rows {
		if r.AccountID == id {
			return r
		}
	}
	return models.ScoreRow{}
}

func kpiMoveText(n int) string {
	if n > 0 {
		return "▲ " + strconv.Itoa(n)
	}
	return "▼ " + strconv.Itoa(-n)
}

func kpiDirection(ctx context.Context, def models.KPIDef) string {
	if def.Higher {
		return T(ctx, "kpi.higher")
	}
	return T(ctx, "kpi.lower")
}

func kpiUnitHint(ctx context.Context, unit string) string { return T(ctx, "kpi.unit."+unit) }

// kpiQuery is the view's query string with one key changed.
func kpiQuery(d *KPIPage, key, value string) string {
	q := url.Values{}
	q.Set("merchant", d.Merchant)
	q.Set("range", d.Range)
	if d.Range == "custom" {
		q.Set("from", d.Filter.From)
		q.Set("to", d.Filter.To)
	}
	if d.Method != "" {
		q.Set("method", d.Method)
	}
	if value == "" {
		q.Del(key)
	} else {
		q.Set(key, value)
	}
	return q.Encode()
}

func kpiVersionLink(d *KPIPage, v int) string {
	return "/kpis/versions/" + strconv.Itoa(v) + "?" + kpiQuery(d, "", "")
}

func kpiRestoreAction(d *KPIPage, v int) string {
	return "/kpis/versions/" + strconv.Itoa(v) + "/restore"
}

// kpiErrorList flattens the draft's field errors for the summary above the
// scoreboard: what is wrong and where, in the reader's language.
func kpiErrorList(ctx context.Context, d *KPIPage, errs models.FieldErrors) []string {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		where := ""
		switch {
		case strings.HasPrefix(k, "w."), strings.HasPrefix(k, "t."):
			where = T(ctx, "kpi.name."+k[2:])
		case strings.HasPrefix(k, "a."):
			id, _ := strconv.ParseUint(k[2:], 10, 64)
			for _, a := range d.Accounts {
				if a.AccountID == id {
					where = kpiAccountLabel(a.MerchantCode, a.Name)
				}
			}
		}
		msg := T(ctx, errs[k])
		if where != "" {
			msg = where + ": " + msg
		}
		out = append(out, msg)
	}
	return out
}

func (d *KPIPage) draftWeight(key string) models.KPIWeight { return d.Draft.KPIs[key] }

func kpiSliderValue(w float64) string { return fmtFloat(math.Min(w, 10)) }

func kpiRangeLabel(ctx context.Context, r string) string { return T(ctx, "kpi.range."+r) }

func kpiActiveLabel(ctx context.Context, d *KPIPage) string {
	switch {
	case d.ActiveVersion == nil:
		return T(ctx, "kpi.active_builtin")
	case d.Own:
		return Tf(ctx, "kpi.active_own", d.ActiveVersion.Version, d.Active.Name)
	}
	return Tf(ctx, "kpi.active_global", d.ActiveVersion.Version, d.Active.Name)
}

func kpiTargetValue(w models.KPIWeight) string {
	if w.Norm != models.NormTarget {
		return ""
	}
	return fmtFloat(w.Target)
}

// kpiNumClass is a weight's or target's number box: narrow, red when wrong.
func kpiNumClass(bad bool) string {
	if bad {
		return "w-20 shrink-0 rounded border border-red-400 bg-white px-2 py-1 text-right text-sm tabular-nums"
	}
	return "w-20 shrink-0 rounded border border-slate-300 bg-white px-2 py-1 text-right text-sm tabular-nums focus:border-primary focus:outline-none focus:ring-2 focus:ring-primary/30"
}

func kpiChangeLabel(ctx context.Context, ch KPIChange) string {
	if ch.Key {
		return T(ctx, ch.Label)
	}
	return ch.Label
}
