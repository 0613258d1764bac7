package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// testADEAPTTLSTakeover (a subtest of TestAD, on its DC): EAP-TTLS/PAP
// for a user whose password authority is the Samba DC, bound to an Entra
// directory on the fake Graph. A wrong AD password ends in an
// Access-Reject carrying EAP-Failure and pushes nothing; the AD password
// gives an Access-Accept whose MPPE keys match the supplicant's MSK, and
// that login pushes the AD password to the user's Entra object (issue 12:
// TTLS/PAP is an authn.Login, so delegation and takeover hold for it).
func testADEAPTTLSTakeover(t *testing.T, s *sambaDC, admin *ldap.Conn, sfx string, dialLDAPS func() (net.Conn, error)) {
	const adPass, wrongPass = "Tess-AD-Wifi1!", "Tess-Wrong-Pw1!"
	tess := "gwt" + sfx
	s.addADUser(t, admin, tess, adPass, 512, false)
	fg := fakegraph.New()
	defer fg.Close()
	px := newProxy(t, dialLDAPS)
	dir := t.TempDir()
	text, radiusAddr, _ := takeoverConfig(t, dir, fg)
	ca, cert, key := eapPKI(t, dir, false)
	text += fmt.Sprintf("\n[radius.eap]\ncert_file = %q\nkey_file = %q\n", cert, key)
	text += adBlock(s, s.ca, []string{"ldaps://" + px.addr}, "")
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	delegate(t, p, tess, false)
	upn := tess + "@example.test"
	if out, err := p.cli("", "bind", "m365", "-user", tess); err != nil {
		t.Fatal(err, out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { u, ok := fg.User(upn); return ok && u.AccountEnabled }, "Entra account created")
	entraID := func() string { u, _ := fg.User(upn); return u.ID }()

	// passwordRequests are the requests that carried a password for the
	// user's object, whatever Graph answered.
	passwordRequests := func() []fakegraph.Request {
		var out []fakegraph.Request
		for _, q := range fg.Requests() {
			if q.HadPasswordProfile && strings.Contains(q.Path, entraID) {
				out = append(out, q)
			}
		}
		return out
	}
	if n := len(passwordRequests()); n != 0 {
		t.Fatalf("%d password pushes before any login (the account is created with a random password, not ours)", n)
	}

	// Wrong AD password first, while the gateway holds no hash: AD itself
	// must say no (data 52e), and nothing may be pushed.
	r := eapolTest(t, radiusAddr, ca, tess, wrongPass, "")
	if r.ok || !strings.Contains(r.out, "CTRL-EVENT-EAP-FAILURE") || !strings.Contains(r.out, "Access-Reject") {
		t.Fatalf("wrong AD password: an Access-Reject with EAP-Failure expected:\n%s", r.out)
	}
	t.Logf("eapol_test reject:\n%s", lastLines(r.out, 3))
	if ev := eapEvents(t, p, tess, 1)[0]; ev.Outcome != "failure" || ev.Reason != "bad_password" || ev.Method != "eap-ttls/pap" {
		t.Fatalf("reject event: %+v", ev)
	}
	if ev := lastEvent(t, p, tess, "radius_auth", 1); !strings.Contains(ev.Detail, "data 52e") {
		t.Fatalf("the reject did not come from AD (want its data 52e): %+v", ev)
	}
	if v := passwordVersion(t, p, tess); v != 0 {
		t.Fatalf("a rejected login moved the password version to %d", v)
	}
	// A barrier instead of a wait: authn hands a plaintext to sync before it
	// writes the event seen above, and sync works one user's jobs in order
	// (a later one merges into a pending one). Once a change made after the
	// reject has reached Graph, anything the reject had queued has been
	// pushed too.
	if _, err := p.api("PATCH", "/v1/users/"+tess, map[string]string{"last_name": "After-Reject"}, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { u, _ := fg.User(upn); return u.Surname == "After-Reject" }, "the change after the reject in Entra")
	if q := passwordRequests(); len(q) != 0 {
		t.Fatalf("a rejected login pushed a password: %+v", q)
	}

	// The AD password: Accept, MPPE keys, and one push of that password.
	r = eapolTest(t, radiusAddr, ca, tess, adPass, "")
	if !r.ok || !mppeOK(r.out) || !strings.Contains(r.out, "SUCCESS") {
		t.Fatalf("TTLS/PAP with the AD password: Accept with MPPE keys OK expected:\n%s", r.out)
	}
	t.Logf("eapol_test accept:\n%s", lastLines(r.out, 4))
	evs := eapEvents(t, p, tess, 2)
	if ev := evs[1]; ev.Outcome != "success" || ev.Method != "eap-ttls/pap" {
		t.Fatalf("accept event: %+v", ev)
	}
	if ev := lastEvent(t, p, tess, "radius_auth", 2); !strings.Contains(ev.Detail, "ad corp via ldaps://"+px.addr) {
		t.Fatalf("the accept was not AD's: %+v", ev)
	}
	if ev := lastEvent(t, p, tess, "password_change", 1); ev.Outcome != "success" {
		t.Fatalf("the AD-validated password was not recorded as version 1: %+v", ev)
	}
	waitPatches(t, fg, upn, 1)
	q := passwordRequests()
	if len(q) != 1 {
		t.Fatalf("want exactly one password push, got %d", len(q))
	}
	// The fake logs bodies with the password removed: the push is a PATCH
	// of this user's object whose passwordProfile is the takeover's.
	if q[0].Method != "PATCH" || !strings.HasSuffix(q[0].Path, "/users/"+entraID) || q[0].Status >= 300 ||
		!strings.Contains(q[0].Body, `"forceChangePasswordNextSignIn":false`) ||
		!strings.Contains(q[0].Body, fakegraph.RemovedPassword) || strings.Contains(q[0].Body, adPass) {
		t.Fatalf("the push is not a PATCH of %s with a passwordProfile: %s %s -> %d %s", entraID, q[0].Method, q[0].Path, q[0].Status, q[0].Body)
	}
	if !fg.PasswordMatches(upn, adPass) {
		t.Fatal("the password pushed to Entra is not the AD password the TTLS login used")
	}
}
