package models

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

func mustFlow(t *testing.T, s *Store, in FlowInput) *Flow {
	t.Helper()
	f, err := s.CreateFlow(web, Scope{All: true}, in)
	if err != nil {
		t.Fatalf("create flow %s: %v", in.Name, err)
	}
	return f
}

func TestFlowCreateValidatesAndAudits(t *testing.T) {
	s, c := vaultStore(t) // 2026-03-01 08:00 UTC = 16:00 in Shanghai
	sh := mustMerchant(t, s, "SHOP_SH")
	bj := mustMerchant(t, s, "SHOP_BJ")
	acctSH, _ := mustAccount(t, s, sh, "wechat")
	acctBJ, _ := mustAccount(t, s, bj, "wechat")

	_, err := s.CreateFlow(web, Scope{All: true}, FlowInput{Name: "X", Kind: "mine_bitcoin", MerchantCode: "NOPE",
		Params: "[1,2]", Schedule: "0 9 * *", MaxAttempts: 11, RetryBaseSeconds: -1})
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("want field errors, got %v", err)
	}
	for _, f := range []string{"name", "kind", "merchant", "params", "max_attempts", "retry_base"} {
		if fe[f] == "" {
			t.Errorf("no error for %s: %v", f, fe)
		}
	}
	_, err = s.CreateFlow(web, Scope{All: true}, FlowInput{Name: "sync-sh", Kind: FlowBillSync, MerchantCode: "SHOP_SH", Schedule: "0 9 * *"})
	if !errors.As(err, &fe) || fe["schedule"] != "flow.err_schedule" {
		t.Fatalf("four-field schedule: %v", err)
	}
	// An operator of Beijing cannot create a flow for Shanghai, nor use another merchant's account.
	_, err = s.CreateFlow(web, Scope{Merchants: []string{"SHOP_BJ"}}, FlowInput{Name: "sync-sh", Kind: FlowBillSync, MerchantCode: "SHOP_SH"})
	if !errors.As(err, &fe) || fe["merchant"] == "" {
		t.Fatalf("out-of-scope merchant: %v", err)
	}
	_, err = s.CreateFlow(web, Scope{All: true}, FlowInput{Name: "sync-sh", Kind: FlowBillSync, MerchantCode: "SHOP_SH", AccountID: acctBJ.ID})
	if !errors.As(err, &fe) || fe["account"] == "" {
		t.Fatalf("another merchant's account: %v", err)
	}
	if n := len(auditActions(t, s, ActFlowCreate)); n != 0 {
		t.Fatalf("refused input audited %d times", n)
	}

	f := mustFlow(t, s, FlowInput{Name: " Sync-SH ", Kind: FlowBillSync, MerchantCode: "shop_sh", AccountID: acctSH.ID,
		Params: `{"bill_type":"ALL","api_token":"s3cret"}`, Schedule: " 0  9 * * * ", Enabled: true})
	if f.Name != "sync-sh" || f.Schedule != "0 9 * * *" || f.Timezone != "Asia/Shanghai" || f.MaxAttempts != DefaultFlowAttempts ||
		f.RetryBaseSeconds != DefaultRetryBase || f.AccountID == nil || *f.AccountID != acctSH.ID {
		t.Fatalf("stored flow: %+v", f)
	}
	// 09:00 in Shanghai is 01:00 UTC; at 16:00 Shanghai time the next one is tomorrow's.
	if want := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC); f.NextRunAt == nil || !f.NextRunAt.Equal(want) {
		t.Fatalf("next run %v, want %v", f.NextRunAt, want)
	}
	got, err := s.GetFlowByName(Scope{Merchants: []string{"SHOP_SH"}}, "SYNC-SH")
	if err != nil || got.ID != f.ID || !got.NextRunAt.Equal(*f.NextRunAt) {
		t.Fatalf("by name: %+v, %v", got, err)
	}
	if _, err := s.GetFlow(Scope{Merchants: []string{"SHOP_BJ"}}, f.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("flow outside scope: %v", err)
	}
	_, err = s.CreateFlow(web, Scope{All: true}, FlowInput{Name: "sync-sh", Kind: FlowReconcile, MerchantCode: "SHOP_BJ"})
	if !errors.As(err, &fe) || fe["name"] != "flow.err_name_taken" {
		t.Fatalf("duplicate name: %v", err)
	}
	// No schedule: runs only on demand; disabled: no next run.
	manual := mustFlow(t, s, FlowInput{Name: "recon-bj", Kind: FlowReconcile, MerchantCode: "SHOP_BJ", Enabled: true})
	if manual.NextRunAt != nil {
		t.Fatalf("unscheduled flow has a next run: %v", manual.NextRunAt)
	}
	rows := auditActions(t, s, ActFlowCreate)
	if len(rows) != 2 || rows[1].ObjectID != idStr(f.ID) || rows[1].MerchantCode != "SHOP_SH" || rows[1].Actor != "tester" {
		t.Fatalf("audit: %+v", rows)
	}
	if want := `"api_token":"[redacted]"`; !strings.Contains(rows[1].After, want) {
		t.Fatalf("audit of params not redacted: %s", rows[1].After)
	}
	list, err := s.ListFlows(Scope{Merchants: []string{"SHOP_BJ"}}, FlowFilter{})
	if err != nil || len(list) != 1 || list[0].Name != "recon-bj" {
		t.Fatalf("list in scope: %+v, %v", list, err)
	}
	c.Add(time.Minute)
}

