package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
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
