package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/config"
)

// Config tunes workers and retries; it is the [sync] block of
// gatewayd.toml. The zero value is usable: zero fields take the defaults
// below, except RemoteCheckInterval, whose zero means every login.
type Config struct {
	Workers     int           `toml:"workers"`
	MaxAttempts int           `toml:"max_attempts"` // then the job is failed until the next change
	BackoffBase time.Duration `toml:"backoff_base"`
	BackoffMax  time.Duration `toml:"backoff_max"`
	// RemoteCheckInterval bounds how often a login reads the remote
	// password-change time (SPEC 3.3's third trigger); 0 checks on every login.
	RemoteCheckInterval time.Duration `toml:"remote_check_interval"`
	// ClaimLease is how long the claim on one pair's job lasts when
	// Claims is set (several replicas on one database): the job's remote
	// calls are cut off before it runs out, and a replica that dies
	// mid-job frees the pair for another after it. It must be more than
	// the per-call timeout.
	ClaimLease time.Duration `toml:"claim_lease"`
	// Claims, when set, is asked for the claim on each pair's job before
	// it runs, so that across replicas one runs it at a time; nil runs
	// every job without a claim (one process).
	Claims Claimer `toml:"-"`
	// ReplicationGrace: a 404 this soon after provisioning is retried.
	ReplicationGrace time.Duration    `toml:"-"`
	CallTimeout      time.Duration    `toml:"-"`
	Now              func() time.Time `toml:"-"`
}

// Defaults of the [sync] settings.
const (
	DefaultWorkers             = 4
	DefaultMaxAttempts         = 10
	DefaultBackoffBase         = time.Second
	DefaultBackoffMax          = 5 * time.Minute
	DefaultRemoteCheckInterval = time.Minute
	DefaultClaimLease          = 2 * time.Minute
	defaultReplicationGrace    = 2 * time.Minute
	defaultCallTimeout         = 30 * time.Second
)

// Defaults sets the [sync] defaults.
func (c *Config) Defaults() {
	*c = Config{RemoteCheckInterval: DefaultRemoteCheckInterval}
	c.defaults()
}

// Validate checks the block.
func (c *Config) Validate() error {
	var errs []error
	if c.Workers < 1 {
		errs = append(errs, config.Errorf("workers", "must be at least 1, got %d", c.Workers))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, config.Errorf("max_attempts", "must be at least 1, got %d", c.MaxAttempts))
	}
	if c.BackoffBase <= 0 {
		errs = append(errs, config.Errorf("backoff_base", "must be positive"))
	}
	if c.BackoffMax < c.BackoffBase {
		errs = append(errs, config.Errorf("backoff_max", "must be at least backoff_base (%v)", c.BackoffBase))
	}
	if c.RemoteCheckInterval < 0 {
		errs = append(errs, config.Errorf("remote_check_interval", "must not be negative (\"0s\" checks at every login)"))
	}
	callTimeout := c.CallTimeout
	if callTimeout <= 0 {
		callTimeout = defaultCallTimeout
	}
	if c.ClaimLease <= callTimeout {
		errs = append(errs, config.Errorf("claim_lease", "must be more than the %v timeout of one remote call, got %v", callTimeout, c.ClaimLease))
	}
	return errors.Join(errs...)
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.ClaimLease <= 0 {
		c.ClaimLease = DefaultClaimLease
	}
	if c.ReplicationGrace <= 0 {
		c.ReplicationGrace = defaultReplicationGrace
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = defaultCallTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// DirectoryCommon holds the [[directory]] keys every directory type has;
// each type's block embeds it, so the keys sit flat in the block.
type DirectoryCommon struct {
	// Type selects the directory type's block ("entra", "google").
	Type string `toml:"type"`
	// Name is the directory's name in the API, CLI, events and metrics.
	Name string `toml:"name"`
	// Domains and DefaultDomain are SPEC 5.2's principal-name rule.
	Domains       []string `toml:"domains"`
	DefaultDomain string   `toml:"default_domain"`
	// PasswordPolicy is what the directory accepts (SPEC 3.6); each type
	// sets its own default.
	PasswordPolicy PasswordPolicy `toml:"password_policy"`
	// SuspendOnPasswordExpiry and SuspendOnLockout: SPEC 3.8.
	SuspendOnPasswordExpiry bool `toml:"suspend_on_password_expiry"`
	SuspendOnLockout        bool `toml:"suspend_on_lockout"`
	// ImportState is the state of users imported from this directory
	// (SPEC 4.7): active or staged.
	ImportState string `toml:"import_state"`
	// Attributes maps gateway attribute names to the directory's remote
	// properties (SPEC 4.2). Each type sets its defaults (see
	// SetAttributeRules); the file's table is decoded over them, so a key
	// it sets overrides that entry only, and a name mapped to "" is not
	// sent. Gateway-only attributes cannot be mapped.
	Attributes map[string]string `toml:"attributes"`

	// attrRules are the type's mapping rules, set by its Defaults.
	attrRules *AttributeRules
}

// ImportStateDefault is the state imported users get unless a block says.
const ImportStateDefault = "staged"

// Defaults sets the common defaults; a type's Defaults calls it, then
// sets its own password policy.
func (c *DirectoryCommon) Defaults(typ string, policy PasswordPolicy) {
	*c = DirectoryCommon{Type: typ, PasswordPolicy: policy, ImportState: ImportStateDefault}
}

var directoryName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Validate checks the common keys of one block.
func (c *DirectoryCommon) Validate() error {
	var errs []error
	label := c.Label(-1)
	if !directoryName.MatchString(c.Name) {
		errs = append(errs, config.Errorf("name", "%s: name must be 1-64 lowercase letters, digits, '.', '_' or '-'", label))
	}
	switch c.ImportState {
	case "active", "staged":
	default:
		errs = append(errs, config.Errorf("import_state", "%s: import_state must be active or staged", label))
	}
	p := c.PasswordPolicy
	if p.MinLength < 0 || p.MaxLength < 1 || p.MaxLength < p.MinLength {
		errs = append(errs, config.Errorf("password_policy", "%s: password_policy needs 0 <= min_length <= max_length and max_length >= 1", label))
	}
	if p.MinCharacterClasses < 0 || p.MinCharacterClasses > 4 {
		errs = append(errs, config.Errorf("password_policy", "%s: password_policy.min_character_classes must be 0 to 4 (of lowercase, uppercase, digits, symbols)", label))
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "@ /") {
			errs = append(errs, config.Errorf("domains", "%s: %q is not a domain name", label, d))
		}
	}
	if c.DefaultDomain != "" && len(c.Domains) == 0 {
		errs = append(errs, config.Errorf("default_domain", "%s: default_domain needs domains", label))
	}
	errs = append(errs, c.validateAttributes(label))
	return errors.Join(errs...)
}