func TestFlowScheduleErrorsAreBilingual(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	for _, expr := range []string{"", "0 9 * *", "0 0 9 * * *", "61 * * * *", "@daily", "TZ=UTC 0 9 * * *", "0 0 31 2 *", "0 9 * * mon-xyz"} {
		_, err := ParseSchedule(expr, sh)
		var se *ScheduleError
		if !errors.As(err, &se) || se.Message.EN == "" || se.Message.ZH == "" {
			t.Errorf("%q: want a bilingual schedule error, got %v", expr, err)
		}
	}
	sched, err := ParseSchedule("*/15 9-17 * * mon-fri", sh)
	if err != nil {
		t.Fatal(err)
	}
	// Saturday 2026-03-07 10:00 Shanghai: the next one is Monday 09:00 Shanghai = 01:00 UTC.
	sat := time.Date(2026, 3, 7, 2, 0, 0, 0, time.UTC)
	if got, want := sched.Next(sat), time.Date(2026, 3, 9, 1, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("next %v, want %v", got, want)
	}
	next, err := NextOccurrences("0 9 * * *", sh, sat, 3)
	if err != nil || len(next) != 3 || !next[2].Equal(time.Date(2026, 3, 10, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("preview: %v, %v", next, err)
	}
}

func TestFlowScheduleLatestSkipsLongDowntime(t *testing.T) {
	everyMinute, _ := ParseSchedule("* * * * *", time.UTC)
	first := time.Date(2025, 1, 1, 0, 1, 0, 0, time.UTC)
	now := time.Date(2026, 3, 1, 8, 0, 42, 0, time.UTC)
	if got := everyMinute.Latest(first, now); !got.Equal(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("latest minute: %v", got)
	}
	monthly, _ := ParseSchedule("0 3 1 * *", time.UTC)
	first = time.Date(2025, 6, 1, 3, 0, 0, 0, time.UTC)
	if got := monthly.Latest(first, now); !got.Equal(time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)) {
		t.Fatalf("latest month: %v", got)
	}
	if got := monthly.Latest(first, first); !got.Equal(first) {
		t.Fatalf("latest when only the first is due: %v", got)
	}
}

func TestFlowUpdateEnableDisable(t *testing.T) {
	s, c := testStore(t)
	mustMerchant(t, s, "SHOP_SH")
	f := mustFlow(t, s, FlowInput{Name: "recon", Kind: FlowReconcile, MerchantCode: "SHOP_SH", Schedule: "0 9 * * *", Enabled: true})
	up, err := s.UpdateFlow(web, Scope{All: true}, f.ID, FlowInput{Name: "renamed", Kind: FlowBillSync, MerchantCode: "SHOP_BJ",
		Schedule: "30 * * * *", Params: `{"date":"yesterday"}`, MaxAttempts: 5, RetryBaseSeconds: 30})
	if err != nil {
		t.Fatal(err)
	}
	if up.Name != "recon" || up.Kind != FlowReconcile || up.MerchantCode != "SHOP_SH" || up.MaxAttempts != 5 || up.Params != `{"date":"yesterday"}` {
		t.Fatalf("updated: %+v", up)
	}
	if want := time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC); up.NextRunAt == nil || !up.NextRunAt.Equal(want) {
		t.Fatalf("next run after schedule change %v, want %v", up.NextRunAt, want)
	}
	if _, err := s.UpdateFlow(web, Scope{Merchants: []string{"SHOP_BJ"}}, f.ID, FlowInput{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update outside scope: %v", err)
	}

	// A failed run waiting for its retry is cancelled by disabling.
	c.Add(31 * time.Minute)
	_, run, err := s.ClaimRun(f.ID, "e1", s.Now())
	if err != nil {
		t.Fatal(err)
	}
	retryAt := s.Now().Add(time.Minute)
	if _, err := s.FinishRun(run.ID, "e1", RunOutcome{Status: RunRetrying, At: s.Now(), RetryAt: &retryAt}); err != nil {
		t.Fatal(err)
	}
	off, err := s.SetFlowEnabled(web, Scope{All: true}, f.ID, false)
	if err != nil || off.Enabled || off.NextRunAt != nil {
		t.Fatalf("disabled: %+v, %v", off, err)
	}
	if r, _ := s.GetRun(Scope{All: true}, run.ID); r.Status != RunFailed || r.ErrorText().ZH == "" {
		t.Fatalf("pending retry not cancelled: %+v", r)
	}
	c.Add(time.Hour)
	if _, _, err := s.ClaimRun(f.ID, "e1", s.Now()); !errors.Is(err, ErrNotDue) {
		t.Fatalf("claim on a disabled flow: %v", err)
	}
	// Enabling does not catch up what was missed while disabled.
	on, err := s.SetFlowEnabled(web, Scope{All: true}, f.ID, true)
	if want := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC); err != nil || on.NextRunAt == nil || !on.NextRunAt.Equal(want) {
		t.Fatalf("enabled: next %v, %v; want %v", on.NextRunAt, err, want)
	}
	for action, n := range map[string]int{ActFlowUpdate: 1, ActFlowDisable: 1, ActFlowEnable: 1} {
		if got := len(auditActions(t, s, action)); got != n {
			t.Errorf("%s audited %d times, want %d", action, got, n)
		}
	}
}

