// Command eapload measures a RADIUS server's full EAP-TTLS/PAP (or, with
// -method peap, PEAPv0/EAP-MSCHAPv2) authentications per second: it plays the supplicant and the NAS at once,
// running the TLS client (crypto/tls, no session resumption: every
// authentication is a full handshake) over the EAP exchange that it
// carries in Access-Requests (layeh.com/radius, with Message-Authenticator),
// with K sessions in flight, bounded by a count and a time limit.
//
// Every Accept is checked as eapol_test checks it: an EAP-Success, and
// MS-MPPE-Recv-Key / MS-MPPE-Send-Key equal to MSK[0:32] / MSK[32:64] from
// the client's own TLS exporter ("ttls keying material"; PEAP: "client EAP
// encryption"). A mismatch counts as an error, not an accept. PEAP also
// checks the server's MS-CHAPv2 authenticator response and answers its
// Result TLV.
//
// It talks to loopback addresses only and refuses any other target.
//
//	eapload -addr 127.0.0.1:1812 -secret testing123 -ca ca.pem -users 100 -concurrency 32 -count 2000
//
// The EAP framing uses the project's radiusserver/eap codec (Parse,
// Marshal, AppendAVP); the client side of TTLS (flags, fragmentation,
// ACKs, AVPs) is written here. The server's default method is taken when
// it is TTLS; otherwise (FreeRADIUS' default_eap_type = md5) a NAK asks
// for TTLS, one round trip more.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"

	"github.com/gatewayd/gatewayd/radiusserver/eap"
)

type options struct {
	addr        string
	secret      string
	caFile      string
	serverName  string
	users       int
	first       int
	userTpl     string
	passTpl     string
	outer       string
	concurrency int
	count       int
	duration    time.Duration
	timeout     time.Duration
	retries     int
	fragSize    int
	expect      string
	label       string
	jsonOut     bool
	verbose     bool
	trace       bool
	method      string
}

type result struct {
	Label       string  `json:"label"`
	Concurrency int     `json:"concurrency"`
	Auths       int64   `json:"auths"`
	Accepted    int64   `json:"accepted"`
	Rejected    int64   `json:"rejected"`
	Errors      int64   `json:"errors"`
	Unexpected  int64   `json:"unexpected"`
	Retransmits int64   `json:"retransmits"`
	Rounds      float64 `json:"rounds_per_auth"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"auths_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	TLS         string  `json:"tls"`
	FirstError  string  `json:"first_error,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:1812", "server address (loopback only)")
	flag.StringVar(&o.secret, "secret", "", "shared secret (or env RADIUS_SECRET)")
	flag.StringVar(&o.caFile, "ca", "", "CA certificate (PEM) the server certificate must chain to")
	flag.StringVar(&o.serverName, "servername", "radius.example.test", "name the server certificate must carry")
	flag.IntVar(&o.users, "users", 100, "number of distinct users")
	flag.IntVar(&o.first, "first", 1, "index of the first user")
	flag.StringVar(&o.userTpl, "user", "user%d", "inner User-Name template (%d = user index)")
	flag.StringVar(&o.passTpl, "pass", "password%d", "inner password template")
	flag.StringVar(&o.outer, "outer", "anonymous", "outer identity")
	flag.IntVar(&o.concurrency, "concurrency", 16, "EAP sessions in flight at once (K)")
	flag.IntVar(&o.count, "count", 1000, "authentications to run (0 = until -duration)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "time limit")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Second, "wait for an answer before retransmitting")
	flag.IntVar(&o.retries, "retries", 2, "retransmissions before a session fails")
	flag.IntVar(&o.fragSize, "fragment", 1000, "largest EAP packet the client sends")
	flag.StringVar(&o.expect, "expect", "accept", "expected outcome: accept, reject or any")
	flag.StringVar(&o.label, "label", "", "label printed with the result")
	flag.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	flag.BoolVar(&o.verbose, "v", false, "print every session error")
	flag.BoolVar(&o.trace, "trace", false, "print every round trip (EAP types, flags, sizes) on stderr")
	flag.StringVar(&o.method, "method", "ttls", "ttls (TTLS/PAP) or peap (PEAPv0/EAP-MSCHAPv2)")
	flag.Parse()
	if o.secret == "" {
		o.secret = os.Getenv("RADIUS_SECRET")
	}
	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "eapload:", err)
		os.Exit(2)
	}
	if o.jsonOut {
		json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Printf("%s K=%d auths=%d accepted=%d rejected=%d errors=%d unexpected=%d retrans=%d rounds=%.1f %s %.0f auth/s p50=%.1fms p99=%.1fms max=%.1fms in %.1fs\n",
			res.Label, res.Concurrency, res.Auths, res.Accepted, res.Rejected, res.Errors, res.Unexpected, res.Retransmits,
			res.Rounds, res.TLS, res.PerSecond, res.P50ms, res.P99ms, res.MaxMs, res.Seconds)
		if res.FirstError != "" {
			fmt.Fprintln(os.Stderr, "eapload: first error:", res.FirstError)
		}
	}
	if res.Errors > 0 || res.Unexpected > 0 {
		os.Exit(1)
	}
}

