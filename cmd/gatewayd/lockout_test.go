package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// TestLockoutDisablesAndReEnables (SPEC 3.8 with suspend_on_lockout):
// bad passwords over RADIUS lock the user and block sign-in in Entra;
// when the lock runs out the account is enabled again with no login,
// also when the daemon was SIGKILLed and restarted while the user was
// locked.
func TestLockoutDisablesAndReEnables(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	dir := t.TempDir()
	text, radiusAddr, _ := takeoverConfig(t, dir, fg)
	text += "suspend_on_lockout = true\n\n[authn.lockout]\nmax_failures = 3\nwindow = \"1m\"\nduration = \"3s\"\n"
	path := writeConfig(t, dir, text)
	p := startDaemon(t, dir, path)
	const upn = "lena@example.test"
	if _, err := p.api("POST", "/v1/users", map[string]any{"username": "lena", "email": upn}, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := p.cli("Lena-Pw-0001\n", "user", "passwd", "lena"); err != nil {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	if out, err := p.cli("", "bind", "m365", "-user", "lena"); err != nil {
		t.Fatalf("bind: %v\n%s", err, out)
	}
	enabled := func() bool { u, ok := fg.User(upn); return ok && u.AccountEnabled }
	testutil.Eventually(t, 10*time.Second, enabled, "lena's account provisioned and enabled")

	lockOut := func() {
		t.Helper()
		for i := 0; i < 3; i++ {
			if _, ok := radclient(t, radiusAddr, "lena", "wrong-password"); ok {
				t.Fatal("a wrong password was accepted")
			}
		}
		var u struct {
			PasswordStatus string `json:"password_status"`
		}
		if _, err := p.api("GET", "/v1/users/lena", nil, &u); err != nil || u.PasswordStatus != "locked" {
			t.Fatalf("after three bad passwords: %v %+v", err, u)
		}
		testutil.Eventually(t, 10*time.Second, func() bool { return !enabled() }, "sign-in blocked for the lockout")
	}

	reenabled := func() int {
		var evs struct {
			Events []struct{ Detail string } `json:"events"`
		}
		if _, err := p.api("GET", "/v1/events?user=lena&type=user_update_provision", nil, &evs); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs.Events {
			if strings.Contains(e.Detail, "re-enabled") {
				n++
			}
		}
		return n
	}

	lockOut()
	testutil.Eventually(t, 15*time.Second, enabled, "sign-in unblocked when the lock runs out, with no login")
	// Sync events are written in batches (up to 20 ms behind, more with
	// a slow fsync); the SIGKILL below may lose an unwritten one, which
	// the store's durability rule allows, so wait for it first.
	testutil.Eventually(t, 10*time.Second, func() bool { return reenabled() == 1 }, "the first re-enable event written")

	// Locked again, then killed: the restarted daemon re-enables on time.
	lockOut()
	p.kill()
	p = startDaemon(t, dir, path)
	testutil.Eventually(t, 15*time.Second, enabled, "sign-in unblocked after a restart while locked")
	if _, ok := radclient(t, radiusAddr, "lena", "Lena-Pw-0001"); !ok {
		t.Fatal("lena cannot log in once the lock ran out")
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return reenabled() == 2 }, "two re-enable events")
}
