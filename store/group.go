package store

import (
	"strings"

	"github.com/google/uuid"
)

// CreateGroup validates and stores a new group, assigning ID (unless
// set), GIDNumber (from a counter; never reused) and timestamps.
func (s *Store) CreateGroup(in *Group) (*Group, error) {
	if in == nil {
		return nil, invalidf("group is required")
	}
	g := in.Copy()
	if g.ID == "" {
		g.ID = uuid.NewString()
	}
	if err := validateGroup(g); err != nil {
		return nil, err
	}
	var out *Group
	err := s.write(func(w *wtxn) error {
		if w.first(TableGroups, "id", g.ID) != nil {
			return conflictf("group id %q is already taken", g.ID)
		}
		if err := w.checkGroupUnique(g); err != nil {
			return err
		}
		n, err := w.nextCounter(metaNextGID)
		if err != nil {
			return err
		}
		g.GIDNumber = n
		now := w.s.now()
		g.CreatedAt, g.UpdatedAt = now, now
		if err := w.put(TableGroups, g); err != nil {
			return err
		}
		w.notify(TableGroups, nil, g.Copy())
		out = g.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (w *wtxn) checkGroupUnique(g *Group) error {
	if o, ok := w.first(TableGroups, "name", g.Name).(*Group); ok && o.ID != g.ID {
		return conflictf("group name %q is already used by group %s", g.Name, o.Name)
	}
	return nil
}

// UpdateGroup applies fn to a copy of the group in the write transaction;
// ID, GIDNumber and CreatedAt cannot change. If fn fails nothing is written.
func (s *Store) UpdateGroup(id string, fn func(*Group) error) (*Group, error) {
	var out *Group
	err := s.write(func(w *wtxn) error {
		cur, ok := w.first(TableGroups, "id", id).(*Group)
		if !ok {
			return notFoundf("group %q not found", id)
		}
		g := cur.Copy()
		if err := fn(g); err != nil {
			return err
		}
		g.ID, g.GIDNumber, g.CreatedAt, g.UpdatedAt = cur.ID, cur.GIDNumber, cur.CreatedAt, cur.UpdatedAt
		if same(cur, g) {
			out = g
			return nil
		}
		if err := validateGroup(g); err != nil {
			return err
		}
		if err := w.checkGroupUnique(g); err != nil {
			return err
		}
		g.UpdatedAt = w.s.now()
		if err := w.put(TableGroups, g); err != nil {
			return err
		}
		w.notify(TableGroups, cur.Copy(), g.Copy())
		out = g.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteGroup removes the group with its memberships and bindings in one
// transaction (its sync state is kept for deprovisioning).
func (s *Store) DeleteGroup(id string) error {
	return s.write(func(w *wtxn) error {
		g, ok := w.first(TableGroups, "id", id).(*Group)
		if !ok {
			return notFoundf("group %q not found", id)
		}
		for _, o := range all(w.mem, TableMemberships, "group_id", id) {
			if err := w.del(TableMemberships, o); err != nil {
				return err
			}
			w.notify(TableMemberships, copyMembership(o.(*Membership)), nil)
		}
		if err := w.deleteBindingsOf(BindGroup, id); err != nil {
			return err
		}
		if err := w.del(TableGroups, g); err != nil {
			return err
		}
		w.notify(TableGroups, g.Copy(), nil)
		return nil
	})
}

// GroupByID returns the group or an error wrapping ErrNotFound.
func (s *Store) GroupByID(id string) (*Group, error) {
	o, _ := s.rtxn().First(TableGroups, "id", id)
	if g, ok := o.(*Group); ok {
		return g.Copy(), nil
	}
	return nil, notFoundf("group %q not found", id)
}

// GroupByName looks a group up by name, in any case.
func (s *Store) GroupByName(name string) (*Group, error) {
	o, _ := s.rtxn().First(TableGroups, "name", name)
	if g, ok := o.(*Group); ok {
		return g.Copy(), nil
	}
	return nil, notFoundf("no group named %q", name)
}

// GroupByGIDNumber returns the group with that gidNumber (the gid_number
// index), or an error wrapping ErrNotFound. Group numbers come from their
// own counter (from 1000000), so they never equal a user's uidNumber,
// which is also the gidNumber of the user's private group.
func (s *Store) GroupByGIDNumber(n int) (*Group, error) {
	o, _ := s.rtxn().First(TableGroups, "gid_number", n)
	if g, ok := o.(*Group); ok {
		return g.Copy(), nil
	}
	return nil, notFoundf("no group with gid number %d", n)
}

// ListGroups pages through groups ordered by lowercased name, like ListUsers.
func (s *Store) ListGroups(after string, limit int) ([]*Group, string, error) {
	limit = normLimit(limit)
	it, err := s.rtxn().LowerBound(TableGroups, "name", after)
	if err != nil {
		return nil, "", err
	}
	lowAfter := strings.ToLower(after)
	var out []*Group
	for o := it.Next(); o != nil; o = it.Next() {
		g := o.(*Group)
		if after != "" && strings.ToLower(g.Name) <= lowAfter {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Name, nil
		}
		out = append(out, g.Copy())
	}
	return out, "", nil
}