func run(o options) (result, error) {
	if o.secret == "" {
		return result{}, errors.New("-secret (or RADIUS_SECRET) is required")
	}
	if o.concurrency < 1 || o.users < 1 || (o.count < 1 && o.duration <= 0) {
		return result{}, errors.New("-concurrency and -users must be positive, and -count or -duration set")
	}
	if o.method != "ttls" && o.method != "peap" {
		return result{}, errors.New("-method must be ttls or peap")
	}
	if o.fragSize < 64 || o.fragSize > 4000 {
		return result{}, errors.New("-fragment must be between 64 and 4000")
	}
	raddr, err := net.ResolveUDPAddr("udp", o.addr)
	if err != nil {
		return result{}, err
	}
	if !raddr.IP.IsLoopback() {
		return result{}, fmt.Errorf("%s is not a loopback address: eapload only talks to loopback", o.addr)
	}
	roots := x509.NewCertPool()
	if o.caFile == "" {
		return result{}, errors.New("-ca is required (the server certificate is verified)")
	}
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return result{}, err
	}
	if !roots.AppendCertsFromPEM(pem) {
		return result{}, fmt.Errorf("%s: no certificate", o.caFile)
	}
	tlsCfg := &tls.Config{
		RootCAs:    roots,
		ServerName: o.serverName,
		MinVersion: tls.VersionTLS12,
		MaxVersion: tls.VersionTLS12, // TTLS v0 and PEAPv0 are TLS 1.2 on both servers
		// No ClientSessionCache: every authentication is a full handshake.
	}

	var (
		next                                          atomic.Int64
		accepted, rejected, errs, unexpected, retrans atomic.Int64
		rounds                                        atomic.Int64
		mu                                            sync.Mutex
		lat                                           []time.Duration
		firstErr                                      string
		tlsDesc                                       atomic.Value
		wg                                            sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	start := time.Now()
	for range o.concurrency {
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return result{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			typ := uint8(eap.TypeTTLS)
			if o.method == "peap" {
				typ = eap.TypePEAP
			}
			c := &client{typ: typ, o: &o, conn: conn, secret: []byte(o.secret), tlsCfg: tlsCfg, buf: make([]byte, 4096), radID: uint8(time.Now().UnixNano())}
			var mine []time.Duration
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if o.count > 0 && i >= int64(o.count) {
					break
				}
				u := o.first + int(i%int64(o.users))
				user, pass := tpl(o.userTpl, u), tpl(o.passTpl, u)
				t0 := time.Now()
				out, err := c.authenticate(user, pass)
				if o.method == "peap" {
					out, err = c.authenticatePEAP(user, pass)
				}
				d := time.Since(t0)
				rounds.Add(int64(c.rounds))
				retrans.Add(int64(c.retrans))
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = fmt.Sprintf("%s: %v", user, err)
					}
					mu.Unlock()
					if o.verbose {
						fmt.Fprintf(os.Stderr, "eapload: %s: %v\n", user, err)
					}
					continue
				}
				if out {
					accepted.Add(1)
					if c.tlsDesc != "" {
						tlsDesc.Store(c.tlsDesc)
					}
				} else {
					rejected.Add(1)
				}
				if (o.expect == "accept" && !out) || (o.expect == "reject" && out) {
					unexpected.Add(1)
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	q := func(f float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))]) / 1e6
	}
	done := accepted.Load() + rejected.Load()
	r := result{
		Label: o.label, Concurrency: o.concurrency,
		Auths: done + errs.Load(), Accepted: accepted.Load(), Rejected: rejected.Load(),
		Errors: errs.Load(), Unexpected: unexpected.Load(), Retransmits: retrans.Load(),
		Seconds: el.Seconds(), PerSecond: float64(done) / el.Seconds(),
		P50ms: q(0.50), P99ms: q(0.99), FirstError: firstErr,
	}
	if n := done + errs.Load(); n > 0 {
		r.Rounds = float64(rounds.Load()) / float64(n)
	}
	if len(lat) > 0 {
		r.MaxMs = float64(lat[len(lat)-1]) / 1e6
	}
	r.TLS, _ = tlsDesc.Load().(string)
	if r.TLS == "" {
		r.TLS = "-"
	}
	return r, nil
}

