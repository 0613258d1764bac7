package delegation

import (
	"errors"
	"net"
	"regexp"
	"strings"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/authn"
)

// Active Directory answers a failed simple bind with result 49
// (invalidCredentials) and a diagnostic message such as
//
//	80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563
//
// The hex after "data" is the Windows error that says why. These are the
// ones a login can hit (MS-ADTS; the same values Samba returns).
var subCodes = map[string]struct {
	reason authn.Reason
	what   string
}{
	"525": {authn.ReasonNoSuchUser, "user not found"},
	"52e": {authn.ReasonBadPassword, "invalid credentials"},
	"530": {authn.ReasonRestricted, "not permitted to log on at this time"},
	"531": {authn.ReasonRestricted, "not permitted to log on at this workstation"},
	"532": {authn.ReasonExpired, "password expired"},
	"533": {authn.ReasonDisabled, "account disabled"},
	"701": {authn.ReasonAccountExpired, "account expired"},
	"773": {authn.ReasonMustChange, "user must reset password"},
	"775": {authn.ReasonLocked, "account locked out"},
}

var dataRE = regexp.MustCompile(`\bdata ([0-9a-fA-F]{1,8})\b`)

// SubCode extracts the AD sub-code ("52e") from a bind error, or "".
func SubCode(err error) string {
	if err == nil {
		return ""
	}
	m := dataRE.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	return strings.ToLower(strings.TrimLeft(m[1], "0"))
}

// ReasonForSubCode maps an AD sub-code to the login reason (SPEC 3.2) and
// a short description. An unknown or missing code is a bad password: AD
// said invalidCredentials, and nothing more specific is known.
func ReasonForSubCode(code string) (authn.Reason, string) {
	if s, ok := subCodes[strings.ToLower(code)]; ok {
		return s.reason, s.what
	}
	return authn.ReasonBadPassword, "invalid credentials"
}

// errClass says what a failed operation means for the login and the DC.
type errClass int

const (
	// classCredentials: AD refused the credentials (result 49). Final:
	// another DC would say the same, so there is no failover.
	classCredentials errClass = iota
	// classNetwork: refused, reset, closed, TLS failure. Fail over, mark
	// the DC down.
	classNetwork
	// classTimeout: no answer in time. Fail over, mark the DC down.
	classTimeout
	// classBusy: the DC answered busy/unavailable (51, 52). Fail over.
	classBusy
	// classRefused: any other LDAP result (strongerAuthRequired,
	// unwillingToPerform...): the DC works but will not do this bind.
	// Final, reported as an internal error with the DC's message.
	classRefused
)

func (c errClass) failover() bool { return c == classNetwork || c == classTimeout || c == classBusy }

func (c errClass) String() string {
	switch c {
	case classCredentials:
		return "credentials"
	case classNetwork:
		return "network"
	case classTimeout:
		return "timeout"
	case classBusy:
		return "busy"
	default:
		return "refused"
	}
}

// classify sorts an error from go-ldap, net or crypto/tls.
func classify(err error) errClass {
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.LDAPResultInvalidCredentials:
			return classCredentials
		case ldap.LDAPResultBusy, ldap.LDAPResultUnavailable:
			return classBusy
		case ldap.LDAPResultTimeLimitExceeded:
			// The DC gave up at the search's time limit: it is too slow,
			// like a timeout, not a refusal (which would be an internal
			// error on every login).
			return classTimeout
		case ldap.ErrorNetwork:
			if isTimeout(err) {
				return classTimeout
			}
			return classNetwork
		}
		return classRefused
	}
	if isTimeout(err) {
		return classTimeout
	}
	return classNetwork
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, errTimeout) || strings.Contains(err.Error(), "timed out")
}

var errTimeout = errors.New("timed out")
