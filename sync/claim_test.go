package sync_test

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

// fakeClaimer is the claim table of a database shared by replicas: one
// holder per key. down makes every claim fail as an unreachable database.
type fakeClaimer struct {
	mu      gosync.Mutex
	held    map[string]bool
	down    error
	refused int
	errs    int
	keys    map[string]int // granted, by key
	ttls    map[time.Duration]bool
}

func newFakeClaimer() *fakeClaimer {
	return &fakeClaimer{held: map[string]bool{}, keys: map[string]int{}, ttls: map[time.Duration]bool{}}
}

func (f *fakeClaimer) ClaimJob(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ttls[ttl] = true
	if f.down != nil {
		f.errs++
		return nil, f.down
	}
	if f.held[key] {
		f.refused++
		return nil, store.ErrClaimed
	}
	f.held[key] = true
	f.keys[key]++
	var once gosync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.held, key)
			f.mu.Unlock()
		})
	}, nil
}

// hold takes key as another replica would.
func (f *fakeClaimer) hold(t *testing.T, key string) func() {
	t.Helper()
	release, err := f.ClaimJob(context.Background(), key, time.Minute)
	if err != nil {
		t.Fatalf("test claim of %s: %v", key, err)
	}
	return release
}

func (f *fakeClaimer) setDown(err error) {
	f.mu.Lock()
	f.down = err
	f.mu.Unlock()
}

func (f *fakeClaimer) counts() (refused, errs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused, f.errs
}

// watch sees every call the engines make to one directory: calls that
// overlap (the tests have one user, so any two overlap on its pair),
// calls whose deadline outlives the job's bound, and an optional gate
// that holds SetPassword until it is closed.
type watch struct {
	mu       gosync.Mutex
	inFlight int
	overlaps int
	late     int // calls with no deadline, or one past bound
	bound    time.Duration
	gate     chan struct{}
	entered  chan struct{}
}

func (w *watch) enter(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight++
	if w.inFlight > 1 {
		w.overlaps++
	}
	if dl, ok := ctx.Deadline(); w.bound > 0 && (!ok || time.Until(dl) > w.bound) {
		w.late++
	}
}

func (w *watch) leave() {
	w.mu.Lock()
	w.inFlight--
	w.mu.Unlock()
}

func (w *watch) stats() (overlaps, late int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overlaps, w.late
}

// setGate makes the next SetPassword calls wait until the returned
// channel is closed; entered receives one value per call that waits.
func (w *watch) setGate() (gate chan struct{}, entered chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate, w.entered = make(chan struct{}), make(chan struct{}, 8)
	return w.gate, w.entered
}

type watchedConnector struct {
	gwsync.Connector
	w *watch
}

func (c *watchedConnector) LookupUser(ctx context.Context, upn string) (*gwsync.RemoteUser, error) {
	c.w.enter(ctx)
	defer c.w.leave()
	return c.Connector.LookupUser(ctx, upn)
}

func (c *watchedConnector) GetUser(ctx context.Context, id string) (*gwsync.RemoteUser, error) {
	c.w.enter(ctx)
	defer c.w.leave()
	return c.Connector.GetUser(ctx, id)
}

func (c *watchedConnector) CreateUser(ctx context.Context, a gwsync.Account, pw secret.String) (*gwsync.RemoteUser, error) {
	c.w.enter(ctx)
	defer c.w.leave()
	return c.Connector.CreateUser(ctx, a, pw)
}

func (c *watchedConnector) UpdateUser(ctx context.Context, id string, a gwsync.Account) error {
	c.w.enter(ctx)
	defer c.w.leave()
	return c.Connector.UpdateUser(ctx, id, a)
}

func (c *watchedConnector) SetEnabled(ctx context.Context, id string, enabled bool) error {
	c.w.enter(ctx)
	defer c.w.leave()
	return c.Connector.SetEnabled(ctx, id, enabled)
}

