package authn

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// Reason says why a login failed (SPEC 3.2). It goes into the audit event
// and never to the client.
type Reason string

const (
	ReasonNone              Reason = ""
	ReasonNoSuchUser        Reason = "no_such_user"
	ReasonBadPassword       Reason = "bad_password"
	ReasonSuspended         Reason = "suspended"
	ReasonStaged            Reason = "staged"
	ReasonPending           Reason = "pending"
	ReasonLocked            Reason = "locked"
	ReasonExpired           Reason = "expired"
	ReasonADUnreachable     Reason = "ad_unreachable"
	ReasonRateLimited       Reason = "rate_limited"
	ReasonBusy              Reason = "busy"
	ReasonUnsupportedMethod Reason = "unsupported_method"
	ReasonInternal          Reason = "internal_error"
)

// AD refusals, from the bind sub-codes (see delegation/README.md). 532
// (password expired) is ReasonExpired and 775 (locked out) ReasonLocked.
const (
	ReasonRestricted     Reason = "restricted"      // 530, 531: logon hours or workstation
	ReasonDisabled       Reason = "disabled"        // 533
	ReasonAccountExpired Reason = "account_expired" // 701
	ReasonMustChange     Reason = "must_change"     // 773: the user must set a new password
)

// Protocol names the front door; it picks the event type (SPEC 7).
type Protocol string

const (
	ProtocolLDAP   Protocol = "ldap"
	ProtocolRADIUS Protocol = "radius"
	ProtocolAdmin  Protocol = "admin"
	ProtocolPortal Protocol = "portal"
)

// EventType returns the audit event type for a login through p.
func (p Protocol) EventType() store.EventType {
	switch p {
	case ProtocolLDAP:
		return store.EventLDAPBind
	case ProtocolRADIUS:
		return store.EventRADIUSAuth
	case ProtocolPortal:
		return store.EventPortalLogin
	default: // ProtocolAdmin; a door without a type of its own counts as one
		return store.EventAdminLogin
	}
}

// Request is one login attempt as a front door saw it.
type Request struct {
	// Identifier is what the client typed: username, email or UPN.
	Identifier string
	// ByUsername says the door already resolved the identifier to a
	// username (an LDAP DN), so no email/UPN lookup is tried.
	ByUsername bool
	Password   secret.String
	Protocol   Protocol
	// Source is the client address, for rate limiting and the event.
	Source netip.Addr
	// Station identifies the end device behind Source when Source is a
	// NAS (RADIUS Calling-Station-Id, e.g. a MAC address); empty when the
	// door has none. For RADIUS, (Source, Station) is then the source of
	// the failure budget, so one guessing device does not spend the
	// budget of everyone behind the same NAS.
	Station string
	// Client names the RADIUS client or LDAP connection, for the event.
	Client string
	// Method names how the password came ("pap", "eap-ttls/pap"), for
	// the event; empty for doors with one method.
	Method string
}

// Result is what the door turns into Accept/Reject or bind success/49.
type Result struct {
	OK     bool
	Reason Reason
	// User is a copy of the user's record, nil when no such user
	// (LoginCached's may be the record itself: read-only).
	User *store.User
	// Cached: the password matched the verified-credential cache and no
	// argon2 verify ran.
	Cached bool
	// Detail goes into the event: for delegated logins the AD domain and
	// DC, the AD sub-code, or that the login was an offline one.
	Detail string
}

var (
	// ErrAuthorityAD: the password lives in AD and can't be set here (SPEC 2.4).
	ErrAuthorityAD = errors.New("the password authority of this user is Active Directory; change the password in AD")
	// ErrNotProven: ChangeOwnPassword's old password did not prove the
	// user (the reason is in the recorded event, never shown).
	ErrNotProven = errors.New("the user name or the current password is wrong, or the account may not log in")
	// ErrNameConflict: a username or email would make one login name
	// mean two users (see NameConflict).
	ErrNameConflict = errors.New("login name conflict")
	// ErrBusy: no hashing slot came free within hash_queue_timeout; try
	// again.
	ErrBusy = errors.New("password hashing is saturated")
	// ErrWeakPassword: the password breaks the local policy.
	ErrWeakPassword = errors.New("password does not meet the policy")
)

// Delegator validates a password against Active Directory for users whose
// delegated authority is "ad" (SPEC 2.4, 6.1). The delegation package
// implements it; authn decides what a result means for the login.
type Delegator interface {
	Validate(ctx context.Context, p Principal, pw secret.String) DelegationResult
}

// Principal is what a Delegator learns of the user a delegated login is
// for: enough to pick the domain and the name to bind as, and nothing of
// the store.
type Principal struct {
	Username string
	Email    string
	// Attributes are the user's attributes; delegation reads its
	// domain-selecting one ("ad_domain"). Read only.
	Attributes map[string]string
}

// PrincipalOf is the Principal of a stored user.
func PrincipalOf(u *store.User) Principal {
	return Principal{Username: u.Username, Email: u.Email, Attributes: u.Attributes}
}

// DelegationResult is one AD validation.
type DelegationResult struct {
	// OK: AD accepted the password.
	OK bool
	// Reason is set when AD refused (bad_password, locked, expired...).
	Reason Reason
	// Unreachable: no domain controller answered; the password is unknown.
	Unreachable bool
	// Detail is for the event (the DC used, the AD sub-code).
	Detail string
	// Domain names the [[ad]] block that answered (or would have).
	Domain string
	// StoreHash: keep a local argon2id hash of a password AD accepted
	// (SPEC 2.5): it feeds takeover, offline logins and change detection.
	StoreHash bool
	// OfflineWindow: when every DC is unreachable, a password matching the
	// stored hash is accepted if the last successful AD validation is
	// within this window. 0 = never.
	OfflineWindow time.Duration
}
