package authn

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureTracker counts bad passwords per user within the lockout window.
// It lives in memory: a restart forgets partial counts, but a lock already
// reached is stored on the user and survives.
type failureTracker struct {
	mu sync.Mutex
	m  map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

func newFailureTracker() *failureTracker { return &failureTracker{m: make(map[string]*failWindow)} }

// fail records one failure and reports whether the user must now be locked.
func (f *failureTracker) fail(userID string, p LockoutPolicy, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.m[userID]
	if w == nil || now.Sub(w.start) > p.Window {
		w = &failWindow{start: now}
		f.m[userID] = w
	}
	w.n++
	if w.n >= p.MaxFailures {
		delete(f.m, userID)
		return true
	}
	if len(f.m) > 1<<16 {
		for id, x := range f.m {
			if now.Sub(x.start) > p.Window {
				delete(f.m, id)
			}
		}
	}
	return false
}

func (f *failureTracker) reset(userID string) {
	f.mu.Lock()
	delete(f.m, userID)
	f.mu.Unlock()
}

// sourceLimiter is a token bucket of failures per source address.
type sourceLimiter struct {
	mu sync.Mutex
	m  map[netip.Addr]*sourceBucket
}

type sourceBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newSourceLimiter() *sourceLimiter { return &sourceLimiter{m: make(map[netip.Addr]*sourceBucket)} }

// allow reports whether the source still has failure budget left. It does
// not spend any: only failures do.
func (s *sourceLimiter) allow(src netip.Addr, p RateLimitPolicy, now time.Time) bool {
	if p.FailuresPerSecond <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[src]
	if b == nil {
		return true
	}
	return b.lim.TokensAt(now) >= 1
}

func (s *sourceLimiter) charge(src netip.Addr, p RateLimitPolicy, now time.Time) {
	if p.FailuresPerSecond <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[src]
	if b == nil {
		burst := p.Burst
		if burst < 1 {
			burst = 1
		}
		b = &sourceBucket{lim: rate.NewLimiter(rate.Limit(p.FailuresPerSecond), burst)}
		s.m[src] = b
		if len(s.m) > 1<<16 {
			for a, x := range s.m {
				if now.Sub(x.seen) > time.Hour {
					delete(s.m, a)
				}
			}
		}
	}
	b.seen = now
	b.lim.AllowN(now, 1)
}
