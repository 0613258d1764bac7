package ldapserver

import (
	"crypto/tls"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/store"
)

func wantCode(t testing.TB, err error, code uint16) {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	if !ldap.IsErrorWithCode(err, code) {
		t.Fatalf("want LDAP result %d (%s), got %v", code, ldap.LDAPResultCodeMap[code], err)
	}
}

func search(t testing.TB, c *ldap.Conn, base string, scope int, filter string, attrs ...string) (*ldap.SearchResult, error) {
	t.Helper()
	return c.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
}

func dns(r *ldap.SearchResult) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, e := range r.Entries {
		out = append(out, strings.ToLower(e.DN))
	}
	sort.Strings(out)
	return out
}

func TestBindForms(t *testing.T) {
	ts := startServer(t, false, nil)
	for _, tc := range []struct {
		name, dn, pw string
		code         uint16
	}{
		{"user DN", aliceDN, alicePW, 0},
		{"DN case and spaces", "UID=Alice, OU=Users,  DC=Example , dc=TEST", alicePW, 0},
		{"DN by OID", "0.9.2342.19200300.100.1.1=alice,ou=users,dc=example,dc=test", alicePW, 0},
		{"username", "alice", alicePW, 0},
		{"username case", "ALICE", alicePW, 0},
		{"email", "alice@example.test", alicePW, 0},
		{"UPN", "alice@" + fakeUPNRealm, alicePW, 0},
		{"wrong password", aliceDN, "nope", ldap.LDAPResultInvalidCredentials},
		{"unknown user", "uid=nobody,ou=users," + testBase, "x", ldap.LDAPResultInvalidCredentials},
		{"unknown bare name", "nobody", "x", ldap.LDAPResultInvalidCredentials},
		{"DN outside tree", "uid=alice,ou=people,dc=other", alicePW, ldap.LDAPResultInvalidCredentials},
		{"group DN", staffDN, alicePW, ldap.LDAPResultInvalidCredentials},
		{"suspended", "carol", "carol-pass-1", ldap.LDAPResultInvalidCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			err := c.Bind(tc.dn, tc.pw)
			wantCode(t, err, tc.code)
			var le *ldap.Error
			if errors.As(err, &le) && le.Err != nil && le.Err.Error() != "" {
				t.Errorf("a failed bind says why: %q", le.Err.Error())
			}
		})
	}
	// The DN was resolved to a username before authn saw it.
	ts.auth.mu.Lock()
	first := ts.auth.logins[0]
	ts.auth.mu.Unlock()
	if first.Identifier != "alice" || !first.ByUsername {
		t.Errorf("DN bind reached authn as %+v", first)
	}
}

func TestBindSpecialCases(t *testing.T) {
	ts := startServer(t, false, nil)
	c := ts.dial(t)
	// Anonymous: allowed, and sees only the root DSE.
	wantCode(t, c.UnauthenticatedBind(""), 0)
	// Unauthenticated bind (a name, no password) must not pass as a login.
	_, err := c.SimpleBind(&ldap.SimpleBindRequest{Username: aliceDN, AllowEmptyPassword: true})
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	// A failed bind leaves the connection anonymous.
	wantCode(t, c.Bind(aliceDN, alicePW), 0)
	wantCode(t, c.Bind(aliceDN, "wrong"), ldap.LDAPResultInvalidCredentials)
	_, err = search(t, c, testBase, ldap.ScopeWholeSubtree, "(uid=alice)")
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
	// SASL is not offered.
	wantCode(t, c.ExternalBind(), ldap.LDAPResultAuthMethodNotSupported)
	if ts.auth.loginCount() != 2 {
		t.Errorf("authn saw %d logins, want 2", ts.auth.loginCount())
	}
}

func TestBindNamesConfig(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.BindNames = []string{BindNameEmail} })
	wantCode(t, ts.dial(t).Bind("alice@example.test", alicePW), 0)
	wantCode(t, ts.dial(t).Bind(aliceDN, alicePW), 0) // a DN is always accepted
	wantCode(t, ts.dial(t).Bind("alice", alicePW), ldap.LDAPResultInvalidCredentials)
	wantCode(t, ts.dial(t).Bind("alice@"+fakeUPNRealm, alicePW), ldap.LDAPResultInvalidCredentials)

	ts2 := startServer(t, false, func(c *Config) { c.BindNames = []string{BindNameUsername} })
	wantCode(t, ts2.dial(t).Bind("alice", alicePW), 0)
	wantCode(t, ts2.dial(t).Bind("alice@example.test", alicePW), ldap.LDAPResultInvalidCredentials)
	if n := ts2.auth.loginCount(); n != 1 {
		t.Errorf("a disabled name kind still reached authn: %d logins", n)
	}
}

