package store

import (
	"slices"
	"strings"
)

func copyMembership(m *Membership) *Membership { c := *m; return &c }

// AddMember makes the user a member of the group. Both must exist
// (ErrNotFound otherwise); adding an existing member is a no-op.
func (s *Store) AddMember(groupID, userID string) error {
	return s.write(func(w *wtxn) error {
		if w.first(TableGroups, "id", groupID) == nil {
			return notFoundf("group %q not found", groupID)
		}
		if w.first(TableUsers, "id", userID) == nil {
			return notFoundf("user %q not found", userID)
		}
		if w.first(TableMemberships, "id", groupID, userID) != nil {
			return nil
		}
		m := &Membership{GroupID: groupID, UserID: userID}
		if err := w.put(TableMemberships, m); err != nil {
			return err
		}
		w.notify(TableMemberships, nil, copyMembership(m))
		return nil
	})
}

// RemoveMember removes the user from the group; ErrNotFound if the user
// is not a member.
func (s *Store) RemoveMember(groupID, userID string) error {
	return s.write(func(w *wtxn) error {
		m, ok := w.first(TableMemberships, "id", groupID, userID).(*Membership)
		if !ok {
			return notFoundf("user %q is not a member of group %q", userID, groupID)
		}
		if err := w.del(TableMemberships, m); err != nil {
			return err
		}
		w.notify(TableMemberships, copyMembership(m), nil)
		return nil
	})
}

// GroupsOfUser returns the user's groups sorted by name.
func (s *Store) GroupsOfUser(userID string) ([]*Group, error) {
	txn := s.rtxn()
	if o, _ := txn.First(TableUsers, "id", userID); o == nil {
		return nil, notFoundf("user %q not found", userID)
	}
	var out []*Group
	for _, o := range all(txn, TableMemberships, "user_id", userID) {
		if g, _ := txn.First(TableGroups, "id", o.(*Membership).GroupID); g != nil {
			out = append(out, g.(*Group).Copy())
		}
	}
	slices.SortFunc(out, func(a, b *Group) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return out, nil
}

// MembersOf returns the group's members sorted by username.
func (s *Store) MembersOf(groupID string) ([]*User, error) {
	txn := s.rtxn()
	if o, _ := txn.First(TableGroups, "id", groupID); o == nil {
		return nil, notFoundf("group %q not found", groupID)
	}
	var out []*User
	for _, o := range all(txn, TableMemberships, "group_id", groupID) {
		if u, _ := txn.First(TableUsers, "id", o.(*Membership).UserID); u != nil {
			out = append(out, u.(*User).Copy())
		}
	}
	slices.SortFunc(out, func(a, b *User) int {
		return strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username))
	})
	return out, nil
}

// EachMember calls fn with each member of the group, in no order, until fn
// returns false. Unlike every other read it hands fn the store's own
// User, not a copy: fn must neither modify nor keep it, only read what it
// needs. The LDAP door renders the member names of every group a search
// returns, and copying each member was most of that work (MembersOf).
func (s *Store) EachMember(groupID string, fn func(*User) bool) error {
	txn := s.rtxn()
	if o, _ := txn.First(TableGroups, "id", groupID); o == nil {
		return notFoundf("group %q not found", groupID)
	}
	it, err := txn.Get(TableMemberships, "group_id", groupID)
	if err != nil {
		return err
	}
	for o := it.Next(); o != nil; o = it.Next() {
		if u, _ := txn.First(TableUsers, "id", o.(*Membership).UserID); u != nil && !fn(u.(*User)) {
			return nil
		}
	}
	return nil
}

// IsMember reports whether the user is a direct member of the group.
func (s *Store) IsMember(groupID, userID string) bool {
	o, _ := s.rtxn().First(TableMemberships, "id", groupID, userID)
	return o != nil
}
