package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// threeBatches is a closed journal holding events 1-5, 6-10 and 11-15,
// a committed batch each.
func threeBatches(t *testing.T) []byte {
	t.Helper()
	src := t.TempDir()
	s := openAt(t, src, Options{})
	for b := range 3 {
		evs := make([]Event, 5)
		for i := range evs {
			evs[i] = Event{Type: "radius_auth", UserID: fmt.Sprintf("u%d", b*5+i+1), Outcome: OutcomeSuccess, Login: true}
		}
		if err := s.AppendEvents(evs...); err != nil {
			t.Fatal(err)
		}
	}
	return closedJournal(t, s, src)
}

// entryAt is the offset in batch value v of the entry of seq.
func entryAt(t *testing.T, v []byte, seq uint64) int {
	t.Helper()
	off := recordHeader
	for off < len(v) {
		if binary.BigEndian.Uint64(v[off:]) == seq {
			return off
		}
		off += eventEntryHeader + int(binary.BigEndian.Uint32(v[off+8:]))
	}
	t.Fatalf("no entry of seq %d", seq)
	return 0
}

// TestEventBatchDamageIsNamed: damage anywhere in a batch value (an
// event's record, an entry header, the batch's own checksum, a cut-short
// entry) is refused at Open and named by VerifyJournal: the damaged
// event's seq with its batch when an event's own checksum can tell, else
// the batch. Structural damage under a valid checksum (a writer's bug, a
// deliberate rewrite) is caught by the layout checks.
func TestEventBatchDamageIsNamed(t *testing.T) {
	orig := threeBatches(t)
	reseal := func(v []byte) []byte { sealFrame(eventKey(10), v); return v }
	cases := []struct {
		name     string
		edit     func(t *testing.T, v []byte) []byte
		key      string // VerifyJournal's DamagedRecord.Key
		open     string // Open's error mentions
		problem  string // VerifyJournal's problem mentions
		moreKeys int    // further damaged records reported
	}{
		{"a byte of an event's record", func(t *testing.T, v []byte) []byte {
			i := bytes.Index(v, []byte(`"user_id":"u8"`))
			v[i+len(`"user_id":"u`)] ^= 0x01
			return v
		}, "seq 8", "bucket events, key seq 8 (in batch seq 10): checksum mismatch", "in batch seq 10: checksum mismatch", 0},
		{"an entry's seq", func(t *testing.T, v []byte) []byte {
			v[entryAt(t, v, 7)+7] ^= 0x40
			return v
		}, "batch seq 10", "bucket events, batch seq 10: checksum mismatch", "checksum mismatch", 0},
		{"an entry's length", func(t *testing.T, v []byte) []byte {
			v[entryAt(t, v, 7)+10] ^= 0x01
			return v
		}, "seq 7", "bucket events, key seq 7 (in batch seq 10): checksum mismatch", "in batch seq 10: checksum mismatch", 0},
		{"the batch's checksum", func(t *testing.T, v []byte) []byte {
			v[2] ^= 0x80
			return v
		}, "batch seq 10", "bucket events, batch seq 10: checksum mismatch", "checksum mismatch", 0},
		{"the last entry cut short", func(t *testing.T, v []byte) []byte {
			return v[:len(v)-7]
		}, "batch seq 10", "bucket events, batch seq 10: checksum mismatch", "10 says", 0},
		{"the last entry cut short, checksum recomputed", func(t *testing.T, v []byte) []byte {
			return reseal(v[:len(v)-7])
		}, "batch seq 10", "bucket events, batch seq 10: the event batch entry of seq 10 says", "entry of seq 10 says", 0},
		{"an entry header cut short, checksum recomputed", func(t *testing.T, v []byte) []byte {
			return reseal(v[:entryAt(t, v, 10)+5])
		}, "batch seq 10", "ends inside an entry header", "ends inside an entry header", 0},
		{"an event left out, checksum recomputed", func(t *testing.T, v []byte) []byte {
			a, b := entryAt(t, v, 7), entryAt(t, v, 8)
			return reseal(append(v[:a:a], v[b:]...))
		}, "batch seq 10", "bucket events, batch seq 10: event seq 8 follows seq 6", "follows seq 6", 0},
		{"the last event left out, checksum recomputed", func(t *testing.T, v []byte) []byte {
			return reseal(v[:entryAt(t, v, 10)])
		}, "batch seq 10", "holds events up to seq 9, but its key says 10", "up to seq 9", 0},
		{"no frame", func(t *testing.T, v []byte) []byte {
			return v[recordHeader:]
		}, "batch seq 10", "bucket events, batch seq 10: it has no checksum frame", "no checksum frame", 0},
		{"two events' records", func(t *testing.T, v []byte) []byte {
			for _, u := range []string{"u6", "u9"} {
				i := bytes.Index(v, []byte(`"user_id":"`+u+`"`))
				v[i+len(`"user_id":"`)] ^= 0x20
			}
			return v
		}, "seq 6", "bucket events, key seq 6 (in batch seq 10): checksum mismatch", "in batch seq 10: checksum mismatch", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := journalCopy(t, orig)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(TableEvents))
				return b.Put(eventKey(10), tc.edit(t, bytes.Clone(b.Get(eventKey(10)))))
			})
			sum := fileHash(t, path)
			_, err := Open(dir, Options{Logger: quiet})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.open) || !strings.Contains(err.Error(), "gatewayd store verify") {
				t.Errorf("Open: %v\nwant ErrDamaged mentioning %q", err, tc.open)
			}
			rep, err := VerifyJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fileHash(t, path) != sum {
				t.Error("the damaged journal was modified")
			}
			if len(rep.Problems) != 0 || len(rep.Damaged) != 1+tc.moreKeys || rep.Damaged[0].Bucket != TableEvents ||
				rep.Damaged[0].Key != tc.key || !strings.Contains(rep.Damaged[0].Problem, tc.problem) {
				t.Fatalf("VerifyJournal: problems %q, damaged %+v\nwant %q: ...%q...", rep.Problems, rep.Damaged, tc.key, tc.problem)
			}
			t.Logf("verify: %s %s: %s", rep.Damaged[0].Bucket, rep.Damaged[0].Key, rep.Damaged[0].Problem)
		})
	}
}