func TestInsecureBindRefused(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.ExemptLoopback = false })
	wantCode(t, ts.dial(t).Bind(aliceDN, alicePW), ldap.LDAPResultConfidentialityRequired)
	if ts.auth.loginCount() != 0 {
		t.Error("a refused cleartext bind reached authn")
	}
	if v := ts.metric(t, "gatewayd_ldap_binds_total", map[string]string{"outcome": "insecure"}); v != 1 {
		t.Errorf("binds_total{insecure} = %v", v)
	}
	ts2 := startServer(t, false, func(c *Config) { c.ExemptLoopback = false; c.AllowInsecureBind = true })
	wantCode(t, ts2.dial(t).Bind(aliceDN, alicePW), 0)
}

func TestSearchVisibility(t *testing.T) {
	ts := startServer(t, false, nil)
	alice := ts.bind(t, aliceDN, alicePW)
	r, err := search(t, alice, testBase, ldap.ScopeWholeSubtree, "(objectClass=*)")
	wantCode(t, err, 0)
	// With user_gid_number = 0, alice's own private group and its container too.
	want := []string{adminsDN, staffDN, "ou=groups," + testBase, aliceDN, "ou=users," + testBase, testBase, "ou=usergroups," + testBase, "cn=alice,ou=usergroups," + testBase}
	sort.Strings(want)
	if got := dns(r); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("alice sees %v, want %v", got, want)
	}
	_, err = search(t, alice, bobDN, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultNoSuchObject)
	_, err = search(t, alice, "cn=empty,ou=groups,"+testBase, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultNoSuchObject)

	svc := ts.bind(t, svcDN, svcPW)
	r, err = search(t, svc, testBase, ldap.ScopeWholeSubtree, "(objectClass=inetOrgPerson)", "uid")
	wantCode(t, err, 0)
	if len(r.Entries) != totalUsers {
		t.Errorf("service account sees %d users, want %d", len(r.Entries), totalUsers)
	}
	r, err = search(t, svc, "ou=groups,"+testBase, ldap.ScopeSingleLevel, "(objectClass=*)", "cn")
	wantCode(t, err, 0)
	if len(r.Entries) != 3 {
		t.Errorf("groups: %v", dns(r))
	}

	wide := startServer(t, false, func(c *Config) { c.UsersSeeAll = true })
	r, err = search(t, wide.bind(t, aliceDN, alicePW), "ou=users,"+testBase, ldap.ScopeSingleLevel, "(uid=*)", "1.1")
	wantCode(t, err, 0)
	if len(r.Entries) != totalUsers {
		t.Errorf("users_see_all: alice sees %d users", len(r.Entries))
	}
}

