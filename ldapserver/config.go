package ldapserver

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is the [ldap] block of gatewayd.toml, already decoded. Zero values
// take the defaults listed on each field (see README.md).
type Config struct {
	// Listen is the plain LDAP address (host:port). StartTLS is offered on
	// it when CertFile/KeyFile are set. Empty: no plain listener.
	Listen string
	// LDAPSListen is the LDAP-over-TLS address. Empty: none. Needs a certificate.
	LDAPSListen string
	// BaseDN is the naming context, e.g. "dc=example,dc=com". Required.
	BaseDN string
	// CertFile and KeyFile are PEM files; both or neither. Reloaded by
	// ReloadCertificates (SIGHUP).
	CertFile, KeyFile string

	// AllowInsecureBind lets simple binds (and password modify) run over a
	// connection that is neither LDAPS nor StartTLS.
	AllowInsecureBind bool
	// ExemptLoopback lets clients on 127.0.0.0/8 and ::1 bind in the clear
	// (config/ defaults it to true).
	ExemptLoopback bool
	// BindNames says which bare bind names are accepted besides a DN:
	// "username", "email", "upn". Empty: all three.
	BindNames []string
	// UsersSeeAll lets ordinary users search the whole tree; otherwise
	// they see their own entry, their groups and the containers.
	UsersSeeAll bool
	// UserGIDNumber, when > 0, is every user's gidNumber; 0 uses the user
	// private group convention (gidNumber = uidNumber).
	UserGIDNumber int

	// MaxConnections caps open connections over both listeners (default 1024).
	MaxConnections int
	// IdleTimeout closes a connection with nothing in flight that sent
	// nothing for this long; it also bounds how long one message may take
	// to arrive (default 5m).
	IdleTimeout time.Duration
	// MaxRequestsPerConn caps operations in flight on one connection; the
	// next one is answered busy (51) (default 16).
	MaxRequestsPerConn int
	// MaxMessageBytes caps one LDAP message (default 256 KiB, at most 16 MiB).
	MaxMessageBytes int
	// SizeLimit caps entries per search, and per page of a paged search
	// (default 1000).
	SizeLimit int
	// TimeLimit caps the time one search may run (default 30s).
	TimeLimit time.Duration
}

// Defaults applied by New to zero fields.
const (
	DefaultMaxConnections     = 1024
	DefaultIdleTimeout        = 5 * time.Minute
	DefaultMaxRequestsPerConn = 16
	DefaultMaxMessageBytes    = 256 << 10
	DefaultSizeLimit          = 1000
	DefaultTimeLimit          = 30 * time.Second

	maxMessageBytesCeiling = 16 << 20
)

// Bind name kinds for Config.BindNames.
const (
	BindNameUsername = "username"
	BindNameEmail    = "email"
	BindNameUPN      = "upn"
)

func (c *Config) setDefaults() {
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxRequestsPerConn == 0 {
		c.MaxRequestsPerConn = DefaultMaxRequestsPerConn
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.SizeLimit == 0 {
		c.SizeLimit = DefaultSizeLimit
	}
	if c.TimeLimit == 0 {
		c.TimeLimit = DefaultTimeLimit
	}
	if len(c.BindNames) == 0 {
		c.BindNames = []string{BindNameUsername, BindNameEmail, BindNameUPN}
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Listen == "" && c.LDAPSListen == "" {
		errs = append(errs, errors.New("ldap: neither listen nor ldaps_listen is set"))
	}
	if strings.TrimSpace(c.BaseDN) == "" {
		errs = append(errs, errors.New("ldap: base_dn is required"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("ldap: cert_file and key_file go together"))
	}
	if c.LDAPSListen != "" && c.CertFile == "" {
		errs = append(errs, errors.New("ldap: ldaps_listen needs cert_file and key_file"))
	}
	for _, n := range c.BindNames {
		switch n {
		case BindNameUsername, BindNameEmail, BindNameUPN:
		default:
			errs = append(errs, fmt.Errorf("ldap: bind_names: unknown kind %q (want username, email, upn)", n))
		}
	}
	if c.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("ldap: max_connections must be positive, got %d", c.MaxConnections))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, errors.New("ldap: idle_timeout must be positive"))
	}
	if c.MaxRequestsPerConn < 1 {
		errs = append(errs, fmt.Errorf("ldap: max_requests_per_conn must be positive, got %d", c.MaxRequestsPerConn))
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > maxMessageBytesCeiling {
		errs = append(errs, fmt.Errorf("ldap: max_message_bytes must be between 1024 and %d, got %d", maxMessageBytesCeiling, c.MaxMessageBytes))
	}
	if c.SizeLimit < 1 {
		errs = append(errs, fmt.Errorf("ldap: size_limit must be positive, got %d", c.SizeLimit))
	}
	if c.TimeLimit < 0 {
		errs = append(errs, errors.New("ldap: time_limit must be positive"))
	}
	if c.UserGIDNumber < 0 {
		errs = append(errs, errors.New("ldap: user_gid_number must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) bindNameAllowed(kind string) bool {
	for _, n := range c.BindNames {
		if n == kind {
			return true
		}
	}
	return false
}
