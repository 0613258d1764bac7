// Package config reads gatewayd's TOML file: schema, defaults and
// validation. Unknown keys are errors, and every problem is reported as
// "file:line: message" so an administrator can go straight to it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/gatewayd/gatewayd/secret"
)

// Config is the whole file. Field tags are the documented key names.
type Config struct {
	DataDir string `toml:"data_dir"`
	Log     Log    `toml:"log"`
	Admin   Admin  `toml:"admin"`
	Authn   Authn  `toml:"authn"`
	Events  Events `toml:"events"`
	LDAP    LDAP   `toml:"ldap"`
	RADIUS  RADIUS `toml:"radius"`
	Sync    Sync   `toml:"sync"`
	// Directories are the cloud directories users are provisioned into.
	Directories []Directory `toml:"directory"`
	// AD are the Active Directory domains for delegated logins (SPEC 6.1).
	AD []ADDomain `toml:"ad"`

	// Path is the file this came from ("(embedded example)" for the default).
	Path string `toml:"-"`
	pos  positions
}

type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

type Admin struct {
	Listen    string `toml:"listen"`
	TokenFile string `toml:"token_file"`
}

type Authn struct {
	CredentialCacheTTL  Duration  `toml:"credential_cache_ttl"`
	UPNDomains          []string  `toml:"upn_domains"`
	MaxConcurrentHashes int       `toml:"max_concurrent_hashes"`
	HashQueueTimeout    Duration  `toml:"hash_queue_timeout"`
	MinPasswordLength   int       `toml:"min_password_length"`
	MaxPasswordLength   int       `toml:"max_password_length"`
	Argon2              Argon2    `toml:"argon2"`
	Lockout             Lockout   `toml:"lockout"`
	RateLimit           RateLimit `toml:"rate_limit"`
}

type Argon2 struct {
	Time      uint32 `toml:"time"`
	MemoryKiB uint32 `toml:"memory_kib"`
	Threads   uint8  `toml:"threads"`
}

type Lockout struct {
	MaxFailures int      `toml:"max_failures"`
	Window      Duration `toml:"window"`
	Duration    Duration `toml:"duration"`
}

type RateLimit struct {
	FailuresPerSecond float64 `toml:"failures_per_second"`
	Burst             int     `toml:"burst"`
}

type Events struct {
	Retention int `toml:"retention"`
}

type LDAP struct {
	Listen             string   `toml:"listen"`
	LDAPSListen        string   `toml:"ldaps_listen"`
	BaseDN             string   `toml:"base_dn"`
	CertFile           string   `toml:"cert_file"`
	KeyFile            string   `toml:"key_file"`
	AllowInsecureBind  bool     `toml:"allow_insecure_bind"`
	ExemptLoopback     *bool    `toml:"exempt_loopback"`
	BindNames          []string `toml:"bind_names"`
	UsersSeeAll        bool     `toml:"users_see_all"`
	UserGIDNumber      int      `toml:"user_gid_number"`
	MaxConnections     int      `toml:"max_connections"`
	IdleTimeout        Duration `toml:"idle_timeout"`
	MaxRequestsPerConn int      `toml:"max_requests_per_conn"`
	MaxMessageBytes    int      `toml:"max_message_bytes"`
	SizeLimit          int      `toml:"size_limit"`
	TimeLimit          Duration `toml:"time_limit"`
}

type RADIUS struct {
	Listen       []string       `toml:"listen"`
	Workers      int            `toml:"workers"`
	ReplyMessage string         `toml:"reply_message"`
	Clients      []RADIUSClient `toml:"client"`
	ReplyGroups  []ReplyGroup   `toml:"reply_group"`
}

type RADIUSClient struct {
	Name                        string    `toml:"name"`
	Networks                    []string  `toml:"networks"`
	Secret                      SecretRef `toml:"secret"`
	RequireMessageAuthenticator *bool     `toml:"require_message_authenticator"`
}

// ReplyGroup maps a gateway group to RADIUS reply attributes.
type ReplyGroup struct {
	Group    string `toml:"group"`
	Priority int    `toml:"priority"`
	// Attributes are FreeRADIUS-style "Name = Value" strings.
	Attributes []string `toml:"attributes"`
}

// Sync tunes the provisioning engine.
type Sync struct {
	Workers             int      `toml:"workers"`
	MaxAttempts         int      `toml:"max_attempts"`
	BackoffBase         Duration `toml:"backoff_base"`
	BackoffMax          Duration `toml:"backoff_max"`
	RemoteCheckInterval Duration `toml:"remote_check_interval"`
}

// Directory is one [[directory]] block.
type Directory struct {
	Type                    string         `toml:"type"`
	Name                    string         `toml:"name"`
	TenantID                string         `toml:"tenant_id"`
	ClientID                string         `toml:"client_id"`
	ClientSecret            SecretRef      `toml:"client_secret"`
	Domains                 []string       `toml:"domains"`
	DefaultDomain           string         `toml:"default_domain"`
	PasswordPolicy          PasswordPolicy `toml:"password_policy"`
	SuspendOnPasswordExpiry bool           `toml:"suspend_on_password_expiry"`
	SuspendOnLockout        bool           `toml:"suspend_on_lockout"`
	AuthorityURL            string         `toml:"authority_url"`
	GraphURL                string         `toml:"graph_url"`
	// Google Workspace.
	CustomerID      string `toml:"customer_id"`
	CredentialsFile string `toml:"credentials_file"`
	AdminSubject    string `toml:"admin_subject"`
	Endpoint        string `toml:"endpoint"`
	TokenURL        string `toml:"token_url"`
	// ImportState is the state of users imported from this directory
	// (SPEC 4.7): active or staged.
	ImportState string `toml:"import_state"`
}

