package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

const (
	// emitQueueSize bounds events waiting for the writer; Emit blocks
	// (never drops) when it is full.
	emitQueueSize = 8192
	// defaultPGEventQueue bounds them on the PostgreSQL backend, where
	// Emit drops (counted, logged) rather than block a login while the
	// database is away: a minute and a half of 1000 logins/s.
	defaultPGEventQueue = 100000
	// maxEventBatch caps one group commit (a retried one included).
	maxEventBatch = 4096
	// closeRetries is how often Close retries a failing final batch.
	closeRetries = 3
)

// maxPrunePerWrite bounds the events one write prunes when the retention
// is lowered a lot (whole batches: one more batch may go); the rest go
// with the next writes. A variable for tests.
var maxPrunePerWrite = 50000

// retryBackoff is the writer's wait after a failed batch (doubling).
var retryBackoff = [2]time.Duration{50 * time.Millisecond, 5 * time.Second}

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

// emitQueue holds emitted events until the writer takes them. Emit wakes
// the writer only when the queue stops being empty (or gets half full),
// so a storm of logins wakes it once per commit rather than once per
// login: waking an idle goroutine costs the login a futex call, which at
// one LDAP connection was a fifth of a warm bind.
type emitQueue struct {
	mu       sync.Mutex
	space    sync.Cond // broadcast when the writer takes events or stops
	events   []Event
	flushers []chan error
	closed   bool          // Close began, or the writer stopped: nothing more is accepted
	wake     chan struct{} // capacity 1
	// limit is the queue's bound (emitQueueSize unless the backend sets
	// one); with dropWhenFull, Emit drops beyond it instead of waiting.
	limit        int
	dropWhenFull bool
	dropped      uint64    // guarded by mu
	dropLogged   time.Time // guarded by mu
}

func (q *emitQueue) init() {
	q.space.L = &q.mu
	q.wake = make(chan struct{}, 1)
	q.limit = emitQueueSize
}

// DroppedEvents is how many login events Emit dropped because the queue
// was full while the database was unreachable (PostgreSQL backend only;
// the embedded store never drops).
func (s *Store) DroppedEvents() uint64 {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return s.q.dropped
}

func (q *emitQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// urgent says the writer should stop lingering: someone waits on a
// flush, the queue is filling, or the store is closing.
func (q *emitQueue) urgent() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.flushers) > 0 || len(q.events) >= emitQueueSize/2 || q.closed
}

// queued is how many events wait for the writer.
func (q *emitQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
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
	q := &s.q
	q.mu.Lock()
	for len(q.events) >= q.limit && !q.closed {
		if q.dropWhenFull {
			q.dropped++
			if now := time.Now(); now.Sub(q.dropLogged) >= 10*time.Second {
				q.dropLogged = now
				s.log.Error("audit event queue is full while the database is unreachable; login events are being dropped",
					"queued", len(q.events), "dropped_total", q.dropped, "type", ev.Type)
			}
			q.mu.Unlock()
			return
		}
		q.space.Wait()
	}
	if q.closed {
		q.mu.Unlock()
		s.log.Error("audit event emitted after the store was closed; it is lost",
			"type", ev.Type, "user_id", ev.UserID, "outcome", ev.Outcome)
		return
	}
	q.events = append(q.events, ev)
	n := len(q.events)
	q.mu.Unlock()
	if n == 1 || n == emitQueueSize/2 {
		q.signal()
	}
}

