package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// setClock is a clock the test moves by hand.
type setClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *setClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *setClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestClaimJob(t *testing.T) {
	ctx := context.Background()
	clk := &setClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newStore(t, Options{Now: clk.Now})

	release, err := s.ClaimJob(ctx, "m365/u-1", time.Minute)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if _, err := s.ClaimJob(ctx, "m365/u-1", time.Minute); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second claim of a held key: %v, want ErrClaimed", err)
	}
	other, err := s.ClaimJob(ctx, "m365/u-2", time.Minute)
	if err != nil {
		t.Fatalf("a claim of another key must not wait for the first: %v", err)
	}
	other()

	release()
	release() // idempotent
	again, err := s.ClaimJob(ctx, "m365/u-1", time.Minute)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}

	// Expiry: the holder that ran out loses the key, and its late release
	// must not free the claim of the one that took it over.
	clk.add(time.Minute)
	takeover, err := s.ClaimJob(ctx, "m365/u-1", time.Minute)
	if err != nil {
		t.Fatalf("claim after the lease ran out: %v", err)
	}
	again() // the expired holder's release
	if _, err := s.ClaimJob(ctx, "m365/u-1", time.Minute); !errors.Is(err, ErrClaimed) {
		t.Fatalf("an expired holder's release freed the new holder's claim: %v", err)
	}
	takeover()
	if r, err := s.ClaimJob(ctx, "m365/u-1", time.Minute); err != nil {
		t.Fatalf("claim after the new holder released: %v", err)
	} else {
		r()
	}
}

func TestClaimJobRefuses(t *testing.T) {
	s := newStore(t, Options{})
	tests := []struct {
		name string
		ctx  func() context.Context
		ttl  time.Duration
		want error
	}{
		{"zero lease", context.Background, 0, ErrInvalid},
		{"negative lease", context.Background, -time.Second, ErrInvalid},
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, time.Minute, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.ClaimJob(tc.ctx(), "k", tc.ttl); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// None of those took the key.
	r, err := s.ClaimJob(context.Background(), "k", time.Minute)
	if err != nil {
		t.Fatalf("a refused claim held the key: %v", err)
	}
	r()
}

// TestClaimJobConcurrent: of many holders racing for one key, one wins
// each round; nobody else gets it until it is released.
func TestClaimJobConcurrent(t *testing.T) {
	s := newStore(t, Options{})
	const racers = 16
	var mu sync.Mutex
	holding, maxHolding, won := 0, 0, 0
	var wg sync.WaitGroup
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				release, err := s.ClaimJob(context.Background(), "m365/u-1", time.Hour)
				if errors.Is(err, ErrClaimed) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				holding++
				won++
				maxHolding = max(maxHolding, holding)
				holding--
				mu.Unlock()
				release()
			}
		}()
	}
	wg.Wait()
	if maxHolding != 1 || won == 0 {
		t.Fatalf("held by %d at once (want 1), %d claims won (want some)", maxHolding, won)
	}
}

func TestHoldLeaseEmbedded(t *testing.T) {
	s := newStore(t, Options{})
	for i := range 3 {
		ok, err := s.HoldLease(context.Background(), "ad-import/corp", time.Minute)
		if err != nil || !ok {
			t.Fatalf("renewal %d: %v, %v; the one process is always the leader", i, ok, err)
		}
	}
	if _, err := s.HoldLease(context.Background(), "ad-import/corp", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero ttl: %v, want ErrInvalid", err)
	}
}

func TestCountFailure(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	if s.SharedFailures() {
		t.Fatal("the embedded store does not share failure counts")
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	steps := []struct {
		user  string
		at    time.Duration // after t0
		reset bool
		want  int
	}{
		{"u-1", 0, false, 1},
		{"u-1", time.Minute, false, 2},
		{"u-2", time.Minute, false, 1}, // counted apart
		{"u-1", 10 * time.Minute, false, 3},
		{"u-1", 10*time.Minute + time.Second, false, 1}, // past the window from the first failure
		{"u-1", 11 * time.Minute, false, 2},
		{"u-1", 11 * time.Minute, true, 0},
		{"u-1", 11 * time.Minute, false, 1},
		{"u-2", 2 * time.Minute, false, 2},
	}
	for i, st := range steps {
		if st.reset {
			if err := s.ResetFailures(ctx, st.user); err != nil {
				t.Fatalf("step %d: reset: %v", i, err)
			}
			continue
		}
		n, err := s.CountFailure(ctx, st.user, 10*time.Minute, t0.Add(st.at))
		if err != nil || n != st.want {
			t.Fatalf("step %d (%s at +%v): %d, %v; want %d", i, st.user, st.at, n, err, st.want)
		}
	}
	if _, err := s.CountFailure(ctx, "u-1", 0, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero window: %v, want ErrInvalid", err)
	}
}

// TestCoordPerStore: two stores in one process do not share claims.
func TestCoordPerStore(t *testing.T) {
	a, b := newStore(t, Options{}), newStore(t, Options{})
	ra, err := a.ClaimJob(context.Background(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer ra()
	rb, err := b.ClaimJob(context.Background(), "k", time.Minute)
	if err != nil {
		t.Fatalf("a claim in one store blocked another store: %v", err)
	}
	rb()
}
