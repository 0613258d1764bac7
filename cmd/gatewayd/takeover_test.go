package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// takeoverConfig: RADIUS and LDAP doors plus an Entra directory pointed
// at the fake Graph.
func takeoverConfig(t *testing.T, dir string, fg *fakegraph.Server) (text, radiusAddr, ldapURL string) {
	t.Helper()
	t.Setenv("GW_TEST_GRAPH_SECRET", fakegraph.DefaultClientSecret)
	text, radiusAddr = doorsConfig(t, dir)
	ldapAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	text = strings.Replace(text, "[ldap]\nlisten = \"\"\n", fmt.Sprintf("[ldap]\nlisten = %q\nbase_dn = \"dc=example,dc=test\"\n", ldapAddr), 1)
	text += fmt.Sprintf(`
[sync]
backoff_base = "50ms"
backoff_max = "500ms"
remote_check_interval = "0s"

[[directory]]
type = "entra"
name = "m365"
tenant_id = %q
client_id = %q
client_secret = "env:GW_TEST_GRAPH_SECRET"
authority_url = %q
graph_url = %q
`, fakegraph.DefaultTenant, fakegraph.DefaultClientID, fg.URL(), fg.URL())
	return text, radiusAddr, "ldap://" + ldapAddr
}

func passwordPatches(fg *fakegraph.Server, upn string) int {
	u, ok := fg.User(upn)
	if !ok {
		return 0
	}
	n := 0
	for _, q := range fg.Requests() {
		if q.Method == "PATCH" && q.HadPasswordProfile && q.Status < 300 && strings.Contains(q.Path, u.ID) {
			n++
		}
	}
	return n
}

func waitPatches(t *testing.T, fg *fakegraph.Server, upn string, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool { return passwordPatches(fg, upn) == n },
		fmt.Sprintf("%d password pushes for %s", n, upn))
}

func ldapBind(t *testing.T, url, dn, pw string) bool {
	t.Helper()
	bin := testutil.RequireBinary(t, "ldapsearch")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-x", "-H", url, "-D", dn, "-w", pw, "-b", "", "-s", "base").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Invalid credentials") {
		t.Fatalf("ldapsearch: %v\n%s", err, out)
	}
	return err == nil
}

// TestTakeoverThroughDoors: SPEC 3.3 and 3.4 through the real daemon.
func TestTakeoverThroughDoors(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	dir := t.TempDir()
	text, radiusAddr, ldapURL := takeoverConfig(t, dir, fg)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	const upn = "alice@example.test"
	dn := "uid=alice,ou=users,dc=example,dc=test"

	p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": upn, "first_name": "Alice", "last_name": "L"}, nil)
	p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "First-Password-1"}, nil)
	if out, err := p.cli("", "bind", "m365", "-user", "alice"); err != nil {
		t.Fatal(err, out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { u, ok := fg.User(upn); return ok && u.AccountEnabled }, "account created")
	// Created with a random password: the plaintext only arrives with a login.
	if n := passwordPatches(fg, upn); n != 0 {
		t.Fatalf("%d pushes before any login", n)
	}

	if _, ok := radclient(t, radiusAddr, "alice", "First-Password-1"); !ok {
		t.Fatal("radius login failed")
	}
	waitPatches(t, fg, upn, 1)
	if !fg.PasswordMatches(upn, "First-Password-1") {
		t.Fatal("the pushed password is not the login's")
	}
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			radclient(t, radiusAddr, "alice", "First-Password-1")
		} else if !ldapBind(t, ldapURL, dn, "First-Password-1") {
			t.Fatal("ldap bind failed")
		}
	}
	p.loginEvents(t, "alice", "radius_auth", 6)
	if n := passwordPatches(fg, upn); n != 1 {
		t.Fatalf("ten repeat logins caused %d extra pushes; an unchanged password must not be pushed", n-1)
	}

	// The user changes their own password over LDAP (SPEC 3.4): one push.
	bin := testutil.RequireBinary(t, "ldappasswd")
	out, err := exec.Command(bin, "-x", "-H", ldapURL, "-D", dn, "-w", "First-Password-1", "-a", "First-Password-1", "-s", "Second-Password-2").CombinedOutput()
	if err != nil {
		t.Fatalf("ldappasswd: %v\n%s", err, out)
	}
	waitPatches(t, fg, upn, 2)
	if !fg.PasswordMatches(upn, "Second-Password-2") {
		t.Fatal("the changed password did not reach Entra")
	}
	// An admin reset, no login: one push.
	if out, err := p.cli("Third-Password-3\n", "user", "passwd", "alice"); err != nil {
		t.Fatal(err, out)
	}
	waitPatches(t, fg, upn, 3)
	// The push is recorded only after the connector reads the new
	// lastPasswordChangeDateTime back; a cloud change before that would be
	// indistinguishable from our own push.
	testutil.Eventually(t, 10*time.Second, func() bool {
		var v struct {
			Directories []struct {
				PushedVersion uint64 `json:"pushed_password_version"`
				PushPending   bool   `json:"password_push_pending"`
			} `json:"directories"`
		}
		p.api("GET", "/v1/users/alice/sync", nil, &v)
		return len(v.Directories) == 1 && v.Directories[0].PushedVersion == 3 && !v.Directories[0].PushPending
	}, "push of version 3 recorded")
	// Changed in the cloud: the next login pushes the gateway's again.
	fg.SetClock(func() time.Time { return time.Now().Add(10 * time.Second) })
	fg.SetPassword(upn)
	radclient(t, radiusAddr, "alice", "Third-Password-3")
	waitPatches(t, fg, upn, 4)

	out2, err := p.cli("", "user", "sync", "alice")
	if err != nil || !strings.Contains(out2, "m365") || !strings.Contains(out2, "v3 of v3") {
		t.Fatalf("user sync: %v\n%s", err, out2)
	}
	// Suspend disables the account; nothing is ever deleted.
	p.cli("", "user", "suspend", "alice")
	testutil.Eventually(t, 10*time.Second, func() bool { u, _ := fg.User(upn); return !u.AccountEnabled }, "disabled on suspend")
	if fg.Count("DELETE", fakegraph.KindUser) != 0 {
		t.Fatal("DELETE reached Graph")
	}
}

