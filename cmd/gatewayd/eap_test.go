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
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// eapPKI writes a private CA and a server certificate signed by it
// (ECDSA P-256, DNS SAN radius.example.test). With padSANs the leaf
// carries enough extra names to exceed 4 KB, so its flight must be
// fragmented many times.
func eapPKI(t *testing.T, dir string, padSANs bool) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatewayd EAP test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	names := []string{"radius.example.test"}
	if padSANs {
		for i := range 160 {
			names = append(names, fmt.Sprintf("padding-name-%03d.radius.example.test", i))
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "radius.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if padSANs && len(der) < 4096 {
		t.Fatalf("padded certificate is only %d bytes", len(der))
	}
	kDER, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "eap-ca.pem"), filepath.Join(dir, "eap-cert.pem"), filepath.Join(dir, "eap-key.pem")
	write := func(p, typ string, b []byte) {
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(caFile, "CERTIFICATE", caDER)
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", kDER)
	return caFile, certFile, keyFile
}

// eapConfig is doorsConfig plus a [radius.eap] block.
func eapConfig(t *testing.T, dir string, padSANs bool, extra string) (text, radiusAddr, caFile string) {
	t.Helper()
	text, radiusAddr = doorsConfig(t, dir)
	caFile, cert, key := eapPKI(t, dir, padSANs)
	text += fmt.Sprintf("\n[radius.eap]\ncert_file = %q\nkey_file = %q\n%s", cert, key, extra)
	return text, radiusAddr, caFile
}

type eapolRun struct {
	out string
	ok  bool // eapol_test exited 0
}

// eapolTest runs wpa_supplicant's eapol_test against addr. network holds
// extra lines of the network block; args extra flags (-N attributes).
func eapolTest(t *testing.T, addr, caFile, user, pass, network string, args ...string) eapolRun {
	t.Helper()
	bin := testutil.RequireBinary(t, "eapol_test")
	dir := t.TempDir()
	conf := filepath.Join(dir, "eapol.conf")
	text := fmt.Sprintf("network={\n\tssid=\"test\"\n\tkey_mgmt=WPA-EAP\n\teap=TTLS\n\tidentity=%q\n\tanonymous_identity=\"anonymous\"\n\tpassword=%q\n\tphase2=\"auth=PAP\"\n\tca_cert=%q\n\tdomain_suffix_match=\"radius.example.test\"\n%s}\n",
		user, pass, caFile, network)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"-c", conf, "-a", host, "-p", port, "-s", radiusSecret, "-r", "0", "-t", "10"}, args...)
	out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
	return eapolRun{out: string(out), ok: err == nil}
}

// eapEvents returns radius_auth events for user, with their method.
func eapEvents(t *testing.T, p *proc, user string, n int) []struct{ Outcome, Reason, Method string } {
	t.Helper()
	var evs []struct{ Outcome, Reason, Method string }
	testutil.Eventually(t, 5*time.Second, func() bool {
		var page struct {
			Events []struct {
				Outcome string `json:"outcome"`
				Reason  string `json:"reason"`
				Method  string `json:"method"`
			} `json:"events"`
		}
		if _, err := p.api("GET", "/v1/events?limit=1000&type=radius_auth&user="+user, nil, &page); err != nil {
			t.Fatal(err)
		}
		evs = evs[:0]
		for _, e := range page.Events {
			evs = append(evs, struct{ Outcome, Reason, Method string }{e.Outcome, e.Reason, e.Method})
		}
		return len(evs) >= n
	}, fmt.Sprintf("%d radius_auth events for %s", n, user))
	return evs
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// TestEAPTTLSPAPWithEapolTest: EAP-TTLS/PAP through the real daemon with
// wpa_supplicant's eapol_test: accept (MPPE keys checked by eapol_test,
// the staff VLAN in the Accept), wrong password (EAP-Failure), and the
// method in the radius_auth events.
func TestEAPTTLSPAPWithEapolTest(t *testing.T) {
	dir := t.TempDir()
	text, addr, ca := eapConfig(t, dir, false, "")
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test"}, nil)
	p.api("POST", "/v1/groups", map[string]any{"name": "staff"}, nil)
	p.api("PUT", "/v1/groups/staff/members/alice", nil, nil)
	if _, err := p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "wifi pass 1"}, nil); err != nil {
		t.Fatal(err)
	}

	r := eapolTest(t, addr, ca, "alice", "wifi pass 1", "")
	if !r.ok || !mppeOK(r.out) || !strings.Contains(r.out, "SUCCESS") {
		t.Fatalf("TTLS/PAP accept expected, with MPPE keys OK and SUCCESS:\n%s", r.out)
	}
	// Attribute 81 is Tunnel-Private-Group-Id: the staff VLAN, as for PAP.
	if !strings.Contains(r.out, "Attribute 81 ") {
		t.Fatalf("the Accept lacks the staff VLAN (Tunnel-Private-Group-Id):\n%s", r.out)
	}
	t.Logf("eapol_test accept:\n%s", lastLines(r.out, 4))

	r = eapolTest(t, addr, ca, "alice", "wrong pass", "")
	if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") || !strings.Contains(r.out, "Access-Reject") {
		t.Fatalf("wrong password: an Access-Reject with EAP-Failure expected:\n%s", r.out)
	}
	t.Logf("eapol_test reject:\n%s", lastLines(r.out, 3))

	// The outer identity is never used: an inner name that does not exist
	// fails even when the outer one is a real user.
	r = eapolTest(t, addr, ca, "nobody", "wifi pass 1", "")
	if r.ok {
		t.Fatalf("unknown inner identity accepted:\n%s", r.out)
	}

	evs := eapEvents(t, p, "alice", 2)
	var got []string
	for _, e := range evs {
		got = append(got, e.Outcome+":"+e.Reason+":"+e.Method)
	}
	if want := "success::eap-ttls/pap failure:bad_password:eap-ttls/pap"; strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	// PAP through the same door still works and is marked as such.
	if _, ok := radclient(t, addr, "alice", "wifi pass 1"); !ok {
		t.Fatal("PAP login failed")
	}
	evs = eapEvents(t, p, "alice", 3)
	if evs[2].Method != "pap" {
		t.Fatalf("PAP event method %q", evs[2].Method)
	}
}

