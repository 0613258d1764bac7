package authn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	gwtestutil "github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// fakeShared is a failure table in a database the replicas share.
type fakeShared struct {
	mu     sync.Mutex
	shared bool
	err    error
	n      map[string]int
	start  map[string]time.Time
	calls  int
}

func newFakeShared() *fakeShared {
	return &fakeShared{shared: true, n: map[string]int{}, start: map[string]time.Time{}}
}

func (f *fakeShared) SharedFailures() bool { return f.shared }

func (f *fakeShared) CountFailure(_ context.Context, id string, window time.Duration, now time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	if s, ok := f.start[id]; !ok || now.Sub(s) > window {
		f.start[id], f.n[id] = now, 0
	}
	f.n[id]++
	return f.n[id], nil
}

func (f *fakeShared) ResetFailures(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return f.err
	}
	delete(f.n, id)
	delete(f.start, id)
	return nil
}

func (f *fakeShared) count(id string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.n[id] }
func (f *fakeShared) callCount() int      { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }
func (f *fakeShared) setErr(err error)    { f.mu.Lock(); f.err = err; f.mu.Unlock() }

// replicas are Authenticators over one user table and one shared failure
// counter: what several gatewayd on one database are to the login path.
type replicas struct {
	as     []*Authenticator
	users  *fakeUsers
	shared *fakeShared
	clock  *clock
}

func newReplicas(t *testing.T, n int, shared *fakeShared) *replicas {
	t.Helper()
	r := &replicas{users: newFakeUsers(), shared: shared, clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	cfg := Config{Hash: cheap, Lockout: LockoutPolicy{MaxFailures: 4, Window: time.Minute, Duration: 10 * time.Minute}}
	for range n {
		a, err := New(cfg, r.users, &fakeEvents{}, nil, WithClock(r.clock.now), WithFailureCounter(shared))
		if err != nil {
			t.Fatal(err)
		}
		r.as = append(r.as, a)
	}
	r.users.notify = func(c store.Change) {
		for _, a := range r.as {
			a.HandleChange(c)
		}
	}
	hash, err := hashPassword([]byte("correct horse"), cheap)
	if err != nil {
		t.Fatal(err)
	}
	r.users.add(&store.User{ID: "id-alice", Username: "alice", Email: "alice@example.test", State: store.StateActive,
		PasswordStatus: store.PasswordActive, PasswordAuthority: store.AuthorityLocal, DelegatedAuthority: store.AuthorityNone,
		PasswordHash: hash, PasswordVersion: 1})
	return r
}

func (r *replicas) login(i int, pw string) Result {
	return r.as[i].Login(context.Background(), Request{Protocol: ProtocolLDAP, Identifier: "alice", Password: secret.FromString(pw)})
}

func (r *replicas) locked() bool { return r.users.get("id-alice").Locked(r.clock.now()) }

// TestSharedLockoutAcrossReplicas: failed passwords spread over two
// replicas lock the account at max_failures in total, not per replica.
func TestSharedLockoutAcrossReplicas(t *testing.T) {
	r := newReplicas(t, 2, newFakeShared())
	for i, on := range []int{0, 1, 0} {
		if res := r.login(on, "wrong"); res.Reason != ReasonBadPassword {
			t.Fatalf("failure %d on replica %d: %q", i+1, on, res.Reason)
		}
		if r.locked() {
			t.Fatalf("locked after %d failures, want 4", i+1)
		}
	}
	if res := r.login(1, "wrong"); res.Reason != ReasonBadPassword {
		t.Fatalf("4th failure: %q", res.Reason)
	}
	if !r.locked() {
		t.Fatal("4 failures over two replicas did not lock (max_failures = 4 in total)")
	}
	for i := range r.as {
		if res := r.login(i, "correct horse"); res.Reason != ReasonLocked {
			t.Fatalf("replica %d let the locked account in: ok=%v %q", i, res.OK, res.Reason)
		}
	}
	if n := r.shared.count("id-alice"); n != 0 {
		t.Fatalf("the shared count is %d after the lock, want it reset", n)
	}
	for i, a := range r.as {
		if len(a.failures.m) != 0 {
			t.Fatalf("replica %d counted in memory though the shared count worked: %+v", i, a.failures.m)
		}
	}
}

// TestSharedLockoutResetOnSuccess: a success on one replica resets the
// count the other replica's failures built up.
func TestSharedLockoutResetOnSuccess(t *testing.T) {
	r := newReplicas(t, 2, newFakeShared())
	r.login(0, "wrong")
	r.login(0, "wrong")
	r.login(0, "wrong")
	if res := r.login(1, "correct horse"); !res.OK {
		t.Fatalf("login: %q", res.Reason)
	}
	gwtestutil.Eventually(t, 5*time.Second, func() bool { return r.shared.count("id-alice") == 0 }, "the shared count reset after a success")
	for i := range 3 {
		r.login(i%2, "wrong")
	}
	if r.locked() {
		t.Fatal("locked after 3 failures following a success")
	}
}

// TestSharedLockoutFallsBack: while the shared counter fails, failures are
// counted in each replica's memory (the lockout keeps working), the error
// is counted once per pause, and the shared counter is asked again after
// the pause.
func TestSharedLockoutFallsBack(t *testing.T) {
	shared := newFakeShared()
	r := newReplicas(t, 1, shared)
	a := r.as[0]
	shared.setErr(errors.New("connection refused"))
	for range 3 {
		r.login(0, "wrong")
	}
	if r.locked() {
		t.Fatal("locked early")
	}
	if got := testutil.ToFloat64(a.metrics.lockoutFallbacks); got != 3 {
		t.Fatalf("fallbacks %v, want 3", got)
	}
	if got := testutil.ToFloat64(a.metrics.sharedErrors.WithLabelValues("count")); got != 1 {
		t.Fatalf("count errors %v, want 1: after one the counter rests for %v", got, sharedPause)
	}
	r.login(0, "wrong")
	if !r.locked() {
		t.Fatal("4 failures did not lock while the shared count was down")
	}

	// The database is back: after the pause, failures go to it again.
	shared.setErr(nil)
	r.clock.advance(11 * time.Minute) // past the lock and the pause
	calls := shared.callCount()
	r.login(0, "wrong")
	if shared.callCount() == calls || shared.count("id-alice") != 1 {
		t.Fatalf("after the pause the shared counter was not asked (calls %d → %d, count %d)", calls, shared.callCount(), shared.count("id-alice"))
	}
}

// TestFailureCounterNotShared: a store that does not share its counts
// (the embedded one) leaves the lockout in memory.
func TestFailureCounterNotShared(t *testing.T) {
	shared := newFakeShared()
	shared.shared = false
	r := newReplicas(t, 1, shared)
	for range 4 {
		r.login(0, "wrong")
	}
	if !r.locked() || shared.callCount() != 0 {
		t.Fatalf("locked %v, shared counter calls %d; want locked in memory and no calls", r.locked(), shared.callCount())
	}
}
