package sync_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/testutil"
	gwsync "github.com/gatewayd/gatewayd/sync"
	_ "github.com/gatewayd/gatewayd/sync/entra"  // type = "entra"
	_ "github.com/gatewayd/gatewayd/sync/google" // type = "google"
)

func parseSync(t *testing.T, text string) (gwsync.Config, error) {
	t.Helper()
	var c gwsync.Config
	err := testutil.ParseBlock(t, "sync", &c, text)
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	check := func(t *testing.T, c gwsync.Config) {
		t.Helper()
		if c.Workers != 4 || c.MaxAttempts != 10 || c.BackoffBase != time.Second || c.BackoffMax != 5*time.Minute ||
			c.RemoteCheckInterval != time.Minute || c.ClaimLease != 2*time.Minute || c.ReplicationGrace != 2*time.Minute || c.CallTimeout != 30*time.Second || c.Now == nil {
			t.Errorf("defaults: %+v", c)
		}
	}
	c, err := parseSync(t, "[sync]\n")
	if err != nil {
		t.Fatalf("an empty [sync] must load: %v", err)
	}
	check(t, c)
	ex, err := parseSync(t, testutil.ConfigSection(t, gatewayd.ExampleConfig, "sync"))
	if err != nil {
		t.Fatalf("the example's [sync]: %v", err)
	}
	check(t, ex)
	// "0s" is a value, not a default: it checks at every login.
	if c, err := parseSync(t, "[sync]\nremote_check_interval = \"0s\"\n"); err != nil || c.RemoteCheckInterval != 0 {
		t.Errorf("remote_check_interval = \"0s\": %v, %v", c.RemoteCheckInterval, err)
	}
}

