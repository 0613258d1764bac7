package ldapserver

import (
	"context"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// The daemon wires *store.Store and *authn.Authenticator in directly.
var (
	_ Directory     = (*store.Store)(nil)
	_ Authenticator = (*authn.Authenticator)(nil)
)

// TestRealStack runs the door on the real store and authn: bind, search,
// memberOf, password modify and its version bump, a suspended user.
func TestRealStack(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Logger: newTestLogger(newSyncBuffer())})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	au, err := authn.New(authn.Config{Hash: authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}}, st, st, nil)
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
		nu, _ = st.UserByID(nu.ID)
		return nu
	}
	alice := mk(store.User{Username: "alice", Email: "alice@example.test", FirstName: "Alice", LastName: "Example"}, alicePW)
	mk(store.User{Username: "svc", Email: "svc@example.test", ServiceAccount: true, PasswordResetter: true}, svcPW)
	g, err := st.CreateGroup(&store.Group{Name: "staff"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddMember(g.ID, alice.ID); err != nil {
		t.Fatal(err)
	}

	dial := serveReal(t, au, st)

	c := dial()
	wantCode(t, c.Bind("alice@example.test", alicePW), 0)
	wantCode(t, dial().Bind(aliceDN, "wrong"), ldap.LDAPResultInvalidCredentials)
	svc := dial()
	wantCode(t, svc.Bind("svc", svcPW), 0)
	r, err := search(t, svc, testBase, ldap.ScopeWholeSubtree, "(&(objectClass=posixAccount)(memberOf=cn=staff,ou=groups,"+testBase+"))", "uid", "uidNumber", "memberOf")
	wantCode(t, err, 0)
	if len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("uid") != "alice" || r.Entries[0].GetAttributeValue("uidNumber") == "0" {
		t.Fatalf("memberOf search: %v", dns(r))
	}
	r, err = search(t, svc, "ou=groups,"+testBase, ldap.ScopeSingleLevel, "(memberUid=alice)", "gidNumber", "member")
	wantCode(t, err, 0)
	if len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("member") != aliceDN {
		t.Fatalf("group search: %+v", r.Entries)
	}

	before := alice.PasswordVersion
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest("", alicePW, "alice-new-pass"))
	wantCode(t, err, 0)
	after, _ := st.UserByID(alice.ID)
	if after.PasswordVersion != before+1 {
		t.Errorf("password version %d -> %d", before, after.PasswordVersion)
	}
	wantCode(t, dial().Bind(aliceDN, "alice-new-pass"), 0)
	wantCode(t, dial().Bind(aliceDN, alicePW), ldap.LDAPResultInvalidCredentials)

	if _, err := st.UpdateUser(alice.ID, func(u *store.User) error { u.State = store.StateSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err = search(t, c, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
	wantCode(t, dial().Bind(aliceDN, "alice-new-pass"), ldap.LDAPResultInvalidCredentials)
}
