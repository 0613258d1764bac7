package authn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// adValidationGranularity: a successful delegated login refreshes the
// stored LastADValidationAt only when it is older than this, so a busy
// user does not cost a journal write per login. The stored time lags by at
// most this much, which can only shorten an offline window, never extend it.
const adValidationGranularity = time.Minute

// loginDelegated validates the password of a user whose delegated
// authority is "ad" (SPEC 2.4, 2.5, 6.1).
//
// The verified-credential cache never accepts a delegated login: AD is
// asked every time, so a password changed in AD works at the next login
// and the old one stops working at once, whatever the cache holds. The
// cache serves only to answer "is this the password we already hold a
// hash of?" without an argon2 verify — after AD has accepted it (so no
// rehash and no version bump are needed), and in the offline path, where
// a cache hit means exactly what a successful verify against the stored
// hash would mean.
func (a *Authenticator) loginDelegated(ctx context.Context, req Request, u *store.User, cfg Config, now time.Time) Result {
	res := Result{User: u}
	if a.delegate == nil {
		res.Reason = ReasonADUnreachable
		res.Detail = "no [[ad]] domain is configured"
		return res
	}
	dr := a.delegate.Validate(ctx, PrincipalOf(u), req.Password)
	switch {
	case dr.OK:
		res.OK = true
		res.Detail = dr.Detail
		if nu := a.adAccepted(ctx, u, req.Password, cfg, dr); nu != nil {
			res.User = nu
		}
		a.succeeded(res.User, req.Password, cfg)
		return res
	case dr.Unreachable:
		return a.offlineLogin(ctx, req, u, cfg, now, dr)
	}
	res.Reason, res.Detail = dr.Reason, dr.Detail
	if res.Reason == ReasonNone {
		res.Reason = ReasonBadPassword
	}
	a.adRefused(ctx, u, req.Password, cfg, dr, res.Reason)
	if res.Reason == ReasonBadPassword || res.Reason == ReasonNoSuchUser {
		if locked := a.failed(req, u, cfg, now); locked != nil {
			res.User = locked
		}
	}
	return res
}

