package store

import (
	"errors"
	"testing"
	"time"
)

// TestInviteDurable: an invite survives a reopen and passes Verify; a new
// one replaces the old; consuming it is once only; deleting the user
// deletes it.
func TestInviteDurable(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	u := mustUser(t, s, "ann", "ann@example.com")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if _, err := s.PutInvite(&Invite{UserID: "nobody", TokenHash: "h0", ExpiresAt: exp}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invite for a missing user: %v", err)
	}
	if _, err := s.PutInvite(&Invite{UserID: u.ID, TokenHash: "h1", ExpiresAt: exp, PasswordVersion: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, dir, Options{})
	defer s.Close()
	i, err := s.InviteByTokenHash("h1")
	if err != nil || i.UserID != u.ID || i.PasswordVersion != 3 || !i.ExpiresAt.Equal(exp) {
		t.Fatalf("%+v %v", i, err)
	}
	if _, err := s.PutInvite(&Invite{UserID: u.ID, TokenHash: "h2", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InviteByTokenHash("h1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the replaced invite still resolves: %v", err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeInvite("h2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeInvite("h2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second consume: %v", err)
	}
	if _, err := s.PutInvite(&Invite{UserID: u.ID, TokenHash: "h3", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InviteByTokenHash("h3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invite outlived its user: %v", err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}
