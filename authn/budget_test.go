package authn

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/secret"
)

// defaultRateLimit is the shipped [authn.rate_limit], so the C3 tests
// show what the defaults do.
func defaultRateLimit() RateLimitPolicy {
	var c Config
	c.Defaults()
	return c.RateLimit
}

// TestFailureBudgetBehindNAS (C3): one guesser behind a NAS, at 5
// failures a second for 20 seconds, is throttled by its (source, name)
// budget, while the other users behind the same NAS — over RADIUS with
// or without a Calling-Station-Id, and over LDAP from the NAS's address —
// keep logging in, also once the guessed account is locked (those
// refusals are charged to the guesser's name budget only). A spray of
// many names from one source is stopped by the per-source ceiling.
func TestFailureBudgetBehindNAS(t *testing.T) {
	nas := netip.MustParseAddr("192.0.2.10")
	other := netip.MustParseAddr("198.51.100.7")
	type client struct {
		proto   Protocol
		src     netip.Addr
		station string
	}
	radius := func(st string) client { return client{ProtocolRADIUS, nas, st} }
	ldap := client{ProtocolLDAP, nas, ""}
	tests := []struct {
		name       string
		lockout    int    // max_failures (0: off)
		guesser    client // guesses alice's password, or sprays names
		spray      bool   // a new unknown name each attempt
		perSecond  int    // the guesser's attempts a second
		victim     client // bob logs in once a second with his password
		wantVictim bool   // bob's logins all succeed
	}{
		{"radius other station", 10, radius("aa-aa-aa-aa-aa-01"), false, 5, radius("aa-aa-aa-aa-aa-02"), true},
		{"radius same station", 10, radius("AA-AA-AA-AA-AA-01"), false, 5, radius("aa-aa-aa-aa-aa-01"), true},
		{"radius no station", 10, radius(""), false, 5, radius(""), true},
		{"radius guesser, ldap victim from the nas", 10, radius(""), false, 5, ldap, true},
		{"radius station guesser, ldap victim from the nas", 10, radius("aa-aa-aa-aa-aa-01"), false, 5, ldap, true},
		{"ldap same peer", 10, ldap, false, 5, ldap, true},
		{"no lockout, radius no station", 0, radius(""), false, 5, radius(""), true},
		{"no lockout, ldap same peer", 0, ldap, false, 5, ldap, true},
		// A spray: every attempt a new name, so no name budget binds.
		// The source's ceiling does, and then refuses everyone at that
		// source — the trade-off README documents. Another source and
		// another station are untouched.
		{"spray from a station, victim other station", 0, radius("aa-aa-aa-aa-aa-01"), true, 50, radius("aa-aa-aa-aa-aa-02"), true},
		{"spray, victim other source", 0, client{ProtocolLDAP, nas, ""}, true, 50, client{ProtocolLDAP, other, ""}, true},
		{"spray, victim same source", 0, ldap, true, 50, ldap, false},
	}
	const seconds = 20
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rl := defaultRateLimit()
			h := newHarness(t, Config{RateLimit: rl,
				Lockout: LockoutPolicy{MaxFailures: tc.lockout, Window: 15 * time.Minute, Duration: 15 * time.Minute}})
			h.addUser(t, "alice", "correct horse", nil)
			h.addUser(t, "bob", "bob password", nil)
			do := func(c client, id, pw string) Result {
				return h.a.Login(context.Background(), Request{Identifier: id, Password: secret.FromString(pw),
					Protocol: c.proto, Source: c.src, Station: c.station})
			}
			reasons := map[Reason]int{}
			victimFailed := 0
			for s := range seconds {
				for i := range tc.perSecond {
					id := "alice"
					if tc.spray {
						id = fmt.Sprintf("nobody%d", s*tc.perSecond+i)
					}
					reasons[do(tc.guesser, id, "wrong").Reason]++
					// Bob's login comes right after a guess, at the same
					// instant: the source's ceiling, if the guesser drained
					// it, has not refilled.
					if i == tc.perSecond-1 {
						if r := do(tc.victim, "bob", "bob password"); !r.OK {
							victimFailed++
						}
					}
					h.clock.advance(time.Second / time.Duration(tc.perSecond))
				}
			}
			if got := victimFailed == 0; got != tc.wantVictim {
				t.Errorf("bob failed %d of %d logins; want all to succeed: %v", victimFailed, seconds, tc.wantVictim)
			}
			// The guesser is throttled: what it got to try (a hash each,
			// or a refusal of the locked account) is bounded by its
			// budget, and the rest was refused as rate limited.
			tried := reasons[ReasonBadPassword] + reasons[ReasonNoSuchUser] + reasons[ReasonLocked]
			limit, burst := rl.FailuresPerSecond, rl.Burst
			if tc.spray {
				limit, burst = rl.SourceFailuresPerSecond, rl.SourceBurst
			}
			if bound := burst + int(limit*seconds) + 1; tried > bound || reasons[ReasonRateLimited] == 0 {
				t.Errorf("guesser outcomes %v: want at most %d tried and some rate limited", reasons, bound)
			}
		})
	}
}

