package authn

import (
	"context"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

func TestLoginCertificate(t *testing.T) {
	h, ad, obs := newADHarness(t, Config{UPNDomains: []string{"corp.example.test"}, Lockout: LockoutPolicy{MaxFailures: 2, Window: time.Minute, Duration: time.Minute}})
	h.addDelegated("dan")
	h.addUser(t, "alice", "correct horse", nil)
	h.addUser(t, "sus", "correct horse", func(u *store.User) { u.State = store.StateSuspended })
	h.addUser(t, "stg", "correct horse", func(u *store.User) { u.State = store.StateStaged })
	h.addUser(t, "pend", "correct horse", func(u *store.User) { u.PasswordStatus = store.PasswordPending })
	h.addUser(t, "exp", "correct horse", func(u *store.User) { u.PasswordStatus = store.PasswordExpired })
	h.addUser(t, "locked", "correct horse", func(u *store.User) { u.LockedUntil = h.clock.now().Add(time.Hour) })
	ctx := context.Background()
	cert := func(id string) Result {
		return h.a.LoginCertificate(ctx, Request{Identifier: id, Protocol: ProtocolRADIUS, Method: "eap-tls"}, "cert serial=1 from=email")
	}
	for _, tc := range []struct {
		id     string
		ok     bool
		reason Reason
	}{
		{"alice", true, ReasonNone},
		{"alice@example.test", true, ReasonNone},      // email
		{"alice@corp.example.test", true, ReasonNone}, // UPN domain
		{"alice@elsewhere.test", false, ReasonNoSuchUser},
		{"nobody", false, ReasonNoSuchUser},
		{"sus", false, ReasonSuspended},
		{"stg", false, ReasonStaged},
		{"pend", true, ReasonNone}, // a certificate user needs no password
		{"exp", true, ReasonNone},  // an expired password says nothing of the certificate
		{"locked", false, ReasonLocked},
		{"dan", true, ReasonNone}, // AD-delegated: the certificate is the proof, AD is not asked
	} {
		r := cert(tc.id)
		if r.OK != tc.ok || r.Reason != tc.reason {
			t.Errorf("%s: ok %v reason %q, want %v %q", tc.id, r.OK, r.Reason, tc.ok, tc.reason)
		}
		ev := h.events.last()
		if ev.Method != "eap-tls" || ev.Type != store.EventRADIUSAuth || (ev.Outcome == store.OutcomeSuccess) != tc.ok || ev.Reason != string(tc.reason) {
			t.Errorf("%s: event %+v", tc.id, ev)
		}
		if ev.Detail != "cert serial=1 from=email" {
			t.Errorf("%s: event detail %q", tc.id, ev.Detail)
		}
	}
	// Refusals do not count toward lockout: no password was guessed.
	for range 5 {
		cert("nobody")
		cert("sus")
	}
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatalf("password login after certificate refusals: %+v", r)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.verified) != 1 { // the one password login above
		t.Fatalf("the PasswordObserver saw %d logins, want only the password one", len(obs.verified))
	}
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.calls != 0 {
		t.Fatalf("AD asked %d times for certificate logins", ad.calls)
	}
}