// TestEventRetentionKeepsWholeBatches is a property test of pruning: for
// random retentions and batch sizes, after every write the journal holds
// the newest events, consecutive, at least the retention of them (once
// that many were written), and fewer than the retention plus the prune
// chunk, or else fewer than the retention plus its oldest batch; the
// count the store keeps agrees, and survives a restart.
func TestEventRetentionKeepsWholeBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 14))
	for round := range 6 {
		retention := 1 + rng.IntN(600) // a prune chunk of 1 to 18
		t.Run(fmt.Sprintf("retention %d", retention), func(t *testing.T) {
			dir := t.TempDir()
			s := openAt(t, dir, Options{EventRetention: retention})
			written := 0
			check := func(s *Store) {
				t.Helper()
				var seqs []uint64
				for _, e := range allEvents(t, s) {
					seqs = append(seqs, e.Seq)
				}
				n := len(seqs)
				if n != s.eventCount || n == 0 || seqs[n-1] != uint64(written) || seqs[0] != uint64(written-n+1) {
					t.Fatalf("after %d events: listed %d (%v...), count %d", written, n, seqs[:min(n, 3)], s.eventCount)
				}
				var oldest int
				if err := s.db.View(func(tx *bolt.Tx) error {
					k, v := tx.Bucket([]byte(TableEvents)).Cursor().First()
					var err error
					oldest, err = batchSize(k, v)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				// Either no prune was due, or the last one kept only the
				// batch holding the retention's oldest event.
				if due := boltPruneDue(retention); n < min(written, retention) || n >= retention+due && n-oldest >= retention {
					t.Fatalf("after %d events at retention %d (due %d): %d kept, the oldest batch holds %d", written, retention, due, n, oldest)
				}
			}
			for range 40 {
				evs := make([]Event, 1+rng.IntN(2*retention/(1+round%3)+1))
				for i := range evs {
					evs[i] = Event{Type: "t"}
				}
				if rng.IntN(4) == 0 {
					for _, ev := range evs {
						s.Emit(ev)
					}
					if err := s.Flush(t.Context()); err != nil {
						t.Fatal(err)
					}
				} else if err := s.AppendEvents(evs...); err != nil {
					t.Fatal(err)
				}
				written += len(evs)
				check(s)
			}
			if err := s.Verify(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openAt(t, dir, Options{EventRetention: retention})
			defer s.Close()
			check(s)
		})
	}
}

// TestEventPruneLimit: a retention lowered a lot is reached over several
// writes, maxPrunePerWrite events (rounded to whole batches) at a time.
func TestEventPruneLimit(t *testing.T) {
	old := maxPrunePerWrite
	maxPrunePerWrite = 25
	defer func() { maxPrunePerWrite = old }()
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	evs := make([]Event, 10)
	for i := range evs {
		evs[i] = Event{Type: "t"}
	}
	for range 20 {
		if err := s.AppendEvents(evs...); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openAt(t, dir, Options{EventRetention: 5})
	defer s.Close()
	for i, want := range []int{201 - 20, 202 - 40, 203 - 60} {
		if err := s.AppendEvents(Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
		if s.eventCount != want {
			t.Errorf("write %d: %d events kept, want %d", i+1, s.eventCount, want)
		}
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
}

// allEvents lists every event of s.
func allEvents(t *testing.T, s *Store) []Event {
	t.Helper()
	var out []Event
	for f := (EventFilter{Limit: 1000}); ; {
		evs, next, err := s.ListEvents(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if next == 0 {
			return out
		}
		f.After = next
	}
}

// TestMigrationFromV4: a schema-4 journal (a value per event) is
// regrouped into values of consecutive events cut as the writer cuts
// them (a page); every event lists as before, the retention count and the
// sequence carry on, and a gap in the seqs starts a new batch.
func TestMigrationFromV4(t *testing.T) {
	for _, gap := range []bool{false, true} {
		t.Run(fmt.Sprintf("gap=%v", gap), func(t *testing.T) {
			dir := t.TempDir()
			s := openAt(t, dir, Options{})
			populate(t, s, 10)
			base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
			for i, n := range []int{1, 700, 1500, 3} {
				evs := make([]Event, n)
				for j := range evs {
					evs[j] = Event{Type: "radius_auth", UserID: fmt.Sprintf("u%d", j%7), Detail: fmt.Sprint(i, "/", j),
						Outcome: OutcomeSuccess, Login: true, Time: base.Add(time.Duration(j) * time.Second)}
				}
				if err := s.AppendEvents(evs...); err != nil {
					t.Fatal(err)
				}
			}
			before, state := allEvents(t, s), dump(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, journalFile)
			rawUpdate(t, path, func(tx *bolt.Tx) error { return eventsAsV4(t, tx) })
			if gap { // as if seq 900 had never been written
				rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte(TableEvents)).Delete(eventKey(900)) })
				before = append(before[:899:899], before[900:]...)
			}
			if rep, err := VerifyJournal(dir); err != nil || !rep.OK() || rep.SchemaVersion != 4 {
				t.Fatalf("v4 journal report: %+v, %v", rep, err)
			}

			s = openAt(t, dir, Options{})
			if got := allEvents(t, s); !reflect.DeepEqual(got, before) {
				t.Fatalf("%d events after the upgrade, %d before (or they differ)", len(got), len(before))
			}
			if got := dump(t, s); got != state && !gap { // the dump lists the events too
				t.Errorf("state differs after the upgrade")
			}
			if s.eventCount != len(before) {
				t.Errorf("count %d, want %d", s.eventCount, len(before))
			}
			if err := s.Verify(); err != nil {
				t.Error(err)
			}
			if err := s.AppendEvents(Event{Type: "t"}); err != nil {
				t.Fatal(err)
			}
			last := before[len(before)-1].Seq
			if evs, _, _ := s.ListEvents(EventFilter{After: last}); len(evs) != 1 || evs[0].Seq != last+1 {
				t.Errorf("the next event after the upgrade: %+v", evs)
			}
			limit, values, want := eventValueBytes(s.db), 0, uint64(1)
			s.db.View(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(TableEvents)).ForEach(func(k, v []byte) error {
					values++
					n, err := batchSize(k, v)
					if err != nil {
						t.Errorf("value %x: %v", k, err)
						return nil
					}
					first := binary.BigEndian.Uint64(k) - uint64(n) + 1
					if gap && want == 900 {
						want = 901 // the gap ends the value before it
					}
					if first != want || n > 1 && len(v) > limit {
						t.Errorf("value %x holds %d events from seq %d in %d bytes; want it from seq %d, within %d bytes", k, n, first, len(v), want, limit)
					}
					want += uint64(n)
					return nil
				})
			})
			if want != last+2 || values < int(last)/64 { // a page holds far fewer than 64 of these events
				t.Errorf("%d values hold events up to seq %d, want up to %d in page-sized values", values, want-1, last+1)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if rep, err := VerifyJournal(dir); err != nil || !rep.OK() || rep.SchemaVersion != schemaVersion || rep.Records < len(before) {
				t.Fatalf("after the upgrade: %+v, %v", rep, err)
			}
		})
	}
}

// TestMigrationFromV4RefusesDamage: a damaged v4 event record stops the
// upgrade, which leaves the file as it was, naming the record.
func TestMigrationFromV4RefusesDamage(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	for range 5 {
		if err := s.AppendEvents(Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, journalFile)
	rawUpdate(t, path, func(tx *bolt.Tx) error { return eventsAsV4(t, tx) })
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(TableEvents))
		v := bytes.Clone(b.Get(eventKey(3)))
		v[len(v)-3] ^= 0x01
		return b.Put(eventKey(3), v)
	})
	sum := fileHash(t, path)
	_, err := Open(dir, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "bucket events, key seq 3") || !strings.Contains(err.Error(), "left unchanged") {
		t.Errorf("Open: %v", err)
	}
	if fileHash(t, path) != sum {
		t.Error("a failed upgrade modified the journal")
	}
}

