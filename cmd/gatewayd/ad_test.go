package main

// Delegated authentication to Active Directory (SPEC 2.4, 2.5, 6.1)
// through the real doors of the real daemon, against a real Samba AD DC.
//
// The DC is started by scripts/samba-ad.sh in its own network namespace
// (NETNS=1), so its fixed ports (389, 636, 88, 445) never collide with
// another DC on this machine (another package's tests, a developer's). The
// test reaches it through TCP proxies it runs on 127.0.0.1 in the host's
// namespace, whose upstream sockets are opened inside the DC's namespace
// (setns on a locked thread). The proxies double as the failure switches:
// a proxy that is down refuses connections, one that hangs accepts and
// forwards nothing. Everything stays on loopback.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	binenc "encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	ldap "github.com/go-ldap/ldap/v3"
	"golang.org/x/sys/unix"

	gwadmin "github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

const sambaAdminPass = "Admin-Passw0rd!"

// sambaDC is a running DC started by scripts/samba-ad.sh.
type sambaDC struct {
	dir, pid, netns, ca, realm, base string
	caPool                           *x509.CertPool
}

// startSamba provisions (once per DIR; about 8 s) and starts the DC
// (about 2 s) and stops it when t ends. Outside CI, a machine where it
// cannot run (not root, no unshare) skips; in CI that fails.
func startSamba(t *testing.T) *sambaDC {
	t.Helper()
	testutil.RequireRoot(t, "the Samba AD DC (network namespace, samba itself)")
	testutil.RequireBinary(t, "unshare")
	script, err := filepath.Abs("../../scripts/samba-ad.sh")
	if err != nil {
		t.Fatal(err)
	}
	// Each test binary gets its own DC in its own directory and network
	// namespace, cloned from a template provisioned once per machine.
	dir, err := os.MkdirTemp("", "gatewayd-samba-ad-run-")
	if err != nil {
		t.Fatal(err)
	}
	template := filepath.Join(os.TempDir(), "gatewayd-samba-ad-template")
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "NETNS=1", "SAMBA_MODEL=single", "SAMBA_MAX_RUNTIME=3600", "SAMBA_TEMPLATE="+template)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		t.Logf("samba-ad.sh %s: %s", strings.Join(args, " "), strings.TrimSpace(stderr.String()))
		return stdout.String(), err
	}
	start := time.Now()
	t.Cleanup(func() {
		run("stop", dir)
		os.RemoveAll(dir)
		os.Remove(dir + ".lock")
	})
	out, err := run("start", dir)
	if err != nil {
		t.Fatalf("starting Samba: %v", err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	s := &sambaDC{dir: dir, pid: kv["SAMBA_PID"], netns: kv["SAMBA_NETNS"], ca: kv["SAMBA_CA"], realm: kv["SAMBA_REALM"], base: kv["SAMBA_BASE_DN"]}
	if s.netns == "" || s.ca == "" {
		t.Fatalf("samba-ad.sh printed no namespace or CA:\n%s", out)
	}
	pemBytes, err := os.ReadFile(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	s.caPool = x509.NewCertPool()
	s.caPool.AppendCertsFromPEM(pemBytes)
	t.Logf("Samba AD DC pid %s ready in %v", s.pid, time.Since(start).Round(time.Millisecond))
	return s
}

// dialNetns opens a TCP connection from inside the network namespace ns:
// the socket is created on a thread that has joined ns and stays there.
func dialNetns(ns, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open(ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, timeout)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and ends with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// tcpProxy forwards 127.0.0.1:port (host namespace) to the DC.
type tcpProxy struct {
	t    *testing.T
	addr string
	dial func() (net.Conn, error)
	hung atomic.Bool

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, dial func() (net.Conn, error)) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, addr: l.Addr().String(), dial: dial, conns: map[net.Conn]bool{}}
	p.serve(l)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.track(c)
			if p.hung.Load() {
				continue // accepted, never answered
			}
			go func() {
				up, err := p.dial()
				if err != nil {
					c.Close()
					return
				}
				p.track(up)
				go p.pipe(up, c)
				p.pipe(c, up)
			}()
		}
	}()
}

func (p *tcpProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = true
	p.mu.Unlock()
}