func tpl(t string, i int) string {
	if strings.Contains(t, "%") {
		return fmt.Sprintf(t, i)
	}
	return t
}

// client is one worker: a UDP socket and the state of its current session.
type client struct {
	typ     uint8 // eap.TypeTTLS or eap.TypePEAP
	o       *options
	conn    *net.UDPConn
	secret  []byte
	tlsCfg  *tls.Config
	buf     []byte
	radID   uint8
	rounds  int
	retrans int
	tlsDesc string

	// per session
	state []byte
	reqID uint8  // the outstanding EAP-Request's Identifier
	out   []byte // TLS bytes written by the TLS client, not yet sent
	in    []byte // TLS bytes received, not yet read by the TLS client
	final *radius.Packet
	req   *radius.Packet // the Access-Request that final answers
	ack   bool           // the next flush with nothing to send sends an ACK
}

var errEnded = errors.New("the server ended the EAP session")

// exchange sends one EAP Response in an Access-Request and returns the
// answer, retransmitting the same datagram on timeout.
func (c *client) exchange(eapPkt []byte) (*radius.Packet, *radius.Packet, error) {
	c.rounds++
	c.radID++
	p := radius.New(radius.CodeAccessRequest, c.secret)
	p.Identifier = c.radID
	rfc2865.UserName_SetString(p, c.o.outer)
	rfc2865.NASIPAddress_Set(p, net.IPv4(127, 0, 0, 1))
	rfc2865.NASPortType_Set(p, rfc2865.NASPortType_Value_Ethernet)
	rfc2865.CallingStationID_SetString(p, "02-00-00-00-00-01")
	rfc2865.FramedMTU_Set(p, 1400)
	if err := rfc2869.EAPMessage_Set(p, eapPkt); err != nil {
		return nil, nil, err
	}
	if c.state != nil {
		rfc2865.State_Set(p, c.state)
	}
	rfc2869.MessageAuthenticator_Set(p, make([]byte, 16))
	b, err := p.Encode()
	if err != nil {
		return nil, nil, err
	}
	// Message-Authenticator is the last attribute: HMAC-MD5 over the packet
	// with it zeroed (RFC 3579 §3.2).
	m := hmac.New(md5.New, c.secret)
	m.Write(b)
	copy(b[len(b)-16:], m.Sum(nil))

	for try := 0; try <= c.o.retries; try++ {
		if try > 0 {
			c.retrans++
		}
		if _, err := c.conn.Write(b); err != nil {
			return nil, nil, err
		}
		deadline := time.Now().Add(c.o.timeout)
		c.conn.SetReadDeadline(deadline)
		for {
			n, err := c.conn.Read(c.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, nil, err
			}
			if n < 20 || c.buf[1] != p.Identifier || !radius.IsAuthenticResponse(c.buf[:n], b, c.secret) {
				continue // a late answer to an earlier try, or not ours
			}
			resp, err := radius.Parse(slices.Clone(c.buf[:n]), c.secret)
			if err != nil {
				return nil, nil, err
			}
			return resp, p, nil
		}
	}
	return nil, nil, fmt.Errorf("no answer after %d tries (round %d)", c.o.retries+1, c.rounds)
}