// Label names the block in messages: directory #2 ("m365"), or just the
// quoted name when the position is not known (i < 0).
func (c *DirectoryCommon) Label(i int) string {
	if i < 0 {
		return fmt.Sprintf("directory %q", c.Name)
	}
	return fmt.Sprintf("directory #%d (%q)", i+1, c.Name)
}

// Directory builds the engine's view of the block, around its connector.
func (c *DirectoryCommon) Directory(conn Connector) *Directory {
	attrs := map[string]string{}
	for name, remote := range c.Attributes {
		if remote != "" && !GatewayOnly(name) {
			attrs[name] = remote
		}
	}
	return &Directory{Name: c.Name, Connector: conn, Domains: c.Domains, DefaultDomain: c.DefaultDomain,
		Policy: c.PasswordPolicy, SuspendOnPasswordExpiry: c.SuspendOnPasswordExpiry, SuspendOnLockout: c.SuspendOnLockout,
		Attributes: attrs}
}

// DirectoryConfig is what a directory type's block offers the daemon: its
// common keys, the remote identity that must not be configured twice
// (SPEC 4.6), and a connector built from it.
type DirectoryConfig interface {
	config.DirectoryBlock
	Common() *DirectoryCommon
	// Identity is the key holding the remote tenant or customer and a
	// value that is equal for two blocks naming the same one
	// ("entra tenant 1234...").
	Identity() (key, value string)
	// NewConnector builds the connector. ctx bounds set-up only.
	NewConnector(ctx context.Context, logger *slog.Logger) (Connector, error)
}

// ValidateDirectories checks what no block can check alone: names,
// remote identities and verified domains are each used by one block. The
// keys of the errors are relative to the file ("directory[1].name").
func ValidateDirectories(blocks []DirectoryConfig) error {
	var errs []error
	names := map[string]int{}
	idents := map[string]int{}
	domains := map[string]int{}
	for i, b := range blocks {
		c := b.Common()
		at := func(k string) string { return fmt.Sprintf("directory[%d].%s", i, k) }
		label := c.Label(i)
		if j, dup := names[c.Name]; dup {
			errs = append(errs, config.Errorf(at("name"), "%s: the name is also used by directory #%d", label, j+1))
		} else {
			names[c.Name] = i
		}
		if key, id := b.Identity(); id != "" {
			if j, dup := idents[id]; dup {
				errs = append(errs, config.Errorf(at(key), "%s: %s is already configured in %s; one must not be synced twice",
					label, id, blocks[j].Common().Label(j)))
			} else {
				idents[id] = i
			}
		}
		for _, dom := range c.Domains {
			key := strings.ToLower(dom)
			if j, dup := domains[key]; dup && j != i {
				errs = append(errs, config.Errorf(at("domains"), "%s: domain %s is also listed in %s; one verified domain belongs to one directory",
					label, dom, blocks[j].Common().Label(j)))
			} else {
				domains[key] = i
			}
		}
	}
	return errors.Join(errs...)
}
