package models

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
)

// triggerFixture is SHOP_SH with one WeChat Pay account, a vault, and the
// clock at 2026-03-01 08:00 UTC (16:00 in Shanghai).
func triggerFixture(t *testing.T) (*Store, *clock, *ChannelAccount, string) {
	t.Helper()
	s, c := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "wechat")
	return s, c, acct, string(values["mch_id"])
}

func mustRule(t *testing.T, s *Store, in TriggerRuleInput) *TriggerRule {
	t.Helper()
	if in.MerchantCode == "" {
		in.MerchantCode = "SHOP_SH"
	}
	in.Alert, in.Enabled = true, true
	r, err := s.CreateTriggerRule(web, Scope{All: true}, in)
	if err != nil {
		t.Fatalf("create rule %s: %v", in.Name, err)
	}
	return r
}

func evaluate(t *testing.T, s *Store) []TriggerFiring {
	t.Helper()
	fired, err := s.EvaluateTriggers(s.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fired {
		if f.Title.EN == "" || f.Title.ZH == "" || f.Body.EN == "" || f.Body.ZH == "" {
			t.Errorf("firing %s not in both languages: %+v %+v", f.Subject, f.Title, f.Body)
		}
		if !json.Valid(f.Payload()) {
			t.Errorf("payload of %s is not JSON", f.Subject)
		}
	}
	return fired
}

func wantFired(t *testing.T, fired []TriggerFiring, subjects ...string) {
	t.Helper()
	var got []string
	for _, f := range fired {
		got = append(got, f.Subject)
	}
	if strings.Join(got, ",") != strings.Join(subjects, ",") {
		t.Fatalf("fired for %v, want %v", got, subjects)
	}
}

func TestTriggerRuleValidationScopeAndAudit(t *testing.T) {
	s, _, acct, _ := triggerFixture(t)
	mustMerchant(t, s, "SHOP_BJ")
	all := Scope{All: true}
	tests := []struct {
		name  string
		in    TriggerRuleInput
		field string
		key   string
	}{
		{"unknown kind", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: "weather", Alert: true}, "kind", "trigger.err_kind"},
		{"no name", TriggerRuleInput{MerchantCode: "SHOP_SH", Kind: TriggerCertExpiry, Alert: true}, "name", "trigger.err_name"},
		{"no action", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerCertExpiry}, "action", "trigger.err_action"},
		{"no amount", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerLargePayment, Alert: true}, "amount", "trigger.err_amount"},
		{"percent over 100", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerSuccessRate, Alert: true, Params: `{"min_percent":120}`}, "min_percent", "trigger.err_percent"},
		{"bad time", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerBillMissing, Alert: true, Params: `{"at":"25:00"}`}, "at", "trigger.err_at"},
		{"unknown param", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerCertExpiry, Alert: true, Params: `{"dayz":3}`}, "params", "trigger.err_params"},
		{"other merchant's account", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_BJ", AccountID: acct.ID, Kind: TriggerCertExpiry, Alert: true}, "account", "trigger.err_account"},
		{"unknown endpoint", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerCertExpiry, WebhookEndpointID: 99}, "endpoint", "trigger.err_endpoint"},
		{"cooldown too long", TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerCertExpiry, Alert: true, CooldownMinutes: 99999}, "cooldown", "trigger.err_cooldown"},
	}
	for _, tc := range tests {
		_, err := s.CreateTriggerRule(web, all, tc.in)
		var fe FieldErrors
		if !errors.As(err, &fe) || fe[tc.field] != tc.key {
			t.Errorf("%s: %v, want %s=%s", tc.name, err, tc.field, tc.key)
		}
	}
	// Outside the user's scope the merchant does not exist for them.
	bj := Scope{Merchants: []string{"SHOP_BJ"}}
	if _, err := s.CreateTriggerRule(web, bj, TriggerRuleInput{Name: "x", MerchantCode: "SHOP_SH", Kind: TriggerCertExpiry, Alert: true}); err == nil {
		t.Error("a SHOP_BJ user created a rule for SHOP_SH")
	}

	r := mustRule(t, s, TriggerRuleInput{Name: "Refusals", Kind: TriggerNotifyRefusals, AccountID: acct.ID})
	if r.Params != `{"window_minutes":10,"max_refusals":10}` || r.CooldownMinutes != DefaultTriggerCooldown || r.Severity != SeverityWarning {
		t.Errorf("defaults: %+v", r)
	}
	if _, err := s.CreateTriggerRule(web, all, TriggerRuleInput{Name: "Refusals", MerchantCode: "SHOP_SH", Kind: TriggerCertExpiry, Alert: true}); err == nil ||
		err.(FieldErrors)["name"] != "trigger.err_name_taken" {
		t.Errorf("same name again: %v", err)
	}
	if _, err := s.GetTriggerRule(bj, r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("SHOP_BJ reads SHOP_SH's rule: %v", err)
	}
	if _, err := s.SetTriggerEnabled(web, bj, r.ID, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("SHOP_BJ disables SHOP_SH's rule: %v", err)
	}
	if list, _ := s.ListTriggerRules(bj, TriggerFilter{}); len(list) != 0 {
		t.Errorf("SHOP_BJ lists %d rules", len(list))
	}
	up, err := s.UpdateTriggerRule(web, all, r.ID, TriggerRuleInput{Name: "Refusals", Kind: TriggerNotifyRefusals, Params: `{"max_refusals":0}`,
		Alert: true, Severity: SeverityCritical, CooldownMinutes: 5})
	if err != nil || up.Params != `{"window_minutes":10,"max_refusals":0}` || up.AccountID != nil || up.Severity != SeverityCritical {
		t.Fatalf("update: %+v %v", up, err)
	}
	if _, err := s.SetTriggerEnabled(web, all, r.ID, false); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{ActTriggerCreate, ActTriggerUpdate, ActTriggerDisable} {
		if n := len(auditActions(t, s, action)); n != 1 {
			t.Errorf("%d %s audit records", n, action)
		}
	}
	// A disabled rule is not evaluated.
	s.RecordNotifyRefusal(acct.ID, "bad_signature", s.Now())
	wantFired(t, evaluate(t, s))
}

