package sync

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

// Claims across replicas (issue 16). Several gatewayd replicas on one
// database each run an engine, and every replica sees every store change,
// so each would reconcile every pair. Before a job runs, the engine takes
// the pair's claim (Config.Claims): one replica at a time runs it, and the
// ones that come after find the work done (the engine is level-triggered,
// and a claim taken means the store's view holds every earlier write). A
// job refused the claim waits and tries again, keeping its plaintext: the
// plaintext of a login exists only in the memory of the replica that saw
// it (SPEC 3.7), so dropping it would leave the push pending until the
// user's next login.

// Claimer hands out the claim on one unit of work across replicas
// (*store.Store implements it). ClaimJob returns store.ErrClaimed while
// another holder has key; any other error (the database is down) is
// retried with the engine's backoff. When it returns nil, the store's view
// holds every write committed before the claim, on any replica. release
// ends the claim; it is idempotent.
type Claimer interface {
	ClaimJob(ctx context.Context, key string, ttl time.Duration) (release func(), err error)
}

const (
	// claimTimeout bounds one ClaimJob call, so a database that hangs
	// holds up its worker this long at most.
	claimTimeout = 10 * time.Second
	// A refused job tries again after claimRetryBase, doubling up to
	// claimRetryMax: the holder is usually done within one remote call.
	claimRetryBase = 100 * time.Millisecond
	claimRetryMax  = 5 * time.Second
)

// claimKey names the pair's unit of work: "m365/<user id>", and
// "m365/group/<group id>" for a group.
func claimKey(k pairKey) string {
	if k.group {
		return k.dir + "/group/" + k.id
	}
	return k.dir + "/" + k.id
}

// claim takes k's claim. When it cannot (another replica runs the pair,
// or the claim could not be asked for) it schedules p again, plaintext
// included, and reports false; p is then no longer the caller's. Without
// a Claimer every job runs.
func (e *Engine) claim(ctx context.Context, k pairKey, p pending) (release func(), ok bool) {
	if e.cfg.Claims == nil {
		return func() {}, true
	}
	cctx, cancel := context.WithTimeout(ctx, claimTimeout)
	release, err := e.cfg.Claims.ClaimJob(cctx, claimKey(k), e.cfg.ClaimLease)
	cancel()
	if err == nil {
		if e.claimDown.CompareAndSwap(true, false) {
			e.log.Info("sync: job claims work again")
		}
		return release, true
	}
	if ctx.Err() != nil { // shutting down: the job goes with the engine
		p.pw.Wipe()
		return nil, false
	}
	p.claimTries++
	var delay time.Duration
	if errors.Is(err, store.ErrClaimed) {
		e.m.claimsRefused.WithLabelValues(k.dir).Inc()
		delay = claimRetryDelay(p.claimTries)
		e.log.Debug("sync: another replica runs this pair; trying again", "directory", k.dir, "subject", k.id, "in", delay)
	} else {
		e.m.claimErrors.WithLabelValues(k.dir).Inc()
		delay = e.backoff(p.claimTries)
		if e.claimDown.CompareAndSwap(false, true) {
			e.log.Warn("sync: cannot take job claims; jobs wait and retry until the database answers", "err", err)
		}
	}
	time.AfterFunc(delay, func() { e.enqueue(k, p) })
	return nil, false
}

// claimRetryDelay is the wait before the n-th retry of a refused claim,
// drawn from the upper half so replicas waiting on one pair spread out.
// It never stops retrying: the holder may be another job of the same pair
// (another replica's login), not a stuck one, and the plaintext must not
// be dropped while its job is still to run.
func claimRetryDelay(n int) time.Duration {
	d := claimRetryBase << min(n-1, 10)
	if d > claimRetryMax || d <= 0 {
		d = claimRetryMax
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// jobContext bounds a claimed job: its remote calls are cut off before the
// claim runs out, so a replica that takes the pair over after the lease
// never overlaps a call still in flight here. The fifth kept back covers
// the final store write and clock differences between replicas.
func (e *Engine) jobContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.cfg.Claims == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, e.cfg.ClaimLease*4/5)
}
