package store

import (
	"bytes"
	"testing"
)

// An NT hash never outlives its password: a PasswordHash change that does
// not set a new NT hash drops it; ClearNTHashes drops them all at once.
func TestNTHashFollowsPassword(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	a := mustUser(t, s, "nta", "nta@x.test")
	b := mustUser(t, s, "ntb", "ntb@x.test")
	set := func(id string, hash string, nt []byte) *User {
		t.Helper()
		u, err := s.UpdateUser(id, func(x *User) error {
			x.PasswordHash = hash
			x.NTHashSealed = nt
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	u := set(a.ID, "$argon2id$one", []byte("sealed-one"))
	if !bytes.Equal(u.NTHashSealed, []byte("sealed-one")) {
		t.Fatalf("not stored: %q", u.NTHashSealed)
	}
	set(b.ID, "$argon2id$b", []byte("sealed-b"))
	u, err := s.UpdateUser(a.ID, func(x *User) error { x.PasswordHash = "$argon2id$two"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if u.NTHashSealed != nil {
		t.Fatal("a password change kept the old NT hash")
	}
	u = set(a.ID, "$argon2id$three", []byte("sealed-three"))
	if !bytes.Equal(u.NTHashSealed, []byte("sealed-three")) {
		t.Fatal("a password change that brings an NT hash lost it")
	}
	n, err := s.ClearNTHashes()
	if err != nil || n != 2 {
		t.Fatalf("ClearNTHashes = %d, %v; want 2", n, err)
	}
	s.Close()
	s = openAt(t, dir, Options{})
	defer s.Close()
	for _, id := range []string{a.ID, b.ID} {
		if u, _ := s.UserByID(id); len(u.NTHashSealed) != 0 {
			t.Fatalf("%s still has an NT hash after reopening", u.Username)
		}
	}
}
