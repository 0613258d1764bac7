package delegation

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	ldap "github.com/go-ldap/ldap/v3"
)

// fakeDC is a minimal AD-flavoured LDAP server on 127.0.0.1: simple
// binds with AD's "data XXX" diagnostics, subtree searches by one
// attribute, rootDSE reads and StartTLS. Enough for the pool, failover
// and sub-code logic; the real thing is tested against Samba in
// cmd/gatewayd.
type fakeDC struct {
	t     *testing.T
	l     net.Listener
	addr  string
	tls   *tls.Config // LDAPS when set and ldaps is true; StartTLS offered when set
	ldaps bool

	mu    sync.Mutex
	users map[string]fakeUser // by bind name (UPN or DN, lower case)
	svcDN string
	svcPW string
	conns []net.Conn

	accepted atomic.Int64
	binds    atomic.Int64
	searches atomic.Int64
	hang     atomic.Bool // answer nothing (accept and read, never reply)
	delay    atomic.Int64
	closed   atomic.Bool
}

type fakeUser struct {
	pw   string
	code string // AD sub-code to refuse with even with the right password ("533")
	sam  string
	upn  string
	dn   string
}

func newFakeDC(t *testing.T, tlsCfg *tls.Config, ldaps bool) *fakeDC {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDC{t: t, addr: l.Addr().String(), tls: tlsCfg, ldaps: ldaps, users: map[string]fakeUser{}}
	f.serve(l)
	t.Cleanup(f.close)
	return f
}

// restartOn listens again on the same address (a DC coming back).
func (f *fakeDC) restart() {
	f.t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.closed.Store(false)
	f.serve(l)
}

func (f *fakeDC) serve(l net.Listener) {
	f.mu.Lock()
	f.l = l
	f.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			if f.ldaps {
				c = tls.Server(c, f.tls)
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.handle(c)
		}
	}()
}

func (f *fakeDC) url() string {
	if f.ldaps {
		return "ldaps://" + f.addr
	}
	return "ldap://" + f.addr
}

// close stops listening and drops every connection (a DC going away).
func (f *fakeDC) close() {
	f.closed.Store(true)
	f.mu.Lock()
	f.l.Close()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// dropConns closes established connections but keeps listening (a DC
// that timed out idle connections).
func (f *fakeDC) dropConns() {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (f *fakeDC) addUser(sam, pw, code string) fakeUser {
	u := fakeUser{pw: pw, code: code, sam: sam, upn: sam + "@example.test",
		dn: "CN=" + sam + ",CN=Users,DC=example,DC=test"}
	f.mu.Lock()
	f.users[strings.ToLower(u.upn)] = u
	f.users[strings.ToLower(u.dn)] = u
	f.mu.Unlock()
	return u
}

func (f *fakeDC) setService(dn, pw string) {
	f.mu.Lock()
	f.svcDN, f.svcPW = dn, pw
	f.mu.Unlock()
}

const adDiag = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data %s, v4563\x00"

func (f *fakeDC) handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		p, err := ber.ReadPacket(r)
		if err != nil || len(p.Children) < 2 {
			return
		}
		if f.hang.Load() {
			continue
		}
		if d := f.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		id := p.Children[0].Value.(int64)
		op := p.Children[1]
		switch op.Tag {
		case ldap.ApplicationBindRequest:
			f.binds.Add(1)
			name := strings.ToLower(op.Children[1].Value.(string))
			pw := op.Children[2].Data.String()
			code, diag := f.checkBind(name, pw)
			f.write(c, result(id, ldap.ApplicationBindResponse, code, diag))
		case ldap.ApplicationSearchRequest:
			f.searches.Add(1)
			base := op.Children[0].Value.(string)
			filter, _ := ldap.DecompileFilter(op.Children[6])
			if base == "" {
				f.write(c, entry(id, "", "dnsHostName", "dc1.example.test"))
			} else {
				f.mu.Lock()
				var hits []string
				seen := map[string]bool{}
				for _, u := range f.users {
					if !seen[u.dn] && (strings.Contains(filter, "(sAMAccountName="+u.sam+")") || strings.Contains(filter, "(userPrincipalName="+u.upn+")") ||
						strings.Contains(filter, "(mail="+u.upn+")")) {
						hits = append(hits, u.dn)
						seen[u.dn] = true
					}
				}
				f.mu.Unlock()
				for _, dn := range hits {
					f.write(c, entry(id, dn, "", ""))
				}
			}
			f.write(c, result(id, ldap.ApplicationSearchResultDone, 0, ""))
		case ldap.ApplicationExtendedRequest:
			oid := op.Children[0].Data.String()
			if oid != "1.3.6.1.4.1.1466.20037" || f.tls == nil {
				f.write(c, result(id, ldap.ApplicationExtendedResponse, ldap.LDAPResultProtocolError, "unsupported"))
				continue
			}
			f.write(c, result(id, ldap.ApplicationExtendedResponse, 0, ""))
			tc := tls.Server(c, f.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, r = tc, bufio.NewReader(tc)
		case ldap.ApplicationUnbindRequest:
			return
		}
	}
}

func (f *fakeDC) checkBind(name, pw string) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.svcDN != "" && strings.EqualFold(name, f.svcDN) {
		if pw == f.svcPW {
			return 0, ""
		}
		return ldap.LDAPResultInvalidCredentials, fmt.Sprintf(adDiag, "52e")
	}
	u, ok := f.users[name]
	switch {
	case !ok:
		return ldap.LDAPResultInvalidCredentials, fmt.Sprintf(adDiag, "525")
	case pw != u.pw:
		return ldap.LDAPResultInvalidCredentials, fmt.Sprintf(adDiag, "52e")
	case u.code != "":
		return ldap.LDAPResultInvalidCredentials, fmt.Sprintf(adDiag, u.code)
	}
	return 0, ""
}

func (f *fakeDC) write(c net.Conn, p *ber.Packet) {
	_, _ = c.Write(p.Bytes())
}

func result(id int64, app ber.Tag, code int, diag string) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	r := ber.Encode(ber.ClassApplication, ber.TypeConstructed, app, nil, "")
	r.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), ""))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, ""))
	p.AppendChild(r)
	return p
}

func entry(id int64, dn, attr, val string) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	e := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "")
	e.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	if attr != "" {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, attr, ""))
		vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, val, ""))
		a.AppendChild(vals)
		attrs.AppendChild(a)
	}
	e.AppendChild(attrs)
	p.AppendChild(e)
	return p
}

// hungListener accepts TCP connections on 127.0.0.1 and never answers.
func hungListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// closedPort returns a 127.0.0.1 address nothing listens on (refused).
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// testCA issues a server certificate for 127.0.0.1 and localhost.
type testCA struct {
	pool   *x509.CertPool
	server *tls.Config
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake AD CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "dc1.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"dc1.example.test", "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testCA{pool: pool, server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
}
