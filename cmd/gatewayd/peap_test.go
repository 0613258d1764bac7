package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"layeh.com/radius/rfc2759"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// peapConfig is eapConfig with PEAP enabled, an LDAP listener, and the
// NT-hash option on or off.
func peapConfig(t *testing.T, dir string, storeNT bool) (text, radiusAddr, ldapURL, caFile string) {
	t.Helper()
	text, radiusAddr = doorsConfig(t, dir)
	keyFile := filepath.Join(dir, "nt.key")
	if _, err := os.Stat(keyFile); err != nil {
		os.WriteFile(keyFile, []byte(strings.Repeat("5a", 32)+"\n"), 0o600)
	}
	text = strings.Replace(text, "[authn]\n", fmt.Sprintf("[authn]\nstore_nt_hash = %v\nnt_hash_key_file = %q\n", storeNT, keyFile), 1)
	ldapAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	text = strings.Replace(text, "[ldap]\nlisten = \"\"\n", fmt.Sprintf("[ldap]\nlisten = %q\nbase_dn = \"dc=example,dc=test\"\n", ldapAddr), 1)
	caFile = filepath.Join(dir, "eap-ca.pem")
	cert, key := filepath.Join(dir, "eap-cert.pem"), filepath.Join(dir, "eap-key.pem")
	if _, err := os.Stat(caFile); err != nil {
		caFile, cert, key = eapPKI(t, dir, false)
	}
	text += fmt.Sprintf("\n[radius.eap]\ncert_file = %q\nkey_file = %q\nmethods = [\"peap\", \"ttls\"]\n", cert, key)
	return text, radiusAddr, "ldap://" + ldapAddr, caFile
}

// eapolPEAP runs eapol_test with PEAPv0/EAP-MSCHAPv2.
func eapolPEAP(t *testing.T, addr, caFile, user, pass string) eapolRun {
	t.Helper()
	bin := testutil.RequireBinary(t, "eapol_test")
	conf := filepath.Join(t.TempDir(), "eapol.conf")
	text := fmt.Sprintf("network={\n\tssid=\"test\"\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n\tidentity=%q\n\tanonymous_identity=\"anonymous\"\n\tpassword=%q\n\tphase1=\"peapver=0\"\n\tphase2=\"auth=MSCHAPV2\"\n\tca_cert=%q\n\tdomain_suffix_match=\"radius.example.test\"\n}\n",
		user, pass, caFile)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-c", conf, "-a", host, "-p", port, "-s", radiusSecret, "-r", "0", "-t", "10").CombinedOutput()
	return eapolRun{out: string(out), ok: err == nil}
}

func ntHashOf(pw string) []byte {
	u, _ := rfc2759.ToUTF16([]byte(pw))
	return rfc2759.NTPasswordHash(u)
}