// pipe copies src to dst, dropping everything while the proxy hangs.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.hung.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// down refuses new connections and drops the open ones (a DC that died).
func (p *tcpProxy) down() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	conns := p.conns
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// hang keeps every connection open and answers nothing (a hung DC).
func (p *tcpProxy) hang() { p.hung.Store(true) }

// up serves again on the same address.
func (p *tcpProxy) up() {
	p.hung.Store(false)
	p.mu.Lock()
	listening := p.l != nil
	p.mu.Unlock()
	if listening {
		return
	}
	var l net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if l, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(l)
}

// adAdmin binds as Administrator over LDAPS inside the DC's namespace.
func (s *sambaDC) adAdmin(t *testing.T) *ldap.Conn {
	t.Helper()
	raw, err := dialNetns(s.netns, "127.0.0.1:636", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{RootCAs: s.caPool, ServerName: "127.0.0.1"})
	l := ldap.NewConn(tc, true)
	l.Start()
	l.SetTimeout(10 * time.Second)
	if err := l.Bind("Administrator@"+s.realm, sambaAdminPass); err != nil {
		t.Fatalf("admin bind: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func unicodePwd(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binenc.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}

// addADUser creates sam in CN=Users with CN = sAMAccountName. uac 514 is
// a disabled account; mustChange sets pwdLastSet = 0 (bind sub-code 773).
func (s *sambaDC) addADUser(t *testing.T, l *ldap.Conn, sam, pw string, uac int, mustChange bool) {
	t.Helper()
	dn := fmt.Sprintf("CN=%s,CN=Users,%s", sam, s.base)
	dom := strings.ToLower(s.realm)
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{sam})
	add.Attribute("userPrincipalName", []string{sam + "@" + dom})
	add.Attribute("mail", []string{sam + "@" + dom})
	add.Attribute("givenName", []string{sam})
	add.Attribute("sn", []string{"Test"})
	add.Attribute("unicodePwd", []string{unicodePwd(pw)})
	add.Attribute("userAccountControl", []string{fmt.Sprint(uac)})
	if err := l.Add(add); err != nil {
		t.Fatalf("creating %s in AD: %v", sam, err)
	}
	t.Cleanup(func() { l.Del(ldap.NewDelRequest(dn, nil)) })
	if mustChange {
		m := ldap.NewModifyRequest(dn, nil)
		m.Replace("pwdLastSet", []string{"0"})
		if err := l.Modify(m); err != nil {
			t.Fatalf("pwdLastSet=0 for %s: %v", sam, err)
		}
	}
}

// setADPassword is an administrator's reset in AD.
func (s *sambaDC) setADPassword(t *testing.T, l *ldap.Conn, sam, pw string) {
	t.Helper()
	m := ldap.NewModifyRequest(fmt.Sprintf("CN=%s,CN=Users,%s", sam, s.base), nil)
	m.Replace("unicodePwd", []string{unicodePwd(pw)})
	if err := l.Modify(m); err != nil {
		t.Fatalf("AD password reset for %s: %v", sam, err)
	}
}

// adBlock is an [[ad]] block for urls; extra lines are appended.
func adBlock(s *sambaDC, caFile string, urls []string, extra string) string {
	q := make([]string, len(urls))
	for i, u := range urls {
		q[i] = fmt.Sprintf("%q", u)
	}
	return fmt.Sprintf(`
[[ad]]
name = "corp"
domain = %q
urls = [%s]
ca_file = %q
probe_interval = "200ms"
%s`, s.realm, strings.Join(q, ", "), caFile, extra)
}

// adDoorsConfig: RADIUS and LDAP doors plus extra.
func adDoorsConfig(t *testing.T, dir, extra string) (text, radiusAddr, ldapURL string) {
	t.Helper()
	text, radiusAddr = doorsConfig(t, dir)
	ldapAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	text = strings.Replace(text, "[ldap]\nlisten = \"\"\n", fmt.Sprintf("[ldap]\nlisten = %q\nbase_dn = \"dc=example,dc=test\"\n", ldapAddr), 1)
	return text + extra, radiusAddr, "ldap://" + ldapAddr
}

// delegate creates the gateway user for an AD account with both
// authorities "ad" (through the API, or the CLI when viaCLI).
func delegate(t *testing.T, p *proc, sam string, viaCLI bool) {
	t.Helper()
	if _, err := p.api("POST", "/v1/users", map[string]any{"username": sam, "email": sam + "@example.test",
		"first_name": sam, "last_name": "Test"}, nil); err != nil {
		t.Fatal(err)
	}
	if viaCLI {
		if out, err := p.cli("", "user", "update", sam, "-password-authority", "ad", "-delegated-authority", "ad"); err != nil {
			t.Fatalf("CLI user update: %v\n%s", err, out)
		}
	} else if _, err := p.api("PATCH", "/v1/users/"+sam, map[string]string{"password_authority": "ad", "delegated_authority": "ad"}, nil); err != nil {
		t.Fatal(err)
	}
	var u struct {
		PasswordAuthority  string `json:"password_authority"`
		DelegatedAuthority string `json:"delegated_authority"`
	}
	p.api("GET", "/v1/users/"+sam, nil, &u)
	if u.PasswordAuthority != "ad" || u.DelegatedAuthority != "ad" {
		t.Fatalf("authorities of %s: %+v", sam, u)
	}
}

func passwordVersion(t *testing.T, p *proc, user string) uint64 {
	t.Helper()
	var u struct {
		PasswordVersion uint64 `json:"password_version"`
	}
	if _, err := p.api("GET", "/v1/users/"+user, nil, &u); err != nil {
		t.Fatal(err)
	}
	return u.PasswordVersion
}

// timedRadclient is radclient with its wall time.
func timedRadclient(t *testing.T, addr, user, pw string) (bool, time.Duration) {
	t.Helper()
	start := time.Now()
	_, ok := radclient(t, addr, user, pw)
	return ok, time.Since(start)
}

func healthz(t *testing.T, p *proc) (int, gwadmin.HealthReport) {
	t.Helper()
	resp, err := http.Get(p.admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body gwadmin.HealthReport
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/healthz body: %v", err)
	}
	return resp.StatusCode, body
}

// healthOK says whether /healthz reports every check ok.
func healthOK(t *testing.T, p *proc) bool {
	c, h := healthz(t, p)
	return c == http.StatusOK && h.Status == gwadmin.HealthOK
}

func lastEvent(t *testing.T, p *proc, user, typ string, n int) event {
	t.Helper()
	evs := p.loginEvents(t, user, typ, n)
	return evs[n-1]
}

// TestAD runs every Samba-backed check on one DC.
func TestAD(t *testing.T) {
	testutil.RequireBinary(t, "radclient")
	testutil.RequireBinary(t, "ldapsearch")
	s := startSamba(t)
	admin := s.adAdmin(t)
	sfx := fmt.Sprintf("%04x", time.Now().UnixNano()&0xffff)
	dialLDAPS := func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) }
	dialLDAP := func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:389", 2*time.Second) }

	t.Run("DoorsReasonsAndAuthority", func(t *testing.T) { testADDoors(t, s, admin, sfx, dialLDAPS, dialLDAP) })
	t.Run("DeadFirstDC", func(t *testing.T) { testADDeadFirstDC(t, s, admin, sfx, dialLDAPS) })
	t.Run("Offline", func(t *testing.T) { testADOffline(t, s, admin, sfx, dialLDAPS) })
	t.Run("PasswordChangedInAD", func(t *testing.T) { testADPasswordChange(t, s, admin, sfx, dialLDAPS) })
	t.Run("CertificateVerification", func(t *testing.T) { testADCertificates(t, s, dialLDAPS) })
	t.Run("ServiceAccountByMail", func(t *testing.T) { testADServiceAccount(t, s, admin, sfx, dialLDAPS) })
	t.Run("EAPTTLSTakeover", func(t *testing.T) { testADEAPTTLSTakeover(t, s, admin, sfx, dialLDAPS) })
}

