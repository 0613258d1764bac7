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
		return fmt.Errorf("password hashing is saturated, try again: %w", err)
	}
	h, err := hashPassword(pw.Bytes(), cfg.Hash)
	a.release()
	if err != nil {
		return err
	}
	a.metrics.hashes.Inc()
	now := a.now()
	nu, err := a.users.UpdateUser(userID, func(x *store.User) error {
		if x.PasswordAuthority == store.AuthorityAD {
			return ErrAuthorityAD
		}
		x.PasswordHash = h
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