func TestSearchScopesAndBases(t *testing.T) {
	ts := startServer(t, false, nil)
	svc := ts.bind(t, svcDN, svcPW)
	count := func(base string, scope int, filter string) int {
		t.Helper()
		r, err := search(t, svc, base, scope, filter, "1.1")
		wantCode(t, err, 0)
		return len(r.Entries)
	}
	// Base, three containers (ou=usergroups with user_gid_number = 0),
	// the users, the groups and one private group per user.
	all := 4 + totalUsers + 3 + totalUsers
	for _, tc := range []struct {
		base   string
		scope  int
		filter string
		want   int
	}{
		{testBase, ldap.ScopeBaseObject, "(objectClass=*)", 1},
		{testBase, ldap.ScopeSingleLevel, "(objectClass=*)", 3},
		{testBase, ldap.ScopeWholeSubtree, "(objectClass=*)", all},
		{testBase, 3, "(objectClass=*)", all - 1}, // subordinate subtree
		{"", ldap.ScopeSingleLevel, "(objectClass=*)", 1},
		{"", ldap.ScopeWholeSubtree, "(objectClass=*)", all},
		{"OU=Users, DC=example,DC=test", ldap.ScopeSingleLevel, "(objectClass=*)", totalUsers},
		{"ou=users," + testBase, ldap.ScopeWholeSubtree, "(objectClass=*)", totalUsers + 1},
		{aliceDN, ldap.ScopeBaseObject, "(objectClass=*)", 1},
		{aliceDN, ldap.ScopeSingleLevel, "(objectClass=*)", 0},
		{staffDN, ldap.ScopeWholeSubtree, "(objectClass=*)", 1},
		{testBase, ldap.ScopeWholeSubtree, "(uid=alice)", 1},
		{testBase, ldap.ScopeWholeSubtree, "(|(uid=alice)(uid=bob)(uid=nobody))", 2},
		{testBase, ldap.ScopeWholeSubtree, "(&(objectClass=posixAccount)(uid=ALICE))", 1},
		{testBase, ldap.ScopeWholeSubtree, "(memberOf=" + staffDN + ")", 2},
		{testBase, ldap.ScopeWholeSubtree, "(&(objectClass=person)(memberOf=" + staffDN + ")(!(uid=bob)))", 1},
		{testBase, ldap.ScopeWholeSubtree, "(&(objectClass=posixGroup)(memberUid=alice))", 2},
		{testBase, ldap.ScopeWholeSubtree, "(member=" + bobDN + ")", 1},
		{testBase, ldap.ScopeWholeSubtree, "(cn=staff)", 1},
		{testBase, ldap.ScopeWholeSubtree, "(&(objectClass=groupOfNames)(uid=alice))", 0},
		{testBase, ldap.ScopeWholeSubtree, "(mail=user1*)", 10},
		{testBase, ldap.ScopeWholeSubtree, "(uidNumber>=10029)", 1},
	} {
		if got := count(tc.base, tc.scope, tc.filter); got != tc.want {
			t.Errorf("base %q scope %d %s: %d entries, want %d", tc.base, tc.scope, tc.filter, got, tc.want)
		}
	}
	for _, tc := range []struct {
		base    string
		code    uint16
		matched string
	}{
		{"uid=nobody,ou=users," + testBase, ldap.LDAPResultNoSuchObject, "ou=users," + testBase},
		{"ou=machines," + testBase, ldap.LDAPResultNoSuchObject, testBase},
		{"dc=other,dc=test", ldap.LDAPResultNoSuchObject, ""},
		{"not a dn", ldap.LDAPResultInvalidDNSyntax, ""},
	} {
		_, err := search(t, svc, tc.base, ldap.ScopeBaseObject, "(objectClass=*)")
		wantCode(t, err, tc.code)
		var le *ldap.Error
		if errors.As(err, &le) && tc.code == ldap.LDAPResultNoSuchObject && le.MatchedDN != tc.matched {
			t.Errorf("%s: matchedDN %q, want %q", tc.base, le.MatchedDN, tc.matched)
		}
	}
}