func TestTriggerSuccessRate(t *testing.T) {
	s, c, acct, mch := triggerFixture(t)
	mustRule(t, s, TriggerRuleInput{Name: "rate", Kind: TriggerSuccessRate, AccountID: acct.ID,
		Params: `{"window_minutes":30,"min_percent":80,"min_payments":5}`})
	at := s.Now().Add(-10 * time.Minute)
	failed := func(ref string) channels.Record {
		r := pay(ref, mch, 100, channels.StatusFailed, at)
		r.PaidAt = time.Time{}
		return r
	}
	old := pay("OLD", mch, 100, channels.StatusFailed, at.Add(-time.Hour))
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{old, pay("P1", mch, 100, channels.StatusSucceeded, at),
		pay("P2", mch, 100, channels.StatusSucceeded, at), pay("P3", mch, 100, channels.StatusSucceeded, at), failed("F1")}); err != nil {
		t.Fatal(err)
	}
	// 3 of 4 in the window: too few payments to judge (the old failure is outside it).
	wantFired(t, evaluate(t, s))
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{failed("F2")}); err != nil {
		t.Fatal(err)
	}
	fired := evaluate(t, s)
	wantFired(t, fired, "account:"+idStr(acct.ID))
	if f := fired[0]; !strings.Contains(f.Body.EN, "3 of 5") || f.Data["rate_percent"] != 60.0 || f.Event != "channel_account.success_rate_low" {
		t.Errorf("firing: %+v", f)
	}
	// Still low, but within the cooldown.
	c.Add(10 * time.Minute)
	wantFired(t, evaluate(t, s))
	// After the window, nothing to judge.
	c.Add(time.Hour)
	wantFired(t, evaluate(t, s))
}

