package store

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Lookups for the LDAP door's query planner: equality and prefix reads on
// the attributes SSSD, nslcd and LDAP-aware applications filter on, and
// cheap candidate counts, so that a search looks at a few entries instead
// of walking every user. The LDAP filter still decides on each candidate:
// these only have to return every entry that can match.

// FoldCase is LDAP caseIgnoreMatch's preparation as the door applies it:
// lowercased, leading and trailing spaces removed, inner runs of spaces
// collapsed to one. The cn indexes are keyed by it.
func FoldCase(s string) string {
	s = strings.Trim(strings.ToLower(s), " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prev := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' && prev {
			continue
		}
		prev = c == ' '
		b.WriteByte(c)
	}
	return b.String()
}

// CommonName is the user's LDAP cn: the display name, else "first last",
// else the username.
func (u *User) CommonName() string {
	switch {
	case u.DisplayName != "":
		return u.DisplayName
	case u.LastName == "" && u.FirstName != "":
		return strings.TrimSpace(u.FirstName) // without concatenating (a copy per rendered entry)
	case u.FirstName == "" && u.LastName != "":
		return strings.TrimSpace(u.LastName)
	case u.FirstName != "" || u.LastName != "":
		return strings.TrimSpace(u.FirstName + " " + u.LastName)
	}
	return u.Username
}

// EntryUUID is the LDAP entryUUID of the object with this id: the id
// itself when it is a UUID (lowercased), else a stable name-based
// (version 5 style) UUID derived from it.
func EntryUUID(id string) string {
	l := strings.ToLower(id)
	if IsUUID(l) {
		return l
	}
	h := sha1.Sum([]byte("gatewayd:" + id))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// UserGroupEntryUUID is the entryUUID of the user's private group
// (ou=usergroups), derived from the user's id.
func UserGroupEntryUUID(userID string) string { return EntryUUID("usergroup:" + userID) }

// IsUUID reports whether s is a UUID in canonical lower-case form
// (8-4-4-4-12 hex digits), the form entryUUID values take.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// keysIndex is a memdb indexer over keys computed from the object (none:
// the object is not in the index; the schema sets AllowMissing). Keys are
// stored as given: the key functions fold them.
type keysIndex struct {
	keys func(obj any) []string
	fold func(string) string
}

func (x keysIndex) FromObject(obj any) (bool, [][]byte, error) {
	ks := x.keys(obj)
	if len(ks) == 0 {
		return false, nil, nil
	}
	out := make([][]byte, 0, len(ks))
	for _, k := range ks {
		out = append(out, append([]byte(k), 0))
	}
	return true, out, nil
}

func (x keysIndex) arg(args []any) (string, error) {
	if len(args) != 1 {
		return "", errors.New("store: index takes one argument")
	}
	s, ok := args[0].(string)
	if !ok {
		return "", errors.New("store: index argument must be a string")
	}
	return x.fold(s), nil
}

func (x keysIndex) FromArgs(args ...any) ([]byte, error) {
	s, err := x.arg(args)
	return append([]byte(s), 0), err
}

func (x keysIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	s, err := x.arg(args)
	return []byte(s), err
}

// groupCNIndex keys groups by their folded name (the name index only
// lowercases, so "Domain  Users" would be missed by cn=domain users).
var groupCNIndex = keysIndex{fold: FoldCase, keys: func(obj any) []string {
	return []string{FoldCase(obj.(*Group).Name)}
}}

var groupUUIDIndex = keysIndex{fold: strings.ToLower, keys: func(obj any) []string {
	g := obj.(*Group)
	if e := EntryUUID(g.ID); e != g.ID {
		return []string{e}
	}
	return nil
}}

// UserKey names a user attribute with an ordered index, for prefix reads.
type UserKey uint8

const (
	// UserKeyUsername is the username, lowercased.
	UserKeyUsername UserKey = iota
	// UserKeyEmail is the email, lowercased.
	UserKeyEmail
	// UserKeyCN is CommonName, folded (FoldCase).
	UserKeyCN
)

// index is k's index and the fold its keys were made with.
func (k UserKey) index(x *userIndexes) (*ordIndex[string, User], func(string) string) {
	switch k {
	case UserKeyEmail:
		return x.email, strings.ToLower
	case UserKeyCN:
		return x.cn, FoldCase
	}
	return x.username, strings.ToLower
}

// collectUsers returns a visitor that copies up to limit users (limit <=
// 0: all) into *out.
func collectUsers(out *[]*User, limit int) func(*User) bool {
	return func(u *User) bool {
		if limit > 0 && len(*out) == limit {
			return false
		}
		*out = append(*out, u.Copy())
		return true
	}
}

// counter returns a visitor that counts into *n, up to max (max <= 0: all).
func counter[T any](n *int, max int) func(*T) bool {
	return func(*T) bool {
		*n++
		return max <= 0 || *n < max
	}
}

func groupsIn(it memdb.ResultIterator, err error, limit int) ([]*Group, error) {
	if err != nil {
		return nil, err
	}
	var out []*Group
	for o := it.Next(); o != nil; o = it.Next() {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, o.(*Group).Copy())
	}
	return out, nil
}