// testADServiceAccount: with a service account and username_attribute =
// "mail", the user's DN is found by a search and the bind is as the DN.
func testADServiceAccount(t *testing.T, s *sambaDC, admin *ldap.Conn, sfx string, dialLDAPS func() (net.Conn, error)) {
	erin := "gwe" + sfx
	s.addADUser(t, admin, erin, "Erin-AD-Pw1!", 512, false)
	t.Setenv("GW_TEST_AD_BIND_PASSWORD", sambaAdminPass)
	px := newProxy(t, dialLDAPS)
	dir := t.TempDir()
	text, radiusAddr, _ := adDoorsConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr},
		fmt.Sprintf("bind_dn = \"CN=Administrator,CN=Users,%s\"\nbind_password = \"env:GW_TEST_AD_BIND_PASSWORD\"\nusername_attribute = \"mail\"\n", s.base)))
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	delegate(t, p, erin, false)
	ghost := "gwg" + sfx // in the gateway, not in AD
	delegate(t, p, ghost, false)
	if _, ok := radclient(t, radiusAddr, erin, "Erin-AD-Pw1!"); !ok {
		t.Fatal("login through the service account's DN lookup failed")
	}
	if ev := lastEvent(t, p, erin, "radius_auth", 1); ev.Outcome != "success" {
		t.Fatalf("%+v", ev)
	}
	if _, ok := radclient(t, radiusAddr, erin, "Wrong-Pw-1!"); ok {
		t.Fatal("wrong password accepted")
	}
	if _, ok := radclient(t, radiusAddr, ghost, "Ghost-Pw-1!"); ok {
		t.Fatal("a user missing from AD logged in")
	}
	if ev := lastEvent(t, p, ghost, "radius_auth", 1); ev.Reason != "no_such_user" || !strings.Contains(ev.Detail, "mail="+ghost) {
		t.Fatalf("want no_such_user from the search: %+v", ev)
	}
}

