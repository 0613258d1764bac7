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

// limitKey is what a failure budget is kept for. source is the client
// address and, for a RADIUS request that names its device, that device
// (see sourceOf); name is the login name tried, lower-cased, or empty for
// the source's own ceiling.
type limitKey struct {
	addr    netip.Addr
	station string
	name    string
}

// maxNameKey bounds the login name kept in a budget key, so a client
// typing megabyte names cannot make the map hold them.
const maxNameKey = 128

// sourceOf is req's source for the failure budget. An LDAP, portal or
// admin client is its TCP peer. A RADIUS source is a NAS (a WiFi
// controller, a VPN concentrator) that carries many users; when the NAS
// sends a Calling-Station-Id, the device behind it is the source (compared
// case-insensitively). Without one the NAS itself is the source, so its
// ceiling is the per-NAS ceiling.
func sourceOf(req Request) limitKey {
	k := limitKey{addr: req.Source}
	if req.Protocol == ProtocolRADIUS {
		if st := strings.TrimSpace(req.Station); st != "" {
			k.station = strings.ToLower(truncate(st, maxNameKey))
		}
	}
	return k
}

// nameKey is req's (source, login name) budget key.
func nameKey(src limitKey, req Request) limitKey {
	src.name = strings.ToLower(truncate(strings.TrimSpace(req.Identifier), maxNameKey))
	return src
}

// budget holds the two token buckets of failed logins: one per (source,
// login name), so one guesser spends only the budget of the name it
// guesses, and a much larger ceiling per source, so a source spraying
// many names is stopped too. Refusals of a locked account spend only the
// (source, name) budget: they cost no hash, and charging the ceiling
// would let one locked account's guesser refuse everyone at that source.
type budget struct {
	mu     sync.Mutex
	byName limiterMap
	bySrc  limiterMap
}

func newBudget() *budget {
	return &budget{byName: limiterMap{m: make(map[limitKey]*rate.Limiter)}, bySrc: limiterMap{m: make(map[limitKey]*rate.Limiter)}}
}

// allow reports whether req's source and name both have failure budget
// left. It spends none: only failures do.
func (b *budget) allow(req Request, p RateLimitPolicy, now time.Time) bool {
	if !req.Source.IsValid() || (p.FailuresPerSecond <= 0 && p.SourceFailuresPerSecond <= 0) {
		return true
	}
	src := sourceOf(req)
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.SourceFailuresPerSecond > 0 && !b.bySrc.allow(src, now) {
		return false
	}
	return p.FailuresPerSecond <= 0 || b.byName.allow(nameKey(src, req), now)
}

// charge spends one failure of req's (source, name) budget and, with
// ceiling set, one of its source's ceiling.
func (b *budget) charge(req Request, p RateLimitPolicy, ceiling bool, now time.Time) {
	if !req.Source.IsValid() {
		return
	}
	src := sourceOf(req)
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.FailuresPerSecond > 0 {
		b.byName.spend(nameKey(src, req), p.FailuresPerSecond, p.Burst, now)
	}
	if ceiling && p.SourceFailuresPerSecond > 0 {
		b.bySrc.spend(src, p.SourceFailuresPerSecond, p.SourceBurst, now)
	}
}

// limiterMap is a token bucket per key; guarded by budget.mu.
type limiterMap struct {
	m map[limitKey]*rate.Limiter
}

// maxBuckets bounds each map. A bucket that has refilled to its burst
// says nothing a missing bucket would not, so those go first; if the
// map is still full (a spray of fresh keys), arbitrary ones go, which
// at worst gives those keys a fresh budget early.
const maxBuckets = 1 << 16

func (l *limiterMap) allow(k limitKey, now time.Time) bool {
	lim := l.m[k]
	return lim == nil || lim.TokensAt(now) >= 1
}

func (l *limiterMap) spend(k limitKey, perSecond float64, burst int, now time.Time) {
	lim := l.m[k]
	if lim == nil {
		if len(l.m) >= maxBuckets {
			l.prune(now)
		}
		lim = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
		l.m[k] = lim
	} else if lim.Limit() != rate.Limit(perSecond) || lim.Burst() != max(burst, 1) {
		// SIGHUP changed the policy: the bucket keeps its tokens.
		lim.SetLimitAt(now, rate.Limit(perSecond))
		lim.SetBurstAt(now, max(burst, 1))
	}
	lim.AllowN(now, 1)
}

func (l *limiterMap) prune(now time.Time) {
	for k, lim := range l.m {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) <= maxBuckets*3/4 {
			break
		}
		delete(l.m, k)
	}
}

func (l *limiterMap) len() int { return len(l.m) }
