package delegation

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/config"
)

// DomainConfig is one [[ad]] block of gatewayd.toml: an Active Directory
// domain that validates the passwords of users whose delegated authority
// is "ad" (SPEC 6.1). Runtime turns it into what New takes.
type DomainConfig struct {
	Name string `toml:"name"`
	// Domain is the AD DNS domain (EXAMPLE.TEST): the UPN suffix, and how
	// a user is matched to a block when there are several.
	Domain string   `toml:"domain"`
	URLs   []string `toml:"urls"`
	// StartTLS upgrades ldap:// URLs; ldaps:// needs nothing.
	StartTLS bool `toml:"start_tls"`
	// CAFile verifies the DCs' certificates (default: the system roots).
	CAFile string `toml:"ca_file"`
	// TLSServerName overrides the name checked in the certificates.
	TLSServerName string `toml:"tls_server_name"`
	// AllowInsecure permits plain ldap:// without StartTLS.
	AllowInsecure bool   `toml:"allow_insecure"`
	BaseDN        string `toml:"base_dn"`
	// BindDN and BindPassword: an optional service account that finds the
	// user's DN; without it users bind by UPN.
	BindDN       string        `toml:"bind_dn"`
	BindPassword config.Secret `toml:"bind_password"`
	// UsernameAttribute is the AD attribute that holds the gateway's name
	// for the user: sAMAccountName, userPrincipalName or mail.
	UsernameAttribute string        `toml:"username_attribute"`
	ConnectTimeout    time.Duration `toml:"connect_timeout"`
	Timeout           time.Duration `toml:"timeout"`
	PoolSize          int           `toml:"pool_size"`
	ProbeInterval     time.Duration `toml:"probe_interval"`
	// StoreHash keeps a local hash of AD-validated passwords.
	StoreHash bool `toml:"store_hash"`
	// OfflineLogin is how long after the last AD validation a user may log
	// in from the stored hash while every DC is unreachable (0 = off).
	OfflineLogin time.Duration `toml:"offline_login"`

	// rootCAs is ca_file, read by Validate.
	rootCAs *x509.CertPool
}

// Defaults sets an [[ad]] block's defaults.
func (c *DomainConfig) Defaults() {
	*c = DomainConfig{UsernameAttribute: AttrSAMAccountName, ConnectTimeout: DefaultConnectTimeout, Timeout: DefaultTimeout,
		PoolSize: DefaultPoolSize, ProbeInterval: DefaultProbeInterval, StoreHash: true}
}