func TestFlowLeaseHasOneHolder(t *testing.T) {
	s, c := testStore(t)
	now := s.Now()
	const takers = 8
	var wg sync.WaitGroup
	wins := make(chan string, takers)
	for i := range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := "engine-" + string(rune('a'+i))
			ok, err := s.TakeLease("flow:1", owner, now, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins <- owner
			}
		}()
	}
	wg.Wait()
	close(wins)
	var holders []string
	for w := range wins {
		holders = append(holders, w)
	}
	if len(holders) != 1 {
		t.Fatalf("holders %v, want exactly one", holders)
	}
	holder := holders[0]
	if ok, _ := s.TakeLease("flow:1", "late", now.Add(59*time.Second), time.Minute); ok {
		t.Fatal("a live lease was taken")
	}
	if ok, _ := s.RenewLease("flow:1", "late", now, time.Minute); ok {
		t.Fatal("a non-holder renewed")
	}
	// Renewed with an unchanged clock still counts (MySQL reports changed rows only).
	if ok, err := s.RenewLease("flow:1", holder, now, time.Minute); !ok || err != nil {
		t.Fatalf("holder's renewal: %v %v", ok, err)
	}
	// Expired: taken over, and the old holder's renewal and release no longer count.
	c.Add(2 * time.Minute)
	if ok, _ := s.TakeLease("flow:1", "late", s.Now(), time.Minute); !ok {
		t.Fatal("an expired lease was not taken over")
	}
	if ok, _ := s.RenewLease("flow:1", holder, s.Now(), time.Minute); ok {
		t.Fatal("the old holder renewed a lease taken over")
	}
	s.ReleaseLease("flow:1", holder)
	if l, _ := s.GetLease("flow:1"); l.Owner != "late" || !l.ExpiresAt.After(s.Now()) {
		t.Fatalf("lease after the old holder's release: %+v", l)
	}
	s.ReleaseLease("flow:1", "late")
	if ok, _ := s.TakeLease("flow:1", "third", s.Now(), time.Minute); !ok {
		t.Fatal("a released lease was not free")
	}
}

