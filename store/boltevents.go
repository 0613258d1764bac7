package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Events in the embedded journal (schema version 5 on) are stored a
// committed batch to a value of the events bucket, as on PostgreSQL:
//
//	key    the batch's last seq, 8 bytes big-endian
//	value  a checksum frame (record.go) keyed by that key, around the
//	       batch's entries (pgevents.go): seq, length, and the event's
//	       own framed record
//
// A batch holds consecutive seqs, at most maxEventBatch of them, ending
// at its key. Keyed by the last seq, listing the events after seq a is
// one Seek(eventKey(a+1)): the first batch that holds a later event.
//
// Why a value per batch: a value per event cost every login a bbolt Put
// (a cursor seek from the root) and, once retention was full, a cursor
// Delete and Seek to prune one, and the commit spilled and rebalanced a
// B-tree of 100k small keys. That was ~2.7 µs of the ~15 µs of CPU a
// RADIUS login cost (issue 14).
//
// Why a frame around the whole value, although every entry's record has
// its own: the entry headers (seq, length) are then covered by a checksum
// too, so a flipped bit anywhere in the value is caught by arithmetic,
// not by the hope that a damaged length or seq breaks the layout or
// happens to fail the next record's checksum. It costs one CRC-32C pass
// over bytes just written (hardware, a few ns per event). The entries
// keep their own frames, which name the damaged event when the batch's
// checksum fails, keep the value in the layout PostgreSQL rows use, and
// let ListEvents check each record as it does on either backend.

// putEvent adds one event to this transaction's batch; the batch is
// written when it would outgrow a page (batchBytes), and its last part at
// commit.
// v is copied: the caller may reuse it.
func (t *boltTx) putEvent(k, v []byte) error {
	seq := binary.BigEndian.Uint64(k)
	if t.evLast != 0 && seq != t.evLast+1 { // across a split batch too
		return fmt.Errorf("state journal %s: event seq %d does not follow seq %d in one batch", t.path, seq, t.evLast)
	}
	// A value stays within what pruning and the start-up check expect
	// (maxEventBatch), and within a page, however many events a
	// write has.
	if t.evN == maxEventBatch || t.evN > 0 && len(t.evRecs)-t.evStart+eventEntryHeader+len(v) > t.batchBytes {
		if err := t.putBatch(); err != nil {
			return err
		}
	}
	if t.evN == 0 {
		t.evStart = len(t.evRecs)
		t.evRecs = appendFrameHeader(t.evRecs)
	}
	t.evRecs = appendEventEntry(t.evRecs, seq, v)
	t.evLast = seq
	t.evN++
	return nil
}

// A write's events are cut into values that each fit a page with its
// leaf element and key (batchBytes, set per transaction from the file's
// page size), rather than stored as one value. bbolt rewrites a whole
// leaf, with every value in it, whenever one key of the leaf changes, and
// a leaf of up to four values never splits, so with one value per write
// each commit copied (and wrote to the file again) the three batches
// before its own: at a login storm's 20 ms linger, ~700 kB per commit,
// which made the commit cost as much as the per-event values it replaced.
// At a page a value still holds ~16 typical login events, so Puts and
// prunes stay rare. A page, not a round 4 kB: a leaf of n values then
// takes n pages exactly, where 4 kB values left two values in three pages
// and the journal a third bigger (128 MB instead of 96 at 100k users with
// the retention full), which the start-up check then read.
//
// boltLeafOverhead is what a leaf page spends besides a value: its header
// (16 bytes), the value's element (16) and its 8-byte key.
const boltLeafOverhead = 16 + 16 + 8

// boltBatchBytes, when set, replaces the page-sized cut (the tests of
// whole-write batches set it huge).
var boltBatchBytes int

// putBatch writes the value built so far. Every value of a write is cut
// from t.evRecs (a 3-index slice, so later appends never reach it);
// bbolt keeps the values, not copies, until the commit, so the buffer is
// only reused by the next write.
func (t *boltTx) putBatch() error {
	if t.evN == 0 {
		return nil
	}
	k := eventKey(t.evLast)
	v := t.evRecs[t.evStart:len(t.evRecs):len(t.evRecs)]
	sealFrame(k, v)
	t.evN = 0
	return t.wrap(t.eventBucket().Put(k, v))
}

func (t *boltTx) commit() error {
	if err := t.putBatch(); err != nil {
		_ = t.tx.Rollback()
		return err
	}
	err := t.tx.Commit()
	// bbolt has copied the value into its pages (or dropped it with a
	// failed commit): the buffer serves the next write. One that a huge
	// AppendEvents grew is let go.
	if cap(t.evRecs) <= maxKeptBatchBuffer {
		t.j.evBuf = t.evRecs[:0]
	}
	return err
}

// maxKeptBatchBuffer bounds the batch buffer kept between writes.
const maxKeptBatchBuffer = 4 << 20

