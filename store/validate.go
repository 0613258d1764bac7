package store

import (
	"net/mail"
	"strings"
	"unicode/utf8"
)

const (
	maxNameLen  = 64
	maxIDLen    = 128
	maxEmailLen = 254
)

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkName enforces 1–64 characters of [A-Za-z0-9._-] (plus inner spaces
// when spaces is set), starting with a letter or digit.
func checkName(what, v string, spaces bool) error {
	if v == "" {
		return invalidf("%s is required", what)
	}
	if len(v) > maxNameLen {
		return invalidf("%s %q is too long: at most %d characters", what, v, maxNameLen)
	}
	if !isAlnum(v[0]) {
		return invalidf("%s %q must start with a letter or a digit", what, v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isAlnum(c) || c == '.' || c == '_' || c == '-' {
			continue
		}
		if spaces && c == ' ' {
			continue
		}
		if spaces {
			return invalidf("%s %q may only contain letters, digits, spaces, '.', '_' and '-'", what, v)
		}
		return invalidf("%s %q may only contain letters, digits, '.', '_' and '-'", what, v)
	}
	if spaces && v[len(v)-1] == ' ' {
		return invalidf("%s %q must not end with a space", what, v)
	}
	return nil
}

// checkID accepts caller-chosen ids: 1–128 printable characters, no '/'
// (the journal joins ids with '/').
func checkID(what, v string) error {
	if v == "" {
		return invalidf("%s is required", what)
	}
	if len(v) > maxIDLen {
		return invalidf("%s %q is too long: at most %d characters", what, v, maxIDLen)
	}
	if !utf8.ValidString(v) {
		return invalidf("%s %q is not valid UTF-8", what, v)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == '/' || r == ' ' {
			return invalidf("%s %q must not contain spaces, '/' or control characters", what, v)
		}
	}
	return nil
}

func checkEmail(v string) error {
	if v == "" {
		return invalidf("email is required")
	}
	if len(v) > maxEmailLen {
		return invalidf("email %q is too long: at most %d characters", v, maxEmailLen)
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || a.Name != "" || !strings.Contains(v, "@") {
		return invalidf("email %q is not a valid address (expected the bare form user@example.com)", v)
	}
	return nil
}

// applyUserDefaults fills the documented defaults for empty enum fields.
func applyUserDefaults(u *User) {
	if u.State == "" {
		u.State = StateActive
	}
	if u.PasswordStatus == "" {
		u.PasswordStatus = PasswordPending
	}
	if u.PasswordAuthority == "" {
		u.PasswordAuthority = AuthorityLocal
	}
	if u.DelegatedAuthority == "" {
		u.DelegatedAuthority = AuthorityNone
	}
}

func validateUser(u *User) error {
	if err := checkID("user id", u.ID); err != nil {
		return err
	}
	if err := checkName("username", u.Username, false); err != nil {
		return err
	}
	if err := checkEmail(u.Email); err != nil {
		return err
	}
	switch u.State {
	case StateActive, StateStaged, StateSuspended:
	default:
		return invalidf("state %q is not one of active, staged, suspended", u.State)
	}
	switch u.PasswordStatus {
	case PasswordActive, PasswordPending, PasswordDelegated, PasswordExpired:
	case PasswordLocked:
		return invalidf("password status %q cannot be stored: a lock is set with LockedUntil", u.PasswordStatus)
	default:
		return invalidf("password status %q is not one of active, pending, delegated, expired", u.PasswordStatus)
	}
	switch u.PasswordAuthority {
	case AuthorityLocal, AuthorityAD:
	default:
		return invalidf("password authority %q is not one of local, ad", u.PasswordAuthority)
	}
	switch u.DelegatedAuthority {
	case AuthorityNone, AuthorityAD:
	default:
		return invalidf("delegated authority %q is not one of none, ad", u.DelegatedAuthority)
	}
	for k := range u.Attributes {
		if k == "" {
			return invalidf("attribute names must not be empty")
		}
	}
	return nil
}

// checkNewUsername holds the rules for a username being given, at create
// or rename, but not for one already stored: a journal with an old name
// that breaks them still loads, and the user can still be updated.
// An all-numeric name is refused: POSIX tools (chown, id, ls -l, sudo)
// read it as a uid, so the user "0" would name root on every host
// reading the directory.
func checkNewUsername(v string) error {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return nil
		}
	}
	return invalidf("username %q is all digits: POSIX hosts would read it as a uid number; add a letter", v)
}

func validateGroup(g *Group) error {
	if err := checkID("group id", g.ID); err != nil {
		return err
	}
	return checkName("group name", g.Name, true)
}