func (c *watchedConnector) SetPassword(ctx context.Context, id string, pw secret.String) (time.Time, error) {
	c.w.enter(ctx)
	defer c.w.leave()
	c.w.mu.Lock()
	gate, entered := c.w.gate, c.w.entered
	c.w.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	return c.Connector.SetPassword(ctx, id, pw)
}

// claimRig is replicas' engines over one store and one fake directory,
// sharing one claim table: what several gatewayd on one database are to
// the sync engine (the store's replication is not what is tested here).
type claimRig struct {
	t       *testing.T
	st      *store.Store
	b       backend
	claims  *fakeClaimer
	w       *watch
	engines []*gwsync.Engine
}

const testClaimLease = 10 * time.Second

func newClaimRig(t *testing.T, b backend, replicas int) *claimRig {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.PutDirectory(&store.Directory{Name: "m365", Type: "test"}); err != nil {
		t.Fatal(err)
	}
	// The job's calls must end before the claim does: 4/5 of the lease.
	r := &claimRig{t: t, st: st, b: b, claims: newFakeClaimer(), w: &watch{bound: testClaimLease * 4 / 5}}
	for range replicas {
		dir := &gwsync.Directory{Name: "m365", Connector: &watchedConnector{b.connector(t), r.w},
			Policy: gwsync.PasswordPolicy{MinLength: 8, MaxLength: 100}}
		cfg := gwsync.Config{Claims: r.claims, ClaimLease: testClaimLease,
			BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
		eng := gwsync.New(cfg, st, []*gwsync.Directory{dir}, nil, nil)
		st.Subscribe(eng.HandleChange)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { eng.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		r.engines = append(r.engines, eng)
	}
	return r
}

// provisioned makes a bound user and waits until its account exists and
// the pair is at rest.
func (r *claimRig) provisioned(name string) *store.User {
	r.t.Helper()
	u, err := r.st.CreateUser(&store.User{Username: name, Email: name + "@corp.test", FirstName: "Test", LastName: "User",
		PasswordStatus: store.PasswordActive, PasswordHash: "$argon2id$placeholder", PasswordVersion: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.st.PutBinding(&store.Binding{Directory: "m365", Kind: store.BindUser, SubjectID: u.ID}); err != nil {
		r.t.Fatal(err)
	}
	testutil.Eventually(r.t, 10*time.Second, func() bool {
		st, err := r.st.SyncStateOf("m365", u.ID)
		return err == nil && st.Provisioned && st.PushPending && r.b.exists(name+"@corp.test")
	}, "account provisioned, push pending until a login")
	return u
}

func (r *claimRig) login(i int, u *store.User, pw string) {
	cur, err := r.st.UserByID(u.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	r.engines[i].PasswordVerified(cur, secret.FromString(pw))
}

// pushedOnce waits for the push of version 1 to be recorded, then checks
// that it was the only one and carried pw.
func (r *claimRig) pushedOnce(u *store.User, upn, pw string) {
	r.t.Helper()
	testutil.Eventually(r.t, 15*time.Second, func() bool {
		st, err := r.st.SyncStateOf("m365", u.ID)
		return err == nil && !st.PushPending && st.PushedVersion == 1 && r.b.pushes(upn) >= 1
	}, "the push recorded")
	if n := r.b.pushes(upn); n != 1 {
		r.t.Fatalf("%d password pushes, want exactly 1", n)
	}
	if !r.b.passwordMatches(upn, pw) {
		r.t.Fatal("the pushed password is not the one used to log in")
	}
}

// TestClaimsTwoEnginesOnePair: two replicas' engines that both see a
// user's binding and both see the same login never run the pair at the
// same time, create the account once and push once.
func TestClaimsTwoEnginesOnePair(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newClaimRig(t, newB(), 2)
		u := r.provisioned("ivy")
		if n := r.b.creates(); n != 1 {
			t.Fatalf("%d creates by two engines, want 1", n)
		}

		// The push is held in the directory while both replicas have the
		// login: the second job must be refused, not run alongside.
		gate, entered := r.w.setGate()
		refused0, _ := r.claims.counts()
		r.login(0, u, "Ivys-Password-1")
		r.login(1, u, "Ivys-Password-1")
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("no engine reached the push")
		}
		testutil.Eventually(t, 10*time.Second, func() bool { refused, _ := r.claims.counts(); return refused > refused0 },
			"the other engine's job refused while the push is held")
		close(gate)
		r.pushedOnce(u, "ivy@corp.test", "Ivys-Password-1")

		// The refused job did run once the claim was free (the pair ends
		// at rest, nothing held), and found nothing left to do.
		testutil.Eventually(t, 10*time.Second, func() bool {
			r.claims.mu.Lock()
			defer r.claims.mu.Unlock()
			return len(r.claims.held) == 0
		}, "every claim released")
		if overlaps, late := r.w.stats(); overlaps != 0 || late != 0 {
			t.Fatalf("%d calls overlapped on one pair (want 0); %d calls could outlive the claim (want 0)", overlaps, late)
		}
		r.claims.mu.Lock()
		defer r.claims.mu.Unlock()
		if r.claims.keys["m365/"+u.ID] == 0 || !r.claims.ttls[testClaimLease] || len(r.claims.ttls) != 1 {
			t.Fatalf("claims by key %v with leases %v; want m365/%s for %v", r.claims.keys, r.claims.ttls, u.ID, testClaimLease)
		}
	})
}

// TestClaimWaitKeepsPlaintext: a login whose pair another replica holds,
// or whose claim cannot be asked for (database down), waits with its
// plaintext in memory and pushes it once the claim can be had.
func TestClaimWaitKeepsPlaintext(t *testing.T) {
	tests := []struct {
		name  string
		block func(r *claimRig, u *store.User) (unblock func())
		tries func(r *claimRig) int
	}{
		{"held by another replica", func(r *claimRig, u *store.User) func() {
			return r.claims.hold(r.t, "m365/"+u.ID)
		}, func(r *claimRig) int { n, _ := r.claims.counts(); return n }},
		{"database down", func(r *claimRig, _ *store.User) func() {
			r.claims.setDown(errors.New("connection refused"))
			return func() { r.claims.setDown(nil) }
		}, func(r *claimRig) int { _, n := r.claims.counts(); return n }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newClaimRig(t, newEntraBackend(t), 1)
			u := r.provisioned("jack")
			unblock := tc.block(r, u)
			before := tc.tries(r)
			r.login(0, u, "Jacks-Password-1")
			// Refused more than once: it keeps trying, not just once.
			testutil.Eventually(t, 10*time.Second, func() bool { return tc.tries(r) >= before+3 }, "the job tried again and again")
			if n := r.b.pushes("jack@corp.test"); n != 0 {
				t.Fatalf("%d pushes while the pair could not be claimed", n)
			}
			if st, _ := r.st.SyncStateOf("m365", u.ID); st == nil || !st.PushPending || st.Failed {
				t.Fatalf("waiting for the claim: %+v, want push pending and not failed", st)
			}
			unblock()
			r.pushedOnce(u, "jack@corp.test", "Jacks-Password-1")
		})
	}
}

// TestClaimsManyUsersTwoEngines: with many users bound and logging in on
// both replicas, every account is created once and every password pushed
// once.
func TestClaimsManyUsersTwoEngines(t *testing.T) {
	b := newEntraBackend(t)
	r := newClaimRig(t, b, 2)
	const n = 20
	var users []*store.User
	for i := range n {
		users = append(users, r.provisioned(fmt.Sprintf("u%02d", i)))
	}
	for i, u := range users {
		r.login(i%2, u, fmt.Sprintf("Password-%02d-x", i))
		r.login((i+1)%2, u, fmt.Sprintf("Password-%02d-x", i))
	}
	for i, u := range users {
		r.pushedOnce(u, fmt.Sprintf("u%02d@corp.test", i), fmt.Sprintf("Password-%02d-x", i))
	}
	if c := b.creates(); c != n {
		t.Fatalf("%d creates for %d users", c, n)
	}
}