// pruneEvents deletes the oldest batches while every event in them is
// beyond retention (count, with this transaction's, is how many the
// store holds), once boltPruneDue(retention) events are beyond it: the
// journal keeps at least retention events and fewer than retention plus
// that chunk plus one batch. Nothing is read but the key and the first
// entry's seq of each dropped batch; the batch's size is their difference
// (a batch holds consecutive seqs, checked at start). Pruning therefore
// costs a cursor seek and delete per dropped batch, not per event. limit
// bounds the events dropped in one write (a lowered retention), but one
// batch always goes when it is due.
//
// Why a chunk: bbolt stores a value in its leaf page, and a leaf holds at
// least two values, so deleting the oldest batch rewrote the one or more
// batches beside it; dropping several at once mostly frees whole leaves.
// BenchmarkAppendEventsRetained: 1752 B/event allocated pruning each batch
// when due, 1312 with the default retention's chunk (3125 events).
func (t *boltTx) pruneEvents(count, retention, limit int) (int, error) {
	if retention <= 0 || count-retention < boltPruneDue(retention) {
		return 0, nil
	}
	excess := count - retention
	c := t.eventBucket().Cursor()
	n := 0
	for k, v := c.First(); k != nil; k, v = c.First() {
		size, err := batchSize(k, v)
		if err != nil {
			return n, fmt.Errorf("state journal %s: bucket %s, %s: %w; %s", t.path, TableEvents, batchName(k), err, verifyHint)
		}
		if size > excess-n || n > 0 && n+size > limit {
			break
		}
		if err := c.Delete(); err != nil {
			return n, t.wrap(err)
		}
		n += size
	}
	return n, nil
}

// boltPruneDue is how many events beyond the retention make a prune run:
// a 32nd of the retention (~3% more kept at the default), at most a full
// batch, at least one.
func boltPruneDue(retention int) int { return max(1, min(maxEventBatch, retention/32)) }

// batchSize is the number of events in the batch value v under key k,
// read from the key and the first entry's seq without checking the
// value's checksum (the start-up check did).
func batchSize(k, v []byte) (int, error) {
	if len(k) != 8 {
		return 0, errors.New("the key is not a sequence number")
	}
	if len(v) < recordHeader+eventEntryHeader || v[0] != recordTag {
		return 0, errors.New("the value is not an event batch")
	}
	first, last := binary.BigEndian.Uint64(v[recordHeader:]), binary.BigEndian.Uint64(k)
	if first == 0 || first > last || last-first >= maxEventBatch {
		return 0, fmt.Errorf("its first event, seq %d, does not fit a batch ending at seq %d", first, last)
	}
	return int(last - first + 1), nil
}

// batchName names an events value in messages.
func batchName(k []byte) string { return "batch " + printableKey(TableEvents, k) }

// checkEventBatch checks events value v stored under key k as Open,
// VerifyJournal and MigrateToPostgres do: its checksum frame, its layout
// (consecutive seqs ending at the key, at most maxEventBatch of them),
// and each event's record as checkEventRecord checks one. bad is called
// with each problem: seq names the damaged event, or is 0 for the batch as
// a whole. When the batch's checksum fails, each entry's own checksum
// says which event was altered; if none fails, the damage is in the
// entry headers or the frame, and the batch is named. It returns the
// number of sound events.
func checkEventBatch(k, v []byte, bad func(seq uint64, err error)) int {
	if v == nil {
		bad(0, errors.New("unexpected nested bucket"))
		return 0
	}
	if len(k) != 8 {
		bad(0, errors.New("the key is not a sequence number"))
		return 0
	}
	last := binary.BigEndian.Uint64(k)
	body, ferr := unframeRecord(k, v)
	if ferr != nil {
		if errors.Is(ferr, errUnframed) || len(v) < recordHeader {
			bad(0, ferr)
			return 0
		}
		body = v[recordHeader:] // to find the altered event
	}
	var (
		n, entries int
		want       uint64
		found      bool
	)
	err := eachEventEntry(body, func(seq uint64, rec []byte) (bool, error) {
		if entries > 0 && seq != want {
			return true, fmt.Errorf("event seq %d follows seq %d: a batch holds consecutive events", seq, want-1)
		}
		entries++
		want = seq + 1
		if _, err := decodeRecord(TableEvents, eventKey(seq), rec, true); err != nil {
			bad(seq, err)
			found = true
			return false, nil
		}
		n++
		return false, nil
	})
	if err != nil {
		// The message says where; the caller says it is damage.
		err = errors.New(strings.TrimPrefix(err.Error(), ErrDamaged.Error()+": "))
	}
	switch {
	case ferr != nil && !found:
		if err != nil {
			ferr = fmt.Errorf("%w; its entries do not parse: %v", ferr, err)
		}
		bad(0, ferr)
	case ferr != nil:
		// The altered events are named; a layout error after them is
		// the same damage seen from further on.
	case err != nil:
		bad(0, err)
	case entries == 0:
		bad(0, errors.New("the batch holds no events"))
	case want-1 != last:
		bad(0, fmt.Errorf("it holds events up to seq %d, but its key says %d", want-1, last))
	case entries > maxEventBatch:
		bad(0, fmt.Errorf("it holds %d events, more than a batch may (%d)", entries, maxEventBatch))
	}
	if ferr != nil {
		return 0
	}
	return n
}

