package ldapserver

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// Inactive users (SPEC 8) and user private groups.

// fixtureUPGs lists the private group DNs of the fixture's users.
func fixtureUPGs() []string {
	d, _ := newFixture()
	var out []string
	for _, u := range d.users {
		out = append(out, "cn="+u.Username+",ou=usergroups,"+testBase)
	}
	sort.Strings(out)
	return out
}

// disabledAttrs are the markers an inactive user carries, with their values.
var disabledAttrs = map[string]string{
	"shadowExpire":         "1",
	"nsAccountLock":        "TRUE",
	"loginDisabled":        "TRUE",
	"userAccountControl":   "514",
	"pwdAccountLockedTime": "000001010000Z",
}

// readEntry reads one entry with the given attributes (all user and
// operational ones when none).
func readEntry(t *testing.T, c *ldap.Conn, dn string, attrs ...string) *ldap.Entry {
	t.Helper()
	if len(attrs) == 0 {
		attrs = []string{"*", "+"}
	}
	r, err := search(t, c, dn, ldap.ScopeBaseObject, "(objectClass=*)", attrs...)
	wantCode(t, err, 0)
	if len(r.Entries) != 1 {
		t.Fatalf("%s: %d entries", dn, len(r.Entries))
	}
	return r.Entries[0]
}

func searchDNs(t *testing.T, c *ldap.Conn, base, filter string) []string {
	t.Helper()
	r, err := search(t, c, base, ldap.ScopeWholeSubtree, filter, "1.1")
	wantCode(t, err, 0)
	return dns(r)
}

func userDNOf(name string) string { return "uid=" + name + ",ou=users," + testBase }

// wantDisabled checks an entry's disabled markers: all of them, or none.
func wantDisabled(t *testing.T, e *ldap.Entry, disabled bool) {
	t.Helper()
	for a, v := range disabledAttrs {
		got := e.GetAttributeValues(a)
		switch {
		case disabled && (len(got) != 1 || got[0] != v):
			t.Errorf("%s: %s = %q, want %q", e.DN, a, got, v)
		case !disabled && len(got) != 0:
			t.Errorf("%s: %s = %q on an active user", e.DN, a, got)
		}
	}
	// shadowAccount: on every inactive user, and on an active one only
	// to hold the password's age (shadowLastChange).
	hasShadow := slices.ContainsFunc(e.GetAttributeValues("objectClass"), func(s string) bool { return strings.EqualFold(s, "shadowAccount") })
	want := disabled || e.GetAttributeValue("shadowLastChange") != ""
	if hasShadow != want {
		t.Errorf("%s: objectClass %q (shadowAccount wanted: %v)", e.DN, e.GetAttributeValues("objectClass"), want)
	}
}

