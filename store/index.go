package store

import (
	"cmp"
	"encoding/hex"
	"strings"

	"github.com/google/btree"
	memdb "github.com/hashicorp/go-memdb"
)

// The users table's secondary indexes (username, email, uid_number, cn,
// entry_uuid) are copy-on-write B-trees, not memdb indexes. In memdb each
// index entry is an immutable-radix leaf and node with two watch channels,
// ~390 bytes, and with six indexes that was most of the heap at 100,000
// users (issue 14); a B-tree entry is a key and a pointer in a node's
// slice, ~25-35 bytes. memdb keeps the table and its primary (id) index.
//
// Consistency: the writer owns one set of trees (Store.users). A write
// transaction works on a clone (btree.Clone is O(1); nodes are copied on
// first change), so an aborted write leaves the writer's set untouched.
// After the memdb commit, still under Store.mu, the writer publishes a
// view: a memdb snapshot and a clone of its trees, swapped in with one
// atomic store. A reader loads the view once and reads memdb and the
// indexes of the same commit; nothing it holds is ever modified.

// btreeDegree: nodes of up to 63 entries; a change copies ~3 nodes per index.
const btreeDegree = 32

// ixEntry is one index entry: a key and the object it leads to. A probe
// (obj nil) sorts before every entry with its key.
type ixEntry[K cmp.Ordered, T any] struct {
	key K
	obj *T
}

// ordIndex is one ordered, non-unique secondary index. Entries are ordered
// by key, then by the object's id, so a key shared by several objects
// (a repeated uidNumber in an old journal) lists them all, lowest id first,
// as memdb's non-unique indexes did.
type ordIndex[K cmp.Ordered, T any] struct {
	t    *btree.BTreeG[ixEntry[K, T]]
	keys func(*T) []K // the object's keys (none: not indexed)
}

func newOrdIndex[K cmp.Ordered, T any](id func(*T) string, keys func(*T) []K) *ordIndex[K, T] {
	less := func(a, b ixEntry[K, T]) bool {
		if a.key != b.key {
			return a.key < b.key
		}
		if a.obj == nil || b.obj == nil {
			return a.obj == nil && b.obj != nil
		}
		return id(a.obj) < id(b.obj)
	}
	return &ordIndex[K, T]{t: btree.NewG(btreeDegree, less), keys: keys}
}

func (x *ordIndex[K, T]) clone() *ordIndex[K, T] {
	return &ordIndex[K, T]{t: x.t.Clone(), keys: x.keys}
}

// update replaces old's entries (nil: none) by new's (nil: none). old and
// new have the same id.
func (x *ordIndex[K, T]) update(old, new *T) {
	var nk []K
	if new != nil {
		nk = x.keys(new)
	}
	if old != nil {
		for _, k := range x.keys(old) {
			if !contains(nk, k) {
				x.t.Delete(ixEntry[K, T]{key: k, obj: old})
			}
		}
	}
	for _, k := range nk {
		x.t.ReplaceOrInsert(ixEntry[K, T]{key: k, obj: new})
	}
}

func contains[K comparable](ks []K, k K) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// each calls fn for the objects with key k, in id order, until it returns false.
func (x *ordIndex[K, T]) each(k K, fn func(*T) bool) {
	x.t.AscendGreaterOrEqual(ixEntry[K, T]{key: k}, func(e ixEntry[K, T]) bool {
		return e.key == k && fn(e.obj)
	})
}

// first is the object with key k with the lowest id, or nil.
func (x *ordIndex[K, T]) first(k K) *T {
	var out *T
	x.each(k, func(o *T) bool { out = o; return false })
	return out
}

// from calls fn for every entry with a key >= k, in order, until it returns false.
func (x *ordIndex[K, T]) from(k K, fn func(K, *T) bool) {
	x.t.AscendGreaterOrEqual(ixEntry[K, T]{key: k}, func(e ixEntry[K, T]) bool { return fn(e.key, e.obj) })
}

// has reports whether the index holds exactly o (this pointer) under k.
func (x *ordIndex[K, T]) has(k K, o *T) bool {
	e, ok := x.t.Get(ixEntry[K, T]{key: k, obj: o})
	return ok && e.obj == o
}

func (x *ordIndex[K, T]) len() int { return x.t.Len() }

// withPrefix calls fn for the objects whose key starts with p, in key order.
func withPrefix[T any](x *ordIndex[string, T], p string, fn func(*T) bool) {
	x.from(p, func(k string, o *T) bool { return strings.HasPrefix(k, p) && fn(o) })
}

