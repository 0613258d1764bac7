package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCreateUserDefaultsAndLookups(t *testing.T) {
	s := newStore(t, Options{})
	u, err := s.CreateUser(&User{Username: "Bob", Email: "Bob@Example.test", FirstName: "Bob",
		Attributes: map[string]string{"department": "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == "" || u.UIDNumber != firstIDNumber || u.CreatedAt.IsZero() || !u.UpdatedAt.Equal(u.CreatedAt) {
		t.Errorf("assigned fields wrong: %+v", u)
	}
	if u.State != StateActive || u.PasswordStatus != PasswordPending ||
		u.PasswordAuthority != AuthorityLocal || u.DelegatedAuthority != AuthorityNone {
		t.Errorf("defaults wrong: %+v", u)
	}
	u2 := mustUser(t, s, "alice", "alice@example.test")
	if u2.UIDNumber != firstIDNumber+1 {
		t.Errorf("second uid = %d", u2.UIDNumber)
	}

	for _, name := range []string{"bob", "BOB", "Bob"} {
		got, err := s.UserByUsername(name)
		if err != nil || got.ID != u.ID || got.Username != "Bob" {
			t.Errorf("UserByUsername(%q) = %v, %v", name, got, err)
		}
	}
	for _, email := range []string{"bob@example.test", "BOB@EXAMPLE.TEST"} {
		got, err := s.UserByEmail(email)
		if err != nil || got.ID != u.ID || got.Email != "Bob@Example.test" {
			t.Errorf("UserByEmail(%q) = %v, %v", email, got, err)
		}
	}
	if got, err := s.UserByID(u.ID); err != nil || jsonOf(t, got) != jsonOf(t, u) {
		t.Errorf("UserByID = %v, %v", got, err)
	}
	for _, f := range []func() (*User, error){
		func() (*User, error) { return s.UserByID("nope") },
		func() (*User, error) { return s.UserByUsername("nope") },
		func() (*User, error) { return s.UserByEmail("nope@x.test") },
		func() (*User, error) { return s.UserByUsername("") },
	} {
		if _, err := f(); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup of missing user: %v", err)
		}
	}

	// Returned objects are copies.
	u.Attributes["department"] = "changed"
	got, _ := s.UserByID(u.ID)
	if got.Attributes["department"] != "ops" {
		t.Error("caller's copy aliases the stored user")
	}
	// A caller-chosen ID is kept.
	u3, err := s.CreateUser(&User{ID: "fixed-id", Username: "carol", Email: "carol@x.test"})
	if err != nil || u3.ID != "fixed-id" {
		t.Fatalf("CreateUser with ID: %v %v", u3, err)
	}
	if _, err := s.CreateUser(&User{ID: "fixed-id", Username: "dave", Email: "dave@x.test"}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate id: %v", err)
	}
}

func TestUniquenessIsCaseInsensitive(t *testing.T) {
	s := newStore(t, Options{})
	bob := mustUser(t, s, "bob", "Bob@x.test")
	mustUser(t, s, "alice", "alice@x.test")
	tests := []struct {
		name, username, email, wantMsg string
	}{
		{"email other case", "robert", "bob@X.TEST", `email "bob@X.TEST" is already used by user bob`},
		{"username other case", "BOB", "other@x.test", `username "BOB" is already used by user bob`},
		{"both", "Bob", "BOB@x.test", "already used by user bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := dump(t, s)
			_, err := s.CreateUser(&User{Username: tc.username, Email: tc.email})
			if msg := isErr(err, ErrConflict); msg != "" {
				t.Fatal(msg)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("message %q does not mention %q", err, tc.wantMsg)
			}
			if dump(t, s) != before {
				t.Error("store changed after a conflict")
			}
		})
	}
	// Updating into a taken value conflicts; changing only the case of
	// one's own value does not.
	alice, _ := s.UserByUsername("alice")
	if _, err := s.UpdateUser(alice.ID, func(u *User) error { u.Email = "BOB@x.test"; return nil }); !errors.Is(err, ErrConflict) {
		t.Errorf("update into taken email: %v", err)
	}
	if _, err := s.UpdateUser(bob.ID, func(u *User) error { u.Username = "Bob"; u.Email = "bob@x.test"; return nil }); err != nil {
		t.Errorf("recasing own username/email: %v", err)
	}
	// Group names likewise.
	mustGroup(t, s, "Admins")
	if _, err := s.CreateGroup(&Group{Name: "admins"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"admins" is already used by group Admins`) {
		t.Errorf("group name conflict: %v", err)
	}
}

func TestUserValidation(t *testing.T) {
	s := newStore(t, Options{})
	mustUser(t, s, "existing", "existing@x.test")
	long := strings.Repeat("a", 65)
	tests := []struct {
		name string
		u    User
		want string // substring of the message
	}{
		{"no username", User{Email: "a@x.test"}, "username is required"},
		{"username too long", User{Username: long, Email: "a@x.test"}, "too long"},
		{"username starts with dot", User{Username: ".bob", Email: "a@x.test"}, "must start with a letter or a digit"},
		{"username with space", User{Username: "bob smith", Email: "a@x.test"}, "may only contain"},
		{"username with at", User{Username: "bob@x", Email: "a@x.test"}, "may only contain"},
		{"username non-ascii", User{Username: "bøb", Email: "a@x.test"}, "may only contain"},
		{"no email", User{Username: "bob"}, "email is required"},
		{"email without at", User{Username: "bob", Email: "bob"}, "not a valid address"},
		{"email display name", User{Username: "bob", Email: "Bob <bob@x.test>"}, "not a valid address"},
		{"email with spaces", User{Username: "bob", Email: " bob@x.test"}, "not a valid address"},
		{"email angle", User{Username: "bob", Email: "<bob@x.test>"}, "not a valid address"},
		{"bad state", User{Username: "bob", Email: "b@x.test", State: "deleted"}, "state"},
		{"locked status", User{Username: "bob", Email: "b@x.test", PasswordStatus: PasswordLocked}, "LockedUntil"},
		{"bad status", User{Username: "bob", Email: "b@x.test", PasswordStatus: "weird"}, "password status"},
		{"bad password authority", User{Username: "bob", Email: "b@x.test", PasswordAuthority: "none"}, "password authority"},
		{"bad delegated authority", User{Username: "bob", Email: "b@x.test", DelegatedAuthority: "local"}, "delegated authority"},
		{"id with slash", User{ID: "a/b", Username: "bob", Email: "b@x.test"}, "must not contain"},
		{"empty attribute name", User{Username: "bob", Email: "b@x.test", Attributes: map[string]string{"": "x"}}, "attribute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := dump(t, s)
			_, err := s.CreateUser(&tc.u)
			if msg := isErr(err, ErrInvalid); msg != "" {
				t.Fatal(msg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q does not mention %q", err, tc.want)
			}
			if dump(t, s) != before {
				t.Error("store changed after an invalid create")
			}
			if tc.u.ID != "" {
				return // ID changes on update are undone, not refused
			}
			// The same rules hold on update.
			ex, _ := s.UserByUsername("existing")
			_, err = s.UpdateUser(ex.ID, func(u *User) error {
				id := u.ID
				*u = tc.u
				u.ID = id
				return nil
			})
			if msg := isErr(err, ErrInvalid); msg != "" {
				t.Errorf("update: %s", msg)
			}
			if dump(t, s) != before {
				t.Error("store changed after an invalid update")
			}
		})
	}
	valid := []User{
		{Username: "a", Email: "a@x"},
		{Username: "9lives", Email: "nine.lives+tag@sub.example.test"},
		{Username: "j.doe_2-x", Email: "j@x.test", State: StateStaged, PasswordStatus: PasswordDelegated,
			PasswordAuthority: AuthorityAD, DelegatedAuthority: AuthorityAD},
		{Username: strings.Repeat("b", 64), Email: "b@x.test", State: StateSuspended, PasswordStatus: PasswordExpired},
	}
	for _, u := range valid {
		if _, err := s.CreateUser(&u); err != nil {
			t.Errorf("valid user %q refused: %v", u.Username, err)
		}
	}
}

func TestUpdateUser(t *testing.T) {
	s := newStore(t, Options{})
	u := mustUser(t, s, "bob", "bob@x.test")

	var changes []Change
	s.Subscribe(func(c Change) { changes = append(changes, c) })

	got, err := s.UpdateUser(u.ID, func(x *User) error {
		x.FirstName = "Robert"
		x.ID, x.UIDNumber, x.CreatedAt = "other", 1, time.Time{} // undone
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.FirstName != "Robert" || got.ID != u.ID || got.UIDNumber != u.UIDNumber || !got.CreatedAt.Equal(u.CreatedAt) {
		t.Errorf("update result %+v", got)
	}
	if !got.UpdatedAt.After(u.UpdatedAt) {
		t.Errorf("UpdatedAt not bumped: %v -> %v", u.UpdatedAt, got.UpdatedAt)
	}
	if len(changes) != 1 || changes[0].Table != TableUsers || changes[0].Before.(*User).FirstName != "" ||
		changes[0].After.(*User).FirstName != "Robert" {
		t.Errorf("changes %+v", changes)
	}

	// fn error: nothing written, error returned as is.
	before := dump(t, s)
	boom := errors.New("boom")
	if _, err := s.UpdateUser(u.ID, func(x *User) error { x.LastName = "X"; return boom }); err != boom {
		t.Errorf("fn error: %v", err)
	}
	if dump(t, s) != before || len(changes) != 1 {
		t.Error("a failed fn wrote something")
	}
	// No-op: nothing written, no change reported.
	if _, err := s.UpdateUser(u.ID, func(x *User) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if dump(t, s) != before || len(changes) != 1 {
		t.Error("a no-op update wrote something")
	}
	if _, err := s.UpdateUser("missing", func(*User) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update missing: %v", err)
	}
}

func TestDeleteUserRemovesMemberships(t *testing.T) {
	s := newStore(t, Options{})
	bob := mustUser(t, s, "bob", "bob@x.test")
	alice := mustUser(t, s, "alice", "alice@x.test")
	g1, g2 := mustGroup(t, s, "ops"), mustGroup(t, s, "dev")
	for _, g := range []*Group{g1, g2} {
		for _, u := range []*User{bob, alice} {
			if err := s.AddMember(g.ID, u.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.PutDirectory(&Directory{Name: "entra", Type: "entra"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBinding(&Binding{Directory: "entra", Kind: BindUser, SubjectID: bob.ID}); err != nil {
		t.Fatal(err)
	}
	var tables []string
	s.Subscribe(func(c Change) { tables = append(tables, c.Table) })
	if err := s.DeleteUser(bob.ID); err != nil {
		t.Fatal(err)
	}
	if want := "memberships,memberships,bindings,users"; strings.Join(tables, ",") != want {
		t.Errorf("changes %v, want %s", tables, want)
	}
	if _, err := s.UserByID(bob.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user still there: %v", err)
	}
	if _, err := s.UserByEmail("bob@x.test"); !errors.Is(err, ErrNotFound) {
		t.Error("email index still holds the deleted user")
	}
	for _, g := range []*Group{g1, g2} {
		ms, err := s.MembersOf(g.ID)
		if err != nil || len(ms) != 1 || ms[0].ID != alice.ID {
			t.Errorf("members of %s after delete: %v %v", g.Name, ms, err)
		}
	}
	if bs, _ := s.BindingsOfSubject(bob.ID); len(bs) != 0 {
		t.Errorf("bindings left: %v", bs)
	}
	if _, err := s.GroupsOfUser(bob.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("GroupsOfUser of deleted user: %v", err)
	}
	if err := s.DeleteUser(bob.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// The username is free again.
	mustUser(t, s, "BOB", "bob@x.test")
}

func TestListUsersPaging(t *testing.T) {
	s := newStore(t, Options{})
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("user%02d", i)
		if i%3 == 0 {
			name = strings.ToUpper(name) // ordering ignores case
		}
		mustUser(t, s, name, fmt.Sprintf("u%d@x.test", i))
		want = append(want, strings.ToLower(name))
	}
	for _, limit := range []int{1, 7, 10, 25, 100} {
		var got []string
		after, pages := "", 0
		for {
			us, next, err := s.ListUsers(after, limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, u := range us {
				got = append(got, strings.ToLower(u.Username))
			}
			if next == "" {
				break
			}
			if len(us) != limit || next != us[len(us)-1].Username {
				t.Fatalf("limit %d: page of %d, next %q", limit, len(us), next)
			}
			after = next
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("limit %d: got %v", limit, got)
		}
		if wantPages := (25 + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
	}
	// default and cap
	if us, next, _ := s.ListUsers("", 0); len(us) != 25 || next != "" {
		t.Errorf("limit 0: %d users, next %q", len(us), next)
	}
	if us, _, _ := s.ListUsers("user10", 2); len(us) != 2 || us[0].Username != "user11" {
		t.Errorf("after user10: %v", us)
	}
	if us, _, _ := s.ListUsers("USER10", 2); len(us) != 2 || us[0].Username != "user11" {
		t.Errorf("after USER10: %v", us)
	}
}
