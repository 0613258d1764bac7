package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegoogle"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// googleConfig: the RADIUS door plus a Google directory on the fake.
func googleConfig(t *testing.T, dir string, fg *fakegoogle.Server) (text, radiusAddr string) {
	t.Helper()
	key := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(key, fg.ServiceAccountKey(), 0o600); err != nil {
		t.Fatal(err)
	}
	fg.SetDomains("example.test")
	text, radiusAddr = doorsConfig(t, dir)
	text += fmt.Sprintf(`
[sync]
backoff_base = "50ms"
backoff_max = "500ms"

[[directory]]
type = "google"
name = "workspace"
customer_id = %q
credentials_file = %q
admin_subject = %q
endpoint = %q
domains = ["example.test"]
`, fg.CustomerID(), key, fg.AdminSubject(), fg.Endpoint())
	return text, radiusAddr
}

func googlePushes(fg *fakegoogle.Server) (n int, allCrypt bool) {
	allCrypt = true
	for _, q := range fg.Requests() {
		if q.Kind == fakegoogle.KindUser && q.Method != "GET" && q.HadPassword && q.Status < 300 {
			n++
			allCrypt = allCrypt && q.HashFunction == "crypt"
		}
	}
	return n, allCrypt
}

// TestGoogleTakeoverThroughRADIUS: a real login's password reaches Google
// only as a $6$ hash that verifies, exactly once.
func TestGoogleTakeoverThroughRADIUS(t *testing.T) {
	fg := fakegoogle.New()
	defer fg.Close()
	dir := t.TempDir()
	text, radiusAddr := googleConfig(t, dir, fg)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	const pw = "Google-Plain-Text-9"
	p.api("POST", "/v1/users", map[string]any{"username": "gwen", "email": "gwen@example.test", "first_name": "Gwen", "last_name": "G"}, nil)
	p.api("PUT", "/v1/users/gwen/password", map[string]string{"password": pw}, nil)
	if out, err := p.cli("", "bind", "workspace", "-user", "gwen"); err != nil {
		t.Fatal(err, out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { u, ok := fg.User("gwen@example.test"); return ok && !u.Suspended }, "account created")
	creates := fg.Count("POST", fakegoogle.KindUsers)
	for i := 0; i < 6; i++ {
		if _, ok := radclient(t, radiusAddr, "gwen", pw); !ok {
			t.Fatal("login failed")
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool { n, _ := googlePushes(fg); return n >= 1 }, "password pushed")
	p.loginEvents(t, "gwen", "radius_auth", 6)
	n, crypt := googlePushes(fg)
	if n != 1 || !crypt {
		t.Fatalf("want exactly one push, as a crypt hash: %d pushes, all crypt=%v", n, crypt)
	}
	if u, _ := fg.User("gwen@example.test"); !strings.HasPrefix(u.PasswordHash, "$6$") || !fg.PasswordMatches("gwen@example.test", pw) {
		t.Fatalf("stored hash %q does not verify against the login's password", u.PasswordHash)
	}
	if fg.PlaintextSeen() != 0 || fg.Saw(pw) {
		t.Fatal("the plaintext reached Google")
	}
	if fg.Count("POST", fakegoogle.KindUsers) != creates {
		t.Fatal("a second account was created")
	}
	p.cli("", "user", "suspend", "gwen")
	testutil.Eventually(t, 10*time.Second, func() bool { u, _ := fg.User("gwen@example.test"); return u.Suspended }, "suspended in Google")
	if len(fg.DeletedUsers()) != 0 {
		t.Fatal("a user was deleted in Google")
	}
}

// TestGoogleProvisioningSurvivesSIGKILL: no duplicate account after a
// kill mid-queue.
func TestGoogleProvisioningSurvivesSIGKILL(t *testing.T) {
	fg := fakegoogle.New()
	defer fg.Close()
	fg.Latency(30 * time.Millisecond)
	dir := t.TempDir()
	text, _ := googleConfig(t, dir, fg)
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	p.api("POST", "/v1/groups", map[string]any{"name": "staff"}, nil)
	const n = 20
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("g%02d", i)
		p.api("POST", "/v1/users", map[string]any{"username": name, "email": name + "@example.test", "first_name": "G", "last_name": name}, nil)
		p.api("PUT", "/v1/groups/staff/members/"+name, nil, nil)
	}
	p.api("PUT", "/v1/directories/workspace/groups/staff", nil, nil)
	testutil.Eventually(t, 10*time.Second, func() bool { return len(fg.Users()) >= 3 }, "provisioning under way")
	p.kill()
	fg.Latency(0)
	startDaemon(t, dir, cfgPath)
	testutil.Eventually(t, 20*time.Second, func() bool { return len(fg.Users()) == n }, "every account exists after restart")
	seen := map[string]int{}
	for _, u := range fg.Users() {
		seen[strings.ToLower(u.PrimaryEmail)]++
	}
	for e, c := range seen {
		if c != 1 {
			t.Fatalf("%s exists %d times", e, c)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, g := range fg.Groups() {
			if g.Name == "staff" {
				return len(fg.MemberIDs(g.ID)) == n
			}
		}
		return false
	}, "the group and all its members exist")
}
