package models

import (
	"errors"
	"math"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"payfuse/channels"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func onlyWeights(kw map[string]KPIWeight, accounts map[uint64]float64) Weights {
	w := Weights{Name: "t", KPIs: map[string]KPIWeight{}, Accounts: accounts}
	for _, d := range KPIDefs {
		w.KPIs[d.Key] = KPIWeight{Weight: 0, Norm: NormMinMax}
	}
	for k, v := range kw {
		w.KPIs[k] = v
	}
	return w
}

func rowOf(b Scoreboard, id uint64) ScoreRow {
	for _, r := range b.Rows {
		if r.AccountID == id {
			return r
		}
	}
	return ScoreRow{}
}

func kpiOf(r ScoreRow, key string) ScoredKPI {
	for _, k := range r.KPIs {
		if k.Key == key {
			return k
		}
	}
	return ScoredKPI{}
}

// TestScoreHandComputed checks the scoreboard against figures worked out by
// hand: a min–max KPI, a target KPI where lower is better, a KPI only one
// account has a value for, zero weights, an account without traffic, and
// the fused score under account weights.
func TestScoreHandComputed(t *testing.T) {
	a := AccountKPIs{AccountID: 1, Channel: "wechat", Name: "A", Sums: KPISums{Payments: 10, Succeeded: 8, Amount: 80000,
		Refunds: 1, RefundAmount: 10000, Fees: 480, PaySeconds: 80, PayTimed: 8, StatementRecords: 10, NotifiedRecords: 10}}
	b := AccountKPIs{AccountID: 2, Channel: "alipay", Name: "B", Sums: KPISums{Payments: 10, Succeeded: 10, Amount: 50000,
		Fees: 300, StatementRecords: 10, NotifiedRecords: 5}}
	c := AccountKPIs{AccountID: 3, Channel: "unionpay", Name: "C"} // no traffic
	w := onlyWeights(map[string]KPIWeight{
		KPISuccessRate: {Weight: 2, Norm: NormMinMax},
		KPIGMV:         {Weight: 1, Norm: NormMinMax},
		KPIFeeRate:     {Weight: 1, Norm: NormTarget, Target: 0.5},
		KPIPayTime:     {Weight: 1, Norm: NormMinMax},
	}, map[uint64]float64{1: 3, 2: 1})
	board := Score([]AccountKPIs{a, b, c}, w)

	ra, rb, rc := rowOf(board, 1), rowOf(board, 2), rowOf(board, 3)
	// Raw values in display units.
	if v := kpiOf(ra, KPISuccessRate).Value; v == nil || !near(*v, 80) {
		t.Fatalf("A success rate = %v, want 80", v)
	}
	if v := kpiOf(ra, KPIFeeRate).Value; v == nil || !near(*v, 0.6) {
		t.Fatalf("A fee rate = %v, want 0.6 %%", v)
	}
	if v := kpiOf(ra, KPINet).Value; v == nil || !near(*v, 800-100-4.8) {
		t.Fatalf("A net = %v, want 695.2", v)
	}
	if v := kpiOf(rb, KPIPayTime).Value; v != nil {
		t.Fatalf("B has no timed payment, pay time = %v, want unknown", *v)
	}
	// Normalised: success min–max A 0 B 100; GMV A 100 B 0; fee rate
	// 0.6 % against a 0.5 % target (lower better) = 83.33 for both; pay time
	// only A has one, so A is best = 100.
	for _, c := range []struct {
		row  ScoreRow
		key  string
		want float64
	}{{ra, KPISuccessRate, 0}, {rb, KPISuccessRate, 100}, {ra, KPIGMV, 100}, {rb, KPIGMV, 0},
		{ra, KPIFeeRate, 100 * 0.5 / 0.6}, {rb, KPIFeeRate, 100 * 0.5 / 0.6}, {ra, KPIPayTime, 100}} {
		if n := kpiOf(c.row, c.key).Norm; n == nil || !near(*n, c.want) {
			t.Errorf("%s %s normalised = %v, want %v", c.row.Name, c.key, n, c.want)
		}
	}
	wantA := (0*2 + 100*1 + 100*0.5/0.6*1 + 100*1) / 5.0
	wantB := (100*2 + 0*1 + 100*0.5/0.6*1) / 4.0
	if ra.Score == nil || !near(*ra.Score, wantA) || rb.Score == nil || !near(*rb.Score, wantB) {
		t.Fatalf("scores A %v B %v, want %v %v", ra.Score, rb.Score, wantA, wantB)
	}
	if rb.Rank != 1 || ra.Rank != 2 || rc.Rank != 0 || rc.Score != nil || rc.Traffic {
		t.Fatalf("ranks B %d A %d C %d (C score %v)", rb.Rank, ra.Rank, rc.Rank, rc.Score)
	}
	if board.Rows[0].AccountID != 2 || board.Rows[2].AccountID != 3 {
		t.Fatalf("order %d %d %d: want best first, no traffic last", board.Rows[0].AccountID, board.Rows[1].AccountID, board.Rows[2].AccountID)
	}
	if rb.Formula != "(100×2 + 0×1 + 83.33×1) / (2 + 1 + 1) = 70.83" {
		t.Fatalf("B formula %q", rb.Formula)
	}
	wantFused := (wantA*3 + wantB*1) / 4
	if board.Fused == nil || !near(*board.Fused, wantFused) {
		t.Fatalf("fused %v, want %v", board.Fused, wantFused)
	}
	if board.FusedFormula != "(70.83×1 + 56.67×3) / (1 + 3) = 60.21" {
		t.Fatalf("fused formula %q", board.FusedFormula)
	}
}

// TestScoreEqualValuesAndLowerIsBetter: accounts that are equal on a KPI
// all get 100 on it (none is worse) and share a rank; on a lower-is-better
// min–max KPI the lowest value gets 100.
func TestScoreEqualValuesAndLowerIsBetter(t *testing.T) {
	same := KPISums{Payments: 4, Succeeded: 4, Amount: 4000, Refunds: 1, RefundAmount: 100}
	w := onlyWeights(map[string]KPIWeight{KPIGMV: {Weight: 1, Norm: NormMinMax}, KPIRefundRateCount: {Weight: 1, Norm: NormMinMax}}, nil)
	board := Score([]AccountKPIs{{AccountID: 1, Sums: same}, {AccountID: 2, Sums: same}}, w)
	for _, r := range board.Rows {
		if r.Score == nil || !near(*r.Score, 100) || r.Rank != 1 {
			t.Fatalf("equal accounts: %+v", r)
		}
	}
	more := same
	more.Refunds = 2 // refund rate 50 % against 25 %
	board = Score([]AccountKPIs{{AccountID: 1, Sums: same}, {AccountID: 2, Sums: more}}, w)
	if n := kpiOf(rowOf(board, 1), KPIRefundRateCount).Norm; n == nil || !near(*n, 100) {
		t.Fatalf("lower refund rate normalised %v, want 100", n)
	}
	if n := kpiOf(rowOf(board, 2), KPIRefundRateCount).Norm; n == nil || !near(*n, 0) {
		t.Fatalf("higher refund rate normalised %v, want 0", n)
	}
	if s := rowOf(board, 1).Score; s == nil || !near(*s, 100) || rowOf(board, 1).Rank != 1 {
		t.Fatalf("account 1 should win on the refund rate: %+v", rowOf(board, 1))
	}
	if s := rowOf(board, 2).Score; s == nil || !near(*s, 50) {
		t.Fatalf("account 2: (100×1 + 0×1)/2 = 50, got %v", s)
	}
	// A zero-weight account is ranked but does not move the fused score.
	w.Accounts = map[uint64]float64{2: 0}
	board = Score([]AccountKPIs{{AccountID: 1, Sums: same}, {AccountID: 2, Sums: more}}, w)
	if board.Fused == nil || !near(*board.Fused, 100) || rowOf(board, 2).Rank != 2 {
		t.Fatalf("fused with account 2 at weight 0 = %v, want 100", board.Fused)
	}
	// Nothing has traffic: nothing is scored and there is no fused score.
	board = Score([]AccountKPIs{{AccountID: 1}}, w)
	if board.Fused != nil || board.Rows[0].Score != nil {
		t.Fatalf("no traffic scored: %+v", board)
	}
}

// TestScoreIgnoresWeightScale is the property: multiplying every weight by
// the same positive constant changes no score, rank or fused score.
func TestScoreIgnoresWeightScale(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for trial := 0; trial < 300; trial++ {
		var accts []AccountKPIs
		for i := 0; i < 1+rng.Intn(6); i++ {
			succ := int64(rng.Intn(50))
			accts = append(accts, AccountKPIs{AccountID: uint64(i + 1), Sums: KPISums{
				Payments: succ + int64(rng.Intn(10)), Succeeded: succ, Amount: succ * int64(1+rng.Intn(100000)),
				Refunds: int64(rng.Intn(5)), RefundAmount: int64(rng.Intn(5000)), Fees: int64(rng.Intn(900)),
				PaySeconds: int64(rng.Intn(900)), PayTimed: int64(rng.Intn(3)), StatementRecords: 10, NotifiedRecords: int64(rng.Intn(11))}})
		}
		w := DefaultWeights()
		for _, d := range KPIDefs {
			kw := KPIWeight{Weight: float64(rng.Intn(5)), Norm: NormMinMax}
			if rng.Intn(3) == 0 {
				kw.Norm, kw.Target = NormTarget, 1+rng.Float64()*100
			}
			w.KPIs[d.Key] = kw
		}
		w.KPIs[KPIGMV] = KPIWeight{Weight: 1, Norm: NormMinMax}
		w.Accounts = map[uint64]float64{}
		for _, a := range accts {
			w.Accounts[a.AccountID] = float64(rng.Intn(4))
		}
		w.Accounts[1] = 1
		scale := []float64{0.001, 0.5, 3, 997}[rng.Intn(4)]
		scaled := w.Clone()
		for k, kw := range scaled.KPIs {
			kw.Weight *= scale
			scaled.KPIs[k] = kw
		}
		for id := range scaled.Accounts {
			scaled.Accounts[id] *= scale
		}
		x, y := Score(accts, w), Score(accts, scaled)
		same := func(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || math.Abs(*a-*b) < 1e-7) }
		if !same(x.Fused, y.Fused) {
			t.Fatalf("trial %d: fused %v vs %v after scaling by %v", trial, x.Fused, y.Fused, scale)
		}
		for i := range x.Rows {
			if !same(x.Rows[i].Score, rowOf(y, x.Rows[i].AccountID).Score) || x.Rows[i].Rank != rowOf(y, x.Rows[i].AccountID).Rank {
				t.Fatalf("trial %d: account %d changed after scaling by %v", trial, x.Rows[i].AccountID, scale)
			}
		}
	}
}

