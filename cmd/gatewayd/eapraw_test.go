package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	be "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/radiusserver/eap"
)

// floodClient is a raw RADIUS client that starts EAP sessions and never
// finishes them.
type floodClient struct {
	conn *net.UDPConn
	id   uint8
	buf  []byte
}

// exchange sends one Access-Request with Message-Authenticator carrying
// eapPkt (and state) and returns the answer, trying up to three times.
func (c *floodClient) exchange(eapPkt, state []byte) (*radius.Packet, error) {
	c.id++
	p := radius.New(radius.CodeAccessRequest, []byte(radiusSecret))
	p.Identifier = c.id
	rfc2865.UserName_SetString(p, "flood")
	rfc2865.CallingStationID_SetString(p, fmt.Sprintf("02-00-00-00-%02x-%02x", c.id, c.id))
	if err := rfc2869.EAPMessage_Set(p, eapPkt); err != nil {
		return nil, err
	}
	if state != nil {
		rfc2865.State_Set(p, state)
	}
	rfc2869.MessageAuthenticator_Set(p, make([]byte, 16))
	b, err := p.Encode()
	if err != nil {
		return nil, err
	}
	m := hmac.New(md5.New, []byte(radiusSecret))
	m.Write(b)
	copy(b[len(b)-16:], m.Sum(nil))
	for range 3 {
		if _, err := c.conn.Write(b); err != nil {
			return nil, err
		}
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, err := c.conn.Read(c.buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break
				}
				return nil, err
			}
			if n >= 20 && c.buf[1] == p.Identifier && radius.IsAuthenticResponse(c.buf[:n], b, []byte(radiusSecret)) {
				return radius.Parse(bytes.Clone(c.buf[:n]), []byte(radiusSecret))
			}
		}
	}
	return nil, errors.New("no answer after 3 tries")
}