// TestInactiveUsersRendered: each way a user can be kept from logging
// in renders them disabled, out of every group's member lists and
// without memberOf; a lock that ran out and reactivation undo it all.
func TestInactiveUsersRendered(t *testing.T) {
	ts := startServer(t, false, nil)
	now := time.Now()
	for _, u := range []store.User{
		{Username: "staged1", Email: "staged1@example.test", State: store.StateStaged},
		{Username: "locked1", Email: "locked1@example.test", LockedUntil: now.Add(time.Hour)},
		{Username: "expired1", Email: "expired1@example.test", PasswordStatus: store.PasswordExpired},
		{Username: "unlocked1", Email: "unlocked1@example.test", LockedUntil: now.Add(-time.Minute)},
		{Username: "pending1", Email: "pending1@example.test", PasswordStatus: store.PasswordPending},
		{Username: "adpending1", Email: "adpending1@example.test", PasswordStatus: store.PasswordPending, DelegatedAuthority: store.AuthorityAD},
	} {
		ts.dir.addUser(u, "pw-"+u.Username)
	}
	ts.dir.addGroup("ops", 20010, "alice", "carol", "staged1", "locked1", "expired1", "unlocked1", "pending1", "adpending1")
	opsDN := "cn=ops,ou=groups," + testBase
	svc := ts.bind(t, svcDN, svcPW)

	// No password yet forbids login (SPEC 8) unless AD holds it.
	off := []string{"carol", "staged1", "locked1", "expired1", "pending1"}
	on := []string{"alice", "unlocked1", "adpending1"}
	for _, name := range off {
		e := readEntry(t, svc, userDNOf(name))
		wantDisabled(t, e, true)
		if v := e.GetAttributeValues("memberOf"); len(v) != 0 {
			t.Errorf("%s: memberOf %v while inactive", name, v)
		}
		// The entry is still there for getent passwd and id: the
		// account phase refuses it.
		if v := e.GetAttributeValues("uidNumber"); len(v) != 1 {
			t.Errorf("%s: uidNumber %v", name, v)
		}
	}
	for _, name := range on {
		e := readEntry(t, svc, userDNOf(name))
		wantDisabled(t, e, false)
		if v := e.GetAttributeValues("memberOf"); !slices.Contains(v, opsDN) {
			t.Errorf("%s: memberOf %v, want %s", name, v, opsDN)
		}
	}
	// The markers are not in "*" alone where the directories they come
	// from keep them operational.
	e := readEntry(t, svc, userDNOf("carol"), "*")
	if e.GetAttributeValue("nsAccountLock") != "" || e.GetAttributeValue("pwdAccountLockedTime") != "" {
		t.Error("nsAccountLock and pwdAccountLockedTime are operational")
	}
	if e.GetAttributeValue("shadowExpire") != "1" {
		t.Error("shadowExpire is a user attribute")
	}

	g := readEntry(t, svc, opsDN, "member", "memberUid")
	var wantDNs []string
	for _, n := range on {
		wantDNs = append(wantDNs, userDNOf(n))
	}
	sort.Strings(wantDNs)
	gotUIDs := g.GetAttributeValues("memberUid")
	sort.Strings(gotUIDs)
	wantUIDs := append([]string{}, on...)
	sort.Strings(wantUIDs)
	gotDNs := g.GetAttributeValues("member")
	sort.Strings(gotDNs)
	if !slices.Equal(gotUIDs, wantUIDs) || !slices.Equal(gotDNs, wantDNs) {
		t.Errorf("ops: memberUid %v member %v; want %v %v", gotUIDs, gotDNs, wantUIDs, wantDNs)
	}

	// A lock that ran out shows when the entry changed back.
	u := readEntry(t, svc, userDNOf("unlocked1"), "modifyTimestamp")
	if mt, _ := parseGeneralizedTime(u.GetAttributeValue("modifyTimestamp")); mt.Unix() != now.Add(-time.Minute).Unix() {
		t.Errorf("unlocked1: modifyTimestamp %s, want the end of the lock", u.GetAttributeValue("modifyTimestamp"))
	}

	// The searches SSSD and nslcd send see the same.
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		// nslcd's shadow lookup in the account phase.
		{"(&(objectClass=shadowAccount)(uid=carol))", []string{userDNOf("carol")}},
		{"(&(objectClass=shadowAccount)(uid=alice))", nil},
		// Initgroups, RFC 2307 and RFC 2307bis.
		{"(&(memberUid=carol)(objectClass=posixGroup)(cn=*)(&(gidNumber=*)(!(gidNumber=0))))", nil},
		{"(&(member=" + userDNOf("locked1") + ")(objectClass=posixGroup))", nil},
		{"(&(objectClass=posixGroup)(|(memberUid=expired1)(member=" + userDNOf("expired1") + ")))", nil},
		{"(&(objectClass=posixGroup)(memberUid=unlocked1))", []string{opsDN}},
		{"(memberOf=" + opsDN + ")", wantDNs},
		// Access filters a host may use.
		{"(&(uid=carol)(!(nsAccountLock=true)))", nil},
		{"(&(uid=alice)(!(nsAccountLock=true)))", []string{aliceDN}},
		{"(&(objectClass=posixAccount)(shadowExpire=*))", []string{userDNOf("carol"), userDNOf("expired1"), userDNOf("locked1"), userDNOf("pending1"), userDNOf("staged1")}},
		{"(&(uid=locked1)(loginDisabled=TRUE)(userAccountControl=514)(pwdAccountLockedTime=*))", []string{userDNOf("locked1")}},
	} {
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if got := searchDNs(t, svc, testBase, tc.filter); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", tc.filter, got, want)
		}
	}

	// Reactivation undoes it all at once: nothing is cached.
	ts.dir.update("carol", func(u *store.User) { u.State = store.StateActive })
	ts.dir.update("locked1", func(u *store.User) { u.LockedUntil = time.Time{} })
	for _, name := range []string{"carol", "locked1"} {
		e := readEntry(t, svc, userDNOf(name))
		wantDisabled(t, e, false)
		if !slices.Contains(e.GetAttributeValues("memberOf"), opsDN) {
			t.Errorf("%s reactivated: memberOf %v", name, e.GetAttributeValues("memberOf"))
		}
	}
	g = readEntry(t, svc, opsDN, "memberUid")
	if got := g.GetAttributeValues("memberUid"); !slices.Contains(got, "carol") || !slices.Contains(got, "locked1") || slices.Contains(got, "staged1") {
		t.Errorf("ops after reactivation: %v", got)
	}
}

