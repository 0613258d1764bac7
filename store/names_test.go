package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestNumericUsernames (C4): an all-digit username is refused at create
// and at rename (POSIX hosts read it as a uid: "0" is root); names with
// digits and a letter are fine.
func TestNumericUsernames(t *testing.T) {
	tests := []struct {
		name    string
		refused bool
	}{
		{"0", true},
		{"1000", true},
		{"0001", true},
		{"65534", true},
		{"0a", false},
		{"9lives", false},
		{"u1000", false},
		{"1-2", false},
		{"1.0", false},
	}
	s := newStore(t, Options{})
	victim := mustUser(t, s, "renamed", "renamed@x.test")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateUser(&User{Username: tc.name, Email: "c" + tc.name + "@x.test"})
			_, rerr := s.UpdateUser(victim.ID, func(u *User) error { u.Username = tc.name; return nil })
			if !tc.refused {
				if err == nil {
					// created: the rename to the same name conflicts instead
					if rerr != nil && !errors.Is(rerr, ErrConflict) {
						t.Errorf("rename: %v", rerr)
					}
					return
				}
				t.Fatalf("create %q refused: %v", tc.name, err)
			}
			for what, e := range map[string]error{"create": err, "rename": rerr} {
				if !errors.Is(e, ErrInvalid) || !strings.Contains(e.Error(), "all digits") {
					t.Errorf("%s %q: %v, want ErrInvalid naming all digits", what, tc.name, e)
				}
			}
		})
	}
}

// TestNumericUsernameInJournalLoads: the rule is checked on write only.
// A journal holding an all-digit username (written before the rule)
// loads, the user is served, looked up by uid number, and can still be
// updated without a rename.
func TestNumericUsernameInJournalLoads(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	u := mustUser(t, s, "placeholder", "zero@x.test")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, filepath.Join(dir, journalFile), func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(TableUsers))
		var stored User
		if err := json.Unmarshal(payloadOf(t, []byte(u.ID), b.Get([]byte(u.ID))), &stored); err != nil {
			return err
		}
		stored.Username = "0"
		v, err := json.Marshal(&stored)
		if err != nil {
			return err
		}
		return putFramed(b, []byte(u.ID), v)
	})
	s = openAt(t, dir, Options{})
	defer s.Close()
	got, err := s.UserByUsername("0")
	if err != nil {
		t.Fatalf("stored numeric user not loaded: %v", err)
	}
	if byNum, err := s.UserByUIDNumber(got.UIDNumber); err != nil || byNum.ID != u.ID {
		t.Errorf("UserByUIDNumber(%d) = %v, %v", got.UIDNumber, byNum, err)
	}
	if _, err := s.UpdateUser(u.ID, func(x *User) error { x.FirstName = "Zero"; return nil }); err != nil {
		t.Errorf("update without rename refused: %v", err)
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
}

// TestNumberLookups: UserByUIDNumber and GroupByGIDNumber answer from the
// memdb indexes, which are rebuilt from the journal at start (no journal
// change, no migration), and follow deletes.
func TestNumberLookups(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	a := mustUser(t, s, "alice", "alice@x.test")
	b := mustUser(t, s, "bob", "bob@x.test")
	g := mustGroup(t, s, "staff")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, Options{})
	defer s.Close()
	tests := []struct {
		name string
		got  func() (string, error)
		want string // "" for not found
	}{
		{"alice", func() (string, error) { u, err := s.UserByUIDNumber(a.UIDNumber); return name(u), err }, "alice"},
		{"bob", func() (string, error) { u, err := s.UserByUIDNumber(b.UIDNumber); return name(u), err }, "bob"},
		{"no uid", func() (string, error) { u, err := s.UserByUIDNumber(1); return name(u), err }, ""},
		{"gid is not a uid", func() (string, error) { u, err := s.UserByUIDNumber(g.GIDNumber); return name(u), err }, ""},
		{"group", func() (string, error) { x, err := s.GroupByGIDNumber(g.GIDNumber); return gname(x), err }, "staff"},
		{"uid is not a gid", func() (string, error) { x, err := s.GroupByGIDNumber(a.UIDNumber); return gname(x), err }, ""},
	}
	for _, tc := range tests {
		got, err := tc.got()
		if tc.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %q, %v; want not found", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if err := s.DeleteUser(b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByUIDNumber(b.UIDNumber); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user still found by uid number: %v", err)
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
}

func name(u *User) string {
	if u == nil {
		return ""
	}
	return u.Username
}

func gname(g *Group) string {
	if g == nil {
		return ""
	}
	return g.Name
}
