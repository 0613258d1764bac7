package ldapserver

import (
	"crypto/tls"
	"errors"
	"strings"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/config"
)

// Config is the [ldap] block of gatewayd.toml. The daemon's loader calls
// Defaults, decodes the file over it and calls Validate; a Config built in
// code may leave numeric limits zero, and New gives them the same defaults.
type Config struct {
	// Listen is the plain LDAP address (host:port). StartTLS is offered on
	// it when CertFile/KeyFile are set. Empty: no plain listener.
	Listen string `toml:"listen"`
	// LDAPSListen is the LDAP-over-TLS address. Empty: none. Needs a certificate.
	LDAPSListen string `toml:"ldaps_listen"`
	// BaseDN is the naming context, e.g. "dc=example,dc=com". Required.
	BaseDN string `toml:"base_dn"`
	// CertFile and KeyFile are PEM files; both or neither. Reloaded by
	// ReloadCertificates (SIGHUP).
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`

	// AllowInsecureBind lets simple binds (and password modify) run over a
	// connection that is neither LDAPS nor StartTLS.
	AllowInsecureBind bool `toml:"allow_insecure_bind"`
	// ExemptLoopback lets clients on 127.0.0.0/8 and ::1 bind in the clear
	// (default true in the file; false in a zero Config).
	ExemptLoopback bool `toml:"exempt_loopback"`
	// BindNames says which bare bind names are accepted besides a DN:
	// "username", "email", "upn". Empty: all three.
	BindNames []string `toml:"bind_names"`
	// UsersSeeAll lets ordinary users search the whole tree; otherwise
	// they see their own entry, their groups and the containers.
	UsersSeeAll bool `toml:"users_see_all"`
	// HideInactive leaves inactive users (staged, suspended, locked out,
	// password expired) out of every search, as if deleted, instead of
	// rendering them disabled; they come back once active.
	HideInactive bool `toml:"hide_inactive"`
	// UserGIDNumber, when > 0, is every user's gidNumber; 0 uses the user
	// private group convention (gidNumber = uidNumber).
	UserGIDNumber int `toml:"user_gid_number"`

	// MaxConnections caps open connections over both listeners.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerSource caps open connections from one client IP
	// address over both listeners, so that one client cannot hold every
	// slot. Loopback clients are not counted (a local proxy carries every
	// client from 127.0.0.1); max_connections still bounds them.
	MaxConnectionsPerSource int `toml:"max_connections_per_source"`
	// UnboundIdleTimeout closes a connection that is not bound (never
	// bound, anonymous, or unbound) this long after it became so, whatever
	// it sends: anonymous traffic does not extend it. Capped by IdleTimeout.
	UnboundIdleTimeout time.Duration `toml:"unbound_idle_timeout"`
	// IdleTimeout closes a connection with nothing in flight that sent
	// nothing for this long; it also bounds how long one message may take
	// to arrive.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// MaxRequestsPerConn caps operations in flight on one connection; the
	// next one is answered busy (51).
	MaxRequestsPerConn int `toml:"max_requests_per_conn"`
	// MaxMessageBytes caps one LDAP message (at most 16 MiB).
	MaxMessageBytes int `toml:"max_message_bytes"`
	// MaxBytesInFlight is the budget, over every connection, for request
	// bytes read and not yet answered plus answer bytes not yet written
	// out. Once it is spent the door stops reading from connections that
	// hold part of it (their clients are not reading their answers, or
	// pipeline more than the door can answer) until it frees up; a
	// connection holding none may always send one request.
	MaxBytesInFlight int64 `toml:"max_bytes_in_flight"`
	// SizeLimit caps entries per search, and per page of a paged search.
	SizeLimit int `toml:"size_limit"`
	// TimeLimit caps the time one search may run.
	TimeLimit time.Duration `toml:"time_limit"`
}

// Defaults of the limits; Defaults and New both use them.
const (
	DefaultMaxConnections = 4096
	DefaultIdleTimeout    = 5 * time.Minute
	// DefaultMaxConnectionsPerSource and DefaultUnboundIdleTimeout are
	// max_connections_per_source and unbound_idle_timeout's defaults.
	DefaultMaxConnectionsPerSource = 64
	DefaultUnboundIdleTimeout      = 30 * time.Second
	DefaultMaxRequestsPerConn      = 64
	DefaultMaxMessageBytes         = 1 << 20
	// DefaultMaxBytesInFlight is max_bytes_in_flight's default, 256 MiB.
	DefaultMaxBytesInFlight int64 = 256 << 20
	// MinMaxBytesInFlight is the smallest max_bytes_in_flight accepted.
	MinMaxBytesInFlight int64 = 1 << 20
	DefaultSizeLimit          = 1000
	DefaultTimeLimit          = 30 * time.Second

	// MaxMessageBytesCeiling is the largest max_message_bytes accepted: a
	// message is held whole in memory while it is decoded.
	MaxMessageBytesCeiling = 16 << 20
)

// Bind name kinds for Config.BindNames.
const (
	BindNameUsername = "username"
	BindNameEmail    = "email"
	BindNameUPN      = "upn"
)

// Defaults sets the [ldap] defaults. No listener is set: the LDAP door is
// off unless the file names one (the example file does).
func (c *Config) Defaults() {
	*c = Config{ExemptLoopback: true}
	c.setDefaults()
}

// setDefaults gives zero limits their defaults.
func (c *Config) setDefaults() {
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConnectionsPerSource == 0 {
		c.MaxConnectionsPerSource = DefaultMaxConnectionsPerSource
	}
	if c.UnboundIdleTimeout == 0 {
		c.UnboundIdleTimeout = DefaultUnboundIdleTimeout
	}
	if c.MaxRequestsPerConn == 0 {
		c.MaxRequestsPerConn = DefaultMaxRequestsPerConn
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxBytesInFlight == 0 {
		c.MaxBytesInFlight = DefaultMaxBytesInFlight
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

// Enabled reports whether the block names a listener.
func (c *Config) Enabled() bool { return c.Listen != "" || c.LDAPSListen != "" }

// Validate checks the block; a block with no listener (the door off) is
// not checked further. It reads the certificate, so a key that does not
// match its certificate is found before the daemon starts.
func (c *Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	if c.Listen != "" {
		if err := config.CheckListen(c.Listen); err != nil {
			bad("listen", "%v", err)
		}
	}
	if c.LDAPSListen != "" {
		if err := config.CheckListen(c.LDAPSListen); err != nil {
			bad("ldaps_listen", "%v", err)
		}
		if c.CertFile == "" {
			bad("ldaps_listen", "LDAPS needs cert_file and key_file")
		}
	}
	if strings.TrimSpace(c.BaseDN) == "" {
		bad("base_dn", "base_dn is required (for example \"dc=example,dc=com\")")
	} else if _, err := ldap.ParseDN(c.BaseDN); err != nil {
		bad("base_dn", "%q is not a DN: %v", c.BaseDN, err)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		// At the one the file sets: the other is not in it.
		key := "cert_file"
		if c.CertFile == "" {
			key = "key_file"
		}
		bad(key, "cert_file and key_file go together")
	} else if c.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			bad("cert_file", "TLS certificate: %v", err)
		}
	}
	for _, n := range c.BindNames {
		switch n {
		case BindNameUsername, BindNameEmail, BindNameUPN:
		default:
			bad("bind_names", "%q is not one of username, email, upn", n)
		}
	}
	if c.MaxConnections < 1 {
		bad("max_connections", "must be at least 1, got %d", c.MaxConnections)
	}
	if c.IdleTimeout <= 0 {
		bad("idle_timeout", "must be positive")
	}
	if c.MaxConnectionsPerSource < 1 {
		bad("max_connections_per_source", "must be at least 1, got %d", c.MaxConnectionsPerSource)
	}
	if c.UnboundIdleTimeout <= 0 {
		bad("unbound_idle_timeout", "must be positive")
	}
	if c.MaxRequestsPerConn < 1 {
		bad("max_requests_per_conn", "must be at least 1, got %d", c.MaxRequestsPerConn)
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > MaxMessageBytesCeiling {
		bad("max_message_bytes", "must be between 1024 and %d (16 MiB), got %d", MaxMessageBytesCeiling, c.MaxMessageBytes)
	}
	if c.MaxBytesInFlight < MinMaxBytesInFlight {
		bad("max_bytes_in_flight", "must be at least %d (1 MiB), got %d", MinMaxBytesInFlight, c.MaxBytesInFlight)
	}
	if c.SizeLimit < 1 {
		bad("size_limit", "must be at least 1, got %d", c.SizeLimit)
	}
	if c.TimeLimit <= 0 {
		bad("time_limit", "must be positive")
	}
	if c.UserGIDNumber < 0 {
		bad("user_gid_number", "must not be negative")
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