// eventDamage is checkEventBatch's first problem as an error for Open.
func eventDamage(k, v []byte) (n int, err error) {
	n = checkEventBatch(k, v, func(seq uint64, e error) {
		if err != nil {
			return
		}
		if seq == 0 {
			err = fmt.Errorf("%s: %w", batchName(k), e)
		} else {
			err = fmt.Errorf("key %s (in %s): %w", printableKey(TableEvents, eventKey(seq)), batchName(k), e)
		}
	})
	return n, err
}

// listEvents reads the batches from the first that holds an event after
// seq after; each batch's checksum is checked before its events are
// handed over. It covers every byte of the records inside, so their own
// checksums (checked at start and by verify) are not computed again: on
// a listing that scans the whole retention, the second pass made it
// slower than it was with a value per event (BenchmarkListEvents
// no-match: 24-32 ms with it, 22-23 ms without, on a shared 2-core VM).
func (j *boltJournal) listEvents(after uint64, fn func(k, v []byte) (bool, error)) error {
	return j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(TableEvents))
		if b == nil {
			return fmt.Errorf("state journal %s: bucket %s is missing", j.path, TableEvents)
		}
		c := b.Cursor()
		for k, v := c.Seek(eventKey(after + 1)); k != nil; k, v = c.Next() {
			body, err := unframeRecord(k, v)
			if err != nil {
				return damaged(j.path, "bucket %s, %s: %v; %s", TableEvents, batchName(k), err, verifyHint)
			}
			stop := false
			err = eachEventEntry(body, func(seq uint64, rec []byte) (bool, error) {
				if seq <= after {
					return false, nil
				}
				if len(rec) < recordHeader || rec[0] != recordTag {
					return true, fmt.Errorf("%w: the record of seq %d has no checksum frame", ErrDamaged, seq)
				}
				var ferr error
				stop, ferr = fn(eventKey(seq), rec[recordHeader:])
				return stop, ferr
			})
			if errors.Is(err, ErrDamaged) {
				return damaged(j.path, "bucket %s, %s: %v; %s", TableEvents, batchName(k), err, verifyHint)
			}
			if err != nil || stop {
				return err
			}
		}
		return nil
	})
}

// eventValueBytes is the size events values are cut at in db: a page,
// less what the leaf spends beside the value (see boltLeafOverhead).
func eventValueBytes(db *bolt.DB) int {
	if boltBatchBytes != 0 {
		return boltBatchBytes
	}
	return db.Info().PageSize - boltLeafOverhead
}

// migrateV4toV5 regroups the events bucket's per-event records into
// values cut as the writer cuts them (eventValueBytes; a gap in the seqs
// starts a new one), in order, keeping the bucket's sequence. Each
// record is checked as a start of version 4 would check it: damage
// aborts the upgrade and leaves the file as it was.
func migrateV4toV5(tx *bolt.Tx) error {
	b := tx.Bucket([]byte(TableEvents))
	if b == nil {
		return nil // loading reports a missing table bucket as damage
	}
	seq := b.Sequence()
	limit := eventValueBytes(tx.DB())
	type batch struct {
		last uint64
		n    int
		val  []byte
	}
	var batches []batch
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("bucket %s, key %q: not a sequence number", TableEvents, k)
		}
		if _, err := decodeRecord(TableEvents, k, v, true); err != nil {
			return fmt.Errorf("bucket %s, key %s: %w", TableEvents, printableKey(TableEvents, k), err)
		}
		s := binary.BigEndian.Uint64(k)
		if n := len(batches); n == 0 || batches[n-1].n == maxEventBatch || batches[n-1].last+1 != s ||
			len(batches[n-1].val)+eventEntryHeader+len(v) > limit {
			batches = append(batches, batch{val: appendFrameHeader(nil)})
		}
		bt := &batches[len(batches)-1]
		bt.val = appendEventEntry(bt.val, s, v) // a copy: the pages are freed below
		bt.last, bt.n = s, bt.n+1
		return nil
	})
	if err != nil {
		return err
	}
	// A fresh bucket rather than a delete per record: the old pages are
	// freed in one go.
	if err := tx.DeleteBucket([]byte(TableEvents)); err != nil {
		return err
	}
	if b, err = tx.CreateBucket([]byte(TableEvents)); err != nil {
		return err
	}
	b.FillPercent = 1.0
	for _, bt := range batches {
		k := eventKey(bt.last)
		sealFrame(k, bt.val)
		if err := b.Put(k, bt.val); err != nil {
			return err
		}
	}
	return b.SetSequence(seq)
}
