package ad

import (
	"strings"
	"testing"
	"unicode"

	"github.com/gatewayd/gatewayd/secret"
)

func TestGUIDRoundTrip(t *testing.T) {
	raw := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	s := guidString(raw)
	if s != "00112233-4455-6677-8899-aabbccddeeff" {
		t.Fatalf("guidString: %s", s)
	}
	b, err := guidBytes(s)
	if err != nil || string(b) != string(raw) {
		t.Fatalf("guidBytes: %x %v", b, err)
	}
	f, _ := guidFilter(s)
	if f != `(objectGUID=\33\22\11\00\55\44\77\66\88\99\aa\bb\cc\dd\ee\ff)` {
		t.Fatalf("filter: %s", f)
	}
	if _, err := guidBytes("not-a-guid"); err == nil {
		t.Fatal("a bad GUID was accepted")
	}
}

func TestUnicodePwd(t *testing.T) {
	// "\"ab\"" as UTF-16LE.
	if got := encodePassword("ab"); got != "\x22\x00a\x00b\x00\x22\x00" {
		t.Fatalf("%q", got)
	}
}

func TestRandomPasswordMeetsComplexity(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p := randomPassword()
		if len(p) != 24 || seen[p] {
			t.Fatalf("password %q", p)
		}
		seen[p] = true
		var l, u, d, s bool
		for _, r := range p {
			switch {
			case unicode.IsLower(r):
				l = true
			case unicode.IsUpper(r):
				u = true
			case unicode.IsDigit(r):
				d = true
			default:
				s = true
			}
		}
		if !(l && u && d && s) || DefaultPasswordPolicy.Check(secret.New([]byte(p))) != nil {
			t.Fatalf("password %q lacks a character class", p)
		}
	}
}

func TestPrincipalNameAndPasswords(t *testing.T) {
	c, err := New(Config{Name: "ad-corp", Server: Server{Realm: "EXAMPLE.TEST", URLs: []string{"ldaps://dc"}, BindDN: "CN=x", BindPassword: secret.New([]byte("p"))}})
	if err != nil {
		t.Fatal(err)
	}
	if c.root != "CN=Users,DC=EXAMPLE,DC=TEST" {
		t.Fatalf("root: %s", c.root)
	}
	if upn, err := c.PrincipalName("alice", "alice@other.example"); err != nil || upn != "alice@example.test" {
		t.Fatalf("%s %v", upn, err)
	}
	for _, bad := range []string{"", "a@b", "a/b", strings.Repeat("x", 21), "dot."} {
		if _, err := c.PrincipalName(bad, ""); err == nil {
			t.Errorf("%q accepted as a sAMAccountName", bad)
		}
	}
	if c.TakesPasswordOf("ad") || !c.TakesPasswordOf("local") {
		t.Fatal("TakesPasswordOf")
	}
	if _, err := New(Config{Server: Server{Realm: "EXAMPLE.TEST", URLs: []string{"ldaps://dc"}}}); err == nil {
		t.Fatal("no service account accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	var c DirectoryConfig
	c.Defaults()
	c.Name = "ad-corp"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "domain is required") {
		t.Fatalf("missing domain: %v", err)
	}
	c.Domain, c.Root = "corp", "not a dn"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "not a DN") {
		t.Fatalf("bad root: %v", err)
	}
	c.Root = "OU=Gateway,DC=example,DC=test"
	c.Domains = []string{"example.test"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "do not apply") {
		t.Fatalf("domains: %v", err)
	}
	c.Domains = nil
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewConnector(t.Context(), nil); err == nil {
		t.Fatal("a connector without its [[ad]] block")
	}
	c.Attributes["x"] = "unicodePwd"
	if err := c.Validate(); err == nil {
		t.Fatal("unicodePwd mapped")
	}
}
