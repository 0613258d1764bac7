package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

const (
	// emitQueueSize bounds events waiting for the writer; Emit blocks
	// (never drops) when it is full.
	emitQueueSize = 8192
	// maxEventBatch caps one group commit.
	maxEventBatch = 4096
	// maxPrunePerWrite bounds the deletions one write does when the
	// retention is lowered a lot; the rest go with the next writes.
	maxPrunePerWrite = 50000
	// closeRetries is how often Close retries a failing final batch.
	closeRetries = 3
)

// retryBackoff is the writer's wait after a failed batch (doubling).
var retryBackoff = [2]time.Duration{50 * time.Millisecond, 5 * time.Second}

// emitItem is an event, or (flush != nil) a flush marker.
type emitItem struct {
	ev    Event
	flush chan error
}

// AppendEvents stores events in one fsync'd transaction before it
// returns. Seq is assigned (any value passed is ignored) and Time set to
// now when zero. A successful login event (Login && Outcome == success)
// also stamps the user's LastLoginAt.
func (s *Store) AppendEvents(evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	now := s.now()
	batch := make([]Event, len(evs))
	for i, ev := range evs {
		if ev.Type == "" {
			return invalidf("event %d has no type", i)
		}
		if ev.Time.IsZero() {
			ev.Time = now
		}
		batch[i] = ev
	}
	return s.write(func(w *wtxn) error { return w.appendEvents(batch) })
}

// Emit queues an audit event for the background writer, which commits
// queued events in batches (group commit). Time is set now when zero. It
// never drops an event: when the queue is full it waits. Use Flush to wait
// until emitted events are durable. Emit after Close logs the event as
// lost.
func (s *Store) Emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	item := emitItem{ev: ev}
	s.emitMu.RLock()
	defer s.emitMu.RUnlock()
	if !s.emitClosed {
		select {
		case s.emitCh <- item:
			return
		case <-s.writerDone: // the writer gave up (journal failing at Close)
		}
	}
	s.log.Error("audit event emitted after the store was closed; it is lost",
		"type", ev.Type, "user_id", ev.UserID, "outcome", ev.Outcome)
}

