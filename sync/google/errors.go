package google

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// Reasons (errors[].reason) the Directory API gives for throttling; it
// answers 403 for some of them, not only 429.
var rateReasons = map[string]bool{
	"rateLimitExceeded":     true,
	"userRateLimitExceeded": true,
	"quotaExceeded":         true,
	"dailyLimitExceeded":    true,
}

// Actionable texts for the admin (README "Errors and what to do").
const (
	msgNotAdmin = "the admin_subject %s is not an administrator allowed to manage users and groups: set admin_subject " +
		"to a super admin's primary email (or give the account an admin role with the Users and Groups privileges), " +
		"and check that customer_id is this Google Workspace account's customer id"
	msgScopes = "the access token lacks a Directory API scope: in the Admin console > Security > Access and data " +
		"control > API controls > Manage domain-wide delegation, the service account's client ID %s must have both " +
		"scopes " + ScopeUser + " and " + ScopeGroup
	msgAPIDisabled = "the Admin SDK API is not enabled in the service account's Google Cloud project: enable it " +
		"(Google Cloud console > APIs & Services > Library > Admin SDK API), wait a few minutes"
	msgDomainAPIs = "API access is turned off for this Google Workspace domain (or the domain's edition does not " +
		"allow it); an administrator must allow API access"
	msgUnauthorized = "Google refused a freshly issued token; check that the service account's domain-wide " +
		"delegation is in this Google Workspace account and that admin_subject is a user of it"
	msgPassword = "Google refused the password, which the gateway sends as a SHA-512 crypt hash " +
		"(hashFunction \"crypt\"); it was not set. Report this: it means Google no longer accepts such hashes"
	msgNames = "Google refused the user's first or last name (at most 60 characters; some symbols such as " +
		"= < > are not allowed): correct the user's first and last name"
	msgDomain = "the email's domain is not a domain of this Google Workspace account: add and verify it " +
		"(Admin console > Account > Domains), or adjust the directory's domains / default_domain"
	msgUserExists = "an account, an alias or a group in Google Workspace already uses this email address " +
		"(a deleted user keeps it for 20 days): remove or rename it there, or change the user's email"
	msgGroupExists = "a group, an account or an alias in Google Workspace already uses this group email address: " +
		"remove or rename it there, or give the gateway group another name"
	msgBadRequest = "Google refused the request: check the mapped attributes (see the connector's README)"
)

// callKind is what the failed call was, for the few answers whose
// meaning depends on it.
type callKind int

const (
	kindGet    callKind = iota // read by key: 404 is sync.ErrNotFound
	kindCreate                 // 409: the object exists
	kindUpdate                 // 404 is sync.ErrNotFound
	kindGroup                  // group calls
)

// apiStatus is the HTTP status of a Directory API error, 0 for another
// error.
func apiStatus(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// classify turns a failed call into sync.ErrNotFound, a *sync.Error or,
// when the caller's context is done, the context's error.
func (c *Connector) classify(ctx context.Context, op string, err error, kind callKind) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var se *gsync.Error
	if errors.As(err, &se) { // a token failure, already classified
		return se
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return c.transportError(op, "the Directory API", err)
	}
	status := ge.Code
	reason := ""
	if len(ge.Errors) > 0 {
		reason = ge.Errors[0].Reason
	}
	said := firstLine(ge.Message)
	if said == "" && len(ge.Errors) > 0 {
		said = firstLine(ge.Errors[0].Message)
	}
	if status == http.StatusNotFound {
		if said != "" || reason != "" {
			return gsync.ErrNotFound
		}
		// Google always explains a 404; a bare one comes from something
		// else (a wrong endpoint, a proxy) and must not read as "no such
		// user", which would make the engine create it.
		return &gsync.Error{Permanent: true, Status: status, Message: fmt.Sprintf(
			"%s: directory %q: the endpoint answered 404 without a Google error: check endpoint (and any proxy)", op, c.name)}
	}
	if said == "" {
		said = http.StatusText(status)
	}
	e := &gsync.Error{Status: status, Code: reason, Permanent: true}
	msg := func(action string) string {
		s := fmt.Sprintf("%s: directory %q: Google said %q", op, c.name, said)
		if action != "" {
			s += ": " + action
		}
		return s
	}
	lower := strings.ToLower(said)
	switch {
	case status == http.StatusTooManyRequests || (status == http.StatusForbidden && rateReasons[reason]):
		e.Permanent = false
		e.RetryAfter = gsync.ParseRetryAfter(ge.Header)
		e.Message = msg("Google is throttling the Directory API; will retry")
	case status >= 500, status == http.StatusRequestTimeout:
		e.Permanent = false
		e.RetryAfter = gsync.ParseRetryAfter(ge.Header)
		e.Message = msg("the Directory API is unavailable; will retry")
	case strings.Contains(lower, "user limit"):
		e.Message = msg("the Google Workspace account has no license left for a new user: add licenses or free some " +
			"(Admin console > Billing), then the engine's next attempt creates the account")
	case status == http.StatusPreconditionFailed:
		// conditionNotMet: the object changed under the call (often
		// right after its creation).
		e.Permanent = false
		e.RetryAfter = gsync.ParseRetryAfter(ge.Header)
		e.Message = msg("the object is being changed concurrently; will retry")
	case status == http.StatusUnauthorized:
		e.Message = msg(msgUnauthorized)
	case status == http.StatusForbidden && (reason == "insufficientPermissions" || strings.Contains(lower, "insufficient authentication scopes")):
		e.Message = msg(fmt.Sprintf(msgScopes, c.clientID()))
	case status == http.StatusForbidden && (reason == "accessNotConfigured" || strings.Contains(lower, "has not been used in project") ||
		strings.Contains(lower, "is disabled")):
		e.Message = msg(msgAPIDisabled)
	case status == http.StatusForbidden && reason == "domainCannotUseApis":
		e.Message = msg(msgDomainAPIs)
	case status == http.StatusForbidden:
		e.Message = msg(fmt.Sprintf(msgNotAdmin, c.subject))
	case status == http.StatusConflict || strings.Contains(lower, "already exists"):
		if kind == kindGroup {
			e.Message = msg(msgGroupExists)
		} else {
			e.Message = msg(msgUserExists)
		}
	case status == http.StatusBadRequest && strings.Contains(lower, "password"):
		e.Message = msg(msgPassword)
	case status == http.StatusBadRequest && (strings.Contains(lower, "given/family name") ||
		strings.Contains(lower, "givenname") || strings.Contains(lower, "familyname")):
		e.Message = msg(msgNames)
	case status == http.StatusBadRequest && (strings.Contains(lower, "domain not found") ||
		strings.Contains(lower, "primary_user_email")):
		e.Message = msg(msgDomain)
	case status == http.StatusBadRequest && strings.Contains(lower, "customer"):
		e.Message = msg("check customer_id (Admin console > Account > Account settings > Customer ID), or leave it unset")
	case status == http.StatusBadRequest:
		e.Message = msg(msgBadRequest)
	default:
		e.Message = msg("")
	}
	return e
}

