package ldapserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"
)

type testServer struct {
	s    *Server
	dir  *fakeDir
	auth *fakeAuth
	reg  *prometheus.Registry
	pki  *testPKI
	url  string // ldap://127.0.0.1:port
	surl string // ldaps://127.0.0.1:port, when TLS
	logs *syncBuffer
	stop func() // cancels Serve and waits for it; idempotent
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// startServer runs a server on 127.0.0.1:0 with the fixture. withTLS
// creates a test CA and turns on StartTLS and LDAPS.
func startServer(t testing.TB, withTLS bool, mod func(*Config)) *testServer {
	t.Helper()
	dir, auth := newFixture()
	ts := &testServer{dir: dir, auth: auth, reg: prometheus.NewRegistry(), logs: newSyncBuffer()}
	cfg := Config{
		Listen:         "127.0.0.1:0",
		BaseDN:         testBase,
		ExemptLoopback: true,
		IdleTimeout:    time.Minute,
	}
	if withTLS {
		ts.pki = newTestPKI(t)
		cfg.CertFile, cfg.KeyFile = ts.pki.certFile, ts.pki.keyFile
		cfg.LDAPSListen = "127.0.0.1:0"
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, auth, dir, newTestLogger(ts.logs), ts.reg)
	if err != nil {
		t.Fatal(err)
	}
	ts.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	<-s.Ready()
	plain, ldaps := s.Addrs()
	if plain == nil && ldaps == nil {
		cancel()
		t.Fatalf("Serve: %v", <-done)
	}
	if plain != nil {
		ts.url = "ldap://" + plain.String()
	}
	if ldaps != nil {
		ts.surl = "ldaps://" + ldaps.String()
	}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	return ts
}

// dial opens a go-ldap connection to the plain listener.
func (ts *testServer) dial(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(10 * time.Second)
	t.Cleanup(func() { c.Close() })
	return c
}

func (ts *testServer) bind(t testing.TB, dn, pw string) *ldap.Conn {
	t.Helper()
	c := ts.dial(t)
	if err := c.Bind(dn, pw); err != nil {
		t.Fatalf("bind %s: %v", dn, err)
	}
	return c
}

// metric returns the value of a counter or gauge with the given labels.
func (ts *testServer) metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// testPKI is a CA and a server certificate for 127.0.0.1 and localhost.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	serial                    *big.Int
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	p.certFile = filepath.Join(p.dir, "server.pem")
	p.keyFile = filepath.Join(p.dir, "server-key.pem")
	p.issue(t, 2)
	return p
}

// issue writes a fresh CA and server certificate with the given serial.
func (p *testPKI) issue(t testing.TB, serial int64) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gatewayd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, "CERTIFICATE", caDER)
	write(p.certFile, "CERTIFICATE", der)
	write(p.keyFile, "EC PRIVATE KEY", keyDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	p.serial = big.NewInt(serial)
}

func (p *testPKI) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// toolResult is what an OpenLDAP client printed and how it exited.
type toolResult struct {
	stdout, stderr string
	code           int
}

// runTool runs an OpenLDAP client with a clean environment: no user
// ldaprc, the test CA when there is one.
func (ts *testServer) runTool(t testing.TB, name string, args ...string) toolResult {
	t.Helper()
	bin := requireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "LDAPRC=" + filepath.Join(home, "none")}
	if ts.pki != nil {
		cmd.Env = append(cmd.Env, "LDAPTLS_CACERT="+ts.pki.caFile, "LDAPTLS_REQCERT=demand")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := toolResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// countFDs counts this process's open descriptors.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// serveReal runs a server on the real authn and store stack until the
// test ends; dial opens a connection to it, closed at cleanup.
func serveReal(t *testing.T, au Authenticator, dir Directory) (dial func() *ldap.Conn) {
	t.Helper()
	s, err := New(Config{Listen: "127.0.0.1:0", BaseDN: testBase, ExemptLoopback: true}, au, dir, newTestLogger(newSyncBuffer()), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Ready()
	plain, _ := s.Addrs()
	return func() *ldap.Conn {
		c, err := ldap.DialURL("ldap://" + plain.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetTimeout(10 * time.Second)
		t.Cleanup(func() { c.Close() })
		return c
	}
}
