package models

import (
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
)

var (
	demoCredsOnce sync.Once
	demoCreds     map[string]map[string][]byte
)

// demoFixture makes a store with merchant SHOP_SH holding WeChat Pay, Alipay
// and UnionPay accounts. The credentials are made once per test binary, so
// two fixtures name the same channel merchant ids.
func demoFixture(t *testing.T) *Store {
	t.Helper()
	demoCredsOnce.Do(func() {
		demoCreds = map[string]map[string][]byte{}
		for _, ch := range []string{"wechat", "alipay", "unionpay"} {
			demoCreds[ch] = testkeys.Credentials(ch, time.Now())
		}
	})
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	for _, ch := range []string{"wechat", "alipay", "unionpay"} {
		spec, _ := LookupChannel(ch)
		if _, _, err := s.SaveAccount(web, 0, AccountInput{MerchantID: m.ID, Channel: ch, Methods: spec.Methods, FeeRateBP: 60, Enabled: true, Values: demoCreds[ch]}); err != nil {
			t.Fatalf("save %s account: %v", ch, err)
		}
	}
	return s
}

var (
	demoBenchN      = flag.Int("demo.n", 3000, "payments BenchmarkDemoHistory generates")
	demoBenchPeriod = flag.Int("demo.period", 0, "days per statement file in BenchmarkDemoHistory (0: automatic)")
)

var demoNow = time.Date(2026, 11, 20, 2, 30, 0, 0, time.UTC)

func demoOpts(n int, seed int64) DemoOptions {
	return DemoOptions{Transactions: n, Seed: seed, Now: demoNow, Merchants: []string{"SHOP_SH"}}
}

