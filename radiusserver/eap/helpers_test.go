package eap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/secret"
)

// testCert is a self-signed ECDSA P-256 server certificate.
func testCert(t testing.TB) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "radius.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"radius.example.test"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func testServer(t testing.TB, cfg Config) (*Server, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	cfg.Certificate = func() *tls.Certificate { return cert }
	s, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, pool
}

// passwords is a PAPFunc over a fixed map.
func passwords(m map[string]string) PAPFunc {
	return func(_ context.Context, user string, pw secret.String) bool {
		want, ok := m[user]
		return ok && string(pw.Bytes()) == want
	}
}

// supplicant is a minimal EAP-TTLS/PAP peer on crypto/tls, for tests.
type supplicant struct {
	t        testing.TB
	s        *Server
	outer    string
	user, pw string
	mtu      int // Framed-MTU sent, 0 none
	frag     int // our own fragment size (EAP packet), 0: 1000
	tlsConf  *tls.Config
	pap      PAPFunc
	// avps, when set, is what the supplicant sends in the tunnel instead
	// of User-Name and User-Password.
	avps []byte

	state []byte
	eng   *engine
	in    reassembler
	out   fragmenter
	msk   []byte
	round int
}

func newSupplicant(t testing.TB, s *Server, pool *x509.CertPool, user, pw string) *supplicant {
	return &supplicant{t: t, s: s, outer: "anonymous", user: user, pw: pw, pap: passwords(map[string]string{"alice": "right"}),
		tlsConf: &tls.Config{RootCAs: pool, ServerName: "radius.example.test", MaxVersion: tls.VersionTLS12}}
}

func (c *supplicant) send(p Packet) Response {
	c.round++
	return c.s.Handle(context.Background(), Request{EAP: p.Marshal(), State: c.state, FramedMTU: c.mtu,
		Source: netip.MustParseAddr("192.0.2.1"), Client: "test", PAP: c.pap})
}

// run drives one whole authentication and returns the final Response.
func (c *supplicant) run() Response {
	c.in.total = -1
	r := c.send(Packet{Code: CodeResponse, ID: 7, Type: TypeIdentity, Data: []byte(c.outer)})
	for range 200 {
		if r.Outcome != Challenge {
			if c.eng != nil {
				c.eng.close()
			}
			return r
		}
		c.state = r.State
		p, err := Parse(r.EAP)
		if err != nil || p.Code != CodeRequest || p.Type != TypeTTLS {
			c.t.Fatalf("bad challenge %x: %v", r.EAP, err)
		}
		r = c.answer(p)
	}
	c.t.Fatal("no end after 200 rounds")
	return r
}

func (c *supplicant) size() int {
	if c.frag > 0 {
		return c.frag
	}
	return 1000
}

func (c *supplicant) reply(id uint8, data []byte) Response {
	return c.send(Packet{Code: CodeResponse, ID: id, Type: TypeTTLS, Data: data})
}

func (c *supplicant) answer(p Packet) Response {
	if c.mtu > 0 && len(p.Marshal()) > c.mtu-4 {
		c.t.Fatalf("EAP packet of %d bytes exceeds Framed-MTU %d - 4", len(p.Marshal()), c.mtu)
	}
	td, err := parseTLSData(p.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.out.pending() {
		// The server acknowledged our fragment.
		return c.reply(p.ID, c.out.next(0, c.size()))
	}
	if td.flags&flagStart != 0 {
		c.eng = startEngine(func(nc net.Conn) *tls.Conn { return tls.Client(nc, c.tlsConf) })
		out, _, err := c.eng.step(nil)
		if err != nil {
			c.t.Fatal(err)
		}
		c.out.load(out)
		return c.reply(p.ID, c.out.next(0, c.size()))
	}
	done, err := c.in.add(td)
	if err != nil {
		c.t.Fatal(err)
	}
	if !done {
		return c.reply(p.ID, []byte{0}) // ACK
	}
	msg := c.in.buf
	c.in.buf = nil
	out, _, err := c.eng.step(msg)
	if err != nil {
		c.t.Fatalf("client TLS: %v", err)
	}
	if ok, cs := c.eng.state(); ok && len(out) == 0 {
		c.msk, _ = cs.ExportKeyingMaterial("ttls keying material", nil, 64)
		var avps []byte
		avps = AppendAVP(avps, avpUserName, 0, true, []byte(c.user))
		pw := []byte(c.pw)
		for len(pw)%16 != 0 || len(pw) == 0 {
			pw = append(pw, 0)
		}
		avps = AppendAVP(avps, avpUserPassword, 0, true, pw)
		if c.avps != nil {
			avps = c.avps
		}
		out, err = c.eng.write(avps)
		if err != nil {
			c.t.Fatal(err)
		}
	}
	c.out.load(out)
	return c.reply(p.ID, c.out.next(0, c.size()))
}