// testADDoors: an AD-delegated user logs in over RADIUS (PAP) and LDAP with
// the AD password and fails with a wrong one; a disabled account and a
// must-change account are refused with their reasons; a password set
// through the gateway is refused for password authority ad; StartTLS works.
func testADDoors(t *testing.T, s *sambaDC, admin *ldap.Conn, sfx string, dialLDAPS, dialLDAP func() (net.Conn, error)) {
	alice, dis, chg := "gwa"+sfx, "gwd"+sfx, "gwm"+sfx
	s.addADUser(t, admin, alice, "Alice-AD-Pw1!", 512, false)
	s.addADUser(t, admin, dis, "Dis-AD-Pw1!", 514, false)
	s.addADUser(t, admin, chg, "Chg-AD-Pw1!", 512, true)

	px := newProxy(t, dialLDAPS)
	pxPlain := newProxy(t, dialLDAP)
	dir := t.TempDir()
	// Two URLs to the same DC: LDAPS, and plain LDAP upgraded with StartTLS
	// (start_tls applies to ldap:// URLs only).
	text, radiusAddr, ldapURL := adDoorsConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr, "ldap://" + pxPlain.addr}, "start_tls = true\n"))
	p := startDaemon(t, dir, writeConfig(t, dir, text))

	delegate(t, p, alice, false)
	delegate(t, p, dis, true)
	delegate(t, p, chg, false)

	// SPEC 2.4: the password of an AD-authority user cannot be set here.
	code, err := p.api("PUT", "/v1/users/"+alice+"/password", map[string]string{"password": "Gateway-Pw-1"}, nil)
	if code != http.StatusConflict || err == nil || !strings.Contains(err.Error(), "Active Directory") {
		t.Fatalf("setting an AD-authority password: %d %v", code, err)
	}
	if out, err := p.cli("Gateway-Pw-1\n", "user", "passwd", alice); err == nil || !strings.Contains(out, "Active Directory") {
		t.Fatalf("CLI passwd for an AD-authority user must fail clearly: %v\n%s", err, out)
	}

	if ok, took := timedRadclient(t, radiusAddr, alice, "Alice-AD-Pw1!"); !ok {
		t.Fatal("RADIUS login with the AD password was rejected")
	} else {
		t.Logf("first delegated RADIUS login: %v", took)
	}
	if _, ok := radclient(t, radiusAddr, alice, "Wrong-Pw-1!"); ok {
		t.Fatal("RADIUS login with a wrong password was accepted")
	}
	dn := func(u string) string { return "uid=" + u + ",ou=users,dc=example,dc=test" }
	if !ldapBind(t, ldapURL, dn(alice), "Alice-AD-Pw1!") {
		t.Fatal("LDAP bind with the AD password failed")
	}
	if ldapBind(t, ldapURL, dn(alice), "Wrong-Pw-1!") {
		t.Fatal("LDAP bind with a wrong password succeeded")
	}
	evs := p.loginEvents(t, alice, "radius_auth", 2)
	if evs[0].Outcome != "success" || !strings.Contains(evs[0].Detail, "ad corp via ldaps://"+px.addr) {
		t.Fatalf("success event: %+v", evs[0])
	}
	if evs[1].Outcome != "failure" || evs[1].Reason != "bad_password" || !strings.Contains(evs[1].Detail, "data 52e") {
		t.Fatalf("failure event: %+v", evs[1])
	}
	lev := p.loginEvents(t, alice, "ldap_bind", 2)
	if lev[0].Outcome != "success" || lev[1].Reason != "bad_password" {
		t.Fatalf("ldap events: %+v", lev)
	}

	if _, ok := radclient(t, radiusAddr, dis, "Dis-AD-Pw1!"); ok {
		t.Fatal("a disabled AD account logged in")
	}
	if ev := lastEvent(t, p, dis, "radius_auth", 1); ev.Reason != "disabled" || !strings.Contains(ev.Detail, "data 533") {
		t.Fatalf("disabled: %+v", ev)
	}
	if ldapBind(t, ldapURL, dn(chg), "Chg-AD-Pw1!") {
		t.Fatal("a must-change AD account logged in")
	}
	if ev := lastEvent(t, p, chg, "ldap_bind", 1); ev.Reason != "must_change" || !strings.Contains(ev.Detail, "data 773") {
		t.Fatalf("must change: %+v", ev)
	}

	// The user's status says delegated; the version moved with the stored hash.
	var u struct {
		PasswordStatus  string `json:"password_status"`
		PasswordVersion uint64 `json:"password_version"`
	}
	p.api("GET", "/v1/users/"+alice, nil, &u)
	if u.PasswordStatus != "delegated" || u.PasswordVersion != 1 {
		t.Fatalf("after AD logins: %+v", u)
	}

	// StartTLS: take the LDAPS URL away; logins continue on ldap:// + StartTLS.
	px.down()
	if ok, took := timedRadclient(t, radiusAddr, alice, "Alice-AD-Pw1!"); !ok || took > time.Second {
		t.Fatalf("login over StartTLS: ok=%v in %v", ok, took)
	}
	if ev := lastEvent(t, p, alice, "radius_auth", 3); !strings.Contains(ev.Detail, "via ldap://"+pxPlain.addr) {
		t.Fatalf("want the StartTLS DC in the event: %+v", ev)
	}

	// One DC of two down: still serving, so 200, but degraded.
	code, h := healthz(t, p)
	if ad := h.Checks["ad:corp"]; code != http.StatusOK || h.Status != gwadmin.HealthDegraded || ad.Status != gwadmin.HealthDegraded ||
		!strings.Contains(ad.Message, "ldaps://"+px.addr+" down since") || strings.Contains(ad.Message, pxPlain.addr) {
		t.Fatalf("healthz with one DC down: %d %+v", code, h)
	}
	px.up()
	testutil.Eventually(t, 5*time.Second, func() bool { return healthOK(t, p) }, "the DC back in /healthz")

	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"gatewayd_ad_request_duration_seconds_bucket", "gatewayd_ad_errors_total", "gatewayd_ad_pool_connections",
		"gatewayd_ad_failovers_total", "gatewayd_ad_dc_up", `gatewayd_ad_validations_total{domain="corp",result="disabled"} 1`} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// testADDeadFirstDC: with a dead first DC, no login takes more than a
