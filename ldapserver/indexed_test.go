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

// The store has the optional index methods the planner uses.
var (
	_ uidNumberIndex = (*store.Store)(nil)
	_ gidNumberIndex = (*store.Store)(nil)
	_ emailIndex     = (*store.Store)(nil)
)

// scanOnly hides the store's optional index methods: the door then plans
// every non-uid search as a walk over all users (or groups).
type scanOnly struct{ Directory }

// searchStack is a real store with nUsers users (u00000...) and nGroups
// groups, and two doors on it: one planning through the indexes, one
// scanning. The service account svc is bound on one connection to each.
type searchStack struct {
	st            *store.Store
	users         []*store.User
	groups        []*store.Group
	indexed, scan *ldap.Conn
}

func newSearchStack(tb testing.TB, nUsers, nGroups int) *searchStack {
	tb.Helper()
	dir := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		// fsync on tmpfs is free: large corpora build in seconds.
		d, err := os.MkdirTemp("/dev/shm", "gatewayd-bench-")
		if err == nil {
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
	au, err := authn.New(authn.Config{Hash: authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}}, st, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ss := &searchStack{st: st}
	svc, err := st.CreateUser(&store.User{Username: "svc", Email: "svc@example.test", ServiceAccount: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := au.ChangePassword(context.Background(), svc.ID, secret.FromString(svcPW), "test"); err != nil {
		tb.Fatal(err)
	}
	for i := range nUsers {
		u, err := st.CreateUser(&store.User{
			Username: fmt.Sprintf("u%05d", i), Email: fmt.Sprintf("User%05d@Example.test", i),
			FirstName: "U", LastName: strconv.Itoa(i),
		})
		if err != nil {
			tb.Fatal(err)
		}
		ss.users = append(ss.users, u)
	}
	for i := range nGroups {
		g, err := st.CreateGroup(&store.Group{Name: fmt.Sprintf("g%04d", i)})
		if err != nil {
			tb.Fatal(err)
		}
		ss.groups = append(ss.groups, g)
		if len(ss.users) > 0 {
			if err := st.AddMember(g.ID, ss.users[i%len(ss.users)].ID); err != nil {
				tb.Fatal(err)
			}
		}
	}
	start := func(d Directory) *ldap.Conn {
		s, err := New(Config{Listen: "127.0.0.1:0", BaseDN: testBase, ExemptLoopback: true},
			au, d, newTestLogger(newSyncBuffer()), prometheus.NewRegistry())
		if err != nil {
			tb.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		tb.Cleanup(func() { cancel(); <-done })
		<-s.Ready()
		plain, _ := s.Addrs()
		c, err := ldap.DialURL("ldap://" + plain.String())
		if err != nil {
			tb.Fatal(err)
		}
		c.SetTimeout(time.Minute)
		tb.Cleanup(func() { c.Close() })
		if err := c.Bind(svcDN, svcPW); err != nil {
			tb.Fatal(err)
		}
		return c
	}
	ss.indexed = start(st)
	ss.scan = start(scanOnly{st})
	return ss
}

// subtreeDNs runs a subtree search from the base and returns the sorted DNs.
func subtreeDNs(tb testing.TB, c *ldap.Conn, filter string) []string {
	tb.Helper()
	res, err := c.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, []string{"1.1"}, nil))
	if err != nil {
		tb.Fatalf("search %s: %v", filter, err)
	}
	var out []string
	for _, e := range res.Entries {
		out = append(out, strings.ToLower(e.DN))
	}
	slices.Sort(out)
	return out
}

// TestIndexedSearchMatchesScan: searches on mail, uidNumber and gidNumber
// (users, groups, user private groups) answer through the store's
// indexes exactly what a walk over every entry answers, on random
// filters over a small corpus, including misses, other case and ORs.
func TestIndexedSearchMatchesScan(t *testing.T) {
	ss := newSearchStack(t, 60, 15)
	r := rand.New(rand.NewPCG(1, 2))
	u := func() *store.User { return ss.users[r.IntN(len(ss.users))] }
	g := func() *store.Group { return ss.groups[r.IntN(len(ss.groups))] }
	tests := []struct {
		name   string
		filter func() string
		want   int // exact count expected from both (-1: any)
	}{
		{"mail", func() string { return "(mail=" + u().Email + ")" }, 1},
		{"mail other case", func() string { return "(mail=" + strings.ToUpper(u().Email) + ")" }, 1},
		{"mail miss", func() string { return "(mail=nobody@example.test)" }, 0},
		{"mail and class", func() string { return "(&(objectClass=inetOrgPerson)(mail=" + u().Email + "))" }, 1},
		{"mail or", func() string { return "(|(mail=" + u().Email + ")(mail=" + u().Email + "))" }, -1},
		{"mail and wrong uid", func() string { return "(&(mail=" + u().Email + ")(uid=nobody))" }, 0},
		{"uidNumber posix", func() string {
			return "(&(objectClass=posixAccount)(uidNumber=" + strconv.Itoa(u().UIDNumber) + "))"
		}, 1},
		{"uidNumber miss", func() string { return "(&(objectClass=posixAccount)(uidNumber=1))" }, 0},
		{"uidNumber bare", func() string { return "(uidNumber=" + strconv.Itoa(u().UIDNumber) + ")" }, 1},
		{"uidNumber junk", func() string { return "(uidNumber=abc)" }, 0},
		{"gidNumber group", func() string {
			return "(&(objectClass=posixGroup)(gidNumber=" + strconv.Itoa(g().GIDNumber) + "))"
		}, 1},
		{"gidNumber upg", func() string {
			return "(&(objectClass=posixGroup)(gidNumber=" + strconv.Itoa(u().UIDNumber) + "))"
		}, 1},
		{"gidNumber or", func() string {
			return "(&(objectClass=posixGroup)(|(gidNumber=" + strconv.Itoa(g().GIDNumber) + ")(gidNumber=" + strconv.Itoa(u().UIDNumber) + ")))"
		}, 2},
		// posixAccount gidNumber is the user's own (private group) number.
		{"gidNumber any", func() string { return "(gidNumber=" + strconv.Itoa(u().UIDNumber) + ")" }, 2},
		{"gidNumber miss", func() string { return "(&(objectClass=posixGroup)(gidNumber=7))" }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 5 {
				f := tc.filter()
				got, want := subtreeDNs(t, ss.indexed, f), subtreeDNs(t, ss.scan, f)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: indexed %v, scan %v", f, got, want)
				}
				if tc.want >= 0 && len(got) != tc.want {
					t.Fatalf("%s: %d entries %v, want %d", f, len(got), got, tc.want)
				}
			}
		})
	}
}

