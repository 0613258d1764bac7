// Command pgstore holds the two steps of bench/pgstore/run.sh that no
// other bench driver does: measuring replication delay between two
// gatewayd replicas on one PostgreSQL database, and printing the run's
// table. Throughput passes reuse bench/radiusload, bench/ldapload and
// bench/scale. It talks to loopback addresses only.
//
//	pgstore repl -a http://127.0.0.1:18413 -a-token A/admin.token \
//	             -b http://127.0.0.1:18423 -b-token B/admin.token -n 500
//	pgstore table -cmd 'bench/pgstore/run.sh' RESULTS.jsonl
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pgstore repl|table [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "repl":
		err = repl(os.Args[2:])
	case "table":
		err = table(os.Args[2:])
	default:
		err = fmt.Errorf("unknown step %q (repl, table)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgstore:", err)
		os.Exit(1)
	}
}

// replica is one admin API endpoint.
type replica struct {
	base   string
	token  string
	client *http.Client
}

func newReplica(base, tokenFile string) (*replica, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil {
		return nil, err
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("refusing non-loopback target %s: this tool is for local benchmarks only", u.Hostname())
		}
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading the admin token: %w", err)
	}
	// One kept-alive connection: the poll loop must not pay a TCP
	// handshake per look.
	return &replica{base: base, token: strings.TrimSpace(string(b)),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}, nil
}

func (r *replica) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// replResult is what repl prints (one JSON line).
type replResult struct {
	Phase  string  `json:"phase"`
	Writes int     `json:"writes"`
	Seen   int     `json:"seen"`
	Missed int     `json:"missed"` // not visible on B within -timeout
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	// WriteP50ms is A's POST round trip, the write's own latency.
	WriteP50ms float64 `json:"write_p50_ms"`
	// PollP50ms is one GET on B (404 or 200): the resolution of the delay.
	PollP50ms float64 `json:"poll_p50_ms"`
	Polls     int     `json:"polls"`
	Seconds   float64 `json:"seconds"`
}

