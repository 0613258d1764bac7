// Command radiusload measures a RADIUS server's PAP throughput and
// latency: it sends Access-Requests (each with a Message-Authenticator)
// for users userN / passwordN with K requests outstanding, bounded by a
// count and a time limit, and prints requests/s, p50, p99 and losses.
//
// It talks to loopback addresses only and refuses any other target.
//
//	radiusload -addr 127.0.0.1:1812 -secret testing123 -users 200 -outstanding 50 -count 10000
//
// A "cold" pass sends each user once (-count equal to -users, a fresh
// -first range); a "warm" pass repeats users the server has already seen.
// run.sh runs both against gatewayd and FreeRADIUS; steady.sh runs the
// first logins after a start and the steady state against the floor.
//
// With -slice N the result also gives p99 per N requests in the order
// they were sent, to show how latency changes over a pass. With -serve
// ADDR it is instead the minimal responder (the floor, floor.go).
package main

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	addr        string
	secret      string
	users       int
	first       int
	userTpl     string
	passTpl     string
	outstanding int
	count       int
	duration    time.Duration
	timeout     time.Duration
	retries     int
	expect      string
	label       string
	jsonOut     bool
	slice       int
	serve       string
}

type result struct {
	Label       string  `json:"label"`
	Outstanding int     `json:"outstanding"`
	Sent        int64   `json:"requests"`
	Accepted    int64   `json:"accepted"`
	Rejected    int64   `json:"rejected"`
	Lost        int64   `json:"lost"`
	Invalid     int64   `json:"invalid"`
	Unexpected  int64   `json:"unexpected"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"req_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	// SliceP99ms is p99 per -slice requests, in sending order.
	SliceP99ms []float64 `json:"slice_p99_ms,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:1812", "server address (loopback only)")
	flag.StringVar(&o.secret, "secret", "", "shared secret (or env RADIUS_SECRET)")
	flag.IntVar(&o.users, "users", 100, "number of distinct users")
	flag.IntVar(&o.first, "first", 1, "index of the first user")
	flag.StringVar(&o.userTpl, "user", "user%d", "User-Name template (%d = user index; no verb = same name for all)")
	flag.StringVar(&o.passTpl, "pass", "password%d", "password template")
	flag.IntVar(&o.outstanding, "outstanding", 50, "requests in flight at once")
	flag.IntVar(&o.count, "count", 10000, "requests to send (0 = until -duration)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "time limit")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Second, "wait for an answer before retransmitting")
	flag.IntVar(&o.retries, "retries", 1, "retransmissions before a request counts as lost")
	flag.StringVar(&o.expect, "expect", "accept", "expected answer: accept, reject or any")
	flag.StringVar(&o.label, "label", "", "label printed with the result")
	flag.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	flag.IntVar(&o.slice, "slice", 0, "also report p99 per this many requests, in sending order (0: off)")
	flag.StringVar(&o.serve, "serve", "", "run the minimal responder on this loopback address instead of sending")
	flag.Parse()
	if o.secret == "" {
		o.secret = os.Getenv("RADIUS_SECRET")
	}
	if o.serve != "" && o.secret != "" {
		if err := serveFloor(o.serve, []byte(o.secret)); err != nil {
			fmt.Fprintln(os.Stderr, "radiusload:", err)
			os.Exit(1)
		}
		return
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "radiusload:", err)
		os.Exit(2)
	}
	r, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "radiusload:", err)
		os.Exit(1)
	}
	if o.jsonOut {
		_ = json.NewEncoder(os.Stdout).Encode(r)
	} else {
		fmt.Printf("%-28s K=%-4d n=%-6d accept=%-6d reject=%-6d lost=%-4d invalid=%d unexpected=%d  %6.2fs  %8.0f req/s  p50=%.2fms p99=%.2fms max=%.1fms\n",
			r.Label, r.Outstanding, r.Sent, r.Accepted, r.Rejected, r.Lost, r.Invalid, r.Unexpected,
			r.Seconds, r.PerSecond, r.P50ms, r.P99ms, r.MaxMs)
		if len(r.SliceP99ms) > 0 {
			fmt.Printf("%-28s p99 per %d requests (ms):", r.Label, o.slice)
			for _, v := range r.SliceP99ms {
				fmt.Printf(" %.2f", v)
			}
			fmt.Println()
		}
	}
	if r.Lost > 0 || r.Invalid > 0 || r.Unexpected > 0 {
		os.Exit(3)
	}
}

func (o *options) check() error {
	if o.secret == "" {
		return errors.New("no -secret (or RADIUS_SECRET)")
	}
	a, err := net.ResolveUDPAddr("udp", o.addr)
	if err != nil {
		return err
	}
	if !a.IP.IsLoopback() {
		return fmt.Errorf("refusing non-loopback target %s: this tool is for local benchmarks only", a.IP)
	}
	o.addr = a.String()
	if o.users < 1 || o.outstanding < 1 || o.count < 0 || o.duration <= 0 || o.timeout <= 0 || o.retries < 0 || o.slice < 0 {
		return errors.New("-users, -outstanding, -duration and -timeout must be positive; -count, -retries and -slice not negative")
	}
	switch o.expect {
	case "accept", "reject", "any":
	default:
		return fmt.Errorf("-expect %q: want accept, reject or any", o.expect)
	}
	if o.label == "" {
		o.label = o.addr
	}
	return nil
}

func fill(tpl string, i int) string {
	if strings.Contains(tpl, "%") {
		return fmt.Sprintf(tpl, i)
	}
	return tpl
}