// adAccepted keeps the local copy in step after AD accepted pw: stores or
// refreshes the argon2id hash when the domain says store_hash (SPEC 2.5),
// bumps the password version when the password differs from the stored
// one (a takeover trigger, SPEC 3.3), records the validation time that
// bounds offline logins, and turns a pending status into delegated. It
// returns the updated user, or nil when nothing was written.
func (a *Authenticator) adAccepted(ctx context.Context, u *store.User, pw secret.String, cfg Config, dr DelegationResult) *store.User {
	now := a.now()
	var newHash string
	bump := false
	if dr.StoreHash {
		matches, rehash, ok := a.matchesStored(ctx, u, pw, cfg, now)
		if ok && (!matches || rehash) {
			if err := a.acquire(ctx, cfg); err == nil {
				h, err := hashPassword(pw.Bytes(), cfg.Hash)
				a.release()
				a.metrics.hashes.Inc()
				if err != nil {
					a.log.Error("delegated login: hashing the AD password failed", "user", u.Username, "err", err)
				} else {
					newHash, bump = h, !matches
				}
			}
		}
	}
	touch := u.LastADValidationAt.IsZero() || now.Sub(u.LastADValidationAt) >= adValidationGranularity ||
		u.PasswordStatus == store.PasswordPending || u.PasswordStatus == ""
	if newHash == "" && !touch {
		return nil
	}
	old := u.PasswordHash
	nu, err := a.users.UpdateUser(u.ID, func(x *store.User) error {
		if newHash != "" {
			if x.PasswordHash != old {
				return errStale // changed meanwhile (a concurrent login did this)
			}
			x.PasswordHash = newHash
			if bump {
				x.PasswordVersion++
				x.PasswordChangedAt = now
			}
		}
		x.LastADValidationAt = now
		if x.PasswordStatus == store.PasswordPending || x.PasswordStatus == "" {
			x.PasswordStatus = store.PasswordDelegated
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errStale) {
			a.log.Error("delegated login: recording the AD validation failed", "user", u.Username, "err", err)
		}
		return nil
	}
	if newHash != "" {
		if cfg.CacheTTL > 0 {
			a.cache.put(nu, pw, now.Add(cfg.CacheTTL))
		}
		if bump {
			detail := fmt.Sprintf("password version %d: AD accepted a password that differs from the stored one", nu.PasswordVersion)
			if old == "" {
				detail = fmt.Sprintf("password version %d: first AD-validated password stored", nu.PasswordVersion)
			}
			a.events.Emit(store.Event{Type: store.EventPasswordChange, UserID: nu.ID, Username: nu.Username,
				Outcome: store.OutcomeSuccess, Source: "ad", Directory: dr.Domain, Detail: detail})
		} else {
			a.metrics.rehashes.Inc()
		}
	}
	return nu
}

// matchesStored says whether pw is the password of the stored hash, from
// the cache when it can (no argon2), and whether the hash needs
// re-hashing under new parameters. ok is false when it could not tell
// (hashing saturated): the caller then leaves the hash alone this time.
func (a *Authenticator) matchesStored(ctx context.Context, u *store.User, pw secret.String, cfg Config, now time.Time) (matches, rehash, ok bool) {
	if u.PasswordHash == "" {
		return false, false, true
	}
	ph, err := parseHash(u.PasswordHash)
	if err != nil {
		return false, false, true // unusable: replace it
	}
	if cfg.CacheTTL > 0 && a.cache.match(u, pw, now) {
		a.metrics.cacheSeries.Get("hit").Inc()
		return true, ph.needsRehash(cfg.Hash), true
	}
	switch a.verifyHash(ctx, cfg, ph, pw) {
	case ReasonNone:
		if cfg.CacheTTL > 0 {
			a.cache.put(u, pw, now.Add(cfg.CacheTTL))
		}
		return true, ph.needsRehash(cfg.Hash), true
	case ReasonBadPassword:
		return false, false, true
	default:
		return false, false, false
	}
}

// adRefused: AD said no. A refusal of the account itself (disabled,
// locked, expired, must change, restricted, unknown) ends the user's
// offline eligibility at once, so an account disabled in AD cannot log in
// from the stored hash while the DCs are down; so does a bad password that
// is the stored one (the password was changed in AD). A mistyped password
// changes nothing.
func (a *Authenticator) adRefused(ctx context.Context, u *store.User, pw secret.String, cfg Config, dr DelegationResult, reason Reason) {
	if u.LastADValidationAt.IsZero() {
		return
	}
	if reason == ReasonBadPassword {
		if dr.OfflineWindow <= 0 || u.PasswordHash == "" {
			return
		}
		if matches, _, ok := a.matchesStored(ctx, u, pw, cfg, a.now()); !ok || !matches {
			return
		}
	}
	a.cache.drop(u.ID)
	if _, err := a.users.UpdateUser(u.ID, func(x *store.User) error {
		x.LastADValidationAt = time.Time{}
		return nil
	}); err != nil {
		a.log.Error("delegated login: clearing offline eligibility failed", "user", u.Username, "err", err)
	}
}

// offlineLogin: no DC answered. With the domain's offline_login window
// set, a password matching the stored hash is accepted if AD last
// accepted this user's password within the window (SPEC 2.5).
func (a *Authenticator) offlineLogin(ctx context.Context, req Request, u *store.User, cfg Config, now time.Time, dr DelegationResult) Result {
	res := Result{User: u, Reason: ReasonADUnreachable, Detail: dr.Detail}
	switch {
	case dr.OfflineWindow <= 0:
		return res
	case u.PasswordHash == "" || u.LastADValidationAt.IsZero():
		res.Detail += "; no offline login: AD has not validated this user's current password"
		return res
	case now.Sub(u.LastADValidationAt) > dr.OfflineWindow:
		res.Detail += fmt.Sprintf("; no offline login: the last AD validation (%s) is older than offline_login (%s)",
			u.LastADValidationAt.UTC().Format(time.RFC3339), dr.OfflineWindow)
		return res
	}
	ph, err := parseHash(u.PasswordHash)
	if err != nil {
		res.Reason = ReasonInternal
		res.Detail = "offline login: the stored hash is unusable"
		return res
	}
	offline := fmt.Sprintf("offline login (ad %s unreachable; last AD validation %s)", dr.Domain,
		u.LastADValidationAt.UTC().Format(time.RFC3339))
	if cfg.CacheTTL > 0 && a.cache.match(u, req.Password, now) {
		a.metrics.cacheSeries.Get("hit").Inc()
		res.OK, res.Cached, res.Reason, res.Detail = true, true, ReasonNone, offline
		a.succeeded(u, req.Password, cfg)
		return res
	}
	if r := a.verifyHash(ctx, cfg, ph, req.Password); r != ReasonNone {
		res.Reason, res.Detail = r, offline+": the password does not match the stored one"
		if r == ReasonBadPassword {
			if locked := a.failed(req, u, cfg, now); locked != nil {
				res.User = locked
			}
		}
		return res
	}
	if cfg.CacheTTL > 0 {
		a.cache.put(u, req.Password, now.Add(cfg.CacheTTL))
	}
	res.OK, res.Reason, res.Detail = true, ReasonNone, offline
	a.succeeded(u, req.Password, cfg)
	return res
}
