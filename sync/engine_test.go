package sync_test

import (
	"context"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

type rig struct {
	t    *testing.T
	st   *store.Store
	b    backend
	eng  *gwsync.Engine
	stop func() // stops eng and waits for it
}

func newRig(t *testing.T, b backend, dir gwsync.Directory, cfg gwsync.Config) *rig {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.PutDirectory(&store.Directory{Name: "m365", Type: "test"}); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, b: b}
	r.start(dir, cfg)
	return r
}

// start runs an engine for dir over the rig's store and backend.
func (r *rig) start(dir gwsync.Directory, cfg gwsync.Config) {
	t := r.t
	dir.Name, dir.Connector = "m365", r.b.connector(t)
	if dir.Policy == (gwsync.PasswordPolicy{}) {
		dir.Policy = gwsync.PasswordPolicy{MinLength: 8, MaxLength: 100}
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 20 * time.Millisecond
		cfg.BackoffMax = 200 * time.Millisecond
	}
	eng := gwsync.New(cfg, r.st, []*gwsync.Directory{&dir}, nil, nil)
	r.st.Subscribe(eng.HandleChange)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	var once gosync.Once
	r.eng, r.stop = eng, func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(r.stop)
}

// restartRig stops r's engine and starts a new one over the same store
// and directory, as a daemon restart does.
func restartRig(t *testing.T, r *rig, dir gwsync.Directory) *rig {
	t.Helper()
	r.stop()
	r2 := &rig{t: t, st: r.st, b: r.b}
	r2.start(dir, gwsync.Config{})
	return r2
}

// eachBackend runs fn as a subtest against every fake directory.
func eachBackend(t *testing.T, fn func(t *testing.T, newB func() backend)) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) { fn(t, func() backend { return mk(t) }) })
	}
}

func (r *rig) user(name string, mut func(*store.User)) *store.User {
	r.t.Helper()
	u := &store.User{Username: name, Email: name + "@corp.test", FirstName: strings.ToUpper(name[:1]) + name[1:], LastName: "Test",
		PasswordStatus: store.PasswordActive, PasswordHash: "$argon2id$placeholder", PasswordVersion: 1}
	if mut != nil {
		mut(u)
	}
	u, err := r.st.CreateUser(u)
	if err != nil {
		r.t.Fatal(err)
	}
	return u
}

func (r *rig) bind(kind, id string) {
	r.t.Helper()
	if _, err := r.st.PutBinding(&store.Binding{Directory: "m365", Kind: kind, SubjectID: id}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) unbind(kind, id string) {
	r.t.Helper()
	if err := r.st.DeleteBinding(store.BindingID("m365", kind, id)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) waitExists(upn string) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool { return r.b.exists(upn) }, "account "+upn+" exists")
}

func (r *rig) waitEnabled(upn string, want bool) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool { return r.b.exists(upn) && r.b.enabled(upn) == want },
		fmt.Sprintf("%s enabled=%v", upn, want))
}

func (r *rig) waitPushes(upn string, n int) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool { return r.b.pushes(upn) == n }, fmt.Sprintf("%d password pushes", n))
}

// settle waits until a pair's sync state stops changing.
func (r *rig) settle(userID string) *store.SyncState {
	r.t.Helper()
	var last *store.SyncState
	stable := 0
	testutil.Eventually(r.t, 10*time.Second, func() bool {
		cur, _ := r.st.SyncStateOf("m365", userID)
		if cur != nil && last != nil && cur.UpdatedAt.Equal(last.UpdatedAt) {
			stable++
		} else {
			stable = 0
		}
		last = cur
		return stable >= 10
	}, "sync state settles")
	return last
}

// recorded waits until the pair's last push covers the user's version.
func (r *rig) recorded(userID string, version uint64) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool {
		st, err := r.st.SyncStateOf("m365", userID)
		return err == nil && st.PushedVersion == version && !st.PushPending
	}, fmt.Sprintf("push of version %d recorded", version))
}

