package models

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"payfuse/channels"
)

// dashboardFixture ingests a hand-made ledger over 2026-03-01..03 (Beijing
// business dates):
//
//	SHOP_A wechat  03-01: P1 100.00 scan ok fee 0.60, P2 200.00 quick ok fee 1.20, P3 50.00 scan failed
//	               03-03: P4 300.00 scan ok fee 1.80, refund R1 of P1 40.00 (fee 0.24 back)
//	SHOP_A alipay  03-01: A1 150.00 h5 ok fee 0.90, A2 10.00 h5 pending
//	SHOP_B wechat  03-02: B1 999.00 scan ok fee 5.99
//
// plus SHOP_A wechat P0 on 02-28, outside every range the tests ask for.
func dashboardFixture(t *testing.T) (s *Store, aWechat, aAlipay, bWechat *ChannelAccount) {
	t.Helper()
	s, _ = vaultStore(t)
	ma, mb := mustMerchant(t, s, "SHOP_A"), mustMerchant(t, s, "SHOP_B")
	aWechat, _ = mustAccount(t, s, ma, "wechat")
	aAlipay, _ = mustAccount(t, s, ma, "alipay")
	bWechat, _ = mustAccount(t, s, mb, "wechat")
	day := func(d int) time.Time { return time.Date(2026, 3, d, 10, 0, 0, 0, bj) }
	rec := func(channel, ref, method, status string, amount, fee int64, at time.Time) channels.Record {
		r := pay(ref, "", amount, status, at)
		r.Channel, r.Method, r.AccountRef, r.Fee, r.FeeKnown = channel, method, "", fee, true
		if status != channels.StatusSucceeded {
			r.PaidAt = time.Time{}
		}
		return r
	}
	r1 := refund("R1", "P1", "", 4000, day(3))
	r1.AccountRef, r1.Fee, r1.FeeKnown = "", 24, true
	for _, batch := range []struct {
		acct *ChannelAccount
		recs []channels.Record
	}{
		{aWechat, []channels.Record{
			rec("wechat", "P0", "scan", channels.StatusSucceeded, 7700, 46, day(0)), // 02-28
			rec("wechat", "P1", "scan", channels.StatusSucceeded, 10000, 60, day(1)),
			rec("wechat", "P2", "quick", channels.StatusSucceeded, 20000, 120, day(1)),
			rec("wechat", "P3", "scan", channels.StatusFailed, 5000, 0, day(1)),
			rec("wechat", "P4", "scan", channels.StatusSucceeded, 30000, 180, day(3)),
			r1,
		}},
		{aAlipay, []channels.Record{
			rec("alipay", "A1", "h5", channels.StatusSucceeded, 15000, 90, day(1)),
			rec("alipay", "A2", "h5", channels.StatusPending, 1000, 0, day(1)),
		}},
		{bWechat, []channels.Record{
			rec("wechat", "B1", "scan", channels.StatusSucceeded, 99900, 599, day(2)),
		}},
	} {
		if _, err := s.Ingest(web, batch.acct.ID, SourceStatement, batch.recs); err != nil {
			t.Fatalf("ingest for account %d: %v", batch.acct.ID, err)
		}
	}
	return s, aWechat, aAlipay, bWechat
}

func pctp(v float64) *float64 { return &v }

func wantRates(t *testing.T, what string, got []*float64, want ...*float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rates, want %d", what, len(got), len(want))
	}
	for i := range want {
		switch {
		case (got[i] == nil) != (want[i] == nil):
			t.Fatalf("%s[%d]: %v, want %v", what, i, fmtRate(got[i]), fmtRate(want[i]))
		case got[i] != nil && math.Abs(*got[i]-*want[i]) > 0.005:
			t.Fatalf("%s[%d]: %.4f, want %.4f", what, i, *got[i], *want[i])
		}
	}
}

func fmtRate(v *float64) any {
	if v == nil {
		return "nil"
	}
	return *v
}

