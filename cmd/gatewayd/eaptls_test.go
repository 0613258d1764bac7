package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// clientPKI is an EAP-TLS client CA on disk: it issues client
// certificates and writes its CRL.
type clientPKI struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newClientPKI(t *testing.T, dir, name string) (*clientPKI, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	p := &clientPKI{t: t, dir: dir, cert: c, key: key}
	return p, p.write(strings.ReplaceAll(name, " ", "-")+"-ca.pem", "CERTIFICATE", der)
}

func (p *clientPKI) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue writes a client certificate (clientAuth) and its key; edit sets
// the names.
func (p *clientPKI) issue(name string, serial int64, edit func(*x509.Certificate)) (certFile, keyFile string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	k, _ := x509.MarshalPKCS8PrivateKey(key)
	return p.write(name+"-cert.pem", "CERTIFICATE", der), p.write(name+"-key.pem", "PRIVATE KEY", k)
}

func (p *clientPKI) crl(serials ...int64) string {
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, p.cert, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write("client-crl.pem", "X509 CRL", der)
}

// eapolTLS runs eapol_test with EAP-TLS; tls13 enables TLS 1.3 in
// wpa_supplicant 2.10 (off by default for EAP-TLS).
func eapolTLS(t *testing.T, addr, caFile, identity, certFile, keyFile string, tls13 bool) eapolRun {
	t.Helper()
	phase1 := "tls_disable_tlsv1_3=1"
	if tls13 {
		phase1 = "tls_disable_tlsv1_3=0"
	}
	return eapolTLSPhase1(t, addr, caFile, identity, certFile, keyFile, phase1)
}

func eapolTLSPhase1(t *testing.T, addr, caFile, identity, certFile, keyFile, phase1 string) eapolRun {
	t.Helper()
	bin := testutil.RequireBinary(t, "eapol_test")
	conf := filepath.Join(t.TempDir(), "eapol.conf")
	text := fmt.Sprintf("network={\n\tssid=\"test\"\n\tkey_mgmt=WPA-EAP\n\teap=TLS\n\tidentity=%q\n\tca_cert=%q\n\tclient_cert=%q\n\tprivate_key=%q\n\tdomain_suffix_match=\"radius.example.test\"\n\tphase1=%q\n}\n",
		identity, caFile, certFile, keyFile, phase1)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-c", conf, "-a", host, "-p", port, "-s", radiusSecret, "-r", "0", "-t", "10").CombinedOutput()
	return eapolRun{out: string(out), ok: err == nil}
}

