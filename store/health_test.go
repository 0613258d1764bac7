package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// txID is the journal's last committed transaction: it moves with every
// write, test writes included.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	tx, err := s.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	return tx.ID()
}

// TestHealthProbesSparingly: Health makes a test write only when no
// write has told it anything for a while, and the write leaves the data
// alone.
func TestHealthProbesSparingly(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	id := txID(t, s)
	if err := s.Health(ctx); err != nil {
		t.Fatalf("fresh store: %v", err)
	}
	if got := txID(t, s); got != id+1 {
		t.Fatalf("the first Health must write once: tx %d -> %d", id, got)
	}
	for range 10 {
		if err := s.Health(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := txID(t, s); got != id+1 {
		t.Fatalf("Health wrote again within the interval: tx %d -> %d", id+1, got)
	}
	mustUser(t, s, "alice", "alice@x.test")
	s.health.interval = time.Nanosecond
	id = txID(t, s)
	if err := s.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if got := txID(t, s); got != id+1 {
		t.Fatalf("a stale journal must be probed: tx %d -> %d", id, got)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(metaBucket)).Get([]byte(metaHealthProbe)); v == nil {
			return errors.New("no probe stamp in meta")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// newStore's cleanup verifies memory against the journal.
}

// TestHealthWhenWritesFail: every way the store stops taking writes makes
// Health fail, with a message that says why.
func TestHealthWhenWritesFail(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, s *Store)
		want    string
	}{
		{"closed", func(t *testing.T, s *Store) { s.Close() }, ErrClosed.Error()},
		{"the last write failed", func(t *testing.T, s *Store) {
			s.db.Close() // the disk goes away
			if _, err := s.CreateUser(&User{Username: "alice", Email: "alice@x.test"}); err == nil {
				t.Fatal("CreateUser succeeded without a journal")
			}
		}, "cannot start a write"},
		{"the journal broke while idle", func(t *testing.T, s *Store) {
			s.db.Close()
			s.health.interval = time.Nanosecond
		}, "cannot start a write"},
		{"the event writer fails", func(t *testing.T, s *Store) {
			s.db.Close()
			s.Emit(Event{Type: "ldap_bind"})
			waitHealth(t, s, func(err error) bool { return err != nil && strings.Contains(err.Error(), "audit events") })
		}, "audit events cannot be written (attempt "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openAt(t, t.TempDir(), Options{})
			defer s.Close()
			if err := s.Health(context.Background()); err != nil {
				t.Fatalf("before: %v", err)
			}
			tc.breakIt(t, s)
			err := s.Health(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Health: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestHealthRecovers: once the journal takes writes again, the next test
// write and the event writer's next retry clear the failure.
func TestHealthRecovers(t *testing.T) {
	s := openAt(t, t.TempDir(), Options{})
	defer s.Close()
	s.health.interval = time.Nanosecond
	s.db.Close()
	s.Emit(Event{Type: "ldap_bind"})
	waitHealth(t, s, func(err error) bool { return err != nil && strings.Contains(err.Error(), "audit events") })
	s.mu.Lock()
	db, err := bolt.Open(s.path, 0o600, nil)
	s.db = db
	s.j = &boltJournal{path: s.path, db: db}
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitHealth(t, s, func(err error) bool { return err == nil })
	if evs, _, _ := s.ListEvents(EventFilter{}); len(evs) != 1 {
		t.Fatalf("the retried event: %v", evs)
	}
}

// TestHealthBoundedByContext: a test write stuck behind the writer lock
// (a hung disk, a long import) makes Health fail by its deadline, and
// later checks join the same write instead of piling up.
func TestHealthBoundedByContext(t *testing.T) {
	s := newStore(t, Options{})
	s.health.interval = time.Nanosecond
	s.mu.Lock()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := s.Health(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "did not finish in time") {
			s.mu.Unlock()
			t.Fatalf("Health with the journal held: %v", err)
		}
	}
	s.health.mu.Lock()
	probe := s.health.probing
	s.health.mu.Unlock()
	s.mu.Unlock()
	if probe == nil {
		t.Fatal("no test write running")
	}
	<-probe // one write for the three checks; it ends once the lock is free
	if err := s.Health(context.Background()); err != nil {
		t.Fatalf("after the journal was released: %v", err)
	}
}

// waitHealth polls Health until ok accepts its answer.
func waitHealth(t *testing.T, s *Store, ok func(error) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Health(context.Background())
		if ok(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Health stays at %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
