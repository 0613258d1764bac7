package authn

import (
	"net/netip"
	"strings"
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

// limitKey is what a failure budget is kept for: the client address,
// and for a RADIUS request, which user behind that NAS it is for (see
// budgetKey).
type limitKey struct {
	addr netip.Addr
	sub  string
}

// budgetKey keys req's failure budget. An LDAP, portal or admin client
// is its TCP peer. A RADIUS source is a NAS (a WiFi controller, a VPN
// concentrator) that carries many users, so its budget is split: by the
// Calling-Station-Id when the NAS sends one (the device guessing), else
// by the name tried. Guessing one user's password through a NAS is still
// bounded by the lockout; spraying many names from one device by the
// device's budget.
func budgetKey(req Request) limitKey {
	k := limitKey{addr: req.Source}
	if req.Protocol != ProtocolRADIUS {
		return k
	}
	if st := strings.TrimSpace(req.Station); st != "" {
		k.sub = "station:" + strings.ToLower(st)
	} else {
		k.sub = "name:" + strings.ToLower(strings.TrimSpace(req.Identifier))
	}
	return k
}

// sourceLimiter is a token bucket of failures per budget key.
type sourceLimiter struct {
	mu sync.Mutex
	m  map[limitKey]*sourceBucket
}

type sourceBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newSourceLimiter() *sourceLimiter { return &sourceLimiter{m: make(map[limitKey]*sourceBucket)} }

// allow reports whether the source still has failure budget left. It does
// not spend any: only failures do.
func (s *sourceLimiter) allow(src limitKey, p RateLimitPolicy, now time.Time) bool {
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

func (s *sourceLimiter) charge(src limitKey, p RateLimitPolicy, now time.Time) {
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
