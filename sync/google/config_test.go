package google_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	gwconfig "github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/fakegoogle"
	"github.com/gatewayd/gatewayd/internal/testutil"
	gwsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/google"
)

// dirRoot is the daemon's [[directory]] list and its check across blocks.
type dirRoot struct {
	Dirs []gwconfig.DirectoryBlock `toml:"directory"`
}

func (r *dirRoot) Validate() error {
	var blocks []gwsync.DirectoryConfig
	for _, b := range r.Dirs {
		blocks = append(blocks, b.(gwsync.DirectoryConfig))
	}
	return gwsync.ValidateDirectories(blocks)
}

func parseGoogle(t *testing.T, text string) ([]*google.DirectoryConfig, error) {
	t.Helper()
	var r dirRoot
	err := testutil.ParseRoot(t, &r, text)
	var out []*google.DirectoryConfig
	for _, b := range r.Dirs {
		out = append(out, b.(*google.DirectoryConfig))
	}
	return out, err
}

// keyFile writes a service-account key with mode perm.
func keyFile(t *testing.T, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sa.json")
	fg := fakegoogle.New()
	defer fg.Close()
	if err := os.WriteFile(p, fg.ServiceAccountKey(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// googleBlock is a valid six-line block: header, type, name, customer_id,
// credentials_file, admin_subject. Extra keys follow on line 7 of the block.
func googleBlock(name, customer, key string) string {
	return "[[directory]]\ntype = \"google\"\nname = \"" + name + "\"\ncustomer_id = \"" + customer + "\"\n" +
		"credentials_file = \"" + key + "\"\nadmin_subject = \"admin@example.com\"\n"
}

func TestConfigDefaults(t *testing.T) {
	key := keyFile(t, 0o600)
	blocks, err := parseGoogle(t, googleBlock("workspace", "C0123abcd", key))
	if err != nil {
		t.Fatal(err)
	}
	c := blocks[0]
	// The values gatewayd.toml.example documents for type = "google".
	if c.Type != "google" || c.PasswordPolicy != google.DefaultPasswordPolicy || c.PasswordPolicy.MinLength != 8 || c.PasswordPolicy.MaxLength != 100 || c.ImportState != "staged" ||
		c.Domains != nil || c.DefaultDomain != "" || c.SuspendOnPasswordExpiry || c.SuspendOnLockout || c.Endpoint != "" || c.TokenURL != "" {
		t.Errorf("defaults: %+v", c)
	}
	if k, id := c.Identity(); k != "customer_id" || id != "customer c0123abcd" {
		t.Errorf("identity: %s = %q", k, id)
	}
	if _, err := c.NewConnector(context.Background(), nil); err != nil {
		t.Errorf("NewConnector refuses a validated block: %v", err)
	}
}

func TestConfigCredentialsFileMode(t *testing.T) {
	tests := []struct {
		perm os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o640, false},
		{0o644, false},
		{0o604, false},
	}
	for _, tc := range tests {
		t.Run(tc.perm.String(), func(t *testing.T) {
			key := keyFile(t, tc.perm)
			_, err := parseGoogle(t, googleBlock("workspace", "C0123abcd", key))
			if tc.ok {
				if err != nil {
					t.Fatalf("mode %v must be accepted: %v", tc.perm, err)
				}
				return
			}
			testutil.WantProblem(t, err, "directory[0].credentials_file", 5,
				`directory "workspace": credentials_file `+key+" is readable by others (mode "+tc.perm.String()+"): chmod 600 it")
		})
	}
}

func TestConfigProblems(t *testing.T) {
	key := keyFile(t, 0o600)
	first := googleBlock("workspace", "C0123abcd", key) // lines 1-6; a second block starts on line 7
	second := "[[directory]]\ntype = \"google\"\nname = \"lab\"\n"
	tests := []struct {
		name, text, key string
		line            int
		msg             string
	}{
		{"customer_id left out", first + second + "credentials_file = \"" + key + "\"\nadmin_subject = \"admin@lab.example\"\n",
			"directory[1].customer_id", 7, `directory "lab": customer_id is required for type google`},
		{"admin_subject left out", first + second + "customer_id = \"C2\"\ncredentials_file = \"" + key + "\"\n",
			"directory[1].admin_subject", 7, `directory "lab": admin_subject is required for type google`},
		{"credentials_file left out", first + second + "customer_id = \"C2\"\nadmin_subject = \"admin@lab.example\"\n",
			"directory[1].credentials_file", 7, `directory "lab": credentials_file is required for type google`},
		{"credentials_file missing", first + second + "customer_id = \"C2\"\ncredentials_file = \"/nonexistent/sa.json\"\nadmin_subject = \"admin@lab.example\"\n",
			"directory[1].credentials_file", 11, "cannot read credentials_file"},
		{"credentials_file readable by others", first + second + "customer_id = \"C2\"\ncredentials_file = \"" + keyFile(t, 0o644) + "\"\nadmin_subject = \"admin@lab.example\"\n",
			"directory[1].credentials_file", 11, "is readable by others (mode -rw-r--r--): chmod 600 it"},
		// What the connector refuses at start is refused by check-config.
		{"credentials_file a directory", googleBlock("workspace", "C0123abcd", t.TempDir()),
			"directory[0].credentials_file", 5, "is not a file"},
		{"admin_subject not an email", first + second + "customer_id = \"C2\"\ncredentials_file = \"" + key + "\"\nadmin_subject = \"admin\"\n",
			"directory[1].admin_subject", 12, `admin_subject must be the primary email of an administrator of the domain, got "admin"`},
		{"customer_id not an id", first + second + "customer_id = \"C2/users\"\ncredentials_file = \"" + key + "\"\nadmin_subject = \"admin@lab.example\"\n",
			"directory[1].customer_id", 10, `customer_id "C2/users" is not a customer id`},
		{"endpoint scheme", first + "endpoint = \"ftp://admin.googleapis.com\"\n",
			"directory[0].endpoint", 7, "scheme must be https"},
		{"token_url plain http to a remote host", first + "token_url = \"http://oauth2.example.com/token\"\n",
			"directory[0].token_url", 7, "plain http is only allowed to a loopback address"},
		{"common key", first + "password_policy = { min_length = 8, max_length = 0 }\n",
			"directory[0].password_policy", 7, `directory "workspace": password_policy needs`},
		{"unknown key", first + "customer = \"x\"\n",
			"directory.customer", 7, `unknown key "directory.customer"`},
		// Across blocks.
		{"second customer twice", first + googleBlock("lab", "c0123ABCD", key),
			"directory[1].customer_id", 10, `directory #2 ("lab"): customer c0123abcd is already configured in directory #1 ("workspace"); one must not be synced twice`},
		{"second name twice", first + googleBlock("workspace", "C2", key),
			"directory[1].name", 9, `directory #2 ("workspace"): the name is also used by directory #1`},
		{"second domain twice", first + "domains = [\"example.com\"]\n" + googleBlock("lab", "C2", key) + "domains = [\"lab.example\", \"EXAMPLE.COM\"]\n",
			"directory[1].domains", 14, `directory #2 ("lab"): domain EXAMPLE.COM is also listed in directory #1 ("workspace")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseGoogle(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestConfigAccepts(t *testing.T) {
	fg := fakegoogle.New()
	defer fg.Close()
	key := keyFile(t, 0o600)
	first := googleBlock("workspace", "C0123abcd", key)
	for name, text := range map[string]string{
		"endpoints":          first + "endpoint = \"" + fg.Endpoint() + "\"\ntoken_url = \"https://oauth2.googleapis.com/token\"\n",
		"policy and domains": first + "password_policy = { min_length = 10, max_length = 100 }\ndomains = [\"example.com\", \"example.org\"]\ndefault_domain = \"example.org\"\n",
		"two customers":      first + googleBlock("lab", "C2", key),
	} {
		t.Run(name, func(t *testing.T) {
			blocks, err := parseGoogle(t, text)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range blocks {
				if _, err := b.NewConnector(context.Background(), nil); err != nil {
					t.Errorf("NewConnector refuses a validated block: %v", err)
				}
			}
		})
	}
}