func wantInts(t *testing.T, what string, got []int64, want ...int64) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestDashboardFiguresEqualTheLedger(t *testing.T) {
	s, aWechat, aAlipay, _ := dashboardFixture(t)
	d, err := s.Dashboard(Scope{All: true}, DashboardFilter{Merchant: "SHOP_A", From: "2026-03-01", To: "2026-03-03"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Dates, []string{"2026-03-01", "2026-03-02", "2026-03-03"}) {
		t.Fatalf("dates %v: want every date of the range, gaps filled", d.Dates)
	}
	if len(d.Channels) != 2 || d.Channels[0].Channel != "wechat" || d.Channels[1].Channel != "alipay" {
		t.Fatalf("channels %+v, want wechat then alipay", d.Channels)
	}
	w, a := d.Channels[0], d.Channels[1]
	wantInts(t, "wechat GMV", w.GMV, 30000, 0, 30000)
	wantInts(t, "wechat payments", w.Payments, 3, 0, 1)
	wantRates(t, "wechat success", w.SuccessRate, pctp(200.0/3), nil, pctp(100))
	wantInts(t, "alipay GMV", a.GMV, 15000, 0, 0)
	wantInts(t, "alipay payments", a.Payments, 2, 0, 0)
	wantRates(t, "alipay success", a.SuccessRate, pctp(50), nil, nil)
	wantInts(t, "refunds", d.Refunds, 0, 0, 1)
	wantInts(t, "refund amount", d.RefundAmount, 0, 0, 4000)
	wantInts(t, "fees", d.Fees, 60+120+90, 0, 180-24)

	tot := d.Totals
	if tot.GMV != 75000 || tot.Payments != 6 || tot.Succeeded != 4 || tot.Refunds != 1 || tot.RefundAmount != 4000 ||
		tot.Fees != 426 || tot.Net != 75000-4000-426 {
		t.Fatalf("totals %+v", tot)
	}
	wantRates(t, "total success", []*float64{tot.SuccessRate}, pctp(400.0/6))

	wantShares := func(what string, got []DashboardShare, want ...DashboardShare) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s share = %+v, want %+v", what, got, want)
		}
	}
	wantShares("channel", d.ChannelShare, DashboardShare{"wechat", 60000, 4}, DashboardShare{"alipay", 15000, 2})
	wantShares("method", d.MethodShare, DashboardShare{"scan", 40000, 3}, DashboardShare{"quick", 20000, 1}, DashboardShare{"h5", 15000, 2})

	if len(d.Accounts) != 2 || d.Accounts[0].AccountID != aWechat.ID || d.Accounts[1].AccountID != aAlipay.ID {
		t.Fatalf("accounts %+v: want SHOP_A's wechat then alipay", d.Accounts)
	}
	if acc := d.Accounts[0]; acc.Name != aWechat.DisplayName || acc.MerchantCode != "SHOP_A" || acc.GMV != 60000 ||
		acc.Payments != 4 || acc.RefundAmount != 4000 || acc.Fees != 336 || acc.Net != 60000-4000-336 {
		t.Fatalf("wechat account %+v", acc)
	}

	if len(d.Score) != 3 {
		t.Fatalf("score trend %+v: want one point per date", d.Score)
	}
	for i, p := range d.Score {
		if p.Date != d.Dates[i] {
			t.Fatalf("score point %d is %s, want %s", i, p.Date, d.Dates[i])
		}
	}
	if d.Score[1].Fused != nil || d.Score[0].Fused == nil || d.Score[2].Fused == nil {
		t.Fatalf("score trend %v %v %v: want a score on the days with traffic only", fmtRate(d.Score[0].Fused), fmtRate(d.Score[1].Fused), fmtRate(d.Score[2].Fused))
	}
	if d.LastScore == nil || *d.LastScore != *d.Score[2].Fused {
		t.Fatal("the latest score is not the last day's")
	}

	// All merchants: SHOP_B's day joins; one day alone is one date.
	all, err := s.Dashboard(Scope{All: true}, DashboardFilter{From: "2026-03-01", To: "2026-03-03"})
	if err != nil {
		t.Fatal(err)
	}
	if all.Totals.GMV != 75000+99900 || all.Totals.Payments != 7 || all.Totals.Fees != 426+599 {
		t.Fatalf("all merchants' totals %+v", all.Totals)
	}
	wantInts(t, "all wechat GMV", all.Channels[0].GMV, 30000, 99900, 30000)
	one, err := s.Dashboard(Scope{All: true}, DashboardFilter{From: "2026-02-28", To: "2026-02-28"})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Dates) != 1 || one.Totals.GMV != 7700 || one.Totals.Fees != 46 {
		t.Fatalf("one day: dates %v, totals %+v", one.Dates, one.Totals)
	}
	// A range without traffic is all zeros, not an error.
	none, err := s.Dashboard(Scope{All: true}, DashboardFilter{From: "2025-01-01", To: "2025-01-07"})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Dates) != 7 || len(none.Channels) != 0 || none.Totals != (DashboardTotals{}) || len(none.Fees) != 7 {
		t.Fatalf("empty range: %+v", none)
	}
}