// send sends an EAP Response and returns the next EAP-Request, or
// errEnded with c.final set when the server answered Accept or Reject.
func (c *client) send(eapPkt []byte) (eap.Packet, error) {
	resp, req, err := c.exchange(eapPkt)
	if err != nil {
		return eap.Packet{}, err
	}
	switch resp.Code {
	case radius.CodeAccessChallenge:
	case radius.CodeAccessAccept, radius.CodeAccessReject:
		c.final, c.req = resp, req
		if c.o.trace {
			fmt.Fprintf(os.Stderr, "round %d: sent %d EAP bytes, got %v\n", c.rounds, len(eapPkt), resp.Code)
		}
		return eap.Packet{}, errEnded
	default:
		return eap.Packet{}, fmt.Errorf("unexpected RADIUS code %v", resp.Code)
	}
	c.state = rfc2865.State_Get(resp)
	if c.o.trace {
		fmt.Fprintf(os.Stderr, "round %d: sent %d EAP bytes, got %v with %d EAP bytes\n", c.rounds, len(eapPkt), resp.Code, len(rfc2869.EAPMessage_Get(resp)))
	}
	msg, err := rfc2869.EAPMessage_Lookup(resp)
	if err != nil {
		return eap.Packet{}, errors.New("Access-Challenge without EAP-Message")
	}
	pk, err := eap.Parse(msg)
	if err != nil {
		return eap.Packet{}, err
	}
	if pk.Code != eap.CodeRequest {
		return eap.Packet{}, fmt.Errorf("EAP code %d in an Access-Challenge", pk.Code)
	}
	c.reqID = pk.ID
	return pk, nil
}

func (c *client) response(typ uint8, data []byte) []byte {
	return eap.Packet{Code: eap.CodeResponse, ID: c.reqID, Type: typ, Data: data}.Marshal()
}

const (
	flagL = 0x80
	flagM = 0x40
	flagS = 0x20
)

// handshake starts a session of c.typ (NAKing the server's first method
// when it is another) and runs the TLS handshake. A nil conn with a nil
// error: the server ended the session (c.final).
func (c *client) handshake() (*tls.Conn, error) {
	c.state, c.out, c.in, c.final, c.req, c.rounds, c.retrans = nil, nil, nil, nil, nil, 0, 0
	c.reqID = 0
	pk, err := c.send(eap.Packet{Code: eap.CodeResponse, ID: 0, Type: eap.TypeIdentity, Data: []byte(c.o.outer)}.Marshal())
	for err == nil && pk.Type != c.typ {
		if c.rounds > 4 {
			return nil, fmt.Errorf("server does not offer EAP type %d (type %d)", c.typ, pk.Type)
		}
		pk, err = c.send(c.response(eap.TypeNAK, []byte{c.typ}))
	}
	if err != nil {
		return nil, err
	}
	if len(pk.Data) < 1 || pk.Data[0]&flagS == 0 {
		return nil, errors.New("first request without the Start flag")
	}
	tc := tls.Client(&bridge{c}, c.tlsCfg)
	if err := tc.Handshake(); err != nil {
		if c.final != nil { // a Reject (or an early Accept) mid-handshake
			return nil, errEnded
		}
		return nil, fmt.Errorf("TLS: %w", err)
	}
	cs := tc.ConnectionState()
	c.tlsDesc = strings.ReplaceAll(tls.VersionName(cs.Version), " ", "") + "/" + tls.CipherSuiteName(cs.CipherSuite)
	return tc, nil
}

// authenticate runs one full EAP-TTLS/PAP session: true for an Accept
// (whose keys matched), false for a Reject.
func (c *client) authenticate(user, pass string) (bool, error) {
	tc, err := c.handshake()
	if err != nil {
		return c.ended(err, nil)
	}
	cs := tc.ConnectionState()
	msk, err := cs.ExportKeyingMaterial("ttls keying material", nil, 64)
	if err != nil {
		return false, err
	}
	pw := []byte(pass)
	if r := len(pw) % 16; r != 0 || len(pw) == 0 {
		pw = append(pw, make([]byte, 16-r)...)
	}
	avps := eap.AppendAVP(nil, 1, 0, true, []byte(user))
	avps = eap.AppendAVP(avps, 2, 0, true, pw)
	if _, err := tc.Write(avps); err != nil {
		return false, err
	}
	_, err = c.flush()
	if err == nil {
		return false, errors.New("the server asked for more after the inner PAP AVPs")
	}
	return c.ended(err, msk)
}