func countTxns(t *testing.T, s *Store, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.DB.Model(&Transaction{}).Where(where, args...).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDemoHistoryLooksLikeBusiness(t *testing.T) {
	s := demoFixture(t)
	sum, err := s.GenerateDemoHistory(SystemActor, demoOpts(500, 7))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", sum)
	if sum.Payments != 500 || sum.Refunds == 0 || sum.Notifications == 0 || sum.Conflicts == 0 || sum.Files == 0 || sum.AlreadyImported != 0 {
		t.Fatalf("summary %+v", sum)
	}
	if got := countTxns(t, s, "kind = ?", channels.KindPayment); got != 500 {
		t.Errorf("%d payments in the ledger, want 500", got)
	}
	if got := countTxns(t, s, "kind = ?", channels.KindRefund); got != int64(sum.Refunds) {
		t.Errorf("%d refunds in the ledger, summary says %d", got, sum.Refunds)
	}
	if got := countTxns(t, s, "conflict = ?", true); got != int64(sum.Conflicts) {
		t.Errorf("%d conflicts in the ledger, summary says %d", got, sum.Conflicts)
	}
	if got := countTxns(t, s, "sources = ?", "notification,statement"); got < int64(sum.Notifications)*9/10 {
		t.Errorf("%d rows seen by both sources, %d notifications overlapped", got, sum.Notifications)
	}
	if got := countTxns(t, s, "kind = ? AND payment_id IS NULL", channels.KindRefund); got != 0 {
		t.Errorf("%d refunds not linked to their payment", got)
	}
	// 90 days ending yesterday in Shanghai, with traffic on nearly every day.
	if sum.From != "2026-08-22" || sum.To != "2026-11-19" {
		t.Errorf("covers %s … %s", sum.From, sum.To)
	}
	var span struct {
		First, Last string
		Days        int
	}
	s.DB.Raw("SELECT MIN(biz_date) AS first, MAX(biz_date) AS last, COUNT(DISTINCT biz_date) AS days FROM transactions WHERE kind = 'payment'").Scan(&span)
	if span.First < sum.From || span.Last > sum.To || span.Days < 80 {
		t.Errorf("payments span %+v", span)
	}
	// Channel mix, failures, refund states, fees and masked payers.
	mix := map[string]int64{}
	for _, ch := range []string{"wechat", "alipay", "unionpay"} {
		mix[ch] = countTxns(t, s, "kind = 'payment' AND channel = ?", ch)
	}
	if !(mix["wechat"] > mix["alipay"] && mix["alipay"] > mix["unionpay"] && mix["unionpay"] > 0) {
		t.Errorf("channel mix %v", mix)
	}
	if bad := countTxns(t, s, "kind = 'payment' AND status IN ('failed', 'closed', 'revoked')"); bad < 3 || bad > 40 {
		t.Errorf("%d of 500 payments failed or closed", bad)
	}
	for _, state := range []string{RefundPartial, RefundFull} {
		if countTxns(t, s, "refund_state = ?", state) == 0 {
			t.Errorf("no payment with refund state %s", state)
		}
	}
	if countTxns(t, s, "kind = 'payment' AND status = 'succeeded' AND (fee <= 0 OR fee_known = ?)", false) != 0 {
		t.Error("a succeeded payment without its fee")
	}
	if countTxns(t, s, "payer NOT LIKE ?", "%*%") != 0 {
		t.Error("a payer that is not masked")
	}
	var methods []string
	s.DB.Model(&Transaction{}).Distinct("method").Order("method").Pluck("method", &methods)
	if !slices.Equal(methods, []string{"app", "h5", "quick", "scan"}) {
		t.Errorf("methods %v", methods)
	}
	// Channel ids have the channels' own shapes.
	shapes := map[string]*regexp.Regexp{
		"wechat":   regexp.MustCompile(`^42000\d{23}$`),
		"alipay":   regexp.MustCompile(`^2026\d{24}$`),
		"unionpay": regexp.MustCompile(`^2026\d{17}$`),
	}
	var rows []Transaction
	s.DB.Where("kind = 'payment'").Find(&rows)
	for _, r := range rows {
		if !shapes[r.Channel].MatchString(r.ChannelRef) || r.Amount < 500 || r.Amount > 200000 || r.MerchantOrderNo == "" {
			t.Fatalf("payment %s %s amount %d order %q", r.Channel, r.ChannelRef, r.Amount, r.MerchantOrderNo)
		}
	}
	// Diurnal: the lunch hour is far busier than the small hours.
	loc, _ := time.LoadLocation("Asia/Shanghai")
	byHour := [24]int{}
	for _, r := range rows {
		byHour[r.OccurredAt.In(loc).Hour()]++
	}
	if byHour[12]+byHour[13] < 4*(byHour[2]+byHour[3]+byHour[4]+byHour[5]) || byHour[12] == 0 {
		t.Errorf("traffic by hour %v", byHour)
	}
}

func TestDemoHistoryRerunAddsNothing(t *testing.T) {
	s := demoFixture(t)
	first, err := s.GenerateDemoHistory(SystemActor, demoOpts(300, 1))
	if err != nil {
		t.Fatal(err)
	}
	rollups := func() string {
		var rs []DailyRollup
		s.DB.Order("account_id, biz_date, method").Find(&rs)
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, "%d %s %s %d %d %d %d %d %d %d\n", r.AccountID, r.BizDate, r.Method, r.Payments, r.PaymentsSucceeded, r.AmountSucceeded, r.Refunds, r.RefundAmount, r.Fees, r.PaymentsFailed)
		}
		return b.String()
	}
	before, total := rollups(), countTxns(t, s, "1 = 1")
	again, err := s.GenerateDemoHistory(SystemActor, demoOpts(300, 1))
	if err != nil {
		t.Fatal(err)
	}
	if again.Inserted != 0 || again.Merged != 0 || again.AlreadyImported != again.Files || again.Files != first.Files {
		t.Errorf("second run with the same seed: %+v", again)
	}
	if countTxns(t, s, "1 = 1") != total || rollups() != before {
		t.Error("the second run changed the ledger")
	}
	other, err := s.GenerateDemoHistory(SystemActor, demoOpts(300, 2))
	if err != nil {
		t.Fatal(err)
	}
	if other.AlreadyImported != 0 || countTxns(t, s, "kind = 'payment'") != 600 {
		t.Errorf("another seed: %+v, %d payments", other, countTxns(t, s, "kind = 'payment'"))
	}
	// OnlyIfEmpty leaves a ledger with history alone.
	o := demoOpts(300, 3)
	o.OnlyIfEmpty = true
	if sum, err := s.GenerateDemoHistory(SystemActor, o); err != nil || !sum.Skipped || countTxns(t, s, "kind = 'payment'") != 600 {
		t.Errorf("OnlyIfEmpty: %+v %v", sum, err)
	}
}

func TestDemoHistoryIsDeterministic(t *testing.T) {
	snapshot := func(seed int64) string {
		s := demoFixture(t)
		if _, err := s.GenerateDemoHistory(SystemActor, demoOpts(200, seed)); err != nil {
			t.Fatal(err)
		}
		var rows []Transaction
		s.DB.Order("channel, kind, channel_ref").Find(&rows)
		var b strings.Builder
		for _, r := range rows {
			fmt.Fprintf(&b, "%s %s %s %s %s %s %d %d %s %s %s %v\n", r.Channel, r.Kind, r.ChannelRef, r.MerchantOrderNo, r.RefundNo, r.Status, r.Amount, r.Fee, r.Method, r.BizDate, r.Sources, r.Conflict)
		}
		return b.String()
	}
	a, b, c := snapshot(11), snapshot(11), snapshot(12)
	if a != b {
		t.Error("the same seed made different histories")
	}
	if a == c {
		t.Error("another seed made the same history")
	}
}

