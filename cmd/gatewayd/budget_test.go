package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// radRequest is one Access-Request for radclientBatch.
type radRequest struct {
	user, pass, station string
}

// radclientBatch sends reqs one after another through one radclient
// process (a file of requests) and returns how many were accepted and
// rejected. Every request must be answered.
func radclientBatch(t *testing.T, addr string, reqs []radRequest) (accepted, rejected int) {
	t.Helper()
	bin := testutil.RequireBinary(t, "radclient")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dictionary"), []byte("# empty user dictionary\n"), 0o644)
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "User-Name = %q\nUser-Password = %q\nMessage-Authenticator = 0x00\n", r.user, r.pass)
		if r.station != "" {
			fmt.Fprintf(&b, "Calling-Station-Id = %q\n", r.station)
		}
		b.WriteString("\n")
	}
	file := filepath.Join(dir, "requests")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// stdout only: radclient writes its "expected Access-Accept" notes
	// to stderr, which would interleave with the lines counted here.
	cmd := exec.CommandContext(ctx, bin, "-d", dir, "-D", "/usr/share/freeradius", "-p", "1", "-r", "2", "-t", "3",
		"-f", file, addr, "auth", radiusSecret)
	out, _ := cmd.Output()
	s := string(out)
	accepted, rejected = strings.Count(s, "Received Access-Accept"), strings.Count(s, "Received Access-Reject")
	if accepted+rejected != len(reqs) {
		t.Fatalf("radclient: %d of %d requests answered:\n%s", accepted+rejected, len(reqs), s)
	}
	return accepted, rejected
}

