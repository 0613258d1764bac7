package ldapserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// rawClient speaks LDAP bytes directly, for what go-ldap will not send.
type rawClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (ts *testServer) raw(t testing.TB) *rawClient {
	t.Helper()
	plain, _ := ts.s.Addrs()
	c, err := net.Dial("tcp", plain.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawClient) send(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

type rawResponse struct {
	id        int64
	tag       ber.Tag
	code      int64
	diag, oid string
}

// read returns the next message, or err (io.EOF when the server closed).
func (r *rawClient) read() (rawResponse, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf bytes.Buffer
	frame, err := readFrame(r.br, 1<<20, &buf)
	if err != nil {
		return rawResponse{}, err
	}
	p, err := ber.DecodePacketErr(frame)
	if err != nil {
		return rawResponse{}, err
	}
	out := rawResponse{}
	// Decoded with go-asn1-ber, not our decoder: an independent reading
	// of what the server sent.
	out.id, _ = p.Children[0].Value.(int64)
	op := p.Children[1]
	out.tag = op.Tag
	if op.Tag != appSearchEntry && len(op.Children) >= 3 {
		out.code, _ = op.Children[0].Value.(int64)
		out.diag = op.Children[2].Data.String()
		for _, c := range op.Children[3:] {
			if c.ClassType == ber.ClassContext && c.Tag == 10 {
				out.oid = c.Data.String()
			}
		}
	}
	return out, nil
}

func (r *rawClient) mustRead() rawResponse {
	r.t.Helper()
	m, err := r.read()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return m
}

// untilDone reads messages until the SearchResultDone of id.
func (r *rawClient) untilDone(id int64) (rawResponse, []rawResponse) {
	r.t.Helper()
	var seen []rawResponse
	for {
		m := r.mustRead()
		seen = append(seen, m)
		if m.id == id && m.tag == appSearchDone {
			return m, seen
		}
	}
}

func (r *rawClient) bind(id int64, dn, pw string) {
	r.t.Helper()
	r.send(rawBind(id, dn, pw))
	if m := r.mustRead(); m.tag != appBindResponse || m.code != 0 {
		r.t.Fatalf("bind: %+v", m)
	}
}

// expectClosed reads until EOF, returning any notice of disconnection seen.
func (r *rawClient) expectClosed() *rawResponse {
	r.t.Helper()
	var notice *rawResponse
	for {
		m, err := r.read()
		if err != nil {
			if isTimeout(err) {
				r.t.Fatal("connection still open")
			}
			return notice
		}
		if m.id == 0 && m.oid == oidNoticeDisconnect {
			notice = &m
		}
	}
}

func TestParallel200Connections(t *testing.T) {
	ts := startServer(t, false, nil)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k := i%nExtra + 1
			user := fmt.Sprintf("user%02d", k)
			c, err := ldap.DialURL(ts.url)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetTimeout(30 * time.Second)
			name := []string{"uid=" + user + ",ou=users," + testBase, user, user + "@example.test"}[i%3]
			if err := c.Bind(name, fmt.Sprintf("Passw0rd!%d", k)); err != nil {
				errs <- fmt.Errorf("bind %s: %w", name, err)
				return
			}
			for j := 0; j < 3; j++ {
				r, err := c.Search(ldap.NewSearchRequest(testBase, ldap.ScopeWholeSubtree, 0, 0, 0, false,
					"(&(objectClass=posixAccount)(uid="+user+"))", []string{"uid", "uidNumber", "memberOf"}, nil))
				if err != nil {
					errs <- fmt.Errorf("search as %s: %w", user, err)
					return
				}
				if len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("uid") != user {
					errs <- fmt.Errorf("search as %s: %d entries", user, len(r.Entries))
					return
				}
			}
			if err := c.Bind(name, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				errs <- fmt.Errorf("wrong password for %s: %v", name, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := ts.metric(t, "gatewayd_ldap_binds_total", map[string]string{"outcome": "success"}); v != n {
		t.Errorf("binds_total{success} = %v, want %d", v, n)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return ts.metric(t, "gatewayd_ldap_open_connections", nil) == 0
	}, "connections closed")
}

func TestConnectionFlood(t *testing.T) {
	const maxConns = 20
	ts := startServer(t, false, func(c *Config) { c.MaxConnections = maxConns })
	open := func() float64 { return ts.metric(t, "gatewayd_ldap_open_connections", nil) }
	baseline := countFDs(t)

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	plain, _ := ts.s.Addrs()
	for i := 0; i < maxConns; i++ {
		c, err := net.Dial("tcp", plain.String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return open() == maxConns }, "the cap is reached")

	// Beyond the cap: each new connection is told and closed at once.
	for i := 0; i < 30; i++ {
		r := ts.raw(t)
		n := r.expectClosed()
		if n == nil || n.code != rcUnavailable {
			t.Fatalf("connection %d over the cap: notice %+v", i, n)
		}
		r.c.Close()
	}
	if v := ts.metric(t, "gatewayd_ldap_connections_refused_total", map[string]string{"reason": "max_connections"}); v != 30 {
		t.Errorf("refused = %v", v)
	}
	// A legitimate client is refused cleanly, not left hanging.
	start := time.Now()
	if c, err := ldap.DialURL(ts.url); err == nil {
		c.SetTimeout(5 * time.Second)
		if err := c.Bind(aliceDN, alicePW); err == nil {
			t.Error("bind over the cap succeeded")
		}
		c.Close()
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("refusal took %v", d)
	}
	// One slot frees: the next client is served.
	held[0].Close()
	held = held[1:]
	testutil.Eventually(t, 5*time.Second, func() bool { return open() < maxConns }, "a slot frees")
	c, err := ldap.DialURL(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Bind(aliceDN, alicePW), 0)
	c.Close()

	// The flood ends: every descriptor comes back.
	for _, c := range held {
		c.Close()
	}
	held = nil
	testutil.Eventually(t, 5*time.Second, func() bool { return open() == 0 }, "all connections closed")
	testutil.Eventually(t, 5*time.Second, func() bool { return countFDs(t) <= baseline }, fmt.Sprintf("descriptors back to %d", baseline))
}

// flakyListener fails Accept like a process out of descriptors would.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptErrorsDoNotStopTheServer(t *testing.T) {
	dir, auth := newFixture()
	logs := newSyncBuffer()
	s, err := New(Config{Listen: "127.0.0.1:0", BaseDN: testBase, ExemptLoopback: true}, auth, dir, newTestLogger(logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.wrapListener = func(l net.Listener) net.Listener { return &flakyListener{Listener: l, fails: 4} }
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-s.Ready()
	plain, _ := s.Addrs()
	ts := &testServer{s: s, dir: dir, auth: auth, url: "ldap://" + plain.String()}
	wantCode(t, ts.dial(t).Bind(aliceDN, alicePW), 0)
	if !strings.Contains(logs.String(), "accept failed") {
		t.Errorf("no accept failure logged:\n%s", logs.String())
	}
}

func TestDescriptorExhaustion(t *testing.T) {
	ts := startServer(t, false, nil)
	baseline := countFDs(t)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skip(err)
	}
	lim := old
	lim.Cur = uint64(baseline + 40)
	if lim.Cur > old.Max {
		t.Skip("hard limit too low")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()

	plain, _ := ts.s.Addrs()
	var conns []net.Conn
	var dialErr error
	for i := 0; i < 200 && dialErr == nil; i++ {
		var c net.Conn
		if c, dialErr = net.DialTimeout("tcp", plain.String(), 2*time.Second); dialErr == nil {
			conns = append(conns, c)
		}
	}
	if dialErr == nil {
		t.Fatal("200 connections under a limit of 40 spare descriptors")
	}
	for _, c := range conns {
		c.Close()
	}
	restore()
	testutil.Eventually(t, 10*time.Second, func() bool {
		c, err := ldap.DialURL(ts.url)
		if err != nil {
			return false
		}
		defer c.Close()
		return c.Bind(aliceDN, alicePW) == nil
	}, "the server serves again")
	testutil.Eventually(t, 5*time.Second, func() bool {
		return ts.metric(t, "gatewayd_ldap_open_connections", nil) == 0 && countFDs(t) <= baseline
	}, "descriptors released")
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	// Silent: closed.
	start := time.Now()
	ts.raw(t).expectClosed()
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("idle connection closed after %v", d)
	}
	// Half a message, then silence (slowloris): closed.
	r := ts.raw(t)
	r.send(rawBind(1, aliceDN, alicePW)[:5])
	r.expectClosed()
	// Busy is not idle: a search longer than the idle timeout completes.
	r = ts.raw(t)
	r.bind(1, svcDN, svcPW)
	gate := make(chan struct{})
	ts.dir.mu.Lock()
	ts.dir.listGate = gate
	ts.dir.mu.Unlock()
	release := time.AfterFunc(600*time.Millisecond, func() { close(gate) })
	defer release.Stop()
	r.send(rawSearch(t, 2, "ou=users,"+testBase, scopeOne, "(objectClass=*)", []string{"1.1"}))
	done, entries := r.untilDone(2)
	if done.code != 0 || len(entries) != totalUsers+1 {
		t.Errorf("long search: code %d, %d messages", done.code, len(entries))
	}
}

func TestMessageLimits(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.MaxMessageBytes = 2048 })
	// A header announcing more than the cap: disconnected before the body.
	r := ts.raw(t)
	r.send([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff})
	if n := r.expectClosed(); n == nil || n.code != rcProtocolError {
		t.Errorf("oversized: notice %+v", n)
	}
	// A real message over the cap.
	c := ts.bind(t, svcDN, svcPW)
	_, err := search(t, c, testBase, ldap.ScopeWholeSubtree, "(|"+strings.Repeat("(uid=someone)", 300)+")")
	if err == nil {
		t.Error("a 4 KiB search passed a 2 KiB cap")
	}
	// Not LDAP at all (a TLS ClientHello on the plain port).
	r = ts.raw(t)
	r.send([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00})
	if n := r.expectClosed(); n == nil || n.code != rcProtocolError {
		t.Errorf("ClientHello: notice %+v", n)
	}
	// Framed but malformed: an envelope without a protocolOp.
	r = ts.raw(t)
	r.send([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	r.expectClosed()
	// Indefinite length.
	r = ts.raw(t)
	r.send([]byte{0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00})
	r.expectClosed()
	// Message ID 0 is reserved.
	r = ts.raw(t)
	r.send(rawBind(0, aliceDN, alicePW))
	r.expectClosed()
	// A filter nested past the limit gets an answer, not a crash.
	r = ts.raw(t)
	r.bind(1, svcDN, svcPW)
	deep := strings.Repeat("(!", 70) + "(uid=a)" + strings.Repeat(")", 70)
	r.send(rawSearch(t, 2, testBase, scopeSub, deep, nil))
	if m := r.mustRead(); m.tag != appSearchDone || m.code != rcUnwillingToPerform {
		t.Errorf("deep filter: %+v", m)
	}
	// Still serving.
	wantCode(t, ts.dial(t).Bind(aliceDN, alicePW), 0)
}

func TestRequestsInFlightCap(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.MaxRequestsPerConn = 2 })
	r := ts.raw(t)
	r.bind(1, svcDN, svcPW)
	gate := make(chan struct{})
	ts.dir.mu.Lock()
	ts.dir.listGate = gate
	ts.dir.mu.Unlock()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	for id := int64(2); id <= 4; id++ {
		r.send(rawSearch(t, id, "ou=users,"+testBase, scopeOne, "(uid=*)", []string{"1.1"}))
	}
	if m := r.mustRead(); m.id != 4 || m.tag != appSearchDone || m.code != rcBusy {
		t.Fatalf("third search: %+v, want busy", m)
	}
	close(gate)
	got := map[int64]int64{}
	for len(got) < 2 {
		m := r.mustRead()
		if m.tag == appSearchDone {
			got[m.id] = m.code
		}
	}
	if got[2] != 0 || got[3] != 0 {
		t.Errorf("first two searches: %v", got)
	}
}

func TestHandlerPanicRecovered(t *testing.T) {
	ts := startServer(t, false, nil)
	ts.dir.mu.Lock()
	ts.dir.panicUser = "boom"
	ts.dir.mu.Unlock()
	svc := ts.bind(t, svcDN, svcPW)
	_, err := search(t, svc, testBase, ldap.ScopeWholeSubtree, "(uid=boom)")
	wantCode(t, err, ldap.LDAPResultOperationsError)
	r, err := search(t, svc, testBase, ldap.ScopeWholeSubtree, "(uid=alice)")
	wantCode(t, err, 0)
	if len(r.Entries) != 1 {
		t.Errorf("after the panic: %v", dns(r))
	}
	ts.auth.mu.Lock()
	ts.auth.panicOn = "panicker"
	ts.auth.mu.Unlock()
	c := ts.dial(t)
	wantCode(t, c.Bind("panicker", "x"), ldap.LDAPResultOperationsError)
	wantCode(t, c.Bind(aliceDN, alicePW), 0)
	if v := ts.metric(t, "gatewayd_ldap_handler_panics_total", nil); v != 2 {
		t.Errorf("panics_total = %v", v)
	}
	if !strings.Contains(ts.logs.String(), "ldap handler panic") {
		t.Error("panic not logged")
	}
}

func TestAbandon(t *testing.T) {
	ts := startServer(t, false, nil)
	r := ts.raw(t)
	r.bind(1, svcDN, svcPW)
	gate := make(chan struct{})
	ts.dir.mu.Lock()
	ts.dir.listGate = gate
	ts.dir.mu.Unlock()
	r.send(rawSearch(t, 2, "ou=users,"+testBase, scopeOne, "(uid=*)", nil))
	r.send(rawAbandon(3, 2))
	r.send(rawSearch(t, 4, testBase, scopeSub, "(uid=alice)", []string{"uid"}))
	if _, seen := r.untilDone(4); len(seen) != 2 {
		t.Errorf("search 4: %+v", seen)
	}
	close(gate)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return ts.metric(t, "gatewayd_ldap_searches_total", map[string]string{"outcome": "abandoned"}) == 1
	}, "search 2 abandoned")
	r.send(rawSearch(t, 5, testBase, scopeSub, "(uid=bob)", []string{"uid"}))
	_, seen := r.untilDone(5)
	for _, m := range seen {
		if m.id == 2 {
			t.Errorf("abandoned search answered: %+v", m)
		}
	}
}

