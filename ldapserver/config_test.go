package ldapserver

import (
	"reflect"
	"strings"
	"testing"
	"time"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// ldapBase turns the door on (a listener and a base DN), so Validate
// checks the rest; a case's extra keys start on line 4.
const ldapBase = "[ldap]\nlisten = \"127.0.0.1:3890\"\nbase_dn = \"dc=example,dc=test\"\n"

func parseLDAP(t *testing.T, text string) (Config, error) {
	t.Helper()
	var c Config
	err := testutil.ParseBlock(t, "ldap", &c, text)
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseLDAP(t, "[ldap]\n")
	if err != nil {
		t.Fatalf("an empty [ldap] must load: %v", err)
	}
	want := Config{
		ExemptLoopback:     true,
		BindNames:          []string{"username", "email", "upn"},
		MaxConnections:     4096,
		IdleTimeout:        5 * time.Minute,
		MaxRequestsPerConn: 64,
		// max_connections_per_source, unbound_idle_timeout (C1)
		MaxConnectionsPerSource: 64,
		UnboundIdleTimeout:      30 * time.Second,
		MaxMessageBytes:         1048576,
		MaxBytesInFlight:        256 << 20, // C2
		SizeLimit:               1000,
		TimeLimit:               30 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if c.Enabled() {
		t.Error("no listener by default: the door is off unless the file names one")
	}

	// gatewayd.toml.example documents the defaults; it turns the door on.
	ex, err := parseLDAP(t, testutil.ConfigSection(t, gatewayd.ExampleConfig, "ldap"))
	if err != nil {
		t.Fatalf("the example's [ldap]: %v", err)
	}
	want.Listen, want.BaseDN = "127.0.0.1:3890", "dc=example,dc=test"
	if !reflect.DeepEqual(ex, want) {
		t.Errorf("gatewayd.toml.example's [ldap] differs from the defaults:\n got %+v\nwant %+v", ex, want)
	}
}

func TestConfigOffIsNotChecked(t *testing.T) {
	// Without a listener the door is off and its other keys are not
	// checked (a file may keep a half-written [ldap] while it is off).
	if _, err := parseLDAP(t, "[ldap]\nmax_connections = 0\nbind_names = [\"uid\"]\n"); err != nil {
		t.Fatalf("a block with no listener must not be checked: %v", err)
	}
}

func TestConfigBounds(t *testing.T) {
	tests := []struct {
		key, ok, bad string // values as written in TOML
		msg          string
	}{
		{"max_connections", "1", "0", "must be at least 1, got 0"},
		{"max_connections", "1", "-1", "must be at least 1, got -1"},
		{"idle_timeout", `"1ns"`, `"0s"`, "must be positive"},
		{"idle_timeout", `"1ns"`, `"-1s"`, "must be positive"},
		{"max_requests_per_conn", "1", "0", "must be at least 1, got 0"},
		{"max_message_bytes", "1024", "1023", "must be between 1024 and 16777216 (16 MiB), got 1023"},
		{"max_message_bytes", "16777216", "16777217", "must be between 1024 and 16777216 (16 MiB), got 16777217"},
		{"max_message_bytes", "16777216", "33554432", "got 33554432"}, // 32 MiB
		{"max_bytes_in_flight", "1048576", "1048575", "must be at least 1048576 (1 MiB), got 1048575"},
		{"max_bytes_in_flight", "1048576", "0", "must be at least 1048576 (1 MiB), got 0"},
		{"size_limit", "1", "0", "must be at least 1, got 0"},
		{"time_limit", `"1ns"`, `"0s"`, "must be positive"},
		{"user_gid_number", "0", "-1", "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.bad, func(t *testing.T) {
			if _, err := parseLDAP(t, ldapBase+tc.key+" = "+tc.ok+"\n"); err != nil {
				t.Fatalf("%s = %s must be accepted: %v", tc.key, tc.ok, err)
			}
			_, err := parseLDAP(t, ldapBase+tc.key+" = "+tc.bad+"\n")
			testutil.WantProblem(t, err, "ldap."+tc.key, 4, tc.msg)
		})
	}
}

func TestConfigMaxMessageBytesCeiling(t *testing.T) {
	// A message is held whole while it is decoded: 16 MiB is the most.
	c, err := parseLDAP(t, ldapBase+"max_message_bytes = 16777216\n")
	if err != nil || c.MaxMessageBytes != 16<<20 {
		t.Fatalf("16 MiB: max_message_bytes = %d, %v", c.MaxMessageBytes, err)
	}
	_, err = parseLDAP(t, "[ldap]\nlisten = \"127.0.0.1:3890\"\nmax_message_bytes = 33554432 # 32 MiB\nbase_dn = \"dc=example,dc=test\"\n")
	p := testutil.WantProblem(t, err, "ldap.max_message_bytes", 3, "must be between 1024 and 16777216 (16 MiB), got 33554432")
	if want := "test.toml:3: ldap.max_message_bytes: must be between 1024 and 16777216 (16 MiB), got 33554432"; p.String() != want {
		t.Errorf("got %q, want %q", p, want)
	}
}

func TestConfigProblems(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name string
		text string
		key  string
		line int
		msg  string
	}{
		{"bad listen", "[ldap]\nbase_dn = \"dc=x\"\nlisten = \"bogus\"\n",
			"ldap.listen", 3, `"bogus" is not host:port`},
		{"listen host not an IP", "[ldap]\nbase_dn = \"dc=x\"\nlisten = \"ldap.example.com:389\"\n",
			"ldap.listen", 3, "the host must be an IP address"},
		{"bad ldaps_listen", "[ldap]\nbase_dn = \"dc=x\"\nldaps_listen = \"127.0.0.1:x\"\ncert_file = \"" + pki.certFile + "\"\nkey_file = \"" + pki.keyFile + "\"\n",
			"ldap.ldaps_listen", 3, "bad port"},
		{"ldaps without a certificate", "[ldap]\nbase_dn = \"dc=x\"\nldaps_listen = \"127.0.0.1:6360\"\n",
			"ldap.ldaps_listen", 3, "LDAPS needs cert_file and key_file"},
		{"base_dn left out", "[ldap]\nlisten = \"127.0.0.1:3890\"\n",
			"ldap.base_dn", 1, "base_dn is required"},
		{"base_dn blank", "[ldap]\nlisten = \"127.0.0.1:3890\"\nbase_dn = \"  \"\n",
			"ldap.base_dn", 3, "base_dn is required"},
		{"base_dn not a DN", "[ldap]\nlisten = \"127.0.0.1:3890\"\nbase_dn = \"example.test\"\n",
			"ldap.base_dn", 3, `"example.test" is not a DN`},
		{"cert_file without key_file", ldapBase + "cert_file = \"" + pki.certFile + "\"\n",
			"ldap.cert_file", 4, "cert_file and key_file go together"},
		{"key_file without cert_file", ldapBase + "key_file = \"" + pki.keyFile + "\"\n",
			"ldap.key_file", 4, "cert_file and key_file go together"},
		{"unreadable certificate", ldapBase + "cert_file = \"/nonexistent/cert.pem\"\nkey_file = \"" + pki.keyFile + "\"\n",
			"ldap.cert_file", 4, "TLS certificate"},
		{"key does not match", ldapBase + "cert_file = \"" + pki.certFile + "\"\nkey_file = \"" + pki.caFile + "\"\n",
			"ldap.cert_file", 4, "TLS certificate"},
		{"bind name", ldapBase + "bind_names = [\"username\", \"uid\"]\n",
			"ldap.bind_names", 4, `"uid" is not one of username, email, upn`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseLDAP(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestConfigAccepts(t *testing.T) {
	pki := newTestPKI(t)
	for name, text := range map[string]string{
		"ldaps only": "[ldap]\nbase_dn = \"dc=x\"\nldaps_listen = \"127.0.0.1:6360\"\ncert_file = \"" + pki.certFile + "\"\nkey_file = \"" + pki.keyFile + "\"\n",
		"starttls":   ldapBase + "cert_file = \"" + pki.certFile + "\"\nkey_file = \"" + pki.keyFile + "\"\n",
		"every address, localhost, IPv6": "[ldap]\nbase_dn = \"dc=x\"\nlisten = \":3890\"\n" +
			"ldaps_listen = \"[::1]:6360\"\ncert_file = \"" + pki.certFile + "\"\nkey_file = \"" + pki.keyFile + "\"\n",
		"one bind name":  ldapBase + "bind_names = [\"upn\"]\n",
		"flags set":      ldapBase + "allow_insecure_bind = true\nexempt_loopback = false\nusers_see_all = true\n",
		"shared gid":     ldapBase + "user_gid_number = 5000\n",
		"base_dn spaced": "[ldap]\nlisten = \"localhost:3890\"\nbase_dn = \"DC=Example, DC=Test\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseLDAP(t, text); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A false in the file wins over a true default.
	c, err := parseLDAP(t, ldapBase+"exempt_loopback = false\n")
	if err != nil || c.ExemptLoopback {
		t.Fatalf("exempt_loopback = false: %+v, %v", c, err)
	}
}

func TestConfigDecodeProblems(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
		msg  string
	}{
		{"unknown key", ldapBase + "max_conections = 10\n", 4, `unknown key "ldap.max_conections"`},
		{"wrong type", ldapBase + "max_connections = \"many\"\n", 4, "ldap.max_connections"},
		{"bad duration", ldapBase + "idle_timeout = \"soon\"\n", 4, "idle_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseLDAP(t, tc.text)
			ps := testutil.ConfigProblems(t, err)
			if len(ps) != 1 || ps[0].Line != tc.line || !strings.Contains(ps[0].Msg, tc.msg) {
				t.Fatalf("got %v; want one problem at line %d containing %q", ps, tc.line, tc.msg)
			}
		})
	}
}

func TestConfigEveryProblemAtItsLine(t *testing.T) {
	_, err := parseLDAP(t, ldapBase+"max_connections = 0\nsize_limit = 0\nmax_message_bytes = 33554432\n")
	ps := testutil.ConfigProblems(t, err)
	if len(ps) != 3 {
		t.Fatalf("want three problems, got %v", ps)
	}
	for i, key := range []string{"ldap.max_connections", "ldap.size_limit", "ldap.max_message_bytes"} {
		testutil.CheckProblem(t, ps[i], key, 4+i)
	}
}