func TestWeightsValidate(t *testing.T) {
	w := DefaultWeights()
	if err := w.Validate([]uint64{1, 2}); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(*Weights)
		field string
	}{
		{"all KPI weights zero", func(w *Weights) {
			for k, kw := range w.KPIs {
				kw.Weight = 0
				w.KPIs[k] = kw
			}
		}, "kpis"},
		{"negative", func(w *Weights) { w.KPIs[KPIGMV] = KPIWeight{Weight: -1, Norm: NormMinMax} }, "w.gmv"},
		{"NaN", func(w *Weights) { w.KPIs[KPIGMV] = KPIWeight{Weight: math.NaN(), Norm: NormMinMax} }, "w.gmv"},
		{"too large", func(w *Weights) { w.KPIs[KPIGMV] = KPIWeight{Weight: 1e9, Norm: NormMinMax} }, "w.gmv"},
		{"target missing", func(w *Weights) { w.KPIs[KPISuccessRate] = KPIWeight{Weight: 1, Norm: NormTarget} }, "t.success_rate"},
		{"unknown norm", func(w *Weights) { w.KPIs[KPIGMV] = KPIWeight{Weight: 1, Norm: "log"} }, "w.gmv"},
		{"all accounts zero", func(w *Weights) { w.Accounts = map[uint64]float64{1: 0, 2: 0} }, "accounts"},
		{"negative account", func(w *Weights) { w.Accounts = map[uint64]float64{1: -2} }, "a.1"},
		{"no name", func(w *Weights) { w.Name = " " }, "name"},
	}
	for _, c := range cases {
		w := DefaultWeights()
		c.edit(&w)
		var fe FieldErrors
		if err := w.Validate([]uint64{1, 2}); !errors.As(err, &fe) || fe[c.field] == "" {
			t.Errorf("%s: want a field error on %s, got %v", c.name, c.field, err)
		}
	}
	// A lower-is-better KPI may aim at zero (no refunds at all).
	w = DefaultWeights()
	w.KPIs[KPIRefundRateCount] = KPIWeight{Weight: 1, Norm: NormTarget, Target: 0}
	if err := w.Validate(nil); err != nil {
		t.Fatalf("refund-rate target 0 refused: %v", err)
	}
}