// second: a closed port and a listener that never answers, configured from
// the start; and a DC that dies (hangs, then refuses) while in use.
func testADDeadFirstDC(t *testing.T, s *sambaDC, admin *ldap.Conn, sfx string, dialLDAPS func() (net.Conn, error)) {
	bob := "gwb" + sfx
	s.addADUser(t, admin, bob, "Bob-AD-Pw1!", 512, false)
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	defer func() {
		hung.Close()
		heldMu.Lock()
		for _, c := range held {
			c.Close()
		}
		heldMu.Unlock()
	}()
	closed := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))

	for _, tc := range []struct{ name, url string }{{"refused", "ldaps://" + closed}, {"hung", "ldaps://" + hung.Addr().String()}} {
		t.Run(tc.name, func(t *testing.T) {
			px := newProxy(t, dialLDAPS)
			dir := t.TempDir()
			// Default timeouts: this is what an administrator gets.
			text, radiusAddr, ldapURL := adDoorsConfig(t, dir, adBlock(s, s.ca, []string{tc.url, "ldaps://" + px.addr}, ""))
			p := startDaemon(t, dir, writeConfig(t, dir, text))
			delegate(t, p, bob, false)
			for i := 0; i < 4; i++ {
				ok, took := timedRadclient(t, radiusAddr, bob, "Bob-AD-Pw1!")
				if !ok || took > time.Second {
					t.Fatalf("login %d with a %s first DC: ok=%v in %v", i, tc.name, ok, took)
				}
				start := time.Now()
				if !ldapBind(t, ldapURL, "uid="+bob+",ou=users,dc=example,dc=test", "Bob-AD-Pw1!") || time.Since(start) > time.Second {
					t.Fatalf("LDAP login %d with a %s first DC: %v", i, tc.name, time.Since(start))
				}
			}
			code, h := healthz(t, p)
			if ad := h.Checks["ad:corp"]; code != http.StatusOK || ad.Status != gwadmin.HealthDegraded || !strings.Contains(ad.Message, tc.url+" down since") {
				t.Fatalf("healthz: %d %+v", code, h)
			}
		})
	}

	t.Run("dies-while-in-use", func(t *testing.T) {
		first, second := newProxy(t, dialLDAPS), newProxy(t, dialLDAPS)
		dir := t.TempDir()
		text, radiusAddr, _ := adDoorsConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + first.addr, "ldaps://" + second.addr}, ""))
		p := startDaemon(t, dir, writeConfig(t, dir, text))
		delegate(t, p, bob, false)
		n := 0
		login := func(what string) {
			t.Helper()
			ok, took := timedRadclient(t, radiusAddr, bob, "Bob-AD-Pw1!")
			n++
			if !ok || took > time.Second {
				t.Fatalf("%s: ok=%v in %v", what, ok, took)
			}
			t.Logf("%s: %v", what, took.Round(time.Millisecond))
		}
		login("both DCs up") // leaves a pooled connection on the first DC
		if ev := lastEvent(t, p, bob, "radius_auth", n); !strings.Contains(ev.Detail, "via ldaps://"+first.addr) {
			t.Fatalf("want the first DC: %+v", ev)
		}
		first.hang()
		login("first DC hung")
		if ev := lastEvent(t, p, bob, "radius_auth", n); !strings.Contains(ev.Detail, "via ldaps://"+second.addr) ||
			!strings.Contains(ev.Detail, "after ldaps://"+first.addr) {
			t.Fatalf("want a failover to the second DC in the event: %+v", ev)
		}
		login("first DC marked down")
		first.up()
		testutil.Eventually(t, 5*time.Second, func() bool { return healthOK(t, p) }, "first DC re-probed up")
		login("first DC back")
		if ev := lastEvent(t, p, bob, "radius_auth", n); !strings.Contains(ev.Detail, "via ldaps://"+first.addr) {
			t.Fatalf("want the first DC again once it is back: %+v", ev)
		}
		first.down()
		login("first DC refusing")
		login("first DC marked down again")
	})
}

