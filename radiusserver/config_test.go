package radiusserver

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

func parseRADIUS(t *testing.T, text string) (Config, error) {
	t.Helper()
	var c Config
	err := testutil.ParseBlock(t, "radius", &c, text)
	return c, err
}

// client is a [[radius.client]] block of four lines: header, name,
// networks, secret (GW_RADIUS_TEST, set by the tests).
func radiusClient(name, network string) string {
	return "[[radius.client]]\nname = \"" + name + "\"\nnetworks = [\"" + network + "\"]\nsecret = \"env:GW_RADIUS_TEST\"\n"
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseRADIUS(t, "[radius]\n")
	if err != nil {
		t.Fatalf("an empty [radius] must load: %v", err)
	}
	var zero Config
	zero.EAP.Defaults()
	if !reflect.DeepEqual(c, zero) || c.Enabled() || c.EAP.Enabled() {
		t.Errorf("defaults: got %+v, want no listener, no clients, workers 0 (a default from the CPU count)", c)
	}

	ex, err := parseRADIUS(t, testutil.ConfigSection(t, gatewayd.ExampleConfig, "radius"))
	if err != nil {
		t.Fatalf("the example's [radius]: %v", err)
	}
	want := Config{Listen: []string{"127.0.0.1:1812", "[::1]:1812"}}
	want.EAP.Defaults()
	if !reflect.DeepEqual(ex, want) {
		t.Errorf("gatewayd.toml.example's [radius]:\n got %+v\nwant %+v", ex, want)
	}

	t.Setenv("GW_RADIUS_TEST", "s3cret")
	c, err = parseRADIUS(t, "[radius]\n"+radiusClient("a", "192.0.2.0/24")+radiusClient("b", "2001:db8::/64")+
		"require_message_authenticator = false\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Clients) != 2 || !c.Clients[0].RequireMessageAuthenticator || c.Clients[1].RequireMessageAuthenticator {
		t.Errorf("require_message_authenticator defaults to true per client, and false in the file wins: %+v", c.Clients)
	}
	if got := string(c.Clients[1].Secret.Value.Bytes()); got != "s3cret" {
		t.Errorf("client secret resolved to %q", got)
	}
}