// TestInactiveBoundUserDropped: a bound user who gets locked out or whose
// password expires loses access at the next request, as a suspended one
// does.
func TestInactiveBoundUserDropped(t *testing.T) {
	ts := startServer(t, false, nil)
	for name, fn := range map[string]func(*store.User){
		"locked":  func(u *store.User) { u.LockedUntil = time.Now().Add(time.Hour) },
		"expired": func(u *store.User) { u.PasswordStatus = store.PasswordExpired },
	} {
		t.Run(name, func(t *testing.T) {
			c := ts.bind(t, aliceDN, alicePW)
			readEntry(t, c, aliceDN, "uid")
			ts.dir.update("alice", fn)
			defer ts.dir.update("alice", func(u *store.User) {
				u.LockedUntil, u.PasswordStatus = time.Time{}, store.PasswordActive
			})
			_, err := search(t, c, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)", "uid")
			wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
		})
	}
}

// TestHideInactive: hide_inactive leaves inactive users (and their
// private groups) out of every search, as if deleted.
func TestHideInactive(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.HideInactive = true })
	ts.dir.addGroup("ops", 20010, "alice", "carol")
	svc := ts.bind(t, svcDN, svcPW)
	carolDN := userDNOf("carol")
	carolUPG := "cn=carol,ou=usergroups," + testBase

	check := func(visible bool) {
		t.Helper()
		for _, dn := range []string{carolDN, carolUPG} {
			_, err := search(t, svc, dn, ldap.ScopeBaseObject, "(objectClass=*)", "1.1")
			if visible {
				wantCode(t, err, 0)
			} else {
				wantCode(t, err, ldap.LDAPResultNoSuchObject)
			}
		}
		n := 0
		if visible {
			n = 1
		}
		for f, want := range map[string]int{
			"(uid=carol)":                               n,
			"(&(objectClass=posixGroup)(cn=carol))":     n, // the private group
			"(memberUid=carol)":                         n, // ops
			"(&(objectClass=shadowAccount)(uid=carol))": 0,
		} {
			if got := searchDNs(t, svc, testBase, f); len(got) != want {
				t.Errorf("%s: %v (visible %v)", f, got, visible)
			}
		}
		users := searchDNs(t, svc, "ou=users,"+testBase, "(objectClass=posixAccount)")
		if want := totalUsers - 1 + n; len(users) != want {
			t.Errorf("%d users listed, want %d", len(users), want)
		}
		r, err := svc.SearchWithPaging(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=posixAccount)", []string{"1.1"}, nil), 4)
		wantCode(t, err, 0)
		if want := totalUsers - 1 + n; len(r.Entries) != want {
			t.Errorf("paged: %d users, want %d", len(r.Entries), want)
		}
	}
	check(false)
	ts.dir.update("carol", func(u *store.User) { u.State = store.StateActive })
	check(true)
	if e := readEntry(t, svc, carolDN); e.GetAttributeValue("shadowExpire") != "" {
		t.Error("reactivated carol still disabled")
	}
}

// countingDir counts the user walks and offers the optional uidNumber
// lookup, so a test sees which searches walk every user.
type countingDir struct {
	*fakeDir
	lists, byUID atomic.Int32
}

func (d *countingDir) ListUsers(after string, limit int) ([]*store.User, string, error) {
	d.lists.Add(1)
	return d.fakeDir.ListUsers(after, limit)
}

// indexedDir adds UserByUIDNumber to countingDir.
type indexedDir struct{ *countingDir }

func (d indexedDir) UserByUIDNumber(n int) (*store.User, error) {
	d.byUID.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if u.UIDNumber == n {
			return u.Copy(), nil
		}
	}
	return nil, notFound("uid number " + strconv.Itoa(n))
}