// testADOffline: every DC down. With offline_login a user who logged in
// recently gets in and the event says offline; without it the login fails
// with ad_unreachable.
func testADOffline(t *testing.T, s *sambaDC, admin *ldap.Conn, sfx string, dialLDAPS func() (net.Conn, error)) {
	carl := "gwo" + sfx
	s.addADUser(t, admin, carl, "Carl-AD-Pw1!", 512, false)
	px := newProxy(t, dialLDAPS)
	dir := t.TempDir()
	text, radiusAddr, ldapURL := adDoorsConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr}, "offline_login = \"1h\"\n"))
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	delegate(t, p, carl, false)
	if _, ok := radclient(t, radiusAddr, carl, "Carl-AD-Pw1!"); !ok {
		t.Fatal("online login failed")
	}
	px.down()
	ok, took := timedRadclient(t, radiusAddr, carl, "Carl-AD-Pw1!")
	if !ok || took > time.Second {
		t.Fatalf("offline login: ok=%v in %v", ok, took)
	}
	if ev := lastEvent(t, p, carl, "radius_auth", 2); ev.Outcome != "success" || !strings.Contains(ev.Detail, "offline login") {
		t.Fatalf("the event must say offline: %+v", ev)
	}
	if !ldapBind(t, ldapURL, "uid="+carl+",ou=users,dc=example,dc=test", "Carl-AD-Pw1!") {
		t.Fatal("offline LDAP login failed")
	}
	if _, ok := radclient(t, radiusAddr, carl, "Wrong-Pw-1!"); ok {
		t.Fatal("a wrong password was accepted offline")
	}
	if ev := lastEvent(t, p, carl, "radius_auth", 3); ev.Reason != "bad_password" || !strings.Contains(ev.Detail, "offline") {
		t.Fatalf("offline wrong password: %+v", ev)
	}
	p.stop()

	// Same state, offline_login off.
	os.WriteFile(cfgPath, []byte(strings.Replace(text, "offline_login = \"1h\"\n", "", 1)), 0o600)
	p = startDaemon(t, dir, cfgPath)
	if _, ok := radclient(t, radiusAddr, carl, "Carl-AD-Pw1!"); ok {
		t.Fatal("accepted with every DC down and offline_login off")
	}
	if ev := lastEvent(t, p, carl, "radius_auth", 4); ev.Reason != "ad_unreachable" {
		t.Fatalf("want ad_unreachable: %+v", ev)
	}
}

