package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"

	ldap "github.com/go-ldap/ldap/v3"
)

func (c *Config) validate() Problems {
	var ps Problems
	bad := func(path, format string, args ...any) { ps = append(ps, c.Errorf(path, format, args...)) }

	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "data_dir must name a directory for the state journal")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "log.format %q: use text or json", c.Log.Format)
	}
	if err := checkHostPort(c.Admin.Listen); err != nil {
		bad("admin.listen", "admin.listen: %v", err)
	}

	a := c.Authn
	if a.Argon2.Time < 1 {
		bad("authn.argon2.time", "authn.argon2.time must be at least 1")
	}
	if a.Argon2.Threads < 1 {
		bad("authn.argon2.threads", "authn.argon2.threads must be at least 1")
	}
	if a.Argon2.MemoryKiB < 8*uint32(a.Argon2.Threads) || a.Argon2.MemoryKiB > 4<<20 {
		bad("authn.argon2.memory_kib", "authn.argon2.memory_kib must be between 8×threads and 4194304 (4 GiB); 65536 is the recommended 64 MiB")
	}
	if a.MaxConcurrentHashes < 1 {
		bad("authn.max_concurrent_hashes", "authn.max_concurrent_hashes must be at least 1 (each holds memory_kib of RAM)")
	}
	if a.MinPasswordLength < 1 || a.MaxPasswordLength < a.MinPasswordLength {
		bad("authn.min_password_length", "authn password lengths: need 1 <= min_password_length <= max_password_length")
	}
	if a.Lockout.MaxFailures < 0 {
		bad("authn.lockout.max_failures", "authn.lockout.max_failures must be 0 (off) or more")
	}
	if a.Lockout.MaxFailures > 0 && (a.Lockout.Window.Duration <= 0 || a.Lockout.Duration.Duration <= 0) {
		bad("authn.lockout", "authn.lockout: window and duration must be positive when max_failures is set")
	}
	if a.RateLimit.FailuresPerSecond < 0 || a.RateLimit.Burst < 0 {
		bad("authn.rate_limit", "authn.rate_limit values must not be negative")
	}
	for i, d := range a.UPNDomains {
		if d == "" || strings.ContainsAny(d, "@ ") {
			bad("authn.upn_domains", "authn.upn_domains[%d] %q is not a domain name", i, d)
		}
	}
	if c.Events.Retention < 1 {
		bad("events.retention", "events.retention must be at least 1")
	}

	ps = append(ps, c.validateLDAP()...)
	ps = append(ps, c.validateRADIUS()...)
	ps = append(ps, c.validateDirectories()...)
	ps = append(ps, c.validateAD()...)
	return ps
}