func TestDashboardKeepsToTheScope(t *testing.T) {
	s, aWechat, aAlipay, bWechat := dashboardFixture(t)
	now := s.Now()
	for _, in := range []RaiseInput{
		{MerchantCode: "SHOP_A", Kind: "success_rate", Severity: SeverityWarning, DedupeKey: "a-warn", Title: channels.Text{EN: "A warning", ZH: "A 警告"}},
		{MerchantCode: "SHOP_A", Kind: "flow_failed", Severity: SeverityCritical, DedupeKey: "a-crit", Title: channels.Text{EN: "A critical", ZH: "A 严重"}},
		{MerchantCode: "SHOP_B", Kind: "success_rate", Severity: SeverityCritical, DedupeKey: "b-crit", Title: channels.Text{EN: "B critical", ZH: "B 严重"}},
		{Kind: "system", Severity: SeverityInfo, DedupeKey: "sys", Title: channels.Text{EN: "System", ZH: "系统"}},
	} {
		if _, _, err := s.RaiseAlert(in); err != nil {
			t.Fatal(err)
		}
	}
	for _, day := range []ReconDay{
		{MerchantCode: "SHOP_A", AccountID: aWechat.ID, Channel: "wechat", BizDate: "2026-03-01", Status: ReconBalanced},
		{MerchantCode: "SHOP_A", AccountID: aWechat.ID, Channel: "wechat", BizDate: "2026-03-02", Status: ReconOpen, Open: 2},
		{MerchantCode: "SHOP_A", AccountID: aAlipay.ID, Channel: "alipay", BizDate: "2026-03-03", Status: ReconNoStatement},
		{MerchantCode: "SHOP_A", AccountID: aWechat.ID, Channel: "wechat", BizDate: "2026-02-20", Status: ReconOpen, Open: 1},
		{MerchantCode: "SHOP_B", AccountID: bWechat.ID, Channel: "wechat", BizDate: "2026-03-02", Status: ReconOpen, Open: 1},
	} {
		day.RunAt = now
		if err := s.DB.Create(&day).Error; err != nil {
			t.Fatal(err)
		}
	}
	soon := now.Add(10 * 24 * time.Hour)
	for _, id := range []uint64{aAlipay.ID, bWechat.ID} {
		if err := s.DB.Model(&ChannelAccount{}).Where("id = ?", id).Update("cert_not_after", soon).Error; err != nil {
			t.Fatal(err)
		}
	}

	opA := ScopeFor(RoleOperator, []string{"SHOP_A"})
	f := DashboardFilter{From: "2026-03-01", To: "2026-03-03"}
	for _, tc := range []struct {
		name  string
		scope Scope
		f     DashboardFilter
	}{
		{"operator of A, all in scope", opA, f},
		{"operator of A, A picked", opA, DashboardFilter{Merchant: "SHOP_A", From: f.From, To: f.To}},
		{"admin, A picked", Scope{All: true}, DashboardFilter{Merchant: "SHOP_A", From: f.From, To: f.To}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := s.Dashboard(tc.scope, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if d.Totals.GMV != 75000 || len(d.Accounts) != 2 {
				t.Fatalf("GMV %d over %d accounts: want SHOP_A's 75000 over 2", d.Totals.GMV, len(d.Accounts))
			}
			for _, a := range d.Alerts {
				if a.MerchantCode != "SHOP_A" {
					t.Fatalf("alert %q of %q shows", a.TitleText().EN, a.MerchantCode)
				}
			}
			if len(d.Alerts) != 2 || d.Alerts[0].Severity != SeverityCritical || d.OpenAlerts != 2 {
				t.Fatalf("alerts %d (open %d), first %q: want A's two, the critical one first", len(d.Alerts), d.OpenAlerts, d.Alerts[0].Severity)
			}
			if d.UnbalancedCount != 2 || len(d.Unbalanced) != 2 || d.Unbalanced[0].BizDate != "2026-03-03" || d.Unbalanced[1].BizDate != "2026-03-02" {
				t.Fatalf("unbalanced days %+v (count %d): want A's 03-03 and 03-02", d.Unbalanced, d.UnbalancedCount)
			}
			if len(d.Expiring) != 1 || d.Expiring[0].ID != aAlipay.ID {
				t.Fatalf("expiring %+v: want A's alipay account only", d.Expiring)
			}
		})
	}

	// An admin over everything sees every alert, PayFuse's own too.
	d, err := s.Dashboard(Scope{All: true}, f)
	if err != nil {
		t.Fatal(err)
	}
	if d.OpenAlerts != 4 || len(d.Alerts) != 4 || d.Alerts[3].Severity != SeverityInfo || d.UnbalancedCount != 3 || len(d.Expiring) != 2 {
		t.Fatalf("admin: %d alerts (open %d), %d unbalanced, %d expiring", len(d.Alerts), d.OpenAlerts, d.UnbalancedCount, len(d.Expiring))
	}

	// Another merchant's code is refused, as if it did not exist.
	_, err = s.Dashboard(opA, DashboardFilter{Merchant: "SHOP_B", From: f.From, To: f.To})
	var fe FieldErrors
	if !errors.As(err, &fe) || fe["merchant"] != "dashboard.err_merchant" {
		t.Fatalf("SHOP_B for A's operator: %v", err)
	}
	// An operator without merchants sees nothing at all.
	empty, err := s.Dashboard(ScopeFor(RoleOperator, nil), f)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Totals != (DashboardTotals{}) || len(empty.Alerts) != 0 || empty.UnbalancedCount != 0 || len(empty.Expiring) != 0 || len(empty.Accounts) != 0 {
		t.Fatalf("empty scope sees %+v", empty)
	}
}

