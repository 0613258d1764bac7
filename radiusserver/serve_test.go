package radiusserver

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"layeh.com/radius"
	"layeh.com/radius/rfc2868"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// TestParallelServe drives the UDP server from many goroutines over IPv4
// and IPv6 while the clients are reloaded underneath; run with -race.
func TestParallelServe(t *testing.T) {
	auth := newFakeAuth()
	cfg := integrationConfig("127.0.0.1:0", "[::1]:0")
	s, reg := startServer(t, cfg, auth)
	addrs := s.Addrs()

	stop := make(chan struct{})
	var reloader sync.WaitGroup
	reloader.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cl := append([]Client(nil), cfg.Clients...)
			if i%2 == 1 {
				cl[0], cl[2] = cl[2], cl[0]
			}
			if err := s.ReloadClients(cl); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})

	const goroutines, perG = 12, 40
	var accepts, rejects, silent atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			addr := addrs[g%len(addrs)]
			c, err := net.Dial("udp", addr.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 4096)
			for i := range perG {
				var r request
				switch i % 4 {
				case 0:
					r = request{user: "alice", password: "alicepass"}
				case 1:
					r = request{user: "bob", password: "wrong"}
				case 2:
					r = request{code: radius.CodeStatusServer}
				case 3:
					r = request{user: "alice", password: "alicepass", badMA: true}
				}
				r.id = byte(i)
				b, ra := r.encode(t)
				var resp []byte
				for try := 0; try < 3 && resp == nil; try++ { // UDP: retransmit like a NAS
					if _, err := c.Write(b); err != nil {
						t.Error(err)
						return
					}
					_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
					if n, err := c.Read(buf); err == nil {
						resp = buf[:n]
					}
					if r.badMA {
						break
					}
				}
				switch {
				case r.badMA:
					if resp != nil {
						t.Errorf("bad Message-Authenticator answered")
					}
					silent.Add(1)
				case resp == nil:
					t.Errorf("goroutine %d request %d: no answer", g, i)
				default:
					if !verifyResponse(resp, ra, []byte(testSecret)) {
						t.Errorf("answer does not verify")
					}
					switch radius.Code(resp[0]) {
					case radius.CodeAccessAccept:
						accepts.Add(1)
					case radius.CodeAccessReject:
						rejects.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	reloader.Wait()
	n := int64(goroutines * perG / 4)
	if accepts.Load() != 2*n || rejects.Load() != n || silent.Load() != n {
		t.Fatalf("accepts=%d rejects=%d silent=%d; want %d, %d, %d", accepts.Load(), rejects.Load(), silent.Load(), 2*n, n, n)
	}
	if got := dropped(reg, s, dropBadMA); got != float64(n) {
		t.Fatalf("dropped{bad_message_authenticator} = %v, want %d", got, n)
	}
}

// TestServeDrainsOnShutdown: a login in progress when the context ends
// still gets its answer, and Serve returns after it.
func TestServeDrainsOnShutdown(t *testing.T) {
	auth := newFakeAuth()
	auth.delay = 400 * time.Millisecond
	s, _ := newTestServer(t, Config{Listen: []string{"127.0.0.1:0"}, Clients: unitConfig().Clients, Workers: 2}, auth)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	<-s.Ready()
	addr := s.Addrs()[0]

	c, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, ra := request{user: "alice", password: "alicepass"}.encode(t)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, func() bool { return auth.logins.Load() == 1 }, "login started")
	cancel()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer for the in-flight request: %v", err)
	}
	if !verifyResponse(buf[:n], ra, []byte(testSecret)) || radius.Code(buf[0]) != radius.CodeAccessAccept {
		t.Fatal("bad answer")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := s.Serve(context.Background()); err == nil {
		t.Fatal("second Serve succeeded")
	}
}

func TestServeBindError(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s, _ := newTestServer(t, Config{Listen: []string{"127.0.0.1:0", busy.LocalAddr().String()}, Clients: unitConfig().Clients}, newFakeAuth())
	if err := s.Serve(context.Background()); err == nil {
		t.Fatal("Serve bound a busy port")
	}
	if len(s.Addrs()) != 0 {
		t.Fatal("addresses left after a failed bind")
	}
}

// TestOverloadDrops: with one worker busy and its queue full, further
// packets are dropped and counted, not queued without bound.
func TestOverloadDrops(t *testing.T) {
	auth := newFakeAuth()
	auth.delay = 400 * time.Millisecond
	cfg := unitConfig()
	cfg.Workers = 1
	s, reg := startServer(t, cfg, auth)
	c, err := net.Dial("udp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = 12
	for i := range sent {
		b, _ := request{id: byte(i), user: "alice", password: "alicepass"}.encode(t)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// Every packet ends up either answered or dropped for overload.
	testutil.Eventually(t, 15*time.Second, func() bool {
		return requests(s, "loopback", outcomeAccept)+dropped(reg, s, dropOverload) == sent
	}, "all packets answered or dropped")
	limit := 1 + queuePerWorker*cfg.Workers
	if got := int(requests(s, "loopback", outcomeAccept)); got > limit || got < 1 {
		t.Fatalf("%d requests accepted for work, want 1..%d", got, limit)
	}
}

func BenchmarkHandlePacket(b *testing.B) {
	auth := newFakeAuth()
	cfg := unitConfig()
	s, _ := newTestServer(b, cfg, auth)
	// Distinct requests, so that the duplicate cache does not answer.
	const distinct = 4096
	mk := func(r request) [][]byte {
		out := make([][]byte, distinct)
		for i := range out {
			r.id = byte(i)
			out[i], _ = r.encode(b)
		}
		return out
	}
	cases := []struct {
		name string
		src  func() [][]byte
	}{
		{"accept_with_reply_groups", func() [][]byte { return mk(request{user: "bob", password: "bobpass"}) }},
		{"reject", func() [][]byte { return mk(request{user: "alice", password: "wrong"}) }},
		{"status_server", func() [][]byte { return mk(request{code: radius.CodeStatusServer}) }},
		{"bad_message_authenticator", func() [][]byte { return mk(request{user: "alice", password: "alicepass", secret: "wrong"}) }},
		{"unknown_client", func() [][]byte { return mk(request{user: "alice", password: "alicepass"}) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			pkts := tc.src()
			src := srcNAS
			if tc.name == "unknown_client" {
				src = srcUnknown
			}
			s.dedup = newDedupCache(0, dedupMaxEntries) // nothing is a retransmission
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.handlePacket(context.Background(), src, pkts[i%distinct], time.Now())
				i++
			}
		})
	}
	b.Run("retransmission", func(b *testing.B) {
		s.dedup = newDedupCache(dedupTTL, dedupMaxEntries)
		p, _ := request{user: "alice", password: "alicepass"}.encode(b)
		s.handlePacket(context.Background(), srcNAS, p, time.Now())
		b.ReportAllocs()
		for b.Loop() {
			s.handlePacket(context.Background(), srcNAS, p, time.Now())
		}
	})
}

// BenchmarkServeUDP measures the whole server over loopback UDP with
// 16 requests outstanding per GOMAXPROCS.
func BenchmarkServeUDP(b *testing.B) {
	auth := newFakeAuth()
	s, _ := startServer(b, Config{Listen: []string{"127.0.0.1:0"}, Clients: unitConfig().Clients}, auth)
	addr := s.Addrs()[0].String()
	var next atomic.Uint32
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for pb.Next() {
			r := request{id: byte(next.Add(1)), user: "alice", password: "alicepass"}
			p, _ := r.encode(b)
			for {
				if _, err := c.Write(p); err != nil {
					b.Error(err)
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err == nil {
					break
				}
			}
		}
	})
}

// cachingAuth adds LoginCached to fakeAuth the way authn's credential
// cache behaves: a password that already passed Login is answered without
// password work; anything else is left to Login.
type cachingAuth struct {
	*fakeAuth
	mu     sync.Mutex
	warm   map[string]string // identifier -> password that passed
	hits   atomic.Int64
	misses atomic.Int64
}

func (c *cachingAuth) Login(ctx context.Context, req authn.Request) authn.Result {
	res := c.fakeAuth.Login(ctx, req)
	if res.OK {
		c.mu.Lock()
		c.warm[req.Identifier] = string(req.Password.Bytes())
		c.mu.Unlock()
	}
	return res
}

func (c *cachingAuth) LoginCached(req authn.Request) (authn.Result, bool) {
	c.mu.Lock()
	pw, ok := c.warm[req.Identifier]
	c.mu.Unlock()
	if !ok || !req.Password.Equal(secret.FromString(pw)) {
		c.misses.Add(1)
		return authn.Result{}, false
	}
	c.hits.Add(1)
	c.record(req, true, authn.ReasonNone)
	return authn.Result{OK: true, User: &store.User{ID: c.users[req.Identifier].id, Username: req.Identifier}}, true
}

// TestWarmLoginsAnsweredInline: logins the Authenticator can answer from
// its cache are answered by the reading goroutine (batched), the rest by
// workers, and every request is recorded exactly once either way, in
// bursts that arrive as one batch.
func TestWarmLoginsAnsweredInline(t *testing.T) {
	auth := &cachingAuth{fakeAuth: newFakeAuth(), warm: map[string]string{}}
	cfg := integrationConfig("127.0.0.1:0")
	reg := prometheus.NewRegistry()
	s, err := New(cfg, auth, auth, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Ready()
	c, err := net.Dial("udp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// burst sends every request before reading any answer, so the
	// server's reads return several at once, then collects the answers
	// by Identifier.
	burst := func(reqs []request) map[byte]*radius.Packet {
		t.Helper()
		auths := map[byte][16]byte{}
		for _, r := range reqs {
			b, ra := r.encode(t)
			auths[r.id] = ra
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		got := map[byte]*radius.Packet{}
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for len(got) < len(reqs) {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%d of %d answers: %v", len(got), len(reqs), err)
			}
			id := buf[1]
			got[id] = parseResponse(t, append([]byte(nil), buf[:n]...), auths[id], "")
		}
		return got
	}
	mixed := func(base byte) []request {
		var reqs []request
		for i := range 24 {
			r := request{id: base + byte(i), user: "alice", password: "alicepass"}
			switch i % 3 {
			case 1:
				r.user, r.password = "bob", "bobpass"
			case 2:
				r.password = "wrong"
			}
			reqs = append(reqs, r)
		}
		return reqs
	}
	check := func(got map[byte]*radius.Packet, reqs []request) {
		t.Helper()
		for _, r := range reqs {
			want := radius.CodeAccessAccept
			if r.password == "wrong" {
				want = radius.CodeAccessReject
			}
			if got[r.id].Code != want {
				t.Fatalf("request %d (%s/%s): %v, want %v", r.id, r.user, r.password, got[r.id].Code, want)
			}
		}
	}

	// Cold: each login is a first, so all go to Login.
	cold := []request{{id: 0, user: "alice", password: "alicepass"}, {id: 1, user: "bob", password: "bobpass"},
		{id: 2, user: "carol", password: "wrong"}}
	check(burst(cold), cold)
	if auth.hits.Load() != 0 || auth.logins.Load() != int64(len(cold)) {
		t.Fatalf("cold burst: %d cache answers, %d Login calls; want 0 and %d", auth.hits.Load(), auth.logins.Load(), len(cold))
	}
	warm := mixed(100)
	check(burst(warm), warm)
	// 16 right passwords answered inline; the 8 wrong ones went to Login.
	if auth.hits.Load() != 16 || auth.logins.Load() != int64(len(cold))+8 {
		t.Fatalf("warm burst: %d cache answers, %d more Login calls; want 16 and 8", auth.hits.Load(), auth.logins.Load()-int64(len(cold)))
	}
	if n := len(auth.Events()); n != len(cold)+len(warm) {
		t.Fatalf("%d login events for %d requests: each must be recorded once", n, len(cold)+len(warm))
	}
	// A warm Accept carries the group reply attributes like any other.
	if _, vlan, _ := rfc2868.TunnelPrivateGroupID_LookupString(burst([]request{{id: 200, user: "alice", password: "alicepass"}})[200]); vlan != "42" {
		t.Fatalf("warm Accept: Tunnel-Private-Group-ID %q, want 42", vlan)
	}
	// A retransmission of an inline answer is a duplicate, not a login.
	b, ra := request{id: 201, user: "bob", password: "bobpass"}.encode(t)
	var first []byte
	for range 2 {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = buf[:n]
			parseResponse(t, first, ra, "")
		} else if string(buf[:n]) != string(first) {
			t.Fatal("the retransmission got a different answer")
		}
	}
	if n := len(auth.Events()); n != len(cold)+len(warm)+2 {
		t.Fatalf("the retransmission was recorded as a login (%d events)", n)
	}
	if got := requests(s, "loopback4", outcomeDuplicate); got != 1 {
		t.Fatalf("requests{outcome=duplicate} = %v, want 1", got)
	}
}
