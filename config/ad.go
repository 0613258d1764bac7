package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	ldap "github.com/go-ldap/ldap/v3"
)

// ADDomain is one [[ad]] block: an Active Directory domain that validates
// the passwords of users whose delegated authority is "ad" (SPEC 6.1).
type ADDomain struct {
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
	BindDN       string    `toml:"bind_dn"`
	BindPassword SecretRef `toml:"bind_password"`
	// UsernameAttribute is the AD attribute that holds the gateway's name
	// for the user: sAMAccountName (default), userPrincipalName or mail.
	UsernameAttribute string   `toml:"username_attribute"`
	ConnectTimeout    Duration `toml:"connect_timeout"`
	Timeout           Duration `toml:"timeout"`
	PoolSize          int      `toml:"pool_size"`
	ProbeInterval     Duration `toml:"probe_interval"`
	// StoreHash keeps a local hash of AD-validated passwords (default true).
	StoreHash *bool `toml:"store_hash"`
	// OfflineLogin is how long after the last AD validation a user may log
	// in from the stored hash while every DC is unreachable (0 = off).
	OfflineLogin Duration `toml:"offline_login"`

	// RootCAs is ca_file, parsed by validation (nil: system roots).
	RootCAs *x509.CertPool `toml:"-"`
}

// StoresHash reports store_hash with its default.
func (a *ADDomain) StoresHash() bool { return a.StoreHash == nil || *a.StoreHash }

var adDomainName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))+$`)

// validateAD checks the [[ad]] blocks, applies their defaults, resolves
// bind_password and reads ca_file.
func (c *Config) validateAD() Problems {
	var ps Problems
	bad := func(path, format string, args ...any) { ps = append(ps, c.Errorf(path, format, args...)) }
	names := map[string]int{}
	domains := map[string]int{}
	for i := range c.AD {
		a := &c.AD[i]
		at := func(k string) string { return fmt.Sprintf("ad[%d].%s", i, k) }
		label := fmt.Sprintf("ad #%d (%q)", i+1, a.Name)
		if !directoryName.MatchString(a.Name) {
			bad(at("name"), "%s: name must be 1-64 lowercase letters, digits, '.', '_' or '-'", label)
		} else if j, dup := names[a.Name]; dup {
			bad(at("name"), "%s: the name is also used by ad #%d", label, j+1)
		} else {
			names[a.Name] = i
		}
		if !adDomainName.MatchString(a.Domain) {
			bad(at("domain"), "%s: domain must be the AD DNS domain, like EXAMPLE.COM", label)
		} else if j, dup := domains[strings.ToLower(a.Domain)]; dup {
			bad(at("domain"), "%s: domain %s is also configured in ad #%d (%q)", label, a.Domain, j+1, c.AD[j].Name)
		} else {
			domains[strings.ToLower(a.Domain)] = i
		}

		if len(a.URLs) == 0 {
			bad(at("urls"), "%s: urls must list at least one domain controller (ldaps://dc1.example.com)", label)
		}
		usesTLS := false
		for _, raw := range a.URLs {
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
				bad(at("urls"), "%s: %q is not a domain controller URL (write ldaps://host[:port] or ldap://host[:port])", label, raw)
				continue
			}
			switch strings.ToLower(u.Scheme) {
			case "ldaps":
				usesTLS = true
			case "ldap":
				if a.StartTLS {
					usesTLS = true
				} else if !a.AllowInsecure {
					bad(at("urls"), "%s: %s is plain LDAP: passwords would cross the network in clear; use ldaps://, set start_tls = true, or set allow_insecure = true to accept that", label, raw)
				}
			default:
				bad(at("urls"), "%s: %q: the scheme must be ldaps:// or ldap://", label, raw)
			}
		}
		if a.CAFile != "" {
			if !usesTLS {
				bad(at("ca_file"), "%s: ca_file is set but no URL uses TLS", label)
			}
			pool, err := loadCAFile(a.CAFile)
			if err != nil {
				bad(at("ca_file"), "%s ca_file: %v", label, err)
			}
			a.RootCAs = pool
		}

		if a.BaseDN != "" {
			if _, err := ldap.ParseDN(a.BaseDN); err != nil {
				bad(at("base_dn"), "%s: base_dn %q is not a DN: %v", label, a.BaseDN, err)
			}
		}
		if a.BindDN != "" {
			if _, err := ldap.ParseDN(a.BindDN); err != nil && !strings.Contains(a.BindDN, "@") {
				bad(at("bind_dn"), "%s: bind_dn %q is neither a DN nor a UPN: %v", label, a.BindDN, err)
			}
			if err := a.BindPassword.resolve(); err != nil {
				bad(at("bind_password"), "%s bind_password: %v", label, err)
			}
		} else if a.BindPassword.Ref != "" {
			bad(at("bind_password"), "%s: bind_password needs bind_dn", label)
		}
		switch strings.ToLower(a.UsernameAttribute) {
		case "", "samaccountname":
			a.UsernameAttribute = "sAMAccountName"
		case "userprincipalname":
			a.UsernameAttribute = "userPrincipalName"
		case "mail":
			a.UsernameAttribute = "mail"
			if a.BindDN == "" {
				bad(at("username_attribute"), "%s: username_attribute = \"mail\" needs a service account (bind_dn, bind_password) to find the user's DN; AD does not bind by mail", label)
			}
		default:
			bad(at("username_attribute"), "%s: username_attribute %q: use sAMAccountName, userPrincipalName or mail", label, a.UsernameAttribute)
		}

		if a.ConnectTimeout.Duration == 0 {
			a.ConnectTimeout.Duration = 400 * time.Millisecond
		}
		if a.Timeout.Duration == 0 {
			a.Timeout.Duration = 500 * time.Millisecond
		}
		if a.ProbeInterval.Duration == 0 {
			a.ProbeInterval.Duration = 5 * time.Second
		}
		if a.ConnectTimeout.Duration > 30*time.Second || a.Timeout.Duration > 30*time.Second {
			bad(at("timeout"), "%s: connect_timeout and timeout must be at most 30s (a login waits for them)", label)
		}
		if a.PoolSize == 0 {
			a.PoolSize = 4
		}
		if a.PoolSize < 1 || a.PoolSize > 256 {
			bad(at("pool_size"), "%s: pool_size must be between 1 and 256 connections per domain controller", label)
		}
		if a.OfflineLogin.Duration > 0 && !a.StoresHash() {
			bad(at("offline_login"), "%s: offline_login needs store_hash = true (offline logins are checked against the stored hash)", label)
		}
	}
	return ps
}

// loadCAFile reads PEM certificates; it fails clearly on an unreadable
// file or one with no certificate in it.
func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate #%d does not parse: %v", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}