func TestDashboardFilterValidate(t *testing.T) {
	s := OpenTest(t)
	sc := ScopeFor(RoleOperator, []string{"SHOP_A"})
	for _, tc := range []struct {
		f    DashboardFilter
		want FieldErrors
	}{
		{DashboardFilter{From: "2026-03-01", To: "2026-03-01"}, nil},
		{DashboardFilter{Merchant: "SHOP_A", From: "2025-03-01", To: "2026-03-01"}, nil}, // 366 days
		{DashboardFilter{From: "2025-02-28", To: "2026-03-01"}, FieldErrors{"to": "dashboard.err_range_long"}},
		{DashboardFilter{From: "2026-03-02", To: "2026-03-01"}, FieldErrors{"to": "dashboard.err_date_order"}},
		{DashboardFilter{From: "2026-02-30", To: "yesterday"}, FieldErrors{"from": "dashboard.err_date", "to": "dashboard.err_date"}},
		{DashboardFilter{From: "", To: "2026-03-01"}, FieldErrors{"from": "dashboard.err_date"}},
		{DashboardFilter{Merchant: "SHOP_B", From: "2026-03-01", To: "2026-03-01"}, FieldErrors{"merchant": "dashboard.err_merchant"}},
	} {
		got := tc.f.Validate(sc)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
		if tc.want != nil {
			if _, err := s.Dashboard(sc, tc.f); !errors.As(err, new(FieldErrors)) {
				t.Errorf("%+v: Dashboard returned %v, want the field errors", tc.f, err)
			}
		}
	}
}