// testADPasswordChange: a password changed in AD works at the next login
// and bumps the password version (which the sync engine pushes: the user
// is bound to a fake Entra tenant); the old password fails at once, the
// credential cache notwithstanding.
func testADPasswordChange(t *testing.T, s *sambaDC, admin *ldap.Conn, sfx string, dialLDAPS func() (net.Conn, error)) {
	dora := "gwc" + sfx
	s.addADUser(t, admin, dora, "Dora-AD-Pw1!", 512, false)
	fg := fakegraph.New()
	defer fg.Close()
	px := newProxy(t, dialLDAPS)
	dir := t.TempDir()
	text, radiusAddr, ldapURL := takeoverConfig(t, dir, fg)
	text += adBlock(s, s.ca, []string{"ldaps://" + px.addr}, "")
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	delegate(t, p, dora, false)
	upn := dora + "@example.test"
	if out, err := p.cli("", "bind", "m365", "-user", dora); err != nil {
		t.Fatal(err, out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { _, ok := fg.User(upn); return ok }, "account created")

	if _, ok := radclient(t, radiusAddr, dora, "Dora-AD-Pw1!"); !ok {
		t.Fatal("login with the first AD password failed")
	}
	waitPatches(t, fg, upn, 1)
	if !fg.PasswordMatches(upn, "Dora-AD-Pw1!") {
		t.Fatal("takeover did not push the AD password")
	}
	v1 := passwordVersion(t, p, dora)
	if _, ok := radclient(t, radiusAddr, dora, "Dora-AD-Pw1!"); !ok { // a repeat: no bump, no push
		t.Fatal("repeat login failed")
	}
	if v := passwordVersion(t, p, dora); v != v1 {
		t.Fatalf("an unchanged AD password bumped the version %d -> %d", v1, v)
	}

	s.setADPassword(t, admin, dora, "Dora-AD-Pw2!")
	if _, ok := radclient(t, radiusAddr, dora, "Dora-AD-Pw2!"); !ok {
		t.Fatal("the new AD password does not work at the next login")
	}
	if v := passwordVersion(t, p, dora); v != v1+1 {
		t.Fatalf("password version %d after the AD change, want %d", v, v1+1)
	}
	if _, ok := radclient(t, radiusAddr, dora, "Dora-AD-Pw1!"); ok {
		t.Fatal("the old AD password still works over RADIUS")
	}
	if ldapBind(t, ldapURL, "uid="+dora+",ou=users,dc=example,dc=test", "Dora-AD-Pw1!") {
		t.Fatal("the old AD password still works over LDAP")
	}
	if ev := lastEvent(t, p, dora, "radius_auth", 4); ev.Reason != "bad_password" {
		t.Fatalf("old password: %+v", ev)
	}
	waitPatches(t, fg, upn, 2)
	if !fg.PasswordMatches(upn, "Dora-AD-Pw2!") {
		t.Fatal("the changed AD password did not reach Entra")
	}
}

// testADCertificates: LDAPS verified against ca_file works (the other
// subtests); a wrong CA, or an unreadable one, fails check-config and the
// start with a clear message.
func testADCertificates(t *testing.T, s *sambaDC, dialLDAPS func() (net.Conn, error)) {
	px := newProxy(t, dialLDAPS)
	dir := t.TempDir()
	wrongCA := filepath.Join(dir, "wrong-ca.pem")
	writeSelfSignedCA(t, wrongCA)

	good := testConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr}, ""))
	out, err := runBinary("check-config", "-no-bind-check", "-config", writeConfig(t, dir, good))
	if err != nil {
		t.Fatalf("check-config with the right CA: %v\n%s", err, out)
	}

	bad := testConfig(t, dir, adBlock(s, wrongCA, []string{"ldaps://" + px.addr}, ""))
	cfgPath := writeConfig(t, dir, bad)
	out, err = runBinary("check-config", "-no-bind-check", "-config", cfgPath)
	line := 1 + strings.Count(bad[:strings.Index(bad, "ca_file =")], "\n")
	if err == nil || !strings.Contains(out, "certificate") || !strings.Contains(out, "ca_file") ||
		!strings.Contains(out, fmt.Sprintf("%s:%d", cfgPath, line)) {
		t.Fatalf("check-config with a wrong CA must fail at ca_file (line %d): %v\n%s", line, err, out)
	}
	cmd := exec.Command(binary, "serve", "-config", cfgPath)
	serveOut, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(serveOut), "certificate") {
		t.Fatalf("serve with a wrong CA must refuse to start: %v\n%s", err, serveOut)
	}

	missing := testConfig(t, dir, adBlock(s, filepath.Join(dir, "no-such-ca.pem"), []string{"ldaps://" + px.addr}, ""))
	out, err = runBinary("check-config", "-no-bind-check", "-config", writeConfig(t, dir, missing))
	if err == nil || !strings.Contains(out, "ca_file") || !strings.Contains(out, "cannot read") {
		t.Fatalf("check-config with an unreadable CA: %v\n%s", err, out)
	}
}

