// Command ldapload measures an LDAP server's simple-bind and bind+search
// throughput and latency over K persistent connections, for N users named
// by DN and password templates (%d is the user number, 1..N round robin).
// Every cell of the table is bounded by an operation count and a time
// limit. It talks to loopback addresses only and refuses any other target.
//
//	ldapload -url ldap://127.0.0.1:3899 -name slapd \
//	  -user 'uid=user%d,ou=people,dc=example,dc=test' -pass 'Passw0rd!%d' \
//	  -base dc=example,dc=test -users 100 -conns 1,4,16 -n 5000
//
// -self N starts gatewayd's LDAP door in-process on the real store and
// authn (a temporary data directory, users user1..userN / Passw0rd!1..N,
// argon2id parameters of -self-hash, credential cache -self-cache) and
// measures that: the door, authn and the store, without the daemon around
// them. run.sh compares it with slapd.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/ldapserver"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

type options struct {
	url, name          string
	userTpl, passTpl   string
	base, filterTpl    string
	users              int
	conns              []int
	modes              []string
	n                  int
	duration           time.Duration
	startTLS, insecure bool
	caFile             string
	self               int
	selfCache          time.Duration
	selfHash           string
	jsonOut, warm      bool
	serve              bool
}

type row struct {
	Target  string  `json:"target"`
	Mode    string  `json:"mode"`
	Conns   int     `json:"conns"`
	Ops     int64   `json:"ops"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"ops_per_sec"`
	P50us   int64   `json:"p50_us"`
	P99us   int64   `json:"p99_us"`
	Errors  int64   `json:"errors"`
	First   string  `json:"first_error,omitempty"`
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	var conns, modes string
	flag.StringVar(&o.url, "url", "ldap://127.0.0.1:3899", "LDAP URL (ldap:// or ldaps://), loopback only")
	flag.StringVar(&o.name, "name", "", "label for the target column (default: the URL)")
	flag.StringVar(&o.userTpl, "user", "uid=user%d,ou=people,dc=example,dc=test", "bind name template (DN, username, email...)")
	flag.StringVar(&o.passTpl, "pass", "Passw0rd!%d", "password template")
	flag.StringVar(&o.base, "base", "dc=example,dc=test", "search base for bind+search")
	flag.StringVar(&o.filterTpl, "filter", "(uid=user%d)", "search filter template for bind+search")
	flag.IntVar(&o.users, "users", 100, "number of distinct users (1..users)")
	flag.StringVar(&conns, "conns", "1,4,16", "connection counts, comma separated")
	flag.StringVar(&modes, "modes", "bind,bind+search", "modes: bind, bind+search")
	flag.IntVar(&o.n, "n", 5000, "operations per cell")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "time limit per cell")
	flag.BoolVar(&o.startTLS, "starttls", false, "StartTLS on ldap://")
	flag.StringVar(&o.caFile, "cacert", "", "CA file for ldaps:// and -starttls")
	flag.BoolVar(&o.insecure, "insecure", false, "skip certificate verification")
	flag.IntVar(&o.self, "self", 0, "start gatewayd's LDAP door in-process with this many users and measure it")
	flag.DurationVar(&o.selfCache, "self-cache", 15*time.Minute, "-self: authn verified-credential cache TTL (0: every bind runs argon2id)")
	flag.StringVar(&o.selfHash, "self-hash", "default", "-self: argon2id parameters: default (t=1 64 MiB p=2) or fast (t=1 1 MiB p=1)")
	flag.BoolVar(&o.jsonOut, "json", false, "print JSON lines instead of a table")
	flag.BoolVar(&o.serve, "serve", false, "-self: only serve (print the URL, run until interrupted), so a second ldapload measures it from another process")
	flag.BoolVar(&o.warm, "warm", true, "bind every user once before measuring (fills caches; -warm=false measures cold binds first)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (with -self: client and server)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("%v", err)
		}
		defer pprof.StopCPUProfile()
	}

	for _, s := range strings.Split(conns, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 || k > 1024 {
			fatalf("bad -conns entry %q", s)
		}
		o.conns = append(o.conns, k)
	}
	for _, m := range strings.Split(modes, ",") {
		m = strings.TrimSpace(m)
		if m != "bind" && m != "bind+search" {
			fatalf("bad mode %q (bind, bind+search)", m)
		}
		o.modes = append(o.modes, m)
	}
	if o.users < 1 || o.n < 1 || o.duration <= 0 {
		fatalf("-users, -n and -duration must be positive")
	}
	if o.self > 0 {
		stop, err := startSelf(&o)
		if err != nil {
			fatalf("-self: %v", err)
		}
		defer stop()
		if o.serve {
			fmt.Printf("serving %s (users user1..user%d / Passw0rd!N, base dc=example,dc=test)\n", o.url, o.self)
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			<-sig
			return 0
		}
	}
	if err := checkLoopback(o.url); err != nil {
		fatalf("%v", err)
	}
	if o.name == "" {
		o.name = o.url
	}
	tlsConf, err := tlsConfig(o)
	if err != nil {
		fatalf("%v", err)
	}

	if o.warm {
		if err := warmUp(o, tlsConf); err != nil {
			fatalf("warm-up: %v", err)
		}
	}
	if !o.jsonOut {
		fmt.Printf("%-12s %-12s %5s %7s %7s %9s %9s %9s %6s\n", "target", "mode", "conns", "ops", "secs", "ops/s", "p50", "p99", "errors")
	}
	failed := false
	for _, mode := range o.modes {
		for _, k := range o.conns {
			r := runCell(o, tlsConf, mode, k)
			if r.Errors > 0 {
				failed = true
			}
			if o.jsonOut {
				b, _ := json.Marshal(r)
				fmt.Println(string(b))
				continue
			}
			fmt.Printf("%-12s %-12s %5d %7d %7.2f %9.0f %9s %9s %6d\n", r.Target, r.Mode, r.Conns, r.Ops, r.Seconds, r.PerSec,
				time.Duration(r.P50us)*time.Microsecond, time.Duration(r.P99us)*time.Microsecond, r.Errors)
			if r.First != "" {
				fmt.Printf("  first error: %s\n", r.First)
			}
		}
	}
	if failed {
		return 1
	}
	return 0
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "ldapload: "+format+"\n", a...)
	os.Exit(2)
}

