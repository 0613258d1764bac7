package authn

import (
	"context"
	"net/netip"
	"testing"

	"github.com/gatewayd/gatewayd/secret"
)

// TestFailureBudgetBehindNAS (C3): a guesser behind a NAS spends the
// budget of its own (NAS, Calling-Station-Id) — or, without a station,
// (NAS, name tried) — and is throttled, while another user behind the
// same NAS logs in. LDAP keeps one budget per TCP peer. Refusals of an
// already-locked account are not charged to the source.
func TestFailureBudgetBehindNAS(t *testing.T) {
	nas := netip.MustParseAddr("192.0.2.10")
	type attempt struct {
		proto           Protocol
		id, pw, station string
	}
	tests := []struct {
		name    string
		guesser attempt // sent 5 times with a wrong password
		victim  attempt // then once with the right password
		// victimOK: the victim logs in; guesserLimited: the guesser's
		// next attempt (right password) is refused as rate limited.
		victimOK, guesserLimited bool
	}{
		{"radius other station", attempt{ProtocolRADIUS, "alice", "wrong", "aa-aa-aa-aa-aa-01"},
			attempt{ProtocolRADIUS, "bob", "bob password", "aa-aa-aa-aa-aa-02"}, true, true},
		{"radius same station", attempt{ProtocolRADIUS, "alice", "wrong", "AA-AA-AA-AA-AA-01"},
			attempt{ProtocolRADIUS, "bob", "bob password", "aa-aa-aa-aa-aa-01"}, false, true},
		{"radius no station other name", attempt{ProtocolRADIUS, "alice", "wrong", ""},
			attempt{ProtocolRADIUS, "bob", "bob password", ""}, true, true},
		{"radius no station same name", attempt{ProtocolRADIUS, "alice", "wrong", ""},
			attempt{ProtocolRADIUS, "Alice", "correct horse", ""}, false, true},
		{"ldap same peer", attempt{ProtocolLDAP, "alice", "wrong", ""},
			attempt{ProtocolLDAP, "bob", "bob password", ""}, false, true},
		{"ldap station ignored", attempt{ProtocolLDAP, "alice", "wrong", "x"},
			attempt{ProtocolLDAP, "bob", "bob password", "y"}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{RateLimit: RateLimitPolicy{FailuresPerSecond: 0.01, Burst: 3},
				Lockout: LockoutPolicy{MaxFailures: 100, Window: 1e12, Duration: 1e12}})
			h.addUser(t, "alice", "correct horse", nil)
			h.addUser(t, "bob", "bob password", nil)
			do := func(at attempt, pw string) Result {
				return h.a.Login(context.Background(), Request{Identifier: at.id, Password: secret.FromString(pw),
					Protocol: at.proto, Source: nas, Station: at.station})
			}
			for range 5 {
				do(tc.guesser, tc.guesser.pw)
			}
			if r := do(tc.guesser, "correct horse"); (r.Reason == ReasonRateLimited) != tc.guesserLimited {
				t.Errorf("guesser: ok=%v %q, rate limited want %v", r.OK, r.Reason, tc.guesserLimited)
			}
			if r := do(tc.victim, tc.victim.pw); r.OK != tc.victimOK {
				t.Errorf("victim: ok=%v %q, want ok %v", r.OK, r.Reason, tc.victimOK)
			}
		})
	}
}

// TestLockedRefusalsNotCharged: once an account is locked, the attempts
// refused for the lock do not spend the source's budget, so the other
// users behind that source are not refused because of them.
func TestLockedRefusalsNotCharged(t *testing.T) {
	h := newHarness(t, Config{RateLimit: RateLimitPolicy{FailuresPerSecond: 0.01, Burst: 4},
		Lockout: LockoutPolicy{MaxFailures: 2, Window: 1e12, Duration: 1e12}})
	h.addUser(t, "alice", "correct horse", nil)
	h.addUser(t, "bob", "bob password", nil)
	// Over LDAP: one budget for the source, whatever the name.
	login := func(id, pw string) Result {
		return h.a.Login(context.Background(), Request{Identifier: id, Password: secret.FromString(pw),
			Protocol: ProtocolLDAP, Source: netip.MustParseAddr("192.0.2.1")})
	}
	login("alice", "wrong")
	login("alice", "wrong") // locks alice; 2 of 4 spent
	for i := range 10 {
		if r := login("alice", "wrong"); r.Reason != ReasonLocked {
			t.Fatalf("attempt %d on the locked account: %q", i, r.Reason)
		}
	}
	if r := login("bob", "bob password"); !r.OK {
		t.Fatalf("bob behind the same source: %q", r.Reason)
	}
}
