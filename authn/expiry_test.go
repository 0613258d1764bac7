package authn

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

func TestMaxPasswordAge(t *testing.T) {
	h := newHarness(t, Config{MaxPasswordAge: 90 * 24 * time.Hour, CacheTTL: time.Hour})
	changed := h.clock.now()
	h.addUser(t, "ann", "Ann-Pw-0001", func(u *store.User) { u.PasswordChangedAt = changed })
	h.addUser(t, "old", "Old-Pw-0001", nil) // no change time recorded: never expires
	h.addUser(t, "svc", "Svc-Pw-0001", func(u *store.User) { u.PasswordChangedAt, u.ServiceAccount = changed, true })
	h.addUser(t, "adu", "Adu-Pw-0001", func(u *store.User) {
		u.PasswordChangedAt, u.PasswordAuthority = changed, store.AuthorityAD
	})
	if got := h.a.PasswordExpiresAt(h.users.get("id-ann")); !got.Equal(changed.Add(90 * 24 * time.Hour)) {
		t.Fatalf("expires at %v", got)
	}
	for _, id := range []string{"id-old", "id-adu", "id-svc"} {
		if !h.a.PasswordExpiresAt(h.users.get(id)).IsZero() {
			t.Fatalf("%s: passwords without a change time, owned by AD, or of a service account have no expiry", id)
		}
	}
	if r := h.login("ann", "Ann-Pw-0001"); !r.OK {
		t.Fatalf("fresh password refused: %v", r.Reason)
	}
	h.clock.advance(90*24*time.Hour - time.Second)
	if r := h.login("ann", "Ann-Pw-0001"); !r.OK {
		t.Fatalf("refused a second before expiry: %v", r.Reason)
	}
	h.clock.advance(time.Second)
	// Refused although the credential cache holds the password.
	if r := h.login("ann", "Ann-Pw-0001"); r.OK || r.Reason != ReasonExpired {
		t.Fatalf("at max age: ok=%v reason=%v, want expired", r.OK, r.Reason)
	}
	if st := h.users.get("id-ann").PasswordStatus; st != store.PasswordExpired {
		t.Fatalf("status %q, want expired recorded", st)
	}
	if r, _ := h.a.LoginCached(Request{Identifier: "ann", Password: secret.FromString("Ann-Pw-0001"), Protocol: ProtocolRADIUS}); r.OK {
		t.Fatal("the inline RADIUS path accepted an expired password")
	}
	if r := h.login("old", "Old-Pw-0001"); !r.OK {
		t.Fatal("a password with no change time expired")
	}
	if r := h.login("svc", "Svc-Pw-0001"); !r.OK {
		t.Fatal("a service account's password expired: the hosts binding with it would be cut off")
	}
}

func TestChangeOwnPassword(t *testing.T) {
	h := newHarness(t, Config{MaxPasswordAge: 24 * time.Hour, Lockout: LockoutPolicy{MaxFailures: 3, Window: time.Hour, Duration: time.Hour}})
	h.addUser(t, "bo", "Bo-Old-Pw-1", func(u *store.User) { u.PasswordChangedAt = h.clock.now() })
	h.addUser(t, "cy", "Cy-Pw-00001", func(u *store.User) { u.State = store.StateSuspended })
	h.addUser(t, "di", "Di-Pw-00001", func(u *store.User) { u.PasswordAuthority = store.AuthorityAD })
	h.clock.advance(25 * time.Hour)
	if r := h.login("bo", "Bo-Old-Pw-1"); r.Reason != ReasonExpired {
		t.Fatalf("want expired, got %v", r.Reason)
	}
	change := func(id, old, nw string) error {
		_, err := h.a.ChangeOwnPassword(context.Background(), Request{Identifier: id, Password: secret.FromString(old),
			Protocol: ProtocolLDAP, Source: netip.MustParseAddr("192.0.2.9")}, secret.FromString(nw), nil)
		return err
	}
	tests := []struct {
		name, id, old, nw string
		want              error
	}{
		{"wrong old password", "bo", "nope-nope-1", "Bo-New-Pw-2", ErrNotProven},
		{"weak new password", "bo", "Bo-Old-Pw-1", "short", ErrWeakPassword},
		{"suspended", "cy", "Cy-Pw-00001", "Cy-New-Pw-2", ErrNotProven},
		{"unknown user", "zed", "whatever-1", "Zed-New-Pw2", ErrNotProven},
		{"AD owns it", "di", "Di-Pw-00001", "Di-New-Pw-2", ErrAuthorityAD},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := change(tc.id, tc.old, tc.nw); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The caller's own rule runs after the proof and can still refuse:
	// nothing changes then.
	refused := errors.New("a bound directory would refuse it")
	var seen string
	_, err := h.a.ChangeOwnPassword(context.Background(), Request{Identifier: "bo", Password: secret.FromString("Bo-Old-Pw-1"),
		Protocol: ProtocolLDAP}, secret.FromString("Bo-New-Pw-2"), func(u *store.User) error { seen = u.Username; return refused })
	if !errors.Is(err, refused) || seen != "bo" || h.users.get("id-bo").PasswordVersion != 1 {
		t.Fatalf("accept refusing: err %v, saw %q, version %d", err, seen, h.users.get("id-bo").PasswordVersion)
	}
	if _, err := h.a.ChangeOwnPassword(context.Background(), Request{Identifier: "bo", Password: secret.FromString("wrong-guess-0"),
		Protocol: ProtocolLDAP}, secret.FromString("Bo-New-Pw-2"), func(*store.User) error { t.Fatal("accept ran before the proof"); return nil }); !errors.Is(err, ErrNotProven) {
		t.Fatalf("wrong old password: %v", err)
	}
	if err := change("bo", "Bo-Old-Pw-1", "Bo-New-Pw-2"); err != nil {
		t.Fatalf("an expired user proving the old password: %v", err)
	}
	u := h.users.get("id-bo")
	if u.PasswordStatus != store.PasswordActive || u.PasswordVersion != 2 || !u.PasswordChangedAt.Equal(h.clock.now()) {
		t.Fatalf("after the change: %+v", u)
	}
	if r := h.login("bo", "Bo-New-Pw-2"); !r.OK {
		t.Fatalf("the new password does not log in: %v", r.Reason)
	}
	if r := h.login("bo", "Bo-Old-Pw-1"); r.OK {
		t.Fatal("the old password still logs in")
	}
	// The expired status is proof for a change only, never for a login:
	// and a wrong old password counts toward lockout like a login.
	for i := 0; i < 3; i++ {
		change("bo", "wrong-guess-1", "Bo-New-Pw-3")
	}
	if r := h.login("bo", "Bo-New-Pw-2"); r.Reason != ReasonLocked {
		t.Fatalf("three wrong old passwords: want locked, got %v", r.Reason)
	}
}