var directoryName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func (c *Config) validateDirectories() Problems {
	var ps Problems
	bad := func(path, format string, args ...any) { ps = append(ps, c.Errorf(path, format, args...)) }
	if c.Sync.Workers < 1 || c.Sync.MaxAttempts < 1 {
		bad("sync", "sync.workers and sync.max_attempts must be at least 1")
	}
	names := map[string]int{}
	tenants := map[string]int{}
	domains := map[string]int{}
	for i := range c.Directories {
		d := &c.Directories[i]
		at := func(k string) string { return fmt.Sprintf("directory[%d].%s", i, k) }
		label := fmt.Sprintf("directory #%d (%q)", i+1, d.Name)
		if !directoryName.MatchString(d.Name) {
			bad(at("name"), "%s: name must be 1-64 lowercase letters, digits, '.', '_' or '-'", label)
		} else if j, dup := names[d.Name]; dup {
			bad(at("name"), "%s: the name is also used by directory #%d", label, j+1)
		} else {
			names[d.Name] = i
		}
		switch d.Type {
		case "entra":
			if d.TenantID == "" || d.ClientID == "" {
				bad(at("tenant_id"), "%s: tenant_id and client_id are required for type entra", label)
			}
			if j, dup := tenants[strings.ToLower(d.TenantID)]; dup && d.TenantID != "" {
				bad(at("tenant_id"), "%s: tenant %s is already configured in directory #%d (%q); one tenant must not be synced twice", label, d.TenantID, j+1, c.Directories[j].Name)
			} else {
				tenants[strings.ToLower(d.TenantID)] = i
			}
			if err := d.ClientSecret.resolve(); err != nil {
				bad(at("client_secret"), "%s client_secret: %v", label, err)
			}
			for _, u := range []struct{ key, v string }{{"authority_url", d.AuthorityURL}, {"graph_url", d.GraphURL}} {
				if u.v != "" {
					if pu, err := url.Parse(u.v); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
						bad(at(u.key), "%s: %s %q is not an http(s) URL", label, u.key, u.v)
					}
				}
			}
			if d.PasswordPolicy == (PasswordPolicy{}) {
				d.PasswordPolicy = PasswordPolicy{MinLength: 8, MaxLength: 256}
			}
		case "google":
			if d.CustomerID == "" || d.AdminSubject == "" || d.CredentialsFile == "" {
				bad(at("customer_id"), "%s: customer_id, admin_subject and credentials_file are required for type google", label)
			}
			if j, dup := tenants["google:"+strings.ToLower(d.CustomerID)]; dup && d.CustomerID != "" {
				bad(at("customer_id"), "%s: customer %s is already configured in directory #%d (%q); one customer must not be synced twice", label, d.CustomerID, j+1, c.Directories[j].Name)
			} else {
				tenants["google:"+strings.ToLower(d.CustomerID)] = i
			}
			if d.CredentialsFile != "" {
				if st, err := os.Stat(d.CredentialsFile); err != nil {
					bad(at("credentials_file"), "%s: cannot read credentials_file: %v", label, err)
				} else if st.Mode().Perm()&0o077 != 0 {
					bad(at("credentials_file"), "%s: credentials_file %s is readable by others (mode %v): chmod 600 it", label, d.CredentialsFile, st.Mode().Perm())
				}
			}
			for _, u := range []struct{ key, v string }{{"endpoint", d.Endpoint}, {"token_url", d.TokenURL}} {
				if u.v != "" {
					if pu, err := url.Parse(u.v); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
						bad(at(u.key), "%s: %s %q is not an http(s) URL", label, u.key, u.v)
					}
				}
			}
			if d.PasswordPolicy == (PasswordPolicy{}) {
				d.PasswordPolicy = PasswordPolicy{MinLength: 8, MaxLength: 100}
			}
		case "":
			bad(at("type"), "%s needs a type (entra or google)", label)
		default:
			bad(at("type"), "%s: type %q is not supported (supported: entra, google)", label, d.Type)
		}
		switch d.ImportState {
		case "":
			d.ImportState = "staged"
		case "active", "staged":
		default:
			bad(at("import_state"), "%s: import_state must be active or staged", label)
		}
		if d.PasswordPolicy.MinLength < 0 || (d.PasswordPolicy.MaxLength > 0 && d.PasswordPolicy.MaxLength < d.PasswordPolicy.MinLength) {
			bad(at("password_policy"), "%s: password_policy needs 0 <= min_length <= max_length", label)
		}
		for _, dom := range d.Domains {
			key := strings.ToLower(dom)
			if j, dup := domains[key]; dup && j != i {
				bad(at("domains"), "%s: domain %s is also listed in directory #%d (%q); one verified domain belongs to one directory", label, dom, j+1, c.Directories[j].Name)
			} else {
				domains[key] = i
			}
		}
		if d.DefaultDomain != "" && len(d.Domains) == 0 {
			bad(at("default_domain"), "%s: default_domain needs domains", label)
		}
	}
	return ps
}

func (c *Config) validateLDAP() Problems {
	var ps Problems
	bad := func(path, format string, args ...any) { ps = append(ps, c.Errorf(path, format, args...)) }
	l := c.LDAP
	if l.Listen == "" && l.LDAPSListen == "" {
		return nil // LDAP door off
	}
	if l.Listen != "" {
		if err := checkHostPort(l.Listen); err != nil {
			bad("ldap.listen", "ldap.listen: %v", err)
		}
	}
	if l.LDAPSListen != "" {
		if err := checkHostPort(l.LDAPSListen); err != nil {
			bad("ldap.ldaps_listen", "ldap.ldaps_listen: %v", err)
		}
		if l.CertFile == "" {
			bad("ldap.ldaps_listen", "ldap.ldaps_listen needs cert_file and key_file")
		}
	}
	if l.BaseDN == "" {
		bad("ldap.base_dn", "ldap.base_dn is required (for example \"dc=example,dc=com\")")
	} else if _, err := ldap.ParseDN(l.BaseDN); err != nil {
		bad("ldap.base_dn", "ldap.base_dn %q is not a DN: %v", l.BaseDN, err)
	}
	if (l.CertFile == "") != (l.KeyFile == "") {
		bad("ldap.cert_file", "ldap.cert_file and ldap.key_file go together")
	} else if l.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile); err != nil {
			bad("ldap.cert_file", "ldap TLS certificate: %v", err)
		}
	}
	for _, n := range l.BindNames {
		switch n {
		case "username", "email", "upn":
		default:
			bad("ldap.bind_names", "ldap.bind_names: %q is not one of username, email, upn", n)
		}
	}
	if l.MaxConnections < 1 || l.MaxRequestsPerConn < 1 {
		bad("ldap.max_connections", "ldap.max_connections and max_requests_per_conn must be at least 1")
	}
	if l.MaxMessageBytes < 1024 || l.MaxMessageBytes > 64<<20 {
		bad("ldap.max_message_bytes", "ldap.max_message_bytes must be between 1024 and 67108864")
	}
	return ps
}

