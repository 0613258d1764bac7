package authn

import (
	"context"
	"time"
)

// Lockout counts shared by replicas (issue 16). Several gatewayd replicas
// on one database each see some of a user's failed passwords; counted
// apart, N replicas would allow N×max_failures. When the store shares the
// counts, every failure is counted there, and the lock falls at
// max_failures in total. When the shared count fails (the database is
// down) the failure is counted in this replica's memory instead, so the
// lockout never stops working; the count then is per replica until the
// database answers again.

// FailureCounter counts failed passwords across replicas (*store.Store
// implements it). SharedFailures says whether it does; when it is false
// (the embedded store) the counts stay in this process's memory.
type FailureCounter interface {
	SharedFailures() bool
	// CountFailure adds one failure for userID in the window starting
	// at its first failure and returns the count in the window.
	CountFailure(ctx context.Context, userID string, window time.Duration, now time.Time) (int, error)
	// ResetFailures forgets userID's count. It is called on every
	// successful login, so it must return at once: the store queues the
	// reset and sends it with others (store/pgcoord.go).
	ResetFailures(ctx context.Context, userID string) error
}

// WithFailureCounter counts lockout failures through c when c shares them
// across replicas (c.SharedFailures()); otherwise it changes nothing.
func WithFailureCounter(c FailureCounter) Option {
	return func(a *Authenticator) {
		if c != nil && c.SharedFailures() {
			a.shared = c
		}
	}
}

const (
	// sharedTimeout bounds one call to the shared counter: a failed
	// login waits this long at most before it is counted in memory.
	sharedTimeout = time.Second
	// sharedPause: after the shared counter failed, failures are counted
	// in memory this long before it is tried again, so an outage does
	// not add sharedTimeout to every failed login.
	sharedPause = 10 * time.Second
)

// countFailure records one failure of userID and reports whether the user
// must now be locked.
func (a *Authenticator) countFailure(userID string, p LockoutPolicy, now time.Time) bool {
	if a.shared != nil {
		if now.UnixNano() >= a.sharedRetryAt.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
			n, err := a.shared.CountFailure(ctx, userID, p.Window, now)
			cancel()
			if err == nil {
				a.sharedUp()
				if n < p.MaxFailures {
					return false
				}
				a.resetShared(userID) // locked: the next count starts afresh
				return true
			}
			a.sharedFailed(now, "count", err)
		}
		a.metrics.lockoutFallbacks.Inc()
	}
	return a.failures.fail(userID, p, now)
}

// resetFailures forgets userID's count, here and in the shared counter.
// A login never waits for the database: the shared reset is queued by the
// counter (see FailureCounter). A failure counted meanwhile on another
// replica may be reset with it.
func (a *Authenticator) resetFailures(userID string) {
	a.failures.reset(userID)
	if a.shared != nil {
		a.resetShared(userID)
	}
}

func (a *Authenticator) resetShared(userID string) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if err := a.shared.ResetFailures(ctx, userID); err != nil {
		a.sharedFailed(a.now(), "reset", err)
		return
	}
	a.sharedUp()
}

// sharedFailed counts the error, pauses the shared counter and logs the
// outage once.
func (a *Authenticator) sharedFailed(now time.Time, op string, err error) {
	a.metrics.sharedErrors.WithLabelValues(op).Inc()
	a.sharedRetryAt.Store(now.Add(sharedPause).UnixNano())
	if a.sharedDown.CompareAndSwap(false, true) {
		a.log.Warn("login: the shared lockout count failed; counting failures in this replica's memory until the database answers",
			"retry_in", sharedPause, "err", err)
	}
}

func (a *Authenticator) sharedUp() {
	if a.sharedDown.CompareAndSwap(true, false) {
		a.log.Info("login: the shared lockout count works again")
	}
}
