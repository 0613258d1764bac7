package radiusserver

// Integration tests: the Server runs in-process on loopback and the real
// FreeRADIUS clients (radclient, radtest from Debian's freeradius-utils)
// talk to it. A missing binary skips locally and fails under CI
// (testutil.RequireBinary).

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// mainDictDir is where Debian's freeradius-common puts the dictionaries.
const mainDictDir = "/usr/share/freeradius"

type fr struct {
	radclient string
	radtest   string
	dictDir   string // a private raddb holding an empty user dictionary
}

func requireFreeRADIUSClients(t *testing.T) fr {
	t.Helper()
	f := fr{radclient: testutil.RequireBinary(t, "radclient"), radtest: testutil.RequireBinary(t, "radtest")}
	if _, err := os.Stat(filepath.Join(mainDictDir, "dictionary")); err != nil {
		msg := "FreeRADIUS dictionaries missing in " + mainDictDir + " (Debian package freeradius-common)"
		testutil.Unavailable(t, msg)
	}
	f.dictDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(f.dictDir, "dictionary"), []byte("# user dictionary: empty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// run executes radclient with input on stdin and returns its output.
func (f fr) run(t *testing.T, input string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"-d", f.dictDir, "-D", mainDictDir}, args...)
	cmd := exec.CommandContext(ctx, f.radclient, full...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	t.Logf("radclient %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

// radtest runs radtest (PAP by default; method "chap" or "mschap").
func (f fr) radtestRun(t *testing.T, method, user, pass, server, sec string, v6 bool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-d", f.dictDir}
	if method != "" {
		args = append(args, "-t", method)
	}
	nas := "127.0.0.1"
	if v6 {
		args = append(args, "-6")
		nas = "::1"
	}
	args = append(args, user, pass, server, "0", sec, "0", nas)
	cmd := exec.CommandContext(ctx, f.radtest, args...)
	out, err := cmd.CombinedOutput()
	t.Logf("radtest %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func integrationConfig(listen ...string) Config {
	return Config{
		Listen: listen,
		Clients: []Client{
			testClient("loopback4", testSecret, true, "127.0.0.0/8"),
			// More specific than loopback4: radclient can send from it
			// with Packet-Src-IP-Address.
			testClient("legacy-nas", lenientSecret, false, "127.0.0.2/32"),
			testClient("loopback6", testSecret, true, "::1/128"),
		},
		ReplyGroups: vlanGroups(),
		Workers:     8,
	}
}

func serverAddr(t *testing.T, s *Server, v6 bool) string {
	t.Helper()
	for _, a := range s.Addrs() {
		ua := a.(*net.UDPAddr)
		if (ua.IP.To4() == nil) == v6 {
			return a.String()
		}
	}
	t.Fatalf("no %v address in %v", map[bool]string{true: "IPv6", false: "IPv4"}[v6], s.Addrs())
	return ""
}

// papRequest is a radclient input: PAP with a Message-Authenticator
// (radclient computes it in place of the 0x00).
func papRequest(user, pass string) string {
	return "User-Name = \"" + user + "\"\nUser-Password = \"" + pass + "\"\nMessage-Authenticator = 0x00\n"
}

func TestRadclientIntegration(t *testing.T) {
	f := requireFreeRADIUSClients(t)
	auth := newFakeAuth()
	s, reg := startServer(t, integrationConfig("127.0.0.1:0", "[::1]:0"), auth)
	addr4, addr6 := serverAddr(t, s, false), serverAddr(t, s, true)

	t.Run("radtest accept", func(t *testing.T) {
		out, err := f.radtestRun(t, "", "alice", "alicepass", addr4, testSecret, false)
		if err != nil || !strings.Contains(out, "Received Access-Accept") {
			t.Fatalf("want Access-Accept: %v", err)
		}
	})
	t.Run("radtest reject", func(t *testing.T) {
		before := auth.logins.Load()
		out, err := f.radtestRun(t, "", "alice", "wrong", addr4, testSecret, false)
		if err == nil || !strings.Contains(out, "Received Access-Reject") {
			t.Fatalf("want Access-Reject (and a non-zero exit): %v", err)
		}
		if auth.logins.Load() != before+1 {
			t.Fatal("no login attempted")
		}
		if strings.Contains(out, "Reply-Message") {
			t.Fatal("Reply-Message sent although none is configured")
		}
	})
	t.Run("radtest ipv6", func(t *testing.T) {
		out, err := f.radtestRun(t, "", "alice", "alicepass", addr6, testSecret, true)
		if err != nil || !strings.Contains(out, "Received Access-Accept") {
			t.Fatalf("want Access-Accept over IPv6: %v", err)
		}
		evs := auth.Events()
		if last := evs[len(evs)-1]; last.Client != "loopback6" || last.Source.String() != "::1" {
			t.Fatalf("event = %+v", last)
		}
	})
	t.Run("vlan attributes decoded by radclient", func(t *testing.T) {
		out, err := f.run(t, papRequest("alice", "alicepass"), "-x", "-r", "1", "-t", "2", addr4, "auth", testSecret)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"Received Access-Accept",
			`Tunnel-Type:0 = VLAN`,
			`Tunnel-Medium-Type:0 = IEEE-802`,
			`Tunnel-Private-Group-Id:0 = "42"`,
			`Filter-Id = "staff-acl"`,
			`Class = 0x7374616666`,
			"Message-Authenticator = 0x",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("radclient output lacks %q", want)
			}
		}
	})
	t.Run("vendor attribute and precedence decoded by radclient", func(t *testing.T) {
		out, err := f.run(t, papRequest("bob", "bobpass"), "-x", "-r", "1", "-t", "2", addr6, "auth", testSecret)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`Tunnel-Private-Group-Id:0 = "42"`, `Session-Timeout = 3600`, `Aruba-User-Role = "voice"`} {
			if !strings.Contains(out, want) {
				t.Errorf("radclient output lacks %q", want)
			}
		}
		if strings.Contains(out, `"99"`) || strings.Contains(out, "86400") {
			t.Error("lower-precedence group's values leaked into the reply")
		}
	})
	t.Run("status-server", func(t *testing.T) {
		before := auth.logins.Load()
		out, err := f.run(t, "Message-Authenticator = 0x00\n", "-x", "-r", "1", "-t", "2", addr4, "status", testSecret)
		if err != nil || !strings.Contains(out, "Received Access-Accept") {
			t.Fatalf("Status-Server not answered: %v", err)
		}
		if auth.logins.Load() != before {
			t.Fatal("Status-Server caused a login")
		}
	})
	t.Run("unknown client gets no answer", func(t *testing.T) {
		// Every loopback source is a client of s: use a server whose
		// clients are elsewhere.
		other, oreg := startServer(t, Config{
			Listen:  []string{"127.0.0.1:0"},
			Clients: []Client{testClient("somewhere-else", testSecret, true, "192.0.2.0/24", "2001:db8::/32")},
		}, auth)
		ob := dropped(oreg, other, dropUnknownClient)
		out, err := f.run(t, papRequest("alice", "alicepass"), "-x", "-r", "1", "-t", "0.5", serverAddr(t, other, false), "auth", testSecret)
		if err == nil || !strings.Contains(out, "No reply from server") {
			t.Fatalf("unknown client was answered: %v", err)
		}
		if got := dropped(oreg, other, dropUnknownClient) - ob; got < 1 {
			t.Fatalf("dropped{unknown_client} moved by %v", got)
		}
	})
	t.Run("missing message-authenticator is dropped when required", func(t *testing.T) {
		before, logins := dropped(reg, s, dropMissingMA), auth.logins.Load()
		in := "User-Name = \"alice\"\nUser-Password = \"alicepass\"\n"
		out, err := f.run(t, in, "-x", "-r", "1", "-t", "0.5", addr4, "auth", testSecret)
		if err == nil || !strings.Contains(out, "No reply from server") {
			t.Fatalf("request without Message-Authenticator was answered: %v", err)
		}
		if dropped(reg, s, dropMissingMA)-before < 1 || auth.logins.Load() != logins {
			t.Fatal("not counted as missing_message_authenticator, or a login ran")
		}
	})
	t.Run("missing message-authenticator is accepted when not required", func(t *testing.T) {
		in := "User-Name = \"alice\"\nUser-Password = \"alicepass\"\nPacket-Src-IP-Address = 127.0.0.2\n"
		out, err := f.run(t, in, "-x", "-r", "1", "-t", "2", addr4, "auth", lenientSecret)
		if err != nil || !strings.Contains(out, "Received Access-Accept") {
			t.Fatalf("legacy client without Message-Authenticator not accepted: %v", err)
		}
		if !strings.Contains(out, "Message-Authenticator = 0x") {
			t.Fatal("the answer carries no Message-Authenticator")
		}
		evs := auth.Events()
		if last := evs[len(evs)-1]; last.Client != "legacy-nas" || !last.OK {
			t.Fatalf("event = %+v", last)
		}
	})
	t.Run("wrong shared secret: no answer, no password work", func(t *testing.T) {
		before, logins := dropped(reg, s, dropBadMA), auth.logins.Load()
		out, err := f.run(t, papRequest("alice", "alicepass"), "-x", "-r", "1", "-t", "0.5", addr4, "auth", "not-the-secret")
		if err == nil || !strings.Contains(out, "No reply from server") {
			t.Fatalf("wrong secret was answered: %v", err)
		}
		if got := dropped(reg, s, dropBadMA) - before; got < 1 {
			t.Fatalf("dropped{bad_message_authenticator} moved by %v", got)
		}
		if auth.logins.Load() != logins {
			t.Fatal("a login (password work) ran for a request with a wrong secret")
		}
	})
	t.Run("chap, mschap and eap are rejected as unsupported", func(t *testing.T) {
		logins := auth.logins.Load()
		for _, method := range []string{"chap", "mschap"} {
			out, _ := f.radtestRun(t, method, "alice", "alicepass", addr4, testSecret, false)
			if !strings.Contains(out, "Received Access-Reject") {
				t.Errorf("%s: want Access-Reject", method)
			}
		}
		eap := "User-Name = \"alice\"\nEAP-Message = 0x0201000a01616c696365\nMessage-Authenticator = 0x00\n"
		out, _ := f.run(t, eap, "-x", "-r", "1", "-t", "2", addr4, "auth", testSecret)
		if !strings.Contains(out, "Received Access-Reject") {
			t.Error("eap: want Access-Reject")
		}
		if auth.logins.Load() != logins {
			t.Error("an unsupported method reached Login")
		}
		evs := auth.Events()
		if len(evs) < 3 {
			t.Fatalf("events: %+v", evs)
		}
		for _, ev := range evs[len(evs)-3:] {
			if ev.Reason != authn.ReasonUnsupportedMethod || ev.OK || ev.Identifier != "alice" {
				t.Errorf("event = %+v, want unsupported_method for alice", ev)
			}
		}
	})
}

// TestRadclientRetransmit: a UDP relay between radclient and the server
// swallows the first answer; radclient retransmits the same packet and
// must get the identical answer from the cache, with one login event.
func TestRadclientRetransmit(t *testing.T) {
	f := requireFreeRADIUSClients(t)
	auth := newFakeAuth()
	s, _ := startServer(t, integrationConfig("127.0.0.1:0"), auth)
	r := startDropFirstRelay(t, serverAddr(t, s, false))

	out, err := f.run(t, papRequest("alice", "alicepass"), "-x", "-r", "3", "-t", "1", r.addr(), "auth", testSecret)
	if err != nil || !strings.Contains(out, "Received Access-Accept") {
		t.Fatalf("no Access-Accept after retransmission: %v", err)
	}
	if n := strings.Count(out, "Sent Access-Request"); n < 2 {
		t.Fatalf("radclient sent %d times; the relay should have forced a retransmission", n)
	}
	ids := regexp.MustCompile(`Sent Access-Request Id (\d+)`).FindAllStringSubmatch(out, -1)
	if len(ids) >= 2 && ids[0][1] != ids[1][1] {
		t.Fatalf("radclient changed the Id on retransmission: %v", ids)
	}
	answers := r.answers()
	if len(answers) < 2 || !bytes.Equal(answers[0], answers[1]) {
		t.Fatalf("the server's answers to the original and the retransmission differ (%d answers)", len(answers))
	}
	if n := auth.logins.Load(); n != 1 {
		t.Fatalf("Login calls = %d, want 1", n)
	}
	if evs := auth.Events(); len(evs) != 1 {
		t.Fatalf("login events = %d, want 1", len(evs))
	}
	if got := requests(s, "loopback4", outcomeDuplicate); got < 1 {
		t.Fatalf("requests{outcome=duplicate} = %v", got)
	}
}

// TestRadclientRetransmitDuringSlowLogin: the first login takes longer
// than radclient's timeout; its retransmission arrives while the login
// runs and must not start a second one.
func TestRadclientRetransmitDuringSlowLogin(t *testing.T) {
	f := requireFreeRADIUSClients(t)
	auth := newFakeAuth()
	auth.delay = 1500 * time.Millisecond
	s, reg := startServer(t, integrationConfig("127.0.0.1:0"), auth)
	out, err := f.run(t, papRequest("alice", "alicepass"), "-x", "-r", "3", "-t", "1", serverAddr(t, s, false), "auth", testSecret)
	if err != nil || !strings.Contains(out, "Received Access-Accept") {
		t.Fatalf("no Access-Accept: %v", err)
	}
	if auth.logins.Load() != 1 || len(auth.Events()) != 1 {
		t.Fatalf("logins = %d, events = %d; want 1 and 1", auth.logins.Load(), len(auth.Events()))
	}
	if dropped(reg, s, dropDuplicateRunning) < 1 {
		t.Fatal("the retransmission was not seen as in flight")
	}
}

// dropFirstRelay forwards datagrams from one client to the server and the
// server's answers back, except the first answer, which it records and
// swallows.
type dropFirstRelay struct {
	front *net.UDPConn
	mu    sync.Mutex
	seen  [][]byte
}

func startDropFirstRelay(t *testing.T, server string) *dropFirstRelay {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, sa)
	if err != nil {
		t.Fatal(err)
	}
	r := &dropFirstRelay{front: front}
	var client struct {
		sync.Mutex
		a *net.UDPAddr
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Lock()
			client.a = from
			client.Unlock()
			_, _ = back.Write(buf[:n])
		}
	})
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.seen = append(r.seen, append([]byte(nil), buf[:n]...))
			first := len(r.seen) == 1
			r.mu.Unlock()
			if first {
				continue
			}
			client.Lock()
			to := client.a
			client.Unlock()
			_, _ = front.WriteToUDP(buf[:n], to)
		}
	})
	t.Cleanup(func() {
		front.Close()
		back.Close()
		wg.Wait()
	})
	return r
}

func (r *dropFirstRelay) addr() string { return r.front.LocalAddr().String() }

func (r *dropFirstRelay) answers() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.seen...)
}
