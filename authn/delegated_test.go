package authn

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// fakeAD plays the delegation package: it holds the "AD" password per
// username and can be switched unreachable.
type fakeAD struct {
	mu          sync.Mutex
	pw          map[string]string
	refuse      map[string]Reason // account-level refusals (disabled...)
	unreachable bool
	calls       int
	storeHash   bool
	window      time.Duration
}

func newFakeAD() *fakeAD {
	return &fakeAD{pw: map[string]string{}, refuse: map[string]Reason{}, storeHash: true}
}

func (f *fakeAD) set(user, pw string) { f.mu.Lock(); f.pw[user] = pw; f.mu.Unlock() }

func (f *fakeAD) Validate(_ context.Context, u Principal, pw secret.String) DelegationResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	r := DelegationResult{Domain: "corp", StoreHash: f.storeHash, OfflineWindow: f.window}
	switch want, ok := f.pw[u.Username]; {
	case f.unreachable:
		r.Unreachable, r.Detail = true, "ad corp: no domain controller answered"
	case !ok:
		r.Reason, r.Detail = ReasonNoSuchUser, "data 525"
	case string(pw.Bytes()) != want:
		r.Reason, r.Detail = ReasonBadPassword, "ad corp via ldaps://dc1: bind refused, data 52e"
	case f.refuse[u.Username] != "":
		r.Reason, r.Detail = f.refuse[u.Username], "ad corp via ldaps://dc1: bind refused"
	default:
		r.OK, r.Detail = true, "ad corp via ldaps://dc1"
	}
	return r
}

type recObserver struct {
	mu       sync.Mutex
	verified []uint64 // password versions seen
}

func (o *recObserver) PasswordVerified(u *store.User, pw secret.String) {
	o.mu.Lock()
	o.verified = append(o.verified, u.PasswordVersion)
	o.mu.Unlock()
	pw.Wipe()
}
func (o *recObserver) PasswordChanged(*store.User, secret.String) {}

