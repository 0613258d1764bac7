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

func TestApplyAttributes(t *testing.T) {
	attrs := map[string]string{
		"jobTitle": "Engineer", "department": "R&D", "companyName": "",
		"mobilePhone": "+1 555 0100", "businessPhones": "+1 555 0199",
		"city": "Oxford", "employeeId": "E-42", "orgUnitPath": "/Staff",
		"HR.badge": "1234", "loginShell": "/bin/bash",
	}
	u := &admin.User{}
	ignored := applyAttributes(u, attrs, false)
	if len(ignored) != 1 || ignored[0] != "loginShell" {
		t.Fatalf("ignored %v", ignored)
	}
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		`"organizations":[{"title":"Engineer","department":"R\u0026D","primary":true,"type":"work"}]`,
		`"phones":[{"type":"work","value":"+1 555 0199","primary":true},{"type":"mobile","value":"+1 555 0100"}]`,
		`"addresses":[{"type":"work","locality":"Oxford","primary":true}]`,
		`"externalIds":[{"type":"organization","value":"E-42"}]`,
		`"orgUnitPath":"/Staff"`,
		`"customSchemas":{"HR":{"badge":"1234"}}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in %s", want, got)
		}
	}

	if m := strings.Join(MappedAttributes(), ","); !strings.Contains(m, "jobTitle") || !strings.Contains(m, "orgUnitPath") {
		t.Errorf("MappedAttributes = %s", m)
	}

	// On update, empty values clear.
	u = &admin.User{}
	applyAttributes(u, map[string]string{"jobTitle": "", "mobilePhone": "", "HR.badge": ""}, true)
	b, _ = json.Marshal(u)
	got = string(b)
	for _, want := range []string{`"organizations":[]`, `"phones":[]`, `"customSchemas":{"HR":{"badge":null}}`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in %s", want, got)
		}
	}
	// On create they are omitted.
	u = &admin.User{}
	applyAttributes(u, map[string]string{"jobTitle": "", "mobilePhone": ""}, false)
	if b, _ = json.Marshal(u); string(b) != "{}" {
		t.Errorf("create with empty values: %s", b)
	}
}
