package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestGroups(t *testing.T) {
	s := newStore(t, Options{})
	g, err := s.CreateGroup(&Group{Name: "Site Admins", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if g.ID == "" || g.GIDNumber != firstGIDNumber || g.CreatedAt.IsZero() {
		t.Errorf("assigned fields: %+v", g)
	}
	if g2 := mustGroup(t, s, "ops"); g2.GIDNumber != firstGIDNumber+1 {
		t.Errorf("gid %d", g2.GIDNumber)
	}
	if got, err := s.GroupByName("site admins"); err != nil || got.ID != g.ID {
		t.Errorf("GroupByName: %v %v", got, err)
	}
	for _, bad := range []string{"", " lead", "trail ", "a/b", "x@y", strings.Repeat("g", 65)} {
		if _, err := s.CreateGroup(&Group{Name: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("group name %q: %v", bad, err)
		}
	}
	up, err := s.UpdateGroup(g.ID, func(x *Group) error { x.Description = "new"; x.GIDNumber = 5; return nil })
	if err != nil || up.Description != "new" || up.GIDNumber != g.GIDNumber || !up.UpdatedAt.After(g.UpdatedAt) {
		t.Errorf("UpdateGroup: %+v %v", up, err)
	}
	if _, err := s.UpdateGroup(g.ID, func(x *Group) error { x.Name = "OPS"; return nil }); !errors.Is(err, ErrConflict) {
		t.Errorf("rename into taken name: %v", err)
	}
	if _, err := s.UpdateGroup("nope", func(*Group) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update missing: %v", err)
	}

	// Memberships.
	bob, alice := mustUser(t, s, "bob", "bob@x.test"), mustUser(t, s, "Alice", "alice@x.test")
	for _, u := range []*User{bob, alice, bob} { // adding twice is fine
		if err := s.AddMember(g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddMember(g.ID, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("add missing user: %v", err)
	}
	if err := s.AddMember("nope", bob.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("add to missing group: %v", err)
	}
	ms, err := s.MembersOf(g.ID)
	if err != nil || len(ms) != 2 || ms[0].Username != "Alice" || ms[1].Username != "bob" {
		t.Errorf("MembersOf: %v %v", ms, err)
	}
	ops, _ := s.GroupByName("ops")
	if err := s.AddMember(ops.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	gs, err := s.GroupsOfUser(bob.ID)
	if err != nil || len(gs) != 2 || gs[0].Name != "ops" || gs[1].Name != "Site Admins" {
		t.Errorf("GroupsOfUser: %v %v", gs, err)
	}
	if !s.IsMember(ops.ID, bob.ID) || s.IsMember(ops.ID, alice.ID) {
		t.Error("IsMember")
	}
	if err := s.RemoveMember(ops.ID, alice.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove non-member: %v", err)
	}
	if err := s.RemoveMember(ops.ID, bob.ID); err != nil {
		t.Fatal(err)
	}

	// DeleteGroup removes its memberships.
	if err := s.DeleteGroup(g.ID); err != nil {
		t.Fatal(err)
	}
	if gs, _ := s.GroupsOfUser(bob.ID); len(gs) != 0 {
		t.Errorf("memberships left: %v", gs)
	}
	if _, err := s.MembersOf(g.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("MembersOf deleted group: %v", err)
	}
	if err := s.DeleteGroup(g.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestListGroupsPaging(t *testing.T) {
	s := newStore(t, Options{})
	for i := range 12 {
		mustGroup(t, s, fmt.Sprintf("Group %02d", i))
	}
	var got []string
	after := ""
	for {
		gs, next, err := s.ListGroups(after, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			got = append(got, g.Name)
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(got) != 12 || got[0] != "Group 00" || got[11] != "Group 11" {
		t.Errorf("paged groups: %v", got)
	}
}

func TestDirectoriesBindingsSyncState(t *testing.T) {
	s := newStore(t, Options{})
	bob := mustUser(t, s, "bob", "bob@x.test")
	g := mustGroup(t, s, "ops")
	if _, err := s.PutDirectory(&Directory{Name: "Entra", Type: "entra"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("uppercase directory name: %v", err)
	}
	for _, d := range []*Directory{{Name: "entra", Type: "entra"}, {Name: "gws", Type: "google"}} {
		if _, err := s.PutDirectory(d); err != nil {
			t.Fatal(err)
		}
	}
	d1, _ := s.DirectoryByName("entra")
	d2, err := s.PutDirectory(&Directory{Name: "entra", Type: "entra"}) // unchanged: no write
	if err != nil || !d2.UpdatedAt.Equal(d1.UpdatedAt) {
		t.Errorf("re-put: %+v %v", d2, err)
	}
	if ds, _ := s.ListDirectories(); len(ds) != 2 || ds[0].Name != "entra" {
		t.Errorf("ListDirectories: %v", ds)
	}

	b, err := s.PutBinding(&Binding{Directory: "entra", Kind: BindUser, SubjectID: bob.ID})
	if err != nil || b.ID != BindingID("entra", BindUser, bob.ID) {
		t.Fatalf("PutBinding: %+v %v", b, err)
	}
	if again, err := s.PutBinding(&Binding{Directory: "entra", Kind: BindUser, SubjectID: bob.ID}); err != nil || !again.CreatedAt.Equal(b.CreatedAt) {
		t.Errorf("binding twice: %v %v", again, err)
	}
	if _, err := s.PutBinding(&Binding{Directory: "gws", Kind: BindGroup, SubjectID: g.ID}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*Binding{
		{Directory: "nope", Kind: BindUser, SubjectID: bob.ID},
		{Directory: "entra", Kind: BindUser, SubjectID: "nope"},
		{Directory: "entra", Kind: BindGroup, SubjectID: bob.ID},
	} {
		if _, err := s.PutBinding(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutBinding(%+v): %v", bad, err)
		}
	}
	if _, err := s.PutBinding(&Binding{Directory: "entra", Kind: "robot", SubjectID: bob.ID}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad kind: %v", err)
	}
	if bs, _ := s.ListBindings("entra"); len(bs) != 1 {
		t.Errorf("ListBindings(entra): %v", bs)
	}
	if bs, _ := s.ListBindings(""); len(bs) != 2 {
		t.Errorf("ListBindings(): %v", bs)
	}

	st, err := s.UpdateSyncState("entra", bob.ID, func(st *SyncState) error {
		st.Kind, st.RemoteID, st.PushPending = BindUser, "remote-1", true
		return nil
	})
	if err != nil || st.RemoteID != "remote-1" || st.UpdatedAt.IsZero() {
		t.Fatalf("UpdateSyncState: %+v %v", st, err)
	}
	st, err = s.UpdateSyncState("entra", bob.ID, func(st *SyncState) error {
		st.PushPending, st.PushedVersion, st.Directory = false, 3, "ignored"
		return nil
	})
	if err != nil || st.RemoteID != "remote-1" || st.PushedVersion != 3 || st.Directory != "entra" {
		t.Fatalf("UpdateSyncState 2: %+v %v", st, err)
	}
	if _, err := s.PutSyncState(&SyncState{Directory: "gws", SubjectID: g.ID, Kind: BindGroup, RemoteID: "g-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSyncState(&SyncState{Directory: "nope", SubjectID: g.ID}); !errors.Is(err, ErrNotFound) {
		t.Errorf("sync state for missing directory: %v", err)
	}

	// A deleted user's sync state stays (to disable the remote account);
	// its bindings go.
	if err := s.DeleteUser(bob.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SyncStateOf("entra", bob.ID); err != nil || got.RemoteID != "remote-1" {
		t.Errorf("sync state after user delete: %v %v", got, err)
	}
	if bs, _ := s.ListBindings("entra"); len(bs) != 0 {
		t.Errorf("bindings after user delete: %v", bs)
	}
	if err := s.DeleteSyncState("entra", bob.ID); err != nil {
		t.Fatal(err)
	}
	// Removing a directory forgets its bindings and state (SPEC 4.5).
	if err := s.DeleteDirectory("gws"); err != nil {
		t.Fatal(err)
	}
	if ss, _ := s.ListSyncStates(""); len(ss) != 0 {
		t.Errorf("sync states left: %v", ss)
	}
	if bs, _ := s.ListBindings(""); len(bs) != 0 {
		t.Errorf("bindings left: %v", bs)
	}
}

func TestSubscribersSeeCommitOrder(t *testing.T) {
	s := newStore(t, Options{})
	var got []string
	s.Subscribe(func(c Change) {
		switch {
		case c.Before == nil:
			got = append(got, "create "+c.Table)
		case c.After == nil:
			got = append(got, "delete "+c.Table)
		default:
			got = append(got, "update "+c.Table)
		}
	})
	u := mustUser(t, s, "bob", "bob@x.test")
	g := mustGroup(t, s, "ops")
	s.AddMember(g.ID, u.ID)
	s.UpdateUser(u.ID, func(u *User) error { u.LastName = "B"; return nil })
	s.CreateUser(&User{Username: "bob", Email: "b2@x.test"}) // conflict: nothing
	s.DeleteGroup(g.ID)
	want := "create users,create groups,create memberships,update users,delete memberships,delete groups"
	if strings.Join(got, ",") != want {
		t.Errorf("got %v\nwant %s", got, want)
	}
}

func TestEachMember(t *testing.T) {
	s := newStore(t, Options{})
	g, err := s.CreateGroup(&Group{Name: "crew"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"Zed", "amy", "Bob"} {
		u, err := s.CreateUser(&User{Username: n, Email: n + "@corp.test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	want, err := s.MembersOf(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	if err := s.EachMember(g.ID, func(u *User) bool { seen[u.Username] = true; return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Fatalf("EachMember saw %v, MembersOf gives %d", seen, len(want))
	}
	for _, u := range want {
		if !seen[u.Username] {
			t.Fatalf("EachMember missed %s", u.Username)
		}
	}
	n := 0
	if err := s.EachMember(g.ID, func(*User) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("stopping after the first: %d calls, %v", n, err)
	}
	if err := s.EachMember("no-such-group", func(*User) bool { return true }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
}