// userIndexes are the users table's secondary indexes.
type userIndexes struct {
	username, email, cn *ordIndex[string, User]
	// entryUUID keys are the 16 raw bytes of the UUID (uuidKey), not its
	// 36-character text.
	entryUUID *ordIndex[string, User]
	uidNumber *ordIndex[int, User]
}

func userID(u *User) string { return u.ID }

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func newUserIndexes() *userIndexes {
	return &userIndexes{
		username: newOrdIndex(userID, func(u *User) []string { return nonEmpty(strings.ToLower(u.Username)) }),
		email:    newOrdIndex(userID, func(u *User) []string { return nonEmpty(strings.ToLower(u.Email)) }),
		cn:       newOrdIndex(userID, func(u *User) []string { return []string{FoldCase(u.CommonName())} }),
		entryUUID: newOrdIndex(userID, func(u *User) []string {
			ks := userEntryUUIDs(u)
			for i, k := range ks {
				ks[i] = uuidKey(k)
			}
			return ks
		}),
		uidNumber: newOrdIndex(userID, func(u *User) []int { return []int{u.UIDNumber} }),
	}
}

// userEntryUUIDs are the entryUUIDs the entry_uuid index answers for a
// user: its private group's and, when it is not its id itself (ids are
// lowercase UUIDs unless a caller chose them), its own entry's: the id
// index answers the common case.
func userEntryUUIDs(u *User) []string {
	ks := []string{UserGroupEntryUUID(u.ID)}
	if e := EntryUUID(u.ID); e != u.ID {
		ks = append(ks, e)
	}
	return ks
}

// uuidKey is the entry_uuid key of a canonical lowercase UUID; "" for
// anything else (which no entry has).
func uuidKey(s string) string {
	if !IsUUID(s) {
		return ""
	}
	var b [16]byte
	hex.Decode(b[0:4], []byte(s[0:8]))
	hex.Decode(b[4:6], []byte(s[9:13]))
	hex.Decode(b[6:8], []byte(s[14:18]))
	hex.Decode(b[8:10], []byte(s[19:23]))
	hex.Decode(b[10:16], []byte(s[24:36]))
	return string(b[:])
}

func (x *userIndexes) clone() *userIndexes {
	return &userIndexes{
		username: x.username.clone(), email: x.email.clone(), cn: x.cn.clone(),
		entryUUID: x.entryUUID.clone(), uidNumber: x.uidNumber.clone(),
	}
}

// update moves a user's entries from old (nil: a new user) to new (nil: deleted).
func (x *userIndexes) update(old, new *User) {
	x.username.update(old, new)
	x.email.update(old, new)
	x.cn.update(old, new)
	x.entryUUID.update(old, new)
	x.uidNumber.update(old, new)
}

func (x *userIndexes) byUsername(name string) *User { return x.username.first(strings.ToLower(name)) }
func (x *userIndexes) byEmail(email string) *User   { return x.email.first(strings.ToLower(email)) }

// view is what a reader sees: memdb and the secondary indexes of one commit.
type view struct {
	mem   *memdb.MemDB // a snapshot; never written
	users *userIndexes // never written
}

func (v *view) txn() *memdb.Txn { return v.mem.Txn(false) }

// read is the current view.
func (s *Store) read() *view { return s.cur.Load() }

// rtxn is a memdb read transaction of the current view, for reads that
// need no secondary B-tree index.
func (s *Store) rtxn() *memdb.Txn { return s.read().txn() }

// publish makes the writer's state the readers' view. Called under s.mu
// after the memdb commit; changedUsers says whether s.users changed
// (else the old view's trees are shared).
func (s *Store) publish(changedUsers bool) {
	users := s.users
	if old := s.cur.Load(); old != nil && !changedUsers {
		users = old.users
	} else {
		users = users.clone()
	}
	s.cur.Store(&view{mem: s.mem.Snapshot(), users: users})
}

// userRead is the users indexes as this write transaction sees them,
// for lookups (no clone).
func (w *wtxn) userRead() *userIndexes {
	if w.users != nil {
		return w.users
	}
	return w.s.users
}

// userIx is the write transaction's users indexes, cloned from the
// writer's on first use.
func (w *wtxn) userIx() *userIndexes {
	if w.users == nil {
		w.users = w.s.users.clone()
	}
	return w.users
}
