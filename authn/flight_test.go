package authn

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	gtestutil "github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
)

// TestConcurrentFirstLogins: many logins of one user at once with an
// empty credential cache (a storm after a start) cost one argon2 verify
// when the password is right, and all succeed; wrong passwords are each
// verified and counted, also when they are the same wrong password.
func TestConcurrentFirstLogins(t *testing.T) {
	const n = 24
	tests := []struct {
		name       string
		pw         string
		wantOK     bool
		wantHashes float64
	}{
		{"right password", "correct horse", true, 1},
		{"same wrong password", "wrong", false, n},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{CacheTTL: 1e12, MaxConcurrentHashes: 1,
				Lockout: LockoutPolicy{MaxFailures: 1000, Window: 1e12, Duration: 1e12}})
			h.addUser(t, "alice", "correct horse", nil)
			// Hold the only hashing slot so every login has joined before
			// the first verify can run.
			h.a.hashSem <- struct{}{}
			var wg sync.WaitGroup
			results := make([]Result, n)
			for i := range n {
				wg.Go(func() {
					results[i] = h.a.Login(context.Background(), Request{Identifier: "alice", Password: secret.FromString(tc.pw),
						Protocol: ProtocolRADIUS, Source: netip.MustParseAddr("192.0.2.1")})
				})
			}
			gtestutil.Eventually(t, 5*time.Second, func() bool {
				h.a.flights.mu.Lock()
				defer h.a.flights.mu.Unlock()
				return len(h.a.flights.m) == 1
			}, "the first login leads a flight")
			// The others are waiting for it (right password) or for the slot.
			<-h.a.hashSem
			wg.Wait()
			for i, r := range results {
				if r.OK != tc.wantOK {
					t.Fatalf("login %d: ok=%v %q", i, r.OK, r.Reason)
				}
			}
			if got := testutil.ToFloat64(h.a.metrics.hashes); got != tc.wantHashes {
				t.Errorf("argon2 verifies: %v, want %v", got, tc.wantHashes)
			}
			if !tc.wantOK {
				if got := h.a.failures.m["id-alice"]; got == nil || got.n != n {
					t.Errorf("failures counted: %+v, want %d", got, n)
				}
			}
		})
	}
}
