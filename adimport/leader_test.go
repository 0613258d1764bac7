package adimport

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/delegation"
	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/store"
)

// fakeLeases is the lease table of a database shared by replicas; answer
// decides each HoldLease in turn (the last answer repeats).
type fakeLeases struct {
	mu      sync.Mutex
	answers []leaseAnswer
	calls   int
	names   map[string]bool
	ttls    map[time.Duration]bool
}

type leaseAnswer struct {
	ok  bool
	err error
}

func newFakeLeases(answers ...leaseAnswer) *fakeLeases {
	return &fakeLeases{answers: answers, names: map[string]bool{}, ttls: map[time.Duration]bool{}}
}

func (f *fakeLeases) HoldLease(_ context.Context, name string, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names[name], f.ttls[ttl] = true, true
	a := f.answers[min(f.calls, len(f.answers)-1)]
	f.calls++
	return a.ok, a.err
}

func (f *fakeLeases) callCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

var (
	lead    = leaseAnswer{ok: true}
	standby = leaseAnswer{}
	dbDown  = leaseAnswer{err: errors.New("connection refused")}
)

// leaseRunner is a runner over a real store whose DC refuses connections:
// a cycle that runs fails to read AD and records that it ran (LastRun);
// one that is skipped records nothing.
func leaseRunner(t *testing.T, interval time.Duration, leases Leases) (*Runner, *store.Store) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := Config{}
	cfg.Defaults()
	cfg.Enabled, cfg.Group, cfg.Interval = true, "gateway-users", interval
	dom := delegation.Domain{Name: "corp", Realm: "CORP.TEST", URLs: []string{"ldap://127.0.0.1:1"}, AllowInsecure: true,
		BindDN: "CN=svc,DC=corp,DC=test", ConnectTimeout: time.Second, Timeout: time.Second}
	r := New("corp", cfg, dom, st, slog.New(slog.DiscardHandler))
	r.Leases = leases
	return r, st
}

func ran(st *store.Store) bool {
	s, err := st.ADImportStateOf("corp")
	return err == nil && len(s.LastRun) > 0
}

func TestLeaseDecidesWhoRuns(t *testing.T) {
	tests := []struct {
		name     string
		answer   leaseAnswer
		dryRun   bool
		wantErr  error // nil: the cycle runs
		wantRole string
		calls    int
	}{
		{"leader runs the cycle", lead, false, nil, RoleLeader, 1},
		{"standby skips it", standby, false, ErrStandby, RoleStandby, 1},
		{"lease not to be had (database down): standby", dbDown, false, ErrStandby, RoleStandby, 1},
		{"a dry run writes nothing and needs no lease", standby, true, nil, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leases := newFakeLeases(tc.answer)
			r, st := leaseRunner(t, time.Minute, leases)
			res, err := r.Run(context.Background(), Options{DryRun: tc.dryRun})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Run: %v, want %v", err, tc.wantErr)
				}
				if ran(st) {
					t.Fatal("a standby recorded a cycle")
				}
			} else if err != nil || res == nil || res.Outcome != store.OutcomeFailure {
				// No DC answers, so a cycle that ran is a failed one.
				t.Fatalf("Run: %+v, %v; want the cycle to run (and fail to reach the DC)", res, err)
			}
			if !tc.dryRun && (tc.wantErr == nil) != ran(st) {
				t.Fatalf("cycle recorded: %v, want %v", ran(st), tc.wantErr == nil)
			}
			if got := r.Status().Role; got != tc.wantRole {
				t.Fatalf("role %q, want %q", got, tc.wantRole)
			}
			if n := leases.callCount(); n != tc.calls {
				t.Fatalf("%d lease calls, want %d", n, tc.calls)
			}
			if tc.calls > 0 && (!leases.names["ad-import/corp"] || !leases.ttls[3*time.Minute]) {
				t.Fatalf("leases asked %v for %v; want ad-import/corp for 3 intervals (3m)", leases.names, leases.ttls)
			}
		})
	}
}

// TestLoopStandbyThenLeader: the loop of a standby skips its cycles until
// the lease comes to it, then runs them.
func TestLoopStandbyThenLeader(t *testing.T) {
	leases := newFakeLeases(standby, standby, standby, lead)
	r, st := leaseRunner(t, 50*time.Millisecond, leases)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Loop(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 10*time.Second, func() bool { return r.Status().Role == RoleStandby }, "standby")
	if ran(st) {
		t.Fatal("a standby ran a cycle")
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return ran(st) && r.Status().Role == RoleLeader }, "leader, and a cycle run")
	if n := leases.callCount(); n < 4 {
		t.Fatalf("%d lease calls; the leader must have waited for the 4th", n)
	}
}

// TestKeepLease: a cycle keeps its lease renewed, and stops when the lease
// passes to another replica or cannot be renewed before it runs out.
func TestKeepLease(t *testing.T) {
	tests := []struct {
		name    string
		answers []leaseAnswer
		stops   bool
	}{
		{"renewed: the cycle goes on", []leaseAnswer{lead}, false},
		{"taken over: the cycle stops", []leaseAnswer{lead, standby}, true},
		{"database down until the lease runs out: the cycle stops", []leaseAnswer{dbDown}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leases := newFakeLeases(tc.answers...)
			r, _ := leaseRunner(t, 20*time.Millisecond, leases)
			ctx, stop := r.keepLease(context.Background())
			defer stop()
			if tc.stops {
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the cycle was not stopped")
				}
				if r.Status().Role != RoleStandby {
					t.Fatalf("role %q after losing the lease", r.Status().Role)
				}
				return
			}
			testutil.Eventually(t, 10*time.Second, func() bool { return leases.callCount() >= 5 }, "renewed during the cycle")
			if ctx.Err() != nil {
				t.Fatal("a renewed lease stopped the cycle")
			}
		})
	}
}
