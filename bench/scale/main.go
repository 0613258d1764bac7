// Command scale drives the steps of bench/scale/run.sh that a shell loop
// would make slow: creating many users through the admin API with bounded
// concurrency, running a few LDAP and API searches, and timing a start
// until /healthz answers. It talks to loopback addresses only.
//
//	scale create -admin http://127.0.0.1:18130 -token-file DIR/admin.token -users 100000
//	scale search -admin ... -token-file ... -ldap ldap://127.0.0.1:3890 -users 100000
//	scale healthz -admin http://127.0.0.1:18130 -timeout 60s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scale create|search|healthz [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "create":
		err = create(os.Args[2:])
	case "search":
		err = search(os.Args[2:])
	case "healthz":
		err = healthz(os.Args[2:])
	default:
		err = fmt.Errorf("unknown step %q (create, search, healthz)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// common flags of the API steps.
type apiFlags struct {
	admin     string
	tokenFile string
	token     string
	client    *http.Client
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.admin, "admin", "http://127.0.0.1:18130", "admin API base URL (loopback only)")
	fs.StringVar(&a.tokenFile, "token-file", "", "file holding the admin bearer token")
}

func (a *apiFlags) init(needToken bool) error {
	u, err := url.Parse(a.admin)
	if err != nil {
		return err
	}
	if err := checkLoopback(u.Hostname()); err != nil {
		return err
	}
	if needToken {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return fmt.Errorf("reading the admin token: %w", err)
		}
		a.token = strings.TrimSpace(string(b))
	}
	a.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return nil
}

func (a *apiFlags) do(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.admin+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func checkLoopback(host string) error {
	ips, err := net.LookupIP(host)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("refusing non-loopback target %s: this tool is for local benchmarks only", host)
		}
	}
	return nil
}

// create makes users user<first>..user<first+n-1>, each with an email and
// two attributes, with -conc requests in flight.
func create(args []string) error {
	fs := flag.NewFlagSet("create", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	n := fs.Int("users", 100000, "users to create")
	first := fs.Int("first", 1, "index of the first user")
	conc := fs.Int("conc", 16, "requests in flight")
	limit := fs.Duration("duration", 10*time.Minute, "time limit")
	_ = fs.Parse(args)
	if err := a.init(true); err != nil {
		return err
	}
	if *n < 0 || *conc < 1 || *conc > 256 {
		return errors.New("-users must not be negative and -conc within 1..256")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
	var next, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				k := *first + i
				status, body, err := a.do("POST", "/v1/users", map[string]any{
					"username": fmt.Sprintf("user%d", k),
					"email":    fmt.Sprintf("user%d@scale.test", k),
					"attributes": map[string]string{
						"department":     fmt.Sprintf("dept%d", k%50),
						"employeeNumber": fmt.Sprintf("E%07d", k),
					},
				})
				if err == nil && status != http.StatusCreated {
					err = fmt.Errorf("POST /v1/users user%d: %d %s", k, status, bytes.TrimSpace(body))
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	done := min(next.Load(), int64(*n))
	fmt.Printf("created %d users in %.1fs (%.0f/s), %d failed\n", done-failed.Load(), secs, float64(done)/secs, failed.Load())
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("first failure: %s", e)
	}
	if ctx.Err() != nil && done < int64(*n) {
		return fmt.Errorf("time limit reached after %d users", done)
	}
	return nil
}

// search runs a few LDAP searches of each filter kind as a service account,
// then a few admin API listings (users and events), and prints each time.
func search(args []string) error {
	fs := flag.NewFlagSet("search", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	ldapURL := fs.String("ldap", "ldap://127.0.0.1:3890", "LDAP URL (loopback only)")
	bindDN := fs.String("bind", "uid=svc,ou=users,dc=example,dc=test", "service account DN")
	bindPW := fs.String("pass", "Svc-Passw0rd!", "service account password")
	base := fs.String("base", "dc=example,dc=test", "search base")
	n := fs.Int("users", 100000, "users in the store (user1..userN)")
	rounds := fs.Int("rounds", 3, "searches per filter kind")
	_ = fs.Parse(args)
	if err := a.init(true); err != nil {
		return err
	}
	u, err := url.Parse(*ldapURL)
	if err != nil {
		return err
	}
	if err := checkLoopback(u.Hostname()); err != nil {
		return err
	}
	c, err := ldap.DialURL(*ldapURL)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(*bindDN, *bindPW); err != nil {
		return fmt.Errorf("bind as %s: %w", *bindDN, err)
	}
	kinds := []struct{ name, tpl string }{
		{"uid", "(uid=user%d)"},
		{"mail", "(mail=user%d@scale.test)"},
		{"uidNumber", "(&(objectClass=posixAccount)(uidNumber=%d))"},
	}
	for _, k := range kinds {
		for r := range *rounds {
			i := 1 + (r+1)*(*n)/(*rounds+1)
			arg := i
			if k.name == "uidNumber" {
				arg = 10000 + i // numbers start at 10000, one per user in creation order (approximately)
			}
			f := fmt.Sprintf(k.tpl, arg)
			t := time.Now()
			res, err := c.Search(ldap.NewSearchRequest(*base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, f, []string{"uid", "mail"}, nil))
			if err != nil {
				return fmt.Errorf("search %s: %w", f, err)
			}
			fmt.Printf("ldap   %-10s %-48s %3d entries %8.1f ms\n", k.name, f, len(res.Entries), ms(time.Since(t)))
		}
	}
	for _, p := range []string{
		"/v1/users?limit=1000",
		"/v1/events?limit=1000",
		"/v1/events?user=user1&limit=100",
		"/v1/events?outcome=failure&limit=100",
		"/v1/events?type=user_create&limit=100",
	} {
		t := time.Now()
		status, body, err := a.do("GET", p, nil)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", p, status, bytes.TrimSpace(body))
		}
		fmt.Printf("api    %-59s %6d bytes %8.1f ms\n", p, len(body), ms(time.Since(t)))
	}
	return nil
}

// healthz polls /healthz until it answers 200 and prints the seconds since
// -since (a Unix time in nanoseconds, e.g. `date +%s%N` taken before the
// daemon was started), or since the call when -since is 0.
func healthz(args []string) error {
	fs := flag.NewFlagSet("healthz", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	since := fs.Int64("since", 0, "start time, Unix nanoseconds")
	limit := fs.Duration("timeout", 120*time.Second, "give up after")
	_ = fs.Parse(args)
	if err := a.init(false); err != nil {
		return err
	}
	start := time.Now()
	if *since > 0 {
		start = time.Unix(0, *since)
	}
	a.client.Timeout = 2 * time.Second
	deadline := time.Now().Add(*limit)
	for time.Now().Before(deadline) {
		resp, err := a.client.Get(a.admin + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Printf("%.2f\n", time.Since(start).Seconds())
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond) // polling a process that is starting: nothing to wait on
	}
	return fmt.Errorf("/healthz did not answer 200 within %s", *limit)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