// checkLoopback refuses any target that is not this host.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad -url: %v", err)
	}
	if u.Scheme != "ldap" && u.Scheme != "ldaps" {
		return fmt.Errorf("-url must be ldap:// or ldaps://")
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing %q: ldapload only targets loopback addresses", h)
}

func tlsConfig(o options) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.insecure} //nolint:gosec // opt-in for test certificates
	if u, err := url.Parse(o.url); err == nil {
		c.ServerName = u.Hostname()
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", o.caFile)
		}
	}
	return c, nil
}

func fill(tpl string, i int) string {
	if strings.Contains(tpl, "%d") {
		return strings.ReplaceAll(tpl, "%d", strconv.Itoa(i))
	}
	return tpl
}

func dial(o options, tc *tls.Config) (*ldap.Conn, error) {
	c, err := ldap.DialURL(o.url, ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(30 * time.Second)
	if o.startTLS {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// warmUp binds each user once, unmeasured.
func warmUp(o options, tc *tls.Config) error {
	c, err := dial(o, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	for u := 1; u <= o.users; u++ {
		if err := c.Bind(fill(o.userTpl, u), fill(o.passTpl, u)); err != nil {
			return fmt.Errorf("user %d: %w", u, err)
		}
	}
	return nil
}

// runCell runs one mode over k connections until n operations or the
// time limit, whichever comes first.
func runCell(o options, tc *tls.Config, mode string, k int) row {
	r := row{Target: o.name, Mode: mode, Conns: k}
	cs := make([]*ldap.Conn, 0, k)
	for i := 0; i < k; i++ {
		c, err := dial(o, tc)
		if err != nil {
			r.Errors++
			r.First = err.Error()
			for _, c := range cs {
				c.Close()
			}
			return r
		}
		cs = append(cs, c)
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	var next, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, k)
	deadline := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < k; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := cs[w]
			for time.Now().Before(deadline) {
				i := next.Add(1)
				if i > int64(o.n) {
					return
				}
				u := int((i-1)%int64(o.users)) + 1
				t0 := time.Now()
				err := c.Bind(fill(o.userTpl, u), fill(o.passTpl, u))
				if err == nil && mode == "bind+search" {
					var res *ldap.SearchResult
					res, err = c.Search(ldap.NewSearchRequest(o.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
						fill(o.filterTpl, u), []string{"uid", "cn", "mail", "memberOf"}, nil))
					if err == nil && len(res.Entries) == 0 {
						err = fmt.Errorf("search %s found nothing", fill(o.filterTpl, u))
					}
				}
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					var le *ldap.Error
					if !errors.As(err, &le) || le.ResultCode >= ldap.ErrorNetwork {
						if nc, err := dial(o, tc); err == nil {
							c.Close()
							c, cs[w] = nc, nc
						}
					}
				}
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(float64(len(all)-1)*p)]
	}
	r.Ops = int64(len(all))
	r.Seconds = el.Seconds()
	if el > 0 {
		r.PerSec = float64(r.Ops) / el.Seconds()
	}
	r.P50us, r.P99us = pct(0.50).Microseconds(), pct(0.99).Microseconds()
	r.Errors = errs.Load()
	if e := firstErr.Load(); e != nil {
		r.First = e.(string)
	}
	return r
}

// startSelf runs the LDAP door in-process on a temporary store and the
// real authn, seeded with o.self users, and points o at it.
func startSelf(o *options) (func(), error) {
	dir, err := os.MkdirTemp("", "ldapload-self-")
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	hp := authn.DefaultHashParams
	if o.selfHash == "fast" {
		hp = authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}
	}
	au, err := authn.New(authn.Config{Hash: hp, CacheTTL: o.selfCache}, st, st, quiet)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	g, err := st.CreateGroup(&store.Group{Name: "staff"})
	if err != nil {
		return nil, err
	}
	// Hash the passwords in parallel: each argon2id hash is tens of ms.
	errc := make(chan error, o.self)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := 1; i <= o.self; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := st.CreateUser(&store.User{Username: fmt.Sprintf("user%d", i), Email: fmt.Sprintf("user%d@example.test", i),
				FirstName: "User", LastName: strconv.Itoa(i), State: store.StateActive})
			if err == nil {
				err = au.ChangePassword(ctx, u.ID, secret.FromString(fmt.Sprintf("Passw0rd!%d", i)), "ldapload")
			}
			if err == nil {
				err = st.AddMember(g.ID, u.ID)
			}
			if err != nil {
				errc <- err
			}
		}(i)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	srv, err := ldapserver.New(ldapserver.Config{Listen: "127.0.0.1:0", BaseDN: "dc=example,dc=test", ExemptLoopback: true},
		au, st, quiet, nil)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	<-srv.Ready()
	plain, _ := srv.Addrs()
	if plain == nil {
		cancel()
		return nil, <-done
	}
	o.url = "ldap://" + plain.String()
	if o.name == "" {
		o.name = "gatewayd"
	}
	o.userTpl, o.passTpl = "uid=user%d,ou=users,dc=example,dc=test", "Passw0rd!%d"
	o.base, o.filterTpl = "dc=example,dc=test", "(uid=user%d)"
	if o.users > o.self {
		o.users = o.self
	}
	return func() {
		cancel()
		<-done
		st.Close()
		os.RemoveAll(dir)
	}, nil
}
