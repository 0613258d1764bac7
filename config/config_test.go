package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gatewayd "github.com/gatewayd/gatewayd"
)

func TestExampleIsValid(t *testing.T) {
	c, err := Parse("gatewayd.toml.example", gatewayd.ExampleConfig)
	if err != nil {
		t.Fatalf("the shipped example must load as is:\n%v", err)
	}
	if c.DataDir != "./data" || c.Admin.Listen != "127.0.0.1:8480" || c.LDAP.BaseDN == "" {
		t.Fatalf("unexpected example values: %+v", c)
	}
	if c.Authn.CredentialCacheTTL.Duration != 15*time.Minute {
		t.Fatal("cache ttl default")
	}
}

func TestProblemsCarryLines(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "s")
	os.WriteFile(secretFile, []byte("testing123\n"), 0o600)
	t.Setenv("GW_TEST_SECRET", "abc")
	tests := []struct {
		name string
		toml string
		line int
		want string
	}{
		{"unknown top key", "data_dir = \"x\"\nbogus = 1\n", 2, `unknown key "bogus"`},
		{"unknown nested key", "[ldap]\nlisten = \"127.0.0.1:3890\"\nbase_dn = \"dc=x\"\nlisen = \"x\"\n", 4, `unknown key "ldap.lisen"`},
		{"unknown key in client", "[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"env:GW_TEST_SECRET\"\nnme = 1\n", 5, `unknown key "radius.client.nme"`},
		{"bad cidr", "[[radius.client]]\nname = \"a\"\nsecret = \"env:GW_TEST_SECRET\"\nnetworks = [\"10.0.0.0/33\"]\n", 4, "is not a CIDR"},
		{"bad cidr second client", "[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"env:GW_TEST_SECRET\"\n\n[[radius.client]]\nname = \"b\"\nsecret = \"env:GW_TEST_SECRET\"\nnetworks = [\"nope\"]\n", 9, `"nope" is not a CIDR`},
		{"same network twice", "[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"env:GW_TEST_SECRET\"\n[[radius.client]]\nname = \"b\"\nnetworks = [\"10.1.0.0/8\"]\nsecret = \"env:GW_TEST_SECRET\"\n", 7, `already claimed by client "a"`},
		{"missing secret file", "[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"file:/nonexistent/secret\"\n", 4, "cannot read secret file"},
		{"literal secret", "[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"testing123\"\n", 4, "must be references"},
		{"unset env", "[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"env:GW_TEST_UNSET_VAR\"\n", 4, "GW_TEST_UNSET_VAR"},
		{"bad duration", "[authn]\ncredential_cache_ttl = \"soon\"\n", 2, "not a duration"},
		{"syntax", "data_dir = \"x\"\n[ldap\nlisten = 1\n", 3, "table name"},
		{"wrong type", "data_dir = 5\n", 1, ""},
		{"bad log level", "[log]\nlevel = \"loud\"\n", 2, "log.level"},
		{"bad base dn", "[ldap]\nlisten = \"127.0.0.1:1\"\nbase_dn = \"not a dn\"\n", 3, "not a DN"},
		{"bad listen", "[admin]\nlisten = \"8480\"\n", 2, "not host:port"},
		{"missing cert", "[ldap]\nlisten = \"127.0.0.1:1\"\nbase_dn = \"dc=x\"\ncert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent.key\"\n", 4, "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.toml", []byte(tc.toml))
			if err == nil {
				t.Fatal("accepted a broken config")
			}
			ps, ok := err.(Problems)
			if !ok || len(ps) == 0 {
				t.Fatalf("error is not Problems: %v", err)
			}
			got := ps[0]
			if got.Line != tc.line || !strings.Contains(got.String(), tc.want) {
				t.Fatalf("got %q (line %d), want line %d containing %q", got.String(), got.Line, tc.line, tc.want)
			}
			if !strings.HasPrefix(got.String(), "test.toml:") {
				t.Fatalf("problem must start with the file name: %q", got)
			}
		})
	}
	// Secret from file and env both resolve; trailing newline is dropped.
	c, err := Parse("ok.toml", []byte("[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"file:"+secretFile+"\"\n"+
		"[[radius.client]]\nname = \"b\"\nnetworks = [\"::1/128\"]\nsecret = \"env:GW_TEST_SECRET\"\nrequire_message_authenticator = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.RADIUS.Clients[0].Secret.Value.Bytes()) != "testing123" || string(c.RADIUS.Clients[1].Secret.Value.Bytes()) != "abc" {
		t.Fatal("secrets not resolved")
	}
	if !*c.RADIUS.Clients[0].RequireMessageAuthenticator || *c.RADIUS.Clients[1].RequireMessageAuthenticator {
		t.Fatal("require_message_authenticator default/override")
	}
}

func TestCheckPortsReportsTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	text := "[admin]\nlisten = \"" + l.Addr().String() + "\"\n[ldap]\nlisten = \"\"\n[radius]\nlisten = []\n"
	c, err := Parse("p.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	ps := c.CheckPorts()
	if len(ps) != 1 || ps[0].Line != 2 || !strings.Contains(ps[0].Msg, "cannot listen") {
		t.Fatalf("got %v", ps)
	}
}

func TestLocate(t *testing.T) {
	p := locate("a = 1 # c\n[t]\nb = \"x # not a comment\"\n[[arr]]\nk = 1\n[[arr]]\nk = 2\n[arr.sub]\nz = 3\n")
	for path, want := range map[string]int{"a": 1, "t.b": 3, "arr[0].k": 5, "arr[1].k": 7, "arr.k": 5, "arr[1].sub.z": 9} {
		if got := p[path]; got != want {
			t.Errorf("%s: line %d, want %d", path, got, want)
		}
	}
}

func TestDirectoriesRefuseDuplicates(t *testing.T) {
	t.Setenv("GW_M365", "s3cret")
	block := func(name, tenant, domain string) string {
		return "[[directory]]\ntype = \"entra\"\nname = \"" + name + "\"\ntenant_id = \"" + tenant + "\"\nclient_id = \"c\"\nclient_secret = \"env:GW_M365\"\ndomains = [\"" + domain + "\"]\n"
	}
	creds := filepath.Join(t.TempDir(), "sa.json")
	os.WriteFile(creds, []byte("{}"), 0o600)
	gblock := func(name, customer, file string) string {
		return "[[directory]]\ntype = \"google\"\nname = \"" + name + "\"\ncustomer_id = \"" + customer + "\"\ncredentials_file = \"" + file + "\"\nadmin_subject = \"admin@x.test\"\n"
	}
	tests := []struct {
		name, text string
		line       int
		want       []string
	}{
		{"same tenant", block("a", "T1", "a.test") + block("b", "t1", "b.test"), 11, []string{`directory #2 ("b")`, `directory #1 ("a")`, "tenant"}},
		{"same domain", block("a", "T1", "x.test") + block("b", "T2", "X.test"), 14, []string{`directory #2 ("b")`, `directory #1 ("a")`, "domain"}},
		{"same name", block("a", "T1", "x.test") + block("a", "T2", "y.test"), 10, []string{"also used by directory #1"}},
		{"bad type", "[[directory]]\ntype = \"okta\"\nname = \"o\"\n", 2, []string{`type "okta" is not supported`}},
		{"same google customer", gblock("g1", "C01", creds) + gblock("g2", "c01", creds), 10, []string{`directory #2 ("g2")`, `directory #1 ("g1")`, "customer"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("d.toml", []byte(tc.text))
			ps, ok := err.(Problems)
			if !ok || len(ps) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			if ps[0].Line != tc.line {
				t.Errorf("line %d, want %d: %s", ps[0].Line, tc.line, ps[0])
			}
			for _, w := range tc.want {
				if !strings.Contains(ps[0].Msg, w) {
					t.Errorf("%q lacks %q", ps[0].Msg, w)
				}
			}
		})
	}
	c, err := Parse("ok.toml", []byte(block("a", "T1", "a.test")))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Directories[0].PasswordPolicy; p.MinLength != 8 || p.MaxLength != 256 {
		t.Fatalf("entra default policy: %+v", p)
	}
}