// transportError turns a network failure, timeout or oversized answer
// into a transient error.
func (c *Connector) transportError(op, peer string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in op already
	}
	msg := fmt.Sprintf("%s: directory %q: cannot reach %s: %v", op, c.name, peer, err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("%s: directory %q: %s did not answer within %s", op, c.name, peer, c.timeout)
	case errors.Is(err, errTooLarge):
		msg = fmt.Sprintf("%s: directory %q: %s sent an answer larger than %d bytes", op, c.name, peer, MaxResponseBytes)
	}
	return &gsync.Error{Message: msg}
}

// tokenErrorBody is the OAuth 2.0 error shape of Google's token endpoint.
type tokenErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenError classifies a failed token request. Setup problems are
// permanent with a message that names what to fix.
func (c *Connector) tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	const op = "get a Google access token"
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return c.transportError(op, "the Google token endpoint", err)
	}
	status := 0
	var hdr http.Header
	if re.Response != nil {
		status, hdr = re.Response.StatusCode, re.Response.Header
	}
	var tb tokenErrorBody
	_ = json.Unmarshal(re.Body, &tb)
	code := tb.Error
	if code == "" {
		code = re.ErrorCode
	}
	said := firstLine(tb.Description)
	if said == "" {
		said = firstLine(re.ErrorDescription)
	}
	if said == "" {
		said = code
	}
	if said == "" {
		said = http.StatusText(status)
	}
	lower := strings.ToLower(said)
	e := &gsync.Error{Status: status, Code: code, Permanent: true}
	prefix := fmt.Sprintf("%s for directory %q: Google said %q", op, c.name, said)
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		e.Permanent = false
		e.RetryAfter = gsync.ParseRetryAfter(hdr)
		e.Message = prefix + "; will retry"
	case code == "unauthorized_client" || code == "access_denied":
		e.Message = prefix + fmt.Sprintf(": domain-wide delegation is not granted: in the Admin console > Security > "+
			"Access and data control > API controls > Manage domain-wide delegation, add the service account's client ID %s "+
			"with the scopes %s and %s (exactly these, comma-separated)", c.clientID(), ScopeUser, ScopeGroup)
	case strings.Contains(lower, "invalid jwt signature"):
		e.Message = prefix + ": the key in credentials_file is not (or no longer) a key of the service account " +
			c.jwt.Email + ": create a new JSON key for it and replace credentials_file"
	case strings.Contains(lower, "email or user id") || strings.Contains(lower, "user id"):
		e.Message = prefix + fmt.Sprintf(": admin_subject %s is not a user of this Google Workspace account: "+
			"set it to a super admin's primary email", c.subject)
	case strings.Contains(lower, "account not found") || strings.Contains(lower, "disabled"):
		e.Message = prefix + ": the service account " + c.jwt.Email + " was deleted or disabled: " +
			"re-enable it, or create a service account and key and update credentials_file"
	case strings.Contains(lower, "iat and exp") || strings.Contains(lower, "timeframe") || strings.Contains(lower, "short-lived"):
		e.Message = prefix + ": the host's clock is off: synchronise it (NTP)"
	case code == "invalid_scope":
		e.Message = prefix + ": the scopes " + ScopeUser + " and " + ScopeGroup + " were refused"
	default:
		e.Message = prefix + ": check credentials_file, admin_subject and the domain-wide delegation"
	}
	return e
}

// clientID is the service account's OAuth client ID, which domain-wide
// delegation is granted to.
func (c *Connector) clientID() string {
	if c.saClientID != "" {
		return c.saClientID
	}
	return "(see client_id in credentials_file)"
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func (c *Connector) permanent(op, msg string) error {
	return &gsync.Error{Permanent: true, Message: fmt.Sprintf("%s: directory %q: %s", op, c.name, msg)}
}
