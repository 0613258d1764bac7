package adimport

import (
	"context"
	"errors"
	"time"
)

// The import loop of a domain runs on one replica at a time (issue 16):
// several gatewayd replicas on one database would otherwise each import
// the same AD users, racing to create them. Before each cycle the runner
// takes or renews the domain's leader lease, "ad-import/NAME", for three
// intervals; a replica that does not get it is the standby and skips the
// cycle. The leader renews every interval, also during a cycle longer
// than that, so the lease passes to a standby only when the leader stops
// (it dies, or it cannot reach the database): within three intervals.

// Leases hands out a leader lease across replicas (*store.Store implements
// it; the embedded store is one process, always the leader). HoldLease
// takes or renews the named lease for ttl and reports whether this
// replica holds it.
type Leases interface {
	HoldLease(ctx context.Context, name string, ttl time.Duration) (bool, error)
}

// Roles shown in Status when the runner has Leases.
const (
	RoleLeader  = "leader"
	RoleStandby = "standby"
)

// ErrStandby: another replica holds the domain's import lease, so this one
// runs no cycle.
var ErrStandby = errors.New("another gatewayd replica leads this domain's import (its `gatewayd ad status` shows role leader); run the import there, or wait for the lease to pass (3 intervals after that replica stops)")

// leaseTTL is three intervals: two renewals may be missed before a
// standby takes over.
func (r *Runner) leaseTTL() time.Duration { return 3 * r.cfg.Interval }

func (r *Runner) leaseName() string { return "ad-import/" + r.name }

// holdLease takes or renews the lease; without Leases this runner always
// leads. A lease that cannot be asked for (database down) is not held.
func (r *Runner) holdLease(ctx context.Context) error {
	if r.Leases == nil {
		return nil
	}
	ok, err := r.Leases.HoldLease(ctx, r.leaseName(), r.leaseTTL())
	switch {
	case err != nil:
		r.setRole(RoleStandby, err)
		return errors.Join(ErrStandby, err)
	case !ok:
		r.setRole(RoleStandby, nil)
		return ErrStandby
	}
	r.setRole(RoleLeader, nil)
	return nil
}

// setRole records the role, logging when it changes.
func (r *Runner) setRole(role string, err error) {
	r.mu.Lock()
	was := r.role
	r.role = role
	r.mu.Unlock()
	if was == role {
		return
	}
	switch {
	case role == RoleLeader:
		r.log.Info("ad import: this replica leads the domain's import", "domain", r.name)
	case err != nil:
		r.log.Warn("ad import: cannot take the import lease; standing by", "domain", r.name, "err", err)
	default:
		r.log.Info("ad import: another replica leads the domain's import; standing by", "domain", r.name)
	}
}

// keepLease renews the lease every interval while a cycle runs, and
// cancels the cycle when the lease is lost (another replica took it) or
// could not be renewed until it ran out. Call the returned stop when the
// cycle ends.
func (r *Runner) keepLease(ctx context.Context) (context.Context, func()) {
	if r.Leases == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		heldUntil := time.Now().Add(r.leaseTTL())
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ok, err := r.Leases.HoldLease(ctx, r.leaseName(), r.leaseTTL())
			switch {
			case err == nil && ok:
				heldUntil = time.Now().Add(r.leaseTTL())
			case err == nil:
				r.setRole(RoleStandby, nil)
				r.log.Warn("ad import: the lease passed to another replica during the cycle; stopping it", "domain", r.name)
				cancel()
				return
			case ctx.Err() != nil:
				return
			case time.Until(heldUntil) < r.cfg.Interval:
				// The next try would come after the lease ran out.
				r.setRole(RoleStandby, err)
				r.log.Warn("ad import: cannot renew the lease before it runs out; stopping the cycle", "domain", r.name, "err", err)
				cancel()
				return
			}
		}
	}()
	return ctx, func() { cancel(); <-done }
}