func TestConfigBounds(t *testing.T) {
	tests := []struct {
		key, ok, bad string // as written; the key is on line 2
		msg          string
	}{
		{"workers", "1", "0", "must be at least 1, got 0"},
		{"max_attempts", "1", "0", "must be at least 1, got 0"},
		{"backoff_base", `"1ns"`, `"0s"`, "must be positive"},
		{"backoff_max", `"1s"`, `"999ms"`, "must be at least backoff_base (1s)"},
		{"remote_check_interval", `"0s"`, `"-1ns"`, `must not be negative ("0s" checks at every login)`},
		{"claim_lease", `"31s"`, `"30s"`, "must be more than the 30s timeout of one remote call, got 30s"},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.bad, func(t *testing.T) {
			if _, err := parseSync(t, "[sync]\n"+tc.key+" = "+tc.ok+"\n"); err != nil {
				t.Fatalf("%s = %s must be accepted: %v", tc.key, tc.ok, err)
			}
			_, err := parseSync(t, "[sync]\n"+tc.key+" = "+tc.bad+"\n")
			testutil.WantProblem(t, err, "sync."+tc.key, 2, tc.msg)
		})
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name, text, key string
		line            int
		msg             string
	}{
		{"backoff_base above the default max", "[sync]\nbackoff_base = \"10m\"\n",
			"sync.backoff_max", 1, "must be at least backoff_base (10m0s)"},
		{"negative workers", "[sync]\nmax_attempts = 3\nworkers = -2\n",
			"sync.workers", 3, "got -2"},
		{"internal settings are not keys", "[sync]\ncall_timeout = \"1s\"\n",
			"sync.call_timeout", 2, "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSync(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

// testDir is a directory type of this test's own: the common keys and an
// identity, so DirectoryCommon and ValidateDirectories are checked
// without a connector's keys in the way.
type testDir struct {
	gwsync.DirectoryCommon
	Tenant string `toml:"tenant"`
}

var testPolicy = gwsync.PasswordPolicy{MinLength: 4, MaxLength: 64}

func (d *testDir) Defaults() {
	*d = testDir{}
	d.DirectoryCommon.Defaults("test", testPolicy)
}
func (d *testDir) Validate() error                 { return d.DirectoryCommon.Validate() }
func (d *testDir) Common() *gwsync.DirectoryCommon { return &d.DirectoryCommon }
func (d *testDir) Identity() (string, string) {
	if d.Tenant == "" {
		return "tenant", ""
	}
	return "tenant", "test tenant " + strings.ToLower(d.Tenant)
}
func (d *testDir) NewConnector(context.Context, *slog.Logger) (gwsync.Connector, error) {
	return nil, errors.New("no connector in this test")
}

// testRoot holds [[directory]] blocks of testDir with the daemon's check
// across them.
type testRoot struct {
	Dirs []testDir `toml:"directory"`
}

func (r *testRoot) Validate() error {
	var blocks []gwsync.DirectoryConfig
	for i := range r.Dirs {
		blocks = append(blocks, &r.Dirs[i])
	}
	return gwsync.ValidateDirectories(blocks)
}

func parseDirs(t *testing.T, text string) ([]testDir, error) {
	t.Helper()
	var r testRoot
	err := testutil.ParseRoot(t, &r, text)
	return r.Dirs, err
}

// dirBlock is a three-line [[directory]] block (header, name, tenant).
func dirBlock(name, tenant string) string {
	return "[[directory]]\nname = \"" + name + "\"\ntenant = \"" + tenant + "\"\n"
}

func TestDirectoryCommonDefaults(t *testing.T) {
	dirs, err := parseDirs(t, dirBlock("a", "t1")+dirBlock("b", "t2")+"import_state = \"active\"\nsuspend_on_lockout = true\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("blocks: %+v", dirs)
	}
	a, b := dirs[0].DirectoryCommon, dirs[1].DirectoryCommon
	if a.Type != "test" || a.ImportState != "staged" || a.PasswordPolicy != testPolicy || a.Domains != nil || a.DefaultDomain != "" ||
		a.SuspendOnPasswordExpiry || a.SuspendOnLockout {
		t.Errorf("first block's defaults: %+v", a)
	}
	if b.ImportState != "active" || !b.SuspendOnLockout || b.PasswordPolicy != testPolicy {
		t.Errorf("second block: %+v", b)
	}
	// An inline policy table that sets one bound keeps the other's default.
	dirs, err = parseDirs(t, dirBlock("a", "t1")+"password_policy = { max_length = 10 }\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := dirs[0].PasswordPolicy; p != (gwsync.PasswordPolicy{MinLength: 4, MaxLength: 10}) {
		t.Errorf("password_policy = { max_length = 10 }: %+v", p)
	}
}

func TestDirectoryCommonBounds(t *testing.T) {
	long := strings.Repeat("n", 64)
	tests := []struct {
		name    string
		ok, bad string // the rest of the second block, from its line 6
		key     string
		msg     string
	}{
		{"name length", "name = \"" + long + "\"\n", "name = \"" + long + "n\"\n",
			"directory[1].name", "name must be 1-64 lowercase letters, digits, '.', '_' or '-'"},
		{"min_length", "password_policy = { min_length = 0, max_length = 1 }\n", "password_policy = { min_length = -1, max_length = 1 }\n",
			"directory[1].password_policy", "password_policy needs 0 <= min_length <= max_length and max_length >= 1"},
		{"max_length", "password_policy = { min_length = 0, max_length = 1 }\n", "password_policy = { min_length = 0, max_length = 0 }\n",
			"directory[1].password_policy", "password_policy needs"},
		{"min_character_classes", "password_policy = { max_length = 9, min_character_classes = 4 }\n", "password_policy = { max_length = 9, min_character_classes = 5 }\n",
			"directory[1].password_policy", "min_character_classes must be 0 to 4"},
		{"max below min", "password_policy = { min_length = 9, max_length = 9 }\n", "password_policy = { min_length = 9, max_length = 8 }\n",
			"directory[1].password_policy", "password_policy needs"},
	}
	first := dirBlock("a", "t1") // lines 1-3; the second block's header is line 4
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			second := "[[directory]]\nname = \"b\"\n" // lines 4-5
			if strings.HasPrefix(tc.ok, "name") {
				second = "[[directory]]\ntenant = \"t2\"\n"
			}
			if _, err := parseDirs(t, first+second+tc.ok); err != nil {
				t.Fatalf("must be accepted: %v", err)
			}
			_, err := parseDirs(t, first+second+tc.bad)
			testutil.WantProblem(t, err, tc.key, 6, tc.msg)
		})
	}
}

