package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// userModel is what the store should hold: users by id, as returned.
type userModel map[string]*User

func (m userModel) clone() userModel {
	c := userModel{}
	for id, u := range m {
		c[id] = u.Copy()
	}
	return c
}

// conflicts is the brute-force uniqueness rule: another user has the
// username or email in any case.
func (m userModel) conflicts(id, username, email string) bool {
	for _, u := range m {
		if u.ID != id && (strings.EqualFold(u.Username, username) || strings.EqualFold(u.Email, email)) {
			return true
		}
	}
	return false
}

// scan is every user whose key (folded) satisfies match, ordered by that
// key, then by id: what an ordered index must return.
func (m userModel) scan(key func(*User) string, match func(string) bool) []string {
	type kv struct{ k, id string }
	var hits []kv
	for _, u := range m {
		if k := key(u); match(k) {
			hits = append(hits, kv{k, u.ID})
		}
	}
	slices.SortFunc(hits, func(a, b kv) int { return cmp.Or(strings.Compare(a.k, b.k), strings.Compare(a.id, b.id)) })
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.id
	}
	return out
}

func ids(us []*User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

var userKeyOf = map[UserKey]func(*User) string{
	UserKeyUsername: func(u *User) string { return strings.ToLower(u.Username) },
	UserKeyEmail:    func(u *User) string { return strings.ToLower(u.Email) },
	UserKeyCN:       func(u *User) string { return FoldCase(u.CommonName()) },
}

// checkLookups compares every secondary lookup of s with a brute-force
// scan of m, for the queries qs (names, emails, cns and prefixes, in
// mixed case).
func checkLookups(t *testing.T, what string, s *Store, m userModel, qs []string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: %s", what, fmt.Sprintf(format, args...))
	}
	// Every user under each of its keys, with the same record.
	for _, want := range m {
		for name, get := range map[string]func() (*User, error){
			"username": func() (*User, error) { return s.UserByUsername(strings.ToUpper(want.Username)) },
			"email":    func() (*User, error) { return s.UserByEmail(strings.ToUpper(want.Email)) },
			"uid":      func() (*User, error) { return s.UserByUIDNumber(want.UIDNumber) },
		} {
			got, err := get()
			if err != nil || !same(got, want) {
				fail("UserBy %s of %s: %v, %v", name, want.Username, got, err)
			}
		}
		if us, _ := s.UsersByUIDNumber(want.UIDNumber); len(us) != 1 || us[0].ID != want.ID {
			fail("UsersByUIDNumber(%d) = %v", want.UIDNumber, ids(us))
		}
		for _, uuid := range []string{UserGroupEntryUUID(want.ID), EntryUUID(want.ID)} {
			us, _ := s.UsersByEntryUUID(strings.ToUpper(uuid))
			if len(us) != 1 || us[0].ID != want.ID {
				fail("UsersByEntryUUID(%s) of %s = %v", uuid, want.ID, ids(us))
			}
		}
		cn := strings.ToUpper(want.CommonName())
		got, _ := s.UsersByCommonName(cn)
		if w := m.scan(userKeyOf[UserKeyCN], func(k string) bool { return k == FoldCase(cn) }); !slices.Equal(ids(got), w) {
			fail("UsersByCommonName(%q) = %v, scan %v", cn, ids(got), w)
		}
	}
	// Queries that may match nothing, several users, or everyone.
	for _, q := range append(qs, "", "NOBODY", "  ") {
		if u, err := s.UserByUsername(q); err == nil {
			if w := m.scan(userKeyOf[UserKeyUsername], func(k string) bool { return k == strings.ToLower(q) }); len(w) != 1 || w[0] != u.ID {
				fail("UserByUsername(%q) = %s, scan %v", q, u.ID, w)
			}
		} else if !errors.Is(err, ErrNotFound) || len(m.scan(userKeyOf[UserKeyUsername], func(k string) bool { return k == strings.ToLower(q) })) != 0 {
			fail("UserByUsername(%q): %v", q, err)
		}
		got, _ := s.UsersByCommonName(q)
		if w := m.scan(userKeyOf[UserKeyCN], func(k string) bool { return k == FoldCase(q) }); !slices.Equal(ids(got), w) {
			fail("UsersByCommonName(%q) = %v, scan %v", q, ids(got), w)
		}
		for k, key := range userKeyOf {
			fold := strings.ToLower
			if k == UserKeyCN {
				fold = FoldCase
			}
			w := m.scan(key, func(s string) bool { return strings.HasPrefix(s, fold(q)) })
			got, err := s.UsersWithPrefix(k, q, 0)
			if err != nil || !slices.Equal(ids(got), w) {
				fail("UsersWithPrefix(%d, %q) = %v, %v; scan %v", k, q, ids(got), err, w)
			}
			for _, u := range got {
				if !same(u, m[u.ID]) {
					fail("UsersWithPrefix(%d, %q) returned a stale %s: %+v", k, q, u.ID, u)
				}
			}
			if got, _ := s.UsersWithPrefix(k, q, 2); !slices.Equal(ids(got), w[:min(2, len(w))]) {
				fail("UsersWithPrefix(%d, %q, 2) = %v; scan %v", k, q, ids(got), w)
			}
			if n := s.CountUsersWithPrefix(k, q, 0); n != len(w) {
				fail("CountUsersWithPrefix(%d, %q) = %d; scan %d", k, q, n, len(w))
			}
			if n := s.CountUsersWithPrefix(k, q, 3); n != min(3, len(w)) {
				fail("CountUsersWithPrefix(%d, %q, 3) = %d; scan %d", k, q, n, len(w))
			}
		}
	}
	// ListUsers pages through everyone in username order.
	var listed []string
	for after := ""; ; {
		us, next, err := s.ListUsers(after, 3)
		if err != nil {
			fail("ListUsers: %v", err)
		}
		listed = append(listed, ids(us)...)
		if next == "" {
			break
		}
		after = next
	}
	if w := m.scan(userKeyOf[UserKeyUsername], func(string) bool { return true }); !slices.Equal(listed, w) {
		fail("ListUsers = %v; scan %v", listed, w)
	}
}

