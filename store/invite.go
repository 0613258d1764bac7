package store

import "time"

// Invite is a one-time activation link an administrator issued for a user
// (SPEC 9.1). The token itself is never stored: TokenHash is the hex
// SHA-256 of it. One invite per user, keyed by UserID, so a new invite
// replaces (revokes) the previous one. PasswordVersion is the user's
// password version when the invite was issued: a password change since
// then revokes the invite.
type Invite struct {
	UserID          string    `json:"user_id"`
	TokenHash       string    `json:"token_hash"`
	PasswordVersion uint64    `json:"password_version"`
	ExpiresAt       time.Time `json:"expires_at"`
	CreatedAt       time.Time `json:"created_at"`
}

// Copy returns a copy.
func (i *Invite) Copy() *Invite {
	if i == nil {
		return nil
	}
	c := *i
	return &c
}

func inviteKey(i *Invite) []byte { return []byte(i.UserID) }

// PutInvite creates or replaces the invite of in.UserID, who must exist.
// CreatedAt is set by the store.
func (s *Store) PutInvite(in *Invite) (*Invite, error) {
	if in == nil || in.UserID == "" || in.TokenHash == "" {
		return nil, invalidf("an invite needs a user id and a token hash")
	}
	if in.ExpiresAt.IsZero() {
		return nil, invalidf("an invite needs an expiry")
	}
	inv := in.Copy()
	var out *Invite
	err := s.write(func(w *wtxn) error {
		if _, ok := w.first(TableUsers, "id", inv.UserID).(*User); !ok {
			return notFoundf("user %q not found", inv.UserID)
		}
		if o, ok := w.first(TableInvites, "token", inv.TokenHash).(*Invite); ok && o.UserID != inv.UserID {
			return conflictf("token hash already in use")
		}
		cur, _ := w.first(TableInvites, "id", inv.UserID).(*Invite)
		inv.CreatedAt = w.s.now()
		if err := w.put(TableInvites, inv); err != nil {
			return err
		}
		var before any
		if cur != nil {
			before = cur.Copy()
		}
		w.notify(TableInvites, before, inv.Copy())
		out = inv.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// InviteByTokenHash returns the invite with that token hash or an error
// wrapping ErrNotFound. It does not consume it.
func (s *Store) InviteByTokenHash(hash string) (*Invite, error) {
	o, _ := s.rtxn().First(TableInvites, "token", hash)
	if i, ok := o.(*Invite); ok {
		return i.Copy(), nil
	}
	return nil, notFoundf("no such invite")
}

// ConsumeInvite deletes the invite with that token hash and returns it, in
// one transaction, so that two redemptions of one link cannot both win.
// An unknown hash is an error wrapping ErrNotFound.
func (s *Store) ConsumeInvite(hash string) (*Invite, error) {
	var out *Invite
	err := s.write(func(w *wtxn) error {
		i, ok := w.first(TableInvites, "token", hash).(*Invite)
		if !ok {
			return notFoundf("no such invite")
		}
		if err := w.del(TableInvites, i); err != nil {
			return err
		}
		w.notify(TableInvites, i.Copy(), nil)
		out = i.Copy()
		return nil
	})
	return out, err
}

// DeleteInvite removes a user's invite; no invite is not an error.
func (s *Store) DeleteInvite(userID string) error {
	return s.write(func(w *wtxn) error { return w.deleteInviteOf(userID) })
}

func (w *wtxn) deleteInviteOf(userID string) error {
	i, ok := w.first(TableInvites, "id", userID).(*Invite)
	if !ok {
		return nil
	}
	if err := w.del(TableInvites, i); err != nil {
		return err
	}
	w.notify(TableInvites, i.Copy(), nil)
	return nil
}
