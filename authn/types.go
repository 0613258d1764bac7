package authn

import (
	"context"
	"errors"
	"net/netip"

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

// Protocol names the front door; it picks the event type (SPEC 7).
type Protocol string

const (
	ProtocolLDAP   Protocol = "ldap"
	ProtocolRADIUS Protocol = "radius"
	ProtocolAdmin  Protocol = "admin"
)

// EventType returns the audit event name for a login through p.
func (p Protocol) EventType() string {
	switch p {
	case ProtocolLDAP:
		return "ldap_bind"
	case ProtocolRADIUS:
		return "radius_auth"
	default:
		return string(p) + "_login"
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
	// Client names the RADIUS client or LDAP connection, for the event.
	Client string
}

// Result is what the door turns into Accept/Reject or bind success/49.
type Result struct {
	OK     bool
	Reason Reason
	// User is a copy of the user's record, nil when no such user.
	User *store.User
	// Cached: the password matched the verified-credential cache and no
	// argon2 verify ran.
	Cached bool
}

var (
	// ErrAuthorityAD: the password lives in AD and can't be set here (SPEC 2.4).
	ErrAuthorityAD = errors.New("the password authority of this user is Active Directory; change the password in AD")
	// ErrWeakPassword: the password breaks the local policy.
	ErrWeakPassword = errors.New("password does not meet the policy")
)

// Delegator validates a password against Active Directory for users whose
// delegated authority is "ad" (SPEC 2.4, 6.1). The delegation package
// implements it; authn decides what a result means for the login.
type Delegator interface {
	Validate(ctx context.Context, u *store.User, pw secret.String) DelegationResult
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
}