func TestRootDSEAndAnonymous(t *testing.T) {
	ts := startServer(t, true, nil)
	c := ts.dial(t)
	r, err := search(t, c, "", ldap.ScopeBaseObject, "(objectClass=*)", "+", "*")
	wantCode(t, err, 0)
	if len(r.Entries) != 1 {
		t.Fatalf("root DSE: %d entries", len(r.Entries))
	}
	e := r.Entries[0]
	if e.GetAttributeValue("namingContexts") != testBase || e.GetAttributeValue("supportedLDAPVersion") != "3" ||
		e.GetAttributeValue("vendorName") != "gatewayd" || e.GetAttributeValue("vendorVersion") == "" {
		t.Errorf("root DSE: %+v", e.Attributes)
	}
	exts := strings.Join(e.GetAttributeValues("supportedExtension"), " ")
	for _, oid := range []string{oidStartTLS, oidPasswordModify, oidWhoAmI} {
		if !strings.Contains(exts, oid) {
			t.Errorf("supportedExtension lacks %s", oid)
		}
	}
	if !strings.Contains(strings.Join(e.GetAttributeValues("supportedControl"), " "), oidPagedResults) {
		t.Error("supportedControl lacks paged results")
	}
	_, err = search(t, c, testBase, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
}

func TestSuspendedUserLosesAccess(t *testing.T) {
	ts := startServer(t, false, nil)
	c := ts.bind(t, aliceDN, alicePW)
	_, err := search(t, c, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, 0)
	ts.dir.update("alice", func(u *store.User) { u.State = store.StateSuspended })
	_, err = search(t, c, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
	ts.dir.update("alice", func(u *store.User) { u.State = store.StateActive })
	_, err = search(t, c, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights) // the session was dropped
}

func TestAttributeSelection(t *testing.T) {
	ts := startServer(t, false, nil)
	svc := ts.bind(t, svcDN, svcPW)
	get := func(attrs ...string) *ldap.Entry {
		t.Helper()
		r, err := search(t, svc, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)", attrs...)
		wantCode(t, err, 0)
		if len(r.Entries) != 1 {
			t.Fatalf("%d entries", len(r.Entries))
		}
		for _, a := range r.Entries[0].Attributes {
			for _, v := range a.Values {
				if strings.Contains(v, "argon2") || strings.EqualFold(a.Name, "userPassword") {
					t.Fatalf("password hash served in %s", a.Name)
				}
			}
		}
		return r.Entries[0]
	}
	names := func(e *ldap.Entry) string {
		var n []string
		for _, a := range e.Attributes {
			n = append(n, a.Name)
		}
		return strings.Join(n, ",")
	}
	e := get()
	for _, want := range []string{"objectClass", "uid", "cn", "sn", "givenName", "displayName", "mail", "memberOf", "uidNumber", "gidNumber", "homeDirectory", "loginShell"} {
		if len(e.GetAttributeValues(want)) == 0 {
			t.Errorf("default attributes lack %s: %s", want, names(e))
		}
	}
	if e.GetAttributeValue("entryUUID") != "" {
		t.Error("operational attribute returned without +")
	}
	if got := e.GetAttributeValues("memberOf"); len(got) != 2 {
		t.Errorf("memberOf = %v", got)
	}
	if got := e.GetAttributeValues("objectClass"); strings.Join(got, ",") != "top,person,organizationalPerson,inetOrgPerson,posixAccount" {
		t.Errorf("objectClass = %v", got)
	}
	e = get("+")
	if e.GetAttributeValue("uid") != "" || e.GetAttributeValue("entryUUID") != "7f1c2b9e-4d3a-4c2b-9a8e-1f2e3d4c5b6a" ||
		e.GetAttributeValue("createTimestamp") != "20240501120000Z" || e.GetAttributeValue("modifyTimestamp") != "20240501130000Z" {
		t.Errorf("+ gave %s", names(e))
	}
	e = get("*", "+")
	if e.GetAttributeValue("uid") == "" || e.GetAttributeValue("entryUUID") == "" {
		t.Errorf("*,+ gave %s", names(e))
	}
	if e = get("1.1"); len(e.Attributes) != 0 {
		t.Errorf("1.1 gave %s", names(e))
	}
	if e = get("CN", "mail", "userPassword", "nosuch"); names(e) != "cn,mail" {
		t.Errorf("named attributes gave %s", names(e))
	}
	r, err := svc.Search(ldap.NewSearchRequest(aliceDN, ldap.ScopeBaseObject, 0, 0, 0, true, "(objectClass=*)", []string{"uid"}, nil))
	wantCode(t, err, 0)
	if a := r.Entries[0].Attributes; len(a) != 1 || len(a[0].Values) != 0 {
		t.Errorf("typesOnly: %+v", a)
	}
	// The hash cannot be probed through a filter either.
	r, err = search(t, svc, testBase, ldap.ScopeWholeSubtree, "(userPassword=*)")
	wantCode(t, err, 0)
	if len(r.Entries) != 0 {
		t.Error("userPassword presence matched")
	}
}

func TestSizeLimit(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.SizeLimit = 5 })
	svc := ts.bind(t, svcDN, svcPW)
	r, err := search(t, svc, "ou=users,"+testBase, ldap.ScopeSingleLevel, "(uid=*)", "1.1")
	wantCode(t, err, ldap.LDAPResultSizeLimitExceeded)
	if r == nil || len(r.Entries) != 5 {
		t.Errorf("server size limit: got %v", dns(r))
	}
	r, err = svc.Search(ldap.NewSearchRequest("ou=users,"+testBase, ldap.ScopeSingleLevel, 0, 3, 0, false, "(uid=*)", []string{"1.1"}, nil))
	wantCode(t, err, ldap.LDAPResultSizeLimitExceeded)
	if r == nil || len(r.Entries) != 3 {
		t.Errorf("client size limit: got %v", dns(r))
	}
	// Exactly the limit is not exceeded.
	r, err = svc.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 2, 0, false, "(|(uid=alice)(uid=bob))", []string{"1.1"}, nil))
	wantCode(t, err, 0)
	if len(r.Entries) != 2 {
		t.Errorf("limit 2 on 2 entries: %v", dns(r))
	}
}

