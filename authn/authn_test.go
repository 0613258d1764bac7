package authn

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// cheap keeps the suite fast; the cost parameters are not what is tested.
var cheap = HashParams{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type harness struct {
	a      *Authenticator
	users  *fakeUsers
	events *fakeEvents
	clock  *clock
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.Hash == (HashParams{}) {
		cfg.Hash = cheap
	}
	h := &harness{users: newFakeUsers(), events: &fakeEvents{}, clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	a, err := New(cfg, h.users, h.events, nil, WithClock(h.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	h.users.notify = a.HandleChange
	h.a = a
	return h
}

// addUser creates an active user with password pw (hashed with params).
func (h *harness) addUser(t *testing.T, name, pw string, mut func(*store.User)) *store.User {
	t.Helper()
	hash, err := hashPassword([]byte(pw), h.a.policy().Hash)
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{ID: "id-" + name, Username: name, Email: name + "@example.test", State: store.StateActive,
		PasswordStatus: store.PasswordActive, PasswordAuthority: store.AuthorityLocal, DelegatedAuthority: store.AuthorityNone,
		PasswordHash: hash, PasswordVersion: 1}
	if mut != nil {
		mut(u)
	}
	return h.users.add(u)
}

func (h *harness) login(id, pw string) Result {
	return h.a.Login(context.Background(), Request{Identifier: id, Password: secret.FromString(pw), Protocol: ProtocolRADIUS,
		Source: netip.MustParseAddr("192.0.2.1")})
}

func TestLoginReasons(t *testing.T) {
	h := newHarness(t, Config{})
	h.addUser(t, "alice", "correct horse", nil)
	h.addUser(t, "sus", "correct horse", func(u *store.User) { u.State = store.StateSuspended })
	h.addUser(t, "stg", "correct horse", func(u *store.User) { u.State = store.StateStaged })
	h.addUser(t, "pend", "correct horse", func(u *store.User) { u.PasswordStatus = store.PasswordPending })
	h.addUser(t, "nohash", "x", func(u *store.User) { u.PasswordHash = "" })
	h.addUser(t, "exp", "correct horse", func(u *store.User) { u.PasswordStatus = store.PasswordExpired })
	h.addUser(t, "lck", "correct horse", func(u *store.User) { u.LockedUntil = h.clock.now().Add(time.Hour) })
	h.addUser(t, "del", "correct horse", func(u *store.User) {
		u.DelegatedAuthority = store.AuthorityAD
		u.PasswordStatus = store.PasswordDelegated
	})

	tests := []struct {
		id, pw string
		ok     bool
		reason Reason
	}{
		{"alice", "correct horse", true, ReasonNone},
		{"ALICE", "correct horse", true, ReasonNone},
		{"alice@example.test", "correct horse", true, ReasonNone},
		{"alice", "wrong", false, ReasonBadPassword},
		{"", "x", false, ReasonNoSuchUser},
		{"mallory", "correct horse", false, ReasonNoSuchUser},
		{"mallory@example.test", "correct horse", false, ReasonNoSuchUser},
		{"sus", "correct horse", false, ReasonSuspended},
		{"stg", "correct horse", false, ReasonStaged},
		{"pend", "correct horse", false, ReasonPending},
		{"nohash", "x", false, ReasonPending},
		{"exp", "correct horse", false, ReasonExpired},
		{"lck", "correct horse", false, ReasonLocked},
		{"del", "correct horse", false, ReasonADUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.id+"/"+tc.pw, func(t *testing.T) {
			r := h.login(tc.id, tc.pw)
			if r.OK != tc.ok || r.Reason != tc.reason {
				t.Fatalf("got ok=%v reason=%q, want ok=%v reason=%q", r.OK, r.Reason, tc.ok, tc.reason)
			}
			ev := h.events.last()
			wantOutcome := store.OutcomeFailure
			if tc.ok {
				wantOutcome = store.OutcomeSuccess
			}
			if ev.Type != "radius_auth" || ev.Outcome != wantOutcome || ev.Reason != string(tc.reason) || !ev.Login {
				t.Fatalf("event %+v does not record the outcome", ev)
			}
		})
	}
}

func TestUPNDomains(t *testing.T) {
	h := newHarness(t, Config{UPNDomains: []string{"corp.example"}})
	h.addUser(t, "bob", "correct horse", nil)
	if r := h.login("bob@corp.example", "correct horse"); !r.OK {
		t.Fatalf("UPN login failed: %s", r.Reason)
	}
	if r := h.login("bob@other.example", "correct horse"); r.Reason != ReasonNoSuchUser {
		t.Fatalf("unlisted UPN domain: got %q", r.Reason)
	}
}

func TestLockoutAndExpiry(t *testing.T) {
	h := newHarness(t, Config{Lockout: LockoutPolicy{MaxFailures: 3, Window: time.Minute, Duration: 10 * time.Minute}})
	h.addUser(t, "alice", "correct horse", nil)
	for i := 0; i < 3; i++ {
		if r := h.login("alice", "wrong"); r.Reason != ReasonBadPassword {
			t.Fatalf("failure %d: %q", i, r.Reason)
		}
	}
	if r := h.login("alice", "correct horse"); r.Reason != ReasonLocked {
		t.Fatalf("after 3 failures the right password must be refused as locked, got ok=%v %q", r.OK, r.Reason)
	}
	u, _ := h.users.UserByUsername("alice")
	if u.EffectivePasswordStatus(h.clock.now()) != store.PasswordLocked {
		t.Fatal("lock not stored on the user")
	}
	h.clock.advance(10*time.Minute + time.Second)
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatalf("lock should have expired: %q", r.Reason)
	}
}

func TestLockoutWindowSlides(t *testing.T) {
	h := newHarness(t, Config{Lockout: LockoutPolicy{MaxFailures: 3, Window: time.Minute, Duration: time.Hour}})
	h.addUser(t, "alice", "correct horse", nil)
	h.login("alice", "wrong")
	h.login("alice", "wrong")
	h.clock.advance(2 * time.Minute) // window passed: the count starts again
	h.login("alice", "wrong")
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatalf("failures outside the window must not lock: %q", r.Reason)
	}
	// A success resets the count.
	h.login("alice", "wrong")
	h.login("alice", "wrong")
	h.login("alice", "correct horse")
	h.login("alice", "wrong")
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatalf("a success must reset the failure count: %q", r.Reason)
	}
}

func TestRateLimitPerSource(t *testing.T) {
	h := newHarness(t, Config{RateLimit: RateLimitPolicy{FailuresPerSecond: 1, Burst: 2}})
	h.addUser(t, "alice", "correct horse", nil)
	h.login("alice", "wrong")
	h.login("alice", "wrong")
	hashes := testutil.ToFloat64(h.a.metrics.hashes)
	if r := h.login("alice", "correct horse"); r.Reason != ReasonRateLimited {
		t.Fatalf("source over its failure budget: got ok=%v %q", r.OK, r.Reason)
	}
	if got := testutil.ToFloat64(h.a.metrics.hashes); got != hashes {
		t.Fatal("a rate-limited attempt must not cost a hash")
	}
	// Another source is unaffected.
	r := h.a.Login(context.Background(), Request{Identifier: "alice", Password: secret.FromString("correct horse"),
		Protocol: ProtocolLDAP, Source: netip.MustParseAddr("192.0.2.2")})
	if !r.OK {
		t.Fatalf("other source: %q", r.Reason)
	}
	h.clock.advance(2 * time.Second)
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatalf("budget refills over time: %q", r.Reason)
	}
}

