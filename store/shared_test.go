package store

import (
	"errors"
	"reflect"
	"testing"
)

// TestSharedReads: SharedUserByID, SharedUserByUsername and
// EachUserWithPrefix return what the copying reads return, and a User
// they handed out is never changed by a later write (the promise that
// lets the LDAP door read it without a copy).
func TestSharedReads(t *testing.T) {
	s := newStore(t, Options{})
	ann := mustUser(t, s, "Ann", "ann@example.test")
	mustUser(t, s, "anna", "anna@example.test")
	mustUser(t, s, "bob", "bob@example.test")

	byID, err := s.SharedUserByID(ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	byName, err := s.SharedUserByUsername("ANN")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := s.UserByID(ann.ID)
	for _, got := range []*User{byID, byName} {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("shared read %+v, want %+v", got, want)
		}
	}
	for _, tc := range []struct {
		k      UserKey
		prefix string
		want   []string
	}{
		{UserKeyUsername, "AN", []string{"Ann", "anna"}},
		{UserKeyEmail, "b", []string{"bob"}},
		{UserKeyCN, "ann", []string{"Ann", "anna"}}, // no names: cn is the username
		{UserKeyUsername, "z", nil},
	} {
		var got []string
		s.EachUserWithPrefix(tc.k, tc.prefix, func(u *User) bool { got = append(got, u.Username); return true })
		copies, _ := s.UsersWithPrefix(tc.k, tc.prefix, 0)
		var names []string
		for _, u := range copies {
			names = append(names, u.Username)
		}
		if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(names, tc.want) {
			t.Errorf("prefix %q on key %d: shared %q, copies %q, want %q", tc.prefix, tc.k, got, names, tc.want)
		}
	}
	var n int
	s.EachUserWithPrefix(UserKeyUsername, "", func(*User) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("EachUserWithPrefix went on after fn returned false: %d calls", n)
	}

	if _, err := s.UpdateUser(ann.ID, func(u *User) error {
		u.FirstName, u.Email = "Annie", "annie@example.test"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(byID, want) {
		t.Errorf("a write changed a User handed out before it: %+v, was %+v", byID, want)
	}
	if now, _ := s.SharedUserByID(ann.ID); now.FirstName != "Annie" || now == byID {
		t.Errorf("after the write: %+v (the same object: %v)", now, now == byID)
	}
	if _, err := s.SharedUserByUsername("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown username: %v", err)
	}
	if _, err := s.SharedUserByID("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}