// PasswordPolicy is a directory's password length rule (SPEC 3.6).
type PasswordPolicy struct {
	MinLength int `toml:"min_length"`
	MaxLength int `toml:"max_length"`
}

// Duration is a time.Duration written as "15m", "2s".
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"90s\", \"15m\" or \"1h\")", string(b))
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", string(b))
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// SecretRef is "env:NAME" or "file:PATH". Literal secrets are refused so
// that the config file can be shared, versioned and logged safely.
type SecretRef struct {
	Ref   string
	Value secret.String
}

func (s *SecretRef) UnmarshalText(b []byte) error {
	s.Ref = string(b)
	return nil
}

// resolve reads the referenced secret. Trailing newlines of a file are
// dropped, since editors and `echo` add them.
func (s *SecretRef) resolve() error {
	switch {
	case s.Ref == "":
		return errors.New("a secret is required: write env:NAME or file:PATH")
	case strings.HasPrefix(s.Ref, "env:"):
		name := strings.TrimPrefix(s.Ref, "env:")
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return fmt.Errorf("environment variable %s (from %q) is not set or empty", name, s.Ref)
		}
		s.Value = secret.FromString(v)
	case strings.HasPrefix(s.Ref, "file:"):
		p := strings.TrimPrefix(s.Ref, "file:")
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("cannot read secret file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return fmt.Errorf("secret file %s is empty", p)
		}
		s.Value = secret.New(b)
	default:
		return errors.New("secrets must be references, env:NAME or file:PATH; a literal secret is not accepted so it never sits in the config file")
	}
	return nil
}

// Problem is one configuration error with its place.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Problems is the error Load returns: every problem found, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}}
	}
	return Parse(path, b)
}

// Parse validates text as if read from name.
func Parse(name string, text []byte) (*Config, error) {
	c := Defaults()
	c.Path = name
	c.pos = locate(string(text))
	md, err := toml.NewDecoder(bytes.NewReader(text)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Problems{{File: name, Line: pe.Position.Line, Msg: pe.Message}}
		}
		return nil, Problems{{File: name, Line: lineOfDecodeError(err), Msg: strings.TrimPrefix(err.Error(), "toml: ")}}
	}
	var ps Problems
	for _, k := range md.Undecoded() {
		path := k.String()
		ps = append(ps, Problem{File: name, Line: c.pos.line(path),
			Msg: fmt.Sprintf("unknown key %q (see gatewayd.toml.example for every option)", path)})
	}
	ps = append(ps, c.validate()...)
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
		return nil, ps
	}
	return c, nil
}

func lineOfDecodeError(err error) int {
	var n int
	if _, scanErr := fmt.Sscanf(err.Error(), "toml: line %d", &n); scanErr == nil {
		return n
	}
	return 0
}

// Defaults is the configuration before the file is applied.
func Defaults() *Config {
	t := true
	return &Config{
		DataDir: "./data",
		Log:     Log{Level: "info", Format: "text"},
		Admin:   Admin{Listen: "127.0.0.1:8480"},
		Authn: Authn{
			CredentialCacheTTL:  Duration{15 * time.Minute},
			MaxConcurrentHashes: 4,
			HashQueueTimeout:    Duration{5 * time.Second},
			MinPasswordLength:   8,
			MaxPasswordLength:   256,
			Argon2:              Argon2{Time: 1, MemoryKiB: 64 * 1024, Threads: 2},
			Lockout:             Lockout{MaxFailures: 10, Window: Duration{15 * time.Minute}, Duration: Duration{15 * time.Minute}},
			RateLimit:           RateLimit{FailuresPerSecond: 5, Burst: 20},
		},
		Events: Events{Retention: 100000},
		Sync: Sync{Workers: 4, MaxAttempts: 10, BackoffBase: Duration{time.Second}, BackoffMax: Duration{5 * time.Minute},
			RemoteCheckInterval: Duration{time.Minute}},
		LDAP: LDAP{
			ExemptLoopback:     &t,
			BindNames:          []string{"username", "email", "upn"},
			MaxConnections:     4096,
			IdleTimeout:        Duration{5 * time.Minute},
			MaxRequestsPerConn: 64,
			MaxMessageBytes:    1 << 20,
			SizeLimit:          1000,
			TimeLimit:          Duration{30 * time.Second},
		},
	}
}

// TokenFile is where the admin token lives (default under data_dir).
func (c *Config) TokenFile() string {
	if c.Admin.TokenFile != "" {
		return c.Admin.TokenFile
	}
	return filepath.Join(c.DataDir, "admin.token")
}

// Line returns the line of a key path, for errors found after Load (a
// port that is taken at start).
func (c *Config) Line(path string) int { return c.pos.line(path) }

// Errorf builds a Problem at the line of path.
func (c *Config) Errorf(path, format string, args ...any) Problem {
	return Problem{File: c.Path, Line: c.pos.line(path), Msg: fmt.Sprintf(format, args...)}
}