func TestPagedResults(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.SizeLimit = 10 })
	svc := ts.bind(t, svcDN, svcPW)
	for _, size := range []uint32{1, 4, 7, 100} {
		r, err := svc.SearchWithPaging(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=posixAccount)", []string{"uid"}, nil), size)
		wantCode(t, err, 0)
		got := dns(r)
		seen := map[string]bool{}
		for _, dn := range got {
			if seen[dn] {
				t.Errorf("page size %d: %s twice", size, dn)
			}
			seen[dn] = true
		}
		if len(got) != totalUsers {
			t.Errorf("page size %d: %d entries, want %d", size, len(got), totalUsers)
		}
	}

	// A cookie from one search does not fit another.
	ctl := ldap.NewControlPaging(3)
	r, err := svc.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=*)", nil, []ldap.Control{ctl}))
	wantCode(t, err, 0)
	cookie := ldap.FindControl(r.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging).Cookie
	if len(cookie) == 0 {
		t.Fatal("no cookie after the first page")
	}
	ctl.SetCookie(cookie)
	_, err = svc.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(cn=*)", nil, []ldap.Control{ctl}))
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	forged := append([]byte{}, cookie...)
	forged[1]++
	ctl.SetCookie(forged)
	_, err = svc.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=*)", nil, []ldap.Control{ctl}))
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	// Another user cannot continue it.
	ctl.SetCookie(cookie)
	_, err = ts.bind(t, "resetter", resetterPW).Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=*)", nil, []ldap.Control{ctl}))
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	// Page size 0 abandons the paged search.
	ctl.PagingSize = 0
	r, err = svc.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=*)", nil, []ldap.Control{ctl}))
	wantCode(t, err, 0)
	if len(r.Entries) != 0 {
		t.Errorf("page size 0 returned %d entries", len(r.Entries))
	}
	// A client size limit bounds the whole paged search.
	_, err = svc.SearchWithPaging(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 6, 0, false, "(uid=*)", nil, nil), 4)
	wantCode(t, err, ldap.LDAPResultSizeLimitExceeded)
}

func TestTimeLimit(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.TimeLimit = 50 * time.Millisecond })
	svc := ts.bind(t, svcDN, svcPW)
	gate := make(chan struct{})
	ts.dir.mu.Lock()
	ts.dir.listGate = gate
	ts.dir.mu.Unlock()
	release := time.AfterFunc(300*time.Millisecond, func() { close(gate) })
	defer release.Stop()
	_, err := search(t, svc, "ou=users,"+testBase, ldap.ScopeSingleLevel, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultTimeLimitExceeded)
	if v := ts.metric(t, "gatewayd_ldap_searches_total", map[string]string{"outcome": "time_limit"}); v != 1 {
		t.Errorf("searches_total{time_limit} = %v", v)
	}
}

