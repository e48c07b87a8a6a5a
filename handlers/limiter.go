package handlers

import (
	"sync"
	"time"
)

// Limiter throttles failed sign-ins per client address: after Max failures
// within Window the address must wait until the oldest one ages out. It
// complements the per-account lockout, which alone would let one address try
// many accounts. It lives in memory: each process counts its own.
type Limiter struct {
	Max    int
	Window time.Duration
	Now    func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time
}

// NewLimiter returns a limiter allowing max failures per address per window.
func NewLimiter(max int, window time.Duration) *Limiter {
	return &Limiter{Max: max, Window: window, Now: time.Now, fails: map[string][]time.Time{}}
}

// Allow reports whether addr may try again, and if not, how long to wait.
func (l *Limiter) Allow(addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	recent := l.prune(addr, now)
	if len(recent) < l.Max {
		return true, 0
	}
	return false, recent[0].Add(l.Window).Sub(now)
}

// Fail counts one failed attempt from addr.
func (l *Limiter) Fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	l.fails[addr] = append(l.prune(addr, now), now)
	if len(l.fails) > 10000 { // keep memory bounded under a spray of addresses
		for a := range l.fails {
			l.prune(a, now)
		}
	}
}

func (l *Limiter) prune(addr string, now time.Time) []time.Time {
	ts := l.fails[addr]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.Window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, addr)
		return nil
	}
	l.fails[addr] = ts
	return ts
}
