package authn

import (
	"context"
	"time"
)

// ReasonBadCertificate: the door refused the client certificate itself
// (unknown CA, revoked, expired, none sent) before any user was looked
// up; recorded with Reject.
const ReasonBadCertificate Reason = "bad_certificate"

// LoginCertificate authorizes a login proven by a client certificate
// (EAP-TLS) that the door has already verified against its CAs.
// req.Identifier is the identity read from the certificate (an email, a
// UPN or a CN) and is resolved as every login's is (username, email, UPN
// domains); req.Password is unused. The checks that need no password run
// as for any login (rate limit, state, lockout): a suspended, staged or
// locked user is refused. The password status is not: a certificate user
// need not have a password, and an expired one proves nothing about the
// certificate. No password is verified, so a refusal does not
// count toward lockout, AD is not asked, and the PasswordObserver is
// never called (no takeover push: there is no plaintext). detail goes
// into the event (e.g. the certificate's serial and where the identity
// came from). The outcome is recorded like Login's.
func (a *Authenticator) LoginCertificate(_ context.Context, req Request, detail string) Result {
	start := a.now()
	res := a.loginCertificate(req, start)
	if detail != "" {
		res.Detail = detail
	}
	a.record(req, res, start)
	return res
}

func (a *Authenticator) loginCertificate(req Request, now time.Time) Result {
	res, next := a.precheck(req, a.policy(), now)
	if next == stepDone && res.User != nil && (res.Reason == ReasonPending || res.Reason == ReasonExpired) {
		next, res.Reason = stepLocal, ReasonNone
	}
	switch next {
	case stepDone:
		return res
	case stepUnknown:
		return Result{Reason: ReasonNoSuchUser}
	}
	if res.User == nil {
		return Result{Reason: ReasonInternal}
	}
	res.OK = true
	return res
}