// TestEventBatchDamageWhileOpen: a listing is served from disk, so damage
// after the start is caught by it (the batch named) and by Verify (the
// event and its batch named), and nothing altered is listed.
func TestEventBatchDamageWhileOpen(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	defer s.Close()
	evs := make([]Event, 40)
	for i := range evs {
		evs[i] = Event{Type: "radius_auth", UserID: fmt.Sprintf("user-%02d", i+1), Outcome: OutcomeSuccess}
	}
	if err := s.AppendEvents(evs[:20]...); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(evs[20:]...); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, journalFile)
	off, _ := liveMarker(t, path, []byte(`"user_id":"user-31"`))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), int64(off+len(`"user_id":"user-3`))); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if got, _, err := s.ListEvents(EventFilter{After: 10, Limit: 5}); err != nil || len(got) != 5 || got[0].Seq != 11 {
		t.Errorf("the sound batch: %d events, %v", len(got), err)
	}
	for _, f := range []EventFilter{{After: 15}, {After: 25}, {UserID: "user-01"}} {
		got, _, err := s.ListEvents(f)
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "bucket events, batch seq 40: checksum mismatch") {
			t.Errorf("ListEvents(%+v): %d events, %v", f, len(got), err)
		}
	}
	err = s.Verify()
	if err == nil || !strings.Contains(err.Error(), "events key seq 31 (in batch seq 40): checksum mismatch") {
		t.Errorf("Verify: %v", err)
	}
}

