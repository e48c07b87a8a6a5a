package models

import (
	"errors"
	"testing"
	"time"

	"payfuse/channels"
)

// reconDay builds a hand-made business day (2026-03-05, Beijing) with one
// record in every bucket, the notification side first:
//
//	P1 + refund R1: both sources agree                 → matched (2)
//	P2: notified 100.00, statement 90.00              → amount_mismatch
//	P3: notified closed, statement succeeded           → status_mismatch
//	P4: notified succeeded, not in the statement       → missing_in_statement
//	P5: only in the statement                          → only_in_statement
//	P6: notified pending (never paid), not in it       → matched
//
// plus P7 on the next day, which the day must not count.
func reconDay(t *testing.T) (*Store, *ChannelAccount, string) {
	t.Helper()
	s, acct, mch := ledgerFixture(t)
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, bj)
	closed := pay("P3", mch, 10000, channels.StatusClosed, at)
	closed.PaidAt = time.Time{}
	pending := pay("P6", mch, 10000, channels.StatusPending, at)
	pending.PaidAt = time.Time{}
	notified := []channels.Record{
		pay("P1", mch, 10000, channels.StatusSucceeded, at),
		refund("R1", "P1", mch, 3000, at.Add(time.Hour)),
		pay("P2", mch, 10000, channels.StatusSucceeded, at),
		closed,
		pay("P4", mch, 10000, channels.StatusSucceeded, at),
		pending,
		pay("P7", mch, 10000, channels.StatusSucceeded, at.Add(24*time.Hour)),
	}
	if _, err := s.Ingest(web, acct.ID, SourceNotification, notified); err != nil {
		t.Fatal(err)
	}
	return s, acct, mch
}

func reconStatement(mch string) StatementFile {
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, bj)
	return statement("bill-0305.csv",
		pay("P1", mch, 10000, channels.StatusSucceeded, at),
		refund("R1", "P1", mch, 3000, at.Add(time.Hour)),
		pay("P2", mch, 9000, channels.StatusSucceeded, at),
		pay("P3", mch, 10000, channels.StatusSucceeded, at),
		pay("P5", mch, 5000, channels.StatusSucceeded, at),
	)
}

func wantCounts(t *testing.T, d *ReconDay, status string, counts ...int) {
	t.Helper()
	got := []int{d.Matched, d.AmountMismatch, d.StatusMismatch, d.MissingInStatement, d.OnlyInStatement, d.Open}
	for i := range counts {
		if got[i] != counts[i] {
			t.Fatalf("day %s: matched, amount, status, missing, only, open = %v, want %v", d.BizDate, got, counts)
		}
	}
	if d.Status != status {
		t.Fatalf("day status %q, want %q", d.Status, status)
	}
}

func TestReconcileEveryBucket(t *testing.T) {
	s, acct, mch := reconDay(t)
	all := Scope{All: true}

	// Before the statement: counted, but nothing to resolve yet.
	d, err := s.Reconcile(web, all, acct.ID, "2026-03-05")
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, d, ReconNoStatement, 2, 0, 0, 4, 0, 0)
	if items, _ := s.ListReconItems(all, d.ID, ReconItemFilter{}); len(items) != 0 {
		t.Fatalf("%d items opened without a statement", len(items))
	}

	if res, err := s.ImportStatement(web, acct.ID, reconStatement(mch)); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	d, err = s.Reconcile(web, all, acct.ID, "2026-03-05")
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, d, ReconOpen, 3, 1, 1, 1, 1, 4)
	if d.MatchedAmount != 10000+3000+10000 {
		t.Errorf("matched amount %d", d.MatchedAmount)
	}
	items, err := s.ListReconItems(all, d.ID, ReconItemFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]ReconItem{}
	for _, it := range items {
		byRef[it.ChannelRef] = it
	}
	want := map[string]string{"P2": BucketAmountMismatch, "P3": BucketStatusMismatch, "P4": BucketMissingInStatement, "P5": BucketOnlyInStatement}
	if len(byRef) != len(want) {
		t.Fatalf("items %+v", items)
	}
	for ref, b := range want {
		if byRef[ref].Bucket != b {
			t.Errorf("%s in %q, want %q", ref, byRef[ref].Bucket, b)
		}
	}
	if it := byRef["P2"]; deref(it.StatementAmount) != 9000 || deref(it.OtherAmount) != 10000 || it.OtherSources != SourceNotification {
		t.Errorf("amount mismatch shows %+v", it)
	}
	if it := byRef["P4"]; it.StatementAmount != nil || it.OtherStatus != channels.StatusSucceeded {
		t.Errorf("missing item shows %+v", it)
	}
	if it := byRef["P5"]; it.OtherAmount != nil || deref(it.StatementAmount) != 5000 {
		t.Errorf("only-in-statement item shows %+v", it)
	}
	if d.OpenAmount != 10000+10000+10000+5000 {
		t.Errorf("open amount %d", d.OpenAmount)
	}

	// Bad resolutions change nothing.
	var fe FieldErrors
	if _, err := s.ResolveReconItem(web, all, byRef["P2"].ID, ReconcileInput{Resolution: "because"}); !errors.As(err, &fe) || fe["resolution"] == "" {
		t.Errorf("unknown resolution: %v", err)
	}
	if _, err := s.ResolveReconItem(web, all, byRef["P2"].ID, ReconcileInput{Resolution: "other"}); !errors.As(err, &fe) || fe["note"] == "" {
		t.Errorf("other without a note: %v", err)
	}
	// Out of scope: not found.
	if _, err := s.ResolveReconItem(web, Scope{Merchants: []string{"SHOP_GZ"}}, byRef["P2"].ID, ReconcileInput{Resolution: "written_off"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve out of scope: %v", err)
	}
	if _, err := s.Reconcile(web, Scope{Merchants: []string{"SHOP_GZ"}}, acct.ID, "2026-03-05"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reconcile out of scope: %v", err)
	}

	// Resolve all but one; the day stays open; resolutions survive a re-run.
	for _, ref := range []string{"P2", "P3", "P5"} {
		if _, err := s.ResolveReconItem(web, all, byRef[ref].ID, ReconcileInput{Resolution: "channel_corrected", Note: "ticket 42"}); err != nil {
			t.Fatal(err)
		}
	}
	d, _ = s.GetReconDay(all, d.ID)
	wantCounts(t, d, ReconOpen, 3, 1, 1, 1, 1, 1)
	if d.OpenAmount != 10000 {
		t.Errorf("open amount after resolving %d", d.OpenAmount)
	}
	d, _ = s.Reconcile(web, all, acct.ID, "2026-03-05")
	wantCounts(t, d, ReconOpen, 3, 1, 1, 1, 1, 1)
	if it, _ := s.GetReconItem(all, byRef["P2"].ID); !it.Resolved || it.Resolution != "channel_corrected" || it.Note != "ticket 42" || it.ResolvedBy != web.Name {
		t.Errorf("resolution lost on re-run: %+v", it)
	}

	// A late statement row for P4: it matches, and its item goes.
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, bj)
	if _, err := s.ImportStatement(web, acct.ID, statement("late.csv", pay("P4", mch, 10000, channels.StatusSucceeded, at))); err != nil {
		t.Fatal(err)
	}
	d, _ = s.Reconcile(web, all, acct.ID, "2026-03-05")
	wantCounts(t, d, ReconBalanced, 4, 1, 1, 0, 1, 0)
	if _, err := s.GetReconItem(all, byRef["P4"].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the matched item is still listed: %v", err)
	}

	// Every run and resolution is audited.
	var runs, resolves int64
	s.DB.Model(&AuditLog{}).Where("action = ?", ActReconRun).Count(&runs)
	s.DB.Model(&AuditLog{}).Where("action = ?", ActReconResolve).Count(&resolves)
	if runs != 4 || resolves != 3 {
		t.Errorf("audited %d runs and %d resolutions", runs, resolves)
	}
}

