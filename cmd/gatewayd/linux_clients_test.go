package main

// Real Linux LDAP consumers against the daemon: SSSD 2.8 and nslcd 0.9 with
// their NSS and PAM modules, driven by getent, id and pamtester (Debian
// packages from scripts/test-deps.sh). Each consumer runs in the
// foreground inside a private mount namespace of its own, where a tmpfs
// covers /run and the test's nsswitch.conf, PAM service, sssd.conf or
// nslcd.conf and SSSD's state directories are bind-mounted from the test's
// temp dir; the clients join that namespace with nsenter. The host's /etc,
// /run and /var/lib/sss are never written (checked at the end).
// GATEWAYD_LINUX_CLIENTS_LOG=1 logs the daemons' output even on success.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

const (
	lcBase     = "dc=example,dc=test"
	lcService  = "gatewayd-test" // the PAM service the tests bring
	lcGroup    = "engineers"     // not "staff": Debian's /etc/group has one
	lcAlicePW  = "Alice-linux-pass-1"
	lcBobPW    = "Bob-linux-pass-12"
	lcSvcPW    = "Svc-linux-pass-123"
	lcDeadline = 30 * time.Second
)

// lcWriteFile writes a file, failing the test on error.
func lcWriteFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// lcPKI writes a throwaway CA and a server certificate for 127.0.0.1 (an
// IP SAN: libldap checks the IP it was given) and returns the CA's,
// certificate's and key's paths.
func lcPKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatewayd linux-clients test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	lcWriteFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), 0o644)
	lcWriteFile(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	lcWriteFile(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})), 0o600)
	return ca, cert, key
}

// lcRequire checks what the Linux-client tests need: root (mount
// namespaces), the tools, and the NSS and PAM modules. Like
// testutil.RequireBinary it skips outside CI and fails in CI.
func lcRequire(t *testing.T, tools []string, modules []string) {
	t.Helper()
	testutil.RequireRoot(t, "the Linux client tests (mount namespaces, bind mounts)")
	for _, b := range append([]string{"unshare", "nsenter", "getent", "id", "pamtester"}, tools...) {
		testutil.RequireBinary(t, b)
	}
	for _, m := range modules {
		found := false
		for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64"} {
			if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
				found = true
				break
			}
		}
		if !found {
			msg := m + " not found: run scripts/test-deps.sh (installs the Debian packages the suite needs)"
			testutil.Unavailable(t, msg)
		}
	}
}

// lcDaemon starts gatewayd with the LDAP door on StartTLS (no cleartext
// binds, loopback or not) and creates the service account svc, alice
// and bob, and the group engineers (alice, bob).
func lcDaemon(t *testing.T, dir, ca, cert, key string, hideInactive bool) (p *proc, ldapPort int) {
	t.Helper()
	ldapPort = testutil.FreePort(t)
	text := testConfig(t, dir, "")
	ldapBlock := fmt.Sprintf(`[ldap]
listen = "127.0.0.1:%d"
base_dn = %q
cert_file = %q
key_file = %q
exempt_loopback = false
user_gid_number = 0
hide_inactive = %v
`, ldapPort, lcBase, cert, key, hideInactive)
	if !strings.Contains(text, "[ldap]\nlisten = \"\"\n") {
		t.Fatal("testConfig changed: no [ldap] block to replace")
	}
	text = strings.Replace(text, "[ldap]\nlisten = \"\"\n", ldapBlock, 1)
	p = startDaemon(t, dir, writeConfig(t, dir, text))
	must := func(method, path string, body any) {
		t.Helper()
		if _, err := p.api(method, path, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []struct {
		name, pw string
		svc      bool
	}{{"svc", lcSvcPW, true}, {"alice", lcAlicePW, false}, {"bob", lcBobPW, false}} {
		must("POST", "/v1/users", map[string]any{"username": u.name, "email": u.name + "@example.test", "first_name": strings.ToUpper(u.name[:1]) + u.name[1:], "last_name": "Linux", "service_account": u.svc})
		must("PUT", "/v1/users/"+u.name+"/password", map[string]string{"password": u.pw})
	}
	must("POST", "/v1/groups", map[string]any{"name": lcGroup})
	must("PUT", "/v1/groups/"+lcGroup+"/members/alice", nil)
	must("PUT", "/v1/groups/"+lcGroup+"/members/bob", nil)
	return p, ldapPort
}

// lcSyncBuffer collects a process's output.
type lcSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lcSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lcSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// bindMount is one bind mount inside a namespace: src (the test's) over
// dst (the host path it hides there).
type bindMount struct{ src, dst string }

// nsDaemon is a daemon running in the foreground in a private mount
// namespace, and the namespace it made.
type nsDaemon struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *lcSyncBuffer
	done chan struct{}
	err  error
	ns   string // the namespace's /proc/PID/ns/mnt link, "mnt:[N]"
}

// startInNamespace runs argv in a new private mount namespace, after
// covering /run with a tmpfs, making the bind mounts and running setup (a
// shell fragment); the daemon execs in place of the shell, so its PID
// names the namespace.
func startInNamespace(t *testing.T, name string, mounts []bindMount, setup string, argv ...string) *nsDaemon {
	t.Helper()
	hostNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("set -e\nmount -t tmpfs -o mode=0755 gatewayd-test /run\n")
	for _, m := range mounts {
		fmt.Fprintf(&sb, "mount --bind %s %s\n", shellQuote(m.src), shellQuote(m.dst))
	}
	sb.WriteString(setup)
	sb.WriteString("\nexec \"$@\"\n")
	args := append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", sb.String(), "sh"}, argv...)
	d := &nsDaemon{t: t, name: name, out: &lcSyncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(testutil.RequireBinary(t, "unshare"), args...)
	d.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() || os.Getenv("GATEWAYD_LINUX_CLIENTS_LOG") != "" {
			t.Logf("%s output:\n%s", name, tail(d.out.String(), 2000))
		}
	})
	// unshare(2) runs just after the start: wait until the process is
	// in a namespace other than ours.
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-d.done:
			t.Fatalf("%s exited during start: %v\n%s", name, d.err, d.out.String())
		default:
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.cmd.Process.Pid)); err == nil && ns != hostNS {
			d.ns = ns
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no new mount namespace within 5s", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return d
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = append([]string{fmt.Sprintf("[... %d lines]", len(ls)-lines)}, ls[len(ls)-lines:]...)
	}
	return strings.Join(ls, "\n")
}