func newADHarness(t *testing.T, cfg Config) (*harness, *fakeAD, *recObserver) {
	t.Helper()
	if cfg.Hash == (HashParams{}) {
		cfg.Hash = cheap
	}
	ad, obs := newFakeAD(), &recObserver{}
	h := &harness{users: newFakeUsers(), events: &fakeEvents{}, clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	a, err := New(cfg, h.users, h.events, nil, WithClock(h.clock.now), WithDelegator(ad), WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	h.users.notify = a.HandleChange
	h.a = a
	return h, ad, obs
}

func (h *harness) addDelegated(name string) *store.User {
	return h.users.add(&store.User{ID: "id-" + name, Username: name, Email: name + "@example.test", State: store.StateActive,
		PasswordStatus: store.PasswordPending, PasswordAuthority: store.AuthorityAD, DelegatedAuthority: store.AuthorityAD})
}

func (h *harness) user(t *testing.T, name string) *store.User {
	t.Helper()
	u, err := h.users.UserByUsername(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDelegatedLoginStoresHashAndBumpsVersion(t *testing.T) {
	h, ad, obs := newADHarness(t, Config{CacheTTL: time.Hour})
	h.addDelegated("alice")
	ad.set("alice", "AD-Password-1")

	r := h.login("alice", "AD-Password-1")
	if !r.OK || r.Cached {
		t.Fatalf("first login: %+v", r)
	}
	u := h.user(t, "alice")
	if u.PasswordHash == "" || u.PasswordVersion != 1 || u.PasswordStatus != store.PasswordDelegated || !u.LastADValidationAt.Equal(h.clock.now()) {
		t.Fatalf("after the first AD login: hash=%v version=%d status=%s lastAD=%v", u.PasswordHash != "", u.PasswordVersion, u.PasswordStatus, u.LastADValidationAt)
	}
	if ev := h.events.last(); ev.Outcome != store.OutcomeSuccess || !strings.Contains(ev.Detail, "ad corp via ldaps://dc1") {
		t.Fatalf("event %+v", ev)
	}

	// Same password again: AD is asked, nothing is written, no bump.
	writes := h.users.writes
	h.clock.advance(10 * time.Second)
	if r := h.login("alice", "AD-Password-1"); !r.OK || r.Cached {
		t.Fatalf("second login: %+v", r)
	}
	if h.users.writes != writes || h.user(t, "alice").PasswordVersion != 1 {
		t.Fatalf("an unchanged password must cost no write (%d writes) and no bump", h.users.writes-writes)
	}

	// Changed in AD: the new password works at once and bumps the version;
	// the old one fails even though the cache still knows it.
	ad.set("alice", "AD-Password-2")
	if r := h.login("alice", "AD-Password-1"); r.OK || r.Reason != ReasonBadPassword {
		t.Fatalf("old password after the AD change: %+v", r)
	}
	if r := h.login("alice", "AD-Password-2"); !r.OK {
		t.Fatalf("new password: %+v", r)
	}
	if u := h.user(t, "alice"); u.PasswordVersion != 2 || !u.PasswordChangedAt.Equal(h.clock.now()) {
		t.Fatalf("version %d after the AD change, want 2", u.PasswordVersion)
	}
	if r := h.login("alice", "AD-Password-1"); r.OK {
		t.Fatal("the old password must keep failing")
	}
	// The observer saw every success with the version it should push.
	obs.mu.Lock()
	got := obs.verified
	obs.mu.Unlock()
	if len(got) != 3 || got[0] != 1 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("observer saw versions %v, want [1 1 2]", got)
	}
	var changes int
	for _, ev := range h.events.evs {
		if ev.Type == "password_change" && ev.Source == "ad" {
			changes++
		}
	}
	if changes != 2 {
		t.Fatalf("%d password_change events from AD, want 2 (first store, then the change)", changes)
	}
}

func TestDelegatedRefusals(t *testing.T) {
	h, ad, _ := newADHarness(t, Config{Lockout: LockoutPolicy{MaxFailures: 3, Window: time.Hour, Duration: time.Hour}})
	for _, n := range []string{"dis", "chg", "exp", "lck"} {
		h.addDelegated(n)
		ad.set(n, "Pw-"+n)
	}
	ad.refuse["dis"], ad.refuse["chg"], ad.refuse["exp"], ad.refuse["lck"] = ReasonDisabled, ReasonMustChange, ReasonAccountExpired, ReasonLocked
	for n, want := range map[string]Reason{"dis": ReasonDisabled, "chg": ReasonMustChange, "exp": ReasonAccountExpired, "lck": ReasonLocked} {
		r := h.login(n, "Pw-"+n)
		if r.OK || r.Reason != want {
			t.Fatalf("%s: %+v, want %s", n, r, want)
		}
		if ev := h.events.last(); ev.Reason != string(want) || !strings.Contains(ev.Detail, "bind refused") {
			t.Fatalf("%s event: %+v", n, ev)
		}
	}
	// Bad passwords count toward the gateway's own lockout.
	h.addDelegated("bob")
	ad.set("bob", "Bob-Pw")
	for i := 0; i < 3; i++ {
		h.login("bob", "wrong")
	}
	if r := h.login("bob", "Bob-Pw"); r.OK || r.Reason != ReasonLocked {
		t.Fatalf("after 3 AD failures: %+v", r)
	}
}

func TestOfflineLogin(t *testing.T) {
	h, ad, _ := newADHarness(t, Config{CacheTTL: time.Hour})
	ad.window = time.Hour
	h.addDelegated("alice")
	h.addDelegated("never")
	ad.set("alice", "AD-Password-1")
	if r := h.login("alice", "AD-Password-1"); !r.OK {
		t.Fatal(r)
	}
	ad.unreachable = true
	h.clock.advance(30 * time.Minute)
	r := h.login("alice", "AD-Password-1")
	if !r.OK || !strings.Contains(h.events.last().Detail, "offline login") {
		t.Fatalf("offline login inside the window: %+v %+v", r, h.events.last())
	}
	if r := h.login("alice", "wrong"); r.OK || r.Reason != ReasonBadPassword || !strings.Contains(h.events.last().Detail, "offline") {
		t.Fatalf("wrong password offline: %+v", r)
	}
	if r := h.login("never", "anything-1"); r.OK || r.Reason != ReasonADUnreachable {
		t.Fatalf("a user never validated by AD: %+v", r)
	}
	// Outside the window.
	h.clock.advance(31 * time.Minute)
	if r := h.login("alice", "AD-Password-1"); r.OK || r.Reason != ReasonADUnreachable || !strings.Contains(r.Detail, "older than offline_login") {
		t.Fatalf("outside the window: %+v", r)
	}
	// Offline login off.
	ad.window = 0
	h.clock.advance(-31 * time.Minute)
	if r := h.login("alice", "AD-Password-1"); r.OK || r.Reason != ReasonADUnreachable {
		t.Fatalf("offline_login off: %+v", r)
	}
}

// TestOfflineEligibilityEndsOnADRefusal: once AD has said the account is
// disabled, or that the stored password is no longer the password, the
// stored hash must not let the user in while the DCs are down.
func TestOfflineEligibilityEndsOnADRefusal(t *testing.T) {
	h, ad, _ := newADHarness(t, Config{CacheTTL: time.Hour})
	ad.window = time.Hour
	for _, n := range []string{"dis", "chg"} {
		h.addDelegated(n)
		ad.set(n, "Pw-"+n+"-1")
		if r := h.login(n, "Pw-"+n+"-1"); !r.OK {
			t.Fatal(r)
		}
	}
	ad.refuse["dis"] = ReasonDisabled
	h.login("dis", "Pw-dis-1")
	ad.set("chg", "Pw-chg-2") // changed in AD
	h.login("chg", "typo")    // a typo changes nothing
	if h.user(t, "chg").LastADValidationAt.IsZero() {
		t.Fatal("a mistyped password must not end offline eligibility")
	}
	h.login("chg", "Pw-chg-1") // AD refuses the stored password
	ad.unreachable = true
	for _, n := range []string{"dis", "chg"} {
		if r := h.login(n, "Pw-"+n+"-1"); r.OK {
			t.Fatalf("%s logged in offline after AD refused it", n)
		}
	}
}

func TestDelegatedWithoutStoreHash(t *testing.T) {
	h, ad, _ := newADHarness(t, Config{})
	ad.storeHash = false
	h.addDelegated("alice")
	ad.set("alice", "AD-Password-1")
	if r := h.login("alice", "AD-Password-1"); !r.OK {
		t.Fatal(r)
	}
	if u := h.user(t, "alice"); u.PasswordHash != "" || u.PasswordVersion != 0 || u.LastADValidationAt.IsZero() {
		t.Fatalf("store_hash off: hash=%v version=%d", u.PasswordHash != "", u.PasswordVersion)
	}
}

func TestDelegatedStatesStillApply(t *testing.T) {
	h, ad, _ := newADHarness(t, Config{})
	u := h.addDelegated("sus")
	ad.set("sus", "Pw-1")
	h.users.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateSuspended; return nil })
	if r := h.login("sus", "Pw-1"); r.OK || r.Reason != ReasonSuspended || ad.calls != 0 {
		t.Fatalf("a suspended delegated user must not reach AD: %+v calls=%d", r, ad.calls)
	}
	h.addDelegated("alice")
	if r := h.login("alice", ""); r.OK {
		t.Fatal("empty password accepted")
	}
}

func TestNoDelegatorConfigured(t *testing.T) {
	h := newHarness(t, Config{})
	h.users.add(&store.User{ID: "id-a", Username: "a", Email: "a@example.test", State: store.StateActive,
		PasswordStatus: store.PasswordPending, PasswordAuthority: store.AuthorityAD, DelegatedAuthority: store.AuthorityAD})
	r := h.login("a", "whatever-1")
	if r.OK || r.Reason != ReasonADUnreachable || !strings.Contains(h.events.last().Detail, "no [[ad]]") {
		t.Fatalf("%+v %+v", r, h.events.last())
	}
}
