package store

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Coordination between replicas (issue 16): the claim on one unit of sync
// work, the leader lease of a loop that must run on one replica, and the
// failed-password counts of the lockout. The embedded (bbolt) store is one
// process, so each is kept in that process's memory: a claim still keeps
// two holders in the process apart, a lease is always this process's, and
// failures are counted as authn's own tracker counts them. A backend
// shared by several replicas keeps them in the database instead.

// ErrClaimed: another replica (or another holder in this process) holds
// the claim or lease. Retry later; it is not a failure of the store.
var ErrClaimed = errors.New("store: another holder has the claim; try again when it is released or runs out")

// coordState is the embedded store's coordination state, made on first
// use.
type coordState struct {
	mu       sync.Mutex
	claims   map[string]heldClaim
	seq      uint64
	failures map[string]failCount
}

type heldClaim struct {
	token   uint64 // tells this claim from a later one of the same key
	expires time.Time
}

type failCount struct {
	start   time.Time // the window's first failure
	expires time.Time // start + the window it was counted with
	n       int
}

// maxFailCounts bounds the in-process failure map; past it, windows that
// have ended are dropped.
const maxFailCounts = 1 << 16

func (s *Store) coord() *coordState {
	s.coordOnce.Do(func() {
		s.coordSt = &coordState{claims: map[string]heldClaim{}, failures: map[string]failCount{}}
	})
	return s.coordSt
}

// coordClock is the clock claims and counts are measured with: the
// store's (Options.Now), unstripped so that time.Now's monotonic reading
// keeps expiry right across wall-clock steps.
func (s *Store) coordClock() time.Time {
	if s.clock == nil {
		return time.Now()
	}
	return s.clock()
}

// ClaimJob takes the claim on one unit of sync work (key, e.g.
// "entra/u-123") for ttl, so that across replicas only one runs it at a
// time. When it returns nil, the store's view already holds every write
// committed (on any replica) before the claim was taken, so the caller
// decides on current state. release ends the claim early; it is
// idempotent, and once the claim ran out it does not touch a later
// holder's claim. ErrClaimed when another holder has it.
//
// The embedded store is one process: its claims are kept in memory, a
// second claim of a held key gets ErrClaimed until release or expiry, and
// its view holds every commit by the time the commit returned.
func (s *Store) ClaimJob(ctx context.Context, key string, ttl time.Duration) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, invalidf("claim of %q: the lease must be positive, got %v", key, ttl)
	}
	if s.pg != nil {
		return s.pgClaimJob(ctx, key, ttl)
	}
	c := s.coord()
	now := s.coordClock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.claims[key]; ok && now.Before(h.expires) {
		return nil, ErrClaimed
	}
	c.seq++
	token := c.seq
	c.claims[key] = heldClaim{token: token, expires: now.Add(ttl)}
	if len(c.claims) > maxFailCounts {
		for k, h := range c.claims {
			if !now.Before(h.expires) {
				delete(c.claims, k)
			}
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			if h, ok := c.claims[key]; ok && h.token == token {
				delete(c.claims, key)
			}
			c.mu.Unlock()
		})
	}, nil
}

// HoldLease takes or renews the named leader lease (e.g.
// "ad-import/corp") for ttl; false when another replica holds it. The
// holder calls it again well before ttl runs out to keep the lease.
//
// The embedded store is one process, always the leader: true.
func (s *Store) HoldLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, invalidf("lease %q: the lease must be positive, got %v", name, ttl)
	}
	if s.pg != nil {
		return s.pgHoldLease(ctx, name, ttl)
	}
	return true, nil
}

// SharedFailures reports whether failure counts are kept across replicas
// (false for the embedded store: authn then counts in its own memory,
// and CountFailure and ResetFailures are not needed).
func (s *Store) SharedFailures() bool { return s.pg != nil }

// CountFailure adds one failed password for userID in the window starting
// at its first failure and returns the count in the window. A failure
// more than window after that first one starts a new window (count 1).
//
// The embedded store counts in memory: a restart forgets partial counts
// (a lock already reached is on the user and survives).
func (s *Store) CountFailure(ctx context.Context, userID string, window time.Duration, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if window <= 0 {
		return 0, invalidf("failure count of %s: the window must be positive, got %v", userID, window)
	}
	if s.pg != nil {
		return s.pgCountFailure(ctx, userID, window, now)
	}
	c := s.coord()
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.failures[userID]
	if !ok || now.Sub(f.start) > window {
		f = failCount{start: now, expires: now.Add(window)}
	}
	f.n++
	c.failures[userID] = f
	if len(c.failures) > maxFailCounts {
		for id, x := range c.failures {
			if now.After(x.expires) {
				delete(c.failures, id)
			}
		}
	}
	return f.n, nil
}

// ResetFailures forgets userID's count (a successful login, a lock
// reached, an admin unlock, the user deleted).
func (s *Store) ResetFailures(ctx context.Context, userID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.pg != nil {
		return s.pgResetFailures(ctx, userID)
	}
	c := s.coord()
	c.mu.Lock()
	delete(c.failures, userID)
	c.mu.Unlock()
	return nil
}
