package entra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// graphError is Graph's documented error shape:
// {"error":{"code":"...","message":"...","innerError":{"date":"...","request-id":"..."}}}
type graphError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID string `json:"request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// Actionable texts for the admin (README "Errors and what to do").
const (
	msgPermissions = "grant the app registration the Microsoft Graph application permission User.ReadWrite.All " +
		"(for groups also Group.ReadWrite.All, or GroupMember.ReadWrite.All plus Group.Create; User.Read.All is " +
		"enough for import) with admin consent, and assign the app's service principal the Entra role " +
		"User Administrator (Entra admin center > Roles & admins); resetting the password of an administrator " +
		"needs Privileged Authentication Administrator instead. If the user is synchronised from on-premises AD, " +
		"its password is managed by AD Connect (Entra Connect) and must be changed in AD"
	msgOnPrem = "the account is synchronised from on-premises Active Directory (AD Connect / Entra Connect), so its " +
		"password and attributes are managed there: change them in AD (or enable password writeback), or stop " +
		"binding this user to this Entra directory"
	msgUnauthorized = "Graph refused a freshly issued token; check that tenant_id is the tenant that holds the " +
		"app registration and that the app has Microsoft Graph application permissions with admin consent"
	msgComplexity = "Entra ID's password policy rejected the password (8 to 256 characters, at least three of: " +
		"lower case, upper case, digits, symbols; no banned or recently used password); it was not set. " +
		"Align the directory's password_policy with the tenant's"
	msgNotReplicated = "the group or user was created moments ago and Entra ID has not replicated it to every " +
		"replica yet; will retry"
	msgMailEnabled = "the group is a distribution list or a mail-enabled security group, which Microsoft Graph " +
		"cannot create or change: manage its membership in Exchange Online, or rename it so that the gateway " +
		"creates its own security group"
	msgDuplicate = "another object in the tenant already uses this userPrincipalName, or a proxy address equal to " +
		"it (a deleted user keeps its name for 30 days in Deleted users): restore or permanently delete that " +
		"object, or change the user's email"
)

// classify turns a non-2xx Graph answer into sync.ErrNotFound or a
// *sync.Error. secretBytes (a password in the request), when not nil, is
// scrubbed from Graph's message should it ever echo it.
func (c *Connector) classify(op string, status int, hdr http.Header, data []byte, secretBytes []byte) error {
	var ge graphError
	_ = json.Unmarshal(data, &ge)
	code := ge.Error.Code
	if status == http.StatusNotFound {
		if code != "" {
			return gsync.ErrNotFound
		}
		// Graph always explains a 404; a bare one comes from something
		// else (a wrong graph_url, a proxy) and must not read as "no
		// such user", which would make the engine create it.
		return &gsync.Error{Permanent: true, Status: status, Message: fmt.Sprintf(
			"%s: directory %q: the endpoint answered 404 without a Graph error: check graph_url (and any proxy)", op, c.name)}
	}
	said := scrub(strings.TrimSpace(ge.Error.Message), secretBytes)
	if said == "" {
		said = http.StatusText(status)
	}
	e := &gsync.Error{Status: status, Code: code, Permanent: true}
	msg := func(action string) string {
		s := fmt.Sprintf("%s: directory %q: Graph said %q", op, c.name, said)
		if ge.Error.InnerError.RequestID != "" {
			s += " (request-id " + ge.Error.InnerError.RequestID + ")"
		}
		if action != "" {
			s += ": " + action
		}
		return s
	}
	lower := strings.ToLower(said)
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusBadGateway,
		status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		e.Permanent = false
		e.RetryAfter = gsync.ParseRetryAfter(hdr)
		e.Message = msg("Microsoft Graph is throttling or unavailable; will retry")
	case status >= 500, status == http.StatusRequestTimeout:
		e.Permanent = false
		e.RetryAfter = gsync.ParseRetryAfter(hdr)
		e.Message = msg("Microsoft Graph failed; will retry")
	case strings.Contains(lower, "objects being referenced do not exist"):
		// Graph's answer when a member is added to a group, or a user
		// to one, created a moment ago (replication): it will pass.
		e.Permanent = false
		e.RetryAfter = gsync.ParseRetryAfter(hdr)
		e.Message = msg(msgNotReplicated)
	case strings.Contains(lower, "mail-enabled security group") || strings.Contains(lower, "distribution list"):
		e.Message = msg(msgMailEnabled)
	case strings.Contains(lower, "on-premises mastered") || strings.Contains(lower, "on-premise mastered") ||
		strings.Contains(lower, "directory sync objects"):
		e.Message = msg(msgOnPrem)
	case status == http.StatusForbidden:
		e.Message = msg(msgPermissions)
	case status == http.StatusUnauthorized:
		e.Message = msg(msgUnauthorized)
	case strings.Contains(lower, "password complexity") || strings.Contains(lower, "password does not comply") ||
		(strings.Contains(lower, "password") && strings.Contains(lower, "policy")):
		e.Message = msg(msgComplexity)
	case strings.Contains(lower, "already exists"):
		e.Message = msg(msgDuplicate)
	case status == http.StatusConflict:
		e.Message = msg("a conflicting object exists in the tenant; resolve it in the Entra admin center")
	default:
		e.Message = msg("")
	}
	return e
}

// scrub removes b from s. Graph does not echo passwords, but an error
// message is the one place a server's text reaches logs and the API.
func scrub(s string, b []byte) string {
	if len(b) < 4 || !bytes.Contains([]byte(s), b) {
		return s
	}
	return string(bytes.ReplaceAll([]byte(s), b, []byte("[redacted]")))
}