func (r *rig) events(typ string) []store.Event {
	r.st.Flush(context.Background())
	evs, _, _ := r.st.ListEvents(store.EventFilter{Type: store.EventType(typ), Limit: 1000})
	return evs
}

// waitEvents waits for n events of a type. The fake shows a change the
// moment the connector call lands, a little before the engine records it.
func (r *rig) waitEvents(typ string, n int) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool { return len(r.events(typ)) >= n }, fmt.Sprintf("%d %s events", n, typ))
	if got := len(r.events(typ)); got != n {
		r.t.Fatalf("%s events: %d, want %d", typ, got, n)
	}
}

func login(r *rig, u *store.User, pw string) {
	cur, _ := r.st.UserByID(u.ID)
	r.eng.PasswordVerified(cur, secret.FromString(pw))
}

func TestProvisionAndTakeoverPushes(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{}, gwsync.Config{})
		alice := r.user("alice", nil)
		r.bind(store.BindUser, alice.ID)
		r.waitEnabled("alice@corp.test", true)
		if r.b.givenName("alice@corp.test") != "Alice" {
			t.Fatal("attributes not provisioned")
		}
		r.waitEvents("user_create_provision", 1)
		r.settle(alice.ID)
		if r.b.pushes("alice@corp.test") != 0 {
			t.Fatal("no password may be pushed before a login")
		}

		login(r, alice, "Correct-Horse-1")
		r.waitPushes("alice@corp.test", 1)
		if !r.b.passwordMatches("alice@corp.test", "Correct-Horse-1") {
			t.Fatal("the pushed password is not the one used to log in")
		}
		for i := 0; i < 10; i++ {
			login(r, alice, "Correct-Horse-1")
		}
		r.settle(alice.ID)
		if n := r.b.pushes("alice@corp.test"); n != 1 {
			t.Fatalf("ten repeat logins pushed %d more times; an unchanged password must not be re-pushed", n-1)
		}

		// Admin reset (SPEC 3.4): the version moves and the plaintext comes along.
		u, _ := r.st.UpdateUser(alice.ID, func(x *store.User) error { x.PasswordVersion++; return nil })
		r.eng.PasswordChanged(u, secret.FromString("Reset-By-Admin-2"))
		r.waitPushes("alice@corp.test", 2)
		r.recorded(alice.ID, u.PasswordVersion)

		want := 3
		if r.b.remoteChange("alice@corp.test") {
			login(r, alice, "Reset-By-Admin-2")
			r.waitPushes("alice@corp.test", 3)
		} else {
			want = 2
		}
		r.waitEvents("user_password_update_provision", want)
		for _, pw := range []string{"Correct-Horse-1", "Reset-By-Admin-2"} {
			if r.b.leaked(pw) {
				t.Fatalf("the plaintext %q reached the directory", pw)
			}
		}
		if r.b.deletes() != 0 {
			t.Fatal("a DELETE reached the directory")
		}
	})
}

func TestStagedAndExistingAccounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{}, gwsync.Config{})
		staged := r.user("sam", func(u *store.User) { u.State = store.StateStaged })
		r.bind(store.BindUser, staged.ID)
		r.waitEnabled("sam@corp.test", false)
		r.b.addExisting("bob@corp.test", "Bob", "Test", false)
		creates := r.b.creates()
		bob := r.user("bob", nil)
		r.bind(store.BindUser, bob.ID)
		r.waitEnabled("bob@corp.test", true)
		testutil.Eventually(t, 5*time.Second, func() bool { return r.b.givenName("bob@corp.test") == "Bob" }, "taken-over account updated")
		if r.b.creates() != creates {
			t.Fatal("an existing account must be taken over, not created")
		}
		login(r, bob, "Bobs-Password-1") // taken over: our password wins
		r.waitPushes("bob@corp.test", 1)
	})
}

