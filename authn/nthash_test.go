package authn

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"layeh.com/radius/rfc2759"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

func ntKeyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nt.key")
	if err := os.WriteFile(p, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mschap builds the request a peer would send for password pw.
func mschap(t *testing.T, user, pw string) MSCHAPv2Request {
	t.Helper()
	auth := bytes.Repeat([]byte{0x11}, 16)
	peer := bytes.Repeat([]byte{0x22}, 16)
	nt, err := rfc2759.GenerateNTResponse(auth, peer, []byte(user), []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return MSCHAPv2Request{Request: Request{Identifier: user, Protocol: ProtocolRADIUS, Method: "peap/mschapv2"},
		UserName: []byte(user), AuthChallenge: auth, PeerChallenge: peer, NTResponse: nt}
}

func TestNTHashCaptureAndMSCHAPv2(t *testing.T) {
	h := newHarness(t, Config{StoreNTHash: true, NTHashKeyFile: ntKeyFile(t), Lockout: LockoutPolicy{MaxFailures: 3, Window: 60e9, Duration: 60e9}})
	u := h.addUser(t, "alice", "correct horse", nil)
	ctx := context.Background()

	if r := h.a.LoginMSCHAPv2(ctx, mschap(t, "alice", "correct horse")); r.OK || r.Reason != ReasonNoNTHash {
		t.Fatalf("before any plaintext login: %+v, want no_nt_hash", r.Result)
	}
	if ev := h.events.last(); ev.Reason != string(ReasonNoNTHash) || ev.Method != "peap/mschapv2" {
		t.Fatalf("event %+v", ev)
	}
	if r := h.login("alice", "correct horse"); !r.OK {
		t.Fatalf("login: %+v", r)
	}
	sealed := h.users.get(u.ID).NTHashSealed
	if len(sealed) == 0 {
		t.Fatal("no NT hash captured at a successful login")
	}
	raw, _ := ntHash(secret.New([]byte("correct horse")))
	if bytes.Contains(sealed, raw) {
		t.Fatal("the stored NT hash is not sealed")
	}
	writes := h.users.writes
	h.login("alice", "correct horse") // same password: no new write
	if h.users.writes != writes {
		t.Fatalf("a repeat login rewrote the NT hash (%d writes)", h.users.writes-writes)
	}

	req := mschap(t, "alice", "correct horse")
	r := h.a.LoginMSCHAPv2(ctx, req)
	if !r.OK {
		t.Fatalf("MSCHAPv2: %+v", r.Result)
	}
	want, _ := rfc2759.GenerateAuthenticatorResponse(req.AuthChallenge, req.PeerChallenge, req.NTResponse, []byte("alice"), []byte("correct horse"))
	if r.AuthenticatorResponse != want {
		t.Fatalf("authenticator response %q, want %q", r.AuthenticatorResponse, want)
	}

	// Wrong password: bad_password, counted toward lockout.
	for range 3 {
		if r := h.a.LoginMSCHAPv2(ctx, mschap(t, "alice", "wrong")); r.OK || r.Reason != ReasonBadPassword {
			t.Fatalf("wrong password: %+v", r.Result)
		}
	}
	if r := h.a.LoginMSCHAPv2(ctx, req); r.OK || r.Reason != ReasonLocked {
		t.Fatalf("after 3 failures: %+v, want locked", r.Result)
	}

	// A password change brings the new NT hash.
	if err := h.a.ChangePassword(ctx, u.ID, secret.New([]byte("new password 2")), "test"); err != nil {
		t.Fatal(err)
	}
	if r := h.a.LoginMSCHAPv2(ctx, mschap(t, "alice", "correct horse")); r.OK {
		t.Fatal("the old password still works after a change")
	}
	if r := h.a.LoginMSCHAPv2(ctx, mschap(t, "alice", "new password 2")); !r.OK {
		t.Fatalf("new password: %+v", r.Result)
	}

	// A sealed hash moved to another user does not open (user id is AAD).
	h.addUser(t, "bob", "x", func(b *store.User) { b.NTHashSealed = h.users.get(u.ID).NTHashSealed })
	if r := h.a.LoginMSCHAPv2(ctx, mschap(t, "bob", "new password 2")); r.OK || r.Reason != ReasonNoNTHash {
		t.Fatalf("moved hash: %+v", r.Result)
	}
}

type observed struct{ verified, changed int }

func (o *observed) PasswordVerified(*store.User, secret.String) { o.verified++ }
func (o *observed) PasswordChanged(*store.User, secret.String)  { o.changed++ }

func TestMSCHAPv2NeverPushes(t *testing.T) {
	h := newHarness(t, Config{StoreNTHash: true, NTHashKeyFile: ntKeyFile(t)})
	o := &observed{}
	h.a.observer = o
	h.addUser(t, "carol", "pass word 9", nil)
	h.login("carol", "pass word 9")
	if r := h.a.LoginMSCHAPv2(context.Background(), mschap(t, "carol", "pass word 9")); !r.OK {
		t.Fatalf("%+v", r.Result)
	}
	if o.verified != 1 {
		t.Fatalf("observer saw %d verified passwords, want 1 (the plaintext login only)", o.verified)
	}
}

func TestNTHashOff(t *testing.T) {
	h := newHarness(t, Config{})
	u := h.addUser(t, "dave", "pass word 9", nil)
	h.login("dave", "pass word 9")
	if len(h.users.get(u.ID).NTHashSealed) != 0 {
		t.Fatal("NT hash stored with store_nt_hash off")
	}
	r := h.a.LoginMSCHAPv2(context.Background(), mschap(t, "dave", "pass word 9"))
	if r.OK || r.Reason != ReasonNoNTHash || !strings.Contains(r.Detail, "store_nt_hash is off") {
		t.Fatalf("%+v", r.Result)
	}
}

func TestNTHashConfig(t *testing.T) {
	c := Config{}
	c.Defaults()
	c.StoreNTHash = true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "nt_hash_key_file") {
		t.Fatalf("no key file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "short")
	os.WriteFile(p, []byte("short"), 0o600)
	c.NTHashKeyFile = p
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("short key: %v", err)
	}
	c.NTHashKeyFile = ntKeyFile(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
