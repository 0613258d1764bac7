package store

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/google/uuid"
)

// CreateUser validates and stores a new user. It assigns ID (a UUID,
// unless set), UIDNumber (from a counter; never reused), CreatedAt and
// UpdatedAt, and defaults State to active, PasswordStatus to pending and
// the authorities to local / none. Errors wrap ErrInvalid or ErrConflict.
func (s *Store) CreateUser(in *User) (*User, error) {
	if in == nil {
		return nil, invalidf("user is required")
	}
	u := in.Copy()
	if u.ID == "" {
		u.ID = uuid.NewString()
	}
	applyUserDefaults(u)
	if err := validateUser(u); err != nil {
		return nil, err
	}
	if err := checkNewUsername(u.Username); err != nil {
		return nil, err
	}
	var out *User
	err := s.write(func(w *wtxn) error {
		if w.first(TableUsers, "id", u.ID) != nil {
			return conflictf("user id %q is already taken", u.ID)
		}
		if err := w.checkUserUnique(u); err != nil {
			return err
		}
		n, err := w.nextCounter(metaNextUID)
		if err != nil {
			return err
		}
		u.UIDNumber = n
		now := w.s.now()
		u.CreatedAt, u.UpdatedAt = now, now
		if err := w.put(TableUsers, u); err != nil {
			return err
		}
		w.notify(TableUsers, nil, u.Copy())
		out = u.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkUserUnique fails if another user has u's username or email (any case).
func (w *wtxn) checkUserUnique(u *User) error {
	ix := w.userRead()
	if o := ix.byUsername(u.Username); o != nil && o.ID != u.ID {
		return conflictf("username %q is already used by user %s", u.Username, o.Username)
	}
	if o := ix.byEmail(u.Email); o != nil && o.ID != u.ID {
		return conflictf("email %q is already used by user %s", u.Email, o.Username)
	}
	return nil
}

// UpdateUser applies fn to a copy of the user inside the write
// transaction, then re-validates and re-checks uniqueness. ID, UIDNumber
// and CreatedAt cannot change (fn's changes to them are undone); UpdatedAt
// is bumped. If fn returns an error, nothing is written and that error is
// returned. If fn changes nothing, nothing is written either.
func (s *Store) UpdateUser(id string, fn func(*User) error) (*User, error) {
	var out *User
	err := s.write(func(w *wtxn) error {
		cur, ok := w.first(TableUsers, "id", id).(*User)
		if !ok {
			return notFoundf("user %q not found", id)
		}
		u := cur.Copy()
		if err := fn(u); err != nil {
			return err
		}
		u.ID, u.UIDNumber, u.CreatedAt, u.UpdatedAt = cur.ID, cur.UIDNumber, cur.CreatedAt, cur.UpdatedAt
		if u.PasswordHash != cur.PasswordHash && bytes.Equal(u.NTHashSealed, cur.NTHashSealed) {
			// An NT hash never outlives the password it was taken from:
			// a password change that does not bring a new one drops it.
			u.NTHashSealed = nil
		}
		applyUserDefaults(u)
		if same(cur, u) {
			out = u
			return nil
		}
		if err := validateUser(u); err != nil {
			return err
		}
		if u.Username != cur.Username {
			if err := checkNewUsername(u.Username); err != nil {
				return err
			}
		}
		if err := w.checkUserUnique(u); err != nil {
			return err
		}
		u.UpdatedAt = w.s.now()
		if err := w.put(TableUsers, u); err != nil {
			return err
		}
		w.notify(TableUsers, cur.Copy(), u.Copy())
		out = u.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ClearNTHashes drops every user's sealed NT hash in one transaction
// (authn does it at start when store_nt_hash is off) and returns how many
// users had one.
func (s *Store) ClearNTHashes() (int, error) {
	n := 0
	err := s.write(func(w *wtxn) error {
		for _, o := range all(w.mem, TableUsers, "id") {
			cur := o.(*User)
			if len(cur.NTHashSealed) == 0 {
				continue
			}
			u := cur.Copy()
			u.NTHashSealed = nil
			u.UpdatedAt = w.s.now()
			if err := w.put(TableUsers, u); err != nil {
				return err
			}
			w.notify(TableUsers, cur.Copy(), u.Copy())
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// same reports whether two records encode identically.
func same(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// DeleteUser removes the user with its memberships and bindings, in one
// transaction. Its sync state is kept: the provisioner needs the remote
// ids to disable the accounts.
func (s *Store) DeleteUser(id string) error {
	return s.write(func(w *wtxn) error {
		u, ok := w.first(TableUsers, "id", id).(*User)
		if !ok {
			return notFoundf("user %q not found", id)
		}
		for _, o := range all(w.mem, TableMemberships, "user_id", id) {
			if err := w.del(TableMemberships, o); err != nil {
				return err
			}
			w.notify(TableMemberships, copyMembership(o.(*Membership)), nil)
		}
		if err := w.deleteBindingsOf(BindUser, id); err != nil {
			return err
		}
		if err := w.deleteInviteOf(id); err != nil {
			return err
		}
		if err := w.del(TableUsers, u); err != nil {
			return err
		}
		w.notify(TableUsers, u.Copy(), nil)
		return nil
	})
}

// UserByID returns the user or an error wrapping ErrNotFound.
func (s *Store) UserByID(id string) (*User, error) {
	o, _ := s.rtxn().First(TableUsers, "id", id)
	if u, ok := o.(*User); ok {
		return u.Copy(), nil
	}
	return nil, notFoundf("user %q not found", id)
}

// SharedUserByID and SharedUserByUsername are UserByID and
// UserByUsername without the copy, for the LDAP door, which reads the
// bound user on every request and looks most searches up by uid, and for
// authn's cached logins, where the copy was the largest allocation: the
// store's own User, which the caller must not modify. A write never
// modifies a stored User either (it stores a new one), so the caller may
// go on reading it.
func (s *Store) SharedUserByID(id string) (*User, error) {
	o, _ := s.rtxn().First(TableUsers, "id", id)
	if u, ok := o.(*User); ok {
		return u, nil
	}
	return nil, notFoundf("user %q not found", id)
}

// SharedUserByUsername: see SharedUserByID.
func (s *Store) SharedUserByUsername(username string) (*User, error) {
	if u := s.read().users.byUsername(username); u != nil {
		return u, nil
	}
	return nil, notFoundf("no user with username %q", username)
}

// SharedUserByEmail: see SharedUserByID (authn's cached logins by email).
func (s *Store) SharedUserByEmail(email string) (*User, error) {
	if u := s.read().users.byEmail(email); u != nil {
		return u, nil
	}
	return nil, notFoundf("no user with email %q", email)
}

// UserByUsername looks a user up by username, in any case.
func (s *Store) UserByUsername(username string) (*User, error) {
	if u := s.read().users.byUsername(username); u != nil {
		return u.Copy(), nil
	}
	return nil, notFoundf("no user with username %q", username)
}

// UserByEmail looks a user up by email, in any case.
func (s *Store) UserByEmail(email string) (*User, error) {
	if u := s.read().users.byEmail(email); u != nil {
		return u.Copy(), nil
	}
	return nil, notFoundf("no user with email %q", email)
}

// UserByUIDNumber returns the user with that uidNumber (the uid_number
// index; the lowest id if an old journal repeats a number), or an error
// wrapping ErrNotFound.
func (s *Store) UserByUIDNumber(n int) (*User, error) {
	if u := s.read().users.uidNumber.first(n); u != nil {
		return u.Copy(), nil
	}
	return nil, notFoundf("no user with uid number %d", n)
}

// ListUsers pages through users ordered by lowercased username. after is
// the last username of the previous page ("" for the first); next is the
// value to pass for the following page, "" at the end. limit 0 means 100;
// it is capped at 1000.
func (s *Store) ListUsers(after string, limit int) ([]*User, string, error) {
	limit = normLimit(limit)
	lowAfter := strings.ToLower(after)
	var out []*User
	next := ""
	s.read().users.username.from(lowAfter, func(k string, u *User) bool {
		if after != "" && k <= lowAfter {
			return true
		}
		if len(out) == limit {
			next = out[len(out)-1].Username
			return false
		}
		out = append(out, u.Copy())
		return true
	})
	return out, next, nil
}
