package delegation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// adRoot is the daemon's root as far as [[ad]] goes: the blocks, and
// the check across them.
type adRoot struct {
	AD []DomainConfig `toml:"ad"`
}

func (r *adRoot) Validate() error { return ValidateDomains(r.AD) }

func parseAD(t *testing.T, text string) ([]DomainConfig, error) {
	t.Helper()
	var r adRoot
	err := testutil.ParseRoot(t, &r, text)
	return r.AD, err
}

// adBlock is an [[ad]] block of four lines (header, name, domain, urls)
// that validates; a case's extra keys follow it.
func adBlock(name, domain string) string {
	return "[[ad]]\nname = \"" + name + "\"\ndomain = \"" + domain + "\"\nurls = [\"ldaps://dc1." + domain + "\"]\n"
}

// writeCA writes a throwaway CA certificate as PEM and returns its path.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "config test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	blocks, err := parseAD(t, adBlock("corp", "EXAMPLE.COM"))
	if err != nil {
		t.Fatal(err)
	}
	// The values gatewayd.toml.example documents for [[ad]].
	want := DomainConfig{Name: "corp", Domain: "EXAMPLE.COM", URLs: []string{"ldaps://dc1.EXAMPLE.COM"},
		UsernameAttribute: "sAMAccountName", ConnectTimeout: 400 * time.Millisecond, Timeout: 500 * time.Millisecond,
		PoolSize: 4, ProbeInterval: 5 * time.Second, StoreHash: true}
	if len(blocks) != 1 || !reflect.DeepEqual(blocks[0], want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", blocks, want)
	}
	if blocks[0].StartTLS || blocks[0].AllowInsecure || blocks[0].OfflineLogin != 0 || blocks[0].BaseDN != "" {
		t.Errorf("TLS on, offline logins off, base_dn from the domain by default: %+v", blocks[0])
	}
	// Each element starts from the defaults, whatever the one before set.
	blocks, err = parseAD(t, adBlock("a", "A.TEST")+"pool_size = 8\nstore_hash = false\n"+adBlock("b", "B.TEST"))
	if err != nil {
		t.Fatal(err)
	}
	if blocks[0].PoolSize != 8 || blocks[0].StoreHash || blocks[1].PoolSize != 4 || !blocks[1].StoreHash {
		t.Errorf("second block's defaults: %+v", blocks)
	}
}

func TestConfigBounds(t *testing.T) {
	tests := []struct {
		key, ok, bad string // values as written; the key is on line 5 of the second block
		msg          string
	}{
		{"connect_timeout", `"1ns"`, `"0s"`, "connect_timeout must be more than 0 and at most 30s"},
		{"connect_timeout", `"30s"`, `"30.000000001s"`, "connect_timeout must be more than 0 and at most 30s"},
		{"timeout", `"1ns"`, `"-1s"`, "timeout must be more than 0 and at most 30s"},
		{"timeout", `"30s"`, `"31s"`, "timeout must be more than 0 and at most 30s"},
		{"probe_interval", `"1ns"`, `"0s"`, "probe_interval must be positive"},
		{"pool_size", "1", "0", "pool_size must be between 1 and 256"},
		{"pool_size", "256", "257", "pool_size must be between 1 and 256"},
		{"offline_login", `"0s"`, `"-1s"`, "offline_login must not be negative"},
	}
	first := adBlock("corp", "EXAMPLE.COM") // lines 1-4; the second block starts on line 5
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.bad, func(t *testing.T) {
			if _, err := parseAD(t, first+adBlock("lab", "LAB.TEST")+tc.key+" = "+tc.ok+"\n"); err != nil {
				t.Fatalf("%s = %s must be accepted: %v", tc.key, tc.ok, err)
			}
			_, err := parseAD(t, first+adBlock("lab", "LAB.TEST")+tc.key+" = "+tc.bad+"\n")
			testutil.WantProblem(t, err, "ad[1]."+tc.key, 9, `ad "lab": `+tc.msg)
		})
	}
	// offline_login needs the stored hash: one past "0s" is refused
	// without it.
	if _, err := parseAD(t, adBlock("corp", "EXAMPLE.COM")+"store_hash = false\noffline_login = \"0s\"\n"); err != nil {
		t.Fatal(err)
	}
	_, err := parseAD(t, adBlock("corp", "EXAMPLE.COM")+"store_hash = false\noffline_login = \"1ns\"\n")
	testutil.WantProblem(t, err, "ad[0].offline_login", 6, "offline_login needs store_hash = true")
}