// TestEAPTLSWithEapolTest: EAP-TLS through the real daemon with
// eapol_test. TLS 1.2 and TLS 1.3 accept (MPPE keys checked by
// eapol_test, the staff VLAN in the Accept); a certificate from an
// unknown CA, a revoked one and one mapping to a suspended user are
// refused with EAP-Failure; the events carry method eap-tls.
func TestEAPTLSWithEapolTest(t *testing.T) {
	dir := t.TempDir()
	pki, clientCA := newClientPKI(t, dir, "client CA")
	crl := pki.crl(66)
	// TTLS first: wpa_supplicant NAKs it for TLS.
	text, addr, serverCA := eapConfig(t, dir, false, fmt.Sprintf("methods = [\"ttls\", \"tls\"]\nca_file = %q\ncrl_file = %q\n", clientCA, crl))
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	for _, u := range []string{"alice", "sus", "rev"} {
		p.api("POST", "/v1/users", map[string]any{"username": u, "email": u + "@example.test"}, nil)
		if _, err := p.api("PUT", "/v1/users/"+u+"/password", map[string]string{"password": "Unused-Pass-1"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.api("POST", "/v1/groups", map[string]any{"name": "staff"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.api("PUT", "/v1/groups/staff/members/alice", nil, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := p.cli("", "user", "suspend", "sus"); err != nil {
		t.Fatal(err, out)
	}
	aliceCert, aliceKey := pki.issue("alice-laptop", 10, func(c *x509.Certificate) { c.EmailAddresses = []string{"alice@example.test"} })

	for _, tls13 := range []bool{false, true} {
		r := eapolTLS(t, addr, serverCA, "anonymous@example.test", aliceCert, aliceKey, tls13)
		if !r.ok || !mppeOK(r.out) || !strings.Contains(r.out, "SUCCESS") {
			t.Fatalf("EAP-TLS accept expected (TLS 1.3 %v), with MPPE keys OK and SUCCESS:\n%s", tls13, r.out)
		}
		want := "TLSv1.2"
		if tls13 {
			want = "TLSv1.3"
		}
		if !strings.Contains(r.out, "Using TLS version "+want) {
			t.Fatalf("EAP-TLS did not negotiate %s:\n%s", want, r.out)
		}
		if !strings.Contains(r.out, "Attribute 81 ") {
			t.Fatalf("the Accept lacks the staff VLAN (Tunnel-Private-Group-Id):\n%s", r.out)
		}
		t.Logf("eapol_test EAP-TLS accept (%s):\n%s", want, lastLines(r.out, 4))
	}
	evs := eapEvents(t, p, "alice", 2)
	for _, e := range evs[len(evs)-2:] {
		if e.Outcome != "success" || e.Method != "eap-tls" {
			t.Fatalf("alice's EAP-TLS events %+v", evs)
		}
	}

	// Refusals: an unknown CA, a revoked certificate, a suspended user.
	other, _ := newClientPKI(t, t.TempDir(), "other CA")
	strayCert, strayKey := other.issue("stray", 10, func(c *x509.Certificate) { c.EmailAddresses = []string{"alice@example.test"} })
	revCert, revKey := pki.issue("rev-laptop", 66, func(c *x509.Certificate) { c.EmailAddresses = []string{"rev@example.test"} })
	susCert, susKey := pki.issue("sus", 12, nil) // CN = sus
	for _, tc := range []struct{ name, cert, key string }{
		{"unknown CA", strayCert, strayKey},
		{"revoked", revCert, revKey},
		{"suspended user", susCert, susKey},
	} {
		for _, tls13 := range []bool{false, true} {
			r := eapolTLS(t, addr, serverCA, "anonymous@example.test", tc.cert, tc.key, tls13)
			if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") || !strings.Contains(r.out, "Access-Reject") {
				t.Fatalf("%s (TLS 1.3 %v): Access-Reject with EAP-Failure expected:\n%s", tc.name, tls13, r.out)
			}
			if mppeOK(r.out) {
				t.Fatalf("%s: keys sent:\n%s", tc.name, r.out)
			}
			t.Logf("eapol_test EAP-TLS reject (%s, TLS 1.3 %v):\n%s", tc.name, tls13, lastLines(r.out, 3))
		}
	}
	sevs := eapEvents(t, p, "sus", 2)
	for _, e := range sevs[len(sevs)-2:] {
		if e.Outcome != "failure" || e.Reason != "suspended" || e.Method != "eap-tls" {
			t.Fatalf("the suspended user's events %+v, want failure:suspended:eap-tls", sevs)
		}
	}
	// The certificate refusals are recorded (under the outer identity,
	// which matches no user here) with reason bad_certificate.
	testutil.Eventually(t, 5*time.Second, func() bool {
		var page struct {
			Events []struct {
				Outcome  string `json:"outcome"`
				Reason   string `json:"reason"`
				Method   string `json:"method"`
				Username string `json:"username"`
			} `json:"events"`
		}
		if _, err := p.api("GET", "/v1/events?limit=100&type=radius_auth&reason=bad_certificate", nil, &page); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range page.Events {
			if e.Outcome == "failure" && e.Method == "eap-tls" && e.Username == "anonymous@example.test" {
				n++
			}
		}
		return n == 4
	}, "4 bad_certificate events (unknown CA and revoked, TLS 1.2 and 1.3)")
	if lg := p.logs(); strings.Contains(lg, "panic") {
		t.Fatalf("daemon log:\n%s", lg)
	}
}

// TestEAPOldTLSRefusedWithEapolTest: a supplicant limited to TLS 1.0 and
// 1.1 is refused, over TTLS and over EAP-TLS.
func TestEAPOldTLSRefusedWithEapolTest(t *testing.T) {
	dir := t.TempDir()
	pki, clientCA := newClientPKI(t, dir, "client CA")
	text, addr, serverCA := eapConfig(t, dir, false, fmt.Sprintf("methods = [\"ttls\", \"tls\"]\nca_file = %q\n", clientCA))
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test"}, nil)
	if _, err := p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "Old-Tls-Pass-1"}, nil); err != nil {
		t.Fatal(err)
	}
	const old = "tls_disable_tlsv1_0=0 tls_disable_tlsv1_1=0 tls_disable_tlsv1_2=1 tls_disable_tlsv1_3=1"
	// The same settings with 1.2 allowed succeed: the refusal is the
	// version's.
	if r := eapolTest(t, addr, serverCA, "alice", "Old-Tls-Pass-1", "\tphase1=\"tls_disable_tlsv1_2=0\"\n"); !r.ok || !mppeOK(r.out) {
		t.Fatalf("TTLS control login failed:\n%s", r.out)
	}
	r := eapolTest(t, addr, serverCA, "alice", "Old-Tls-Pass-1", "\tphase1=\""+old+"\"\n")
	if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") {
		t.Fatalf("TTLS over TLS 1.0/1.1: refusal expected:\n%s", r.out)
	}
	t.Logf("eapol_test TTLS, TLS 1.0/1.1 only:\n%s", lastLines(r.out, 3))
	cert, key := pki.issue("alice-laptop", 10, func(c *x509.Certificate) { c.EmailAddresses = []string{"alice@example.test"} })
	r = eapolTLSPhase1(t, addr, serverCA, "alice", cert, key, old)
	if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") {
		t.Fatalf("EAP-TLS over TLS 1.0/1.1: refusal expected:\n%s", r.out)
	}
	t.Logf("eapol_test EAP-TLS, TLS 1.0/1.1 only:\n%s", lastLines(r.out, 3))
	if !strings.Contains(p.logs(), "reason=tls_failed") {
		testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(p.logs(), "reason=tls_failed") }, "tls_failed logged")
	}
}
