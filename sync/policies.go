package sync

import "sort"

// BoundPolicy is the password policy of one directory a user is bound to.
type BoundPolicy struct {
	Directory string
	Policy    PasswordPolicy
}

// PoliciesOf returns the password policy of every configured directory the
// user is bound to (directly or through a group), sorted by directory
// name: what a password set for that user must satisfy to reach them all
// (SPEC 3.6). The self-service page shows and checks them.
func (e *Engine) PoliciesOf(userID string) ([]BoundPolicy, error) {
	var out []BoundPolicy
	for name, d := range e.directories() {
		ok, err := e.bound(name, userID)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, BoundPolicy{Directory: name, Policy: d.Policy})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Directory < out[j].Directory })
	return out, nil
}
