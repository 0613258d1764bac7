package ldapserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// The search path under the lookups of bench/ldapsearch, measured on the
// server side: a real store shaped like that benchmark's corpus (users
// delegated to AD, groups of ten), the real authn, and a raw client that
// writes pre-encoded requests and reads frames back, so that nearly all
// of the time per operation is the door's (go-ldap's client costs about
// as much as the door itself). GATEWAYD_BENCH_USERS sets the corpus size
// (default 2000). Run with -cpuprofile / -memprofile to see where the
// microseconds go:
//
//	go test -run XXX -bench BenchmarkSearchPath -benchmem ./ldapserver/

// wireClient speaks LDAP over one connection with requests encoded once.
type wireClient struct {
	nc    net.Conn
	br    *bufio.Reader
	frame bytes.Buffer
	out   []byte
	id    uint32
}

func dialRaw(tb testing.TB, addr net.Addr) *wireClient {
	tb.Helper()
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &wireClient{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}
}

// roundTrip sends the protocolOp op under the next message ID (each
// request gets its own, as real clients do) and reads answers up to the
// one with tag done; it returns the entries seen and the final result
// code.
func (rc *wireClient) roundTrip(tb testing.TB, op []byte, done ber.Tag) (entries, code int) {
	rc.id++
	// The envelope by hand: the ID as a 4-octet INTEGER (an ID below
	// 2^23 keeps it positive), so op is encoded once.
	n := 6 + len(op)
	rc.out = append(rc.out[:0], 0x30)
	if n < 0x80 {
		rc.out = append(rc.out, byte(n))
	} else {
		rc.out = append(rc.out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	id := rc.id & 0x7fffff
	rc.out = append(rc.out, 0x02, 4, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	rc.out = append(rc.out, op...)
	if _, err := rc.nc.Write(rc.out); err != nil {
		tb.Fatal(err)
	}
	for {
		f, err := readFrame(rc.br, 1<<24, &rc.frame)
		if err != nil {
			tb.Fatal(err)
		}
		m, err := decodeMessage(f)
		if err != nil {
			tb.Fatal(err)
		}
		switch m.op {
		case appSearchEntry:
			entries++
		case done:
			c, _ := universalInt(m.body.children[0], ber.TagEnumerated)
			if c != rcSuccess && len(m.body.children) > 2 {
				tb.Logf("result %d: %s", c, m.body.children[2].data)
			}
			return entries, int(c)
		}
	}
}

// encodeSearch encodes a SearchRequest protocolOp.
func encodeSearch(tb testing.TB, base, filter string, attrs ...string) []byte {
	tb.Helper()
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		tb.Fatalf("%s: %v", filter, err)
	}
	s := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchRequest, nil, "")
	s.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, scopeSub, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))
	s.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	s.AppendChild(f)
	as := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, a := range attrs {
		as.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, ""))
	}
	s.AppendChild(as)
	return s.Bytes()
}

// encodeBind encodes a simple BindRequest protocolOp.
func encodeBind(dn, pw string) []byte {
	b := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appBindRequest, nil, "")
	b.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, ""))
	b.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	b.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, pw, ""))
	return b.Bytes()
}

// benchCorpus is bench/ldapsearch's corpus on a real store: users
// u000000.. with cn NameNNNNNN, delegated to AD (active without a local
// password), groups g0000.. of per members each, and the service account
// svc; the first nPW users also get a local password (for bind+search).
type benchCorpus struct {
	st     *store.Store
	au     *authn.Authenticator
	users  []*store.User
	groups []*store.Group
}