// TestDashboardLongRangeEqualsItsDays: a range of two weeks or more is read
// as two halves side by side; every per-date figure, the shares, the totals
// and the score trend must be what the same dates give one by one (the
// fixture's traffic falls in both halves: 02-28 in the first, 03-01…03-03
// in the second).
func TestDashboardLongRangeEqualsItsDays(t *testing.T) {
	s, _, _, _ := dashboardFixture(t)
	long, err := s.Dashboard(Scope{All: true}, DashboardFilter{From: "2026-02-22", To: "2026-03-07"})
	if err != nil {
		t.Fatal(err)
	}
	if len(long.Dates) != 14 {
		t.Fatalf("%d dates", len(long.Dates))
	}
	var totals DashboardTotals
	channelShare, methodShare := map[string]DashboardShare{}, map[string]DashboardShare{}
	byChannel := map[string]*DashboardSeries{}
	for i := range long.Channels {
		byChannel[long.Channels[i].Channel] = &long.Channels[i]
	}
	for i, date := range long.Dates {
		day, err := s.Dashboard(Scope{All: true}, DashboardFilter{From: date, To: date})
		if err != nil {
			t.Fatal(err)
		}
		if long.Refunds[i] != day.Refunds[0] || long.RefundAmount[i] != day.RefundAmount[0] || long.Fees[i] != day.Fees[0] {
			t.Errorf("%s: refunds/fees %d %d %d, alone %d %d %d", date, long.Refunds[i], long.RefundAmount[i], long.Fees[i],
				day.Refunds[0], day.RefundAmount[0], day.Fees[0])
		}
		for _, sr := range day.Channels {
			got := byChannel[sr.Channel]
			if got == nil || got.GMV[i] != sr.GMV[0] || got.Payments[i] != sr.Payments[0] || !reflect.DeepEqual(got.SuccessRate[i], sr.SuccessRate[0]) {
				t.Errorf("%s %s: the long range's series differ from the day alone", date, sr.Channel)
			}
		}
		if !reflect.DeepEqual(long.Score[i].Fused, day.Score[0].Fused) {
			t.Errorf("%s: score %v, alone %v", date, long.Score[i].Fused, day.Score[0].Fused)
		}
		dt := day.Totals
		totals.GMV += dt.GMV
		totals.Payments += dt.Payments
		totals.Succeeded += dt.Succeeded
		totals.Refunds += dt.Refunds
		totals.RefundAmount += dt.RefundAmount
		totals.Fees += dt.Fees
		for _, sh := range day.ChannelShare {
			c := channelShare[sh.Key]
			c.Key, c.GMV, c.Payments = sh.Key, c.GMV+sh.GMV, c.Payments+sh.Payments
			channelShare[sh.Key] = c
		}
		for _, sh := range day.MethodShare {
			m := methodShare[sh.Key]
			m.Key, m.GMV, m.Payments = sh.Key, m.GMV+sh.GMV, m.Payments+sh.Payments
			methodShare[sh.Key] = m
		}
	}
	totals.finish()
	if !reflect.DeepEqual(long.Totals, totals) {
		t.Errorf("totals %+v, the days add up to %+v", long.Totals, totals)
	}
	if totals.Payments == 0 || long.Score[6].Fused == nil || long.Score[7].Fused == nil {
		t.Fatal("the fixture has no traffic on both sides of the split")
	}
	for _, sh := range long.ChannelShare {
		if channelShare[sh.Key] != sh {
			t.Errorf("channel share %+v, days add up to %+v", sh, channelShare[sh.Key])
		}
	}
	for _, sh := range long.MethodShare {
		if methodShare[sh.Key] != sh {
			t.Errorf("method share %+v, days add up to %+v", sh, methodShare[sh.Key])
		}
	}
	if len(long.ChannelShare) != len(channelShare) || len(long.MethodShare) != len(methodShare) {
		t.Errorf("shares: %d/%d channels, %d/%d methods", len(long.ChannelShare), len(channelShare), len(long.MethodShare), len(methodShare))
	}
}
