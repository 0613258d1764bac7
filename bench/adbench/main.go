// Command adbench measures delegated-login latency against a direct
// go-ldap simple bind to the same domain controller, in one run:
//
//   - direct: one LDAPS connection kept open, Bind(UPN, password) per
//     iteration — the floor, what AD itself costs;
//   - validate: delegation.Delegator.Validate — pool checkout, rebind on a
//     pooled connection, sub-code handling, metrics;
//   - login: authn.Authenticator.Login with that delegator over an
//     in-memory user store — the whole login path a front door calls
//     (lookup, state checks, AD, stored-hash bookkeeping via the credential
//     cache, event, observer).
//
// The three are interleaved (one of each per round, the order rotating)
// so the DC's load is the same for each. The goal (issue #6) is login p50 at most 1 ms over
// direct p50. Run it with bench/adbench/run.sh, which starts a Samba AD DC.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/delegation"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

func main() {
	url := flag.String("url", "ldaps://127.0.0.1:636", "domain controller")
	caFile := flag.String("ca", "", "CA certificate of the DC (PEM)")
	realm := flag.String("realm", "EXAMPLE.TEST", "AD domain")
	user := flag.String("user", "alice", "sAMAccountName")
	pass := flag.String("password", "Alice-Passw0rd!", "the user's AD password")
	n := flag.Int("n", 2000, "measured rounds (one of each kind per round)")
	warm := flag.Int("warmup", 200, "unmeasured rounds first")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatalf("-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		log.Fatalf("-ca %s: no certificate", *caFile)
	}
	upn := *user + "@" + strings.ToLower(*realm)

	// direct
	host := strings.TrimPrefix(strings.TrimPrefix(*url, "ldaps://"), "ldap://")
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	conn, err := ldap.DialURL(*url, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: host}))
	if err != nil {
		log.Fatalf("direct dial: %v", err)
	}
	defer conn.Close()
	conn.SetTimeout(5 * time.Second)

	// validate
	d, err := delegation.New(delegation.Config{Domains: []delegation.Domain{{Name: "bench", Realm: *realm, URLs: []string{*url},
		RootCAs: pool, Timeout: 5 * time.Second, ConnectTimeout: 5 * time.Second, PoolSize: 2, StoreHash: true}}})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	for _, r := range d.Start(context.Background()) {
		if r.Err != nil {
			log.Fatalf("DC %s: %v", r.URL, r.Err)
		}
	}
	u := &store.User{ID: "bench-user", Username: *user, Email: upn, State: store.StateActive,
		PasswordStatus: store.PasswordDelegated, PasswordAuthority: store.AuthorityAD, DelegatedAuthority: store.AuthorityAD}

	// login: the production hash parameters and credential cache.
	users := &memUsers{u: u.Copy()}
	a, err := authn.New(authn.Config{CacheTTL: 15 * time.Minute}, users, discard{}, nil, authn.WithDelegator(d))
	if err != nil {
		log.Fatal(err)
	}
	pw := secret.FromString(*pass)
	ctx := context.Background()
	req := authn.Request{Identifier: *user, Password: pw, Protocol: authn.ProtocolRADIUS}

	kinds := []struct {
		name string
		fn   func() error
	}{
		{"direct go-ldap bind", func() error { return conn.Bind(upn, *pass) }},
		{"delegation.Validate", func() error {
			if r := d.Validate(ctx, authn.PrincipalOf(u), pw); !r.OK {
				return fmt.Errorf("%+v", r)
			}
			return nil
		}},
		{"authn.Login (delegated)", func() error {
			if r := a.Login(ctx, req); !r.OK {
				return fmt.Errorf("reason %s: %s", r.Reason, r.Detail)
			}
			return nil
		}},
	}
	samples := make([][]time.Duration, len(kinds))
	for round := 0; round < *warm+*n; round++ {
		for j := range kinds {
			k := (round + j) % len(kinds) // rotate who goes first, so no kind always follows another
			kind := kinds[k]
			start := time.Now()
			if err := kind.fn(); err != nil {
				log.Fatalf("%s: %v", kind.name, err)
			}
			if round >= *warm {
				samples[k] = append(samples[k], time.Since(start))
			}
		}
	}

	fmt.Printf("adbench: %s, user %s, %d rounds after %d warm-up (each round: one of each, order rotating)\n", *url, upn, *n, *warm)
	fmt.Printf("%-26s %10s %10s %10s %10s\n", "", "p50", "p90", "p99", "mean")
	p50 := make([]time.Duration, len(kinds))
	for k, kind := range kinds {
		s := samples[k]
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		var sum time.Duration
		for _, x := range s {
			sum += x
		}
		p50[k] = pct(s, 50)
		fmt.Printf("%-26s %10s %10s %10s %10s\n", kind.name, us(pct(s, 50)), us(pct(s, 90)), us(pct(s, 99)), us(sum/time.Duration(len(s))))
	}
	over := p50[2] - p50[0]
	verdict := "PASS"
	if over > time.Millisecond {
		verdict = "FAIL"
	}
	fmt.Printf("overhead at p50: validate %s, login %s over the direct bind (goal <= 1ms: %s)\n", us(p50[1]-p50[0]), us(over), verdict)
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

// memUsers is a one-user authn.Users.
type memUsers struct {
	mu sync.Mutex
	u  *store.User
}

func (m *memUsers) get(match bool) (*store.User, error) {
	if !match {
		return nil, store.ErrNotFound
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.u.Copy(), nil
}
func (m *memUsers) UserByID(id string) (*store.User, error) { return m.get(id == m.u.ID) }
func (m *memUsers) UserByUsername(n string) (*store.User, error) {
	return m.get(strings.EqualFold(n, m.u.Username))
}
func (m *memUsers) UserByEmail(e string) (*store.User, error) {
	return m.get(strings.EqualFold(e, m.u.Email))
}
func (m *memUsers) UpdateUser(id string, fn func(*store.User) error) (*store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.u.Copy()
	if err := fn(c); err != nil {
		return nil, err
	}
	m.u = c
	return c.Copy(), nil
}

type discard struct{}

func (discard) Emit(store.Event) {}