// TestLockedRefusalsCharged: the attempts refused because the account is
// locked spend the guesser's (source, name) budget, so it is refused as
// rate limited before long, but not the source's ceiling: bob, behind
// the same source, still logs in.
func TestLockedRefusalsCharged(t *testing.T) {
	h := newHarness(t, Config{RateLimit: RateLimitPolicy{FailuresPerSecond: 0.01, Burst: 4, SourceFailuresPerSecond: 0.01, SourceBurst: 3},
		Lockout: LockoutPolicy{MaxFailures: 2, Window: 1e12, Duration: 1e12}})
	h.addUser(t, "alice", "correct horse", nil)
	h.addUser(t, "bob", "bob password", nil)
	login := func(id, pw string) Result {
		return h.a.Login(context.Background(), Request{Identifier: id, Password: secret.FromString(pw),
			Protocol: ProtocolLDAP, Source: netip.MustParseAddr("192.0.2.1")})
	}
	login("alice", "wrong")
	login("alice", "wrong") // locks alice; 2 of alice's 4 and 2 of the source's 3 spent
	want := []Reason{ReasonLocked, ReasonLocked, ReasonRateLimited, ReasonRateLimited}
	for i, w := range want {
		if r := login("alice", "wrong"); r.Reason != w {
			t.Fatalf("attempt %d on the locked account: %q, want %q", i, r.Reason, w)
		}
	}
	if r := login("bob", "bob password"); !r.OK {
		t.Fatalf("bob behind the same source: %q", r.Reason)
	}
}

// TestBudgetKeys: which attempts share a budget.
func TestBudgetKeys(t *testing.T) {
	nas := netip.MustParseAddr("192.0.2.10")
	tests := []struct {
		name          string
		a, b          Request
		sameSrc, same bool
	}{
		{"radius station case and spaces", Request{Protocol: ProtocolRADIUS, Source: nas, Station: "AA-BB ", Identifier: "Alice"},
			Request{Protocol: ProtocolRADIUS, Source: nas, Station: "aa-bb", Identifier: " alice"}, true, true},
		{"radius other station", Request{Protocol: ProtocolRADIUS, Source: nas, Station: "aa", Identifier: "alice"},
			Request{Protocol: ProtocolRADIUS, Source: nas, Station: "bb", Identifier: "alice"}, false, false},
		{"radius no station is the nas", Request{Protocol: ProtocolRADIUS, Source: nas, Identifier: "alice"},
			Request{Protocol: ProtocolLDAP, Source: nas, Identifier: "bob"}, true, false},
		{"ldap ignores a station", Request{Protocol: ProtocolLDAP, Source: nas, Station: "x", Identifier: "alice"},
			Request{Protocol: ProtocolLDAP, Source: nas, Station: "y", Identifier: "alice"}, true, true},
		{"long names are cut", Request{Protocol: ProtocolLDAP, Source: nas, Identifier: string(make([]byte, 200))},
			Request{Protocol: ProtocolLDAP, Source: nas, Identifier: string(make([]byte, 300))}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sa, sb := sourceOf(tc.a), sourceOf(tc.b)
			if (sa == sb) != tc.sameSrc {
				t.Errorf("source %+v vs %+v: same %v, want %v", sa, sb, sa == sb, tc.sameSrc)
			}
			if na, nb := nameKey(sa, tc.a), nameKey(sb, tc.b); (na == nb) != tc.same {
				t.Errorf("name budget %+v vs %+v: same %v, want %v", na, nb, na == nb, tc.same)
			}
		})
	}
}

// TestBudgetMapsBounded: a spray of fresh keys does not grow the maps
// without bound.
func TestBudgetMapsBounded(t *testing.T) {
	b := newBudget()
	p := RateLimitPolicy{FailuresPerSecond: 1, Burst: 1, SourceFailuresPerSecond: 1, SourceBurst: 1}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxBuckets + 1000 {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		b.charge(Request{Protocol: ProtocolLDAP, Source: src, Identifier: "x"}, p, true, now)
	}
	if n, m := b.byName.len(), b.bySrc.len(); n > maxBuckets || m > maxBuckets {
		t.Fatalf("maps hold %d and %d buckets, bound %d", n, m, maxBuckets)
	}
	// Buckets that refilled to their burst are what pruning drops
	// first: they say nothing a missing bucket would not.
	b.byName.prune(now.Add(time.Hour))
	if n := b.byName.len(); n != 0 {
		t.Fatalf("refilled buckets kept: %d", n)
	}
}