// serveDir runs a server on a Directory of the test's own.
func serveDir(t *testing.T, dir Directory, auth Authenticator, mod func(*Config)) *ldap.Conn {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", BaseDN: testBase, ExemptLoopback: true}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, auth, dir, newTestLogger(newSyncBuffer()), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	<-s.Ready()
	plain, _ := s.Addrs()
	c, err := ldap.DialURL("ldap://" + plain.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(10 * time.Second)
	if err := c.Bind(svcDN, svcPW); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUserPrivateGroups: with user_gid_number = 0 every user's gidNumber
// names a posixGroup cn=<username>,ou=usergroups, found the way SSSD and
// nslcd look groups up, and kept out of ou=groups.
func TestUserPrivateGroups(t *testing.T) {
	d, auth := newFixture()
	cd := &countingDir{fakeDir: d}
	svc := serveDir(t, cd, auth, nil)
	alice := readEntry(t, svc, aliceDN, "uidNumber", "gidNumber")
	gid := alice.GetAttributeValue("gidNumber")
	if gid == "" || gid != alice.GetAttributeValue("uidNumber") {
		t.Fatalf("alice: uidNumber %s gidNumber %s", alice.GetAttributeValue("uidNumber"), gid)
	}
	upgDN := "cn=alice,ou=usergroups," + testBase

	g := readEntry(t, svc, upgDN)
	for a, want := range map[string]string{"cn": "alice", "gidNumber": gid, "structuralObjectClass": "posixGroup", "entryDN": upgDN} {
		if got := g.GetAttributeValue(a); got != want {
			t.Errorf("%s: %s = %q, want %q", upgDN, a, got, want)
		}
	}
	if oc := g.GetAttributeValues("objectClass"); !slices.Equal(oc, []string{"top", "posixGroup"}) {
		t.Errorf("objectClass %v", oc)
	}
	if g.GetAttributeValue("member") != "" || g.GetAttributeValue("memberUid") != "" {
		t.Error("a private group lists no members")
	}
	if g.GetAttributeValue("entryUUID") == readEntry(t, svc, aliceDN, "entryUUID").GetAttributeValue("entryUUID") {
		t.Error("the private group shares the user's entryUUID")
	}

	for _, tc := range []struct {
		filter string
		want   []string
		walks  bool // may walk every user
	}{
		// getgrgid and getgrnam, nslcd's and SSSD's forms.
		{"(&(objectClass=posixGroup)(gidNumber=" + gid + "))", []string{upgDN}, true},
		{"(&(gidNumber=" + gid + ")(objectClass=posixGroup)(cn=*)(&(gidNumber=*)(!(gidNumber=0))))", []string{upgDN}, true},
		{"(&(objectClass=posixGroup)(cn=alice))", []string{upgDN}, false},
		{"(&(cn=ALICE)(objectClass=posixGroup)(cn=*)(&(gidNumber=*)(!(gidNumber=0))))", []string{upgDN}, false},
		// Initgroups: private groups have no members and are not walked.
		{"(&(objectClass=posixGroup)(memberUid=alice))", []string{adminsDN, staffDN}, false},
		{"(&(member=" + aliceDN + ")(objectClass=posixGroup)(cn=*))", []string{adminsDN, staffDN}, false},
		{"(&(objectClass=posixGroup)(|(memberUid=alice)(member=" + aliceDN + ")))", []string{adminsDN, staffDN}, false},
		// User lookups do not walk them either.
		{"(&(objectClass=posixAccount)(uid=alice))", []string{aliceDN}, false},
		{"(uid=alice)", []string{aliceDN}, false},
		// Products listing groups to authorize by see groupOfNames only.
		{"(objectClass=groupOfNames)", []string{adminsDN, "cn=empty,ou=groups," + testBase, staffDN}, false},
		{"(&(objectClass=posixGroup)(gidNumber=99999999))", nil, true},
	} {
		before := cd.lists.Load()
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if got := searchDNs(t, svc, testBase, tc.filter); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", tc.filter, got, want)
		}
		if walked := cd.lists.Load() != before; walked && !tc.walks {
			t.Errorf("%s walked the users", tc.filter)
		}
	}

	// Not in ordinary ou=groups listings; their own container lists them.
	if got := searchDNs(t, svc, "ou=groups,"+testBase, "(objectClass=posixGroup)"); len(got) != 3 {
		t.Errorf("ou=groups lists %v", got)
	}
	if got := searchDNs(t, svc, "ou=usergroups,"+testBase, "(objectClass=posixGroup)"); !slices.Equal(got, fixtureUPGs()) {
		t.Errorf("ou=usergroups lists %v", got)
	}
	r, err := search(t, svc, testBase, ldap.ScopeSingleLevel, "(objectClass=organizationalUnit)", "ou")
	wantCode(t, err, 0)
	if got := dns(r); !slices.Contains(got, "ou=usergroups,"+testBase) {
		t.Errorf("containers: %v", got)
	}
	// Paged, across the phases, each entry once.
	pr, err := svc.SearchWithPaging(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=posixGroup)", []string{"1.1"}, nil), 4)
	wantCode(t, err, 0)
	if got := dns(pr); len(got) != 3+totalUsers || len(slices.Compact(got)) != len(got) {
		t.Errorf("paged posixGroup: %d entries: %v", len(got), got)
	}
	// An ordinary user sees their own private group only.
	ac := serveDirConnAs(t, cd, auth, aliceDN, alicePW)
	if got := searchDNs(t, ac, "ou=usergroups,"+testBase, "(objectClass=*)"); !slices.Equal(got, []string{upgDN, "ou=usergroups," + testBase}) {
		t.Errorf("alice sees %v", got)
	}

	// A real group of the user's name keeps the name.
	d.addGroup("bob", 20020)
	if got := searchDNs(t, svc, testBase, "(&(objectClass=posixGroup)(cn=bob))"); !slices.Equal(got, []string{"cn=bob,ou=groups," + testBase}) {
		t.Errorf("cn=bob: %v", got)
	}
	_, err = search(t, svc, "cn=bob,ou=usergroups,"+testBase, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultNoSuchObject)
	_, err = search(t, svc, "cn=nobody,ou=usergroups,"+testBase, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultNoSuchObject)
}

// serveDirConnAs binds a second connection, as name, to a fresh server on dir.
func serveDirConnAs(t *testing.T, dir Directory, auth Authenticator, name, pw string) *ldap.Conn {
	t.Helper()
	c := serveDir(t, dir, auth, nil)
	if err := c.Bind(name, pw); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUserPrivateGroupByIndex: a Directory with UserByUIDNumber answers
// getgrgid without walking the users.
func TestUserPrivateGroupByIndex(t *testing.T) {
	d, auth := newFixture()
	cd := &countingDir{fakeDir: d}
	svc := serveDir(t, indexedDir{cd}, auth, nil)
	gid := readEntry(t, svc, aliceDN, "gidNumber").GetAttributeValue("gidNumber")
	before := cd.lists.Load()
	got := searchDNs(t, svc, testBase, "(&(objectClass=posixGroup)(|(gidNumber="+gid+")(gidNumber=junk)))")
	if !slices.Equal(got, []string{"cn=alice,ou=usergroups," + testBase}) {
		t.Errorf("got %v", got)
	}
	if cd.lists.Load() != before || cd.byUID.Load() != 1 {
		t.Errorf("walks %d, index lookups %d", cd.lists.Load()-before, cd.byUID.Load())
	}
}

// TestSharedPrimaryGroup: with user_gid_number set there are no private
// groups and no ou=usergroups.
func TestSharedPrimaryGroup(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.UserGIDNumber = 20001 })
	svc := ts.bind(t, svcDN, svcPW)
	if gid := readEntry(t, svc, aliceDN, "gidNumber").GetAttributeValue("gidNumber"); gid != "20001" {
		t.Errorf("gidNumber %s", gid)
	}
	_, err := search(t, svc, "ou=usergroups,"+testBase, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultNoSuchObject)
	if got := searchDNs(t, svc, testBase, "(objectClass=posixGroup)"); len(got) != 3 {
		t.Errorf("posixGroups: %v", got)
	}
	if got := searchDNs(t, svc, testBase, "(gidNumber=20001)"); !slices.Contains(got, staffDN) || len(got) != totalUsers+1 {
		t.Errorf("gidNumber=20001: %d entries", len(got))
	}
}