func TestReconcileReopensWhenTheFactsChange(t *testing.T) {
	s, acct, mch := reconDay(t)
	all := Scope{All: true}
	if _, err := s.ImportStatement(web, acct.ID, reconStatement(mch)); err != nil {
		t.Fatal(err)
	}
	d, _ := s.Reconcile(web, all, acct.ID, "2026-03-05")
	items, _ := s.ListReconItems(all, d.ID, ReconItemFilter{Bucket: BucketAmountMismatch})
	if len(items) != 1 {
		t.Fatalf("%+v", items)
	}
	if _, err := s.ResolveReconItem(web, all, items[0].ID, ReconcileInput{Resolution: "written_off", Note: "10 fen"}); err != nil {
		t.Fatal(err)
	}
	// The channel sends a corrected notification with yet another amount.
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, bj)
	if _, err := s.Ingest(web, acct.ID, SourceNotification, []channels.Record{pay("P2", mch, 9500, channels.StatusSucceeded, at)}); err != nil {
		t.Fatal(err)
	}
	d, _ = s.Reconcile(web, all, acct.ID, "2026-03-05")
	it, err := s.GetReconItem(all, items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Resolved || deref(it.OtherAmount) != 9500 {
		t.Errorf("changed facts kept the old resolution: %+v", it)
	}
	if d.Open != 4 {
		t.Errorf("%d open after the reopen", d.Open)
	}
}

func TestReconcileRefusesABadDate(t *testing.T) {
	s, acct, _ := ledgerFixture(t)
	for _, date := range []string{"", "2026-3-5", "2026-02-30", "yesterday"} {
		var fe FieldErrors
		if _, err := s.Reconcile(web, Scope{All: true}, acct.ID, date); !errors.As(err, &fe) || fe["date"] == "" {
			t.Errorf("date %q: %v", date, err)
		}
	}
	var n int64
	s.DB.Model(&ReconDay{}).Count(&n)
	if n != 0 {
		t.Errorf("%d days recorded by refused runs", n)
	}
}

// TestEmptyStatementDay: the channel says it has no bill for the day, so
// what a notification said succeeded is missing from it.
func TestEmptyStatementDay(t *testing.T) {
	s, acct, _ := reconDay(t)
	all := Scope{All: true}
	d, err := s.RecordEmptyStatement(web, acct.ID, "2026-03-05")
	if err != nil {
		t.Fatal(err)
	}
	if !d.HasStatement || !d.EmptyStatement || d.Status != ReconOpen || d.MissingInStatement != 4 || d.Open != 4 {
		t.Fatalf("empty day: %+v", d)
	}
	// Re-running keeps the channel's word.
	d, _ = s.Reconcile(web, all, acct.ID, "2026-03-05")
	if !d.EmptyStatement || d.Open != 4 {
		t.Errorf("re-run forgot the empty day: %+v", d)
	}
	if _, err := s.RecordEmptyStatement(web, acct.ID, "2026-3-5"); err == nil {
		t.Error("a bad date was taken")
	}
}