// TestWeightVersionsSaveCompareRestore saves versions, restores an old one
// (as a new version), and checks scope, validation and the audit trail.
func TestWeightVersionsSaveCompareRestore(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, _ := mustAccount(t, s, m, "wechat")
	other := mustMerchant(t, s, "SHOP_GZ")
	all := Scope{All: true}
	sh := Scope{Merchants: []string{"SHOP_SH"}}

	if w, v, err := s.ActiveWeights(sh, "SHOP_SH"); err != nil || v != nil || w.KPIs[KPIGMV].Weight != 1 {
		t.Fatalf("no set saved yet: want the defaults, got %+v %v %v", w, v, err)
	}
	w1 := DefaultWeights()
	w1.Name = "Launch"
	v1, err := s.SaveWeights(web, sh, "SHOP_SH", w1, "first cut")
	if err != nil || v1.Version != 1 {
		t.Fatalf("save v1: %+v %v", v1, err)
	}
	w2 := w1.Clone()
	w2.Name = "Cost focus"
	w2.KPIs[KPIFeeRate] = KPIWeight{Weight: 5, Norm: NormTarget, Target: 0.38}
	w2.Accounts[acct.ID] = 2.5
	if _, err := s.SaveWeights(web, sh, "SHOP_SH", w2, "fees matter more this quarter"); err != nil {
		t.Fatal(err)
	}
	got, v, err := s.ActiveWeights(sh, "SHOP_SH")
	if err != nil || v.Version != 2 || got.Name != "Cost focus" || got.KPIs[KPIFeeRate].Target != 0.38 || got.AccountWeight(acct.ID) != 2.5 {
		t.Fatalf("active after v2: %+v %+v %v", got, v, err)
	}
	// Refused: no reason, all zero, a foreign account, another merchant's set.
	var fe FieldErrors
	if _, err := s.SaveWeights(web, sh, "SHOP_SH", w2, "  "); !errors.As(err, &fe) || fe["reason"] == "" {
		t.Fatalf("save without a reason: %v", err)
	}
	zero := w2.Clone()
	for k, kw := range zero.KPIs {
		kw.Weight = 0
		zero.KPIs[k] = kw
	}
	if _, err := s.SaveWeights(web, sh, "SHOP_SH", zero, "oops"); !errors.As(err, &fe) || fe["kpis"] != "kpi.err_all_zero" {
		t.Fatalf("all-zero set: %v", err)
	}
	foreign := w2.Clone()
	otherAcct, _ := mustAccount(t, s, other, "alipay")
	foreign.Accounts[otherAcct.ID] = 1
	if _, err := s.SaveWeights(web, all, "SHOP_SH", foreign, "x"); !errors.As(err, &fe) || fe["a."+strconv.FormatUint(otherAcct.ID, 10)] == "" {
		t.Fatalf("another merchant's account in the set: %v", err)
	}
	if _, err := s.SaveWeights(web, sh, "SHOP_GZ", w1, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("out of scope save: %v", err)
	}
	if _, err := s.SaveWeights(web, sh, GlobalWeights, w1, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a scoped user saved the global default: %v", err)
	}
	if _, err := s.WeightVersions(sh, "SHOP_GZ"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("out of scope history: %v", err)
	}
	// Restore v1: becomes v3 with v1's weights; v1 and v2 stay in history.
	v3, err := s.RestoreWeights(web, sh, "SHOP_SH", 1, "back to launch weights")
	if err != nil || v3.Version != 3 || v3.Name != "Launch" {
		t.Fatalf("restore: %+v %v", v3, err)
	}
	got, _, _ = s.ActiveWeights(sh, "SHOP_SH")
	if got.KPIs[KPIFeeRate].Weight != 1 || got.AccountWeight(acct.ID) != 1 {
		t.Fatalf("restored weights %+v", got)
	}
	hist, err := s.WeightVersions(sh, "SHOP_SH")
	if err != nil || len(hist) != 3 || hist[0].Version != 3 || hist[2].Reason != "first cut" || hist[1].CreatedBy != web.Name {
		t.Fatalf("history %+v %v", hist, err)
	}
	if _, err := s.RestoreWeights(web, sh, "SHOP_SH", 9, "no such"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore of a missing version: %v", err)
	}
	var audits []AuditLog
	s.DB.Where("action IN ?", []string{ActKPIWeightsSave, ActKPIWeightsRestore}).Order("id").Find(&audits)
	if len(audits) != 3 || audits[2].Action != ActKPIWeightsRestore || audits[2].MerchantCode != "SHOP_SH" || audits[1].Before == "" {
		t.Fatalf("audit rows %+v", audits)
	}
	// A merchant without a set of its own falls back to the global default.
	g := DefaultWeights()
	g.Name = "Group policy"
	if _, err := s.SaveWeights(web, all, GlobalWeights, g, "group-wide default"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.ActiveWeights(all, "SHOP_GZ"); got.Name != "Group policy" {
		t.Fatalf("SHOP_GZ should use the global default, got %q", got.Name)
	}
}

// TestKPIsFromRollups reads the KPIs of ingested traffic back through the
// store: every account is listed, pay time and notification coverage come
// from the new rollup columns.
func TestKPIsFromRollups(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	m, _ := s.GetMerchantByCode(Scope{All: true}, "SHOP_SH")
	idle, _ := mustAccount(t, s, m, "alipay")
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, bj)
	p1 := pay("K1", mch, 10000, channels.StatusSucceeded, at)
	p1.CreatedAt = at.Add(-30 * time.Second)
	p2 := pay("K2", mch, 5000, channels.StatusSucceeded, at.Add(time.Hour))
	p2.CreatedAt = at.Add(time.Hour - 90*time.Second)
	p3 := pay("K3", mch, 700, channels.StatusFailed, at.Add(2*time.Hour))
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{p1}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*channels.Record{&p1, &p2} {
		r.Fee, r.FeeKnown = r.Amount*6/1000, true
	}
	if res, err := s.ImportStatement(web, acct.ID, statement("k.csv", p1, p2, p3)); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	got, err := s.KPIs(Scope{Merchants: []string{"SHOP_SH"}}, KPIFilter{Merchant: "SHOP_SH", From: "2026-03-01", To: "2026-03-31"})
	if err != nil || len(got) != 2 {
		t.Fatalf("KPIs: %+v %v", got, err)
	}
	var w, a AccountKPIs
	for _, k := range got {
		if k.AccountID == acct.ID {
			w = k
		}
		if k.AccountID == idle.ID {
			a = k
		}
	}
	if a.Sums.Traffic() || a.Name == "" {
		t.Fatalf("idle account %+v", a)
	}
	vals := w.Sums.Values()
	check := func(key string, want float64) {
		t.Helper()
		if vals[key] == nil || !near(*vals[key], want) {
			t.Errorf("%s = %v, want %v", key, vals[key], want)
		}
	}
	check(KPICount, 2)
	check(KPISuccessRate, 200.0/3)
	check(KPIGMV, 150)
	check(KPIAvgTicket, 75)
	check(KPIFeeRate, 0.6)
	check(KPIPayTime, 60)             // (30 + 90) / 2
	check(KPINotifyCoverage, 100.0/3) // 1 of 3 statement records was notified
	check(KPINet, 150-0.9)            // fees 60 + 30 fen
	if rows, err := s.KPIs(Scope{Merchants: []string{"SHOP_GZ"}}, KPIFilter{Merchant: "SHOP_SH", From: "2026-03-01", To: "2026-03-31"}); err != nil || len(rows) != 0 {
		t.Fatalf("another merchant's user sees %d accounts (%v)", len(rows), err)
	}
	trend, err := s.ScoreTrend(Scope{All: true}, "SHOP_SH", "2026-03-01", "2026-03-03")
	if err != nil || len(trend) != 3 || trend[0].Fused != nil || trend[1].Fused == nil || trend[2].Fused != nil {
		t.Fatalf("trend %+v %v", trend, err)
	}
}

// TestMigrationBackfillsKPIRollups: migration 9 fills the new rollup
// columns of a ledger that existed before them from its transactions.
func TestMigrationBackfillsKPIRollups(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, bj)
	p := pay("B1", mch, 10000, channels.StatusSucceeded, at)
	p.CreatedAt = at.Add(-42 * time.Second)
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{p}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.ImportStatement(web, acct.ID, statement("b.csv", p)); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	if err := s.DB.Exec("UPDATE daily_rollups SET pay_seconds = 0, pay_timed = 0, statement_records = 0, notified_records = 0").Error; err != nil {
		t.Fatal(err)
	}
	if err := s.Tx(backfillRollupKPIs); err != nil {
		t.Fatal(err)
	}
	var r DailyRollup
	s.DB.Where("account_id = ?", acct.ID).Take(&r)
	if r.PaySeconds != 42 || r.PayTimed != 1 || r.StatementRecords != 1 || r.NotifiedRecords != 1 {
		t.Fatalf("backfilled rollup %+v", r)
	}
}