func TestPasswordModifyGoLDAP(t *testing.T) {
	ts := startServer(t, false, nil)
	// Anonymous: refused.
	_, err := ts.dial(t).PasswordModify(ldap.NewPasswordModifyRequest("", "x", "new-password-1"))
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)

	bob := ts.bind(t, bobDN, bobPW)
	_, err = bob.PasswordModify(ldap.NewPasswordModifyRequest("", "wrong", "new-password-1"))
	wantCode(t, err, ldap.LDAPResultInvalidCredentials)
	_, err = bob.PasswordModify(ldap.NewPasswordModifyRequest("", "", "new-password-1"))
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform) // old password required
	_, err = bob.PasswordModify(ldap.NewPasswordModifyRequest("", bobPW, ""))
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform) // no generation
	_, err = bob.PasswordModify(ldap.NewPasswordModifyRequest("", bobPW, "short"))
	wantCode(t, err, ldap.LDAPResultConstraintViolation)
	_, err = bob.PasswordModify(ldap.NewPasswordModifyRequest(aliceDN, "", "new-password-1"))
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
	_, err = bob.PasswordModify(ldap.NewPasswordModifyRequest("uid=nobody,ou=users,"+testBase, "", "new-password-1"))
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights) // no existence oracle
	_, err = bob.PasswordModify(ldap.NewPasswordModifyRequest(bobDN, bobPW, "bob-new-pass"))
	wantCode(t, err, 0)
	wantCode(t, ts.dial(t).Bind(bobDN, "bob-new-pass"), 0)

	dave := ts.bind(t, "dave", "dave-pass-12")
	_, err = dave.PasswordModify(ldap.NewPasswordModifyRequest("", "dave-pass-12", "dave-new-pass"))
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	if !strings.Contains(err.Error(), "Active Directory") {
		t.Errorf("AD authority message: %v", err)
	}

	svc := ts.bind(t, svcDN, svcPW) // a service account, but not a resetter
	_, err = svc.PasswordModify(ldap.NewPasswordModifyRequest(aliceDN, "", "new-password-1"))
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)

	rs := ts.bind(t, resetterDN, resetterPW)
	_, err = rs.PasswordModify(ldap.NewPasswordModifyRequest("uid=nobody,ou=users,"+testBase, "", "new-password-1"))
	wantCode(t, err, ldap.LDAPResultNoSuchObject)
	_, err = rs.PasswordModify(ldap.NewPasswordModifyRequest("alice", "", "alice-reset-1"))
	wantCode(t, err, 0)
	wantCode(t, ts.dial(t).Bind(aliceDN, "alice-reset-1"), 0)
	wantCode(t, ts.dial(t).Bind(aliceDN, alicePW), ldap.LDAPResultInvalidCredentials)

	ts.auth.mu.Lock()
	changes := append([]fakeChange{}, ts.auth.changes...)
	ts.auth.mu.Unlock()
	if len(changes) != 2 || changes[0].Actor != "ldap:bob" || changes[1].Actor != "ldap:resetter" || changes[1].UserID != "7f1c2b9e-4d3a-4c2b-9a8e-1f2e3d4c5b6a" {
		t.Errorf("changes = %+v", changes)
	}

	// Not over a cleartext connection when binds are refused there.
	ts2 := startServer(t, true, func(c *Config) { c.ExemptLoopback = false })
	c := ts2.dial(t)
	wantCode(t, c.StartTLS(ts2.pki.tlsConfig()), 0)
	wantCode(t, c.Bind(bobDN, bobPW), 0)
	_, err = c.PasswordModify(ldap.NewPasswordModifyRequest("", bobPW, "bob-new-pass"))
	wantCode(t, err, 0)
}

func TestWhoAmIAndReadOnly(t *testing.T) {
	ts := startServer(t, false, nil)
	c := ts.dial(t)
	r, err := c.WhoAmI(nil)
	wantCode(t, err, 0)
	if r.AuthzID != "" {
		t.Errorf("anonymous whoami = %q", r.AuthzID)
	}
	wantCode(t, c.Bind("alice@example.test", alicePW), 0)
	r, err = c.WhoAmI(nil)
	wantCode(t, err, 0)
	if r.AuthzID != "dn:"+aliceDN {
		t.Errorf("whoami = %q", r.AuthzID)
	}
	wantCode(t, c.Add(ldap.NewAddRequest("uid=x,ou=users,"+testBase, nil)), ldap.LDAPResultUnwillingToPerform)
	wantCode(t, c.Del(ldap.NewDelRequest(aliceDN, nil)), ldap.LDAPResultUnwillingToPerform)
	m := ldap.NewModifyRequest(aliceDN, nil)
	m.Replace("mail", []string{"x@example.test"})
	wantCode(t, c.Modify(m), ldap.LDAPResultUnwillingToPerform)
	_, err = c.Compare(aliceDN, "uid", "alice")
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	_, err = c.Extended(ldap.NewExtendedRequest("1.2.3.4", nil))
	wantCode(t, err, ldap.LDAPResultProtocolError)
	// An unknown critical control is refused; a non-critical one ignored.
	_, err = c.Search(ldap.NewSearchRequest(aliceDN, 0, 0, 0, 0, false, "(objectClass=*)", nil, []ldap.Control{ldap.NewControlString("1.2.3.4.5", true, "")}))
	wantCode(t, err, ldap.LDAPResultUnavailableCriticalExtension)
	_, err = c.Search(ldap.NewSearchRequest(aliceDN, 0, 0, 0, 0, false, "(objectClass=*)", nil, []ldap.Control{ldap.NewControlString("1.2.3.4.5", false, "")}))
	wantCode(t, err, 0)
}