// TestProvisioningSurvivesSIGKILL: bind a group of users, kill the
// daemon mid-queue, restart: every account exists exactly once.
func TestProvisioningSurvivesSIGKILL(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	fg.Latency(30 * time.Millisecond) // keep work in flight at the kill
	dir := t.TempDir()
	text, _, _ := takeoverConfig(t, dir, fg)
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	p.api("POST", "/v1/groups", map[string]any{"name": "staff"}, nil)
	const n = 30
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("u%02d", i)
		p.api("POST", "/v1/users", map[string]any{"username": name, "email": name + "@example.test"}, nil)
		p.api("PUT", "/v1/groups/staff/members/"+name, nil, nil)
	}
	if _, err := p.api("PUT", "/v1/directories/m365/groups/staff", nil, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return len(fg.Users()) >= 3 }, "provisioning under way")
	p.kill()
	created := len(fg.Users())
	if created >= n {
		t.Logf("all %d were created before the kill; the restart still must not duplicate", n)
	}
	fg.Latency(0)
	startDaemon(t, dir, cfgPath)
	testutil.Eventually(t, 20*time.Second, func() bool { return len(fg.Users()) == n }, "every account exists after restart")
	seen := map[string]int{}
	for _, u := range fg.Users() {
		seen[strings.ToLower(u.UserPrincipalName)]++
	}
	for upn, c := range seen {
		if c != 1 {
			t.Fatalf("%s exists %d times", upn, c)
		}
	}
	if posts := fg.Count("POST", fakegraph.KindUsers); posts != n {
		t.Logf("POST /users: %d for %d users (a POST in flight at the kill may have been answered 400 duplicate)", posts, n)
	}
	t.Logf("%d of %d accounts existed at the kill; all %d exactly once after restart", created, n, n)
}

// TestPendingPushCompletesAtNextLogin (SPEC 3.7): the directory is down
// when the password changes, the daemon restarts (the plaintext is gone),
// and the next login completes the push.
func TestPendingPushCompletesAtNextLogin(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	dir := t.TempDir()
	text, radiusAddr, _ := takeoverConfig(t, dir, fg)
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	const upn = "pat@example.test"
	p.api("POST", "/v1/users", map[string]any{"username": "pat", "email": upn}, nil)
	p.api("PUT", "/v1/users/pat/password", map[string]string{"password": "Before-Outage-1"}, nil)
	p.api("PUT", "/v1/directories/m365/users/pat", nil, nil)
	testutil.Eventually(t, 10*time.Second, func() bool { _, ok := fg.User(upn); return ok }, "account created")

	fg.SetDown(true)
	if _, err := p.api("PUT", "/v1/users/pat/password", map[string]string{"password": "During-Outage-2"}, nil); err != nil {
		t.Fatal(err)
	}
	syncState := func() (pending bool, attempts int) {
		var v struct {
			Directories []struct {
				PushPending bool `json:"password_push_pending"`
				Attempts    int  `json:"attempts"`
			} `json:"directories"`
		}
		p.api("GET", "/v1/users/pat/sync", nil, &v)
		if len(v.Directories) == 0 {
			return false, 0
		}
		return v.Directories[0].PushPending, v.Directories[0].Attempts
	}
	testutil.Eventually(t, 10*time.Second, func() bool { pending, n := syncState(); return pending && n >= 1 }, "push pending and retried")
	p.kill()
	fg.SetDown(false)
	p = startDaemon(t, dir, cfgPath)
	if pending, _ := syncState(); !pending {
		t.Fatal("the pending marker must survive the restart")
	}
	if n := passwordPatches(fg, upn); n != 0 {
		t.Fatalf("%d pushes without a plaintext", n)
	}
	if _, ok := radclient(t, radiusAddr, "pat", "During-Outage-2"); !ok {
		t.Fatal("login failed")
	}
	waitPatches(t, fg, upn, 1)
	if !fg.PasswordMatches(upn, "During-Outage-2") {
		t.Fatal("the completed push is not the current password")
	}
	testutil.Eventually(t, 5*time.Second, func() bool { pending, _ := syncState(); return !pending }, "marker cleared")
}
