package sync_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
)

type rig struct {
	t   *testing.T
	st  *store.Store
	fg  *fakegraph.Server
	eng *gwsync.Engine
}

func newRig(t *testing.T, dir gwsync.Directory, cfg gwsync.Config) *rig {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fg := fakegraph.New()
	t.Cleanup(fg.Close)
	conn, err := entra.New(entra.Config{Name: "m365", TenantID: fakegraph.DefaultTenant, ClientID: fakegraph.DefaultClientID,
		ClientSecret: secret.FromString(fakegraph.DefaultClientSecret), AuthorityURL: fg.URL(), GraphURL: fg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutDirectory(&store.Directory{Name: "m365", Type: "entra"}); err != nil {
		t.Fatal(err)
	}
	dir.Name, dir.Connector = "m365", conn
	if dir.Policy == (gwsync.PasswordPolicy{}) {
		dir.Policy = gwsync.PasswordPolicy{MinLength: 8, MaxLength: 256}
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 20 * time.Millisecond
		cfg.BackoffMax = 200 * time.Millisecond
	}
	eng := gwsync.New(cfg, st, []*gwsync.Directory{&dir}, nil, nil)
	st.Subscribe(eng.HandleChange)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &rig{t: t, st: st, fg: fg, eng: eng}
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

func (r *rig) remote(upn string) fakegraph.User {
	r.t.Helper()
	var u fakegraph.User
	testutil.Eventually(r.t, 10*time.Second, func() bool {
		var ok bool
		u, ok = r.fg.User(upn)
		return ok
	}, "account "+upn+" exists")
	return u
}

func (r *rig) waitEnabled(upn string, want bool) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool {
		u, ok := r.fg.User(upn)
		return ok && u.AccountEnabled == want
	}, upn+" accountEnabled")
}

// pushes counts password PATCHes that reached the fake (not failed ones).
func (r *rig) pushes(upn string) int {
	u, ok := r.fg.User(upn)
	if !ok {
		return 0
	}
	n := 0
	for _, q := range r.fg.Requests() {
		if q.Method == "PATCH" && q.HadPasswordProfile && q.Status < 300 && strings.Contains(q.Path, u.ID) {
			n++
		}
	}
	return n
}

func (r *rig) waitPushes(upn string, n int) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool { return r.pushes(upn) == n }, "password pushes reach "+string(rune('0'+n)))
}

// settle waits until every queued pair is done: a sync state stops changing.
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

func (r *rig) events(typ string) []store.Event {
	r.st.Flush(context.Background())
	evs, _, _ := r.st.ListEvents(store.EventFilter{Type: typ, Limit: 1000})
	return evs
}

func login(r *rig, u *store.User, pw string) {
	cur, _ := r.st.UserByID(u.ID)
	r.eng.PasswordVerified(cur, secret.FromString(pw))
}

func TestProvisionAndTakeoverPushes(t *testing.T) {
	r := newRig(t, gwsync.Directory{}, gwsync.Config{})
	alice := r.user("alice", nil)
	r.bind(store.BindUser, alice.ID)
	acc := r.remote("alice@corp.test")
	if !acc.AccountEnabled || acc.GivenName != "Alice" {
		t.Fatalf("created account %+v", acc)
	}
	if n := len(r.events("user_create_provision")); n != 1 {
		t.Fatalf("user_create_provision events: %d", n)
	}
	r.settle(alice.ID)
	if r.pushes("alice@corp.test") != 0 {
		t.Fatal("no password may be pushed before a login")
	}

	login(r, alice, "Correct-Horse-1")
	r.waitPushes("alice@corp.test", 1)
	if !r.fg.PasswordMatches("alice@corp.test", "Correct-Horse-1") {
		t.Fatal("the pushed password is not the one used to log in")
	}
	for i := 0; i < 10; i++ {
		login(r, alice, "Correct-Horse-1")
	}
	r.settle(alice.ID)
	if n := r.pushes("alice@corp.test"); n != 1 {
		t.Fatalf("ten repeat logins pushed %d more times; the unchanged password must not be re-pushed", n-1)
	}

	// Admin reset (SPEC 3.4): version moves, PasswordChanged carries it.
	u, _ := r.st.UpdateUser(alice.ID, func(x *store.User) error { x.PasswordVersion++; return nil })
	r.eng.PasswordChanged(u, secret.FromString("Reset-By-Admin-2"))
	r.waitPushes("alice@corp.test", 2)

	// Remote change in Entra (a little later, as a person would): the
	// next login pushes ours again.
	r.fg.SetClock(func() time.Time { return time.Now().Add(5 * time.Second) })
	r.fg.SetPassword("alice@corp.test")
	login(r, alice, "Reset-By-Admin-2")
	r.waitPushes("alice@corp.test", 3)
	if n := len(r.events("user_password_update_provision")); n != 3 {
		t.Fatalf("user_password_update_provision events: %d", n)
	}
	if r.fg.Count("DELETE", fakegraph.KindUser) != 0 {
		t.Fatal("a DELETE reached Graph")
	}
}