// TestEAPFragmentationWithEapolTest: a server certificate over 4 KB and a
// Framed-MTU of 300 force the server's flight into many fragments, and
// the supplicant's fragment_size of 200 forces ours to reassemble.
func TestEAPFragmentationWithEapolTest(t *testing.T) {
	dir := t.TempDir()
	text, addr, ca := eapConfig(t, dir, true, "")
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "bob", "email": "bob@example.test"}, nil)
	if _, err := p.api("PUT", "/v1/users/bob/password", map[string]string{"password": "frag pass 1"}, nil); err != nil {
		t.Fatal(err)
	}
	r := eapolTest(t, addr, ca, "bob", "frag pass 1", "\tfragment_size=200\n", "-N", "12:d:300")
	if !r.ok || !mppeOK(r.out) || !strings.Contains(r.out, "SUCCESS") {
		t.Fatalf("fragmented TTLS/PAP accept expected:\n%s", r.out)
	}
	// Every EAP packet we sent fits Framed-MTU - 4 (EAPOL header).
	n := strings.Count(r.out, "Access-Challenge")
	if n < 20 {
		t.Fatalf("only %d Access-Challenges: the 4 KB flight was not fragmented at ~300 bytes", n)
	}
	t.Logf("%d round trips; eapol_test:\n%s", n, lastLines(r.out, 4))
}

// TestEAPTTLSTakeoverPush: a TTLS/PAP login is an authn.Login like PAP's,
// so it pushes the password to the bound Entra account (fake Graph).
func TestEAPTTLSTakeoverPush(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	dir := t.TempDir()
	text, addr, _ := takeoverConfig(t, dir, fg)
	ca, cert, key := eapPKI(t, dir, false)
	text += fmt.Sprintf("\n[radius.eap]\ncert_file = %q\nkey_file = %q\n", cert, key)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	const upn = "alice@example.test"
	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": upn, "first_name": "Alice", "last_name": "L"}, nil)
	p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "Wifi-Password-1"}, nil)
	if out, err := p.cli("", "bind", "m365", "-user", "alice"); err != nil {
		t.Fatal(err, out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { u, ok := fg.User(upn); return ok && u.AccountEnabled }, "account created")
	if n := passwordPatches(fg, upn); n != 0 {
		t.Fatalf("%d pushes before any login", n)
	}
	r := eapolTest(t, addr, ca, "alice", "Wifi-Password-1", "")
	if !r.ok || !mppeOK(r.out) {
		t.Fatalf("TTLS/PAP login failed:\n%s", r.out)
	}
	waitPatches(t, fg, upn, 1)
	if !fg.PasswordMatches(upn, "Wifi-Password-1") {
		t.Fatal("the pushed password is not the TTLS login's")
	}
}

var mppeOKLine = regexp.MustCompile(`(?m)^MPPE keys OK: [1-9][0-9]*  mismatch: 0$`)

// mppeOK reports eapol_test's "MPPE keys OK" line with at least one
// match and no mismatch: the MS-MPPE keys in the Accept are the MSK the
// supplicant derived itself.
func mppeOK(out string) bool { return mppeOKLine.MatchString(out) }
