package store

// The lookups below hand out the stored record itself, not a copy, for
// a hot read path that only reads: the copy of each user (its attribute
// map and lists) was the largest allocation of a cached RADIUS login.
// Records in the store are never modified in place (a write stores a new
// one), so the record stays as it was when looked up; the caller must not
// modify it, nor anything it points to.

// ViewUserByUsername is UserByUsername without the copy: the result must
// not be modified.
func (s *Store) ViewUserByUsername(username string) (*User, error) {
	if u := s.read().users.byUsername(username); u != nil {
		return u, nil
	}
	return nil, notFoundf("no user with username %q", username)
}

// ViewUserByEmail is UserByEmail without the copy: the result must not
// be modified.
func (s *Store) ViewUserByEmail(email string) (*User, error) {
	if u := s.read().users.byEmail(email); u != nil {
		return u, nil
	}
	return nil, notFoundf("no user with email %q", email)
}
