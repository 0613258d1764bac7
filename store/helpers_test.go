package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a deterministic clock: each call advances one millisecond.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func openAt(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

// newStore opens a store in a fresh dir, closed (and verified) at the end.
func newStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s := openAt(t, t.TempDir(), opts)
	t.Cleanup(func() {
		if err := s.Verify(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Verify at cleanup: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustUser(t testing.TB, s *Store, username, email string) *User {
	t.Helper()
	u, err := s.CreateUser(&User{Username: username, Email: email})
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

func mustGroup(t testing.TB, s *Store, name string) *Group {
	t.Helper()
	g, err := s.CreateGroup(&Group{Name: name})
	if err != nil {
		t.Fatalf("CreateGroup(%s): %v", name, err)
	}
	return g
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dump renders everything a store holds, for comparisons across reopen
// and restore.
func dump(t testing.TB, s *Store) string {
	t.Helper()
	var out []any
	after := ""
	for {
		us, next, err := s.ListUsers(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			gs, err := s.GroupsOfUser(u.ID)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, u, gs)
		}
		if next == "" {
			break
		}
		after = next
	}
	gs, _, err := s.ListGroups("", 1000)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, gs)
	var seq uint64
	for {
		evs, next, err := s.ListEvents(EventFilter{After: seq, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs)
		if next == 0 {
			break
		}
		seq = next
	}
	ds, _ := s.ListDirectories()
	bs, _ := s.ListBindings("")
	ss, _ := s.ListSyncStates("")
	out = append(out, ds, bs, ss)
	return jsonOf(t, out)
}

func isErr(err, target error) string {
	if errors.Is(err, target) {
		return ""
	}
	return fmt.Sprintf("got error %v, want one wrapping %v", err, target)
}

var quiet = slog.New(slog.DiscardHandler)

// putFramed stores value under key the way the store does (framed with
// its checksum), for tests that edit a journal behind the store's back.
func putFramed(b *bolt.Bucket, key, value []byte) error {
	return b.Put(key, frameRecord(key, value))
}

// payloadOf is the payload of a framed journal value; it fails the test
// when the frame is bad.
func payloadOf(t testing.TB, key, v []byte) []byte {
	t.Helper()
	p, err := unframeRecord(key, v)
	if err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	return p
}

// putEventBatch stores payloads (event JSON, seqs first, first+1, ...)
// as one batch value the way the store does, for tests that edit the
// events bucket behind its back.
func putEventBatch(b *bolt.Bucket, first uint64, payloads ...[]byte) error {
	v := appendFrameHeader(nil)
	for i, p := range payloads {
		seq := first + uint64(i)
		v = appendEventEntry(v, seq, frameRecord(eventKey(seq), p))
	}
	k := eventKey(first + uint64(len(payloads)) - 1)
	sealFrame(k, v)
	return b.Put(k, v)
}

// eachStoredEvent calls fn with every event record of the events bucket
// (schema version 5: batch values), in order: its seq and framed record.
func eachStoredEvent(t testing.TB, tx *bolt.Tx, fn func(seq uint64, framed []byte)) {
	t.Helper()
	c := tx.Bucket([]byte(TableEvents)).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := eachEventEntry(payloadOf(t, k, v), func(seq uint64, rec []byte) (bool, error) {
			fn(seq, rec)
			return false, nil
		}); err != nil {
			t.Fatalf("batch %x: %v", k, err)
		}
	}
}

// eventsAsV4 rewrites a current journal's events bucket as schema
// version 4 stored it, a framed record per event under its seq (the very
// bytes the v4 writer stored: a batch entry is that record), and sets the
// schema version to 4. The bucket's sequence is kept.
func eventsAsV4(t testing.TB, tx *bolt.Tx) error {
	t.Helper()
	b := tx.Bucket([]byte(TableEvents))
	seq := b.Sequence()
	var keys, vals [][]byte
	eachStoredEvent(t, tx, func(s uint64, rec []byte) {
		keys, vals = append(keys, eventKey(s)), append(vals, bytes.Clone(rec))
	})
	if err := tx.DeleteBucket([]byte(TableEvents)); err != nil {
		return err
	}
	b, err := tx.CreateBucket([]byte(TableEvents))
	if err != nil {
		return err
	}
	for i := range keys {
		if err := b.Put(keys[i], vals[i]); err != nil {
			return err
		}
	}
	if err := b.SetSequence(seq); err != nil {
		return err
	}
	return putMetaInt(tx, metaSchemaVersion, 4)
}

// wholeWriteBatches makes each write's events one value (up to
// maxEventBatch) for the rest of the test, as tests that count events in
// whole written batches need.
func wholeWriteBatches(t *testing.T) {
	old := boltBatchBytes
	boltBatchBytes = 1 << 30
	t.Cleanup(func() { boltBatchBytes = old })
}

// closedJournal closes s, whose data dir is dir, and returns its journal
// file's bytes (for the tests that damage a copy of them).
func closedJournal(t *testing.T, s *Store, dir string) []byte {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// journalCopy writes journal bytes (closedJournal's) into a fresh data
// dir, for one test case to damage; it returns the dir and the file.
func journalCopy(t *testing.T, journal []byte) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, journalFile)
	if err := os.WriteFile(path, journal, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}