// repl creates users one at a time on replica A and, after each 2xx,
// polls replica B's GET /v1/users/{name} back to back until it answers
// 200. The delay is from the moment A's answer was read to the moment
// B's first 200 was read: an upper bound, finer than one poll round
// trip (reported beside it).
func repl(args []string) error {
	fs := flag.NewFlagSet("repl", flag.ExitOnError)
	aURL := fs.String("a", "http://127.0.0.1:18413", "replica A's admin API (writes)")
	aTok := fs.String("a-token", "", "replica A's admin token file")
	bURL := fs.String("b", "http://127.0.0.1:18423", "replica B's admin API (reads)")
	bTok := fs.String("b-token", "", "replica B's admin token file")
	n := fs.Int("n", 500, "users to create")
	prefix := fs.String("prefix", "repl", "username prefix (names are PREFIX1..PREFIXn)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up on one user's visibility on B after this")
	limit := fs.Duration("duration", 5*time.Minute, "time limit for the whole step")
	_ = fs.Parse(args)
	if *n < 1 || *timeout <= 0 || *limit <= 0 {
		return errors.New("-n, -timeout and -duration must be positive")
	}
	a, err := newReplica(*aURL, *aTok)
	if err != nil {
		return fmt.Errorf("-a: %w", err)
	}
	b, err := newReplica(*bURL, *bTok)
	if err != nil {
		return fmt.Errorf("-b: %w", err)
	}
	res := replResult{Phase: "repl"}
	var delays, writes, polls []time.Duration
	start := time.Now()
	deadline := start.Add(*limit)
	for i := 1; i <= *n && time.Now().Before(deadline); i++ {
		name := fmt.Sprintf("%s%d", *prefix, i)
		t0 := time.Now()
		status, body, err := a.do("POST", "/v1/users", map[string]any{"username": name, "email": name + "@repl.test"})
		if err != nil {
			return fmt.Errorf("POST %s on A: %w", name, err)
		}
		if status != http.StatusCreated {
			return fmt.Errorf("POST %s on A: %d %s", name, status, bytes.TrimSpace(body))
		}
		acked := time.Now()
		writes = append(writes, acked.Sub(t0))
		res.Writes++
		seen := false
		for time.Since(acked) < *timeout {
			p0 := time.Now()
			status, body, err := b.do("GET", "/v1/users/"+name, nil)
			got := time.Now()
			polls = append(polls, got.Sub(p0))
			if err != nil {
				return fmt.Errorf("GET %s on B: %w", name, err)
			}
			if status == http.StatusOK {
				delays = append(delays, got.Sub(acked))
				seen = true
				break
			}
			if status != http.StatusNotFound {
				return fmt.Errorf("GET %s on B: %d %s", name, status, bytes.TrimSpace(body))
			}
		}
		if seen {
			res.Seen++
		} else {
			res.Missed++
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.Polls = len(polls)
	res.P50ms, res.P99ms, res.MaxMs = quantile(delays, 0.5), quantile(delays, 0.99), quantile(delays, 1)
	res.WriteP50ms, res.PollP50ms = quantile(writes, 0.5), quantile(polls, 0.5)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Writes < *n {
		return fmt.Errorf("time limit reached after %d of %d writes", res.Writes, *n)
	}
	return nil
}

// quantile in ms (nearest rank); 0 for no samples.
func quantile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}

// pass is one result line run.sh wrote: a throughput pass (radius, ldap,
// writes) on one backend in one round, or the repl result.
type pass struct {
	Phase   string  `json:"phase"`
	Backend string  `json:"backend"`
	Round   int     `json:"round"`
	Ops     float64 `json:"ops"`
	PerSec  float64 `json:"ops_per_s"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	CPUus   float64 `json:"cpu_us_per_op"`
	// DBCPUus is the PostgreSQL server's CPU per operation (postgres
	// passes only).
	DBCPUus float64 `json:"db_cpu_us_per_op"`
	Errors  int64   `json:"errors"`
}

// table prints the markdown summary of a results file.
func table(args []string) error {
	fs := flag.NewFlagSet("table", flag.ExitOnError)
	cmd := fs.String("cmd", "", "the command line that produced the results (printed above the table)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: pgstore table [-cmd CMD] RESULTS.jsonl")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	var passes []pass
	var rp *replResult
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var p pass
		if err := json.Unmarshal(line, &p); err != nil {
			return fmt.Errorf("%s: %w in %q", fs.Arg(0), err, line)
		}
		if p.Phase == "repl" {
			var r replResult
			_ = json.Unmarshal(line, &r)
			rp = &r
			continue
		}
		passes = append(passes, p)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if *cmd != "" {
		fmt.Printf("`%s`\n\n", *cmd)
	}
	fmt.Println("| measure | bbolt (median; per round) | postgres (median; per round) | postgres / bbolt (median; per round) |")
	fmt.Println("|---|---|---|---|")
	for _, ph := range []struct{ phase, label, unit string }{
		{"radius", "RADIUS PAP warm", "req/s"},
		{"ldap", "LDAP bind warm", "binds/s"},
		{"writes", "admin user creates", "writes/s"},
	} {
		bb, pg := pick(passes, ph.phase, "bbolt"), pick(passes, ph.phase, "postgres")
		if len(bb) == 0 && len(pg) == 0 {
			continue
		}
		rate := func(p pass) float64 { return p.PerSec }
		fmt.Printf("| %s %s | %s | %s | %s |\n", ph.label, ph.unit, cell(bb, rate, "%.0f"), cell(pg, rate, "%.0f"), ratio(pg, bb, rate))
		if ph.phase != "writes" {
			p50 := func(p pass) float64 { return p.P50ms }
			p99 := func(p pass) float64 { return p.P99ms }
			fmt.Printf("| %s p50 ms | %s | %s | %s |\n", ph.label, cell(bb, p50, "%.2f"), cell(pg, p50, "%.2f"), ratio(pg, bb, p50))
			fmt.Printf("| %s p99 ms | %s | %s | %s |\n", ph.label, cell(bb, p99, "%.2f"), cell(pg, p99, "%.2f"), ratio(pg, bb, p99))
		}
		cpu := func(p pass) float64 { return p.CPUus }
		fmt.Printf("| %s gatewayd CPU µs/op | %s | %s | %s |\n", ph.label, cell(bb, cpu, "%.1f"), cell(pg, cpu, "%.1f"), ratio(pg, bb, cpu))
		dbcpu := func(p pass) float64 { return p.DBCPUus }
		fmt.Printf("| %s PostgreSQL server CPU µs/op | | %s | |\n", ph.label, cell(pg, dbcpu, "%.1f"))
		var errs int64
		for _, p := range append(bb, pg...) {
			errs += p.Errors
		}
		if errs > 0 {
			fmt.Printf("| %s errors (all passes) | **%d** | | |\n", ph.label, errs)
		}
	}
	if rp != nil {
		fmt.Printf("| replication delay A→B, p50 / p99 / max ms (%d writes, %d seen, %d not within the timeout) | | %.2f / %.2f / %.2f | |\n",
			rp.Writes, rp.Seen, rp.Missed, rp.P50ms, rp.P99ms, rp.MaxMs)
		fmt.Printf("| replication: A's POST p50 ms; one GET on B p50 ms (the delay's resolution) | | %.2f; %.2f | |\n", rp.WriteP50ms, rp.PollP50ms)
	}
	return nil
}

func pick(ps []pass, phase, backend string) []pass {
	var out []pass
	for _, p := range ps {
		if p.Phase == phase && p.Backend == backend {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b pass) int { return a.Round - b.Round })
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func values(ps []pass, f func(pass) float64) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = f(p)
	}
	return out
}

func cell(ps []pass, f func(pass) float64, format string) string {
	if len(ps) == 0 {
		return "-"
	}
	v := values(ps, f)
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(format, x)
	}
	return fmt.Sprintf("**"+format+"**; %s", median(v), strings.Join(parts, ", "))
}

// ratio is the median of per-round ratios (the two backends of one round
// ran back to back, so they saw the same machine) and each round's.
func ratio(pg, bb []pass, f func(pass) float64) string {
	var rs []float64
	for _, p := range pg {
		for _, b := range bb {
			if b.Round == p.Round && f(b) > 0 {
				rs = append(rs, f(p)/f(b))
			}
		}
	}
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return fmt.Sprintf("**%.2fx**; %s", median(rs), strings.Join(parts, ", "))
}