// TestPEAPMSCHAPv2WithEapolTest: PEAPv0/EAP-MSCHAPv2 through the real
// daemon. Passwords set while store_nt_hash is off leave no NT hash; with
// it on, the hash is captured at a PAP login (alice), an LDAP bind (carol)
// and a password set through the API (dave); bob never logs in and fails
// with no_nt_hash. The NT hash is never on disk in the clear, nor in the
// API or LDAP. Turning the option off drops every hash.
func TestPEAPMSCHAPv2WithEapolTest(t *testing.T) {
	dir := t.TempDir()
	text, addr, _, ca := peapConfig(t, dir, false)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	pw := map[string]string{"alice": "Peap-Pass-1", "bob": "Peap-Pass-2", "carol": "Peap-Pass-3", "dave": "Peap-Pass-4"}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		p.api("POST", "/v1/users", map[string]any{"username": u, "email": u + "@example.test"}, nil)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if _, err := p.api("PUT", "/v1/users/"+u+"/password", map[string]string{"password": pw[u]}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if r := eapolPEAP(t, addr, ca, "alice", pw["alice"]); r.ok {
		t.Fatalf("PEAP accepted with store_nt_hash off:\n%s", r.out)
	}
	p.stop()

	var ldapURL string
	text, addr, ldapURL, ca = peapConfig(t, dir, true)
	p = startDaemon(t, dir, writeConfig(t, dir, text))
	if _, ok := radclient(t, addr, "alice", pw["alice"]); !ok {
		t.Fatal("PAP login failed")
	}
	if !ldapBind(t, ldapURL, "uid=carol,ou=users,dc=example,dc=test", pw["carol"]) {
		t.Fatal("LDAP bind failed")
	}
	if _, err := p.api("PUT", "/v1/users/dave/password", map[string]string{"password": pw["dave"]}, nil); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "carol", "dave"} {
		r := eapolPEAP(t, addr, ca, u, pw[u])
		if !r.ok || !mppeOK(r.out) || !strings.Contains(r.out, "SUCCESS") {
			t.Fatalf("PEAP-MSCHAPv2 accept expected for %s, with MPPE keys OK and SUCCESS:\n%s", u, r.out)
		}
		// The supplicant checked our authenticator response and got the
		// PEAP Result TLV (Windows needs it) before the EAP-Success.
		for _, want := range []string{"EAP-MSCHAPV2: Authentication succeeded", "EAP-TLV: TLV Result - Success"} {
			if !strings.Contains(r.out, want) {
				t.Fatalf("eapol_test output lacks %q:\n%s", want, r.out)
			}
		}
		t.Logf("eapol_test PEAP accept (%s):\n%s", u, lastLines(r.out, 4))
	}
	r := eapolPEAP(t, addr, ca, "alice", "Wrong-Pass-9")
	if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") || !strings.Contains(r.out, "Access-Reject") {
		t.Fatalf("wrong password: Access-Reject with EAP-Failure expected:\n%s", r.out)
	}
	t.Logf("eapol_test PEAP reject (wrong password):\n%s", lastLines(r.out, 3))
	r = eapolPEAP(t, addr, ca, "bob", pw["bob"])
	if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") {
		t.Fatalf("bob has no NT hash: reject expected:\n%s", r.out)
	}
	t.Logf("eapol_test PEAP reject (no NT hash):\n%s", lastLines(r.out, 3))

	// Login events are group-committed: wait for the failure to land
	// rather than read the log the moment the reject arrived.
	var evs []struct{ Outcome, Reason, Method string }
	testutil.Eventually(t, 5*time.Second, func() bool {
		evs = eapEvents(t, p, "alice", 2)
		e := evs[len(evs)-1]
		return e.Outcome == "failure" && e.Reason == "bad_password" && e.Method == "peap/mschapv2"
	}, "alice's PEAP failure recorded last")
	if e := evs[len(evs)-2]; e.Outcome != "success" || e.Method != "peap/mschapv2" {
		t.Fatalf("alice's PEAP event %+v", e)
	}
	bevs := eapEvents(t, p, "bob", 1)
	if e := bevs[len(bevs)-1]; e.Reason != "no_nt_hash" || e.Method != "peap/mschapv2" {
		t.Fatalf("bob's event %+v, want no_nt_hash", e)
	}

	// The NT hashes are nowhere in the clear: data dir, API, LDAP.
	var needles [][]byte
	for _, u := range []string{"alice", "carol", "dave"} {
		h := ntHashOf(pw[u])
		needles = append(needles, h, []byte(hex.EncodeToString(h)), []byte(strings.ToUpper(hex.EncodeToString(h))),
			[]byte(base64.StdEncoding.EncodeToString(h)), []byte(base64.RawStdEncoding.EncodeToString(h)))
	}
	scan := func(what string, b []byte) {
		t.Helper()
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Fatalf("an NT hash appears in the clear in %s", what)
			}
		}
	}
	filepath.WalkDir(filepath.Join(dir, "data"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			scan(path, b)
		}
		return nil
	})
	for _, u := range []string{"alice", "carol", "dave"} {
		var raw json.RawMessage
		if _, err := p.api("GET", "/v1/users/"+u, nil, &raw); err != nil {
			t.Fatal(err)
		}
		scan("GET /v1/users/"+u, raw)
		if bytes.Contains(bytes.ToLower(raw), []byte("nt_hash")) || bytes.Contains(bytes.ToLower(raw), []byte("sealed")) {
			t.Fatalf("the API shows the NT hash field: %s", raw)
		}
	}
	var list json.RawMessage
	p.api("GET", "/v1/users", nil, &list)
	scan("GET /v1/users", list)
	if bytes.Contains(bytes.ToLower(list), []byte("nt_hash")) {
		t.Fatal("the user list shows the NT hash field")
	}
	ldapsearch := testutil.RequireBinary(t, "ldapsearch")
	out, err := exec.Command(ldapsearch, "-x", "-H", ldapURL, "-D", "uid=carol,ou=users,dc=example,dc=test", "-w", pw["carol"],
		"-b", "dc=example,dc=test", "(uid=carol)", "*", "+").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "uid: carol") {
		t.Fatalf("ldapsearch: %v\n%s", err, out)
	}
	scan("LDAP", out)
	if lo := strings.ToLower(string(out)); strings.Contains(lo, "nthash") || strings.Contains(lo, "ntpassword") || strings.Contains(lo, "nt_hash") {
		t.Fatalf("LDAP shows an NT hash attribute:\n%s", out)
	}
	p.stop()

	// Off again: every stored NT hash is dropped at start.
	text, _, _, _ = peapConfig(t, dir, false)
	p = startDaemon(t, dir, writeConfig(t, dir, text))
	if !strings.Contains(p.logs(), "dropped the stored NT hashes") {
		testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(p.logs(), "dropped the stored NT hashes") }, "the drop logged")
	}
	p.stop()
	text, addr, _, ca = peapConfig(t, dir, true)
	p = startDaemon(t, dir, writeConfig(t, dir, text))
	if r := eapolPEAP(t, addr, ca, "dave", pw["dave"]); r.ok {
		t.Fatalf("dave's NT hash survived turning the option off:\n%s", r.out)
	}
	devs := eapEvents(t, p, "dave", 2)
	if e := devs[len(devs)-1]; e.Reason != "no_nt_hash" {
		t.Fatalf("dave after the option was off: %+v", e)
	}
}