func TestFlowClaimRunIsOnceAndCatchesUpOnce(t *testing.T) {
	s, c := testStore(t)
	mustMerchant(t, s, "SHOP_SH")
	f := mustFlow(t, s, FlowInput{Name: "tick", Kind: FlowRollupCheck, MerchantCode: "SHOP_SH", Schedule: "*/10 * * * *", Enabled: true, MaxAttempts: 2})
	if _, _, err := s.ClaimRun(f.ID, "e1", s.Now()); !errors.Is(err, ErrNotDue) {
		t.Fatalf("claim before due: %v", err)
	}
	// Down from 08:00 to 08:55: five occurrences missed (08:10 ... 08:50), one run for the latest.
	c.Add(55 * time.Minute)
	_, run, err := s.ClaimRun(f.ID, "e1", s.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 1, 8, 50, 0, 0, time.UTC); run.Occurrence == nil || !run.Occurrence.Equal(want) || run.Trigger != TriggerSchedule {
		t.Fatalf("catch-up run: %+v", run)
	}
	if _, _, err := s.ClaimRun(f.ID, "e2", s.Now()); !errors.Is(err, ErrNotDue) {
		t.Fatalf("second claim of the same occurrence: %v", err)
	}
	got, _ := s.GetFlow(Scope{All: true}, f.ID)
	if want := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC); !got.NextRunAt.Equal(want) || got.LastStatus != RunRunning || *got.LastRunID != run.ID {
		t.Fatalf("flow after claim: %+v", got)
	}
	// The unique index refuses a second row for the same attempt of the same occurrence.
	dup := *run
	dup.ID, dup.Owner = 0, "rogue"
	if err := s.DB.Create(&dup).Error; !errors.Is(err, gorm.ErrDuplicatedKey) {
		t.Fatalf("duplicate occurrence row: %v", err)
	}

	// Checkpoint, fail, retry from the checkpoint.
	if err := s.SaveCheckpoint(run.ID, "e2", RunCounts{}, "", "x"); !errors.Is(err, ErrRunLost) {
		t.Fatalf("checkpoint by a non-owner: %v", err)
	}
	for range 2 { // the second one changes nothing
		if err := s.SaveCheckpoint(run.ID, "e1", RunCounts{RowsRead: 7}, "read 7\n", "page=2"); err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
	}
	retryAt := s.Now().Add(time.Minute)
	if _, err := s.FinishRun(run.ID, "e1", RunOutcome{Status: RunRetrying, At: s.Now(), RetryAt: &retryAt}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishRun(run.ID, "e1", RunOutcome{Status: RunSucceeded, At: s.Now()}); !errors.Is(err, ErrRunLost) {
		t.Fatalf("finishing twice: %v", err)
	}
	if _, _, err := s.ClaimRun(f.ID, "e1", s.Now()); !errors.Is(err, ErrNotDue) {
		t.Fatalf("retry claimed before its time: %v", err)
	}
	c.Add(time.Minute)
	_, retry, err := s.ClaimRun(f.ID, "e2", s.Now())
	if err != nil {
		t.Fatal(err)
	}
	if retry.Trigger != TriggerRetry || retry.Attempt != 2 || *retry.PrevRunID != run.ID || retry.Checkpoint != "page=2" ||
		!retry.Occurrence.Equal(*run.Occurrence) {
		t.Fatalf("retry: %+v", retry)
	}
	prev, _ := s.GetRun(Scope{All: true}, run.ID)
	if prev.Status != RunFailed || prev.RowsRead != 7 || prev.Log != "read 7\n" {
		t.Fatalf("the retried attempt: %+v", prev)
	}
	if _, err := s.FinishRun(retry.ID, "e2", RunOutcome{Status: RunSucceeded, At: s.Now(), Counts: &RunCounts{RowsRead: 9, RowsNew: 3}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetFlow(Scope{All: true}, f.ID)
	if got.LastStatus != RunSucceeded || got.FailureStreak != 0 {
		t.Fatalf("flow after success: %+v", got)
	}

	page, err := s.ListRuns(Scope{Merchants: []string{"SHOP_SH"}}, RunFilter{FlowID: f.ID, Limit: 1})
	if err != nil || len(page.Rows) != 1 || page.Rows[0].ID != retry.ID || page.NextBefore == 0 {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page, _ = s.ListRuns(Scope{Merchants: []string{"SHOP_SH"}}, RunFilter{FlowID: f.ID, Before: page.NextBefore, Limit: 1})
	if len(page.Rows) != 1 || page.Rows[0].ID != run.ID || page.NextBefore != 0 {
		t.Fatalf("second page: %+v", page)
	}
	page, _ = s.ListRuns(Scope{All: true}, RunFilter{Status: RunFailed})
	if len(page.Rows) != 1 || page.Rows[0].ID != run.ID {
		t.Fatalf("failed runs: %+v", page)
	}
	if page, _ := s.ListRuns(Scope{Merchants: []string{"SHOP_BJ"}}, RunFilter{}); len(page.Rows) != 0 {
		t.Fatalf("runs outside scope: %+v", page.Rows)
	}
	if _, err := s.GetRun(Scope{Merchants: []string{"SHOP_BJ"}}, run.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run outside scope: %v", err)
	}
}

func TestFlowRunLogKeepsTheEnd(t *testing.T) {
	var b []byte
	for i := 0; len(b) < 3*MaxRunLog; i++ {
		b = append(b, "line of the run log, 第几行\n"...)
	}
	b = append(b, "the end\n"...)
	got := TrimRunLog(string(b))
	if len(got) > MaxRunLog || !strings.Contains(got, "the end\n") || got[:len(runLogDropped)] != runLogDropped {
		t.Fatalf("trimmed log: %d bytes, starts %q", len(got), got[:20])
	}
}
