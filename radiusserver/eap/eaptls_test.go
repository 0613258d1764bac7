package eap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// testCA is a client-certificate CA for EAP-TLS tests.
type testCA struct {
	t    testing.TB
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{t: t, cert: c, key: key, pool: pool}
}

// upnSAN encodes a SubjectAltName extension holding one UPN otherName.
func upnSAN(t testing.TB, upn string) pkix.Extension {
	t.Helper()
	str, _ := asn1.MarshalWithParams(upn, "utf8")
	explicit, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: str})
	oid, _ := asn1.Marshal(OIDUPN)
	other, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, explicit...)})
	dns, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("host.example.test")})
	san, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: append(dns, other...)})
	return pkix.Extension{Id: oidSubjectAltName, Value: san}
}

// issue signs a client certificate; edit sets its names.
func (ca *testCA) issue(serial int64, edit func(*x509.Certificate)) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func (ca *testCA) crl(serials ...int64) *x509.RevocationList {
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	l, _ := x509.ParseRevocationList(der)
	return l
}

// tlsSupplicant is a minimal EAP-TLS peer on crypto/tls.
type tlsSupplicant struct {
	t       testing.TB
	s       *Server
	tlsConf *tls.Config
	allow   func(CertIdentity) bool
	mtu     int

	state     []byte
	eng       *engine
	in        reassembler
	out       fragmenter
	seen      []CertIdentity
	sawSignal bool // the protected success indication arrived
	signalAt  int  // round whose answer carried it
	authAt    int  // round the CertFunc ran in
	round     int
}