// TestMessageIDReuse: a client may reuse a message ID once it has read
// the SearchResultDone. The ID used to be freed after the answer went
// out, so a quick client got "message ID already in use". Both ways a
// search is answered: by the reader (a lookup with few candidates) and
// in a goroutine (a walk).
func TestMessageIDReuse(t *testing.T) {
	ts := startServer(t, false, nil)
	for _, tc := range []struct {
		name, base, filter string
		entries            int
	}{
		{"lookup", testBase, "(uid=alice)", 1},
		{"walk", "ou=users," + testBase, "(objectClass=*)", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.raw(t)
			r.bind(1, svcDN, svcPW)
			req := rawSearch(t, 7, tc.base, scopeSub, tc.filter, []string{"uid"})
			for i := range 200 {
				r.send(req)
				done, seen := r.untilDone(7)
				if done.code != rcSuccess {
					t.Fatalf("search %d: %+v", i, done)
				}
				if n := len(seen) - 1; tc.entries >= 0 && n != tc.entries || n == 0 {
					t.Fatalf("search %d: %d entries", i, n)
				}
			}
		})
	}
}

func TestShutdownDrains(t *testing.T) {
	ts := startServer(t, false, nil)
	r := ts.raw(t)
	r.bind(1, svcDN, svcPW)
	idle := ts.raw(t)
	idle.bind(1, aliceDN, alicePW)
	gate := make(chan struct{})
	ts.dir.mu.Lock()
	ts.dir.listGate = gate
	ts.dir.mu.Unlock()
	r.send(rawSearch(t, 2, "ou=users,"+testBase, scopeOne, "(uid=*)", []string{"1.1"}))
	testutil.Eventually(t, 5*time.Second, func() bool {
		ts.s.mu.Lock()
		defer ts.s.mu.Unlock()
		for c := range ts.s.conns {
			c.mu.Lock()
			n := len(c.ops)
			c.mu.Unlock()
			if n > 0 {
				return true
			}
		}
		return false
	}, "search in flight")
	stopped := make(chan struct{})
	go func() { ts.stop(); close(stopped) }()
	time.AfterFunc(100*time.Millisecond, func() { close(gate) })
	done, _ := r.untilDone(2)
	if done.code != 0 {
		t.Errorf("in-flight search during shutdown: %+v", done)
	}
	if n := r.expectClosed(); n == nil || n.code != rcUnavailable {
		t.Errorf("busy client: notice %+v", n)
	}
	if n := idle.expectClosed(); n == nil {
		t.Error("idle client got no notice")
	}
	<-stopped
	plain, _ := ts.s.Addrs()
	if c, err := net.DialTimeout("tcp", plain.String(), time.Second); err == nil {
		c.Close()
		t.Error("listener still open after shutdown")
	}
}