// Flush returns once every event emitted before the call is durable, or
// with the writer's error if the batch holding them failed (the writer
// keeps retrying it), or ctx's error. After Close it returns Close's
// verdict on the queued events.
func (s *Store) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	s.emitMu.RLock()
	sent := false
	if !s.emitClosed {
		select {
		case s.emitCh <- emitItem{flush: done}:
			sent = true
		case <-ctx.Done():
			s.emitMu.RUnlock()
			return ctx.Err()
		case <-s.writerDone:
		}
	}
	s.emitMu.RUnlock() // before waiting: Close needs the write lock
	if !sent {
		select {
		case <-s.writerDone:
			return s.lostEvents
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// eventWriter is the single goroutine that group-commits emitted events.
// A failed batch is kept and retried with backoff (audit events are not
// dropped); once Close has begun it gets a few more attempts, then the
// writer reports the loss and stops.
func (s *Store) eventWriter() {
	defer close(s.writerDone)
	var (
		pending  []Event
		flushers []chan error
		failures int
		drained  bool // emitCh is closed and empty
		linger   = time.NewTimer(time.Hour)
	)
	defer linger.Stop()
	add := func(it emitItem) {
		if it.flush != nil {
			flushers = append(flushers, it.flush)
		} else {
			pending = append(pending, it.ev)
		}
	}
	for {
		if len(pending) == 0 && len(flushers) == 0 {
			if drained {
				return
			}
			it, ok := <-s.emitCh
			if !ok {
				return
			}
			add(it)
		}
		// Linger briefly so a storm of logins shares one commit (and one
		// fsync) instead of paying one each; nobody waits on these writes
		// except Flush, which ends the linger at once.
		linger.Reset(eventLinger)
	drain:
		for !drained && len(pending) < maxEventBatch {
			var lingerC <-chan time.Time
			if len(flushers) == 0 && !isClosed(s.closing) {
				lingerC = linger.C
			}
			select {
			case it, ok := <-s.emitCh:
				if !ok {
					drained = true
					break drain
				}
				add(it)
				continue
			default:
			}
			if lingerC == nil {
				break drain
			}
			select {
			case it, ok := <-s.emitCh:
				if !ok {
					drained = true
					break drain
				}
				add(it)
			case <-lingerC:
				break drain
			case <-s.closing:
			}
		}
		if !linger.Stop() {
			select {
			case <-linger.C:
			default:
			}
		}
		var err error
		if len(pending) > 0 {
			err = s.write(func(w *wtxn) error { return w.appendEvents(pending) })
		}
		for _, f := range flushers {
			f <- err
		}
		flushers = flushers[:0]
		if err == nil {
			pending, failures = pending[:0], 0
			continue
		}
		failures++
		closing := isClosed(s.closing)
		s.log.Error("audit events could not be written; retrying", "events", len(pending), "attempt", failures, "error", err)
		if closing && failures > closeRetries || errors.Is(err, ErrClosed) {
			s.lostEvents = fmt.Errorf("%d audit events could not be written: %w", len(pending), err)
			return
		}
		d := min(retryBackoff[0]<<min(failures-1, 10), retryBackoff[1])
		if closing {
			d = retryBackoff[0]
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
		}
	}
}

// eventLinger is how long a batch of login events waits for more before
// it is committed.
const eventLinger = 5 * time.Millisecond

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// appendEvents writes events (Seq assigned from the bucket sequence),
// stamps LastLoginAt for successful logins, and prunes beyond retention.
func (w *wtxn) appendEvents(evs []Event) error {
	b := w.tx.Bucket([]byte(TableEvents))
	var logins map[*User]time.Time // latest successful login per user
	for i := range evs {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		ev := evs[i] // copy: a retried batch gets fresh numbers
		ev.Seq = seq
		if err := w.put(TableEvents, &ev); err != nil {
			return err
		}
		if ev.Login && ev.Outcome == OutcomeSuccess {
			if u := w.loginUser(&ev); u != nil && ev.Time.After(logins[u]) {
				if logins == nil {
					logins = make(map[*User]time.Time)
				}
				logins[u] = ev.Time
			}
		}
	}
	for u, at := range logins {
		if err := w.stampLogin(u, at); err != nil {
			return err
		}
	}
	added := len(evs)
	pruned, err := w.pruneEvents(w.s.eventCount + added)
	if err != nil {
		return err
	}
	w.after = append(w.after, func() { w.s.eventCount += added - pruned })
	return nil
}

// loginUser finds the user of a login event, if it still exists.
func (w *wtxn) loginUser(ev *Event) *User {
	var u *User
	if ev.UserID != "" {
		u, _ = w.first(TableUsers, "id", ev.UserID).(*User)
	} else if ev.Username != "" {
		u, _ = w.first(TableUsers, "username", ev.Username).(*User)
	}
	return u
}

// stampLogin moves the user's LastLoginAt forward to at, without bumping
// UpdatedAt and without notifying subscribers.
func (w *wtxn) stampLogin(u *User, at time.Time) error {
	// Rewriting the user record on every login of a re-authentication
	// storm costs more than the login itself; like AD's
	// lastLogonTimestamp, the stamp is only moved once it is stale. The
	// login events keep the exact times.
	if at.Sub(u.LastLoginAt) < LastLoginGranularity {
		return nil
	}
	c := u.Copy()
	c.LastLoginAt = at
	return w.put(TableUsers, c)
}

// LastLoginGranularity is how stale User.LastLoginAt may get before a
// successful login moves it.
const LastLoginGranularity = time.Minute

// pruneEvents deletes the oldest events beyond the retention.
func (w *wtxn) pruneEvents(count int) (int, error) {
	if w.s.retention <= 0 || count <= w.s.retention {
		return 0, nil
	}
	excess := min(count-w.s.retention, maxPrunePerWrite)
	it, err := w.mem.Get(TableEvents, "id")
	if err != nil {
		return 0, err
	}
	var old []*Event
	for o := it.Next(); o != nil && len(old) < excess; o = it.Next() {
		old = append(old, o.(*Event))
	}
	for _, ev := range old {
		if err := w.del(TableEvents, ev); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// ListEvents returns events matching f in ascending Seq, at most f.Limit
// (0 means 100, capped at 1000), starting after f.After. next is the Seq
// of the last event returned when more match, else 0.
func (s *Store) ListEvents(f EventFilter) ([]Event, uint64, error) {
	limit := normLimit(f.Limit)
	if f.After == math.MaxUint64 {
		return nil, 0, nil
	}
	from := f.After + 1
	txn := s.mem.Txn(false)
	it, err := txn.LowerBound(TableEvents, "id", from)
	if err != nil {
		return nil, 0, err
	}
	var out []Event
	for o := it.Next(); o != nil; o = it.Next() {
		e := o.(*Event)
		if f.UserID != "" && e.UserID != f.UserID ||
			f.Type != "" && e.Type != f.Type ||
			!f.Since.IsZero() && e.Time.Before(f.Since) ||
			!f.Until.IsZero() && !e.Time.Before(f.Until) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil
		}
		out = append(out, *e)
	}
	return out, 0, nil
}