// BenchmarkSearchIndexed compares the indexed plan with the full walk for
// the lookups SSSD and nslcd make. GATEWAYD_BENCH_USERS sets the corpus
// size (default 20000; 100000 builds in about 20 s on tmpfs).
func BenchmarkSearchIndexed(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("GATEWAYD_BENCH_USERS")); err == nil && v > 0 {
		n = v
	}
	ss := newSearchStack(b, n, 100)
	mid := ss.users[n/2]
	grp := ss.groups[len(ss.groups)/2]
	filters := []struct{ name, filter string }{
		{"uid", "(uid=" + mid.Username + ")"},
		{"mail", "(mail=" + mid.Email + ")"},
		{"uidNumber", "(&(objectClass=posixAccount)(uidNumber=" + strconv.Itoa(mid.UIDNumber) + "))"},
		{"gidNumber-group", "(&(objectClass=posixGroup)(gidNumber=" + strconv.Itoa(grp.GIDNumber) + "))"},
		{"gidNumber-upg", "(&(objectClass=posixGroup)(gidNumber=" + strconv.Itoa(mid.UIDNumber) + "))"},
	}
	for _, f := range filters {
		for _, side := range []struct {
			name string
			c    *ldap.Conn
		}{{"indexed", ss.indexed}, {"scan", ss.scan}} {
			b.Run(f.name+"/"+side.name, func(b *testing.B) {
				for b.Loop() {
					if got := subtreeDNs(b, side.c, f.filter); len(got) != 1 {
						b.Fatalf("%s: %v", f.filter, got)
					}
				}
			})
		}
	}
}