func TestHashConcurrencyBound(t *testing.T) {
	h := newHarness(t, Config{MaxConcurrentHashes: 1, QueueTimeout: 20 * time.Millisecond})
	h.addUser(t, "alice", "correct horse", nil)
	h.a.hashSem <- struct{}{} // hold the only slot
	r := h.login("alice", "correct horse")
	<-h.a.hashSem
	if r.Reason != ReasonBusy {
		t.Fatalf("with the hashing slot taken: got %q, want busy", r.Reason)
	}
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatalf("slot free again: %q", r.Reason)
	}
}

func TestRehashOnParameterChange(t *testing.T) {
	h := newHarness(t, Config{})
	old := h.addUser(t, "alice", "correct horse", nil)
	stronger := cheap
	stronger.Time = 2
	h.a.SetPolicy(Config{Hash: stronger})
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatal(r.Reason)
	}
	u, _ := h.users.UserByID(old.ID)
	ph, err := parseHash(u.PasswordHash)
	if err != nil || ph.params.Time != 2 || u.PasswordHash == old.PasswordHash {
		t.Fatalf("hash not upgraded: %s", u.PasswordHash)
	}
	if u.PasswordVersion != old.PasswordVersion {
		t.Fatal("a rehash is not a password change: the version must not move (no takeover push)")
	}
	if testutil.ToFloat64(h.a.metrics.rehashes) != 1 {
		t.Fatal("rehash metric")
	}
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatal("login after rehash", r.Reason)
	}
	if testutil.ToFloat64(h.a.metrics.rehashes) != 1 {
		t.Fatal("an up-to-date hash must not be rehashed again")
	}
}