// TestTTLSEAPMSCHAPv2WithEapolTest: EAP-TTLS with inner EAP-MSCHAPv2
// (wpa_supplicant phase2="autheap=MSCHAPV2") through the real daemon,
// against the same opt-in NT hash as PEAP: accept with "MPPE keys OK" and
// the authenticator response checked by the supplicant, a wrong password,
// a user without an NT hash (no_nt_hash), and the method refused when
// only "ttls" (inner PAP) is enabled. Events carry eap-ttls/mschapv2.
func TestTTLSEAPMSCHAPv2WithEapolTest(t *testing.T) {
	dir := t.TempDir()
	text, _, _, _ := peapConfig(t, dir, false)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "erin", "email": "erin@example.test"}, nil)
	p.api("POST", "/v1/users", map[string]any{"username": "frank", "email": "frank@example.test"}, nil)
	// frank's password is set while the option is off: no NT hash.
	if _, err := p.api("PUT", "/v1/users/frank/password", map[string]string{"password": "Ttls-Pass-2"}, nil); err != nil {
		t.Fatal(err)
	}
	p.stop()
	text, addr, _, ca := peapConfig(t, dir, true)
	text = strings.Replace(text, `methods = ["peap", "ttls"]`, `methods = ["ttls", "ttls-mschapv2"]`, 1)
	p = startDaemon(t, dir, writeConfig(t, dir, text))
	if _, err := p.api("PUT", "/v1/users/erin/password", map[string]string{"password": "Ttls-Pass-1"}, nil); err != nil {
		t.Fatal(err)
	}
	const autheap = "\tphase2=\"autheap=MSCHAPV2\"\n"
	cases := []struct {
		name, user, pass string
		ok               bool
		reason           string
	}{
		{"accept", "erin", "Ttls-Pass-1", true, ""},
		{"wrong password", "erin", "Wrong-Pass-9", false, "bad_password"},
		{"no NT hash", "frank", "Ttls-Pass-2", false, "no_nt_hash"},
	}
	for _, c := range cases {
		// eapolTest's default phase2 (auth=PAP) is replaced by autheap.
		r := eapolTest(t, addr, ca, c.user, c.pass, autheap)
		if c.ok {
			if !r.ok || !mppeOK(r.out) || !strings.Contains(r.out, "SUCCESS") {
				t.Fatalf("%s: TTLS/EAP-MSCHAPv2 accept expected, with MPPE keys OK:\n%s", c.name, r.out)
			}
			if !strings.Contains(r.out, "EAP-MSCHAPV2: Authentication succeeded") {
				t.Fatalf("%s: the supplicant did not verify our authenticator response:\n%s", c.name, r.out)
			}
			t.Logf("eapol_test TTLS/EAP-MSCHAPv2 accept:\n%s", lastLines(r.out, 4))
		} else if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") || !strings.Contains(r.out, "Access-Reject") {
			t.Fatalf("%s: Access-Reject with EAP-Failure expected:\n%s", c.name, r.out)
		}
		evs := eapEvents(t, p, c.user, 1)
		testutil.Eventually(t, 5*time.Second, func() bool {
			evs = eapEvents(t, p, c.user, 1)
			e := evs[len(evs)-1]
			return e.Method == "eap-ttls/mschapv2" && e.Reason == c.reason && (e.Outcome == "success") == c.ok
		}, fmt.Sprintf("%s: the %s event recorded with method eap-ttls/mschapv2", c.name, c.user))
	}
	// TTLS/PAP still works beside it.
	if r := eapolTest(t, addr, ca, "erin", "Ttls-Pass-1", ""); !r.ok || !mppeOK(r.out) {
		t.Fatalf("TTLS/PAP beside TTLS/EAP-MSCHAPv2 failed:\n%s", r.out)
	}
	p.stop()

	// Only "ttls" (inner PAP): inner EAP-MSCHAPv2 is refused.
	text = strings.Replace(text, `methods = ["ttls", "ttls-mschapv2"]`, `methods = ["ttls"]`, 1)
	p = startDaemon(t, dir, writeConfig(t, dir, text))
	if r := eapolTest(t, addr, ca, "erin", "Ttls-Pass-1", autheap); r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") {
		t.Fatalf("TTLS/EAP-MSCHAPv2 accepted with only \"ttls\" enabled:\n%s", r.out)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		evs := eapEvents(t, p, "erin", 1)
		e := evs[len(evs)-1]
		return e.Reason == "unsupported_method" && e.Outcome == "failure" && e.Method == "eap-ttls/mschapv2"
	}, "the refusal recorded as unsupported_method, method eap-ttls/mschapv2")
}