// rssKiB is a process's resident set size.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// metricValue reads one sample from the daemon's /metrics.
func metricValue(t *testing.T, p *proc, sample string) float64 {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", sample)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEAPHalfOpenFloodAgainstDaemon: 10,000 EAP sessions opened against
// the real daemon by a raw RADIUS client and never finished. Every one
// gets its Start with a distinct State (a cookie: nothing stored); every
// second one also sends the first fragment of a TLS message announced as
// 2000 bytes, which stores a half-open session (capped at max_sessions,
// the oldest pushed out). While the flood runs, eapol_test logs in with
// TTLS/PAP and must succeed (MPPE keys OK). After it: at most
// max_sessions half-open sessions, none running, the evictions counted,
// and the daemon's RSS grew by less than 64 MiB.
func TestEAPHalfOpenFloodAgainstDaemon(t *testing.T) {
	const (
		flood       = 10000
		workers     = 8
		maxSessions = 1024
		// A hard cap on the flood, should the login take long.
		maxPackets = 100000
	)
	dir := t.TempDir()
	text, addr, ca := eapConfig(t, dir, false, fmt.Sprintf("max_sessions = %d\n", maxSessions))
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test"}, nil)
	if _, err := p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "flood pass 1"}, nil); err != nil {
		t.Fatal(err)
	}
	// Warm the daemon (one login) so the RSS baseline is not its cold start.
	if r := eapolTest(t, addr, ca, "alice", "flood pass 1", ""); !r.ok || !mppeOK(r.out) {
		t.Fatalf("warm-up login failed:\n%s", r.out)
	}
	rss0 := rssKiB(t, p.cmd.Process.Pid)

	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		sessions  atomic.Int64 // sessions started
		packets   atomic.Int64
		loginDone atomic.Bool
		started   = make(chan struct{})
		startOnce sync.Once
		statesMu  sync.Mutex
		states    = make(map[string]bool, flood)
		wg        sync.WaitGroup
		errs      = make(chan error, workers)
	)
	fragment := make([]byte, 5+200)
	fragment[0] = 0x80 | 0x40 // L and M: the first of several fragments
	be.BigEndian.PutUint32(fragment[1:], 2000)
	for w := range workers {
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := &floodClient{conn: conn, buf: make([]byte, 4096)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for packets.Load() < maxPackets && (sessions.Load() < flood || !loginDone.Load()) {
				n := sessions.Add(1)
				if n == flood/3 {
					startOnce.Do(func() { close(started) })
				}
				ident := eap.Packet{Code: eap.CodeResponse, ID: 1, Type: eap.TypeIdentity, Data: fmt.Appendf(nil, "flood-%d-%d", w, n)}.Marshal()
				resp, err := c.exchange(ident, nil)
				packets.Add(1)
				if err != nil {
					errs <- fmt.Errorf("identity %d: %w", n, err)
					return
				}
				st := rfc2865.State_Get(resp)
				if resp.Code != radius.CodeAccessChallenge || len(st) == 0 {
					errs <- fmt.Errorf("identity %d: %v without State", n, resp.Code)
					return
				}
				statesMu.Lock()
				dup := states[string(st)]
				states[string(st)] = true
				statesMu.Unlock()
				if dup {
					errs <- fmt.Errorf("identity %d: a State given twice", n)
					return
				}
				if n%2 == 0 {
					req, _ := eap.Parse(rfc2869.EAPMessage_Get(resp))
					frag := eap.Packet{Code: eap.CodeResponse, ID: req.ID, Type: eap.TypeTTLS, Data: fragment}.Marshal()
					resp, err := c.exchange(frag, st)
					packets.Add(1)
					if err != nil || resp.Code != radius.CodeAccessChallenge {
						errs <- fmt.Errorf("first fragment %d: %v %v", n, resp, err)
						return
					}
				}
			}
		}()
	}
	var login eapolRun
	select {
	case <-started:
		login = eapolTest(t, addr, ca, "alice", "flood pass 1", "")
	case err := <-errs:
		t.Fatal(err)
	}
	loginDone.Store(true)
	during := sessions.Load()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !login.ok || !mppeOK(login.out) || !strings.Contains(login.out, "SUCCESS") {
		t.Fatalf("TTLS/PAP login during the flood failed:\n%s", login.out)
	}
	total := sessions.Load()
	if total < flood || during < flood/3 {
		t.Fatalf("%d sessions started (%d by the end of the login), want %d", total, during, flood)
	}
	rss1 := rssKiB(t, p.cmd.Process.Pid)
	halfOpen := metricValue(t, p, `gatewayd_radius_eap_sessions{state="half_open"}`)
	running := metricValue(t, p, `gatewayd_radius_eap_sessions{state="running"}`)
	evicted := metricValue(t, p, `gatewayd_radius_eap_half_open_evicted_total`)
	t.Logf("%d EAP sessions opened (%d packets; the login ended after %d); half-open %v, running %v, evicted %v; RSS %d → %d KiB",
		total, packets.Load(), during, halfOpen, running, evicted, rss0, rss1)
	if halfOpen > maxSessions || running != 0 {
		t.Fatalf("half-open %v (cap %d), running %v after the flood", halfOpen, maxSessions, running)
	}
	if want := float64(total/2 - maxSessions); evicted < want {
		t.Fatalf("evicted %v half-open sessions, want at least %v", evicted, want)
	}
	if grow := rss1 - rss0; grow > 64<<10 {
		t.Fatalf("daemon RSS grew by %d KiB during the flood", grow)
	}
}

// chanConn is a net.Conn for a crypto/tls client driven by hand: what it
// writes comes out of out, what it reads goes into in.
type chanConn struct {
	out chan []byte
	in  chan []byte
	buf []byte
}

