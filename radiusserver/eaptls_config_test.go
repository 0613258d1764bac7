package radiusserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// eapTLSFiles writes a server pair, a client CA, a CRL it signs
// (revoking serial 66) and a CRL another CA signs.
func eapTLSFiles(t *testing.T) (cert, key, ca, crl, foreignCRL string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, k, der
	}
	mkCRL := func(c *x509.Certificate, k *ecdsa.PrivateKey) []byte {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
			ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(66), RevocationTime: time.Now()}}}, c, k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	srv, srvKey, srvDER := mkCA("radius.example.test")
	_ = srv
	kDER, _ := x509.MarshalECPrivateKey(srvKey)
	cert, key = write("cert.pem", "CERTIFICATE", srvDER), write("key.pem", "EC PRIVATE KEY", kDER)
	c, k, der := mkCA("client CA")
	ca = write("ca.pem", "CERTIFICATE", der)
	crl = write("crl.pem", "X509 CRL", mkCRL(c, k))
	oc, ok, _ := mkCA("other CA")
	foreignCRL = write("foreign-crl.pem", "X509 CRL", mkCRL(oc, ok))
	return
}

func TestEAPTLSConfig(t *testing.T) {
	cert, key, ca, crl, foreign := eapTLSFiles(t)
	head := fmt.Sprintf("[radius]\n[radius.eap]\ncert_file = %q\nkey_file = %q\n", cert, key) // line 5 is next
	c, err := parseRADIUS(t, head+fmt.Sprintf("methods = [\"tls\", \"ttls\"]\nca_file = %q\ncrl_file = %q\n", ca, crl))
	if err != nil {
		t.Fatalf("EAP-TLS block must load: %v", err)
	}
	if c.EAP.EAPTLSMaxVersion != "1.3" || c.EAP.TLSMaxVersion != "1.2" {
		t.Fatalf("version defaults: EAP-TLS %q, tunnels %q", c.EAP.EAPTLSMaxVersion, c.EAP.TLSMaxVersion)
	}
	// The CRL is loaded and matched: serial 66 of the client CA is revoked.
	cas, err := loadClientAuth(ca, crl)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(ca)
	blk, _ := pem.Decode(b)
	caCert, _ := x509.ParseCertificate(blk.Bytes)
	if !cas.Revoked(&x509.Certificate{SerialNumber: big.NewInt(66)}, caCert) || cas.Revoked(&x509.Certificate{SerialNumber: big.NewInt(67)}, caCert) {
		t.Fatal("CRL entries not applied")
	}
	// A DER CRL file works too.
	cb, _ := os.ReadFile(crl)
	cblk, _ := pem.Decode(cb)
	der := filepath.Join(t.TempDir(), "crl.der")
	os.WriteFile(der, cblk.Bytes, 0o600)
	if _, err := loadClientAuth(ca, der); err != nil {
		t.Fatalf("DER CRL: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not pem\n"), 0o600)
	for _, tc := range []struct {
		name, lines, key string
		line             int
		msg              string
	}{
		{"tls without ca_file", "methods = [\"tls\"]\n", "radius.eap.methods", 5, "needs ca_file"},
		{"ca_file missing", fmt.Sprintf("ca_file = %q\n", "/nonexistent/ca.pem"), "radius.eap.ca_file", 5, "no such file"},
		{"ca_file not PEM", fmt.Sprintf("ca_file = %q\n", junk), "radius.eap.ca_file", 5, "holds no PEM certificate"},
		{"crl not signed by ca_file", fmt.Sprintf("ca_file = %q\ncrl_file = %q\n", ca, foreign), "radius.eap.crl_file", 6, "not signed by a CA in ca_file"},
		{"crl unreadable", fmt.Sprintf("ca_file = %q\ncrl_file = %q\n", ca, junk), "radius.eap.crl_file", 6, "x509"},
		{"crl without ca", fmt.Sprintf("crl_file = %q\n", crl), "radius.eap.crl_file", 5, "needs ca_file"},
		{"eap_tls_max_version", "eap_tls_max_version = \"1.1\"\n", "radius.eap.eap_tls_max_version", 5, "write \"1.2\" or \"1.3\""},
		{"eap_tls_max_version below min", "tls_min_version = \"1.3\"\ntls_max_version = \"1.3\"\neap_tls_max_version = \"1.2\"\n", "radius.eap.eap_tls_max_version", 7, "is below tls_min_version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRADIUS(t, head+tc.lines)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}