// TestDemoRollupsEqualDirectAggregation: after generated history, the daily
// rollups equal a fresh aggregation of the ledger rows.
func TestDemoRollupsEqualDirectAggregation(t *testing.T) {
	s := demoFixture(t)
	o := demoOpts(600, 5)
	o.PeriodDays = 1
	if _, err := s.GenerateDemoHistory(SystemActor, o); err != nil {
		t.Fatal(err)
	}
	type agg struct {
		AccountID                                    uint64
		Method, BizDate                              string
		Payments, Succeeded, Failed, Pending, Amount int64
		Refunds, RefundAmount, PayFees, RefundFees   int64
	}
	var direct []agg
	s.DB.Raw(`SELECT account_id, method, biz_date,
		SUM(CASE WHEN kind='payment' THEN 1 ELSE 0 END) AS payments,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN 1 ELSE 0 END) AS succeeded,
		SUM(CASE WHEN kind='payment' AND status='failed' THEN 1 ELSE 0 END) AS failed,
		SUM(CASE WHEN kind='payment' AND status IN ('pending','processing') THEN 1 ELSE 0 END) AS pending,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN amount ELSE 0 END) AS amount,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN 1 ELSE 0 END) AS refunds,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN amount ELSE 0 END) AS refund_amount,
		SUM(CASE WHEN kind='payment' AND status='succeeded' THEN fee ELSE 0 END) AS pay_fees,
		SUM(CASE WHEN kind='refund' AND status='succeeded' THEN fee ELSE 0 END) AS refund_fees
		FROM transactions GROUP BY account_id, method, biz_date ORDER BY account_id, biz_date, method`).Scan(&direct)
	var rolled []DailyRollup
	s.DB.Where("payments <> 0 OR refunds <> 0").Order("account_id, biz_date, method").Find(&rolled)
	if len(direct) != len(rolled) || len(direct) < 100 {
		t.Fatalf("%d direct groups, %d rollup rows", len(direct), len(rolled))
	}
	for i, d := range direct {
		r := rolled[i]
		if d.AccountID != r.AccountID || d.Method != r.Method || d.BizDate != r.BizDate || d.Payments != r.Payments || d.Succeeded != r.PaymentsSucceeded ||
			d.Failed != r.PaymentsFailed || d.Pending != r.PaymentsPending || d.Amount != r.AmountSucceeded ||
			d.Refunds != r.Refunds || d.RefundAmount != r.RefundAmount || d.PayFees-d.RefundFees != r.Fees {
			t.Fatalf("group %d differs:\ndirect %+v\nrollup %+v", i, d, r)
		}
	}
}

func TestDemoHistoryRefusesBadOptions(t *testing.T) {
	s := demoFixture(t)
	for _, o := range []DemoOptions{
		{Transactions: 0},
		{Transactions: DemoMaxTransactions + 1},
		{Transactions: 10, Days: 400},
		{Transactions: 10, Merchants: []string{"NOPE"}},
	} {
		o.Now = demoNow
		if _, err := s.GenerateDemoHistory(SystemActor, o); err == nil {
			t.Errorf("%+v was accepted", o)
		}
	}
	if n := countTxns(t, s, "1 = 1"); n != 0 {
		t.Errorf("refused options left %d rows", n)
	}
}

// BenchmarkDemoHistory measures demo history for the three demo merchants
// (nine accounts) on an empty ledger, as serve --demo makes it. Run:
// go test ./models -run X -bench DemoHistory -benchtime 1x [-demo.n 20000]
func BenchmarkDemoHistory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, _ := vaultStore(b)
		for _, code := range DemoMerchants {
			m := mustMerchant(b, s, code)
			for _, ch := range []string{"wechat", "alipay", "unionpay"} {
				mustAccount(b, s, m, ch)
			}
		}
		b.StartTimer()
		sum, err := s.GenerateDemoHistory(SystemActor, DemoOptions{Transactions: *demoBenchN, Seed: 1, PeriodDays: *demoBenchPeriod})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(sum.Rows)/sum.Elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(sum.Files), "files")
		b.Logf("%+v", sum)
	}
}