func TestTriggerLargePaymentFiresOncePerPayment(t *testing.T) {
	s, c, acct, mch := triggerFixture(t)
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{pay("BEFORE", mch, 900000, channels.StatusSucceeded, s.Now())}); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute)
	r := mustRule(t, s, TriggerRuleInput{Name: "big", Kind: TriggerLargePayment, Params: `{"amount":100000}`})
	wantFired(t, evaluate(t, s)) // a payment from before the rule is not news
	c.Add(time.Minute)
	pending := pay("P2", mch, 500000, channels.StatusPending, s.Now())
	pending.PaidAt = time.Time{}
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{
		pay("P1", mch, 200000, channels.StatusSucceeded, s.Now()), pay("SMALL", mch, 100000, channels.StatusSucceeded, s.Now()), pending}); err != nil {
		t.Fatal(err)
	}
	p1 := txn(t, s, "payment", "P1")
	fired := evaluate(t, s)
	wantFired(t, fired, "payment:"+idStr(p1.ID))
	if f := fired[0]; f.Data["amount"] != int64(200000) || !strings.Contains(f.Title.EN, "2000.00 CNY") || f.Link != "/ledger/"+idStr(p1.ID) {
		t.Errorf("firing: %+v", f)
	}
	wantFired(t, evaluate(t, s))
	// The statement merges P1 (its row changes) and the pending P2 succeeds:
	// only P2 is news.
	c.Add(time.Minute)
	if _, err := s.Ingest(web, acct.ID, SourceStatement, []channels.Record{
		pay("P1", mch, 200000, channels.StatusSucceeded, s.Now().Add(-time.Minute)), pay("P2", mch, 500000, channels.StatusSucceeded, s.Now())}); err != nil {
		t.Fatal(err)
	}
	wantFired(t, evaluate(t, s), "payment:"+idStr(txn(t, s, "payment", "P2").ID))
	c.Add(2 * time.Hour)
	wantFired(t, evaluate(t, s))
	if got, _ := s.GetTriggerRule(Scope{All: true}, r.ID); got.LastFiredAt == nil || got.WatermarkAt == nil || !got.WatermarkAt.Equal(s.Now()) {
		t.Errorf("rule after evaluation: %+v", got)
	}
}