func writeSelfSignedCA(t *testing.T, path string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not the AD CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestADConfigErrors: [[ad]] mistakes are caught by check-config with
// file:line, without any DC.
func TestADConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-a-cert.pem")
	os.WriteFile(notPEM, []byte("hello\n"), 0o644)
	for _, tc := range []struct{ name, block, want string }{
		{"plain-ldap", "name = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"ldap://127.0.0.1:1\"]\n", "allow_insecure"},
		{"unreadable-ca", fmt.Sprintf("name = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"ldaps://127.0.0.1:1\"]\nca_file = %q\n", filepath.Join(dir, "missing.pem")), "cannot read"},
		{"not-a-cert", fmt.Sprintf("name = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"ldaps://127.0.0.1:1\"]\nca_file = %q\n", notPEM), "no PEM certificate"},
		{"bad-scheme", "name = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"http://127.0.0.1:1\"]\n", "ldaps:// or ldap://"},
		{"mail-needs-bind-dn", "name = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"ldaps://127.0.0.1:1\"]\nusername_attribute = \"mail\"\n", "bind_dn"},
		{"literal-secret", "name = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"ldaps://127.0.0.1:1\"]\nbind_dn = \"CN=svc,DC=example,DC=test\"\nbind_password = \"hunter2\"\n", "references"},
		{"offline-needs-hash", "name = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"ldaps://127.0.0.1:1\"]\nstore_hash = false\noffline_login = \"1h\"\n", "store_hash"},
		{"no-domain", "name = \"corp\"\nurls = [\"ldaps://127.0.0.1:1\"]\n", "AD DNS domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := testConfig(t, dir, "\n[[ad]]\n"+tc.block)
			path := writeConfig(t, dir, text)
			out, err := runBinary("check-config", "-no-bind-check", "-config", path)
			if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, path+":") {
				t.Fatalf("want a file:line error mentioning %q: %v\n%s", tc.want, err, out)
			}
		})
	}
}
