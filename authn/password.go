package authn

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// ChangePassword sets a new password for a local-authority user (SPEC 2.4,
// 3.4): hashes it, bumps the password version (the takeover trigger),
// activates a pending or expired password, clears a lock, and records an
// event naming the actor. The caller keeps ownership of pw.
func (a *Authenticator) ChangePassword(ctx context.Context, userID string, pw secret.String, actor string) error {
	cfg := a.policy()
	u, err := a.users.UserByID(userID)
	if err != nil {
		return err
	}
	if u.PasswordAuthority == store.AuthorityAD {
		return ErrAuthorityAD
	}
	if err := checkPolicy(pw, cfg); err != nil {
		return err
	}
	if err := a.acquire(ctx, cfg); err != nil {
		return fmt.Errorf("%w, try again", err)
	}
	h, err := hashPassword(pw.Bytes(), cfg.Hash)
	a.release()
	if err != nil {
		return err
	}
	a.metrics.hashes.Inc()
	now := a.now()
	// The NT hash follows the new password (nil when store_nt_hash is
	// off, which drops any old one).
	nt := a.sealedNTHash(userID, pw)
	nu, err := a.users.UpdateUser(userID, func(x *store.User) error {
		if x.PasswordAuthority == store.AuthorityAD {
			return ErrAuthorityAD
		}
		x.PasswordHash = h
		x.NTHashSealed = nt
		x.PasswordVersion++
		x.PasswordChangedAt = now
		x.LockedUntil = time.Time{}
		if x.PasswordStatus == store.PasswordPending || x.PasswordStatus == store.PasswordExpired || x.PasswordStatus == "" {
			x.PasswordStatus = store.PasswordActive
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.events.Emit(store.Event{Type: store.EventPasswordChange, UserID: nu.ID, Username: nu.Username,
		Outcome: store.OutcomeSuccess, Source: actor, Detail: fmt.Sprintf("password version %d", nu.PasswordVersion)})
	if a.observer != nil {
		a.observer.PasswordChanged(nu.Copy(), pw.Clone())
	}
	return nil
}

// ChangeOwnPassword is a user changing their own password by proving the
// old one, without a session: LDAP Password Modify with userIdentity and
// oldPasswd on an unbound connection (RFC 3062 §2), and the self-service
// page. It is how a user whose password expired gets a new one, so an
// expired password is accepted as proof here and nowhere else. Every
// other rule of a login holds (state, lockout, rate limit, failures
// counted); ok is false and the reason recorded when the old password
// does not prove the user. accept, when not nil, runs once the user is
// proven and before anything changes: a caller that knows more rules for
// this user (the portal knows the bound directories' policies) refuses
// there, which it could not do before the proof without telling a guesser
// about the account. Its error is returned as is. The caller keeps
// ownership of both passwords.
func (a *Authenticator) ChangeOwnPassword(ctx context.Context, req Request, newPw secret.String, accept func(*store.User) error) (*store.User, error) {
	cfg := a.policy()
	if err := checkPolicy(newPw, cfg); err != nil {
		return nil, err
	}
	now := a.now()
	res, next := a.precheck(req, cfg, now)
	if res.User != nil && (res.User.PasswordAuthority == store.AuthorityAD || res.User.DelegatedAuthority == store.AuthorityAD) {
		return nil, ErrAuthorityAD // nothing was checked: AD owns this password
	}
	if next == stepDone && res.Reason == ReasonExpired && res.User.PasswordHash != "" {
		res.Reason, next = ReasonNone, stepLocal
	}
	switch next {
	case stepLocal:
		if ph, err := parseHash(res.User.PasswordHash); err != nil {
			res.Reason = ReasonInternal
		} else if r := a.verifyHash(ctx, cfg, ph, req.Password); r != ReasonNone {
			res.Reason = r
			if r == ReasonBadPassword {
				a.failed(req, res.User, cfg, now)
			}
		}
	case stepUnknown:
		a.verifyHash(ctx, cfg, a.dummyHash(), req.Password) // same cost as a wrong password
		a.failed(req, nil, cfg, now)
		res.Reason = ReasonNoSuchUser
	}
	res.OK = res.Reason == ReasonNone
	a.record(req, res, now)
	switch {
	case res.Reason == ReasonBusy:
		return nil, ErrBusy
	case !res.OK:
		return nil, ErrNotProven
	}
	if accept != nil {
		if err := accept(res.User); err != nil {
			return nil, err
		}
	}
	if err := a.ChangePassword(ctx, res.User.ID, newPw, string(req.Protocol)+":self"); err != nil {
		return nil, err
	}
	return a.users.UserByID(res.User.ID)
}

func checkPolicy(pw secret.String, cfg Config) error {
	if !utf8.Valid(pw.Bytes()) {
		return fmt.Errorf("%w: it is not valid UTF-8", ErrWeakPassword)
	}
	n := utf8.RuneCount(pw.Bytes())
	if n < cfg.MinPasswordLength {
		return fmt.Errorf("%w: at least %d characters are required", ErrWeakPassword, cfg.MinPasswordLength)
	}
	if n > cfg.MaxPasswordLength {
		return fmt.Errorf("%w: at most %d characters are allowed", ErrWeakPassword, cfg.MaxPasswordLength)
	}
	return nil
}

// PasswordLengths is the local policy on passwords set through the gateway
// (min_password_length, max_password_length, in characters), for a door
// that shows it before the user submits.
func (a *Authenticator) PasswordLengths() (minLen, maxLen int) {
	cfg := a.policy()
	return cfg.MinPasswordLength, cfg.MaxPasswordLength
}