func TestTLSGoLDAP(t *testing.T) {
	ts := startServer(t, true, func(c *Config) { c.ExemptLoopback = false })
	c := ts.dial(t)
	wantCode(t, c.Bind(aliceDN, alicePW), ldap.LDAPResultConfidentialityRequired)
	wantCode(t, c.StartTLS(ts.pki.tlsConfig()), 0)
	wantCode(t, c.Bind(aliceDN, alicePW), 0)
	if err := c.StartTLS(ts.pki.tlsConfig()); err == nil {
		t.Error("second StartTLS accepted")
	}

	sc, err := ldap.DialURL(ts.surl, ldap.DialWithTLSConfig(ts.pki.tlsConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	wantCode(t, sc.Bind("alice", alicePW), 0)
	r, err := search(t, sc, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)", "uid")
	wantCode(t, err, 0)
	if len(r.Entries) != 1 {
		t.Errorf("LDAPS search: %v", dns(r))
	}

	// SIGHUP path: a new certificate is served after the reload.
	serial := func() int64 {
		t.Helper()
		_, l := ts.s.Addrs()
		conn, err := tls.Dial("tcp", l.String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the serial is all we read
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 2 {
		t.Fatalf("serial %d before reload", s)
	}
	ts.pki.issue(t, 3)
	if err := ts.s.ReloadCertificates(); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 3 {
		t.Errorf("serial %d after reload, want 3", s)
	}
	// A broken file keeps the old certificate.
	if err := writeFile(ts.pki.keyFile, "garbage"); err != nil {
		t.Fatal(err)
	}
	if err := ts.s.ReloadCertificates(); err == nil {
		t.Error("reload of a broken key succeeded")
	}
	if s := serial(); s != 3 {
		t.Errorf("serial %d after failed reload", s)
	}
}

func TestStartTLSNotConfigured(t *testing.T) {
	ts := startServer(t, false, nil)
	c := ts.dial(t)
	wantCode(t, c.StartTLS(&tls.Config{InsecureSkipVerify: true}), ldap.LDAPResultUnavailable) //nolint:gosec // never gets that far
	// go-ldap cannot use a connection after a refused StartTLS: a new one.
	r, err := search(t, ts.dial(t), "", ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, 0)
	if strings.Contains(strings.Join(r.Entries[0].GetAttributeValues("supportedExtension"), " "), oidStartTLS) {
		t.Error("StartTLS advertised without a certificate")
	}
}

func TestMetrics(t *testing.T) {
	ts := startServer(t, false, nil)
	c := ts.bind(t, aliceDN, alicePW)
	_ = ts.dial(t).Bind(aliceDN, "wrong")
	_, _ = search(t, c, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)")
	_, _ = search(t, c, bobDN, ldap.ScopeBaseObject, "(objectClass=*)")
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gatewayd_ldap_binds_total", map[string]string{"outcome": "success"}, 1},
		{"gatewayd_ldap_binds_total", map[string]string{"outcome": "failure"}, 1},
		{"gatewayd_ldap_searches_total", map[string]string{"outcome": "success"}, 1},
		{"gatewayd_ldap_searches_total", map[string]string{"outcome": "no_such_object"}, 1},
		{"gatewayd_ldap_request_duration_seconds", map[string]string{"op": "bind"}, 2},
		{"gatewayd_ldap_request_duration_seconds", map[string]string{"op": "search"}, 2},
		{"gatewayd_ldap_open_connections", nil, 2},
	} {
		if got := ts.metric(t, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }
