package ldapserver

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// RFC 3062 section 2 without a session: userIdentity and oldPasswd prove
// the user (authn.ChangeOwnPassword), which is how an expired password
// gets replaced.

// startTLSConn dials ts (which must have TLS) and runs StartTLS.
func (ts *testServer) startTLSConn(t *testing.T) *ldap.Conn {
	t.Helper()
	c := ts.dial(t)
	wantCode(t, c.StartTLS(ts.pki.tlsConfig()), 0)
	return c
}

func TestPasswordModifyUnbound(t *testing.T) {
	const newPW = "brand-new-pass-1"
	for _, tc := range []struct {
		name      string
		cfg       func(*Config)
		plain     bool // no StartTLS
		anonymous bool // an anonymous bind first
		setup     func(*testServer)
		user, old string
		newPw     string // default newPW; "-": none
		code      uint16
		diag      string // part of the diagnostic message
		// for successes: the user whose password changed
		changed string
		// what ChangeOwnPassword was asked (nil: not called)
		req *authn.Request
	}{
		{name: "DN", user: aliceDN, old: alicePW, changed: "alice",
			req: &authn.Request{Identifier: "alice", ByUsername: true}},
		{name: "DN in another case and spacing", user: "UID=Alice, OU=Users, DC=Example, DC=Test", old: alicePW, changed: "alice",
			req: &authn.Request{Identifier: "Alice", ByUsername: true}},
		{name: "username", user: "alice", old: alicePW, changed: "alice",
			req: &authn.Request{Identifier: "alice"}},
		{name: "email", user: "alice@example.test", old: alicePW, changed: "alice",
			req: &authn.Request{Identifier: "alice@example.test"}},
		{name: "UPN", user: "alice@" + fakeUPNRealm, old: alicePW, changed: "alice",
			req: &authn.Request{Identifier: "alice@" + fakeUPNRealm}},
		{name: "after an anonymous bind", anonymous: true, user: aliceDN, old: alicePW, changed: "alice",
			req: &authn.Request{Identifier: "alice", ByUsername: true}},
		{name: "expired password is proof here", user: aliceDN, old: alicePW, changed: "alice",
			setup: func(ts *testServer) {
				ts.dir.update("alice", func(u *store.User) { u.PasswordStatus = store.PasswordExpired })
			},
			req: &authn.Request{Identifier: "alice", ByUsername: true}},
		{name: "aged password is proof here", user: aliceDN, old: alicePW, changed: "alice",
			setup: func(ts *testServer) {
				ts.auth.maxAge = time.Minute
				ts.dir.update("alice", func(u *store.User) { u.PasswordChangedAt = time.Now().Add(-time.Hour) })
			},
			req: &authn.Request{Identifier: "alice", ByUsername: true}},
		{name: "cleartext from loopback (exempt_loopback)", cfg: func(c *Config) { c.ExemptLoopback = true }, plain: true,
			user: aliceDN, old: alicePW, changed: "alice", req: &authn.Request{Identifier: "alice", ByUsername: true}},

		{name: "no user identity", old: alicePW, code: ldap.LDAPResultInsufficientAccessRights, diag: "bind first"},
		{name: "no old password", user: aliceDN, code: ldap.LDAPResultInsufficientAccessRights, diag: "old password"},
		{name: "cleartext", plain: true, user: aliceDN, old: alicePW, code: ldap.LDAPResultConfidentialityRequired},
		{name: "no new password", user: aliceDN, old: alicePW, newPw: "-", code: ldap.LDAPResultUnwillingToPerform, diag: "generation"},
		{name: "wrong old password", user: aliceDN, old: "not-it-at-all", code: ldap.LDAPResultInvalidCredentials,
			req: &authn.Request{Identifier: "alice", ByUsername: true}},
		{name: "no such user", user: "uid=nobody,ou=users," + testBase, old: "whatever-1", code: ldap.LDAPResultInvalidCredentials,
			req: &authn.Request{Identifier: "nobody", ByUsername: true}},
		{name: "a DN outside the users", user: "uid=alice,ou=people," + testBase, old: alicePW, code: ldap.LDAPResultInvalidCredentials},
		{name: "suspended", user: "carol", old: "carol-pass-1", code: ldap.LDAPResultInvalidCredentials,
			req: &authn.Request{Identifier: "carol"}},
		{name: "AD authority", user: "dave", old: "dave-pass-12", code: ldap.LDAPResultUnwillingToPerform, diag: "Active Directory",
			req: &authn.Request{Identifier: "dave"}},
		{name: "weak new password", user: aliceDN, old: alicePW, newPw: "short", code: ldap.LDAPResultConstraintViolation, diag: "at least 8",
			req: &authn.Request{Identifier: "alice", ByUsername: true}},
		{name: "busy", user: aliceDN, old: alicePW, code: ldap.LDAPResultBusy,
			setup: func(ts *testServer) { ts.auth.ownErr = authn.ErrBusy }, req: &authn.Request{Identifier: "alice", ByUsername: true}},

		// bind_names applies as to a bind, before any change.
		{name: "username kind off", cfg: func(c *Config) { c.BindNames = []string{BindNameEmail, BindNameUPN} },
			user: "alice", old: alicePW, code: ldap.LDAPResultInvalidCredentials},
		{name: "DN with username kind off", cfg: func(c *Config) { c.BindNames = []string{BindNameEmail} },
			user: aliceDN, old: alicePW, changed: "alice", req: &authn.Request{Identifier: "alice", ByUsername: true}},
		{name: "email only: a UPN refused", cfg: func(c *Config) { c.BindNames = []string{BindNameEmail} },
			user: "alice@" + fakeUPNRealm, old: alicePW, code: ldap.LDAPResultInvalidCredentials},
		{name: "email only: an email accepted", cfg: func(c *Config) { c.BindNames = []string{BindNameEmail} },
			user: "alice@example.test", old: alicePW, changed: "alice", req: &authn.Request{Identifier: "alice@example.test"}},
		{name: "UPN only: an email refused", cfg: func(c *Config) { c.BindNames = []string{BindNameUPN} },
			user: "alice@example.test", old: alicePW, code: ldap.LDAPResultInvalidCredentials},
		{name: "UPN only: a UPN accepted", cfg: func(c *Config) { c.BindNames = []string{BindNameUPN} },
			user: "alice@" + fakeUPNRealm, old: alicePW, changed: "alice", req: &authn.Request{Identifier: "alice@" + fakeUPNRealm}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, true, func(c *Config) {
				c.ExemptLoopback = false
				if tc.cfg != nil {
					tc.cfg(c)
				}
			})
			if tc.setup != nil {
				tc.setup(ts)
			}
			var c *ldap.Conn
			if tc.plain {
				c = ts.dial(t)
			} else {
				c = ts.startTLSConn(t)
			}
			if tc.anonymous {
				wantCode(t, c.UnauthenticatedBind(""), 0)
			}
			newPw := tc.newPw
			switch newPw {
			case "":
				newPw = newPW
			case "-":
				newPw = ""
			}
			before := ts.dir.password("alice")
			_, err := c.PasswordModify(ldap.NewPasswordModifyRequest(tc.user, tc.old, newPw))
			if tc.code == 0 {
				wantCode(t, err, 0)
			} else {
				wantCode(t, err, tc.code)
				if tc.diag != "" && !strings.Contains(err.Error(), tc.diag) {
					t.Errorf("diagnostic %q, want it to say %q", err, tc.diag)
				}
			}

			ts.auth.mu.Lock()
			owns := append([]authn.Request{}, ts.auth.owns...)
			changes := append([]fakeChange{}, ts.auth.changes...)
			ts.auth.mu.Unlock()
			switch {
			case tc.req == nil && len(owns) != 0:
				t.Errorf("ChangeOwnPassword called: %+v", owns)
			case tc.req != nil && len(owns) != 1:
				t.Errorf("ChangeOwnPassword calls: %+v", owns)
			case tc.req != nil:
				got := owns[0]
				if got.Identifier != tc.req.Identifier || got.ByUsername != tc.req.ByUsername || got.Protocol != authn.ProtocolLDAP ||
					got.Source != netip.MustParseAddr("127.0.0.1") || !strings.HasPrefix(got.Client, "ldap#") {
					t.Errorf("ChangeOwnPassword request %+v, want identifier %q byUsername %v", got, tc.req.Identifier, tc.req.ByUsername)
				}
			}
			if tc.changed == "" {
				if len(changes) != 0 || ts.dir.password("alice") != before {
					t.Errorf("a password changed: %+v", changes)
				}
				return
			}
			if len(changes) != 1 || changes[0].Actor != "ldap:self" {
				t.Errorf("changes %+v", changes)
			}
			// The new password binds, the old one no longer does, and the
			// user is active again.
			dn := userDNOf(tc.changed)
			tls := ts.startTLSConn(t)
			wantCode(t, tls.Bind(dn, newPW), 0)
			readEntry(t, tls, dn)
			wantCode(t, ts.startTLSConn(t).Bind(dn, alicePW), ldap.LDAPResultInvalidCredentials)
			if u, _ := ts.dir.UserByUsername(tc.changed); u.PasswordStatus != store.PasswordActive {
				t.Errorf("password status %s", u.PasswordStatus)
			}
		})
	}
}