// TestFailureBudgetC3 (issue 14, C3) with real clients: a guesser behind
// a NAS (radclient from loopback) does not refuse the other users behind
// the same NAS, over RADIUS with or without a Calling-Station-Id, nor
// over LDAP from the same address (ldapwhoami), while the guesser itself
// is throttled, also once the account it guesses is locked. A spray of
// many names from one device meets that device's ceiling (another device
// is untouched); a spray from a NAS without Calling-Station-Id meets the
// NAS's ceiling, which then refuses everyone at that address: the
// documented trade-off.
//
// The rates are tiny, so nothing refills during the test however slow the
// machine: the outcome does not depend on timing.
func TestFailureBudgetC3(t *testing.T) {
	testutil.RequireBinary(t, "ldapwhoami")
	dir := t.TempDir()
	text, radiusAddr := doorsConfig(t, dir)
	ldapPort := testutil.FreePort(t)
	const base = "dc=c3,dc=test"
	const ldapBlock = "[ldap]\nlisten = \"\"\n"
	if !strings.Contains(text, ldapBlock) {
		t.Fatal("testConfig changed: no [ldap] block to replace")
	}
	text = strings.Replace(text, ldapBlock, fmt.Sprintf("[ldap]\nlisten = \"127.0.0.1:%d\"\nbase_dn = %q\n", ldapPort, base), 1)
	const (
		nameBurst   = 5
		sourceBurst = 20
	)
	text += fmt.Sprintf(`
[authn.lockout]
max_failures = 8
window = "15m"
duration = "15m"

[authn.rate_limit]
failures_per_second = 0.001
burst = %d
source_failures_per_second = 0.001
source_burst = %d
`, nameBurst, sourceBurst)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	for _, u := range []string{"alice", "bob", "carol"} {
		if _, err := p.api("POST", "/v1/users", map[string]any{"username": u, "email": u + "@example.test"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := p.api("PUT", "/v1/users/"+u+"/password", map[string]string{"password": "Right-Pw-" + u}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// sent counts the Access-Requests sent, so reasons can wait until
	// each has its event.
	sent := 0
	batch := func(t *testing.T, reqs []radRequest) (int, int) {
		sent += len(reqs)
		return radclientBatch(t, radiusAddr, reqs)
	}
	// reasons counts the radius_auth outcomes for a typed name (a
	// refusal before the lookup has no user id, only the name).
	reasons := func(name string) map[string]int {
		t.Helper()
		var evs []event
		testutil.Eventually(t, 10*time.Second, func() bool {
			var page struct {
				Events []event `json:"events"`
			}
			if _, err := p.api("GET", "/v1/events?limit=1000&type=radius_auth", nil, &page); err != nil {
				t.Fatal(err)
			}
			evs = page.Events
			return len(evs) >= sent
		}, "an event for every Access-Request sent")
		n := map[string]int{}
		for _, e := range evs {
			if e.Username == name {
				n[e.Reason]++
			}
		}
		return n
	}

	ldapOK := func(user string) bool {
		t.Helper()
		out, err := ldapTool(t, "", "ldapwhoami", "-x", "-H", fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort),
			"-D", "uid="+user+","+"ou=users,"+base, "-w", "Right-Pw-"+user)
		if err != nil && !strings.Contains(out, "Invalid credentials") {
			t.Fatalf("ldapwhoami %s: %v\n%s", user, err, out)
		}
		return err == nil
	}
	victims := func(t *testing.T, wantNoStation, wantLDAP bool) {
		t.Helper()
		if a, _ := batch(t, []radRequest{{"bob", "Right-Pw-bob", "aa-aa-aa-aa-aa-02"}}); a != 1 {
			t.Error("bob from another device behind the NAS was refused")
		}
		if a, _ := batch(t, []radRequest{{"bob", "Right-Pw-bob", ""}}); (a == 1) != wantNoStation {
			t.Errorf("bob without Calling-Station-Id: accepted %v, want %v", a == 1, wantNoStation)
		}
		if got := ldapOK("bob"); got != wantLDAP {
			t.Errorf("bob over LDAP from the NAS's address: bound %v, want %v", got, wantLDAP)
		}
	}
	guesses := func(user, station string, n int, spray bool) []radRequest {
		var rs []radRequest
		for i := range n {
			name := user
			if spray {
				name = fmt.Sprintf("%s%d", user, i)
			}
			rs = append(rs, radRequest{name, "wrong", station})
		}
		return rs
	}

	t.Run("guesser with station", func(t *testing.T) {
		batch(t, guesses("alice", "AA-AA-AA-AA-AA-01", 30, false))
		victims(t, true, true)
	})
	t.Run("guesser without station", func(t *testing.T) {
		batch(t, guesses("carol", "", 30, false))
		victims(t, true, true)
	})
	// The guessers were throttled: of 30 tries each, a name's budget let
	// nameBurst through (wrong passwords, then refusals of the lock once
	// there was one), and the rest were refused as rate limited.
	for _, u := range []string{"alice", "carol"} {
		if got := reasons(u); got["bad_password"]+got["locked"] > nameBurst || got["rate_limited"] < 30-nameBurst {
			t.Errorf("%s's guesser: %v, want at most %d tried and the rest rate limited", u, got, nameBurst)
		}
	}

	t.Run("lock refusals charged", func(t *testing.T) {
		// alice is not locked yet (5 failures of 8): three more from a
		// fresh device lock her, and that device's next tries on the
		// locked account spend its name budget until it is refused.
		before := reasons("alice")
		batch(t, guesses("alice", "aa-aa-aa-aa-aa-03", 10, false))
		after := reasons("alice")
		for _, w := range []struct {
			reason string
			n      int
		}{{"bad_password", 3}, {"locked", nameBurst - 3}, {"rate_limited", 10 - nameBurst}} {
			if got := after[w.reason] - before[w.reason]; got != w.n {
				t.Errorf("a fresh device at alice: %d %s, want %d (before %v, after %v)", got, w.reason, w.n, before, after)
			}
		}
		victims(t, true, true)
	})
	t.Run("spray from a device", func(t *testing.T) {
		_, rej := batch(t, guesses("nobody", "aa-aa-aa-aa-aa-04", sourceBurst+5, true))
		if rej != sourceBurst+5 {
			t.Fatalf("spray: %d rejected", rej)
		}
		if a, _ := batch(t, []radRequest{{"bob", "Right-Pw-bob", "AA-AA-AA-AA-AA-04"}}); a != 0 {
			t.Error("bob from the spraying device was accepted past its ceiling")
		}
		victims(t, true, true)
	})
	t.Run("spray from the nas without station", func(t *testing.T) {
		batch(t, guesses("nemo", "", sourceBurst+5, true))
		// The NAS's own ceiling is spent: everyone at its address without
		// a device of their own is refused, over LDAP too.
		victims(t, false, false)
	})
}