func TestConfigBounds(t *testing.T) {
	t.Setenv("GW_RADIUS_TEST", "s3cret")
	// attrs writes n Filter-Id attributes of size bytes each in the wire
	// format (2 header bytes + the value), the last one extra bytes larger.
	attrs := func(n, size, extra int) string {
		var list []string
		for i := 0; i < n; i++ {
			v := size - 2
			if i == n-1 {
				v += extra
			}
			list = append(list, `"Filter-Id = `+strings.Repeat("f", v)+`"`)
		}
		return "attributes = [" + strings.Join(list, ", ") + "]\n"
	}
	tests := []struct {
		name    string
		ok, bad string // lines after "[radius]\n"; the offending key is on line 2 of bad
		key     string
		line    int
		msg     string
	}{
		{"workers", "workers = 0\n", "workers = -1\n", "radius.workers", 2, "must not be negative (0 picks a default), got -1"},
		{"reply_message", "reply_message = \"" + strings.Repeat("m", 1024) + "\"\n", "reply_message = \"" + strings.Repeat("m", 1025) + "\"\n",
			"radius.reply_message", 2, "is 1025 bytes; at most 1024"},
		{"reply group size", "[[radius.reply_group]]\ngroup = \"g\"\n" + attrs(16, 128, 0), "[[radius.reply_group]]\ngroup = \"g\"\n" + attrs(16, 128, 1),
			"radius.reply_group[0].attributes", 4, "attributes take 2049 bytes; at most 2048"},
		{"attribute length", "[[radius.reply_group]]\ngroup = \"g\"\n" + attrs(1, 255, 0), "[[radius.reply_group]]\ngroup = \"g\"\n" + attrs(1, 255, 1),
			"radius.reply_group[0].attributes", 4, "value too long (254 bytes; at most 253)"},
		{"tunnel tag", "[[radius.reply_group]]\ngroup = \"g\"\nattributes = [\"Tunnel-Private-Group-Id:31 = 42\"]\n",
			"[[radius.reply_group]]\ngroup = \"g\"\nattributes = [\"Tunnel-Private-Group-Id:32 = 42\"]\n",
			"radius.reply_group[0].attributes", 4, "the tag after ':' must be a number from 0 to 31"},
		{"network bits", radiusClient("a", "192.0.2.1/32"), "[[radius.client]]\nname = \"a\"\nnetworks = [\"192.0.2.1/33\"]\nsecret = \"env:GW_RADIUS_TEST\"\n",
			"radius.client[0].networks", 4, `"192.0.2.1/33" is not a CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseRADIUS(t, "[radius]\n"+tc.ok); err != nil {
				t.Fatalf("must be accepted: %v", err)
			}
			_, err := parseRADIUS(t, "[radius]\n"+tc.bad)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestConfigProblems(t *testing.T) {
	t.Setenv("GW_RADIUS_TEST", "s3cret")
	t.Setenv("GW_RADIUS_TEST_UNSET", "")                  // empty counts as unset
	two := "[radius]\n" + radiusClient("a", "10.0.0.0/8") // the second client starts on line 6
	tests := []struct {
		name string
		text string
		key  string
		line int
		msg  string
	}{
		{"second listen address", "[radius]\nlisten = [\"127.0.0.1:1812\", \"bogus\"]\n",
			"radius.listen", 2, `entry 2: "bogus" is not host:port`},
		{"listen host not an IP", "[radius]\n\nlisten = [\"radius.example.com:1812\"]\n",
			"radius.listen", 3, "entry 1: \"radius.example.com:1812\": the host must be an IP address"},
		{"client name left out", "[radius]\n[[radius.client]]\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"env:GW_RADIUS_TEST\"\n",
			"radius.client[0].name", 2, "radius client #1: name is empty"},
		{"second client name used twice", two + radiusClient("A", "10.1.0.0/16"),
			"radius.client[1].name", 7, `radius client "A": the name is used twice`},
		{"second client secret left out", two + "[[radius.client]]\nname = \"b\"\nnetworks = [\"10.1.0.0/16\"]\n",
			"radius.client[1].secret", 6, `radius client "b": secret is empty (` + config.ErrSecretRequired + ")"},
		{"second client secret env unset", two + "[[radius.client]]\nname = \"b\"\nnetworks = [\"10.1.0.0/16\"]\nsecret = \"env:GW_RADIUS_TEST_UNSET\"\n",
			"radius.client[1].secret", 9, "environment variable GW_RADIUS_TEST_UNSET"},
		{"second client literal secret", two + "[[radius.client]]\nname = \"b\"\nnetworks = [\"10.1.0.0/16\"]\nsecret = \"hunter2\"\n",
			"radius.client[1].secret", 9, "a literal secret is not accepted"},
		{"secret file missing", "[radius]\n[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\nsecret = \"file:/nonexistent/secret\"\n",
			"radius.client[0].secret", 5, "cannot read secret file"},
		{"second client networks left out", two + "[[radius.client]]\nname = \"b\"\nsecret = \"env:GW_RADIUS_TEST\"\n",
			"radius.client[1].networks", 6, `radius client "b": no networks`},
		{"second client network not a CIDR", two + "[[radius.client]]\nname = \"b\"\nnetworks = [\"10.1.0.0/16\", \"10.2.0.0\"]\nsecret = \"env:GW_RADIUS_TEST\"\n",
			"radius.client[1].networks", 8, `"10.2.0.0" is not a CIDR`},
		{"networks not a list", two + "[[radius.client]]\nname = \"b\"\nnetworks = \"10.1.0.0/16\"\nsecret = \"env:GW_RADIUS_TEST\"\n",
			"radius.client[1].networks", 8, "networks must be a list of CIDRs"},
		{"IPv4 in IPv6 form", "[radius]\n" + radiusClient("a", "::ffff:10.0.0.0/104"),
			"radius.client[0].networks", 4, "write IPv4 networks in IPv4 form"},
		{"network listed twice", "[radius]\n[[radius.client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\", \"10.1.2.3/8\"]\nsecret = \"env:GW_RADIUS_TEST\"\n",
			"radius.client[0].networks", 4, `radius client "a": network 10.0.0.0/8 is listed twice`},
		{"network claimed by two clients", two + radiusClient("b", "10.0.0.0/8"),
			"radius.client[1].networks", 8, `radius clients "a" and "b" both claim network 10.0.0.0/8`},
		{"unknown client key", two + radiusClient("b", "10.1.0.0/16") + "require_ma = true\n",
			"radius.client.require_ma", 10, `unknown key "radius.client.require_ma"`},
		{"reply group left out", "[radius]\n[[radius.reply_group]]\nattributes = [\"Filter-Id = x\"]\n",
			"radius.reply_group[0].group", 2, "radius reply group #1: group is empty"},
		{"second reply group twice", "[radius]\n[[radius.reply_group]]\ngroup = \"staff\"\nattributes = [\"Filter-Id = x\"]\n" +
			"[[radius.reply_group]]\ngroup = \"Staff\"\nattributes = [\"Filter-Id = y\"]\n",
			"radius.reply_group[1].group", 6, `radius reply group "Staff" is configured twice`},
		{"reply group without attributes", "[radius]\n[[radius.reply_group]]\ngroup = \"staff\"\n",
			"radius.reply_group[0].attributes", 2, `radius reply group "staff": no attributes`},
		{"unsupported attribute", "[radius]\n[[radius.reply_group]]\ngroup = \"staff\"\npriority = -5\nattributes = [\"Filter-Id = x\", \"Bogus-Attr = 1\"]\n",
			"radius.reply_group[0].attributes", 5, `attribute "Bogus-Attr" is not a supported reply attribute`},
		{"attribute without a value", "[radius]\n[[radius.reply_group]]\ngroup = \"staff\"\nattributes = [\"Filter-Id\"]\n",
			"radius.reply_group[0].attributes", 4, `reply attribute "Filter-Id": want "Name = Value"`},
		{"attribute with a bad value", "[radius]\n[[radius.reply_group]]\ngroup = \"staff\"\nattributes = [\"Session-Timeout = soon\"]\n",
			"radius.reply_group[0].attributes", 4, "Session-Timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRADIUS(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestConfigAccepts(t *testing.T) {
	t.Setenv("GW_RADIUS_TEST", "s3cret")
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseRADIUS(t, "[radius]\nlisten = [\":1812\", \"localhost:1812\", \"[::1]:1812\"]\nworkers = 200\n"+
		radiusClient("a", "10.0.0.0/8")+ // a more specific network of another client is fine
		"[[radius.client]]\nname = \"b\"\nnetworks = [\"10.1.0.0/16\", \"2001:db8::/32\"]\nsecret = \"file:"+f+"\"\n"+
		"[[radius.reply_group]]\ngroup = \"staff\"\npriority = 10\nattributes = [\"Tunnel-Type = VLAN\", \"Tunnel-Medium-Type = IEEE-802\", \"Tunnel-Private-Group-Id = 42\", \"Filter-Id = \\\"staff acl\\\"\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.Clients[1].Secret.Value.Bytes()); got != "from-file" {
		t.Errorf("file secret resolved to %q", got)
	}
	if len(c.ReplyGroups) != 1 || len(c.ReplyGroups[0].Attributes) != 4 || c.ReplyGroups[0].Attributes[3] != (ReplyAttribute{"Filter-Id", "staff acl"}) {
		t.Errorf("reply groups: %+v", c.ReplyGroups)
	}
	// An empty list turns RADIUS off; its clients are still checked
	// (SIGHUP reloads them).
	if c, err := parseRADIUS(t, "[radius]\nlisten = []\n"+radiusClient("a", "10.0.0.0/8")); err != nil || c.Enabled() {
		t.Errorf("listen = []: enabled %v, %v", c.Enabled(), err)
	}
	_, err = parseRADIUS(t, "[radius]\nlisten = []\n[[radius.client]]\nname = \"a\"\nsecret = \"env:GW_RADIUS_TEST\"\n")
	testutil.WantProblem(t, err, "radius.client[0].networks", 3, "no networks")
}

func TestConfigEveryProblemAtItsLine(t *testing.T) {
	t.Setenv("GW_RADIUS_TEST", "s3cret")
	_, err := parseRADIUS(t, "[radius]\nworkers = -1\n"+radiusClient("a", "10.0.0.0/8")+radiusClient("A", "10.0.0.0/8"))
	ps := testutil.ConfigProblems(t, err)
	if len(ps) != 3 {
		t.Fatalf("want three problems, got:\n%v", ps)
	}
	testutil.CheckProblem(t, ps[0], "radius.workers", 2)
	testutil.CheckProblem(t, ps[1], "radius.client[1].name", 8, "used twice")
	testutil.CheckProblem(t, ps[2], "radius.client[1].networks", 9, `radius clients "a" and "A" both claim`)
}