func TestConfigValidation(t *testing.T) {
	dir, auth := newFixture()
	for name, cfg := range map[string]Config{
		"no listener":       {BaseDN: testBase},
		"no base":           {Listen: "127.0.0.1:0"},
		"bad base":          {Listen: "127.0.0.1:0", BaseDN: "not a dn"},
		"ldaps without key": {LDAPSListen: "127.0.0.1:0", BaseDN: testBase},
		"cert without key":  {Listen: "127.0.0.1:0", BaseDN: testBase, CertFile: "x.pem"},
		"bad bind name":     {Listen: "127.0.0.1:0", BaseDN: testBase, BindNames: []string{"sid"}},
		"huge messages":     {Listen: "127.0.0.1:0", BaseDN: testBase, MaxMessageBytes: 1 << 30},
		"missing cert file": {Listen: "127.0.0.1:0", BaseDN: testBase, CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"},
	} {
		if _, err := New(cfg, auth, dir, nil, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := New(Config{Listen: "127.0.0.1:0", BaseDN: testBase}, auth, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxConnections != DefaultMaxConnections || s.cfg.MaxMessageBytes != DefaultMaxMessageBytes || len(s.cfg.BindNames) != 3 {
		t.Errorf("defaults: %+v", s.cfg)
	}
	if p, l := s.Addrs(); p != nil || l != nil {
		t.Error("New bound a listener")
	}
	// A taken port: New is fine (check-config), Serve fails at once.
	ts := startServer(t, false, nil)
	plain, _ := ts.s.Addrs()
	s2, err := New(Config{Listen: plain.String(), BaseDN: testBase}, auth, dir, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Serve on a taken port: %v", err)
	}
	// Two servers on one registry (a full reload) share the collectors.
	if _, err := New(Config{Listen: "127.0.0.1:0", BaseDN: testBase}, auth, dir, nil, ts.reg); err != nil {
		t.Errorf("second server on the same registry: %v", err)
	}
}