func TestCredentialCache(t *testing.T) {
	ctx := context.Background()
	type step func(h *harness, u *store.User)
	tests := []struct {
		name       string
		invalidate step
		wantReason Reason // reason of the login after invalidation with the old password
		wantCached bool
	}{
		{"hit", func(*harness, *store.User) {}, ReasonNone, true},
		{"expiry", func(h *harness, _ *store.User) { h.clock.advance(16 * time.Minute) }, ReasonNone, false},
		{"password change", func(h *harness, u *store.User) {
			if err := h.a.ChangePassword(ctx, u.ID, secret.FromString("a new password"), "admin"); err != nil {
				t.Fatal(err)
			}
		}, ReasonBadPassword, false},
		{"suspend", func(h *harness, u *store.User) {
			h.users.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateSuspended; return nil })
		}, ReasonSuspended, false},
		{"lock", func(h *harness, u *store.User) {
			h.users.UpdateUser(u.ID, func(x *store.User) error { x.LockedUntil = h.clock.now().Add(time.Minute); return nil })
		}, ReasonLocked, false},
		{"delete", func(h *harness, u *store.User) { h.users.delete(u.ID) }, ReasonNoSuchUser, false},
		{"state change then back", func(h *harness, u *store.User) {
			h.users.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateStaged; return nil })
			h.users.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateActive; return nil })
		}, ReasonNone, false},
		{"expired password status", func(h *harness, u *store.User) {
			h.users.UpdateUser(u.ID, func(x *store.User) error { x.PasswordStatus = store.PasswordExpired; return nil })
		}, ReasonExpired, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{CacheTTL: 15 * time.Minute})
			u := h.addUser(t, "alice", "correct horse", nil)
			r := h.login("alice", "correct horse")
			if !r.OK || r.Cached {
				t.Fatalf("first login must verify fully: ok=%v cached=%v", r.OK, r.Cached)
			}
			if r := h.login("alice", "not it"); r.OK || r.Cached {
				t.Fatal("a different password must miss the cache and fail")
			}
			tc.invalidate(h, u)
			hashesBefore := testutil.ToFloat64(h.a.metrics.hashes)
			r = h.login("alice", "correct horse")
			if r.Reason != tc.wantReason || r.Cached != tc.wantCached {
				t.Fatalf("after %s: ok=%v reason=%q cached=%v; want reason=%q cached=%v", tc.name, r.OK, r.Reason, r.Cached, tc.wantReason, tc.wantCached)
			}
			if tc.wantCached && testutil.ToFloat64(h.a.metrics.hashes) != hashesBefore {
				t.Fatal("a cache hit must not compute argon2")
			}
		})
	}
}

