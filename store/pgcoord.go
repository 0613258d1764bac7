package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The coordination points of coord.go on the PostgreSQL backend, in
// gw_leases and gw_failures. Expiry is the database's clock (now()), the
// one clock every replica shares.

// claimSerial makes each claim's holder token unique, so a release
// after expiry cannot end the next holder's claim.
var claimSerial atomic.Uint64

// defaultReplica names a replica whose config gives no name: the host
// name, the pid and a random tag, so two stores in one process (and a
// restarted daemon) are different holders.
func defaultReplica() string {
	host, _ := os.Hostname()
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(tag[:])
}

// pgClaimJob claims key for ttl. A free key is inserted; an expired claim
// is taken over with FOR UPDATE SKIP LOCKED, so replicas racing for it
// never queue behind one another: the loser gets ErrClaimed at once. The
// claim is followed by a catch-up, so the caller decides on every write
// committed before it (the previous holder saved its state before it
// released).
func (s *Store) pgClaimJob(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	j := s.pg
	name := "job/" + key
	holder := j.replica + "#" + strconv.FormatUint(claimSerial.Add(1), 10)
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	us := ttl.Microseconds()
	tag, err := j.pool.Exec(ctx, `INSERT INTO gw_leases (name, holder, expires)
		VALUES ($1, $2, now() + $3 * interval '1 microsecond') ON CONFLICT (name) DO NOTHING`, name, holder, us)
	if err != nil {
		return nil, j.unavailable("claiming a job", err)
	}
	if tag.RowsAffected() == 0 {
		var got string
		err := j.pool.QueryRow(ctx, `WITH stale AS (
				SELECT name FROM gw_leases WHERE name = $1 AND expires < now() FOR UPDATE SKIP LOCKED)
			UPDATE gw_leases l SET holder = $2, expires = now() + $3 * interval '1 microsecond'
			FROM stale WHERE l.name = stale.name RETURNING l.holder`, name, holder, us).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrClaimed
		}
		if err != nil {
			return nil, j.unavailable("claiming a job", err)
		}
	}
	if err := s.CatchUp(ctx); err != nil {
		s.pgRelease(name, holder)
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { s.pgRelease(name, holder) }) }, nil
}

// pgRelease ends a claim; one that fails runs out at its expiry.
func (s *Store) pgRelease(name, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.pg.timeout)
	defer cancel()
	if _, err := s.pg.pool.Exec(ctx, `DELETE FROM gw_leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		s.log.Warn("releasing a sync claim failed; it runs out at its lease", "claim", name, "err", err)
	}
}

func (s *Store) pgHoldLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	j := s.pg
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	var holder string
	err := j.pool.QueryRow(ctx, `INSERT INTO gw_leases (name, holder, expires)
		VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
		WHERE gw_leases.holder = EXCLUDED.holder OR gw_leases.expires < now()
		RETURNING holder`, "lease/"+name, j.replica, ttl.Microseconds()).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, j.unavailable("holding lease "+name, err)
	}
	return true, nil
}

func (s *Store) pgCountFailure(ctx context.Context, userID string, window time.Duration, now time.Time) (int, error) {
	j := s.pg
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	var n int
	err := j.pool.QueryRow(ctx, `INSERT INTO gw_failures AS f (user_id, since, n) VALUES ($1, $2, 1)
		ON CONFLICT (user_id) DO UPDATE SET
			since = CASE WHEN $2 - f.since > $3 * interval '1 microsecond' THEN $2 ELSE f.since END,
			n     = CASE WHEN $2 - f.since > $3 * interval '1 microsecond' THEN 1 ELSE f.n + 1 END
		RETURNING n`, userID, now, window.Microseconds()).Scan(&n)
	if err != nil {
		return 0, j.unavailable(fmt.Sprintf("counting a failed password of %s", userID), err)
	}
	return n, nil
}

// pgResetFailures queues the reset: a successful login resets its
// user's count, and one DELETE per login would cost every login a round
// trip. resetFlusher sends the queued ones together, within
// resetLinger. A failure counted on another replica in that window may be
// reset with them (it can only lock a user later by one failure).
func (s *Store) pgResetFailures(_ context.Context, userID string) error {
	j := s.pg
	j.resetMu.Lock()
	if j.resets == nil {
		j.resets = map[string]struct{}{}
	}
	j.resets[userID] = struct{}{}
	n := len(j.resets)
	j.resetMu.Unlock()
	if n == 1 {
		select {
		case j.resetWake <- struct{}{}:
		default:
		}
	}
	return nil
}

// resetLinger is how long queued failure resets wait for more.
const resetLinger = 20 * time.Millisecond

// resetFlusher deletes queued failure counts in batches until halt.
func (s *Store) resetFlusher() {
	j := s.pg
	defer close(j.resetDone)
	for {
		select {
		case <-j.stop:
			s.flushResets()
			return
		case <-j.resetWake:
		}
		select {
		case <-j.stop:
		case <-time.After(resetLinger):
		}
		s.flushResets()
	}
}

func (s *Store) flushResets() {
	j := s.pg
	j.resetMu.Lock()
	ids := make([]string, 0, len(j.resets))
	for id := range j.resets {
		ids = append(ids, id)
	}
	j.resets = nil
	j.resetMu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	if _, err := j.pool.Exec(ctx, `DELETE FROM gw_failures WHERE user_id = ANY($1)`, ids); err != nil {
		s.log.Warn("resetting failed-password counts in PostgreSQL failed; they run out with their window",
			"users", len(ids), "err", j.unavailable("resetting failure counts", err))
	}
}
