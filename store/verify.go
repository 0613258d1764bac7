package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
)

// Verify checks that the in-memory view and the journal agree: every
// object is reachable through each of its indexes, every reference
// (membership, binding, sync state) points at an existing object, each
// index holds exactly one entry per object, and the journal holds the same
// JSON for every object and nothing else. It returns a descriptive error
// for the first mismatch. It reads one consistent point in time and does
// not block writers for long.
func (s *Store) Verify() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	txn := s.mem.Txn(false)
	tx, err := s.db.Begin(false)
	events := s.eventCount
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("verify: cannot read state journal %s: %w", s.path, err)
	}
	defer tx.Rollback()

	for _, table := range loadOrder {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return fmt.Errorf("verify: journal bucket %s is missing", table)
		}
		if table == TableEvents {
			if err := verifyEvents(b, events); err != nil {
				return err
			}
			continue
		}
		n := 0
		it, err := txn.Get(table, "id")
		if err != nil {
			return fmt.Errorf("verify: %s: %w", table, err)
		}
		for o := it.Next(); o != nil; o = it.Next() {
			n++
			key := objectKey(o)
			name := fmt.Sprintf("%s %s", table, printableKey(table, key))
			if err := verifyObject(txn, o); err != nil {
				return fmt.Errorf("verify: %s: %w", name, err)
			}
			want, err := json.Marshal(o)
			if err != nil {
				return fmt.Errorf("verify: %s: %w", name, err)
			}
			got := b.Get(key)
			if got == nil {
				return fmt.Errorf("verify: %s is in memory but not in the journal", name)
			}
			if !bytes.Equal(got, want) {
				// Written by another encoder (a migration, an older
				// version)? Compare what it decodes to.
				dec, err := decoders[table](got)
				if err != nil {
					return fmt.Errorf("verify: %s: journal record does not decode: %w", name, err)
				}
				if norm, _ := json.Marshal(dec); !bytes.Equal(norm, want) {
					return fmt.Errorf("verify: %s differs: journal has %s, memory has %s", name, got, want)
				}
			}
		}
		// Secondary indexes hold one entry per object.
		for _, index := range secondaryIndexes[table] {
			if c := count(txn, table, index); c != n {
				return fmt.Errorf("verify: %s index %s has %d entries for %d objects", table, index, c, n)
			}
		}
		// Nothing in the journal that is not in memory.
		jn := 0
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			jn++
			if jn > n {
				return fmt.Errorf("verify: journal bucket %s has more records than memory (%d); e.g. key %s", table, n, printableKey(table, k))
			}
		}
		if jn != n {
			return fmt.Errorf("verify: journal bucket %s has %d records, memory has %d", table, jn, n)
		}
	}
	return nil
}

// verifyEvents checks the events bucket, which has no memdb copy: every
// record decodes and belongs to its key, and the retention counter agrees
// with the number of records.
func verifyEvents(b *bolt.Bucket, want int) error {
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		n++
		name := fmt.Sprintf("%s %s", TableEvents, printableKey(TableEvents, k))
		o, err := decoders[TableEvents](v)
		if err != nil {
			return fmt.Errorf("verify: %s: journal record does not decode: %w", name, err)
		}
		if got := objectKey(o); !bytes.Equal(got, k) {
			return fmt.Errorf("verify: %s holds the record of %s", name, printableKey(TableEvents, got))
		}
	}
	if n != want {
		return fmt.Errorf("verify: %d events stored but the retention counter says %d", n, want)
	}
	return nil
}

// secondaryIndexes lists the non-primary indexes that every object has.
var secondaryIndexes = map[string][]string{
	TableUsers:       {"username", "email", "uid_number"},
	TableGroups:      {"name", "gid_number"},
	TableMemberships: {"group_id", "user_id"},
	TableBindings:    {"directory", "subject_id"},
	TableSyncState:   {"directory", "subject_id"},
}

func count(txn *memdb.Txn, table, index string) int {
	it, err := txn.Get(table, index)
	if err != nil {
		return -1
	}
	n := 0
	for o := it.Next(); o != nil; o = it.Next() {
		n++
	}
	return n
}

// verifyObject checks one object's index entries and references.
func verifyObject(txn *memdb.Txn, o any) error {
	is := func(table, index string, args ...any) error {
		x, err := txn.First(table, index, args...)
		if err != nil {
			return fmt.Errorf("index %s: %w", index, err)
		}
		if x != o {
			return fmt.Errorf("not reachable through index %s (%v)", index, args)
		}
		return nil
	}
	exists := func(table, id string) error {
		if x, _ := txn.First(table, "id", id); x == nil {
			return fmt.Errorf("refers to %s %q, which does not exist", table, id)
		}
		return nil
	}
	var errs []error
	switch v := o.(type) {
	case *User:
		errs = append(errs, is(TableUsers, "id", v.ID), is(TableUsers, "username", v.Username), is(TableUsers, "email", v.Email))
	case *Group:
		errs = append(errs, is(TableGroups, "id", v.ID), is(TableGroups, "name", v.Name))
	case *Membership:
		errs = append(errs, is(TableMemberships, "id", v.GroupID, v.UserID), exists(TableUsers, v.UserID), exists(TableGroups, v.GroupID))
	case *Directory:
		errs = append(errs, is(TableDirectories, "id", v.Name))
	case *Binding:
		subj := TableUsers
		if v.Kind == BindGroup {
			subj = TableGroups
		}
		errs = append(errs, is(TableBindings, "id", v.ID), exists(TableDirectories, v.Directory), exists(subj, v.SubjectID))
	case *SyncState:
		errs = append(errs, is(TableSyncState, "id", v.Directory, v.SubjectID), exists(TableDirectories, v.Directory))
	case *ADImportState:
		errs = append(errs, is(TableADImport, "id", v.Domain))
	case *Invite:
		errs = append(errs, is(TableInvites, "id", v.UserID), is(TableInvites, "token", v.TokenHash), exists(TableUsers, v.UserID))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
