package adimport

import (
	"errors"
	"strings"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/config"
)

// Import actions (SPEC 6.3).
const (
	// ActionRemove deletes the gateway user of an account that left the
	// import's scope (or was deleted in AD).
	ActionRemove = "remove"
	// ActionDisconnect keeps that user, now managed locally: both
	// authorities back to local/none and password status pending.
	ActionDisconnect = "disconnect"
	// ActionDeactivate takes over an existing local user of the same
	// username: password status pending, authorities ad.
	ActionDeactivate = "deactivate"
	// ActionRetain takes it over but keeps its local password and
	// authorities.
	ActionRetain = "retain"
	// ActionSuspend: an account disabled in AD is suspended here.
	ActionSuspend = "suspend"
	// ActionExpire: an expired account gets password status expired.
	ActionExpire = "expire"
)

// Defaults of the [ad.import] table.
const (
	DefaultInterval         = 90 * time.Second
	DefaultFullEvery        = 10
	DefaultMaxDeletions     = 500
	DefaultMaxDeletionShare = 0.1
)

// Config is the [ad.import] table of an [[ad]] block: the import of the
// domain's users and groups into the gateway (SPEC 6.2-6.4). It uses the
// block's DCs, TLS settings and service account (bind_dn, bind_password).
type Config struct {
	// Enabled turns the import on (default false).
	Enabled bool `toml:"enabled"`
	// Group is the integration group, by DN or sAMAccountName: its
	// members, direct or nested, are imported.
	Group string `toml:"group"`
	// Root is the container DN users and mirrored groups must be under
	// (default: the block's base_dn).
	Root string `toml:"root"`
	// Interval between cycles (default 90s).
	Interval time.Duration `toml:"interval"`
	// FullEvery: every Nth interval cycle is a full reconcile, which
	// also detects removals and group changes; the others read only the
	// accounts changed since the last one (uSNChanged). Default 10.
	FullEvery int `toml:"full_every"`
	// AdditionalAttributes also imports displayName, description, title,
	// department, company, l, employeeType, telephoneNumber, mobile,
	// streetAddress/postalAddress and manager.
	AdditionalAttributes bool `toml:"additional_attributes"`
	// UserDissociateAction: remove | disconnect (default disconnect).
	UserDissociateAction string `toml:"user_dissociate_action"`
	// UserTakeoverAction: deactivate | retain (default retain).
	UserTakeoverAction string `toml:"user_takeover_action"`
	// UserDisableAction: suspend (the only one).
	UserDisableAction string `toml:"user_disable_action"`
	// UserExpireAction: expire (the only one).
	UserExpireAction string `toml:"user_expire_action"`
	// MaxDeletions: a cycle that would remove, disconnect or suspend
	// more users than this is not applied (safety stop; default 500).
	MaxDeletions int `toml:"max_deletions"`
	// MaxDeletionShare: nor one that would do so to more than this share
	// of the imported users (default 0.1; 1 turns the share check off).
	MaxDeletionShare float64 `toml:"max_deletion_share"`
}

// Defaults sets the [ad.import] defaults.
func (c *Config) Defaults() {
	*c = Config{Interval: DefaultInterval, FullEvery: DefaultFullEvery,
		UserDissociateAction: ActionDisconnect, UserTakeoverAction: ActionRetain,
		UserDisableAction: ActionSuspend, UserExpireAction: ActionExpire,
		MaxDeletions: DefaultMaxDeletions, MaxDeletionShare: DefaultMaxDeletionShare}
}

// Validate checks the table; the service account is checked by
// ValidateWith, which knows the [[ad]] block.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	if c.Enabled && strings.TrimSpace(c.Group) == "" {
		bad("group", "the import needs the integration group (its DN or sAMAccountName)")
	}
	if c.Root != "" {
		if _, err := ldap.ParseDN(c.Root); err != nil {
			bad("root", "root %q is not a DN: %v", c.Root, err)
		}
	}
	if c.Interval < 5*time.Second {
		bad("interval", "interval must be at least 5s")
	}
	if c.FullEvery < 1 {
		bad("full_every", "full_every must be at least 1 (1: every cycle is a full reconcile)")
	}
	switch c.UserDissociateAction {
	case ActionRemove, ActionDisconnect:
	default:
		bad("user_dissociate_action", "%q: use remove or disconnect", c.UserDissociateAction)
	}
	switch c.UserTakeoverAction {
	case ActionDeactivate, ActionRetain:
	default:
		bad("user_takeover_action", "%q: use deactivate or retain", c.UserTakeoverAction)
	}
	if c.UserDisableAction != ActionSuspend {
		bad("user_disable_action", "%q: the only action is suspend", c.UserDisableAction)
	}
	if c.UserExpireAction != ActionExpire {
		bad("user_expire_action", "%q: the only action is expire", c.UserExpireAction)
	}
	if c.MaxDeletions < 0 {
		bad("max_deletions", "max_deletions must not be negative")
	}
	if c.MaxDeletionShare <= 0 || c.MaxDeletionShare > 1 {
		bad("max_deletion_share", "max_deletion_share must be more than 0 and at most 1 (1: only max_deletions applies)")
	}
	return errors.Join(errs...)
}

// ValidateWith checks what needs the [[ad]] block: an enabled import
// reads the directory as the block's service account. Keys are relative
// to the [[ad]] block.
func (c *Config) ValidateWith(bindDN string) error {
	if c.Enabled && bindDN == "" {
		return config.Errorf("import.enabled", "the import reads AD as the block's service account: set bind_dn and bind_password")
	}
	return nil
}
