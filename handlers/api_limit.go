package handlers

import (
	"sync"
	"time"
)

// RateLimiter allows each key (an API token's id) Rate requests per Per, in
// bursts of up to Rate: a token bucket per key that refills continuously.
// It lives in memory: each process counts its own.
type RateLimiter struct {
	Rate int
	Per  time.Duration
	Now  func() time.Time

	mu      sync.Mutex
	buckets map[uint64]*rateBucket
}

type rateBucket struct {
	tokens float64
	at     time.Time
}

// NewRateLimiter allows rate requests per per for each key.
func NewRateLimiter(rate int, per time.Duration) *RateLimiter {
	return &RateLimiter{Rate: rate, Per: per, Now: time.Now, buckets: map[uint64]*rateBucket{}}
}

// Allow takes one request from key's bucket; when it is empty it reports
// how long until one is free.
func (l *RateLimiter) Allow(key uint64) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	perSecond := float64(l.Rate) / l.Per.Seconds()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= 10000 { // keep memory bounded: full buckets carry no state
			for k, old := range l.buckets {
				if old.tokens+now.Sub(old.at).Seconds()*perSecond >= float64(l.Rate) {
					delete(l.buckets, k)
				}
			}
		}
		b = &rateBucket{tokens: float64(l.Rate), at: now}
		l.buckets[key] = b
	}
	b.tokens = min(float64(l.Rate), b.tokens+now.Sub(b.at).Seconds()*perSecond)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
}