func TestDirectoryCommonProblems(t *testing.T) {
	first := dirBlock("a", "t1") // lines 1-3
	tests := []struct {
		name, text, key string
		line            int
		msg             string
	}{
		{"name left out", "[[directory]]\ntenant = \"t1\"\n",
			"directory[0].name", 1, `directory "": name must be`},
		{"second name upper case", first + dirBlock("M365", "t2"),
			"directory[1].name", 5, `directory "M365": name must be 1-64 lowercase letters`},
		{"second import_state", first + dirBlock("b", "t2") + "import_state = \"suspended\"\n",
			"directory[1].import_state", 7, `directory "b": import_state must be active or staged`},
		{"second domains", first + dirBlock("b", "t2") + "domains = [\"example.com\", \"user@example.com\"]\n",
			"directory[1].domains", 7, `directory "b": "user@example.com" is not a domain name`},
		{"empty domain", first + "domains = [\"\"]\n",
			"directory[0].domains", 4, `"" is not a domain name`},
		{"domain with a slash", first + "domains = [\"example.com/x\"]\n",
			"directory[0].domains", 4, `"example.com/x" is not a domain name`},
		{"default_domain without domains", first + "default_domain = \"example.com\"\n",
			"directory[0].default_domain", 4, `directory "a": default_domain needs domains`},
		{"policy as a sub-table", first + "[directory.password_policy]\nmax_length = 0\n",
			"directory[0].password_policy", 4, "password_policy needs"},
		{"unknown policy key", first + "password_policy = { min = 1 }\n",
			"directory.password_policy.min", 4, "unknown key"},
		// Across blocks.
		{"second name used twice", first + dirBlock("a", "t2"),
			"directory[1].name", 5, `directory #2 ("a"): the name is also used by directory #1`},
		{"second tenant used twice", first + dirBlock("b", "T1"),
			"directory[1].tenant", 6, `directory #2 ("b"): test tenant t1 is already configured in directory #1 ("a"); one must not be synced twice`},
		{"second domain used twice", first + "domains = [\"example.com\"]\n" + dirBlock("b", "t2") + "domains = [\"other.test\", \"EXAMPLE.com\"]\n",
			"directory[1].domains", 8, `directory #2 ("b"): domain EXAMPLE.com is also listed in directory #1 ("a"); one verified domain belongs to one directory`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDirs(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestDirectoryCommonAccepts(t *testing.T) {
	for name, text := range map[string]string{
		"domains and a default":   dirBlock("a", "t1") + "domains = [\"example.com\", \"example.org\"]\ndefault_domain = \"example.com\"\n",
		"a domain listed twice":   dirBlock("a", "t1") + "domains = [\"example.com\", \"Example.com\"]\n",
		"name characters":         dirBlock("0a._-z", "t1"),
		"no identity, no clash":   "[[directory]]\nname = \"a\"\n[[directory]]\nname = \"b\"\n",
		"policy without a bottom": dirBlock("a", "t1") + "password_policy = { min_length = 0, max_length = 1000 }\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseDirs(t, text); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// daemonRoot is the daemon's [[directory]] list: blocks by type from the
// registry, checked across types.
type daemonRoot struct {
	Dirs []config.DirectoryBlock `toml:"directory"`
}

func (r *daemonRoot) Validate() error {
	var blocks []gwsync.DirectoryConfig
	for _, b := range r.Dirs {
		blocks = append(blocks, b.(gwsync.DirectoryConfig))
	}
	return gwsync.ValidateDirectories(blocks)
}

func TestValidateDirectoriesAcrossTypes(t *testing.T) {
	t.Setenv("GW_SYNC_TEST_SECRET", "s3cret")
	key := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(key, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	entra := func(name, domain string) string { // 7 lines
		return "[[directory]]\ntype = \"entra\"\nname = \"" + name + "\"\ntenant_id = \"tenant-" + domain + "\"\nclient_id = \"c\"\n" +
			"client_secret = \"env:GW_SYNC_TEST_SECRET\"\ndomains = [\"" + domain + "\"]\n"
	}
	google := func(name, domain string) string { // 7 lines
		return "[[directory]]\ntype = \"google\"\nname = \"" + name + "\"\ncustomer_id = \"C-" + name + "\"\ncredentials_file = \"" + key + "\"\n" +
			"admin_subject = \"admin@" + domain + "\"\ndomains = [\"" + domain + "\"]\n"
	}
	tests := []struct {
		name, text, key string
		line            int
		msg             string
	}{
		{"name used by another type", entra("work", "a.example") + google("work", "b.example"),
			"directory[1].name", 10, `directory #2 ("work"): the name is also used by directory #1`},
		{"domain in another type", entra("m365", "example.com") + google("workspace", "Example.COM"),
			"directory[1].domains", 14, `directory #2 ("workspace"): domain Example.COM is also listed in directory #1 ("m365")`},
		{"third block", entra("m365", "a.example") + google("workspace", "b.example") + entra("m365", "c.example"),
			"directory[2].name", 17, `directory #3 ("m365"): the name is also used by directory #1`},
	}
	if err := testutil.ParseRoot(t, new(daemonRoot), entra("m365", "a.example")+google("workspace", "b.example")); err != nil {
		t.Fatalf("an entra and a google block: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := testutil.ParseRoot(t, new(daemonRoot), tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}