func TestConfigProblems(t *testing.T) {
	t.Setenv("GW_AD_TEST", "bind-secret")
	t.Setenv("GW_AD_TEST_UNSET", "")
	ca := writeCA(t)
	notPEM := writeFile(t, "ca.txt", "not a certificate\n")
	badDER := writeFile(t, "bad.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})))
	first := adBlock("corp", "EXAMPLE.COM") // lines 1-4
	tests := []struct {
		name string
		text string
		key  string
		line int
		msg  string
	}{
		{"name left out", "[[ad]]\ndomain = \"EXAMPLE.COM\"\nurls = [\"ldaps://dc1\"]\n",
			"ad[0].name", 1, "name must be 1-64 lowercase letters"},
		{"second name upper case", first + adBlock("Lab", "LAB.TEST"),
			"ad[1].name", 6, `ad "Lab": name must be 1-64 lowercase letters`},
		{"second domain not a DNS domain", first + "[[ad]]\nname = \"lab\"\ndomain = \"LAB\"\nurls = [\"ldaps://dc1\"]\n",
			"ad[1].domain", 7, `ad "lab": domain must be the AD DNS domain`},
		{"urls left out", "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\n",
			"ad[0].urls", 1, "urls must list at least one domain controller"},
		{"urls empty", "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = []\n",
			"ad[0].urls", 4, "urls must list at least one domain controller"},
		{"second url plain", first + "[[ad]]\nname = \"lab\"\ndomain = \"LAB.TEST\"\nurls = [\"ldaps://dc1\", \"ldap://dc2\"]\n",
			"ad[1].urls", 8, "ldap://dc2 is plain LDAP: passwords would cross the network in clear"},
		{"url without a host", "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = [\"ldaps://\"]\n",
			"ad[0].urls", 4, `"ldaps://" is not a domain controller URL`},
		{"url with a path", "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = [\"ldaps://dc1/dc=example\"]\n",
			"ad[0].urls", 4, "is not a domain controller URL"},
		{"url scheme", "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = [\"https://dc1\"]\n",
			"ad[0].urls", 4, `"https://dc1": the scheme must be ldaps:// or ldap://`},
		{"ca_file missing", first + "ca_file = \"/nonexistent/ca.pem\"\n",
			"ad[0].ca_file", 5, "cannot read /nonexistent/ca.pem"},
		{"ca_file without a certificate", first + "ca_file = \"" + notPEM + "\"\n",
			"ad[0].ca_file", 5, "holds no PEM certificate"},
		{"ca_file certificate does not parse", first + "ca_file = \"" + badDER + "\"\n",
			"ad[0].ca_file", 5, "certificate #1 does not parse"},
		{"ca_file without TLS", "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = [\"ldap://dc1\"]\nallow_insecure = true\nca_file = \"" + ca + "\"\n",
			"ad[0].ca_file", 6, "ca_file is set but no URL uses TLS"},
		{"base_dn not a DN", first + "base_dn = \"example.com\"\n",
			"ad[0].base_dn", 5, `base_dn "example.com" is not a DN`},
		{"bind_dn neither DN nor UPN", first + "bind_dn = \"gatewayd\"\nbind_password = \"env:GW_AD_TEST\"\n",
			"ad[0].bind_dn", 5, `bind_dn "gatewayd" is neither a DN nor a UPN`},
		{"bind_dn without its password", first + "bind_dn = \"CN=gw,DC=example,DC=com\"\n",
			"ad[0].bind_password", 1, "bind_dn needs bind_password (" + config.ErrSecretRequired + ")"},
		{"bind_password without bind_dn", first + "bind_password = \"env:GW_AD_TEST\"\n",
			"ad[0].bind_password", 5, "bind_password needs bind_dn"},
		{"bind_password env unset", first + "bind_dn = \"svc@example.com\"\nbind_password = \"env:GW_AD_TEST_UNSET\"\n",
			"ad[0].bind_password", 6, "environment variable GW_AD_TEST_UNSET (from \"env:GW_AD_TEST_UNSET\") is not set or empty"},
		{"bind_password literal", first + adBlock("lab", "LAB.TEST") + "bind_dn = \"svc@lab.test\"\nbind_password = \"hunter2\"\n",
			"ad[1].bind_password", 10, "a literal secret is not accepted"},
		{"bind_password file missing", first + "bind_dn = \"svc@example.com\"\nbind_password = \"file:/nonexistent/pw\"\n",
			"ad[0].bind_password", 6, "cannot read secret file"},
		{"username_attribute unknown", first + "username_attribute = \"uid\"\n",
			"ad[0].username_attribute", 5, `username_attribute "uid": use sAMAccountName, userPrincipalName or mail`},
		{"username_attribute mail without a service account", first + "username_attribute = \"mail\"\n",
			"ad[0].username_attribute", 5, "needs a service account"},
		{"unknown key", first + "pool = 4\n",
			"ad.pool", 5, `unknown key "ad.pool"`},
		// Across blocks: each name and each domain once.
		{"second name used twice", first + adBlock("corp", "LAB.TEST"),
			"ad[1].name", 6, `ad #2 ("corp"): the name is also used by ad #1`},
		{"second domain used twice", first + adBlock("lab", "example.com"),
			"ad[1].domain", 7, `ad #2 ("lab"): domain example.com is also configured in ad #1 ("corp")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseAD(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestConfigAccepts(t *testing.T) {
	t.Setenv("GW_AD_TEST", "bind-secret")
	ca := writeCA(t)
	first := adBlock("corp", "EXAMPLE.COM")
	for name, text := range map[string]string{
		"start_tls":           "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = [\"ldap://dc1:389\"]\nstart_tls = true\nca_file = \"" + ca + "\"\n",
		"allow_insecure":      "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = [\"ldap://dc1\"]\nallow_insecure = true\n",
		"ldaps with a port":   "[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.COM\"\nurls = [\"LDAPS://dc1:3269/\", \"ldaps://[2001:db8::1]\"]\n",
		"service account DN":  first + "bind_dn = \"CN=gw,CN=Users,DC=example,DC=com\"\nbind_password = \"env:GW_AD_TEST\"\nusername_attribute = \"mail\"\n",
		"service account UPN": first + "bind_dn = \"gw@example.com\"\nbind_password = \"env:GW_AD_TEST\"\n",
		"offline logins":      first + "offline_login = \"72h\"\n",
		"base_dn":             first + "base_dn = \"OU=Staff,DC=example,DC=com\"\ntls_server_name = \"dc.example.com\"\n",
		"two domains":         first + adBlock("lab", "LAB.EXAMPLE.COM"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseAD(t, text); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Validate reads ca_file into the pool Runtime hands New, normalises
	// username_attribute, and the bind password is resolved.
	blocks, err := parseAD(t, first+"ca_file = \""+ca+"\"\nusername_attribute = \"USERPRINCIPALNAME\"\nbind_dn = \"gw@example.com\"\nbind_password = \"env:GW_AD_TEST\"\n")
	if err != nil {
		t.Fatal(err)
	}
	rt := blocks[0].Runtime()
	if rt.RootCAs == nil || rt.UsernameAttribute != AttrUserPrincipalName || string(rt.BindPassword.Bytes()) != "bind-secret" {
		t.Errorf("runtime: CAs %v, username attribute %q, bind password set %v", rt.RootCAs != nil, rt.UsernameAttribute, !rt.BindPassword.IsEmpty())
	}
	d, err := New(Config{Domains: []Domain{rt}})
	if err != nil {
		t.Fatalf("New refuses a validated block: %v", err)
	}
	d.Close()
}

func TestConfigEveryProblemAtItsLine(t *testing.T) {
	// Per-block problems and cross-block ones come back together, in
	// file order.
	_, err := parseAD(t, adBlock("corp", "EXAMPLE.COM")+"pool_size = 0\n"+adBlock("corp", "example.com")+"timeout = \"1m\"\n")
	ps := testutil.ConfigProblems(t, err)
	if len(ps) != 4 {
		t.Fatalf("want four problems, got:\n%v", ps)
	}
	testutil.CheckProblem(t, ps[0], "ad[0].pool_size", 5)
	testutil.CheckProblem(t, ps[1], "ad[1].name", 7, "ad #2")
	testutil.CheckProblem(t, ps[2], "ad[1].domain", 8, `also configured in ad #1 ("corp")`)
	testutil.CheckProblem(t, ps[3], "ad[1].timeout", 10)
}