// TestExpiredBindThenChange: the whole story against the fake: an expired
// password fails a bind, changes through the unbound operation on the
// same connection, and the new password binds there.
func TestExpiredBindThenChange(t *testing.T) {
	ts := startServer(t, true, func(c *Config) { c.ExemptLoopback = false })
	ts.auth.maxAge = time.Hour
	ts.dir.update("alice", func(u *store.User) { u.PasswordChangedAt = time.Now().Add(-2 * time.Hour) })
	c := ts.startTLSConn(t)
	wantCode(t, c.Bind(aliceDN, alicePW), ldap.LDAPResultInvalidCredentials)
	// The failed bind left the connection anonymous: no identity, no change.
	_, err := c.PasswordModify(ldap.NewPasswordModifyRequest("", alicePW, "alice-fresh-pass"))
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest(aliceDN, alicePW, "alice-fresh-pass"))
	wantCode(t, err, 0)
	wantCode(t, c.Bind(aliceDN, "alice-fresh-pass"), 0)
	if e := readEntry(t, c, aliceDN); e.GetAttributeValue("shadowExpire") != "" || e.GetAttributeValue("shadowMax") != "1" {
		t.Errorf("after the change: shadowExpire %q shadowMax %q", e.GetAttributeValue("shadowExpire"), e.GetAttributeValue("shadowMax"))
	}
	// The bound flows are as before: alice changes her own password with
	// the old one on her session.
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest("", "alice-fresh-pass", "alice-third-pass"))
	wantCode(t, err, 0)
	wantCode(t, ts.startTLSConn(t).Bind(aliceDN, "alice-third-pass"), 0)
}

// TestRealStackExpiry: the same on the real store and authn, with
// max_password_age: the aged password is rendered (shadowMax, the
// inactive markers), refused by a bind, accepted as proof by the unbound
// change, and the new one binds.
func TestRealStackExpiry(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Logger: newTestLogger(newSyncBuffer())})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	au, err := authn.New(authn.Config{Hash: authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}, MaxPasswordAge: time.Hour,
		MinPasswordLength: 8, MaxPasswordLength: 64}, st, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mk := func(u store.User, pw string) *store.User {
		t.Helper()
		u.State = store.StateActive
		nu, err := st.CreateUser(&u)
		if err != nil {
			t.Fatal(err)
		}
		if err := au.ChangePassword(ctx, nu.ID, secret.FromString(pw), "test"); err != nil {
			t.Fatal(err)
		}
		return nu
	}
	alice := mk(store.User{Username: "alice", Email: "alice@example.test", Attributes: map[string]string{"manager": "svc", "title": "Engineer"}}, alicePW)
	mk(store.User{Username: "svc", Email: "svc@example.test", ServiceAccount: true}, svcPW)
	aged, err := st.UpdateUser(alice.ID, func(u *store.User) error { u.PasswordChangedAt = time.Now().Add(-2 * time.Hour); return nil })
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.CreateUser(&store.User{Username: "dave", Email: "dave@example.test", State: store.StateActive,
		PasswordAuthority: store.AuthorityAD, DelegatedAuthority: store.AuthorityAD, PasswordStatus: store.PasswordDelegated})
	if err != nil {
		t.Fatal(err)
	}

	dial := serveReal(t, au, st)
	svc := dial()
	wantCode(t, svc.Bind("svc", svcPW), 0)
	e := readEntry(t, svc, aliceDN)
	day := strconv.FormatInt(aged.PasswordChangedAt.Unix()/86400, 10)
	if e.GetAttributeValue("shadowLastChange") != day || e.GetAttributeValue("shadowMax") != "1" ||
		e.GetAttributeValue("manager") != svcDN || e.GetAttributeValue("title") != "Engineer" {
		t.Errorf("alice: shadowLastChange %q (want %s) shadowMax %q manager %q title %q", e.GetAttributeValue("shadowLastChange"), day,
			e.GetAttributeValue("shadowMax"), e.GetAttributeValue("manager"), e.GetAttributeValue("title"))
	}
	wantDisabled(t, e, true) // aged out: inactive before any login records it
	if v := readEntry(t, svc, userDNOf("dave")).GetAttributeValues("shadowLastChange"); len(v) != 0 {
		t.Errorf("dave (AD) shadowLastChange %q", v)
	}

	wantCode(t, dial().Bind(aliceDN, alicePW), ldap.LDAPResultInvalidCredentials)
	if u, _ := st.UserByID(alice.ID); u.PasswordStatus != store.PasswordExpired {
		t.Fatalf("after the refused bind: status %s", u.PasswordStatus)
	}
	c := dial()
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest(aliceDN, "wrong-password", "alice-fresh-pass"))
	wantCode(t, err, ldap.LDAPResultInvalidCredentials)
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest(aliceDN, alicePW, "short"))
	wantCode(t, err, ldap.LDAPResultConstraintViolation)
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest("dave", "whatever-1", "dave-fresh-pass"))
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest("alice@example.test", alicePW, "alice-fresh-pass"))
	wantCode(t, err, 0)
	u, _ := st.UserByID(alice.ID)
	if u.PasswordStatus != store.PasswordActive || u.PasswordVersion != aged.PasswordVersion+1 {
		t.Errorf("after the change: status %s version %d (was %d)", u.PasswordStatus, u.PasswordVersion, aged.PasswordVersion)
	}
	wantCode(t, c.Bind(aliceDN, "alice-fresh-pass"), 0)
	wantCode(t, dial().Bind(aliceDN, alicePW), ldap.LDAPResultInvalidCredentials)
	wantDisabled(t, readEntry(t, svc, aliceDN), false)
}
