package models

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestIdempotencyKeys(t *testing.T) {
	s := OpenTest(t)
	now := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	if got, err := s.BeginIdempotent(1, "k", "h1"); got != nil || err != nil {
		t.Fatalf("claim: %v %v", got, err)
	}
	if _, err := s.BeginIdempotent(1, "k", "h1"); !errors.Is(err, ErrIdempotencyInProgress) {
		t.Fatalf("while running: %v", err)
	}
	if _, err := s.BeginIdempotent(1, "k", "h2"); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("another request while running: %v", err)
	}
	if err := s.FinishIdempotent(1, "k", 201, []byte(`{"data":1}`), "/api/v1/transactions/1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.BeginIdempotent(1, "k", "h1")
	if err != nil || got == nil || got.Status != 201 || got.Body != `{"data":1}` || got.Location != "/api/v1/transactions/1" {
		t.Fatalf("replay: %+v %v", got, err)
	}
	if _, err := s.BeginIdempotent(1, "k", "h2"); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("another request: %v", err)
	}
	if got, err := s.BeginIdempotent(2, "k", "h2"); got != nil || err != nil {
		t.Fatalf("another token's key: %v %v", got, err)
	}
	// Abandoned claims free the key; so do stale ones and expiry.
	if err := s.AbandonIdempotent(2, "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.BeginIdempotent(2, "k", "h3"); got != nil || err != nil {
		t.Fatalf("after abandon: %v %v", got, err)
	}
	now = now.Add(idempotencyStale + time.Second)
	if got, err := s.BeginIdempotent(2, "k", "h4"); got != nil || err != nil {
		t.Fatalf("after a stale claim: %v %v", got, err)
	}
	now = now.Add(IdempotencyTTL)
	if got, err := s.BeginIdempotent(1, "k", "h2"); got != nil || err != nil {
		t.Fatalf("after expiry: %v %v", got, err)
	}
	if n, err := s.PurgeIdempotencyKeys(now.Add(IdempotencyTTL + time.Second)); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
}

// TestIdempotencyClaimRace: many requests claim one key at once; exactly
// one gets it (the unique key decides, on SQLite and MySQL alike).
func TestIdempotencyClaimRace(t *testing.T) {
	s := OpenTest(t)
	const n = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimed, busy := 0, 0
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, err := s.BeginIdempotent(7, "race", "h")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && got == nil:
				claimed++
			case errors.Is(err, ErrIdempotencyInProgress):
				busy++
			default:
				t.Errorf("claim: %v %v", got, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if claimed != 1 || busy != n-1 {
		t.Fatalf("%d claimed, %d in progress", claimed, busy)
	}
}
