package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

const radiusSecret = "e2e-radius-secret"

// doorsConfig adds a RADIUS listener and client for loopback.
func doorsConfig(t *testing.T, dir string) (text string, radiusAddr string) {
	t.Helper()
	secretFile := filepath.Join(dir, "radius.secret")
	if err := os.WriteFile(secretFile, []byte(radiusSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	radiusAddr = fmt.Sprintf("127.0.0.1:%d", testutil.FreeUDPPort(t))
	text = testConfig(t, dir, "")
	text = strings.Replace(text, "[radius]\nlisten = []\n", fmt.Sprintf(`[radius]
listen = [%q]
[[radius.client]]
name = "loopback"
networks = ["127.0.0.0/8"]
secret = "file:%s"
[[radius.reply_group]]
group = "staff"
priority = 10
attributes = ["Tunnel-Type = VLAN", "Tunnel-Medium-Type = IEEE-802", "Tunnel-Private-Group-Id = 42"]
`, radiusAddr, secretFile), 1)
	return text, radiusAddr
}

// radclient sends one PAP Access-Request (with Message-Authenticator)
// through FreeRADIUS' own client and returns its decoded output.
func radclient(t *testing.T, addr, user, pass string) (string, bool) {
	t.Helper()
	bin := testutil.RequireBinary(t, "radclient")
	dict := t.TempDir()
	os.WriteFile(filepath.Join(dict, "dictionary"), []byte("# empty user dictionary\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-d", dict, "-D", "/usr/share/freeradius", "-x", "-r", "2", "-t", "3", addr, "auth", radiusSecret)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("User-Name = %q\nUser-Password = %q\nMessage-Authenticator = 0x00\n", user, pass))
	out, _ := cmd.CombinedOutput()
	s := string(out)
	switch {
	case strings.Contains(s, "Received Access-Accept"):
		return s, true
	case strings.Contains(s, "Received Access-Reject"):
		return s, false
	}
	t.Fatalf("radclient got no answer:\n%s", s)
	return s, false
}

type event struct {
	Type     string `json:"type"`
	Username string `json:"username"`
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail"`
}

// loginEvents waits until n login events of typ exist for user and returns them.
func (p *proc) loginEvents(t *testing.T, user, typ string, n int) []event {
	t.Helper()
	var evs []event
	testutil.Eventually(t, 5*time.Second, func() bool {
		var page struct {
			Events []event `json:"events"`
		}
		if _, err := p.api("GET", "/v1/events?limit=1000&type="+typ+"&user="+user, nil, &page); err != nil {
			t.Fatal(err)
		}
		evs = page.Events
		return len(evs) >= n
	}, fmt.Sprintf("%d %s events for %s", n, typ, user))
	return evs
}

// TestRADIUSLoginThroughDaemon: the real daemon, authn and store behind
// FreeRADIUS' radclient.
func TestRADIUSLoginThroughDaemon(t *testing.T) {
	dir := t.TempDir()
	text, addr := doorsConfig(t, dir)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test"}, nil)
	p.api("POST", "/v1/groups", map[string]any{"name": "staff"}, nil)
	p.api("PUT", "/v1/groups/staff/members/alice", nil, nil)

	if _, ok := radclient(t, addr, "alice", "anything"); ok {
		t.Fatal("a user without a password must be rejected")
	}
	if _, err := p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "radius pass 1"}, nil); err != nil {
		t.Fatal(err)
	}
	out, ok := radclient(t, addr, "alice", "radius pass 1")
	if !ok || !strings.Contains(out, "Tunnel-Private-Group-Id") || !strings.Contains(out, "42") {
		t.Fatalf("accept with the staff VLAN expected:\n%s", out)
	}
	if _, ok := radclient(t, addr, "alice@example.test", "radius pass 1"); !ok {
		t.Fatal("email as User-Name must work")
	}
	if _, ok := radclient(t, addr, "alice", "wrong"); ok {
		t.Fatal("wrong password accepted")
	}
	p.api("POST", "/v1/users/alice/suspend", nil, nil)
	if _, ok := radclient(t, addr, "alice", "radius pass 1"); ok {
		t.Fatal("suspended user accepted")
	}
	evs := p.loginEvents(t, "alice", "radius_auth", 5)
	var got []string
	for _, e := range evs {
		got = append(got, e.Outcome+":"+e.Reason)
	}
	want := "failure:pending success: success: failure:bad_password failure:suspended"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	if !strings.Contains(evs[2].Detail, "cached") {
		t.Fatalf("the repeat login must hit the credential cache: %+v", evs[2])
	}
}

