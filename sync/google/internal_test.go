package google

import (
	"encoding/json"
	"strings"
	"testing"

	admin "google.golang.org/api/admin/directory/v1"

	"github.com/gatewayd/gatewayd/internal/sha512crypt"
	gsync "github.com/gatewayd/gatewayd/sync"
)

func TestRandomPasswordHash(t *testing.T) {
	a, err := randomPasswordHash()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := randomPasswordHash()
	if sha512crypt.Validate(a) != nil || a == b {
		t.Fatalf("%s / %s", a, b)
	}
	// Google refuses a hash of more rounds than it accepts.
	if n, err := sha512crypt.Rounds(a); err != nil || n > GoogleMaxRounds {
		t.Fatalf("rounds %d, %v: Google accepts at most %d", n, err, GoogleMaxRounds)
	}
}

func TestUserNames(t *testing.T) {
	cases := []struct {
		name       string
		a          gsync.Account
		given, fam string
	}{
		{"both", gsync.Account{GivenName: "Alice", Surname: "Liddell", DisplayName: "X Y"}, "Alice", "Liddell"},
		{"from display name", gsync.Account{DisplayName: "Mary Ann Evans"}, "Mary Ann", "Evans"},
		{"one-word display name", gsync.Account{DisplayName: "Cher"}, "Cher", "Cher"},
		{"only username", gsync.Account{MailNickname: "svc-backup", UPN: "svc-backup@example.com"}, "svc-backup", "svc-backup"},
		{"only UPN", gsync.Account{UPN: "bob@example.com"}, "bob", "bob"},
		{"given missing", gsync.Account{Surname: "Liddell", DisplayName: "Alice Liddell"}, "Alice", "Liddell"},
		{"given missing, display is surname first", gsync.Account{Surname: "Liddell", DisplayName: "Liddell Alice", MailNickname: "al"}, "al", "Liddell"},
		{"surname missing", gsync.Account{GivenName: "Alice", DisplayName: "Alice Liddell"}, "Alice", "Liddell"},
		{"surname missing, no display", gsync.Account{GivenName: "Alice", MailNickname: "alice"}, "Alice", "alice"},
		{"control characters", gsync.Account{GivenName: "Al\nice", Surname: " Lid\tdell "}, "Al ice", "Lid dell"},
		{"too long", gsync.Account{GivenName: strings.Repeat("é", 70), Surname: "X"}, strings.Repeat("é", 60), "X"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, f := userNames(tc.a)
			if g != tc.given || f != tc.fam {
				t.Fatalf("got %q %q, want %q %q", g, f, tc.given, tc.fam)
			}
		})
	}
}

func TestGroupQueryAndEmail(t *testing.T) {
	for in, want := range map[string]string{
		"Sales":         `name='Sales'`,
		"O'Brien's":     `name='O\'Brien\'s'`,
		`back\slash`:    `name='back\\slash'`,
		"Sales & Leads": `name='Sales & Leads'`,
	} {
		if got := groupQuery(in); got != want {
			t.Errorf("groupQuery(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Sales Team":            "sales-team",
		"  VPN  users ":         "vpn-users",
		"O'Brien.Ops":           "obrien.ops",
		"..a..b..":              "a.b",
		"Ünïcode":               "ncode",
		"!!!":                   "",
		strings.Repeat("a", 80): strings.Repeat("a", 64),
	} {
		if got := groupLocalPart(in); got != want {
			t.Errorf("groupLocalPart(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAttributeWrite(t *testing.T) {
	a := gsync.Account{Attributes: map[string]string{
		"organizations.title": "Engineer", "organizations.department": "R&D",
		"phones.mobile": "+1 555 0100", "phones.work": "+1 555 0199",
		"addresses.work": "1 Main St, Oxford", "externalIds.organization": "E-42", "orgUnitPath": "/Staff",
		"HR.badge": "1234", "loginShell": "/bin/bash", "jobTitle": "x",
	}, ManagerUPN: "boss@example.com"}
	w, refused := newAttrWrite(a, false)
	var names []string
	for _, r := range refused {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "jobTitle,loginShell" {
		t.Fatalf("refused %v", refused)
	}
	u := &admin.User{}
	w.apply(u)
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		`"organizations":[{"title":"Engineer","department":"R\u0026D","primary":true,"type":"work"}]`,
		`"phones":[{"type":"work","value":"+1 555 0199","primary":true},{"type":"mobile","value":"+1 555 0100"}]`,
		`"addresses":[{"type":"work","formatted":"1 Main St, Oxford","primary":true}]`,
		`"externalIds":[{"type":"organization","value":"E-42"}]`,
		`"relations":[{"type":"manager","value":"boss@example.com"}]`,
		`"orgUnitPath":"/Staff"`,
		`"customSchemas":{"HR":{"badge":"1234"}}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in %s", want, got)
		}
	}

	// On update, what is cleared goes: a field left with nothing is sent
	// empty.
	w, _ = newAttrWrite(gsync.Account{Attributes: map[string]string{"organizations.title": "Lead"},
		Clear: []string{"organizations.department", "phones.mobile", "HR.badge"}, ClearManager: true}, true)
	u = &admin.User{}
	w.apply(u)
	b, _ = json.Marshal(u)
	got = string(b)
	for _, want := range []string{`"organizations":[{"title":"Lead","primary":true,"type":"work"}]`, `"phones":[]`,
		`"relations":[]`, `"customSchemas":{"HR":{"badge":null}}`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in %s", want, got)
		}
	}
	// On create nothing is cleared.
	w, _ = newAttrWrite(gsync.Account{Clear: []string{"organizations.title"}, ClearManager: true}, false)
	u = &admin.User{}
	w.apply(u)
	if b, _ = json.Marshal(u); string(b) != "{}" {
		t.Errorf("create with clears: %s", b)
	}
}

func TestCheckProperty(t *testing.T) {
	for p, ok := range map[string]bool{
		"organizations.title": true, "organizations.costCenter": true, "organizations.salary": false,
		"phones.work": true, "phones.fax": false, "addresses.home": true, "relations.manager": true,
		"relations.assistant": true, "externalIds.organization": true, "orgUnitPath": true, "HR.badge": true,
		"locations.area": false, "jobTitle": false, "loginShell": false, "organizations": false,
	} {
		if err := checkProperty(p); (err == nil) != ok {
			t.Errorf("checkProperty(%q) = %v", p, err)
		}
	}
	for name, remote := range DefaultAttributes() {
		if err := checkProperty(remote); err != nil {
			t.Errorf("default %s → %s: %v", name, remote, err)
		}
	}
}
