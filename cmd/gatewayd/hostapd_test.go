package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// A real 802.1X stack in front of the daemon: hostapd (wired driver) as the
// authenticator, using gatewayd as its RADIUS server, and wpa_supplicant
// (wired driver) as the supplicant, on the two ends of a veth pair.
//
// Layout, per case (names carry the test's pid and the case number):
//
//	root netns                                   netns gw<pid>n<i>
//	gatewayd  127.0.0.1:<udp>  <-- RADIUS --+
//	hostapd   -i gw<pid>a<i>  ==== veth ====  gw<pid>b<i>  wpa_supplicant -D wired
//	          (no address)       EAPOL only    (no address)
//
// hostapd stays in the root namespace so that it reaches the daemon on
// loopback (the [[radius.client]] is 127.0.0.0/8); its veth end carries no
// address and nothing routes through it: only EAPOL frames (ethertype
// 0x888e, to the PAE group address) cross the pair, and the RADIUS
// datagrams never leave loopback. The supplicant's end lives in a network
// namespace the test creates. Everything is removed in t.Cleanup, also on
// failure: the processes are killed, the namespace deleted (which deletes
// its veth end and so the pair), and the root end deleted should it
// remain.

// hostapdCase is one 802.1X login. method is the [radius.eap] method the
// daemon must offer for it; eap, phase1 and phase2 are wpa_supplicant's.
// With cert the supplicant presents alice's client certificate (EAP-TLS)
// instead of a password.
type hostapdCase struct {
	name   string
	method string // "ttls", "peap" or "tls"
	eap    string // wpa_supplicant eap=
	phase1 string // wpa_supplicant phase1=, if any
	phase2 string // wpa_supplicant phase2=, if any
	user   string
	pass   string
	cert   bool
	ok     bool     // the port must be authorized; else EAP must fail and it must not
	logs   []string // lines wpa_supplicant's debug log must hold on success
}

// hostapdCases: the daemon is configured with the union of the cases'
// methods, with the NT-hash opt-in on (alice's password is set through
// the API afterwards, which captures it) and a client CA for EAP-TLS.
var hostapdCases = []hostapdCase{
	{name: "ttls-pap", method: "ttls", eap: "TTLS", phase2: "auth=PAP", user: "alice", pass: "wired pass 1", ok: true},
	{name: "ttls-pap-wrong-password", method: "ttls", eap: "TTLS", phase2: "auth=PAP", user: "alice", pass: "wrong pass", ok: false},
	{name: "peap-mschapv2", method: "peap", eap: "PEAP", phase1: "peapver=0", phase2: "auth=MSCHAPV2", user: "alice", pass: "wired pass 1", ok: true,
		logs: []string{"EAP-MSCHAPV2: Authentication succeeded", "EAP-TLV: TLV Result - Success"}},
	{name: "peap-mschapv2-wrong-password", method: "peap", eap: "PEAP", phase1: "peapver=0", phase2: "auth=MSCHAPV2", user: "alice", pass: "wrong pass", ok: false},
	{name: "eap-tls-1.2", method: "tls", eap: "TLS", phase1: "tls_disable_tlsv1_3=1", user: "alice@example.test", cert: true, ok: true,
		logs: []string{"Using TLS version TLSv1.2"}},
	{name: "eap-tls-1.3", method: "tls", eap: "TLS", phase1: "tls_disable_tlsv1_3=0", user: "alice@example.test", cert: true, ok: true,
		logs: []string{"Using TLS version TLSv1.3"}},
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// requireNetns checks that this process may create network namespaces
// (root, ip from iproute2): a failure in CI, a skip elsewhere.
func requireNetns(t *testing.T) string {
	t.Helper()
	ip := testutil.RequireBinary(t, "ip")
	testutil.RequireRoot(t, "creating network namespaces and veth pairs (CAP_NET_ADMIN)")
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		testutil.Unavailable(t, "no network namespaces on this kernel: "+err.Error())
	}
	return ip
}

// startChild runs argv with its output in a lockedBuffer, and kills it in
// t.Cleanup (registered before the namespace's, so it runs first).
func startChild(t *testing.T, name string, argv ...string) (*lockedBuffer, <-chan struct{}) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("%s output (last 60 lines):\n%s", name, lastLines(out.String(), 60))
		}
	})
	return out, done
}

// hostapdEventMethod is the radius_auth event method of each
// [radius.eap] method.
var hostapdEventMethod = map[string]string{"ttls": "eap-ttls/pap", "peap": "peap/mschapv2", "tls": "eap-tls"}

