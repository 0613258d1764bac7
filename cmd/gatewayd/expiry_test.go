package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// Password expiry through the real daemon and OpenLDAP's clients: with
// [authn] max_password_age the LDAP door renders the password's age for
// the shadow policy of SSSD and nslcd (shadowLastChange, shadowMax), a
// bind with the aged password fails, and ldappasswd without a bind (RFC
// 3062 with userIdentity and the old password) sets a new one, over
// StartTLS.

const (
	expBase    = "dc=example,dc=test"
	expAliceDN = "uid=alice,ou=users," + expBase
	expSvcDN   = "uid=svc,ou=users," + expBase
	expAlicePW = "Alice-expiry-pass-1"
	expNewPW   = "Alice-expiry-pass-2"
	expSvcPW   = "Svc-expiry-pass-123"
	// expMaxAge is short so the test waits little, and long enough for
	// the steps that must happen while a password is fresh (a search as
	// svc, the bind right after the change).
	expMaxAge = 3 * time.Second
)

// ldapTool runs an OpenLDAP client against the test CA, with no ldaprc.
func ldapTool(t *testing.T, ca, name string, args ...string) (string, error) {
	t.Helper()
	bin := testutil.RequireBinary(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "LDAPRC=" + filepath.Join(home, "none"),
		"LDAPTLS_CACERT=" + ca, "LDAPTLS_REQCERT=demand"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ldifValues returns the values of attr in ldapsearch -LLL output.
func ldifValues(out, attr string) []string {
	var vs []string
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok && strings.EqualFold(k, attr) {
			vs = append(vs, strings.TrimSpace(v))
		}
	}
	return vs
}

func TestPasswordExpiryLDAP(t *testing.T) {
	testutil.RequireBinary(t, "ldapsearch")
	testutil.RequireBinary(t, "ldappasswd")
	dir := t.TempDir()
	ca, cert, key := lcPKI(t, dir)
	port := testutil.FreePort(t)
	url := fmt.Sprintf("ldap://127.0.0.1:%d", port)
	text := testConfig(t, dir, "")
	const authnBlock = "[authn]\ncredential_cache_ttl = \"15m\"\n"
	const ldapBlock = "[ldap]\nlisten = \"\"\n"
	if !strings.Contains(text, authnBlock) || !strings.Contains(text, ldapBlock) {
		t.Fatal("testConfig changed: no [authn] or [ldap] block to replace")
	}
	text = strings.Replace(text, authnBlock, authnBlock+fmt.Sprintf("max_password_age = %q\n", expMaxAge.String()), 1)
	// StartTLS only: no cleartext password, loopback or not.
	text = strings.Replace(text, ldapBlock, fmt.Sprintf(`[ldap]
listen = "127.0.0.1:%d"
base_dn = %q
cert_file = %q
key_file = %q
exempt_loopback = false
`, port, expBase, cert, key), 1)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	must := func(method, path string, body any) {
		t.Helper()
		if _, err := p.api(method, path, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	type userView struct {
		PasswordStatus    string     `json:"password_status"`
		PasswordVersion   uint64     `json:"password_version"`
		PasswordChangedAt *time.Time `json:"password_changed_at"`
		PasswordExpiresAt *time.Time `json:"password_expires_at"`
	}
	getAlice := func() userView {
		t.Helper()
		var u userView
		if _, err := p.api("GET", "/v1/users/alice", nil, &u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	must("POST", "/v1/users", map[string]any{"username": "svc", "email": "svc@example.test", "service_account": true})
	must("PUT", "/v1/users/svc/password", map[string]string{"password": expSvcPW})
	must("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test", "first_name": "Alice", "last_name": "Expiry"})
	must("PUT", "/v1/users/alice/password", map[string]string{"password": expAlicePW})
	before := getAlice()
	if before.PasswordChangedAt == nil || before.PasswordExpiresAt == nil || before.PasswordStatus != "active" {
		t.Fatalf("alice after her password was set: %+v", before)
	}
	wantDay := strconv.FormatInt(before.PasswordChangedAt.Unix()/86400, 10)
	bindAs := func(dn, pw string, attrs ...string) (string, error) {
		return ldapTool(t, ca, "ldapsearch", append([]string{"-x", "-ZZ", "-H", url, "-D", dn, "-w", pw,
			"-b", expAliceDN, "-s", "base", "-LLL", "(objectClass=*)"}, attrs...)...)
	}

	// What SSSD (ldap_pwd_policy = shadow) and nslcd read, as svc sees it
	// (svc's own password ages too: this runs while it is fresh).
	out, err := bindAs(expSvcDN, expSvcPW, "objectClass", "shadowLastChange", "shadowMax", "shadowExpire", "pwdChangedTime")
	if err != nil {
		t.Fatalf("ldapsearch as svc: %v\n%s", err, out)
	}
	if got := ldifValues(out, "shadowLastChange"); len(got) != 1 || got[0] != wantDay {
		t.Errorf("shadowLastChange %q, want %s\n%s", got, wantDay, out)
	}
	if got := ldifValues(out, "shadowMax"); len(got) != 1 || got[0] != "1" { // 3 s, rounded up to a day
		t.Errorf("shadowMax %q, want 1\n%s", got, out)
	}
	if got := ldifValues(out, "objectClass"); !containsFold(got, "shadowAccount") {
		t.Errorf("objectClass %q lacks shadowAccount", got)
	}
	if got := ldifValues(out, "shadowExpire"); len(got) != 0 {
		t.Errorf("shadowExpire %q on an active user", got)
	}
	if got := ldifValues(out, "pwdChangedTime"); len(got) != 1 || got[0] != before.PasswordChangedAt.UTC().Format("20060102150405Z") {
		t.Errorf("pwdChangedTime %q, changed at %s", got, before.PasswordChangedAt)
	}

	// Past the age the password no longer binds, and authn records that.
	time.Sleep(time.Until(*before.PasswordExpiresAt) + 20*time.Millisecond)
	out, err = bindAs(expAliceDN, expAlicePW)
	if err == nil || !strings.Contains(out, "Invalid credentials") {
		t.Fatalf("bind with the expired password: %v\n%s", err, out)
	}
	if u := getAlice(); u.PasswordStatus != "expired" {
		t.Fatalf("after the refused bind: password_status %q", u.PasswordStatus)
	}

	// ldappasswd without -D/-w: an anonymous session, the user named in
	// the request, the old password as proof. In the clear it is refused.
	out, err = ldapTool(t, ca, "ldappasswd", "-x", "-H", url, "-a", expAlicePW, "-s", expNewPW, expAliceDN)
	if err == nil || !strings.Contains(out, "Confidentiality required") {
		t.Fatalf("ldappasswd in the clear: %v\n%s", err, out)
	}
	out, err = ldapTool(t, ca, "ldappasswd", "-x", "-ZZ", "-H", url, "-a", "not-the-password", "-s", expNewPW, expAliceDN)
	if err == nil || !strings.Contains(out, "Invalid credentials") {
		t.Fatalf("ldappasswd with a wrong old password: %v\n%s", err, out)
	}
	out, err = ldapTool(t, ca, "ldappasswd", "-x", "-ZZ", "-H", url, "-a", expAlicePW, "-s", expNewPW, expAliceDN)
	if err != nil {
		t.Fatalf("ldappasswd -ZZ -a OLD -s NEW (unbound): %v\n%s", err, out)
	}
	// The new password binds (alice reads her own entry: no disabled
	// marker, the new change day), the old one does not.
	out, err = bindAs(expAliceDN, expNewPW, "shadowLastChange", "shadowMax", "shadowExpire", "nsAccountLock")
	if err != nil {
		t.Fatalf("bind with the new password: %v\n%s", err, out)
	}
	after := getAlice()
	if after.PasswordStatus != "active" || after.PasswordVersion != before.PasswordVersion+1 {
		t.Errorf("after the change: password_status %q version %d (was %d)", after.PasswordStatus, after.PasswordVersion, before.PasswordVersion)
	}
	if got := ldifValues(out, "shadowLastChange"); len(got) != 1 || got[0] != strconv.FormatInt(after.PasswordChangedAt.Unix()/86400, 10) {
		t.Errorf("shadowLastChange after the change %q\n%s", got, out)
	}
	if got := append(ldifValues(out, "shadowExpire"), ldifValues(out, "nsAccountLock")...); len(got) != 0 {
		t.Errorf("disabled markers after the change: %q", got)
	}
	if out, err := bindAs(expAliceDN, expAlicePW); err == nil || !strings.Contains(out, "Invalid credentials") {
		t.Errorf("the old password still binds: %v\n%s", err, out)
	}
}

func containsFold(vs []string, s string) bool {
	for _, v := range vs {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