func TestStagedAndExistingAccounts(t *testing.T) {
	r := newRig(t, gwsync.Directory{}, gwsync.Config{})
	staged := r.user("sam", func(u *store.User) { u.State = store.StateStaged })
	r.bind(store.BindUser, staged.ID)
	if acc := r.remote("sam@corp.test"); acc.AccountEnabled {
		t.Fatal("a staged user's account must be created disabled")
	}
	r.fg.AddUser(fakegraph.User{UserPrincipalName: "bob@corp.test", DisplayName: "Old Bob", MailNickname: "bob", AccountEnabled: false})
	bob := r.user("bob", nil)
	r.bind(store.BindUser, bob.ID)
	r.waitEnabled("bob@corp.test", true)
	if acc, _ := r.fg.User("bob@corp.test"); acc.DisplayName != "Bob Test" {
		t.Fatalf("taken-over account not updated: %+v", acc)
	}
	if r.fg.Count("POST", fakegraph.KindUsers) != 1 {
		t.Fatalf("only sam may be created; POSTs: %d", r.fg.Count("POST", fakegraph.KindUsers))
	}
	// Taken over: the first login pushes (our password wins).
	login(r, bob, "Bobs-Password-1")
	r.waitPushes("bob@corp.test", 1)
}

func TestDeprovisionTriggers(t *testing.T) {
	r := newRig(t, gwsync.Directory{}, gwsync.Config{})
	g, _ := r.st.CreateGroup(&store.Group{Name: "staff"})
	u := r.user("carol", nil)
	r.bind(store.BindUser, u.ID)
	r.waitEnabled("carol@corp.test", true)

	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"suspend", func() {
			r.st.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateSuspended; return nil })
		}, false},
		{"unsuspend", func() { r.st.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateActive; return nil }) }, true},
		{"unbind", func() { r.unbind(store.BindUser, u.ID) }, false},
		{"rebind", func() { r.bind(store.BindUser, u.ID) }, true},
		{"bind group too, unbind user", func() {
			r.st.AddMember(g.ID, u.ID)
			r.bind(store.BindGroup, g.ID)
			r.unbind(store.BindUser, u.ID)
		}, true},
		{"removal from the only binding group", func() { r.st.RemoveMember(g.ID, u.ID) }, false},
		{"back into the group", func() { r.st.AddMember(g.ID, u.ID) }, true},
		{"group unbound", func() { r.unbind(store.BindGroup, g.ID) }, false},
		{"group bound again", func() { r.bind(store.BindGroup, g.ID) }, true},
		{"delete", func() { r.st.DeleteUser(u.ID) }, false},
	}
	for _, s := range steps {
		s.do()
		r.waitEnabled("carol@corp.test", s.want)
	}
	if n := len(r.events("user_deprovision")); n != 5 {
		t.Fatalf("user_deprovision events: %d, want 5", n)
	}
	if r.fg.Count("DELETE", fakegraph.KindUser) != 0 {
		t.Fatal("a DELETE reached Graph")
	}
}

func TestPolicyViolationIsNeverSent(t *testing.T) {
	r := newRig(t, gwsync.Directory{Policy: gwsync.PasswordPolicy{MinLength: 12, MaxLength: 256}}, gwsync.Config{})
	u := r.user("dave", nil)
	r.bind(store.BindUser, u.ID)
	r.remote("dave@corp.test")
	r.settle(u.ID)
	login(r, u, "short-pw1")
	testutil.Eventually(t, 5*time.Second, func() bool { return len(r.events("user_password_update_provision_failed")) == 1 }, "failed event")
	if r.pushes("dave@corp.test") != 0 {
		t.Fatal("a password outside the policy reached the directory")
	}
	st := r.settle(u.ID)
	if !strings.Contains(st.LastError, "at least 12") {
		t.Fatalf("binding should carry the reason: %q", st.LastError)
	}
}

func TestUPNRules(t *testing.T) {
	r := newRig(t, gwsync.Directory{Domains: []string{"corp.test"}}, gwsync.Config{})
	in := r.user("erin", nil)
	out := r.user("frank", func(u *store.User) { u.Email = "frank@elsewhere.test" })
	r.bind(store.BindUser, in.ID)
	r.bind(store.BindUser, out.ID)
	r.remote("erin@corp.test")
	st := r.settle(out.ID)
	if st == nil || st.Provisioned || !strings.Contains(st.LastError, "skipped") {
		t.Fatalf("frank must be skipped with a reason: %+v", st)
	}
	if _, ok := r.fg.User("frank@elsewhere.test"); ok {
		t.Fatal("a user outside the directory's domains was provisioned")
	}
}

func TestThrottlingAndOutage(t *testing.T) {
	r := newRig(t, gwsync.Directory{}, gwsync.Config{})
	r.fg.Throttle(3, 100*time.Millisecond)
	u := r.user("gina", nil)
	r.bind(store.BindUser, u.ID)
	r.remote("gina@corp.test")

	r.fg.SetDown(true)
	h := r.user("hank", nil)
	r.bind(store.BindUser, h.ID)
	login(r, u, "Ginas-Password-1")
	// The outage answers Retry-After: 5, so the first failure is all a
	// bounded wait can count on seeing.
	testutil.Eventually(t, 15*time.Second, func() bool {
		st, _ := r.st.SyncStateOf("m365", h.ID)
		return st != nil && st.Attempts >= 1 && strings.Contains(st.LastError, "503")
	}, "a failed attempt recorded during the outage")
	r.fg.SetDown(false)
	r.remote("hank@corp.test")
	r.waitPushes("gina@corp.test", 1)
	st := r.settle(h.ID)
	if st.Attempts != 0 || st.LastError != "" || !st.Provisioned {
		t.Fatalf("after recovery: %+v", st)
	}
}