var hostapdSeq atomic.Int32

// hostapdAuthorized is what hostapd logs (debug) when it authorizes the
// port; "unauthorizing port" must not match it.
const hostapdAuthorized = "IEEE 802.1X: authorizing port"

// TestHostapdWired8021X: hostapd and wpa_supplicant across a veth pair,
// hostapd using the real daemon as its RADIUS server. Each case must end
// with the supplicant in Supplicant PAE state AUTHENTICATED / EAP state
// SUCCESS and hostapd authorizing the port (or, for a wrong password, with
// EAP-Failure and the port left unauthorized).
func TestHostapdWired8021X(t *testing.T) {
	ip := requireNetns(t)
	hostapd := testutil.RequireBinary(t, "hostapd")
	wpaSupplicant := testutil.RequireBinary(t, "wpa_supplicant")
	wpaCli := testutil.RequireBinary(t, "wpa_cli")

	var methods []string
	for _, c := range hostapdCases {
		if !slices.Contains(methods, c.method) {
			methods = append(methods, c.method)
		}
	}
	dir := t.TempDir()
	pki, clientCA := newClientPKI(t, dir, "client CA")
	certFile, keyFile := pki.issue("alice-laptop", 10, func(c *x509.Certificate) { c.EmailAddresses = []string{"alice@example.test"} })
	text, addr, ca := eapConfig(t, dir, false, fmt.Sprintf("methods = [\"%s\"]\nca_file = %q\n", strings.Join(methods, `", "`), clientCA))
	ntKey := filepath.Join(dir, "nt.key")
	writeFile(t, ntKey, strings.Repeat("5a", 32)+"\n")
	text = strings.Replace(text, "[authn]\n", fmt.Sprintf("[authn]\nstore_nt_hash = true\nnt_hash_key_file = %q\n", ntKey), 1)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test"}, nil)
	if _, err := p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "wired pass 1"}, nil); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")

	var want []string
	for _, c := range hostapdCases {
		t.Run(c.name, func(t *testing.T) {
			run8021X(t, ip, hostapd, wpaSupplicant, wpaCli, host, port, ca, certFile, keyFile, c)
		})
		want = append(want, map[bool]string{true: "success", false: "failure"}[c.ok]+":"+hostapdEventMethod[c.method])
	}
	// The daemon decided each login: one radius_auth event per case, for
	// alice (the certificate's email maps to her), with the case's method.
	var got []string
	for _, e := range eapEvents(t, p, "alice", len(want)) {
		got = append(got, e.Outcome+":"+e.Method)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("radius_auth events (outcome:method) %v, want %v", got, want)
	}
}