func (c *Config) validateRADIUS() Problems {
	var ps Problems
	bad := func(path, format string, args ...any) { ps = append(ps, c.Errorf(path, format, args...)) }
	r := &c.RADIUS
	for i, l := range r.Listen {
		if err := checkHostPort(l); err != nil {
			bad("radius.listen", "radius.listen[%d]: %v", i, err)
		}
	}
	if r.Workers < 0 {
		bad("radius.workers", "radius.workers must not be negative (0 picks a default)")
	}
	names := map[string]int{}
	nets := map[netip.Prefix]string{}
	for i := range r.Clients {
		cl := &r.Clients[i]
		at := func(k string) string { return fmt.Sprintf("radius.client[%d].%s", i, k) }
		if cl.Name == "" {
			bad(at("name"), "radius.client #%d needs a name", i+1)
		} else if j, dup := names[cl.Name]; dup {
			bad(at("name"), "radius.client name %q is used twice (also client #%d)", cl.Name, j+1)
		} else {
			names[cl.Name] = i
		}
		if len(cl.Networks) == 0 {
			bad(at("networks"), "radius.client %q needs networks (CIDRs its packets come from)", cl.Name)
		}
		for _, n := range cl.Networks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				bad(at("networks"), "radius.client %q: %q is not a CIDR (write 192.0.2.0/24 or 2001:db8::/32)", cl.Name, n)
				continue
			}
			p = p.Masked()
			if other, dup := nets[p]; dup {
				bad(at("networks"), "radius.client %q: network %s is already claimed by client %q", cl.Name, p, other)
				continue
			}
			nets[p] = cl.Name
		}
		if err := cl.Secret.resolve(); err != nil {
			bad(at("secret"), "radius.client %q secret: %v", cl.Name, err)
		}
		if cl.RequireMessageAuthenticator == nil {
			t := true
			cl.RequireMessageAuthenticator = &t
		}
	}
	for i, g := range r.ReplyGroups {
		if g.Group == "" {
			bad(fmt.Sprintf("radius.reply_group[%d].group", i), "radius.reply_group #%d needs a group", i+1)
		}
		if len(g.Attributes) == 0 {
			bad(fmt.Sprintf("radius.reply_group[%d].attributes", i), "radius.reply_group %q has no attributes", g.Group)
		}
	}
	return ps
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (write 127.0.0.1:389 or [::1]:389): %v", s, err)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return fmt.Errorf("%q: the host must be an IP address", s)
		}
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

// CheckPorts tries to bind every listen address and releases it at once,
// so check-config can report a port that is taken before the daemon
// starts. Run it when the daemon itself is not running.
func (c *Config) CheckPorts() Problems {
	var ps Problems
	try := func(path, network, addr string) {
		if addr == "" {
			return
		}
		if network == "udp" {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				ps = append(ps, c.Errorf(path, "%s: cannot listen on %s/udp: %v", path, addr, err))
				return
			}
			pc.Close()
			return
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			ps = append(ps, c.Errorf(path, "%s: cannot listen on %s/tcp: %v", path, addr, err))
			return
		}
		l.Close()
	}
	try("admin.listen", "tcp", c.Admin.Listen)
	try("ldap.listen", "tcp", c.LDAP.Listen)
	try("ldap.ldaps_listen", "tcp", c.LDAP.LDAPSListen)
	for _, l := range c.RADIUS.Listen {
		try("radius.listen", "udp", l)
	}
	return ps
}
