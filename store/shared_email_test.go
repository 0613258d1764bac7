package store

import (
	"errors"
	"testing"
)

// TestSharedUserByNameOrEmailStaysPut: the no-copy lookups find what the
// copying ones find, in any case, and a view taken before a write is not
// changed by it (writes store a new record), which is what makes handing
// out the record itself safe for a reader that does not modify it.
func TestSharedUserByNameOrEmailStaysPut(t *testing.T) {
	s := newStore(t, Options{})
	alice := mustUser(t, s, "alice", "alice@x.test")
	for _, tc := range []struct {
		name string
		view func() (*User, error)
	}{
		{"username", func() (*User, error) { return s.SharedUserByUsername("ALICE") }},
		{"email", func() (*User, error) { return s.SharedUserByEmail("Alice@X.test") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := s.UserByID(alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			v, err := tc.view()
			if err != nil || jsonOf(t, v) != jsonOf(t, want) {
				t.Fatalf("view = %+v, %v; want %+v", v, err, want)
			}
			before := jsonOf(t, v)
			if _, err := s.UpdateUser(alice.ID, func(u *User) error { u.FirstName += "x"; return nil }); err != nil {
				t.Fatal(err)
			}
			if got := jsonOf(t, v); got != before {
				t.Fatalf("a write changed a view taken before it:\n%s\nwas\n%s", got, before)
			}
			if now, _ := tc.view(); now == v || now.FirstName == v.FirstName {
				t.Fatal("a view taken after the write does not show it")
			}
		})
	}
	if _, err := s.SharedUserByUsername("nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown username: %v", err)
	}
	if _, err := s.SharedUserByEmail("nobody@x.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown email: %v", err)
	}
}