func run8021X(t *testing.T, ip, hostapd, wpaSupplicant, wpaCli, radiusHost, radiusPort, ca, certFile, keyFile string, c hostapdCase) {
	n := hostapdSeq.Add(1)
	pid := os.Getpid() % 100000
	ns := fmt.Sprintf("gw%dn%d", pid, n)
	vethA, vethB := fmt.Sprintf("gw%da%d", pid, n), fmt.Sprintf("gw%db%d", pid, n) // at most 15 bytes
	dir := t.TempDir()

	sh := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Cleanup runs last-registered first: the children's kills (registered
	// below) run before this, so no process holds the namespace.
	t.Cleanup(func() {
		exec.Command(ip, "netns", "del", ns).Run()
		exec.Command(ip, "link", "del", vethA).Run() // gone with the namespace's end, normally
		if err := exec.Command(ip, "link", "show", vethA).Run(); err == nil {
			t.Errorf("veth %s still exists after cleanup", vethA)
		}
		if out, _ := exec.Command(ip, "netns", "list").Output(); strings.Contains(string(out), ns) {
			t.Errorf("netns %s still exists after cleanup", ns)
		}
	})
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot create a network namespace here (ip netns add: %v: %s)", err, bytes.TrimSpace(out))
		testutil.Unavailable(t, msg)
	}
	sh("link", "add", vethA, "type", "veth", "peer", "name", vethB)
	sh("link", "set", vethB, "netns", ns)
	sh("link", "set", vethA, "up")
	sh("-n", ns, "link", "set", vethB, "up")

	hostapdConf := filepath.Join(dir, "hostapd.conf")
	writeFile(t, hostapdConf, fmt.Sprintf(`interface=%s
driver=wired
logger_stdout=-1
logger_stdout_level=0
ctrl_interface=%s
ieee8021x=1
eapol_version=2
eap_reauth_period=0
use_pae_group_addr=1
nas_identifier=gatewayd-hostapd-test
own_ip_addr=127.0.0.1
auth_server_addr=%s
auth_server_port=%s
auth_server_shared_secret=%s
`, vethA, filepath.Join(dir, "hostapd-ctrl"), radiusHost, radiusPort, radiusSecret))
	wpaCtrl := filepath.Join(dir, "wpa-ctrl")
	wpaConf := filepath.Join(dir, "wpa_supplicant.conf")
	var network strings.Builder
	fmt.Fprintf(&network, "\teap=%s\n\tidentity=%q\n", c.eap, c.user)
	if c.cert {
		fmt.Fprintf(&network, "\tclient_cert=%q\n\tprivate_key=%q\n", certFile, keyFile)
	} else {
		fmt.Fprintf(&network, "\tanonymous_identity=\"anonymous\"\n\tpassword=%q\n", c.pass)
	}
	for k, v := range map[string]string{"phase1": c.phase1, "phase2": c.phase2} {
		if v != "" {
			fmt.Fprintf(&network, "\t%s=%q\n", k, v)
		}
	}
	writeFile(t, wpaConf, fmt.Sprintf(`ctrl_interface=%s
ap_scan=0
eapol_version=2
network={
	key_mgmt=IEEE8021X
	eapol_flags=0
%s	ca_cert=%q
	domain_suffix_match="radius.example.test"
}
`, wpaCtrl, network.String(), ca))

	hlog, hdone := startChild(t, "hostapd", hostapd, "-d", hostapdConf)
	testutil.Eventually(t, 5*time.Second, func() bool {
		select {
		case <-hdone:
			t.Fatalf("hostapd exited:\n%s", hlog.String())
		default:
		}
		return strings.Contains(hlog.String(), "ENABLED")
	}, "hostapd up on "+vethA)
	wlog, wdone := startChild(t, "wpa_supplicant", ip, "netns", "exec", ns, wpaSupplicant, "-D", "wired", "-i", vethB, "-c", wpaConf, "-d")

	status := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, wpaCli, "-p", wpaCtrl, "-i", vethB, "status").CombinedOutput()
		return string(out)
	}
	var st string
	if c.ok {
		testutil.Eventually(t, 10*time.Second, func() bool {
			select {
			case <-wdone:
				t.Fatalf("wpa_supplicant exited:\n%s", wlog.String())
			default:
			}
			if !strings.Contains(hlog.String(), hostapdAuthorized) {
				return false
			}
			st = status()
			return strings.Contains(st, "Supplicant PAE state=AUTHENTICATED") && strings.Contains(st, "EAP state=SUCCESS")
		}, "supplicant AUTHENTICATED with EAP SUCCESS and hostapd authorizing the port")
		if !strings.Contains(st, "suppPortStatus=Authorized") {
			t.Fatalf("wpa_cli status without suppPortStatus=Authorized:\n%s", st)
		}
		for _, want := range append([]string{"CTRL-EVENT-EAP-SUCCESS"}, c.logs...) {
			if !strings.Contains(wlog.String(), want) {
				t.Fatalf("wpa_supplicant logged no %q", want)
			}
		}
		t.Logf("wpa_cli status: %s, %s, %s", grepLine(st, "Supplicant PAE state="), grepLine(st, "suppPortStatus="), grepLine(st, "EAP state="))
		t.Logf("hostapd: %s", grepLine(hlog.String(), hostapdAuthorized))
		return
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		if !strings.Contains(wlog.String(), "CTRL-EVENT-EAP-FAILURE") {
			return false
		}
		st = status()
		return strings.Contains(st, "EAP state=FAILURE") || strings.Contains(st, "Supplicant PAE state=HELD")
	}, "EAP-Failure at the supplicant")
	if strings.Contains(hlog.String(), hostapdAuthorized) || strings.Contains(st, "suppPortStatus=Authorized") {
		t.Fatalf("port authorized after a wrong password:\n%s", st)
	}
	t.Logf("wpa_cli status: %s, %s, %s", grepLine(st, "Supplicant PAE state="), grepLine(st, "suppPortStatus="), grepLine(st, "EAP state="))
	t.Logf("hostapd: %s", grepLine(hlog.String(), "authentication failed"))
}

func writeFile(t *testing.T, p, text string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