func (c *chanConn) Write(p []byte) (int, error) { c.out <- bytes.Clone(p); return len(p), nil }
func (c *chanConn) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		b, ok := <-c.in
		if !ok {
			return 0, io.EOF
		}
		c.buf = b
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}
func (c *chanConn) Close() error                     { return nil }
func (c *chanConn) LocalAddr() net.Addr              { return &net.UDPAddr{} }
func (c *chanConn) RemoteAddr() net.Addr             { return &net.UDPAddr{} }
func (c *chanConn) SetDeadline(time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(time.Time) error { return nil }

// rawTTLS is one EAP-TTLS session driven by hand over a floodClient.
type rawTTLS struct {
	t     *testing.T
	c     *floodClient
	state []byte
	id    uint8 // the outstanding EAP Request's Identifier
}

// send sends TLS bytes in one EAP-TTLS Response and returns what the
// server answered: its TLS flight (fragments ACKed and joined) on a
// Challenge, or the final RADIUS packet.
func (r *rawTTLS) send(tlsBytes []byte) (flight []byte, final *radius.Packet) {
	r.t.Helper()
	data := append([]byte{0}, tlsBytes...)
	for {
		resp, err := r.c.exchange(eap.Packet{Code: eap.CodeResponse, ID: r.id, Type: eap.TypeTTLS, Data: data}.Marshal(), r.state)
		if err != nil {
			r.t.Fatal(err)
		}
		if resp.Code != radius.CodeAccessChallenge {
			return flight, resp
		}
		r.state = rfc2865.State_Get(resp)
		p, err := eap.Parse(rfc2869.EAPMessage_Get(resp))
		if err != nil || len(p.Data) == 0 {
			r.t.Fatalf("bad EAP-TTLS request: %v", err)
		}
		r.id = p.ID
		flags, d := p.Data[0], p.Data[1:]
		if flags&0x80 != 0 {
			d = d[4:]
		}
		flight = append(flight, d...)
		if flags&0x40 == 0 {
			return flight, nil
		}
		data = []byte{0} // ACK the fragment
	}
}

// TestEAPMalformedTLSEndsOnlyThatSession: against the real daemon, a raw
// TTLS session gets half way through its handshake; eapol_test logs in
// meanwhile; then the raw session's second flight arrives with one octet
// of its last record flipped. That session alone ends: Access-Reject with
// EAP-Failure, its State dead afterwards, while another eapol_test login
// succeeds and no session is left running.
func TestEAPMalformedTLSEndsOnlyThatSession(t *testing.T) {
	dir := t.TempDir()
	text, addr, ca := eapConfig(t, dir, false, "")
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test"}, nil)
	if _, err := p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "tls pass 1"}, nil); err != nil {
		t.Fatal(err)
	}
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := &rawTTLS{t: t, c: &floodClient{conn: conn, buf: make([]byte, 4096)}}
	resp, err := r.c.exchange(eap.Packet{Code: eap.CodeResponse, ID: 1, Type: eap.TypeIdentity, Data: []byte("anonymous")}.Marshal(), nil)
	if err != nil || resp.Code != radius.CodeAccessChallenge {
		t.Fatalf("identity: %v %v", resp, err)
	}
	r.state = rfc2865.State_Get(resp)
	start, _ := eap.Parse(rfc2869.EAPMessage_Get(resp))
	r.id = start.ID

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca)
	pool.AppendCertsFromPEM(pem)
	cc := &chanConn{out: make(chan []byte, 4), in: make(chan []byte, 4)}
	tc := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: "radius.example.test", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
	hsDone := make(chan error, 1)
	go func() { hsDone <- tc.Handshake() }()
	defer close(cc.in)

	flight, final := r.send(<-cc.out) // ClientHello → ServerHello … ServerHelloDone
	if final != nil || len(flight) == 0 {
		t.Fatalf("no server flight: %v", final)
	}
	if n := metricValue(t, p, `gatewayd_radius_eap_sessions{state="running"}`); n != 1 {
		t.Fatalf("running sessions %v, want 1 (ours, mid-handshake)", n)
	}
	// Another session, started and finished while ours is mid-handshake.
	if e := eapolTest(t, addr, ca, "alice", "tls pass 1", ""); !e.ok || !mppeOK(e.out) {
		t.Fatalf("concurrent TTLS login failed:\n%s", e.out)
	}

	cc.in <- flight
	second := <-cc.out // ClientKeyExchange, ChangeCipherSpec, Finished
	second[len(second)-1] ^= 0x01
	state := r.state
	if _, final = r.send(second); final == nil || final.Code != radius.CodeAccessReject {
		t.Fatalf("a corrupted Finished: %v, want Access-Reject", final)
	}
	if msg := rfc2869.EAPMessage_Get(final); len(msg) < 4 || msg[0] != eap.CodeFailure {
		t.Fatalf("the Reject carries no EAP-Failure: %x", msg)
	}
	// The session is gone: its State gets a Reject, not a Challenge.
	r.state = state
	if _, final = r.send(nil); final == nil || final.Code != radius.CodeAccessReject {
		t.Fatalf("the ended session answered again: %v", final)
	}
	if e := eapolTest(t, addr, ca, "alice", "tls pass 1", ""); !e.ok || !mppeOK(e.out) {
		t.Fatalf("TTLS login after the broken session failed:\n%s", e.out)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return metricValue(t, p, `gatewayd_radius_eap_sessions{state="running"}`) == 0
	}, "no EAP session left running")
	if n := metricValue(t, p, `gatewayd_radius_eap_results_total{method="eap-ttls/pap",outcome="reject",reason="tls_failed"}`); n != 1 {
		t.Fatalf("tls_failed rejects: %v, want 1", n)
	}
}