// viewStore is a read-only Store over an old view, for checking what a
// reader that loaded it before later writes still sees.
func viewStore(v *view) *Store {
	s := &Store{}
	s.cur.Store(v)
	return s
}

// TestUserIndexesMatchScan is the model test of the users' B-tree
// indexes: random creates, renames, email and display name changes and
// deletes (names from a tiny alphabet in mixed case, so that prefixes,
// case folds and conflicts overlap); after every step each lookup equals a
// brute-force scan of the model, and so does a view taken mid-sequence
// (after the writes that followed), a backup taken then and restored, and
// the journal reopened at the end.
func TestUserIndexesMatchScan(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 14))
			word := func() string {
				const letters = "abAB"
				b := make([]byte, 1+rng.IntN(3))
				for i := range b {
					b[i] = letters[rng.IntN(len(letters))]
				}
				return string(b)
			}
			cn := func() string {
				return []string{"", "Ann Lee", "ann  lee", "ANN LEE", "Ann", "Bob B", word(), word() + " " + word()}[rng.IntN(8)]
			}
			var qs []string
			dir := t.TempDir()
			s := openAt(t, dir, Options{})
			m := userModel{}
			var midView *view
			var midModel userModel
			var backup bytes.Buffer
			const steps = 150
			for step := range steps {
				var live []string
				for id := range m {
					live = append(live, id)
				}
				slices.Sort(live)
				pick := func() string { return live[rng.IntN(len(live))] }
				op := rng.IntN(6)
				if len(live) == 0 {
					op = 0
				}
				switch op {
				case 0, 1: // create
					name, email := "u"+word(), word()+"@x.test"
					in := &User{Username: name, Email: email, DisplayName: cn()}
					if rng.IntN(4) == 0 {
						in.ID = fmt.Sprintf("Ext-%d", step) // not a UUID: its own entryUUID is indexed
					}
					u, err := s.CreateUser(in)
					switch {
					case m.conflicts("", name, email):
						if !errors.Is(err, ErrConflict) {
							t.Fatalf("step %d: create %s/%s over an existing name: %v", step, name, email, err)
						}
					case err != nil:
						t.Fatalf("step %d: create %s: %v", step, name, err)
					default:
						m[u.ID] = u
					}
					qs = append(qs, name, email, strings.ToUpper(name[:1+rng.IntN(len(name))]))
				case 2, 3, 4: // rename, email or display name change
					id := pick()
					name, email, dn := m[id].Username, m[id].Email, m[id].DisplayName
					switch op {
					case 2:
						name = "u" + word()
					case 3:
						email = word() + "@x.test"
					default:
						dn = cn()
					}
					u, err := s.UpdateUser(id, func(u *User) error {
						u.Username, u.Email, u.DisplayName = name, email, dn
						return nil
					})
					switch {
					case m.conflicts(id, name, email):
						if !errors.Is(err, ErrConflict) {
							t.Fatalf("step %d: update %s to %s/%s: %v", step, id, name, email, err)
						}
					case err != nil:
						t.Fatalf("step %d: update %s: %v", step, id, err)
					default:
						m[id] = u
					}
					qs = append(qs, name, email, dn)
				case 5:
					id := pick()
					if err := s.DeleteUser(id); err != nil {
						t.Fatalf("step %d: delete %s: %v", step, id, err)
					}
					delete(m, id)
				}
				if step%10 == 0 || step == steps-1 {
					checkLookups(t, fmt.Sprintf("step %d", step), s, m, qs)
				}
				if step == steps/2 {
					midView, midModel = s.read(), m.clone()
					if err := s.Snapshot(&backup); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := s.Verify(); err != nil {
				t.Fatal(err)
			}
			checkLookups(t, "old view", viewStore(midView), midModel, qs)
			if err := verifyUserIndexes(midView.txn(), midView.users); err != nil {
				t.Fatalf("old view: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			r := openAt(t, dir, Options{})
			defer r.Close()
			checkLookups(t, "reopened", r, m, qs)
			if err := r.Verify(); err != nil {
				t.Fatal(err)
			}
			restored := filepath.Join(t.TempDir(), "restored")
			if err := RestoreSnapshot(&backup, restored); err != nil {
				t.Fatal(err)
			}
			b := openAt(t, restored, Options{})
			defer b.Close()
			checkLookups(t, "restored backup", b, midModel, qs)
		})
	}
}
