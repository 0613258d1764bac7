package store

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnapshotRestore(t *testing.T) {
	s := newStore(t, Options{})
	populate(t, s, 50)
	u, _ := s.UserByUsername("user0007")
	s.DeleteUser(u.ID)
	for range 100 {
		s.Emit(Event{Type: "radius_auth", Outcome: OutcomeFailure})
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s)
	// Writes after the snapshot are not in it.
	mustUser(t, s, "later", "later@x.test")

	dir := filepath.Join(t.TempDir(), "restored")
	if err := RestoreSnapshot(bytes.NewReader(buf.Bytes()), dir); err != nil {
		t.Fatal(err)
	}
	r := openAt(t, dir, Options{})
	defer r.Close()
	if got := dump(t, r); got != want {
		t.Errorf("restored state differs:\nwant %s\n got %s", want, got)
	}
	if err := r.Verify(); err != nil {
		t.Error(err)
	}
	if n := mustUser(t, r, "next", "next@x.test").UIDNumber; n != firstIDNumber+50 {
		t.Errorf("uid counter after restore: %d", n)
	}

	// Refuses a dir that has a journal, and a bad snapshot.
	if err := RestoreSnapshot(bytes.NewReader(buf.Bytes()), dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("restore over a journal: %v", err)
	}
	bad := append([]byte(nil), buf.Bytes()[:buf.Len()/2]...)
	other := t.TempDir()
	if err := RestoreSnapshot(bytes.NewReader(bad), other); err == nil || !strings.Contains(err.Error(), "not usable") {
		t.Errorf("restore of a truncated snapshot: %v", err)
	}
	if _, err := filepath.Glob(filepath.Join(other, "*")); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(other, "*")); len(m) != 0 {
		t.Errorf("a failed restore left files: %v", m)
	}
}