func run(o options) (result, error) {
	res := result{Label: o.label, Outstanding: o.outstanding}
	var next atomic.Int64
	var sent, accepted, rejected, lost, invalid, unexpected atomic.Int64
	deadline := time.Now().Add(o.duration)
	lat := make([][]sample, o.outstanding)
	conns := make([]*net.UDPConn, o.outstanding)
	ra, _ := net.ResolveUDPAddr("udp", o.addr)
	for i := range conns {
		c, err := net.DialUDP("udp", nil, ra)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return res, err
		}
		conns[i] = c
	}
	secret := []byte(o.secret)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.outstanding {
		wg.Go(func() {
			c := conns[w]
			defer c.Close()
			buf := make([]byte, 4096)
			id := byte(w)
			for {
				n := next.Add(1) - 1
				if (o.count > 0 && n >= int64(o.count)) || time.Now().After(deadline) {
					return
				}
				sent.Add(1)
				idx := o.first + int(n%int64(o.users))
				pkt, auth := accessRequest(id, fill(o.userTpl, idx), fill(o.passTpl, idx), secret)
				t0 := time.Now()
				var resp []byte
			attempts:
				for try := 0; try <= o.retries; try++ {
					if _, err := c.Write(pkt); err != nil {
						break
					}
					until := time.Now().Add(o.timeout)
					for {
						_ = c.SetReadDeadline(until)
						m, err := c.Read(buf)
						if err != nil {
							break // timeout: retransmit
						}
						if m >= 20 && buf[1] == id {
							resp = buf[:m]
							break attempts
						}
						// a late answer to an earlier request: ignore
					}
				}
				id++
				if resp == nil {
					lost.Add(1)
					continue
				}
				lat[w] = append(lat[w], sample{n, time.Since(t0)})
				if !validResponse(resp, auth, secret) {
					invalid.Add(1)
					continue
				}
				switch resp[0] {
				case 2:
					accepted.Add(1)
					if o.expect == "reject" {
						unexpected.Add(1)
					}
				case 3:
					rejected.Add(1)
					if o.expect == "accept" {
						unexpected.Add(1)
					}
				default:
					unexpected.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	samples := slices.Concat(lat...)
	if o.slice > 0 {
		slices.SortFunc(samples, func(a, b sample) int { return int(a.n - b.n) })
		for i := 0; i < len(samples); i += o.slice {
			part := samples[i:min(i+o.slice, len(samples))]
			ds := make([]time.Duration, len(part))
			for j, s := range part {
				ds[j] = s.d
			}
			slices.Sort(ds)
			res.SliceP99ms = append(res.SliceP99ms, ms(pct(ds, 0.99)))
		}
	}
	all := make([]time.Duration, len(samples))
	for i, s := range samples {
		all[i] = s.d
	}
	slices.Sort(all)
	res.Accepted, res.Rejected, res.Lost, res.Invalid, res.Unexpected = accepted.Load(), rejected.Load(), lost.Load(), invalid.Load(), unexpected.Load()
	res.Sent = sent.Load()
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(len(all)) / elapsed.Seconds()
	res.P50ms, res.P99ms = ms(pct(all, 0.50)), ms(pct(all, 0.99))
	if len(all) > 0 {
		res.MaxMs = ms(all[len(all)-1])
	}
	return res, nil
}

// sample is one answered request: its place in sending order and its
// latency.
type sample struct {
	n int64
	d time.Duration
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)-1) * p)
	return d[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// accessRequest encodes a PAP Access-Request with a Message-Authenticator
// (RFC 2865 §5.2 password hiding, RFC 3579 §3.2 HMAC-MD5).
func accessRequest(id byte, user, pass string, secret []byte) ([]byte, [16]byte) {
	var auth [16]byte
	_, _ = rand.Read(auth[:])
	pw := hidePassword([]byte(pass), secret, auth[:])
	n := 20 + 2 + len(user) + 2 + len(pw) + 18
	b := make([]byte, 20, n)
	b[0], b[1] = 1, id
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	copy(b[4:20], auth[:])
	b = append(b, 1, byte(2+len(user)))
	b = append(b, user...)
	b = append(b, 2, byte(2+len(pw)))
	b = append(b, pw...)
	b = append(b, 80, 18)
	maOff := len(b)
	b = append(b, make([]byte, 16)...)
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	copy(b[maOff:], mac.Sum(nil))
	return b, auth
}

func hidePassword(p, secret, auth []byte) []byte {
	l := (len(p) + 15) / 16 * 16
	if l == 0 {
		l = 16
	}
	if l > 128 {
		l = 128
	}
	out := make([]byte, l)
	copy(out, p)
	prev := auth
	for i := 0; i < l; i += 16 {
		h := md5.New()
		h.Write(secret)
		h.Write(prev)
		sum := h.Sum(nil)
		for j := range 16 {
			out[i+j] ^= sum[j]
		}
		prev = out[i : i+16]
	}
	return out
}

// validResponse checks the Response Authenticator and, when present, the
// Message-Authenticator.
func validResponse(resp []byte, reqAuth [16]byte, secret []byte) bool {
	n := int(binary.BigEndian.Uint16(resp[2:4]))
	if n < 20 || n > len(resp) {
		return false
	}
	resp = resp[:n]
	h := md5.New()
	h.Write(resp[:4])
	h.Write(reqAuth[:])
	h.Write(resp[20:])
	h.Write(secret)
	if !hmac.Equal(h.Sum(nil), resp[4:20]) {
		return false
	}
	for off := 20; off+2 <= n; {
		l := int(resp[off+1])
		if l < 2 || off+l > n {
			return false
		}
		if resp[off] == 80 && l == 18 {
			c := slices.Clone(resp)
			copy(c[4:20], reqAuth[:])
			clear(c[off+2 : off+18])
			mac := hmac.New(md5.New, secret)
			mac.Write(c)
			return hmac.Equal(mac.Sum(nil), resp[off+2:off+18])
		}
		off += l
	}
	return true
}