func newTLSSupplicant(t testing.TB, s *Server, serverPool *x509.CertPool, cert tls.Certificate) *tlsSupplicant {
	return &tlsSupplicant{t: t, s: s, allow: func(CertIdentity) bool { return true },
		tlsConf: &tls.Config{RootCAs: serverPool, ServerName: "radius.example.test", MaxVersion: tls.VersionTLS12, SessionTicketsDisabled: true,
			// Sent whatever CAs the server names (crypto/tls would send
			// none from an unknown CA; wpa_supplicant sends its own).
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}
}

func (c *tlsSupplicant) send(p Packet) Response {
	c.round++
	return c.s.Handle(context.Background(), Request{EAP: p.Marshal(), State: c.state, FramedMTU: c.mtu,
		Source: netip.MustParseAddr("192.0.2.1"), Client: "test",
		Cert: func(_ context.Context, id CertIdentity) bool {
			c.seen, c.authAt = append(c.seen, id), c.round
			return c.allow(id)
		},
		Result: func() any { return "login of " + c.seen[len(c.seen)-1].Name }})
}

func (c *tlsSupplicant) reply(id uint8, data []byte) Response {
	return c.send(Packet{Code: CodeResponse, ID: id, Type: TypeTLS, Data: data})
}

func (c *tlsSupplicant) run() Response {
	c.in.total = -1
	r := c.send(Packet{Code: CodeResponse, ID: 7, Type: TypeIdentity, Data: []byte("anonymous")})
	defer func() {
		if c.eng != nil {
			c.eng.close()
		}
	}()
	for range 200 {
		if r.Outcome != Challenge {
			return r
		}
		c.state = r.State
		p, err := Parse(r.EAP)
		if err != nil || p.Code != CodeRequest {
			c.t.Fatalf("bad challenge %x: %v", r.EAP, err)
		}
		if p.Type != TypeTLS {
			// Offered another method first: ask for EAP-TLS.
			r = c.send(Packet{Code: CodeResponse, ID: p.ID, Type: TypeNAK, Data: []byte{TypeTLS}})
			continue
		}
		r = c.answer(p)
	}
	c.t.Fatal("no end after 200 rounds")
	return r
}

func (c *tlsSupplicant) answer(p Packet) Response {
	td, err := parseTLSData(p.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.out.pending() {
		return c.reply(p.ID, c.out.next(0, 1000))
	}
	if td.flags&flagStart != 0 {
		c.eng = startEngine(func(nc net.Conn) *tls.Conn { return tls.Client(nc, c.tlsConf) })
		out, _, err := c.eng.step(nil)
		if err != nil {
			c.t.Fatal(err)
		}
		c.out.load(out)
		return c.reply(p.ID, c.out.next(0, 1000))
	}
	done, err := c.in.add(td)
	if err != nil {
		c.t.Fatal(err)
	}
	if !done {
		return c.reply(p.ID, []byte{0})
	}
	msg := c.in.buf
	c.in.buf = nil
	out, app, err := c.eng.step(msg)
	if err != nil {
		// The server refused us (an alert): say nothing more.
		return c.reply(p.ID, []byte{0})
	}
	if bytes.Equal(app, []byte{0}) {
		c.sawSignal, c.signalAt = true, c.round
	}
	c.out.load(out)
	return c.reply(p.ID, c.out.next(0, 1000))
}

func (c *tlsSupplicant) msk() []byte {
	_, cs := c.eng.state()
	if cs.Version >= tls.VersionTLS13 {
		km, _ := cs.ExportKeyingMaterial("EXPORTER_EAP_TLS_Key_Material", []byte{0x0d}, 128)
		return km[:64]
	}
	km, _ := cs.ExportKeyingMaterial("client EAP encryption", nil, 64)
	return km
}

func tlsTestServer(t testing.TB, cfg Config, ca *ClientAuth) (*Server, *x509.CertPool) {
	t.Helper()
	if cfg.Methods == nil {
		cfg.Methods = []string{"tls"}
	}
	cfg.ClientAuth = func() *ClientAuth { return ca }
	return testServer(t, cfg)
}

func TestEAPTLS(t *testing.T) {
	ca := newTestCA(t, "client CA")
	other := newTestCA(t, "someone else's CA")
	auth := NewClientAuth(ca.pool, []*x509.RevocationList{ca.crl(66)})
	email := ca.issue(10, func(c *x509.Certificate) { c.EmailAddresses = []string{"alice@example.test"} })
	for _, tc := range []struct {
		name      string
		version   uint16
		mtu       int
		cert      tls.Certificate
		want      Outcome
		reason    string
		wantID    string
		allowUser bool
	}{
		{"TLS 1.2, SAN email", tls.VersionTLS12, 0, email, Accept, "", "alice@example.test", true},
		{"TLS 1.3, SAN email", tls.VersionTLS13, 0, email, Accept, "", "alice@example.test", true},
		{"TLS 1.3, small Framed-MTU", tls.VersionTLS13, 200, email, Accept, "", "alice@example.test", true},
		{"UPN when no email", tls.VersionTLS12, 0, ca.issue(11, func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{upnSAN(t, "bob@corp.example.test")}
		}), Accept, "", "bob@corp.example.test", true},
		{"CN when no SAN name", tls.VersionTLS13, 0, ca.issue(12, func(c *x509.Certificate) { c.Subject.CommonName = "carol" }), Accept, "", "carol", true},
		{"user refused, 1.2", tls.VersionTLS12, 0, email, Reject, "", "alice@example.test", false},
		{"user refused, 1.3", tls.VersionTLS13, 0, email, Reject, "", "alice@example.test", false},
		{"unknown CA, 1.2", tls.VersionTLS12, 0, other.issue(10, nil), Reject, "cert_unknown_ca", "", true},
		{"unknown CA, 1.3", tls.VersionTLS13, 0, other.issue(10, nil), Reject, "cert_unknown_ca", "", true},
		{"revoked, 1.2", tls.VersionTLS12, 0, ca.issue(66, nil), Reject, "cert_revoked", "", true},
		{"revoked, 1.3", tls.VersionTLS13, 0, ca.issue(66, nil), Reject, "cert_revoked", "", true},
		{"no client certificate", tls.VersionTLS12, 0, tls.Certificate{}, Reject, "no_client_certificate", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pool := tlsTestServer(t, Config{}, auth)
			c := newTLSSupplicant(t, s, pool, tc.cert)
			c.tlsConf.MaxVersion, c.mtu = tc.version, tc.mtu
			c.allow = func(CertIdentity) bool { return tc.allowUser }
			r := c.run()
			if r.Outcome != tc.want || r.Reason != tc.reason {
				t.Fatalf("outcome %v (%q), want %v (%q)", r.Outcome, r.Reason, tc.want, tc.reason)
			}
			if r.Method != MethodTLS {
				t.Fatalf("method %q", r.Method)
			}
			p, _ := Parse(r.EAP)
			if tc.want == Reject {
				if p.Code != CodeFailure || r.MSK != nil {
					t.Fatalf("reject: %x msk %x", r.EAP, r.MSK)
				}
				if tc.reason != "" && len(c.seen) != 0 {
					t.Fatalf("a refused certificate reached the CertFunc: %+v", c.seen)
				}
				if c.sawSignal {
					t.Fatal("protected success indication sent to a refused user")
				}
			} else {
				// The door's login result, from the round that authorized,
				// comes back with the Accept (reply attributes).
				if r.Login != "login of "+tc.wantID {
					t.Fatalf("Accept carries Login %v", r.Login)
				}
				if p.Code != CodeSuccess || !bytes.Equal(r.MSK, c.msk()) || len(r.MSK) != 64 {
					t.Fatalf("accept: code %d, MSK %x vs peer %x", p.Code, r.MSK, c.msk())
				}
				_, cs := c.eng.state()
				if cs.Version != tc.version {
					t.Fatalf("negotiated %x, want %x", cs.Version, tc.version)
				}
				if tc.version == tls.VersionTLS13 && (!c.sawSignal || c.signalAt < c.authAt) {
					t.Fatalf("1.3: success indication seen %v (round %d), authorized in round %d", c.sawSignal, c.signalAt, c.authAt)
				}
				if tc.version == tls.VersionTLS12 && c.sawSignal {
					t.Fatal("1.2: no success indication expected")
				}
			}
			if tc.wantID != "" && (len(c.seen) != 1 || c.seen[0].Name != tc.wantID || r.Identity != tc.wantID) {
				t.Fatalf("identity %+v / %q, want %q", c.seen, r.Identity, tc.wantID)
			}
			if ho, run := s.Sessions(); ho != 0 || run != 0 {
				t.Fatalf("sessions left: %d, %d", ho, run)
			}
		})
	}
}