// stop ends the daemon: TERM to its process group, KILL after 5 s, then
// KILL to any process still in its namespace (children that left the
// group). Only processes this test started are ever in it.
func (d *nsDaemon) stop() {
	pid := d.cmd.Process.Pid
	select {
	case <-d.done:
	default:
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-d.done
		}
	}
	for _, p := range d.members() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// members lists the PIDs still in the daemon's mount namespace.
func (d *nsDaemon) members() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p)); err == nil && ns == d.ns {
			out = append(out, p)
		}
	}
	return out
}

// run runs a client inside the daemon's namespace, with stdin, and
// returns its combined output and exit code.
func (d *nsDaemon) run(stdin string, argv ...string) (string, int) {
	d.t.Helper()
	select {
	case <-d.done:
		d.t.Fatalf("%s exited: %v", d.name, d.err)
	default:
	}
	args := append([]string{fmt.Sprintf("--mount=/proc/%d/ns/mnt", d.cmd.Process.Pid), "--"}, argv...)
	cmd := exec.Command(testutil.RequireBinary(d.t, "nsenter"), args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		d.t.Fatalf("%s: %v hung:\n%s", d.name, argv, out.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	d.t.Fatalf("%s: %v: %v", d.name, argv, err)
	return "", -1
}

// eventually polls a client until ok says its output is right.
func (d *nsDaemon) eventually(what string, stdin string, ok func(out string, code int) bool, argv ...string) string {
	d.t.Helper()
	var out string
	var code int
	deadline := time.Now().Add(lcDeadline)
	for {
		out, code = d.run(stdin, argv...)
		if ok(out, code) {
			return out
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: %s: not true within %v; last %v exited %d:\n%s", d.name, what, lcDeadline, argv, code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hostState fingerprints what the tests must leave alone.
func hostState(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	for _, root := range []string{"/etc/nsswitch.conf", "/etc/pam.d", "/etc/sssd", "/etc/nslcd.conf", "/var/lib/sss", "/run/nslcd", "/run/sssd.pid"} {
		_ = filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "%s: %v\n", path, errors.Is(err, fs.ErrNotExist))
				return nil
			}
			fi, err := de.Info()
			if err != nil {
				return nil
			}
			fmt.Fprintf(h, "%s %v %d %v\n", path, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
			if fi.Mode().IsRegular() {
				b, _ := os.ReadFile(path)
				h.Write(b)
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// linuxClient is what differs between SSSD and nslcd.
type linuxClient struct {
	name   string
	nss    string // the nsswitch.conf source
	pamMod string
	// hide runs the door with hide_inactive = true: a suspended user
	// is unknown to the host, not refused by its account phase.
	hide  bool
	start func(t *testing.T, dir string, mounts []bindMount, ldapPort int, ca string) *nsDaemon
}

// runLinuxClient is the scenario each client goes through: names,
// groups, the private group, a password login and the account phase; then
// alice is suspended (refused, out of the group) and unsuspended (back).
func runLinuxClient(t *testing.T, lc linuxClient) {
	before := hostState(t)
	t.Cleanup(func() {
		if after := hostState(t); after != before {
			t.Errorf("the host's nsswitch.conf, /etc/pam.d, /etc/sssd, /etc/nslcd.conf, /var/lib/sss or /run changed")
		}
	})
	start := time.Now()
	dir := t.TempDir()
	ca, cert, key := lcPKI(t, filepath.Join(dir, "pki"))
	p, ldapPort := lcDaemon(t, dir, ca, cert, key, lc.hide)

	// nsswitch.conf: files first (root, the daemons' own users), then
	// the client. No nscd: the tmpfs on /run hides its socket.
	nss := filepath.Join(dir, "ns", "nsswitch.conf")
	lcWriteFile(t, nss, fmt.Sprintf("passwd: files %[1]s\ngroup: files %[1]s\nshadow: files\nhosts: files\n", lc.nss), 0o644)
	pamDir := filepath.Join(dir, "ns", "pam.d")
	lcWriteFile(t, filepath.Join(pamDir, lcService), fmt.Sprintf("auth required %[1]s\naccount required %[1]s\n", lc.pamMod), 0o644)
	mounts := []bindMount{{nss, "/etc/nsswitch.conf"}, {pamDir, "/etc/pam.d"}}
	d := lc.start(t, dir, mounts, ldapPort, ca)

	uidOf := func(name string) int {
		var u struct {
			UIDNumber int `json:"uid_number"`
		}
		if _, err := p.api("GET", "/v1/users/"+name, nil, &u); err != nil {
			t.Fatal(err)
		}
		return u.UIDNumber
	}
	aliceUID := uidOf("alice")
	var grp struct {
		GIDNumber int `json:"gid_number"`
	}
	if _, err := p.api("GET", "/v1/groups/"+lcGroup, nil, &grp); err != nil {
		t.Fatal(err)
	}

	// getent passwd alice: the entry, with the private group as gid.
	out := d.eventually("getent passwd alice", "", func(out string, code int) bool { return code == 0 }, "getent", "passwd", "alice")
	want := fmt.Sprintf("alice:*:%d:%d:", aliceUID, aliceUID)
	if !strings.HasPrefix(out, want) && !strings.HasPrefix(out, strings.Replace(want, ":*:", ":x:", 1)) {
		t.Errorf("getent passwd alice = %q, want %s...", out, want)
	}
	if !strings.Contains(out, ":/home/alice:/bin/bash") {
		t.Errorf("getent passwd alice = %q", out)
	}
	groupMembers := func(out string) []string {
		f := strings.Split(strings.TrimSpace(out), ":")
		if len(f) != 4 || f[2] != strconv.Itoa(grp.GIDNumber) {
			return nil
		}
		return strings.Split(f[3], ",")
	}
	inGroup := func(who string) func(string, int) bool {
		return func(out string, code int) bool { return code == 0 && slices.Contains(groupMembers(out), who) }
	}
	d.eventually("alice in getent group "+lcGroup, "", inGroup("alice"), "getent", "group", lcGroup)
	// id alice: the private group has a name.
	out, code := d.run("", "id", "alice")
	wantID := fmt.Sprintf("uid=%d(alice) gid=%d(alice) groups=%d(alice),%d(%s)", aliceUID, aliceUID, aliceUID, grp.GIDNumber, lcGroup)
	if code != 0 || strings.TrimSpace(out) != wantID {
		t.Errorf("id alice = %q (exit %d), want %q", out, code, wantID)
	}
	out, code = d.run("", "getent", "group", strconv.Itoa(aliceUID))
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("alice:*:%d:", aliceUID)) && !strings.HasPrefix(out, fmt.Sprintf("alice:x:%d:", aliceUID)) {
		t.Errorf("getent group %d = %q (exit %d)", aliceUID, out, code)
	}

	// PAM: the right password and the account phase pass, a wrong
	// password does not.
	pam := func(stdin string, ops ...string) (string, int) {
		return d.run(stdin, append([]string{"pamtester", "-v", lcService, "alice"}, ops...)...)
	}
	if out, code := pam(lcAlicePW+"\n", "authenticate", "acct_mgmt"); code != 0 {
		t.Fatalf("pamtester authenticate acct_mgmt with the right password: exit %d\n%s", code, out)
	}
	if out, code := pam("wrong password\n", "authenticate"); code == 0 {
		t.Fatalf("pamtester authenticate with a wrong password succeeded:\n%s", out)
	}
	if out, code := pam("", "acct_mgmt"); code != 0 {
		t.Fatalf("pamtester acct_mgmt: exit %d\n%s", code, out)
	}

	// Suspended: the account phase refuses alice (as for an SSH key
	// login, su from root or cron), her password is refused, and she
	// leaves the group. getent passwd still knows her, unless
	// hide_inactive makes her unknown.
	if _, err := p.api("POST", "/v1/users/alice/suspend", nil, nil); err != nil {
		t.Fatal(err)
	}
	out = d.eventually("acct_mgmt refused while suspended", "", func(out string, code int) bool { return code != 0 }, "pamtester", "-v", lcService, "alice", "acct_mgmt")
	t.Logf("%s, suspended alice: %s", lc.name, strings.TrimSpace(out))
	if out, code := pam(lcAlicePW+"\n", "authenticate"); code == 0 {
		t.Errorf("suspended alice authenticated:\n%s", out)
	}
	d.eventually("alice out of getent group "+lcGroup, "", func(out string, code int) bool {
		ms := groupMembers(out)
		return code == 0 && slices.Contains(ms, "bob") && !slices.Contains(ms, "alice")
	}, "getent", "group", lcGroup)
	if lc.hide {
		d.eventually("getent passwd alice unknown", "", func(out string, code int) bool { return code == 2 }, "getent", "passwd", "alice")
		d.eventually("getent group alice unknown", "", func(out string, code int) bool { return code == 2 }, "getent", "group", "alice")
	} else {
		if out, code := d.run("", "getent", "passwd", "alice"); code != 0 {
			t.Errorf("getent passwd alice while suspended: exit %d %s", code, out)
		}
		d.eventually("id alice without "+lcGroup, "", func(out string, code int) bool {
			return code == 0 && strings.TrimSpace(out) == fmt.Sprintf("uid=%d(alice) gid=%d(alice) groups=%d(alice)", aliceUID, aliceUID, aliceUID)
		}, "id", "alice")
	}

	// Unsuspended: all of it back at once.
	if _, err := p.api("POST", "/v1/users/alice/unsuspend", nil, nil); err != nil {
		t.Fatal(err)
	}
	d.eventually("acct_mgmt passes again", "", func(out string, code int) bool { return code == 0 }, "pamtester", "-v", lcService, "alice", "acct_mgmt")
	if out, code := pam(lcAlicePW+"\n", "authenticate", "acct_mgmt"); code != 0 {
		t.Errorf("unsuspended alice: exit %d\n%s", code, out)
	}
	d.eventually("alice back in getent group "+lcGroup, "", inGroup("alice"), "getent", "group", lcGroup)
	if out, code := d.run("", "id", "alice"); code != 0 || strings.TrimSpace(out) != wantID {
		t.Errorf("id alice after unsuspend = %q (exit %d), want %q", out, code, wantID)
	}
	t.Logf("%s: %v", lc.name, time.Since(start).Round(time.Millisecond))
}

// TestLinuxClientSSSD: SSSD 2.8 with access_provider = ldap and
// ldap_access_order = expire, once per expire policy the door renders a
// marker for (shadow: shadowExpire, rhds: nsAccountLock); then SSSD's
// default access_provider = permit against hide_inactive = true.
func TestLinuxClientSSSD(t *testing.T) {
	t.Parallel()
	lcRequire(t, []string{"sssd"}, []string{"libnss_sss.so.2", "security/pam_sss.so"})
	for _, policy := range []string{"shadow", "rhds", "hide"} {
		t.Run(policy, func(t *testing.T) {
			access := "access_provider = ldap\nldap_access_order = expire\nldap_account_expire_policy = " + policy
			if policy == "hide" {
				access = "access_provider = permit"
			}
			runLinuxClient(t, linuxClient{name: "sssd/" + policy, nss: "sss", pamMod: "pam_sss.so", hide: policy == "hide", start: func(t *testing.T, dir string, mounts []bindMount, ldapPort int, ca string) *nsDaemon {
				return startSSSD(t, dir, mounts, ldapPort, ca, access)
			}})
		})
	}
}

// startSSSD runs sssd -i with the test's sssd.conf (root-owned, 0600, as
// SSSD demands) over /etc/sssd and fresh state directories over
// /var/lib/sss and /var/log/sssd. Caches are short or off so the
// directory's changes show within a second or two.
func startSSSD(t *testing.T, dir string, mounts []bindMount, ldapPort int, ca, access string) *nsDaemon {
	etc := filepath.Join(dir, "sssd", "etc")
	lcWriteFile(t, filepath.Join(etc, "sssd.conf"), fmt.Sprintf(`[sssd]
services = nss, pam
domains = gw

[nss]
memcache_timeout = 0
entry_negative_timeout = 1

[pam]
pam_id_timeout = 1

[domain/gw]
id_provider = ldap
auth_provider = ldap
%s
ldap_uri = ldap://127.0.0.1:%d
ldap_search_base = %s
ldap_schema = rfc2307bis
ldap_default_bind_dn = uid=svc,ou=users,%[3]s
ldap_default_authtok_type = password
ldap_default_authtok = %s
ldap_id_use_start_tls = true
ldap_tls_reqcert = demand
ldap_tls_cacert = %s
cache_credentials = false
entry_cache_timeout = 1
entry_cache_nowait_percentage = 0
ldap_network_timeout = 3
ldap_opt_timeout = 5
ldap_search_timeout = 5
debug_level = 2
`, access, ldapPort, lcBase, lcSvcPW, ca), 0o600)
	if err := os.MkdirAll(filepath.Join(etc, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /var/lib/sss as sssd-common lays it out.
	state := filepath.Join(dir, "sssd", "state")
	for sub, mode := range map[string]os.FileMode{
		".": 0o755, "db": 0o700, "mc": 0o775, "pipes": 0o755, "pipes/private": 0o750,
		"pubconf": 0o755, "pubconf/krb5.include.d": 0o755, "gpo_cache": 0o755, "secrets": 0o700, "deskprofile": 0o751, "keytabs": 0o700,
	} {
		p := filepath.Join(state, sub)
		if err := os.MkdirAll(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	logs := filepath.Join(dir, "sssd", "log")
	if err := os.MkdirAll(logs, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/sssd", "/var/lib/sss", "/var/log/sssd"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v (is sssd-common installed? scripts/test-deps.sh)", p, err)
		}
	}
	mounts = append(mounts, bindMount{etc, "/etc/sssd"}, bindMount{state, "/var/lib/sss"}, bindMount{logs, "/var/log/sssd"})
	return startInNamespace(t, "sssd", mounts, "", testutil.RequireBinary(t, "sssd"), "-i", "--logger=stderr")
}

// TestLinuxClientNslcd: nslcd 0.9 with pam_ldap and nss_ldap. nslcd has
// no cache; its account phase checks shadowExpire when the user is a
// shadowAccount, which an inactive user is.
func TestLinuxClientNslcd(t *testing.T) {
	t.Parallel()
	lcRequire(t, []string{"nslcd"}, []string{"libnss_ldap.so.2", "security/pam_ldap.so"})
	for _, hide := range []bool{false, true} {
		name := "shadow"
		if hide {
			name = "hide"
		}
		t.Run(name, func(t *testing.T) {
			runLinuxClient(t, linuxClient{name: "nslcd/" + name, nss: "ldap", pamMod: "pam_ldap.so", hide: hide, start: startNslcd})
		})
	}
}

// startNslcd runs nslcd -d with the test's nslcd.conf over
// /etc/nslcd.conf; its socket directory /run/nslcd is on the namespace's
// tmpfs, and so is a copy of the CA that the nslcd user can read.
func startNslcd(t *testing.T, dir string, mounts []bindMount, ldapPort int, ca string) *nsDaemon {
	conf := filepath.Join(dir, "nslcd", "nslcd.conf")
	lcWriteFile(t, conf, fmt.Sprintf(`uid nslcd
gid nslcd
uri ldap://127.0.0.1:%d/
base %s
binddn uid=svc,ou=users,%[2]s
bindpw %s
ssl start_tls
tls_reqcert demand
tls_cacertfile /run/gatewayd-test-ca.pem
bind_timelimit 5
timelimit 10
reconnect_sleeptime 1
reconnect_retrytime 1
`, ldapPort, lcBase, lcSvcPW), 0o600)
	if _, err := os.Stat("/etc/nslcd.conf"); err != nil {
		t.Fatalf("/etc/nslcd.conf: %v (is nslcd installed? scripts/test-deps.sh)", err)
	}
	mounts = append(mounts, bindMount{conf, "/etc/nslcd.conf"})
	setup := fmt.Sprintf("install -m 0644 %s /run/gatewayd-test-ca.pem\ninstall -d -m 0755 -o nslcd -g nslcd /run/nslcd\n", shellQuote(ca))
	return startInNamespace(t, "nslcd", mounts, setup, testutil.RequireBinary(t, "nslcd"), "-d")
}