// TestEventWriteCutIntoValues: a write's events are stored as values of
// a page (bbolt rewrites a whole leaf, so one value per
// write made every commit copy the batches before it): each value holds
// consecutive events, is no bigger than the bound unless it holds a
// single event, and the listing and a restart see every event in order.
func TestEventWriteCutIntoValues(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{EventRetention: -1})
	bound := eventValueBytes(s.db)
	evs := make([]Event, 3000)
	for i := range evs {
		evs[i] = Event{Type: EventRADIUSAuth, Username: fmt.Sprintf("user%d", i), Outcome: OutcomeSuccess, Login: true}
	}
	evs[1234].Detail = strings.Repeat("x", 3*bound) // bigger than a value on its own
	if err := s.AppendEvents(evs...); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		values, want := 0, uint64(1)
		if err := s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(TableEvents)).ForEach(func(k, v []byte) error {
				values++
				n, err := batchSize(k, v)
				if err != nil {
					return err
				}
				if first := binary.BigEndian.Uint64(k) - uint64(n) + 1; first != want {
					return fmt.Errorf("value %s starts at seq %d, want %d", printableKey(TableEvents, k), first, want)
				}
				if n > 1 && len(v) > bound {
					return fmt.Errorf("value %s holds %d events in %d bytes, over the %d-byte bound", printableKey(TableEvents, k), n, len(v), bound)
				}
				want += uint64(n)
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if want != 3001 || values < 3000*100/bound {
			t.Fatalf("%d values hold events up to seq %d, want 3000 events in many values", values, want-1)
		}
		got := allEvents(t, s)
		if len(got) != len(evs) {
			t.Fatalf("listed %d events, want %d", len(got), len(evs))
		}
		for i := range got {
			if got[i].Seq != uint64(i+1) || got[i].Username != evs[i].Username || got[i].Detail != evs[i].Detail {
				t.Fatalf("event %d listed as %+v", i+1, got[i])
			}
		}
		if err := s.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, Options{EventRetention: -1})
	defer s.Close()
	check(s)
}
