package entra_test

import (
	"context"
	"strings"
	"testing"

	gwconfig "github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/testutil"
	gwsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
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

func parseEntra(t *testing.T, text string) ([]*entra.DirectoryConfig, error) {
	t.Helper()
	var r dirRoot
	err := testutil.ParseRoot(t, &r, text)
	var out []*entra.DirectoryConfig
	for _, b := range r.Dirs {
		out = append(out, b.(*entra.DirectoryConfig))
	}
	return out, err
}

const (
	testTenant = "00000000-0000-0000-0000-000000000001"
	testClient = "11111111-1111-1111-1111-111111111111"
)

// entraBlock is a valid six-line block: header, type, name, tenant_id,
// client_id, client_secret (GW_ENTRA_TEST_SECRET). Extra keys follow on
// line 7 of the block.
func entraBlock(name, tenant string) string {
	return "[[directory]]\ntype = \"entra\"\nname = \"" + name + "\"\ntenant_id = \"" + tenant + "\"\n" +
		"client_id = \"" + testClient + "\"\nclient_secret = \"env:GW_ENTRA_TEST_SECRET\"\n"
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("GW_ENTRA_TEST_SECRET", "s3cret")
	blocks, err := parseEntra(t, entraBlock("m365", testTenant))
	if err != nil {
		t.Fatal(err)
	}
	c := blocks[0]
	// The values gatewayd.toml.example documents for type = "entra".
	if c.Type != "entra" || c.PasswordPolicy != entra.DefaultPasswordPolicy || c.PasswordPolicy.MinLength != 8 || c.PasswordPolicy.MaxLength != 256 || c.ImportState != "staged" ||
		c.Domains != nil || c.DefaultDomain != "" || c.SuspendOnPasswordExpiry || c.SuspendOnLockout || c.AuthorityURL != "" || c.GraphURL != "" {
		t.Errorf("defaults: %+v", c)
	}
	if string(c.ClientSecret.Value.Bytes()) != "s3cret" || c.ClientSecret.String() != "env:GW_ENTRA_TEST_SECRET" {
		t.Errorf("client_secret: %q", c.ClientSecret)
	}
	if key, id := c.Identity(); key != "tenant_id" || id != "tenant "+testTenant {
		t.Errorf("identity: %s = %q", key, id)
	}
	// The validated block builds its connector.
	if _, err := c.NewConnector(context.Background(), nil); err != nil {
		t.Errorf("NewConnector refuses a validated block: %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	t.Setenv("GW_ENTRA_TEST_SECRET", "s3cret")
	t.Setenv("GW_ENTRA_TEST_UNSET", "")
	first := entraBlock("m365", testTenant) // lines 1-6; a second block starts on line 7
	second := "[[directory]]\ntype = \"entra\"\nname = \"lab\"\n"
	tests := []struct {
		name, text, key string
		line            int
		msg             string
	}{
		{"tenant_id left out", first + second + "client_id = \"c\"\nclient_secret = \"env:GW_ENTRA_TEST_SECRET\"\n",
			"directory[1].tenant_id", 7, `directory "lab": tenant_id is required for type entra`},
		{"tenant_id not a tenant", first + second + "tenant_id = \"contoso onmicrosoft\"\nclient_id = \"c\"\nclient_secret = \"env:GW_ENTRA_TEST_SECRET\"\n",
			"directory[1].tenant_id", 10, `tenant_id must be the tenant's GUID or a verified domain, got "contoso onmicrosoft"`},
		{"client_id left out", first + second + "tenant_id = \"lab.example\"\nclient_secret = \"env:GW_ENTRA_TEST_SECRET\"\n",
			"directory[1].client_id", 7, `directory "lab": client_id is required for type entra`},
		{"client_id not an id", first + second + "tenant_id = \"lab.example\"\nclient_id = \"my app\"\nclient_secret = \"env:GW_ENTRA_TEST_SECRET\"\n",
			"directory[1].client_id", 11, `client_id must be the app registration's application (client) id, got "my app"`},
		{"client_secret left out", first + second + "tenant_id = \"lab.example\"\nclient_id = \"c\"\n",
			"directory[1].client_secret", 7, `directory "lab": ` + gwconfig.ErrSecretRequired},
		{"client_secret env unset", first + second + "tenant_id = \"lab.example\"\nclient_id = \"c\"\nclient_secret = \"env:GW_ENTRA_TEST_UNSET\"\n",
			"directory[1].client_secret", 12, "environment variable GW_ENTRA_TEST_UNSET"},
		{"client_secret literal", first + second + "tenant_id = \"lab.example\"\nclient_id = \"c\"\nclient_secret = \"hunter2\"\n",
			"directory[1].client_secret", 12, "a literal secret is not accepted"},
		{"client_secret file missing", second + "tenant_id = \"lab.example\"\nclient_id = \"c\"\nclient_secret = \"file:/nonexistent/secret\"\n",
			"directory[0].client_secret", 6, "cannot read secret file"},
		{"authority_url scheme", first + "authority_url = \"ftp://login.example.com\"\n",
			"directory[0].authority_url", 7, `"ftp://login.example.com": scheme must be https`},
		{"graph_url not a URL", first + "graph_url = \"graph.microsoft.com\"\n",
			"directory[0].graph_url", 7, "must be scheme://host[/path]"},
		// What the connector refuses at start is refused by check-config.
		{"graph_url plain http to a remote host", first + "graph_url = \"http://graph.example.com\"\n",
			"directory[0].graph_url", 7, "plain http is only allowed to a loopback address"},
		{"authority_url with a query", first + "authority_url = \"https://login.microsoftonline.com/?x=1\"\n",
			"directory[0].authority_url", 7, "without credentials, query or fragment"},
		{"common key", first + "import_state = \"imported\"\n",
			"directory[0].import_state", 7, `directory "m365": import_state must be active or staged`},
		{"unknown key", first + "tenant = \"x\"\n",
			"directory.tenant", 7, `unknown key "directory.tenant"`},
		// Across blocks.
		{"second tenant twice", first + entraBlock("lab", strings.ToUpper(testTenant)),
			"directory[1].tenant_id", 10, `directory #2 ("lab"): tenant ` + testTenant + ` is already configured in directory #1 ("m365"); one must not be synced twice`},
		{"tenant case", entraBlock("a", "contoso.onmicrosoft.com") + entraBlock("b", "Contoso.OnMicrosoft.com"),
			"directory[1].tenant_id", 10, `directory #2 ("b"): tenant contoso.onmicrosoft.com is already configured in directory #1 ("a")`},
		{"second name twice", first + entraBlock("m365", "lab.example"),
			"directory[1].name", 9, `directory #2 ("m365"): the name is also used by directory #1`},
		{"second domain twice", first + "domains = [\"example.com\"]\n" + entraBlock("lab", "lab.example") + "domains = [\"Example.com\"]\n",
			"directory[1].domains", 14, `directory #2 ("lab"): domain Example.com is also listed in directory #1 ("m365")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseEntra(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestConfigAccepts(t *testing.T) {
	t.Setenv("GW_ENTRA_TEST_SECRET", "s3cret")
	first := entraBlock("m365", testTenant)
	for name, text := range map[string]string{
		"tenant by domain":       entraBlock("m365", "contoso.onmicrosoft.com"),
		"endpoints":              first + "authority_url = \"https://login.microsoftonline.us\"\ngraph_url = \"https://graph.microsoft.us/\"\n",
		"loopback endpoints":     first + "authority_url = \"http://127.0.0.1:8080\"\ngraph_url = \"http://localhost:8081/graph\"\n",
		"policy and domains":     first + "password_policy = { min_length = 12, max_length = 200 }\ndomains = [\"example.com\"]\ndefault_domain = \"example.com\"\n",
		"suspend and import":     first + "suspend_on_password_expiry = true\nsuspend_on_lockout = true\nimport_state = \"active\"\n",
		"two tenants":            first + entraBlock("lab", "lab.example"),
		"one domain per block":   first + "domains = [\"a.example\"]\n" + entraBlock("lab", "lab.example") + "domains = [\"b.example\"]\n",
		"a domain listed twice ": first + "domains = [\"a.example\", \"A.example\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			blocks, err := parseEntra(t, text)
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