func TestDeprovisionTriggers(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{SuspendOnLockout: true}, gwsync.Config{})
		g, _ := r.st.CreateGroup(&store.Group{Name: "staff"})
		u := r.user("carol", nil)
		r.bind(store.BindUser, u.ID)
		r.waitEnabled("carol@corp.test", true)
		update := func(fn func(*store.User)) func() {
			return func() { r.st.UpdateUser(u.ID, func(x *store.User) error { fn(x); return nil }) }
		}
		steps := []struct {
			name string
			do   func()
			want bool
		}{
			{"suspend", update(func(x *store.User) { x.State = store.StateSuspended }), false},
			{"unsuspend", update(func(x *store.User) { x.State = store.StateActive }), true},
			{"lockout", update(func(x *store.User) { x.LockedUntil = time.Now().Add(time.Hour) }), false},
			{"unlock", update(func(x *store.User) { x.LockedUntil = time.Time{} }), true},
			{"unbind", func() { r.unbind(store.BindUser, u.ID) }, false},
			{"rebind", func() { r.bind(store.BindUser, u.ID) }, true},
			{"bound via group only", func() {
				r.st.AddMember(g.ID, u.ID)
				r.bind(store.BindGroup, g.ID)
				r.unbind(store.BindUser, u.ID)
			}, true},
			{"removed from the only binding group", func() { r.st.RemoveMember(g.ID, u.ID) }, false},
			{"back into the group", func() { r.st.AddMember(g.ID, u.ID) }, true},
			{"group unbound", func() { r.unbind(store.BindGroup, g.ID) }, false},
			{"group bound again", func() { r.bind(store.BindGroup, g.ID) }, true},
			{"delete", func() { r.st.DeleteUser(u.ID) }, false},
		}
		for _, s := range steps {
			s.do()
			r.waitEnabled("carol@corp.test", s.want)
		}
		r.waitEvents("user_deprovision", 6)
		if r.b.deletes() != 0 {
			t.Fatal("a DELETE reached the directory")
		}
	})
}

// TestLockoutExpiryReEnables: an account disabled for a lockout is
// enabled again when the lock runs out, with no login or change to
// trigger it (SPEC 3.8), also when the lock was in place at start.
func TestLockoutExpiryReEnables(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		b := newB()
		r := newRig(t, b, gwsync.Directory{SuspendOnLockout: true}, gwsync.Config{})
		u := r.user("dora", nil)
		r.bind(store.BindUser, u.ID)
		r.waitEnabled("dora@corp.test", true)
		lock := func(d time.Duration) {
			if _, err := r.st.UpdateUser(u.ID, func(x *store.User) error { x.LockedUntil = time.Now().Add(d); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		lock(300 * time.Millisecond)
		r.waitEnabled("dora@corp.test", false)
		r.waitEnabled("dora@corp.test", true)

		// Locked while the engine starts: a new engine over the same store
		// (as after a restart) re-arms the wake-up from its start-up scan.
		lock(time.Hour)
		r.waitEnabled("dora@corp.test", false)
		if _, err := r.st.UpdateUser(u.ID, func(x *store.User) error { x.LockedUntil = time.Now().Add(400 * time.Millisecond); return nil }); err != nil {
			t.Fatal(err)
		}
		r2 := restartRig(t, r, gwsync.Directory{SuspendOnLockout: true})
		r2.waitEnabled("dora@corp.test", true)
		if n := b.deletes(); n != 0 {
			t.Fatalf("%d DELETEs reached the directory", n)
		}
	})
}

func TestPolicyViolationIsNeverSent(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{Policy: gwsync.PasswordPolicy{MinLength: 12, MaxLength: 100}}, gwsync.Config{})
		u := r.user("dave", nil)
		r.bind(store.BindUser, u.ID)
		r.waitExists("dave@corp.test")
		r.settle(u.ID)
		login(r, u, "short-pw1")
		testutil.Eventually(t, 5*time.Second, func() bool { return len(r.events("user_password_update_provision_failed")) == 1 }, "failed event")
		if r.b.pushes("dave@corp.test") != 0 || r.b.passwordMatches("dave@corp.test", "short-pw1") {
			t.Fatal("a password outside the policy reached the directory")
		}
		if st := r.settle(u.ID); !strings.Contains(st.LastError, "at least 12") {
			t.Fatalf("binding should carry the reason: %q", st.LastError)
		}
	})
}

func TestUPNRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{Domains: []string{"corp.test"}}, gwsync.Config{})
		in := r.user("erin", nil)
		out := r.user("frank", func(u *store.User) { u.Email = "frank@elsewhere.test" })
		r.bind(store.BindUser, in.ID)
		r.bind(store.BindUser, out.ID)
		r.waitExists("erin@corp.test")
		st := r.settle(out.ID)
		if st == nil || st.Provisioned || !strings.Contains(st.LastError, "skipped") {
			t.Fatalf("frank must be skipped with a reason: %+v", st)
		}
		if r.b.exists("frank@elsewhere.test") || r.b.exists("frank@corp.test") {
			t.Fatal("a user outside the directory's domains was provisioned")
		}
	})
}

func TestThrottlingAndOutage(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{}, gwsync.Config{})
		r.b.throttle(3, 100*time.Millisecond)
		u := r.user("gina", nil)
		r.bind(store.BindUser, u.ID)
		r.waitExists("gina@corp.test")

		r.b.setDown(true)
		h := r.user("hank", nil)
		r.bind(store.BindUser, h.ID)
		login(r, u, "Ginas-Password-1")
		// An outage answers Retry-After, so a first recorded failure is all
		// a bounded wait can count on seeing.
		testutil.Eventually(t, 15*time.Second, func() bool {
			st, _ := r.st.SyncStateOf("m365", h.ID)
			return st != nil && st.Attempts >= 1 && strings.Contains(st.LastError, "503")
		}, "a failed attempt recorded during the outage")
		r.b.setDown(false)
		testutil.Eventually(t, 20*time.Second, func() bool { return r.b.exists("hank@corp.test") }, "hank created after the outage")
		testutil.Eventually(t, 20*time.Second, func() bool { return r.b.pushes("gina@corp.test") == 1 }, "gina's push completed")
		st := r.settle(h.ID)
		if st.Attempts != 0 || st.LastError != "" || !st.Provisioned {
			t.Fatalf("after recovery: %+v", st)
		}
	})
}

// TestSixtySecondOutage: with the default retry settings, a directory that
// answers 503 (Retry-After: 5) for a full minute loses no work.
func TestSixtySecondOutage(t *testing.T) {
	b := newEntraBackend(t)
	r := newRig(t, b, gwsync.Directory{}, gwsync.Config{BackoffBase: time.Second, BackoffMax: 5 * time.Minute})
	first := r.user("olga", nil)
	r.bind(store.BindUser, first.ID)
	r.waitExists("olga@corp.test")
	r.settle(first.ID)

	b.setDown(true)
	time.AfterFunc(60*time.Second, func() { b.setDown(false) })
	var users []*store.User
	for i := 0; i < 5; i++ {
		u := r.user(fmt.Sprintf("out%d", i), nil)
		users = append(users, u)
		r.bind(store.BindUser, u.ID)
	}
	login(r, first, "Olgas-Password-1")
	testutil.Eventually(t, 3*time.Minute, func() bool {
		for i := range users {
			if !b.exists(fmt.Sprintf("out%d@corp.test", i)) {
				return false
			}
		}
		return b.pushes("olga@corp.test") == 1
	}, "all work done after the outage")
	for _, u := range append(users, first) {
		st := r.settle(u.ID)
		if st.Failed || st.Attempts != 0 || !st.Provisioned {
			t.Fatalf("%s after the outage: %+v", u.Username, st)
		}
	}
	if len(r.events("user_create_provision_failed")) != 0 || len(r.events("user_password_update_provision_failed")) != 0 {
		t.Fatal("a job was given up during a one-minute outage")
	}
}
