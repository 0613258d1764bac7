package admin_test

import (
	"path/filepath"
	"testing"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

func parseAdmin(t *testing.T, text string) (admin.ListenerConfig, error) {
	t.Helper()
	var c admin.ListenerConfig
	err := testutil.ParseBlock(t, "admin", &c, text)
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	for name, text := range map[string]string{
		"no block":              "",
		"empty block":           "[admin]\n",
		"gatewayd.toml.example": testutil.ConfigSection(t, gatewayd.ExampleConfig, "admin"),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := parseAdmin(t, text)
			if err != nil {
				t.Fatal(err)
			}
			if c != (admin.ListenerConfig{Listen: "127.0.0.1:8480"}) || c.Listen != admin.DefaultListen {
				t.Errorf("got %+v, want listen 127.0.0.1:8480 and no token_file", c)
			}
			// The token defaults to <data_dir>/admin.token.
			if got := c.TokenPath("./data"); got != filepath.Join("data", "admin.token") {
				t.Errorf("token path %q", got)
			}
		})
	}
	c, err := parseAdmin(t, "[admin]\ntoken_file = \"/etc/gatewayd/admin.token\"\n")
	if err != nil || c.TokenPath("./data") != "/etc/gatewayd/admin.token" || c.Listen != admin.DefaultListen {
		t.Errorf("token_file: %+v, %v", c, err)
	}
}

func TestConfigBounds(t *testing.T) {
	for _, v := range []string{"127.0.0.1:0", "127.0.0.1:65535", "[::1]:8480", "localhost:8480", ":8480"} {
		if _, err := parseAdmin(t, "[admin]\nlisten = \""+v+"\"\n"); err != nil {
			t.Errorf("listen = %q must be accepted: %v", v, err)
		}
	}
	tests := []struct{ v, msg string }{
		{"127.0.0.1:65536", `"127.0.0.1:65536": bad port`},
		{"127.0.0.1:-1", "bad port"},
		{"", `"" is not host:port`},
		{"127.0.0.1", `"127.0.0.1" is not host:port`},
		{"admin.example.com:8480", "the host must be an IP address"},
	}
	for _, tc := range tests {
		t.Run(tc.v, func(t *testing.T) {
			_, err := parseAdmin(t, "[admin]\ntoken_file = \"t\"\nlisten = \""+tc.v+"\"\n")
			testutil.WantProblem(t, err, "admin.listen", 3, tc.msg)
		})
	}
}

func TestConfigProblems(t *testing.T) {
	_, err := parseAdmin(t, "[admin]\nlisten = \"127.0.0.1:8480\"\ntoken = \"env:X\"\n")
	testutil.WantProblem(t, err, "admin.token", 3, `unknown key "admin.token"`)
}
