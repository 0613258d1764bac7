package ldapserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// openTestStore opens a store on tmpfs when there is one (fsync is free
// there, so a corpus builds fast), else in a temp dir.
func openTestStore(tb testing.TB) *store.Store {
	tb.Helper()
	dir := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "gatewayd-test-"); err == nil {
			dir = d
			tb.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	if dir == "" {
		dir = tb.TempDir()
	}
	st, err := store.Open(dir, store.Options{Logger: newTestLogger(newSyncBuffer())})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// TestPlanner: which plan the planner picks for each kind of entry, on a
// store where the candidate counts differ: "none" rules the kind out,
// "scan" walks it, anything else names the clause that drives it.
func TestPlanner(t *testing.T) {
	st := openTestStore(t)
	var users []*store.User
	for i := range 120 {
		u, err := st.CreateUser(&store.User{Username: fmt.Sprintf("u%03d", i), Email: fmt.Sprintf("u%03d@example.test", i),
			DisplayName: fmt.Sprintf("User %03d", i)})
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	alice, err := st.CreateUser(&store.User{Username: "alice", Email: "alice@example.test", FirstName: "Alice", LastName: "Smith"})
	if err != nil {
		t.Fatal(err)
	}
	big, err := st.CreateGroup(&store.Group{Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	small, err := st.CreateGroup(&store.Group{Name: "small"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users[:60] {
		if err := st.AddMember(big.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []*store.User{users[1], alice} {
		if err := st.AddMember(small.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := newTree(testBase, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{dir: st, tree: tr}
	bigDN, smallDN := tr.groupDN("big"), tr.groupDN("Small")
	aliceDN := tr.userDN("ALICE")
	uuid := store.EntryUUID(alice.ID)

	tests := []struct {
		filter             string
		users, groups, upg string
	}{
		// The lookups of SSSD and nslcd.
		{"(uid=alice)", "uid=", "none", "none"},
		{"(&(objectClass=posixAccount)(uid=alice))", "uid=", "none", "none"},
		{"(mail=ALICE@example.test)", "mail=", "none", "none"},
		{"(&(objectClass=posixAccount)(uidNumber=10001))", "uidNumber=", "none", "none"},
		{"(&(objectClass=posixGroup)(gidNumber=10001))", "none", "gidNumber=", "gidNumber="},
		{"(&(objectClass=posixGroup)(cn=alice))", "none", "cn=", "cn="},
		{"(&(objectClass=posixGroup)(memberUid=alice))", "none", "memberUid=", "none"},
		{"(&(objectClass=groupOfNames)(member=" + aliceDN + "))", "none", "member=", "none"},
		{"(memberOf=" + smallDN + ")", "memberOf=", "none", "none"},
		{"(entryUUID=" + strings.ToUpper(uuid) + ")", "entryUUID=", "entryUUID=", "entryUUID="},
		{"(cn=User 0*)", "cn^", "cn^", "cn^"},
		{"(uid=u0*)", "uid^", "none", "none"},
		{"(mail=u0*)", "mail^", "none", "none"},
		// The most selective clause of an AND drives it.
		{"(&(memberOf=" + bigDN + ")(uid=u001))", "uid=", "none", "none"},
		{"(&(uid=u*)(memberOf=" + smallDN + "))", "memberOf=", "none", "none"},
		{"(&(uid=u*)(memberOf=" + bigDN + "))", "memberOf=", "none", "none"},
		{"(&(uid=u00*)(memberOf=" + bigDN + "))", "uid^", "none", "none"},
		{"(&(cn=user 1*)(mail=u1*))", "cn^", "none", "none"}, // equal counts: the first
		{"(&(sn=x)(!(uid=a))(uidNumber=10005))", "uidNumber=", "none", "none"},
		{"(&(objectClass=posixGroup)(|(gidNumber=1000000)(gidNumber=10001)))", "none", "or(gidNumber=,gidNumber=)", "or(gidNumber=,gidNumber=)"},
		// OR of indexed clauses is their union; one unindexed branch walks.
		{"(|(uid=alice)(mail=u001@example.test))", "or(uid=,mail=)", "none", "none"},
		{"(|(uid=alice)(cn=small))", "or(uid=,cn=)", "cn=", "cn="},
		{"(|(uid=alice)(sn=x))", "scan", "none", "none"},
		{"(|)", "none", "none", "none"},
		// Never driving a plan: NOT, presence, ordering, substrings without
		// an initial part, extensible matches.
		{"(!(uid=alice))", "scan", "scan", "scan"},
		{"(objectClass=*)", "scan", "scan", "scan"},
		{"(&)", "scan", "scan", "scan"},
		{"(uid=*lic*)", "scan", "none", "none"},
		{"(uidNumber>=10005)", "scan", "none", "none"},
		{"(cn:caseExactMatch:=Alice Smith)", "scan", "scan", "scan"},
		{"(ou:dn:=users)", "scan", "scan", "scan"},
		{"(sn=smith)", "scan", "none", "none"},
		// Never TRUE on the kind: the kind is ruled out.
		{"(uidNumber=abc)", "none", "none", "none"},
		{"(unknownAttr=x)", "none", "none", "none"},
		{"(objectClass=organizationalUnit)", "none", "none", "none"},
		{"(uid;lang-en=alice)", "none", "none", "none"},
		{"(&(objectClass=posixGroup)(!(cn=x)))", "none", "scan", "scan"},
	}
	for _, tc := range tests {
		f, err := compileFilter(t, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		got := [3]string{srv.planner(phUsers).describe(f), srv.planner(phGroups).describe(f), srv.planner(phUserGroups).describe(f)}
		if want := [3]string{tc.users, tc.groups, tc.upg}; got != want {
			t.Errorf("%s: plans (users, groups, private groups) %q, want %q", tc.filter, got, want)
		}
	}
}

// TestPlannerAttrSets: the planner's lists of what each kind of entry
// carries name schema attributes by their canonical key, and hold every
// attribute the renderers produce (an attribute missing there would make
// the planner rule out entries that match).
func TestPlannerAttrSets(t *testing.T) {
	for name, set := range map[string]map[string]bool{"users": userAttrKeys, "groups": groupAttrKeys, "private groups": upgAttrs} {
		for k := range set {
			if at := schema[k]; at == nil || at.key != k {
				t.Errorf("%s: %q is not a canonical schema attribute", name, k)
			}
		}
	}
	tr, _ := newTree(testBase, 0)
	tr.expiresAt = func(*store.User) time.Time { return time.Unix(1, 0) }
	now := time.Now()
	u := &store.User{ID: "u", Username: "u", Email: "u@x.test", FirstName: "F", LastName: "L", DisplayName: "D",
		PasswordHash: "h", PasswordChangedAt: now, State: store.StateSuspended, CreatedAt: now, UpdatedAt: now,
		Attributes: map[string]string{"title": "t", "department": "d", "company": "c", "location": "l", "employeeType": "e",
			"telephoneNumber": "1", "mobile": "2", "postalAddress": "p", "manager": "u", "loginShell": "/bin/sh", "homeDirectory": "/h"}}
	g := &store.Group{ID: "g", Name: "g", Description: "d", GIDNumber: 5, CreatedAt: now, UpdatedAt: now}
	d := newFakeDir()
	d.addUser(*u, "pw")
	for _, k := range []struct {
		e   *entry
		set map[string]bool
	}{{tr.userEntry(u, d), userAttrKeys}, {tr.groupEntry(g, d), groupAttrKeys}, {tr.upgEntry(u), upgAttrs}} {
		for _, a := range k.e.attrs {
			if !k.set[a.t.key] {
				t.Errorf("%s carries %s, which the planner's set lacks", k.e.dn, a.t.name)
			}
		}
	}
}

// TestPlannerWithoutIndexes: a Directory with only the base methods still
// gets the uid, cn, memberOf, member and memberUid plans, and walks for
// the rest.
func TestPlannerWithoutIndexes(t *testing.T) {
	st := openTestStore(t)
	tr, _ := newTree(testBase, 0)
	srv := &Server{dir: scanOnly{st}, tree: tr}
	for _, tc := range []struct{ filter, users, groups string }{
		{"(uid=a)", "uid=", "none"},
		{"(cn=a)", "scan", "cn="},
		{"(mail=a@b.test)", "scan", "none"},
		{"(&(objectClass=posixAccount)(uidNumber=10001))", "scan", "none"},
		{"(&(objectClass=posixGroup)(gidNumber=10001))", "none", "scan"},
		{"(memberUid=a)", "none", "memberUid="},
		{"(uid=a*)", "scan", "none"},
	} {
		f, err := compileFilter(t, tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if u, g := srv.planner(phUsers).describe(f), srv.planner(phGroups).describe(f); u != tc.users || g != tc.groups {
			t.Errorf("%s: users %q groups %q, want %q %q", tc.filter, u, g, tc.users, tc.groups)
		}
	}
}

// propCorpus is a random directory: users with mixed-case names, shared
// and spaced display names, some inactive; groups with spaces in their
// names; random memberships.
type propCorpus struct {
	users  []*store.User
	groups []*store.Group
}

func buildPropCorpus(t *testing.T, st *store.Store, r *rand.Rand, nUsers, nGroups int) *propCorpus {
	t.Helper()
	pc := &propCorpus{}
	first := []string{"Ann", "Bob", "Carl", "ann", "Zoë", ""}
	last := []string{"Smith", "Smithson", "O'Neil", "smith", ""}
	for i := range nUsers {
		u := &store.User{
			Username:  fmt.Sprintf("%s%02d", []string{"ab", "Ab", "abc", "b", "zed"}[r.IntN(5)], i),
			Email:     fmt.Sprintf("%s%02d@%s", []string{"ab", "AB", "x.ab", "mail"}[r.IntN(4)], i, []string{"example.test", "Other.test"}[r.IntN(2)]),
			FirstName: first[r.IntN(len(first))], LastName: last[r.IntN(len(last))],
		}
		switch r.IntN(4) {
		case 0:
			u.DisplayName = []string{"Ab  Team", "ab team", " Shared Name", "Zoë Ab"}[r.IntN(4)]
		case 1:
			u.State = store.StateSuspended
		}
		if r.IntN(3) == 0 {
			u.ID = fmt.Sprintf("EXT-%02d", i) // caller-chosen ids are not UUIDs
		} else if r.IntN(4) == 0 {
			u.ID = strings.ToUpper(fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i))
		}
		nu, err := st.CreateUser(u)
		if err != nil {
			t.Fatalf("user %+v: %v", u, err)
		}
		pc.users = append(pc.users, nu)
	}
	for i := range nGroups {
		g, err := st.CreateGroup(&store.Group{Name: fmt.Sprintf("%s %d", []string{"Ab Team", "ab  staff", "Zed", "ab"}[r.IntN(4)], i),
			Description: []string{"", "Ab group", "other"}[r.IntN(3)]})
		if err != nil {
			t.Fatal(err)
		}
		pc.groups = append(pc.groups, g)
		for _, u := range pc.users {
			if r.IntN(4) == 0 {
				if err := st.AddMember(g.ID, u.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return pc
}

// randFilter draws a filter over indexed and unindexed attributes, with
// values taken from the corpus in mixed case, with stray spaces, or
// made up.
func (pc *propCorpus) randFilter(r *rand.Rand, tr *tree, depth int) string {
	if depth > 0 && r.IntN(3) > 0 {
		n := r.IntN(4)
		var b strings.Builder
		switch r.IntN(5) {
		case 0, 1:
			b.WriteString("(&")
		case 2, 3:
			b.WriteString("(|")
		default:
			b.WriteString("(!")
			n = 1
		}
		for range n {
			b.WriteString(pc.randFilter(r, tr, depth-1))
		}
		if n == 0 && b.String() == "(!" {
			b.WriteString("(uid=*)")
		}
		b.WriteString(")")
		return b.String()
	}
	u := pc.users[r.IntN(len(pc.users))]
	g := pc.groups[r.IntN(len(pc.groups))]
	mangle := func(s string) string {
		switch r.IntN(5) {
		case 0:
			return strings.ToUpper(s)
		case 1:
			return strings.ToLower(s)
		case 2:
			return " " + strings.ReplaceAll(s, " ", "  ") + " "
		}
		return s
	}
	prefix := func(s string) string {
		if s == "" {
			return "q"
		}
		return s[:1+r.IntN(min(len(s), 4))]
	}
	esc := ldap.EscapeFilter
	switch r.IntN(22) {
	case 0:
		return "(uid=" + esc(mangle(u.Username)) + ")"
	case 1:
		return "(uid=" + esc(mangle(prefix(u.Username))) + "*)"
	case 2:
		return "(mail=" + esc(mangle(u.Email)) + ")"
	case 3:
		return "(mail=" + esc(mangle(prefix(u.Email))) + "*)"
	case 4:
		return "(cn=" + esc(mangle(userCN(u))) + ")"
	case 5:
		return "(cn=" + esc(mangle(g.Name)) + ")"
	case 6:
		return "(cn=" + esc(mangle(prefix([]string{userCN(u), g.Name, u.Username}[r.IntN(3)]))) + "*)"
	case 7:
		return "(uidNumber=" + strconv.Itoa(u.UIDNumber+r.IntN(2)) + ")"
	case 8:
		return "(gidNumber=" + strconv.Itoa([]int{u.UIDNumber, g.GIDNumber, 7}[r.IntN(3)]) + ")"
	case 9:
		return "(memberUid=" + esc(mangle(u.Username)) + ")"
	case 10:
		return "(member=" + esc(mangle(tr.userDN(u.Username))) + ")"
	case 11:
		return "(memberOf=" + esc(mangle(tr.groupDN(g.Name))) + ")"
	case 12:
		id := []string{store.EntryUUID(u.ID), store.UserGroupEntryUUID(u.ID), store.EntryUUID(g.ID)}[r.IntN(3)]
		return "(entryUUID=" + mangle(id) + ")"
	case 13:
		return "(objectClass=" + []string{"posixAccount", "posixGroup", "groupOfNames", "shadowAccount", "top", "organizationalUnit"}[r.IntN(6)] + ")"
	case 14:
		return "(" + []string{"uid", "mail", "cn", "member", "memberUid", "memberOf", "sn", "displayName", "shadowExpire", "description", "entryUUID"}[r.IntN(11)] + "=*)"
	case 15:
		return "(sn=" + esc(mangle(u.LastName)) + ")"
	case 16:
		return "(description=" + esc(mangle(g.Description)) + "*)"
	case 17:
		return "(uid=*" + esc(u.Username[1:]) + ")"
	case 18:
		return "(uidNumber>=" + strconv.Itoa(u.UIDNumber) + ")"
	case 19:
		return "(" + []string{"unknownAttr", "uid;lang-en", "uidNumber", "entryUUID"}[r.IntN(4)] + "=junk)"
	case 20:
		return "(cn:caseExactMatch:=" + esc(g.Name) + ")"
	}
	return "(displayName=" + esc(mangle(userCN(u))) + ")"
}

// TestPlanMatchesFullScan is the planner's property test: on a random
// corpus, random filters answer exactly what a walk over every entry
// answers (same entries, same attributes, same order, same result code),
// under every base and scope, with size limits, for a service account and
// an ordinary user, with and without hide_inactive.
func TestPlanMatchesFullScan(t *testing.T) {
	for _, hide := range []bool{false, true} {
		t.Run(fmt.Sprintf("hide_inactive=%v", hide), func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 14))
			st := openTestStore(t)
			au, err := authn.New(authn.Config{Hash: authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}}, st, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			pc := buildPropCorpus(t, st, r, 90, 12)
			svc, err := st.CreateUser(&store.User{Username: "svc", Email: "svc@example.test", ServiceAccount: true})
			if err != nil {
				t.Fatal(err)
			}
			plain, err := st.CreateUser(&store.User{Username: "plainuser", Email: "plain@example.test"})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []*store.User{svc, plain} {
				if err := au.ChangePassword(context.Background(), u.ID, secret.FromString(svcPW), "test"); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.AddMember(pc.groups[0].ID, plain.ID); err != nil {
				t.Fatal(err)
			}
			tr, _ := newTree(testBase, 0)
			start := func(full bool) (svcConn, userConn *ldap.Conn) {
				s, err := New(Config{Listen: "127.0.0.1:0", BaseDN: testBase, ExemptLoopback: true, HideInactive: hide, SizeLimit: 40},
					au, st, newTestLogger(newSyncBuffer()), prometheus.NewRegistry())
				if err != nil {
					t.Fatal(err)
				}
				s.fullScan, s.tree.reference = full, full
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- s.Serve(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
				<-s.Ready()
				addr, _ := s.Addrs()
				dial := func(dn string) *ldap.Conn {
					c, err := ldap.DialURL("ldap://" + addr.String())
					if err != nil {
						t.Fatal(err)
					}
					c.SetTimeout(time.Minute)
					t.Cleanup(func() { c.Close() })
					if err := c.Bind(dn, svcPW); err != nil {
						t.Fatal(err)
					}
					return c
				}
				return dial(svcDN), dial(tr.userDN("plainuser"))
			}
			pSvc, pUser := start(false)
			fSvc, fUser := start(true)
			bases := []string{testBase, tr.usersDN, tr.groupsDN, tr.upgDN, tr.userDN(pc.users[0].Username), tr.groupDN(pc.groups[0].Name), ""}
			scopes := []int{ldap.ScopeBaseObject, ldap.ScopeSingleLevel, ldap.ScopeWholeSubtree, 3}
			n := 400
			if testing.Short() {
				n = 100
			}
			indexed := 0
			for i := range n {
				f := pc.randFilter(r, tr, 3)
				base, scope := testBase, ldap.ScopeWholeSubtree
				if r.IntN(3) == 0 {
					base, scope = bases[r.IntN(len(bases))], scopes[r.IntN(len(scopes))]
				}
				sizeLimit := []int{0, 0, 0, 1, 3}[r.IntN(5)]
				planned, full := pSvc, fSvc
				if r.IntN(5) == 0 {
					planned, full = pUser, fUser
				}
				// Everything, or a few attributes (the planned side then
				// renders only those and the filter's; the full scan
				// renders every entry whole).
				attrs := []string{"*", "+"}
				if r.IntN(2) == 0 {
					attrs = randAttrs(r)
				}
				req := func() *ldap.SearchRequest {
					return ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, sizeLimit, 0, false, f, attrs, nil)
				}
				got, want := searchDump(planned, req()), searchDump(full, req())
				if got != want {
					t.Fatalf("search %d base %q scope %d sizelimit %d filter %s:\nplanned:\n%s\nfull scan:\n%s", i, base, scope, sizeLimit, f, got, want)
				}
				if cf, err := compileFilter(t, f); err == nil {
					if (&Server{dir: st, tree: tr}).planner(phUsers).describe(cf) != "scan" {
						indexed++
					}
				}
			}
			// The corpus must exercise the plans, not only walks.
			if indexed < n/4 {
				t.Fatalf("only %d of %d filters had an indexed user plan", indexed, n)
			}
		})
	}
}

// randAttrs is a random requested attribute list: names in any case,
// aliases, "+", "1.1", options and unknown names among them.
func randAttrs(r *rand.Rand) []string {
	names := []string{"uid", "CN", "mail", "memberOf", "member", "memberUid", "uidNumber", "gidNumber", "objectClass",
		"entryUUID", "createTimestamp", "modifyTimestamp", "pwdChangedTime", "shadowLastChange", "shadowExpire",
		"nsAccountLock", "homeDirectory", "loginShell", "description", "sn", "displayName", "givenName", "manager",
		"userid", "commonName", "2.5.4.3", "+", "1.1", "cn;lang-en", "noSuchAttr", "entryDN", "hasSubordinates"}
	var out []string
	for range 1 + r.IntN(4) {
		out = append(out, names[r.IntN(len(names))])
	}
	return out
}

// searchDump renders a search's result: code, then every entry with
// its attributes, in the order received.
func searchDump(c *ldap.Conn, req *ldap.SearchRequest) string {
	res, err := c.Search(req)
	var b strings.Builder
	code := uint16(0)
	if err != nil {
		if le, ok := err.(*ldap.Error); ok {
			code = le.ResultCode
		} else {
			return "error: " + err.Error()
		}
	}
	fmt.Fprintf(&b, "code %d\n", code)
	if res == nil {
		return b.String()
	}
	for _, e := range res.Entries {
		fmt.Fprintf(&b, "%s\n", e.DN)
		attrs := slices.Clone(e.Attributes)
		slices.SortFunc(attrs, func(a, b *ldap.EntryAttribute) int { return strings.Compare(a.Name, b.Name) })
		for _, a := range attrs {
			fmt.Fprintf(&b, "  %s: %q\n", a.Name, a.Values)
		}
	}
	return b.String()
}

// TestSearchJobSmall: which plans the reader answers itself (fixed
// entries and candidate lists of at most inlineCandidates, never a walk),
// and that a candidate list the planner counts as large is not fetched
// to find out.
func TestSearchJobSmall(t *testing.T) {
	users := func(n int, fetched *bool) phase {
		return phase{kind: phUsers, est: constEst(n), userList: func() ([]*store.User, error) {
			*fetched = true
			return make([]*store.User, n), nil
		}}
	}
	fixed := func(n int) phase { return phase{kind: phFixed, entries: make([]*entry, n)} }
	for _, tc := range []struct {
		name        string
		plan        func(fetched *bool) []phase
		small, load bool
	}{
		{"one user", func(f *bool) []phase { return []phase{fixed(4), users(1, f)} }, true, true},
		{"nothing", func(f *bool) []phase { return nil }, true, false},
		{"at the limit", func(f *bool) []phase { return []phase{fixed(2), users(inlineCandidates-2, f)} }, true, true},
		{"over the limit", func(f *bool) []phase { return []phase{fixed(3), users(inlineCandidates-2, f)} }, false, true},
		{"large list", func(f *bool) []phase { return []phase{users(100000, f)} }, false, false},
		{"walk", func(f *bool) []phase { return []phase{fixed(1), {kind: phUsers}} }, false, false},
		{"many fixed", func(f *bool) []phase { return []phase{fixed(inlineCandidates + 1)} }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fetched := false
			j := &searchJob{plan: tc.plan(&fetched)}
			if got := j.small(inlineCandidates); got != tc.small {
				t.Errorf("small = %v, want %v", got, tc.small)
			}
			if fetched != tc.load {
				t.Errorf("list fetched = %v, want %v", fetched, tc.load)
			}
		})
	}
}

// TestCompareFold: the candidate lists' order is the walk's, by
// strings.ToLower; compareFold must agree with it on ASCII and other names.
func TestCompareFold(t *testing.T) {
	names := []string{"", "a", "A", "ab", "aB", "Ab", "b", "B", "a-b", "a_b", "a.b", "Z", "[", "`", "_",
		"é", "É", "aé", "aÉ", "ae", "ß", "straße", "STRASSE", "İ", "i", "\xff", "a\xff", "K", "\u212a", "k"}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "A", "z", "Z", "0", "-", "_", ".", "é", "É", "\u212a", "\xff"}
	for range 200 {
		var b strings.Builder
		for range r.IntN(6) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		names = append(names, b.String())
	}
	for _, a := range names {
		for _, b := range names {
			if got, want := compareFold(a, b), strings.Compare(strings.ToLower(a), strings.ToLower(b)); got != want {
				t.Errorf("compareFold(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestRenderReuse: a walk renders each user and group into the entry of
// the one before (renderUserInto, renderGroupInto); what it returns must
// be what a fresh entry holds, whatever the last one carried.
func TestRenderReuse(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 15))
	st := openTestStore(t)
	pc := buildPropCorpus(t, st, r, 60, 10)
	tr, _ := newTree(testBase, 0)
	dump := func(e *entry, sel selection) string {
		var b strings.Builder
		b.WriteString(e.dn)
		for _, a := range sel.pick(e) {
			fmt.Fprintf(&b, "\n%s: %q", a.name, a.vals)
		}
		if e.err != nil {
			fmt.Fprintf(&b, "\nerror: %v", e.err)
		}
		return b.String()
	}
	for round := range 20 {
		sel := newSelection([]string{"*", "+"})
		if round > 0 {
			sel = newSelection(randAttrs(r))
		}
		need := sel.set()
		var ue, ge *entry
		for _, i := range r.Perm(len(pc.users)) {
			u := pc.users[i]
			ue = tr.renderUserInto(ue, u, st, need)
			if got, want := dump(ue, sel), dump(tr.renderUser(u, st, need), sel); got != want {
				t.Fatalf("user %s, reused entry:\n%s\nfresh:\n%s", u.Username, got, want)
			}
		}
		for _, i := range r.Perm(len(pc.groups)) {
			g := pc.groups[i]
			ge = tr.renderGroupInto(ge, g, st, need)
			if got, want := dump(ge, sel), dump(tr.renderGroup(g, st, need), sel); got != want {
				t.Fatalf("group %s, reused entry:\n%s\nfresh:\n%s", g.Name, got, want)
			}
		}
	}
}

// TestSmallSearchInlineAfterWalk: a sequential client's small searches
// are answered inline by the reader even right after a search that
// walked in a goroutine. The walk used to count as running until after
// its answer was sent, so the client's next search, read meanwhile, was
// handed to a goroutine too, and so was every one after it.
func TestSmallSearchInlineAfterWalk(t *testing.T) {
	ts := startServer(t, false, nil)
	c := ts.bind(t, svcDN, svcPW)
	search := func(filter string, want int) { // want < 0: any number
		t.Helper()
		res, err := c.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, []string{"uid"}, nil))
		if err != nil {
			t.Fatalf("%s: %v", filter, err)
		}
		if want >= 0 && len(res.Entries) != want {
			t.Fatalf("%s: %d entries, want %d", filter, len(res.Entries), want)
		}
	}
	const rounds, small = 20, 5
	walkedSmall := 0
	for range rounds {
		before := ts.s.walked.Load()
		search("(cn=*e*)", -1) // no index: a walk
		if ts.s.walked.Load() == before {
			t.Fatal("the unindexed search was answered inline; the test needs it to walk")
		}
		before = ts.s.walked.Load()
		for range small {
			search("(uid=alice)", 1)
		}
		walkedSmall += int(ts.s.walked.Load() - before)
	}
	if walkedSmall != 0 {
		t.Fatalf("%d of %d single-entry searches right after a walk were handed to a goroutine, want 0", walkedSmall, rounds*small)
	}
}
