package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCLI drives every CLI subcommand against a running daemon.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	p := startDaemon(t, dir, writeConfig(t, dir, testConfig(t, dir, "")))

	steps := []struct {
		stdin string
		args  []string
		want  []string // substrings of the output
		fail  bool
	}{
		{"", []string{"user", "create", "-username", "carol", "-email", "carol@example.test", "-first-name", "Carol", "-last-name", "Danvers"}, []string{"carol", "pending"}, false},
		{"", []string{"user", "create", "-username", "CAROL", "-email", "c2@example.test"}, []string{"already"}, true},
		{"", []string{"user", "create", "-username", "dan", "-email", "dan@example.test", "-staged", "-service-account"}, []string{"staged", "service account:      true"}, false},
		{"", []string{"user", "get", "carol"}, []string{"Carol", "uid number"}, false},
		{"", []string{"user", "list"}, []string{"USERNAME", "carol", "dan", "Carol Danvers"}, false},
		{"", []string{"user", "list", "-limit", "1"}, []string{"carol", "(more: -after carol)"}, false},
		{"", []string{"user", "update", "carol", "-display-name", "Captain"}, []string{"Captain"}, false},
		{"", []string{"user", "update", "carol"}, []string{"nothing to change"}, true},
		{"", []string{"user", "update", "carol", "-attr", "title=Engineer", "-attr", "loginShell=/bin/zsh"}, []string{"attribute title:", "Engineer", "/bin/zsh"}, false},
		{"", []string{"user", "update", "carol", "-attr", "title=", "-attr", "department=R&D"}, []string{"attribute department:", "R&D", "/bin/zsh"}, false},
		{"", []string{"user", "update", "carol", "-attr", "novalue"}, []string{"want NAME=VALUE"}, true},
		{"Correct horse battery 9\n", []string{"user", "passwd", "carol"}, []string{"password set for carol"}, false},
		{"", []string{"user", "passwd", "carol"}, []string{"no password on standard input"}, true},
		{"short\n", []string{"user", "passwd", "carol"}, []string{"at least 8"}, true},
		{"", []string{"user", "suspend", "carol"}, []string{"suspended"}, false},
		{"", []string{"user", "unsuspend", "carol"}, []string{"active"}, false},
		{"", []string{"user", "unlock", "carol"}, []string{"carol"}, false},
		{"", []string{"group", "create", "-name", "staff", "-description", "All staff"}, []string{"staff", "All staff"}, false},
		{"", []string{"group", "add-member", "staff", "carol"}, []string{"added carol to group staff"}, false},
		{"", []string{"group", "get", "staff"}, []string{"members: carol"}, false},
		{"", []string{"group", "list"}, []string{"staff"}, false},
		{"", []string{"group", "remove-member", "staff", "carol"}, []string{"removed carol from group staff"}, false},
		{"", []string{"group", "delete", "staff"}, []string{"deleted group staff"}, false},
		{"", []string{"events", "-user", "carol"}, []string{"user_create", "password_change", "user_suspend"}, false},
		{"", []string{"events", "-type", "password_change"}, []string{"password_change", "password version 1"}, false},
		{"", []string{"user", "delete", "dan"}, []string{"deleted user dan"}, false},
		{"", []string{"user", "get", "dan"}, []string{`no user with id or username "dan"`}, true},
		{"", []string{"user", "frobnicate"}, []string{"unknown command"}, true},
	}
	for _, s := range steps {
		out, err := p.cli(s.stdin, s.args...)
		if (err != nil) != s.fail {
			t.Fatalf("gatewayd %s: err=%v, want failure=%v\n%s", strings.Join(s.args, " "), err, s.fail, out)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Fatalf("gatewayd %s: output lacks %q:\n%s", strings.Join(s.args, " "), w, out)
			}
		}
	}

	// -o json is machine-readable.
	out, err := p.cli("", "user", "get", "carol", "-o", "json")
	if err != nil {
		t.Fatal(err, out)
	}
	var u struct {
		Username        string `json:"username"`
		PasswordVersion int    `json:"password_version"`
	}
	if err := json.Unmarshal([]byte(out), &u); err != nil || u.Username != "carol" || u.PasswordVersion != 1 {
		t.Fatalf("json output %q: %v", out, err)
	}
	var attrs struct {
		Attributes map[string]string `json:"attributes"`
	}
	json.Unmarshal([]byte(out), &attrs)
	if len(attrs.Attributes) != 2 || attrs.Attributes["department"] != "R&D" || attrs.Attributes["loginShell"] != "/bin/zsh" {
		t.Fatalf("-attr title= must remove title and keep the others: %v", attrs.Attributes)
	}
	out, err = p.cli("", "events", "-o", "json", "-limit", "2")
	var page struct {
		Events []map[string]any `json:"events"`
		Next   uint64           `json:"next"`
	}
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Events) != 2 || page.Next == 0 {
		t.Fatalf("events json paging: %v %q", err, out)
	}
}