// countIn counts the objects of an index read, up to max (max <= 0: all).
func countIn(it memdb.ResultIterator, err error, max int) int {
	if err != nil {
		return 0
	}
	n := 0
	for o := it.Next(); o != nil; o = it.Next() {
		n++
		if max > 0 && n >= max {
			break
		}
	}
	return n
}

// UsersByUIDNumber returns every user with that uidNumber (one, unless an
// old journal repeats a number).
func (s *Store) UsersByUIDNumber(n int) ([]*User, error) {
	var out []*User
	s.read().users.uidNumber.each(n, collectUsers(&out, 0))
	return out, nil
}

// UsersByCommonName returns the users whose CommonName folds to cn's fold.
func (s *Store) UsersByCommonName(cn string) ([]*User, error) {
	var out []*User
	s.read().users.cn.each(FoldCase(cn), collectUsers(&out, 0))
	return out, nil
}

// UsersByEntryUUID returns the users whose entry, or whose private group,
// has this entryUUID (in any case).
func (s *Store) UsersByEntryUUID(uuid string) ([]*User, error) {
	v := s.read()
	l := strings.ToLower(uuid)
	var out []*User
	if k := uuidKey(l); k != "" {
		v.users.entryUUID.each(k, collectUsers(&out, 0))
	}
	if o, _ := v.txn().First(TableUsers, "id", l); o != nil {
		out = append(out, o.(*User).Copy())
	}
	return out, nil
}

// UsersWithPrefix returns up to limit users (limit <= 0: all) whose key
// starts with prefix, in any case, ordered by that key.
func (s *Store) UsersWithPrefix(k UserKey, prefix string, limit int) ([]*User, error) {
	ix, fold := k.index(s.read().users)
	var out []*User
	withPrefix(ix, fold(prefix), collectUsers(&out, limit))
	return out, nil
}

// EachUserWithPrefix calls fn with each user whose key starts with
// prefix, in any case, ordered by that key, until fn returns false. Like
// EachMember it hands fn the store's own User, not a copy, and fn must
// not modify it. A write never modifies a stored User either (it stores
// a new one), so the caller may go on reading it after fn returns: the
// LDAP door counts a prefix's candidates and then renders the same ones,
// and copying each was most of the lookup.
func (s *Store) EachUserWithPrefix(k UserKey, prefix string, fn func(*User) bool) {
	ix, fold := k.index(s.read().users)
	withPrefix(ix, fold(prefix), fn)
}

// CountUsersWithPrefix counts the users UsersWithPrefix would return, up
// to max (max <= 0: all), without copying them.
func (s *Store) CountUsersWithPrefix(k UserKey, prefix string, max int) int {
	ix, fold := k.index(s.read().users)
	n := 0
	withPrefix(ix, fold(prefix), counter[User](&n, max))
	return n
}

// GroupsByGIDNumber returns every group with that gidNumber.
func (s *Store) GroupsByGIDNumber(n int) ([]*Group, error) {
	it, err := s.rtxn().Get(TableGroups, "gid_number", n)
	return groupsIn(it, err, 0)
}

// GroupsByCommonName returns the groups whose name folds to cn's fold.
func (s *Store) GroupsByCommonName(cn string) ([]*Group, error) {
	it, err := s.rtxn().Get(TableGroups, "cn", cn)
	return groupsIn(it, err, 0)
}

// GroupsWithPrefix returns up to limit groups (limit <= 0: all) whose
// folded name starts with prefix's fold, ordered by it.
func (s *Store) GroupsWithPrefix(prefix string, limit int) ([]*Group, error) {
	it, err := s.rtxn().Get(TableGroups, "cn_prefix", prefix)
	return groupsIn(it, err, limit)
}

// CountGroupsWithPrefix counts what GroupsWithPrefix would return, up to max.
func (s *Store) CountGroupsWithPrefix(prefix string, max int) int {
	it, err := s.rtxn().Get(TableGroups, "cn_prefix", prefix)
	return countIn(it, err, max)
}

// GroupsByEntryUUID returns the groups with this entryUUID (in any case).
func (s *Store) GroupsByEntryUUID(uuid string) ([]*Group, error) {
	txn := s.rtxn()
	it, err := txn.Get(TableGroups, "entry_uuid", uuid)
	out, err := groupsIn(it, err, 0)
	if err != nil {
		return nil, err
	}
	if o, _ := txn.First(TableGroups, "id", strings.ToLower(uuid)); o != nil {
		out = append(out, o.(*Group).Copy())
	}
	return out, nil
}

// CountMembers counts the group's direct members, up to max.
func (s *Store) CountMembers(groupID string, max int) int {
	it, err := s.rtxn().Get(TableMemberships, "group_id", groupID)
	return countIn(it, err, max)
}

// CountGroupsOfUser counts the user's groups, up to max.
func (s *Store) CountGroupsOfUser(userID string, max int) int {
	it, err := s.rtxn().Get(TableMemberships, "user_id", userID)
	return countIn(it, err, max)
}