func newBenchCorpus(tb testing.TB, nUsers, nGroups, per, nPW int) *benchCorpus {
	tb.Helper()
	dir := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "gatewayd-bench-"); err == nil {
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
	au, err := authn.New(authn.Config{Hash: authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}, CacheTTL: time.Hour}, st, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	bc := &benchCorpus{st: st, au: au}
	svc, err := st.CreateUser(&store.User{Username: "svc", Email: "svc@example.test", ServiceAccount: true, State: store.StateActive})
	if err != nil {
		tb.Fatal(err)
	}
	if err := au.ChangePassword(context.Background(), svc.ID, secret.FromString(svcPW), "test"); err != nil {
		tb.Fatal(err)
	}
	for i := range nUsers {
		name := fmt.Sprintf("u%06d", i)
		u := &store.User{Username: name, Email: name + "@example.test",
			FirstName: fmt.Sprintf("Name%06d", i), State: store.StateActive}
		if i >= nPW {
			u.DelegatedAuthority = store.AuthorityAD
		}
		u, err := st.CreateUser(u)
		if err != nil {
			tb.Fatal(err)
		}
		if i < nPW {
			if err := au.ChangePassword(context.Background(), u.ID, secret.FromString("pw-"+name), "test"); err != nil {
				tb.Fatal(err)
			}
		}
		bc.users = append(bc.users, u)
	}
	for g := range nGroups {
		gr, err := st.CreateGroup(&store.Group{Name: fmt.Sprintf("g%04d", g)})
		if err != nil {
			tb.Fatal(err)
		}
		bc.groups = append(bc.groups, gr)
		for m := g * per; m < (g+1)*per && m < nUsers; m++ {
			if err := st.AddMember(gr.ID, bc.users[m].ID); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return bc
}

// serve starts a door on the corpus and returns its plain address.
func (bc *benchCorpus) serve(tb testing.TB, cfg Config) net.Addr {
	tb.Helper()
	cfg.Listen, cfg.BaseDN, cfg.ExemptLoopback = "127.0.0.1:0", testBase, true
	s, err := New(cfg, bc.au, bc.st, newTestLogger(newSyncBuffer()), prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	<-s.Ready()
	plain, _ := s.Addrs()
	return plain
}

// cpuTime is the process's user and system CPU time so far. Benchmarks
// report it per operation (cpu-ns/op, client included) next to the wall
// time: on a loaded machine the wall time is mostly waiting for a core,
// the CPU time is the work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func benchUsers() int {
	if v, err := strconv.Atoi(os.Getenv("GATEWAYD_BENCH_USERS")); err == nil && v > 0 {
		return v
	}
	return 2000
}

// BenchmarkSearchPath: one bound service-account connection, sequential
// searches of each kind bench/ldapsearch measures (subtree from the base,
// attributes uid and cn), on rotating targets.
func BenchmarkSearchPath(b *testing.B) {
	n := benchUsers()
	ngroups := max(n/20, 1)
	bc := newBenchCorpus(b, n, ngroups, 10, 0)
	rc := dialRaw(b, bc.serve(b, Config{}))
	if _, code := rc.roundTrip(b, encodeBind(svcDN, svcPW), appBindResponse); code != rcSuccess {
		b.Fatalf("bind: %d", code)
	}
	const ntargets = 64
	kinds := []struct {
		name string
		want int
		make func(i int) string
	}{
		{"uid", 1, func(i int) string { return "(uid=" + bc.users[i].Username + ")" }},
		{"mail", 1, func(i int) string { return "(mail=" + bc.users[i].Email + ")" }},
		{"uidNumber", 1, func(i int) string {
			return "(&(objectClass=posixAccount)(uidNumber=" + strconv.Itoa(bc.users[i].UIDNumber) + "))"
		}},
		{"gidNumber", 1, func(i int) string {
			return "(&(objectClass=posixGroup)(gidNumber=" + strconv.Itoa(bc.groups[i/10].GIDNumber) + "))"
		}},
		{"memberUid", 1, func(i int) string { return "(&(objectClass=posixGroup)(memberUid=" + bc.users[i].Username + "))" }},
		{"member", 1, func(i int) string { return "(member=uid=" + bc.users[i].Username + ",ou=users," + testBase + ")" }},
		{"cnPrefix", 10, func(i int) string { return "(cn=" + bc.users[i].FirstName[:9] + "*)" }},
		{"uidPrefix", 10, func(i int) string { return "(uid=" + bc.users[i].Username[:6] + "*)" }},
		{"mailPrefix", 10, func(i int) string { return "(mail=" + bc.users[i].Email[:6] + "*)" }},
		{"entryUUID", 1, func(i int) string { return "(entryUUID=" + store.EntryUUID(bc.users[i].ID) + ")" }},
	}
	grouped := min(n, ngroups*10)
	for _, k := range kinds {
		reqs := make([][]byte, ntargets)
		for t := range reqs {
			i := (t * 7919 % (grouped / 10)) * 10
			reqs[t] = encodeSearch(b, testBase, k.make(i), "uid", "cn")
		}
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			t := 0
			cpu0 := cpuTime()
			for b.Loop() {
				if got, code := rc.roundTrip(b, reqs[t%ntargets], appSearchDone); got != k.want || code != rcSuccess {
					b.Fatalf("%s: %d entries, code %d", k.name, got, code)
				}
				t++
			}
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkBindSearch is bench/ldapload's warm bind+search on one
// connection: bind as a user (a credential-cache hit), then look that
// user up by uid with uid, cn, mail and memberOf, users_see_all on.
func BenchmarkBindSearch(b *testing.B) {
	const nPW = 100
	bc := newBenchCorpus(b, max(benchUsers(), nPW), 10, 10, nPW)
	rc := dialRaw(b, bc.serve(b, Config{UsersSeeAll: true}))
	binds := make([][]byte, nPW)
	searches := make([][]byte, nPW)
	for i := range nPW {
		name := bc.users[i].Username
		binds[i] = encodeBind("uid="+name+",ou=users,"+testBase, "pw-"+name)
		searches[i] = encodeSearch(b, testBase, "(uid="+name+")", "uid", "cn", "mail", "memberOf")
		// Warm the credential cache.
		if _, code := rc.roundTrip(b, binds[i], appBindResponse); code != rcSuccess {
			b.Fatalf("bind %s: %d", name, code)
		}
	}
	b.ReportAllocs()
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		if _, code := rc.roundTrip(b, binds[i%nPW], appBindResponse); code != rcSuccess {
			b.Fatalf("bind: %d", code)
		}
		if got, code := rc.roundTrip(b, searches[i%nPW], appSearchDone); got != 1 || code != rcSuccess {
			b.Fatalf("search: %d entries, code %d", got, code)
		}
		i++
	}
	reportCPU(b, cpu0)
}