// ended turns the end of a session into its outcome.
func (c *client) ended(err error, msk []byte) (bool, error) {
	if !errors.Is(err, errEnded) {
		return false, err
	}
	msg, _ := rfc2869.EAPMessage_Lookup(c.final)
	pk, perr := eap.Parse(msg)
	if c.final.Code == radius.CodeAccessReject {
		if perr != nil || pk.Code != eap.CodeFailure {
			return false, errors.New("Access-Reject without EAP-Failure")
		}
		return false, nil
	}
	if perr != nil || pk.Code != eap.CodeSuccess {
		return false, errors.New("Access-Accept without EAP-Success")
	}
	if msk == nil {
		return false, errors.New("Access-Accept before the inner authentication")
	}
	recv, err1 := microsoft.MSMPPERecvKey_Lookup(c.final, c.req)
	send, err2 := microsoft.MSMPPESendKey_Lookup(c.final, c.req)
	if err1 != nil || err2 != nil {
		return false, fmt.Errorf("Access-Accept without MPPE keys (%v, %v)", err1, err2)
	}
	if len(recv) < 32 || len(send) < 32 || !bytes.Equal(recv[:32], msk[:32]) || !bytes.Equal(send[:32], msk[32:64]) {
		return false, errors.New("MPPE keys do not match the MSK")
	}
	return true, nil
}

// flush sends the TLS bytes written so far as TTLS fragments and gathers
// the server's answering TLS message (ACKing its fragments) into c.in.
func (c *client) flush() (int, error) {
	data := c.out
	c.out = nil
	maxData := c.o.fragSize - 6 // EAP header (5) + flags
	var pk eap.Packet
	var err error
	if len(data) == 0 && !c.ack {
		return 0, errors.New("TLS client waits for data with nothing sent")
	}
	if len(data) == 0 {
		// PEAP: acknowledge the server's last handshake flight.
		c.ack = false
		if pk, err = c.send(c.response(c.typ, []byte{0})); err != nil {
			return 0, err
		}
	}
	for off, first := 0, true; off < len(data); first = false {
		room := maxData
		fragmented := len(data) > maxData
		if first && fragmented {
			room -= 4
		}
		end := min(len(data), off+room)
		var flags byte
		body := make([]byte, 0, 5+end-off)
		if first && fragmented {
			flags |= flagL
		}
		if end < len(data) {
			flags |= flagM
		}
		body = append(body, flags)
		if flags&flagL != 0 {
			body = binary.BigEndian.AppendUint32(body, uint32(len(data)))
		}
		body = append(body, data[off:end]...)
		off = end
		pk, err = c.send(c.response(c.typ, body))
		if err != nil {
			return 0, err
		}
		if off < len(data) && (pk.Type != c.typ || len(pk.Data) != 1 || pk.Data[0]&(flagL|flagM) != 0) {
			return 0, errors.New("the server did not ACK our fragment")
		}
	}
	for {
		if pk.Type != c.typ || len(pk.Data) < 1 {
			return 0, fmt.Errorf("EAP-Request type %d in a type %d session", pk.Type, c.typ)
		}
		flags, d := pk.Data[0], pk.Data[1:]
		if flags&flagL != 0 {
			if len(d) < 4 {
				return 0, errors.New("TTLS L flag without a length")
			}
			d = d[4:]
		}
		c.in = append(c.in, d...)
		if len(c.in) > eap.MaxMessage {
			return 0, errors.New("server TLS message over 64 KiB")
		}
		if flags&flagM == 0 {
			break
		}
		if pk, err = c.send(c.response(c.typ, []byte{0})); err != nil {
			return 0, err
		}
	}
	if len(c.in) == 0 {
		return 0, errors.New("empty TTLS request where a TLS message was due")
	}
	return len(c.in), nil
}

// bridge is the TLS client's net.Conn: writes collect in c.out; a read
// with nothing buffered sends them and waits for the server's answer.
type bridge struct{ c *client }

func (b *bridge) Write(p []byte) (int, error) { b.c.out = append(b.c.out, p...); return len(p), nil }

func (b *bridge) Read(p []byte) (int, error) {
	if len(b.c.in) == 0 {
		if _, err := b.c.flush(); err != nil {
			if errors.Is(err, errEnded) {
				return 0, io.EOF // wrapped by crypto/tls; c.final tells the outcome
			}
			return 0, err
		}
	}
	n := copy(p, b.c.in)
	b.c.in = b.c.in[n:]
	return n, nil
}

func (b *bridge) Close() error                     { return nil }
func (b *bridge) LocalAddr() net.Addr              { return b.c.conn.LocalAddr() }
func (b *bridge) RemoteAddr() net.Addr             { return b.c.conn.RemoteAddr() }
func (b *bridge) SetDeadline(time.Time) error      { return nil }
func (b *bridge) SetReadDeadline(time.Time) error  { return nil }
func (b *bridge) SetWriteDeadline(time.Time) error { return nil }
