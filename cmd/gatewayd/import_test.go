package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// TestImportFromEntra (SPEC 4.7): a tenant of 250 enabled users across
// pages; importing 5 with one email conflict gives 4 imported and one
// clear failure line.
func TestImportFromEntra(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	fg.MaxPageSize(100)
	for i := 1; i <= 250; i++ {
		fg.AddUser(fakegraph.User{UserPrincipalName: fmt.Sprintf("emp%03d@example.test", i), MailNickname: fmt.Sprintf("emp%03d", i),
			GivenName: "Emp", Surname: fmt.Sprintf("No%d", i), DisplayName: fmt.Sprintf("Employee %d", i), AccountEnabled: true})
	}
	fg.AddUser(fakegraph.User{UserPrincipalName: "gone@example.test", MailNickname: "gone", GivenName: "G", Surname: "One", AccountEnabled: false})
	dir := t.TempDir()
	text, _, _ := takeoverConfig(t, dir, fg)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	// A local user already holds one of the emails.
	p.api("POST", "/v1/users", map[string]any{"username": "local", "email": "EMP200@example.test"}, nil)

	// Listing walks the pages.
	var seen int
	page := ""
	for i := 0; i < 10; i++ {
		var v struct {
			Users []struct {
				UPN    string `json:"upn"`
				Exists bool   `json:"exists"`
			} `json:"users"`
			Next string `json:"next"`
		}
		path := "/v1/directories/m365/import"
		if page != "" {
			path += "?page=" + url.QueryEscape(page)
		}
		if _, err := p.api("GET", path, nil, &v); err != nil {
			t.Fatal(err)
		}
		for _, u := range v.Users {
			if u.UPN == "gone@example.test" {
				t.Fatal("a disabled account was offered for import")
			}
			if u.Exists != (u.UPN == "emp200@example.test") {
				t.Fatalf("%s exists=%v", u.UPN, u.Exists)
			}
		}
		seen += len(v.Users)
		if v.Next == "" {
			break
		}
		page = v.Next
	}
	if seen != 250 {
		t.Fatalf("listed %d users, want 250", seen)
	}

	out, err := p.cli("", "import", "users", "m365", "emp001@example.test", "emp120@example.test", "emp200@example.test", "emp240@example.test", "emp250@example.test")
	if err == nil {
		t.Fatalf("one user failed, the command must say so with a non-zero exit:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var imported, failed int
	for _, l := range lines {
		switch {
		case strings.Contains(l, ": imported as emp"):
			imported++
		case strings.HasPrefix(l, "emp200@example.test: failed (email exists"):
			failed++
		}
	}
	if imported != 4 || failed != 1 {
		t.Fatalf("want 4 imported and one email-exists failure:\n%s", out)
	}
	var u struct {
		State          string `json:"state"`
		PasswordStatus string `json:"password_status"`
		FirstName      string `json:"first_name"`
	}
	if _, err := p.api("GET", "/v1/users/emp120", nil, &u); err != nil {
		t.Fatal(err)
	}
	if u.State != "staged" || u.PasswordStatus != "pending" || u.FirstName != "Emp" {
		t.Fatalf("imported user %+v: want the configured default state (staged) and password pending", u)
	}
}

// TestImportKeepsTheAccountWorking: importing a user who signs in to the
// tenant today takes the account over without disabling it, although the
// import makes them staged with no password; the activation pushes the
// password once. A suspend still disables it.
func TestImportKeepsTheAccountWorking(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	const upn = "erin@example.test"
	fg.AddUser(fakegraph.User{UserPrincipalName: upn, MailNickname: "erin", GivenName: "Erin", Surname: "Doe", AccountEnabled: true})
	dir := t.TempDir()
	text, radiusAddr, _ := takeoverConfig(t, dir, fg)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	if out, err := p.cli("", "import", "users", "m365", upn); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	taken := func() bool {
		var v struct {
			Directories []struct {
				Provisioned bool   `json:"provisioned"`
				RemoteID    string `json:"remote_id"`
			} `json:"directories"`
		}
		p.api("GET", "/v1/users/erin/sync", nil, &v)
		return len(v.Directories) == 1 && v.Directories[0].Provisioned && v.Directories[0].RemoteID != ""
	}
	testutil.Eventually(t, 10*time.Second, taken, "the imported account taken over")
	enabled := func() bool { u, ok := fg.User(upn); return ok && u.AccountEnabled }
	if !enabled() {
		t.Fatal("importing a staged user disabled the account they use in the tenant")
	}

	// The admin activates erin: a first password (pushed: activation takes
	// the account over, SPEC 3.4), then active. Her sign-in state is still
	// left as the tenant has it, and her first gateway login pushes nothing
	// more: the password is already there.
	if out, err := p.cli("Erin-Pw-42!\n", "user", "passwd", "erin"); err != nil {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	waitPatches(t, fg, upn, 1)
	if _, err := p.api("PATCH", "/v1/users/erin", map[string]any{"state": "active"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := radclient(t, radiusAddr, "erin", "Erin-Pw-42!"); !ok {
		t.Fatal("erin's first login was refused")
	}
	if !enabled() {
		t.Fatal("the account was disabled after the takeover")
	}

	// Off means off: a suspend disables the account as for any user.
	if _, err := p.api("POST", "/v1/users/erin/suspend", nil, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return !enabled() }, "the suspended user's account disabled")
	if n := passwordPatches(fg, upn); n != 1 {
		t.Fatalf("%d password pushes, want exactly one", n)
	}
}
