package webhook

import (
	"math/rand/v2"
	"time"
)

// The retry schedule: the n-th retry waits a random time up to
// FirstRetry·2^(n-1), never more than MaxRetryDelay nor less than
// MinRetryDelay, and none starts later than GiveUpAfter after the first
// attempt.
const (
	FirstRetry    = 30 * time.Second
	MaxRetryDelay = time.Hour
	MinRetryDelay = time.Second
	GiveUpAfter   = 24 * time.Hour
)

// NextRetry returns how long to wait after the attempt-th failed attempt
// (1 for the first) before the next: "full jitter", a uniformly random
// duration up to min(MaxRetryDelay, FirstRetry·2^(attempt-1)), at least
// MinRetryDelay. The randomness spreads out the retries of many deliveries
// that failed together, so a receiver coming back up is not flooded. rnd may
// be nil (the shared generator).
func NextRetry(attempt int, rnd *rand.Rand) time.Duration {
	ceiling := FirstRetry
	for i := 1; i < attempt && ceiling < MaxRetryDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, MaxRetryDelay)
	var n int64
	if rnd != nil {
		n = rnd.Int64N(int64(ceiling)) + 1
	} else {
		n = rand.Int64N(int64(ceiling)) + 1
	}
	return max(time.Duration(n), MinRetryDelay)
}

// ShouldRetry reports whether a delivery first attempted at first may still
// be tried at now.
func ShouldRetry(first, now time.Time) bool {
	return now.Before(first.Add(GiveUpAfter))
}

// NextAt says when to try again after a, the attempt-th attempt of a
// delivery first attempted at first: NextRetry's delay (or the receiver's
// Retry-After when longer) after a ended, brought forward to the give-up
// horizon if it would fall after it. ok is false when a is not worth
// retrying or the horizon has passed: the delivery has failed for good.
func (a Attempt) NextAt(attempt int, first time.Time, rnd *rand.Rand) (at time.Time, ok bool) {
	end := a.Start.Add(a.Duration)
	if a.Outcome != Retry || !ShouldRetry(first, end) {
		return time.Time{}, false
	}
	at = end.Add(max(NextRetry(attempt, rnd), a.RetryAfter))
	if horizon := first.Add(GiveUpAfter); at.After(horizon) {
		at = horizon
	}
	return at, true
}
