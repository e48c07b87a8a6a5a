package webhook_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"payfuse/flows/webhook"
)

func TestNextRetryBackoff(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	ceilings := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, ceiling := range ceilings {
		attempt := i + 1
		lo, hi := time.Duration(1<<62), time.Duration(0)
		var sum time.Duration
		const n = 2000
		for range n {
			d := webhook.NextRetry(attempt, rnd)
			if d < webhook.MinRetryDelay || d > ceiling {
				t.Fatalf("NextRetry(%d) = %s, outside [%s, %s]", attempt, d, webhook.MinRetryDelay, ceiling)
			}
			lo, hi, sum = min(lo, d), max(hi, d), sum+d
		}
		// Full jitter: the delays spread over the whole range, centred on half the ceiling.
		if lo > ceiling/10 || hi < ceiling*9/10 {
			t.Errorf("attempt %d: delays from %s to %s do not spread over [0, %s]", attempt, lo, hi, ceiling)
		}
		if mean := sum / n; mean < ceiling*4/10 || mean > ceiling*6/10 {
			t.Errorf("attempt %d: mean delay %s, want about %s", attempt, mean, ceiling/2)
		}
	}
	for _, attempt := range []int{-3, 0, 64, 1 << 30} {
		if d := webhook.NextRetry(attempt, nil); d < webhook.MinRetryDelay || d > webhook.MaxRetryDelay {
			t.Errorf("NextRetry(%d, nil) = %s", attempt, d)
		}
	}
}

func TestGiveUpAfter24h(t *testing.T) {
	first := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
	horizon := first.Add(webhook.GiveUpAfter)
	if webhook.GiveUpAfter != 24*time.Hour {
		t.Fatalf("GiveUpAfter = %s", webhook.GiveUpAfter)
	}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{first, true}, {first.Add(23*time.Hour + 59*time.Minute), true}, {horizon, false}, {horizon.Add(time.Hour), false},
	} {
		if got := webhook.ShouldRetry(first, tc.now); got != tc.want {
			t.Errorf("ShouldRetry(first, first+%s) = %v", tc.now.Sub(first), got)
		}
	}

	// A receiver that is down for good: retries go on, ever further apart,
	// and stop at the horizon.
	rnd := rand.New(rand.NewPCG(3, 4))
	a := webhook.Attempt{Start: first, Duration: 2 * time.Second, Outcome: webhook.Retry}
	attempts := 1
	var last time.Time
	for {
		at, ok := a.NextAt(attempts, first, rnd)
		if !ok {
			break
		}
		if !at.After(a.Start) || at.After(horizon) {
			t.Fatalf("attempt %d scheduled at first+%s", attempts+1, at.Sub(first))
		}
		last = at
		a.Start = at
		attempts++
		if attempts > 1000 {
			t.Fatal("the retries never stop")
		}
	}
	if attempts < 20 || attempts > 200 || last.Before(horizon.Add(-2*webhook.MaxRetryDelay)) {
		t.Errorf("%d attempts, the last at first+%s; want a few dozen spread over 24 h", attempts, last.Sub(first))
	}

	for _, o := range []webhook.Outcome{webhook.Delivered, webhook.Failed} {
		if _, ok := (webhook.Attempt{Start: first, Outcome: o}).NextAt(1, first, rnd); ok {
			t.Errorf("an attempt that %s is scheduled again", o)
		}
	}
	// The receiver's Retry-After wins when it asks for longer.
	a = webhook.Attempt{Start: first, Outcome: webhook.Retry, RetryAfter: 50 * time.Minute}
	if at, ok := a.NextAt(1, first, rnd); !ok || at.Before(first.Add(50*time.Minute)) {
		t.Errorf("Retry-After of 50 min: next at first+%s", at.Sub(first))
	}
	// Near the horizon the last retry is brought forward to it.
	a = webhook.Attempt{Start: horizon.Add(-time.Second), Outcome: webhook.Retry}
	if at, ok := a.NextAt(40, first, rnd); !ok || at.After(horizon) {
		t.Errorf("a retry a second before the horizon: %v at first+%s", ok, at.Sub(first))
	}
}
