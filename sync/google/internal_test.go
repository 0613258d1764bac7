package google

import (
	"encoding/json"
	"strings"
	"testing"

	admin "google.golang.org/api/admin/directory/v1"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// The reference vectors of Drepper's "Unix crypt using SHA-256 and
// SHA-512" for SHA-512 (checked against glibc's crypt(3) as well; the
// last one, rounds=10 clamped to 1000, is the specification's).
var cryptVectors = []struct {
	name, setting, password, want string
}{
	{"default rounds", "$6$saltstring", "Hello world!",
		"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"rounds=10000, salt truncated to 16", "$6$rounds=10000$saltstringsaltstring", "Hello world!",
		"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
	{"explicit rounds=5000 is kept", "$6$rounds=5000$toolongsaltstring", "This is just a test",
		"$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
	{"password over 64 bytes", "$6$rounds=1400$anotherlongsaltstring",
		"a very much longer text to encrypt.  This one even stretches over morethan one line.",
		"$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
	{"short salt, rounds=77777", "$6$rounds=77777$short", "we have a short salt string but not a short password",
		"$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
	{"16-char salt, rounds=123456", "$6$rounds=123456$asaltof16chars..", "a short string",
		"$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"},
	{"rounds below minimum clamped", "$6$rounds=10$roundstoolow", "the minimum number is still observed",
		"$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
	// From glibc's crypt(3), for the empty password.
	{"empty password", "$6$saltstring", "",
		"$6$saltstring$kyGrqt6gmjAdtFLPrflEFifSYLCWWq1pyx95SvqinLDy2UHmj0sTF0MSLMwxPFZc3tu5kQckI8fks0zOPda3n1"},
}

func TestCryptSHA512Vectors(t *testing.T) {
	for _, tc := range cryptVectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CryptSHA512([]byte(tc.password), tc.setting)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("CryptSHA512(%q, %q)\n got %s\nwant %s", tc.password, tc.setting, got, tc.want)
			}
			// The full hash works as the setting, as with crypt(3).
			if again, _ := CryptSHA512([]byte(tc.password), got); again != got {
				t.Fatalf("re-hash with the hash as setting: %s", again)
			}
			if err := ValidCryptSHA512(tc.want); err != nil {
				t.Fatalf("ValidCryptSHA512: %v", err)
			}
			if !VerifyCryptSHA512(tc.want, []byte(tc.password)) {
				t.Fatal("VerifyCryptSHA512 rejects the right password")
			}
			if VerifyCryptSHA512(tc.want, []byte(tc.password+"x")) {
				t.Fatal("VerifyCryptSHA512 accepts a wrong password")
			}
		})
	}
}

func TestNewCryptSHA512(t *testing.T) {
	pw := []byte("Correct-Horse-42")
	seen := map[string]bool{}
	for range 5 {
		h, err := NewCryptSHA512(pw)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidCryptSHA512(h); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		salt, _, _ := strings.Cut(strings.TrimPrefix(h, CryptPrefix), "$")
		if len(salt) != CryptSaltLen || !isCrypt64(salt) {
			t.Fatalf("salt %q: want 16 characters of the crypt alphabet", salt)
		}
		if strings.Contains(h, "rounds=") {
			t.Fatalf("%s: want the implicit default rounds", h)
		}
		if n, _ := CryptRounds(h); n != CryptDefaultRounds || n > GoogleMaxRounds {
			t.Fatalf("rounds %d", n)
		}
		if !VerifyCryptSHA512(h, pw) || VerifyCryptSHA512(h, []byte("correct-Horse-42")) {
			t.Fatal("verify")
		}
		if seen[salt] {
			t.Fatal("salt repeated")
		}
		seen[salt] = true
	}
}

func TestValidCryptSHA512(t *testing.T) {
	good := cryptVectors[0].want
	cases := []struct {
		name, hash string
	}{
		{"not $6$", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZF4qP0T7/"},
		{"md5", "$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1"},
		{"plaintext", "Hello world!"},
		{"no hash", "$6$saltstring"},
		{"short hash", good[:len(good)-1]},
		{"bad character", strings.Replace(good, "svn8", "sv*8", 1)},
		{"empty salt", "$6$$" + good[len("$6$saltstring$"):]},
		{"rounds not canonical", strings.Replace(cryptVectors[6].want, "rounds=1000", "rounds=0100", 1)},
		{"rounds out of range", strings.Replace(cryptVectors[6].want, "rounds=1000", "rounds=10", 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if ValidCryptSHA512(tc.hash) == nil {
				t.Fatalf("%q accepted", tc.hash)
			}
			if VerifyCryptSHA512(tc.hash, []byte("Hello world!")) {
				t.Fatal("verified")
			}
		})
	}
	if _, err := CryptSHA512([]byte("x"), "$6$rounds=abc$salt"); err == nil {
		t.Fatal("rounds=abc accepted")
	}
}

func TestRandomPasswordHash(t *testing.T) {
	a, err := randomPasswordHash()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := randomPasswordHash()
	if ValidCryptSHA512(a) != nil || a == b {
		t.Fatalf("%s / %s", a, b)
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