var (
	blockName  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	realmShape = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))+$`)
)

// Validate checks the block and reads ca_file: a CA file that does not
// parse is a configuration error, found before the daemon starts.
func (c *DomainConfig) Validate() error {
	var errs []error
	label := fmt.Sprintf("ad %q", c.Name)
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(key, label+": "+format, args...))
	}
	if !blockName.MatchString(c.Name) {
		bad("name", "name must be 1-64 lowercase letters, digits, '.', '_' or '-'")
	}
	if !realmShape.MatchString(c.Domain) {
		bad("domain", "domain must be the AD DNS domain, like EXAMPLE.COM")
	}
	if len(c.URLs) == 0 {
		bad("urls", "urls must list at least one domain controller (ldaps://dc1.example.com)")
	}
	usesTLS := false
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			bad("urls", "%q is not a domain controller URL (write ldaps://host[:port] or ldap://host[:port])", raw)
			continue
		}
		switch strings.ToLower(u.Scheme) {
		case "ldaps":
			usesTLS = true
		case "ldap":
			if c.StartTLS {
				usesTLS = true
			} else if !c.AllowInsecure {
				bad("urls", "%s is plain LDAP: passwords would cross the network in clear; use ldaps://, set start_tls = true, or set allow_insecure = true to accept that", raw)
			}
		default:
			bad("urls", "%q: the scheme must be ldaps:// or ldap://", raw)
		}
	}
	c.rootCAs = nil
	if c.CAFile != "" {
		if !usesTLS {
			bad("ca_file", "ca_file is set but no URL uses TLS")
		}
		pool, err := loadCAFile(c.CAFile)
		if err != nil {
			bad("ca_file", "%v", err)
		}
		c.rootCAs = pool
	}
	if c.BaseDN != "" {
		if _, err := ldap.ParseDN(c.BaseDN); err != nil {
			bad("base_dn", "base_dn %q is not a DN: %v", c.BaseDN, err)
		}
	}
	if c.BindDN != "" {
		if _, err := ldap.ParseDN(c.BindDN); err != nil && !strings.Contains(c.BindDN, "@") {
			bad("bind_dn", "bind_dn %q is neither a DN nor a UPN: %v", c.BindDN, err)
		}
		if !c.BindPassword.IsSet() {
			bad("bind_password", "bind_dn needs bind_password (%s)", config.ErrSecretRequired)
		}
	} else if c.BindPassword.IsSet() {
		bad("bind_password", "bind_password needs bind_dn")
	}
	switch {
	case strings.EqualFold(c.UsernameAttribute, AttrSAMAccountName):
		c.UsernameAttribute = AttrSAMAccountName
	case strings.EqualFold(c.UsernameAttribute, AttrUserPrincipalName):
		c.UsernameAttribute = AttrUserPrincipalName
	case strings.EqualFold(c.UsernameAttribute, AttrMail):
		c.UsernameAttribute = AttrMail
		if c.BindDN == "" {
			bad("username_attribute", "username_attribute = \"mail\" needs a service account (bind_dn, bind_password) to find the user's DN; AD does not bind by mail")
		}
	default:
		bad("username_attribute", "username_attribute %q: use sAMAccountName, userPrincipalName or mail", c.UsernameAttribute)
	}
	for _, t := range []struct {
		key string
		v   time.Duration
	}{{"connect_timeout", c.ConnectTimeout}, {"timeout", c.Timeout}} {
		if t.v <= 0 || t.v > 30*time.Second {
			bad(t.key, "%s must be more than 0 and at most 30s (a login waits for it)", t.key)
		}
	}
	if c.ProbeInterval <= 0 {
		bad("probe_interval", "probe_interval must be positive")
	}
	if c.PoolSize < 1 || c.PoolSize > 256 {
		bad("pool_size", "pool_size must be between 1 and 256 connections per domain controller")
	}
	if c.OfflineLogin < 0 {
		bad("offline_login", "offline_login must not be negative (\"0s\" turns offline logins off)")
	}
	if c.OfflineLogin > 0 && !c.StoreHash {
		bad("offline_login", "offline_login needs store_hash = true (offline logins are checked against the stored hash)")
	}
	return errors.Join(errs...)
}

// Runtime is the validated block as New takes it.
func (c *DomainConfig) Runtime() Domain {
	return Domain{
		Name: c.Name, Realm: c.Domain, URLs: c.URLs, StartTLS: c.StartTLS, RootCAs: c.rootCAs,
		ServerName: c.TLSServerName, AllowInsecure: c.AllowInsecure, BaseDN: c.BaseDN,
		BindDN: c.BindDN, BindPassword: c.BindPassword.Value, UsernameAttribute: c.UsernameAttribute,
		ConnectTimeout: c.ConnectTimeout, Timeout: c.Timeout, PoolSize: c.PoolSize,
		ProbeInterval: c.ProbeInterval, StoreHash: c.StoreHash, OfflineLogin: c.OfflineLogin,
	}
}

// ValidateDomains checks what no block can alone: each name and each AD
// domain is configured once. Keys are relative to the file ("ad[1].name").
func ValidateDomains(blocks []DomainConfig) error {
	var errs []error
	names := map[string]int{}
	realms := map[string]int{}
	for i, c := range blocks {
		at := func(k string) string { return fmt.Sprintf("ad[%d].%s", i, k) }
		if j, dup := names[c.Name]; dup {
			errs = append(errs, config.Errorf(at("name"), "ad #%d (%q): the name is also used by ad #%d", i+1, c.Name, j+1))
		} else {
			names[c.Name] = i
		}
		realm := strings.ToLower(c.Domain)
		if j, dup := realms[realm]; dup {
			errs = append(errs, config.Errorf(at("domain"), "ad #%d (%q): domain %s is also configured in ad #%d (%q)", i+1, c.Name, c.Domain, j+1, blocks[j].Name))
		} else {
			realms[realm] = i
		}
	}
	return errors.Join(errs...)
}

// loadCAFile reads ca_file into a pool.
func loadCAFile(path string) (*x509.CertPool, error) {
	certs, err := config.ReadCertificates(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