// LoginCached answers exactly what Login would, but only when no password
// work is needed; otherwise it must leave no trace, so the door's fallback
// to Login records the attempt once.
func TestLoginCached(t *testing.T) {
	h := newHarness(t, Config{CacheTTL: 15 * time.Minute})
	h.addUser(t, "alice", "correct horse", nil)
	h.addUser(t, "sus", "correct horse", func(u *store.User) { u.State = store.StateSuspended })
	h.addUser(t, "lck", "correct horse", func(u *store.User) { u.LockedUntil = h.clock.now().Add(time.Hour) })
	h.addUser(t, "exp", "correct horse", func(u *store.User) { u.PasswordStatus = store.PasswordExpired })
	h.addUser(t, "del", "correct horse", func(u *store.User) {
		u.DelegatedAuthority = store.AuthorityAD
		u.PasswordStatus = store.PasswordDelegated
	})
	try := func(id, pw string) (Result, bool) {
		return h.a.LoginCached(Request{Identifier: id, Password: secret.FromString(pw), Protocol: ProtocolRADIUS,
			Source: netip.MustParseAddr("192.0.2.1")})
	}
	tests := []struct {
		name     string
		id, pw   string
		answered bool
		ok       bool
		reason   Reason
	}{
		{"not cached yet", "alice", "correct horse", false, false, ReasonNone},
		{"unknown user needs a dummy verify", "mallory", "x", false, false, ReasonNone},
		{"delegated goes to AD", "del", "correct horse", false, false, ReasonNone},
		{"suspended", "sus", "correct horse", true, false, ReasonSuspended},
		{"locked", "lck", "correct horse", true, false, ReasonLocked},
		{"expired", "exp", "correct horse", true, false, ReasonExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.events.evs)
			hashes := testutil.ToFloat64(h.a.metrics.hashes)
			r, answered := try(tc.id, tc.pw)
			if answered != tc.answered || r.OK != tc.ok || r.Reason != tc.reason {
				t.Fatalf("got answered=%v ok=%v reason=%q, want answered=%v ok=%v reason=%q", answered, r.OK, r.Reason, tc.answered, tc.ok, tc.reason)
			}
			if testutil.ToFloat64(h.a.metrics.hashes) != hashes {
				t.Fatal("LoginCached computed a hash")
			}
			wantEvents := before
			if answered {
				wantEvents++
			}
			if n := len(h.events.evs); n != wantEvents {
				t.Fatalf("%d events recorded, want %d", n-before, wantEvents-before)
			}
		})
	}

	if r := h.login("alice", "correct horse"); !r.OK || r.Cached {
		t.Fatalf("the first full login: %+v", r)
	}
	r, answered := try("alice", "correct horse")
	if !answered || !r.OK || !r.Cached || r.User == nil || r.User.Username != "alice" {
		t.Fatalf("a repeat login must be answered from the cache: answered=%v %+v", answered, r)
	}
	if ev := h.events.last(); ev.Outcome != store.OutcomeSuccess || ev.Username != "alice" || ev.Type != "radius_auth" {
		t.Fatalf("cache-hit event: %+v", ev)
	}
	if _, answered := try("alice", "wrong password"); answered {
		t.Fatal("a wrong password needs a verify (and lockout accounting), not a cached answer")
	}
}

func TestCacheOff(t *testing.T) {
	h := newHarness(t, Config{})
	h.addUser(t, "alice", "correct horse", nil)
	h.login("alice", "correct horse")
	if r := h.login("alice", "correct horse"); r.Cached {
		t.Fatal("cache must be off when CacheTTL is 0")
	}
	if h.a.cache.len() != 0 {
		t.Fatal("nothing may be cached with the cache off")
	}
}

func TestChangePassword(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	u := h.addUser(t, "alice", "correct horse", func(u *store.User) { u.PasswordStatus = store.PasswordPending; u.PasswordHash = "" })
	if err := h.a.ChangePassword(ctx, u.ID, secret.FromString("short"), "admin"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("short password: %v", err)
	}
	if err := h.a.ChangePassword(ctx, u.ID, secret.FromString("long enough pw"), "admin"); err != nil {
		t.Fatal(err)
	}
	got, _ := h.users.UserByID(u.ID)
	if got.PasswordStatus != store.PasswordActive || got.PasswordVersion != u.PasswordVersion+1 || got.PasswordChangedAt.IsZero() {
		t.Fatalf("after change: %+v", got)
	}
	if r := h.login("alice", "long enough pw"); !r.OK {
		t.Fatal(r.Reason)
	}
	ad := h.addUser(t, "adu", "x", func(u *store.User) { u.PasswordAuthority = store.AuthorityAD })
	if err := h.a.ChangePassword(ctx, ad.ID, secret.FromString("long enough pw"), "admin"); !errors.Is(err, ErrAuthorityAD) {
		t.Fatalf("AD authority: %v", err)
	}
}

