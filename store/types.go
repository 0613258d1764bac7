package store

import (
	"errors"
	"time"
)

// State is a user's lifecycle state (SPEC 2.2).
type State string

const (
	StateActive    State = "active"
	StateStaged    State = "staged"
	StateSuspended State = "suspended"
)

// PasswordStatus is SPEC 2.3. "locked" is not stored here: a lock is
// LockedUntil in the future, so that it expires without a write.
type PasswordStatus string

const (
	PasswordActive    PasswordStatus = "active"
	PasswordPending   PasswordStatus = "pending"
	PasswordDelegated PasswordStatus = "delegated"
	PasswordExpired   PasswordStatus = "expired"
	PasswordLocked    PasswordStatus = "locked"
)

// Authority values (SPEC 2.4).
const (
	AuthorityLocal = "local"
	AuthorityAD    = "ad"
	AuthorityNone  = "none"
)

var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key (username, email, group name) is taken.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the object breaks a rule (bad email, empty username...).
	ErrInvalid = errors.New("invalid")
)

// User is SPEC 2.1. The JSON tags are the journal encoding, not an API:
// the admin API renders its own view and never this struct.
type User struct {
	ID                 string            `json:"id"`
	Username           string            `json:"username"`
	Email              string            `json:"email"`
	FirstName          string            `json:"first_name,omitempty"`
	LastName           string            `json:"last_name,omitempty"`
	DisplayName        string            `json:"display_name,omitempty"`
	Attributes         map[string]string `json:"attributes,omitempty"`
	State              State             `json:"state"`
	PasswordStatus     PasswordStatus    `json:"password_status"`
	PasswordAuthority  string            `json:"password_authority"`
	DelegatedAuthority string            `json:"delegated_authority"`
	// PasswordHash is a PHC string ($argon2id$v=19$m=..,t=..,p=..$salt$hash).
	PasswordHash      string    `json:"password_hash,omitempty"`
	PasswordVersion   uint64    `json:"password_version"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"`
	LockedUntil       time.Time `json:"locked_until,omitzero"`
	// ServiceAccount may search the whole LDAP tree.
	ServiceAccount bool `json:"service_account,omitempty"`
	// PasswordResetter may reset other users' passwords (LDAP password modify).
	PasswordResetter bool      `json:"password_resetter,omitempty"`
	UIDNumber        int       `json:"uid_number"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	// LastLoginAt is the last successful login, to LastLoginGranularity:
	// it is moved only once it is that much older than a new login.
	LastLoginAt time.Time `json:"last_login_at,omitzero"`
	// LastADValidationAt: the last time AD accepted the user's password
	// (delegated logins; bounds offline logins, SPEC 2.5).
	LastADValidationAt time.Time `json:"last_ad_validation_at,omitzero"`
	// NTHashSealed is the user's NT hash (MD4 of the UTF-16LE password,
	// for MS-CHAPv2), AES-GCM sealed by authn with the nt_hash_key_file
	// key and the user id as additional data. Only with [authn]
	// store_nt_hash; password-equivalent, so never rendered by the API or
	// LDAP. UpdateUser drops it when PasswordHash changes and the update
	// does not set a new one.
	NTHashSealed []byte `json:"nt_hash_sealed,omitempty"`
}

// Locked reports whether a lockout is in force at now.
func (u *User) Locked(now time.Time) bool { return now.Before(u.LockedUntil) }

// EffectivePasswordStatus folds an active lock into the status shown to admins.
func (u *User) EffectivePasswordStatus(now time.Time) PasswordStatus {
	if u.Locked(now) {
		return PasswordLocked
	}
	return u.PasswordStatus
}

// Copy returns a deep copy; the store hands out copies so callers can't
// mutate the indexed objects.
func (u *User) Copy() *User {
	if u == nil {
		return nil
	}
	c := *u
	if u.NTHashSealed != nil {
		c.NTHashSealed = append([]byte(nil), u.NTHashSealed...)
	}
	if u.Attributes != nil {
		c.Attributes = make(map[string]string, len(u.Attributes))
		for k, v := range u.Attributes {
			c.Attributes[k] = v
		}
	}
	return &c
}

// Group is SPEC 2.6.
type Group struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	GIDNumber   int       `json:"gid_number"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (g *Group) Copy() *Group {
	if g == nil {
		return nil
	}
	c := *g
	return &c
}

// Membership links a user to a group.
type Membership struct {
	GroupID string `json:"group_id"`
	UserID  string `json:"user_id"`
}

// Event is one audit record (SPEC 7). Seq is assigned by the store and
// orders events; it is the paging cursor.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Type     EventType `json:"type"`
	UserID   string    `json:"user_id,omitempty"`
	Username string    `json:"username,omitempty"`
	// GroupID and Group (its name when the event was recorded, so it
	// still reads after the group is renamed or deleted) are set on
	// events about a group.
	GroupID   string `json:"group_id,omitempty"`
	Group     string `json:"group,omitempty"`
	Outcome   string `json:"outcome,omitempty"` // success | failure
	Reason    string `json:"reason,omitempty"`
	Source    string `json:"source,omitempty"` // client address or "admin"
	Directory string `json:"directory,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Method is how a login's password came (RADIUS: "pap",
	// "eap-ttls/pap").
	Method string `json:"method,omitempty"`
	// Login marks a login outcome; a successful one also stamps the user's
	// LastLoginAt in the same journal batch.
	Login bool `json:"login,omitempty"`
}

// Event outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// EventFilter selects events; zero fields match everything, and the
// string fields match exactly.
type EventFilter struct {
	UserID    string
	GroupID   string
	Type      EventType
	Directory string
	Outcome   string // OutcomeSuccess or OutcomeFailure
	Reason    string
	Since     time.Time // inclusive
	Until     time.Time // exclusive
	After     uint64    // return events with Seq > After (paging cursor)
	Limit     int       // 0 means 100; capped at 1000
}

// Change is delivered to subscribers after a write commits. Before is nil
// on create, After is nil on delete. Table is one of the Table* constants;
// values are *User, *Group, *Membership, *Directory, *Binding or *SyncState.
type Change struct {
	Table  string
	Before any
	After  any
}