// TestPlanSkipsUserGroups: a filter that needs an attribute private
// groups never carry (uid above all: user lookups) rules them out
// without walking the users.
func TestPlanSkipsUserGroups(t *testing.T) {
	srv := &Server{dir: newFakeDir(), tree: &tree{}}
	for _, tc := range []struct {
		filter string
		none   bool
	}{
		{"(uid=alice)", true},
		{"(uid=*)", true},
		{"(uid=al*)", true},
		{"(&(objectClass=posixGroup)(uid=alice))", true},
		{"(|(uid=a)(uid=b))", true},
		{"(|(uid=a)(cn=b))", false},
		{"(!(uid=alice))", false},
		{"(cn=alice)", false},
		{"(unknownAttr=x)", true},
		{"(cn;lang-en=x)", true},
		{"(&)", false},
		{"(|)", true}, // absolute false
		{"(memberUid=alice)", true},
		{"(objectClass=groupOfNames)", true},
	} {
		f, err := compileFilter(t, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		if got := srv.planner(phUserGroups).describe(f) == "none"; got != tc.none {
			t.Errorf("%s: ruled out = %v, want %v", tc.filter, got, tc.none)
		}
	}
}

// TestRealStackInactive: the store's own users (state, LockedUntil,
// password status) render the same way, and private groups resolve.
func TestRealStackInactive(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Logger: newTestLogger(newSyncBuffer())})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	au, err := authn.New(authn.Config{Hash: authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}}, st, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGroup(&store.Group{Name: "staff"})
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*store.User{}
	for _, name := range []string{"alice", "carol", "svc"} {
		u, err := st.CreateUser(&store.User{Username: name, Email: name + "@example.test", State: store.StateActive, ServiceAccount: name == "svc"})
		if err != nil {
			t.Fatal(err)
		}
		if err := au.ChangePassword(context.Background(), u.ID, secret.FromString(name+"-password-1"), "test"); err != nil {
			t.Fatal(err)
		}
		if name != "svc" {
			if err := st.AddMember(g.ID, u.ID); err != nil {
				t.Fatal(err)
			}
		}
		users[name] = u
	}
	if _, err := st.UpdateUser(users["carol"].ID, func(u *store.User) error { u.State = store.StateSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	c := serveReal(t, au, st)()
	if err := c.Bind("svc", "svc-password-1"); err != nil {
		t.Fatal(err)
	}
	staff := "cn=staff,ou=groups," + testBase
	if got := readEntry(t, c, staff, "memberUid").GetAttributeValues("memberUid"); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("staff memberUid %v", got)
	}
	wantDisabled(t, readEntry(t, c, userDNOf("carol")), true)
	wantDisabled(t, readEntry(t, c, aliceDN), false)

	if _, err := st.UpdateUser(users["alice"].ID, func(u *store.User) error { u.LockedUntil = time.Now().Add(time.Hour); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateUser(users["carol"].ID, func(u *store.User) error { u.State = store.StateActive; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := readEntry(t, c, staff, "memberUid").GetAttributeValues("memberUid"); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("staff memberUid %v after alice locked, carol back", got)
	}
	wantDisabled(t, readEntry(t, c, aliceDN), true)

	gid := strconv.Itoa(users["carol"].UIDNumber)
	if got := searchDNs(t, c, testBase, "(&(objectClass=posixGroup)(gidNumber="+gid+"))"); !slices.Equal(got, []string{"cn=carol,ou=usergroups," + testBase}) {
		t.Errorf("gidNumber=%s: %v", gid, got)
	}
	if _, err := st.GroupByName("carol"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no real group carol: %v", err)
	}
}

func TestConfigHideInactive(t *testing.T) {
	for text, want := range map[string]bool{
		"[ldap]\nlisten = \"127.0.0.1:3890\"\nbase_dn = \"dc=x\"\n":                        false,
		"[ldap]\nlisten = \"127.0.0.1:3890\"\nbase_dn = \"dc=x\"\nhide_inactive = true\n":  true,
		"[ldap]\nlisten = \"127.0.0.1:3890\"\nbase_dn = \"dc=x\"\nhide_inactive = false\n": false,
	} {
		var c Config
		if err := testutil.ParseBlock(t, "ldap", &c, text); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if c.HideInactive != want {
			t.Errorf("%q: HideInactive = %v", text, c.HideInactive)
		}
	}
}