// Flush returns once every event emitted before the call is durable, or
// with the writer's error if the batch holding them failed (the writer
// keeps retrying it), or ctx's error. After Close it returns Close's
// verdict on the queued events.
func (s *Store) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	q := &s.q
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		select {
		case <-s.writerDone:
			return s.lostEvents
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.flushers = append(q.flushers, done)
	q.mu.Unlock()
	q.signal()
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
	q := &s.q
	var (
		pending  []Event
		failures int
		linger   = time.NewTimer(time.Hour)
	)
	linger.Stop()
	for {
		q.mu.Lock()
		idle := len(pending) == 0 && len(q.events) == 0 && len(q.flushers) == 0
		closed := q.closed
		q.mu.Unlock()
		if idle {
			if closed {
				s.stopWriter(0, nil)
				return
			}
			<-q.wake // Close signals too
			continue
		}
		// Linger briefly so a storm of logins shares one commit (and one
		// fsync) instead of paying one each; nobody waits on these writes
		// except Flush, which ends the linger at once.
		if !closed && failures == 0 && !q.urgent() {
			linger.Reset(eventLinger)
		wait:
			for {
				select {
				case <-linger.C:
					break wait
				case <-q.wake:
					if q.urgent() {
						linger.Stop()
						break wait
					}
				}
			}
		}
		q.mu.Lock()
		take := min(len(q.events), maxEventBatch-len(pending))
		switch {
		case len(pending) == 0 && take == len(q.events):
			pending, q.events = q.events, pending
		case take > 0:
			pending = append(pending, q.events[:take]...)
			q.events = q.events[:copy(q.events, q.events[take:])]
		}
		// A flush is answered by the commit that holds every event
		// emitted before it.
		var flushers []chan error
		if len(q.events) == 0 {
			flushers, q.flushers = q.flushers, nil
		}
		q.space.Broadcast()
		q.mu.Unlock()

		var err error
		if len(pending) > 0 {
			err = s.write(func(w *wtxn) error { return w.appendEvents(pending) })
		}
		for _, f := range flushers {
			f <- err
		}
		if err == nil {
			if failures > 0 {
				s.health.noteBatch(nil, 0)
			}
			clear(pending) // the events' strings are garbage now
			pending, failures = pending[:0], 0
			continue
		}
		failures++
		s.health.noteBatch(err, failures)
		closing := isClosed(s.closing)
		s.log.Error("audit events could not be written; retrying", "events", len(pending), "attempt", failures, "error", err)
		if closing && failures > closeRetries || errors.Is(err, ErrClosed) {
			s.stopWriter(len(pending), err)
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

// stopWriter marks the writer stopped; lost events (the failed batch and
// whatever is still queued) become Close's error, and waiting flushes and
// Emits are released.
func (s *Store) stopWriter(failed int, err error) {
	q := &s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if lost := failed + len(q.events); lost > 0 {
		s.lostEvents = fmt.Errorf("%d audit events could not be written: %w", lost, err)
		if err == nil {
			s.lostEvents = fmt.Errorf("%d audit events could not be written", lost)
		}
	}
	q.events = nil
	for _, f := range q.flushers {
		f <- ErrClosed
	}
	q.flushers = nil
	q.space.Broadcast()
}

// eventLinger is how long a batch of login events waits for more before
// it is committed: the longest a crash can lose events for. At one LDAP
// connection, 5 ms meant an fsync per ~35 events, and its kernel time
// stole the core the client needed (bench/ldapload: 7.5k binds/s at
// 5 ms, 7.8-8.4k at 20 ms).
const eventLinger = 20 * time.Millisecond

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
// Events live only in the journal (see ListEvents), not in memdb: at
// 100k events, memdb's copy and its index were ~57 MB of live heap, and
// each login paid a copy-on-write radix insert.
//
// This is the cost every login pays (issue 14), so it is written for it:
// each record is encoded by appendEventJSON straight into one reused
// buffer, framed there and handed to the journal, which copies it into
// the batch it stores as one value (or one row); the sequence is moved
// once per batch, the login stamps are coalesced per user before memdb
// is asked, and pruning drops whole old batches.
func (w *wtxn) appendEvents(evs []Event) error {
	first := w.tx.eventSeq() + 1
	var (
		buf    []byte
		logins loginStamps
	)
	for i := range evs {
		ev := &evs[i]
		seq := first + uint64(i)
		if need := eventRecordSize(ev); cap(buf) < need {
			buf = make([]byte, 0, max(eventBufSize, need))
		}
		// The key goes in the buffer too: on the stack it would escape
		// into the checksum and be allocated anyway.
		buf = binary.BigEndian.AppendUint64(buf[:0], seq)
		buf = appendFrameHeader(buf)
		var ok bool
		if buf, ok = appendEventJSON(buf, ev, seq); !ok {
			if _, err := encodeEvent(ev, seq); err != nil {
				return err // json.Marshal's word on why
			}
			return fmt.Errorf("encoding %s record: the event cannot be written", TableEvents)
		}
		k, v := buf[:8:8], buf[8:]
		sealFrame(k, v)
		if err := w.tx.putEvent(k, v); err != nil {
			return err
		}
		if ev.Login && ev.Outcome == OutcomeSuccess {
			logins.note(ev)
		}
	}
	if err := w.tx.setEventSeq(first - 1 + uint64(len(evs))); err != nil {
		return err
	}
	if err := logins.stamp(w); err != nil {
		return err
	}
	added := len(evs)
	pruned, err := w.tx.pruneEvents(w.s.eventCount+added, w.s.retention, maxPrunePerWrite)
	if err != nil {
		return err
	}
	w.after = append(w.after, func() { w.s.eventCount += added - pruned })
	return nil
}

// eventBufSize is the buffer one record is encoded in: room for any
// ordinary login event (a longer one gets a bigger buffer).
const eventBufSize = 1 << 10

// eventRecordSize is a framed record's size when nothing in it needs
// escaping (an escape makes the append grow the buffer, which is fine).
func eventRecordSize(ev *Event) int {
	return 8 + recordHeader + len(`{"seq":18446744073709551615,"time":"2006-01-02T15:04:05.999999999-07:00"`) +
		len(`,"type":""`) + len(ev.Type) + len(`,"login":true}`) +
		len(ev.UserID) + len(ev.Username) + len(ev.GroupID) + len(ev.Group) + len(ev.Outcome) +
		len(ev.Reason) + len(ev.Source) + len(ev.Directory) + len(ev.Detail) + len(ev.Method) +
		10*len(`,"directory":""`)
}

// loginStamps collects the latest successful login per user reference
// in a batch, so a storm of one user's logins asks memdb once per batch,
// not once per login.
type loginStamps map[loginRef]time.Time

// loginRef is how a login event names its user: by id, else by name.
type loginRef struct{ id, username string }

func (l *loginStamps) note(ev *Event) {
	ref := loginRef{id: ev.UserID}
	if ref.id == "" {
		ref.username = ev.Username
		if ref.username == "" {
			return
		}
	}
	if *l == nil {
		*l = make(loginStamps)
	}
	if ev.Time.After((*l)[ref]) {
		(*l)[ref] = ev.Time
	}
}

// stamp moves each user's LastLoginAt to their latest login of the
// batch (two references may name one user).
func (l loginStamps) stamp(w *wtxn) error {
	latest := make(map[*User]time.Time, len(l))
	for ref, at := range l {
		if u := w.loginUser(ref); u != nil && at.After(latest[u]) {
			latest[u] = at
		}
	}
	for u, at := range latest {
		if err := w.stampLogin(u, at); err != nil {
			return err
		}
	}
	return nil
}

// encodeEvent is the journal record of ev numbered seq, by json.Marshal
// (appendEventJSON is the writer's; this is its reference and gives the
// error for an event it declines). ev itself is not changed: a retried
// batch gets fresh numbers.
func encodeEvent(ev *Event, seq uint64) ([]byte, error) {
	c := *ev
	c.Seq = seq
	data, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encoding %s record: %w", TableEvents, err)
	}
	return data, nil
}

// loginUser finds the user a login event names, if it still exists.
func (w *wtxn) loginUser(ref loginRef) *User {
	var u *User
	if ref.id != "" {
		u, _ = w.first(TableUsers, "id", ref.id).(*User)
	} else if ref.username != "" {
		u = w.userRead().byUsername(ref.username)
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

// checkEventRecord is the start-up check of one events record: valid
// JSON holding a non-zero seq equal to its key. It does not build the
// Event: events are not loaded into memory, and at the default retention
// a full decode of each was ~0.5 s of a 100k-user start. A record that is
// valid JSON but has a field of the wrong type passes here and makes
// ListEvents fail with the key named (Verify and the listing decode fully).
func checkEventRecord(k, v []byte) error {
	if !json.Valid(v) {
		var x struct{}
		return fmt.Errorf("value does not decode: %v", json.Unmarshal(v, &x))
	}
	seq, ok := leadingSeq(v)
	if !ok { // not as json.Marshal writes it: decode the field
		var x struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("value does not decode: %v", err)
		}
		seq = x.Seq
	}
	if seq == 0 {
		return errors.New("event without sequence number")
	}
	if want := eventKey(seq); !bytes.Equal(k, want) {
		return fmt.Errorf("the record inside belongs to key %s", printableKey(TableEvents, want))
	}
	return nil
}

// leadingSeq reads N from a record that starts {"seq":N, (json.Marshal
// writes Event's fields in order).
func leadingSeq(v []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(v, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(rest) && i < 20 && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i == len(rest) || rest[i] != ',' && rest[i] != '}' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	return n, err == nil
}

// ListEvents returns events matching f in ascending Seq, at most f.Limit
// (0 means 100, capped at 1000), starting after f.After. next is the Seq
// of the last event returned when more match, else 0.
//
// Events are read from the journal in one read transaction (a consistent
// view: only committed events, as before). Records that cannot match a
// string filter are skipped without decoding them (see eventPrefilter).
func (s *Store) ListEvents(f EventFilter) ([]Event, uint64, error) {
	limit := normLimit(f.Limit)
	if f.After == math.MaxUint64 {
		return nil, 0, nil
	}
	if s.closed.Load() {
		return nil, 0, ErrClosed
	}
	pre := newEventPrefilter(&f)
	var (
		out  []Event
		next uint64
	)
	// Checksums were checked at start and by verify; the journal checks
	// them again because a listing is served from disk, not from the
	// loaded copy.
	err := s.j.listEvents(f.After, func(k, v []byte) (bool, error) {
		if !pre.mayMatch(v) {
			return false, nil
		}
		o, err := decoders[TableEvents](v)
		if err != nil {
			return true, fmt.Errorf("state journal %s: bucket %s, key %s: value does not decode: %w",
				s.j.where(), TableEvents, printableKey(TableEvents, k), err)
		}
		e := o.(*Event)
		if !f.match(e) {
			return false, nil
		}
		if len(out) == limit {
			next = out[len(out)-1].Seq
			return true, nil
		}
		out = append(out, *e)
		return false, nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, 0, ErrClosed
	}
	if err != nil {
		return nil, 0, err
	}
	return out, next, nil
}

// eventPrefilter rejects journal records that cannot match a filter
// without decoding them: a record whose user, group, type, directory,
// outcome or reason differs cannot contain that field as json.Marshal
// writes it ("user_id":"u1"); inside another string the quotes would be
// escaped. It only says "maybe": a record that passes is decoded and
// checked by EventFilter.match. A value json.Marshal escapes (quotes,
// backslashes, control characters, <, >, &, U+2028/9) is left to match
// alone, since another encoder might have escaped it differently.
//
// Since and Until are checked against the time at the record's head, as
// json.Marshal writes it ({"seq":N,"time":"<RFC 3339>", ...); a record
// laid out otherwise is decoded. Without this a time window that matches
// nothing decoded the whole retention (~450 ms at 100k events).
type eventPrefilter struct {
	needles      [][]byte
	since, until time.Time
}

func newEventPrefilter(f *EventFilter) eventPrefilter {
	p := eventPrefilter{since: f.Since, until: f.Until}
	for _, fv := range []struct{ key, val string }{
		{"user_id", f.UserID}, {"group_id", f.GroupID}, {"type", string(f.Type)},
		{"directory", f.Directory}, {"outcome", f.Outcome}, {"reason", f.Reason},
	} {
		if fv.val == "" {
			continue
		}
		v, err := json.Marshal(fv.val)
		if err != nil || bytes.IndexByte(v, '\\') >= 0 {
			continue
		}
		p.needles = append(p.needles, append([]byte(`"`+fv.key+`":`), v...))
	}
	return p
}

func (p *eventPrefilter) mayMatch(record []byte) bool {
	for _, n := range p.needles {
		if !bytes.Contains(record, n) {
			return false
		}
	}
	if p.since.IsZero() && p.until.IsZero() {
		return true
	}
	t, ok := headTime(record)
	return !ok || (p.since.IsZero() || !t.Before(p.since)) && (p.until.IsZero() || t.Before(p.until))
}

// headTime reads the time of a record that starts {"seq":N,"time":"...".
func headTime(v []byte) (time.Time, bool) {
	rest, ok := bytes.CutPrefix(v, []byte(`{"seq":`))
	if !ok {
		return time.Time{}, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"time":"`)); !ok {
		return time.Time{}, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:end]))
	return t, err == nil
}

// match reports whether e passes every set field of f but the cursor
// and the limit.
func (f *EventFilter) match(e *Event) bool {
	return (f.UserID == "" || e.UserID == f.UserID) &&
		(f.GroupID == "" || e.GroupID == f.GroupID) &&
		(f.Type == "" || e.Type == f.Type) &&
		(f.Directory == "" || e.Directory == f.Directory) &&
		(f.Outcome == "" || e.Outcome == f.Outcome) &&
		(f.Reason == "" || e.Reason == f.Reason) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}