func TestTriggerNotifyRefusals(t *testing.T) {
	s, c, acct, _ := triggerFixture(t)
	mustRule(t, s, TriggerRuleInput{Name: "refused", Kind: TriggerNotifyRefusals, Params: `{"max_refusals":2,"window_minutes":10}`})
	for range 2 {
		if err := s.RecordNotifyRefusal(acct.ID, "bad_signature", s.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s.RecordNotifyRefusal(987654, "unknown_account", s.Now()) // no such account: not kept
	wantFired(t, evaluate(t, s))
	s.RecordNotifyRefusal(acct.ID, "stale_timestamp", s.Now())
	wantFired(t, evaluate(t, s), "account:"+idStr(acct.ID))
	// Out of the window: no more.
	c.Add(11 * time.Minute)
	for range 3 {
		s.RecordNotifyRefusal(acct.ID, "bad_signature", s.Now().Add(-20*time.Minute))
	}
	c.Add(2 * time.Hour)
	wantFired(t, evaluate(t, s))
	var n int64
	s.DB.Model(&NotifyRefusal{}).Count(&n)
	if n != 6 {
		t.Fatalf("%d refusals kept, want 6", n)
	}
	c.Add(24 * time.Hour)
	evaluate(t, s)
	s.DB.Model(&NotifyRefusal{}).Count(&n)
	if n != 0 {
		t.Errorf("%d refusals left after a day", n)
	}
}

func TestTriggerBillMissingAndReconUnbalanced(t *testing.T) {
	s, c, acct, mch := triggerFixture(t)
	all := Scope{All: true}
	mustRule(t, s, TriggerRuleInput{Name: "bill", Kind: TriggerBillMissing, Params: `{"at":"10:00"}`})
	mustRule(t, s, TriggerRuleInput{Name: "recon", Kind: TriggerReconUnbalanced, Params: `{"at":"17:00"}`, CooldownMinutes: 30})
	day := "account:" + idStr(acct.ID) + ":2026-02-28"
	// 16:00 in Shanghai, no record of yesterday: a quiet day is not judged.
	wantFired(t, evaluate(t, s))
	yesterday := time.Date(2026, 2, 28, 12, 0, 0, 0, bj)
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{pay("Y1", mch, 5000, channels.StatusSucceeded, yesterday)}); err != nil {
		t.Fatal(err)
	}
	// The bill rule is due (after 10:00); the reconciliation rule not yet (17:00).
	fired := evaluate(t, s)
	wantFired(t, fired, day)
	if fired[0].Kind != TriggerBillMissing || fired[0].Event != "bill.missing" {
		t.Errorf("firing: %+v", fired[0])
	}
	c.Add(90 * time.Minute) // 17:30
	fired = evaluate(t, s)
	wantFired(t, fired, day, day)
	if fired[1].Kind != TriggerReconUnbalanced || fired[1].Data["status"] != "not_reconciled" {
		t.Errorf("recon firing: %+v", fired[1])
	}
	// Reconciled without a statement: still not balanced (after its cooldown).
	if _, err := s.Reconcile(web, all, acct.ID, "2026-02-28"); err != nil {
		t.Fatal(err)
	}
	c.Add(31 * time.Minute)
	fired = evaluate(t, s)
	wantFired(t, fired, day)
	if fired[0].Data["status"] != ReconNoStatement {
		t.Errorf("recon firing: %+v", fired[0])
	}
	// The statement arrives and the day balances: neither fires.
	if res, err := s.ImportStatement(web, acct.ID, statement("bill-0228.csv", pay("Y1", mch, 5000, channels.StatusSucceeded, yesterday))); err != nil || res.Refused {
		t.Fatalf("import: %+v %v", res, err)
	}
	if d, err := s.Reconcile(web, all, acct.ID, "2026-02-28"); err != nil || d.Status != ReconBalanced {
		t.Fatalf("reconcile: %+v %v", d, err)
	}
	c.Add(2 * time.Hour)
	wantFired(t, evaluate(t, s))
	// Before 10:00 the next morning: yesterday (03-01) is not judged yet.
	c.Add(13 * time.Hour) // 2026-03-02 09:01 Shanghai
	wantFired(t, evaluate(t, s))
}

func TestTriggerCertExpiryAndCooldown(t *testing.T) {
	s, c, acct, _ := triggerFixture(t)
	soon := s.Now().Add(10 * 24 * time.Hour)
	if err := s.DB.Model(&ChannelAccount{}).Where("id = ?", acct.ID).Update("cert_not_after", soon).Error; err != nil {
		t.Fatal(err)
	}
	mustRule(t, s, TriggerRuleInput{Name: "cert 5", Kind: TriggerCertExpiry, Params: `{"days":5}`})
	r := mustRule(t, s, TriggerRuleInput{Name: "cert 30", Kind: TriggerCertExpiry, Params: `{"days":30}`, CooldownMinutes: 60})
	fired := evaluate(t, s)
	wantFired(t, fired, "account:"+idStr(acct.ID))
	if f := fired[0]; f.RuleID != r.ID || f.Data["days_left"] != 10 || f.DedupeKey() != "trigger:"+idStr(r.ID)+":account:"+idStr(acct.ID) {
		t.Errorf("firing: %+v", f)
	}
	c.Add(59 * time.Minute)
	wantFired(t, evaluate(t, s))
	c.Add(time.Minute)
	wantFired(t, evaluate(t, s), "account:"+idStr(acct.ID))
	// A disabled account is not watched.
	s.DB.Model(&ChannelAccount{}).Where("id = ?", acct.ID).Update("enabled", false)
	c.Add(2 * time.Hour)
	wantFired(t, evaluate(t, s))
}