func TestEAPTLSPolicy(t *testing.T) {
	ca := newTestCA(t, "client CA")
	cert := ca.issue(10, func(c *x509.Certificate) { c.EmailAddresses = []string{"alice@example.test"} })
	s, pool := tlsTestServer(t, Config{}, NewClientAuth(ca.pool, nil))
	c := newTLSSupplicant(t, s, pool, cert)
	c.tlsConf.MinVersion, c.tlsConf.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if r := c.run(); r.Outcome != Reject || r.Reason != "tls_failed" {
		t.Fatalf("TLS 1.1 supplicant: %v %s", r.Outcome, r.Reason)
	}
	// TTLS stays capped at 1.2 while EAP-TLS does 1.3, on one server.
	s, pool = tlsTestServer(t, Config{Methods: []string{"ttls", "tls"}}, NewClientAuth(ca.pool, nil))
	tc := newSupplicant(t, s, pool, "alice", "right")
	tc.tlsConf.MaxVersion = tls.VersionTLS13
	if r := tc.run(); r.Outcome != Accept {
		t.Fatalf("TTLS: %v %s", r.Outcome, r.Reason)
	}
	if _, cs := tc.eng.state(); cs.Version != tls.VersionTLS12 {
		t.Fatalf("TTLS negotiated %x", cs.Version)
	}
	c = newTLSSupplicant(t, s, pool, cert)
	c.tlsConf.MaxVersion = tls.VersionTLS13
	if r := c.run(); r.Outcome != Accept {
		t.Fatalf("EAP-TLS after a NAK: %v %s", r.Outcome, r.Reason)
	}
	if _, cs := c.eng.state(); cs.Version != tls.VersionTLS13 {
		t.Fatalf("EAP-TLS negotiated %x", cs.Version)
	}
	// Capped at 1.2 by configuration.
	s, pool = tlsTestServer(t, Config{TLSMaxVersion: tls.VersionTLS12}, NewClientAuth(ca.pool, nil))
	c = newTLSSupplicant(t, s, pool, cert)
	c.tlsConf.MaxVersion = tls.VersionTLS13
	if r := c.run(); r.Outcome != Accept {
		t.Fatalf("capped EAP-TLS: %v %s", r.Outcome, r.Reason)
	}
	if _, cs := c.eng.state(); cs.Version != tls.VersionTLS12 {
		t.Fatalf("capped EAP-TLS negotiated %x", cs.Version)
	}
	if _, err := New(Config{Methods: []string{"tls"}, Certificate: func() *tls.Certificate { return nil }}, nil, nil); err == nil {
		t.Fatal("EAP-TLS without client CAs accepted")
	}
}

func TestCertIdentity(t *testing.T) {
	ca := newTestCA(t, "CA")
	leaf := func(edit func(*x509.Certificate)) *x509.Certificate { return ca.issue(5, edit).Leaf }
	for _, tc := range []struct {
		name       string
		cert       *x509.Certificate
		want, from string
	}{
		{"email first", leaf(func(c *x509.Certificate) {
			c.EmailAddresses = []string{"a@example.test"}
			c.Subject.CommonName = "cn"
		}), "a@example.test", "email"},
		{"upn before cn", leaf(func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{upnSAN(t, "u@corp.test")}
			c.Subject.CommonName = "cn"
		}), "u@corp.test", "upn"},
		{"cn last", leaf(func(c *x509.Certificate) { c.Subject.CommonName = "carol" }), "carol", "cn"},
		{"control characters skipped", leaf(func(c *x509.Certificate) { c.Subject.CommonName = "ca\x01rol" }), "", ""},
		{"nothing", leaf(func(c *x509.Certificate) { c.Subject.CommonName = "" }), "", ""},
	} {
		id := IdentityOf(tc.cert)
		if id.Name != tc.want || id.From != tc.from {
			t.Errorf("%s: %q from %q, want %q from %q", tc.name, id.Name, id.From, tc.want, tc.from)
		}
	}
	if got := ParseUPNs(upnSAN(t, "x@y").Value); !slices.Equal(got, []string{"x@y"}) {
		t.Fatalf("ParseUPNs: %q", got)
	}
	for _, bad := range [][]byte{nil, {0x30}, {0x30, 0x03, 0xa0, 0x01}, {0x04, 0x00}} {
		if got := ParseUPNs(bad); len(got) != 0 {
			t.Fatalf("ParseUPNs(%x) = %q", bad, got)
		}
	}
}