// TestNoPlaintextAtRest: passwords set through the API and the CLI, used
// to log in, then searched for in the data dir, the logs and the events.
func TestNoPlaintextAtRest(t *testing.T) {
	dir := t.TempDir()
	text, addr := doorsConfig(t, dir)
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	apiPW := "Plaintext-Via-API-7Q"
	cliPW := "Plaintext-Via-CLI-9Z"
	p.api("POST", "/v1/users", map[string]any{"username": "ann", "email": "ann@example.test"}, nil)
	p.api("POST", "/v1/users", map[string]any{"username": "ben", "email": "ben@example.test"}, nil)
	if _, err := p.api("PUT", "/v1/users/ann/password", map[string]string{"password": apiPW}, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := p.cli(cliPW+"\n", "user", "passwd", "ben"); err != nil {
		t.Fatal(err, out)
	}
	for _, c := range []struct{ user, pw string }{{"ann", apiPW}, {"ben", cliPW}} {
		if _, ok := radclient(t, addr, c.user, c.pw); !ok {
			t.Fatalf("%s cannot log in", c.user)
		}
		radclient(t, addr, c.user, c.pw+"-typo") // a failed attempt is logged too
	}
	p.loginEvents(t, "ben", "radius_auth", 2)
	evJSON, err := p.cli("", "events", "-o", "json", "-limit", "1000")
	if err != nil {
		t.Fatal(err)
	}
	evTable, _ := p.cli("", "events", "-limit", "1000")
	userJSON, _ := p.cli("", "user", "get", "ann", "-o", "json")
	p.stop() // flush everything to disk

	haystacks := map[string][]byte{"daemon log": []byte(p.logs()), "events json": []byte(evJSON),
		"events table": []byte(evTable), "user json": []byte(userJSON)}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && path != cfgPath {
			b, _ := os.ReadFile(path)
			haystacks[path] = b
		}
		return nil
	})
	if len(haystacks) < 6 {
		t.Fatalf("scanned too little: %v", len(haystacks))
	}
	for name, b := range haystacks {
		for _, pw := range []string{apiPW, cliPW, apiPW + "-typo", cliPW + "-typo"} {
			if bytes.Contains(b, []byte(pw)) {
				t.Errorf("%s contains the plaintext password %q", name, pw)
			}
		}
	}
	// The events really are there (the scan looked at real output).
	var page struct {
		Events []event `json:"events"`
	}
	if err := json.Unmarshal([]byte(evJSON), &page); err != nil || len(page.Events) < 6 {
		t.Fatalf("event output too small to mean anything: %v %d", err, len(page.Events))
	}
}

// radclientSilent reports whether a request got no answer at all (the
// daemon drops packets from unknown clients).
func radclientSilent(t *testing.T, addr, user, pass string) bool {
	t.Helper()
	bin := testutil.RequireBinary(t, "radclient")
	dict := t.TempDir()
	os.WriteFile(filepath.Join(dict, "dictionary"), []byte("# empty user dictionary\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-d", dict, "-D", "/usr/share/freeradius", "-x", "-r", "1", "-t", "1", addr, "auth", radiusSecret)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("User-Name = %q\nUser-Password = %q\nMessage-Authenticator = 0x00\n", user, pass))
	out, _ := cmd.CombinedOutput()
	return !strings.Contains(string(out), "Received Access-")
}

// TestRADIUSClientsReloadOnSIGHUP: a NAS added to the config is served
// after SIGHUP, without a restart.
func TestRADIUSClientsReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	text, addr := doorsConfig(t, dir)
	// Start with a client that is not us.
	narrow := strings.Replace(text, `networks = ["127.0.0.0/8"]`, `networks = ["127.0.0.2/32"]`, 1)
	cfgPath := writeConfig(t, dir, narrow)
	p := startDaemon(t, dir, cfgPath)
	p.api("POST", "/v1/users", map[string]any{"username": "nas", "email": "nas@example.test"}, nil)
	p.api("PUT", "/v1/users/nas/password", map[string]string{"password": "Nas-Password-1"}, nil)
	if !radclientSilent(t, addr, "nas", "Nas-Password-1") {
		t.Fatal("a request from an unknown client must get no answer")
	}
	writeConfig(t, dir, text)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(p.logs(), "RADIUS clients reloaded") }, "reload logged")
	if _, ok := radclient(t, addr, "nas", "Nas-Password-1"); !ok {
		t.Fatal("after SIGHUP the new client must be served")
	}
}