func TestParseHashRejectsGarbage(t *testing.T) {
	good, _ := hashPassword([]byte("pw"), cheap)
	for _, s := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=18$m=64,t=1,p=1$x$y",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=64,t=1,p=1$!!$a2V5", good + "$"} {
		if _, err := parseHash(s); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
	if _, err := parseHash(good); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkLoginFullVerify(b *testing.B) {
	benchLogin(b, 0)
}

func BenchmarkLoginCacheHit(b *testing.B) {
	benchLogin(b, 15*time.Minute)
}

func benchLogin(b *testing.B, ttl time.Duration) {
	users, events := newFakeUsers(), &fakeEvents{}
	a, err := New(Config{Hash: DefaultHashParams, CacheTTL: ttl, MaxConcurrentHashes: 2}, users, events, nil)
	if err != nil {
		b.Fatal(err)
	}
	hash, _ := hashPassword([]byte("correct horse"), DefaultHashParams)
	users.add(&store.User{ID: "1", Username: "alice", State: store.StateActive, PasswordStatus: store.PasswordActive, PasswordHash: hash})
	req := Request{Identifier: "alice", Password: secret.FromString("correct horse"), Protocol: ProtocolRADIUS}
	a.Login(context.Background(), req) // warm the cache when on
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := a.Login(context.Background(), req); !r.OK {
			b.Fatal(r.Reason)
		}
	}
	b.StopTimer()
	events.evs = nil
}

// TestEmailCannotShadowAUPN (issue 14, C5): with upn_domains, an email
// whose local part is another user's username would make one login name
// mean two users. NameConflict refuses to create that; a store that
// already holds it logs neither in under that name.
func TestEmailCannotShadowAUPN(t *testing.T) {
	h := newHarness(t, Config{UPNDomains: []string{"corp.test"}})
	bob := h.addUser(t, "bob", "Bob-Pw-0001", func(u *store.User) { u.Email = "robert@elsewhere.test" })
	h.addUser(t, "dora", "Dora-Pw-0001", func(u *store.User) { u.Email = "dee@corp.test" })
	for _, tc := range []struct {
		name, username, email, self string
		conflict                    bool
	}{
		{"email is bob's UPN", "carol", "bob@corp.test", "", true},
		{"same, other case", "carol", "BOB@Corp.Test", "", true},
		{"bob keeps his own UPN as email", "bob", "bob@corp.test", bob.ID, false},
		{"not a UPN domain", "carol", "bob@other.test", "", false},
		{"username whose UPN is dora's email", "dee", "dee@x.test", "", true},
		{"no clash", "erin", "erin@corp.test", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.a.NameConflict(tc.username, tc.email, tc.self)
			if (err != nil) != tc.conflict || (err != nil && !errors.Is(err, ErrNameConflict)) {
				t.Fatalf("NameConflict(%q, %q) = %v, want conflict=%v", tc.username, tc.email, err, tc.conflict)
			}
		})
	}
	// A clash already in the store (made before this check existed, or by
	// an import): the shared name logs nobody in; each still logs in by
	// username.
	h.addUser(t, "carol", "Carol-Pw-001", func(u *store.User) { u.Email = "bob@corp.test" })
	for _, pw := range []string{"Bob-Pw-0001", "Carol-Pw-001"} {
		if r := h.login("bob@corp.test", pw); r.OK {
			t.Fatalf("bob@corp.test logged in %s with %s", r.User.Username, pw)
		}
	}
	if r := h.login("bob", "Bob-Pw-0001"); !r.OK {
		t.Fatal("bob by username")
	}
	if r := h.login("carol", "Carol-Pw-001"); !r.OK {
		t.Fatal("carol by username")
	}
	if r := h.login("dee@corp.test", "Dora-Pw-0001"); !r.OK {
		t.Fatal("an email that shadows nobody still logs in")
	}
}
