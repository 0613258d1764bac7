package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Verify checks that the in-memory view and the journal agree: every
// object is reachable through each of its indexes, every reference
// (membership, binding, sync state) points at an existing object, each
// index holds exactly one entry per object, and the journal holds the same
// JSON for every object (behind a valid checksum) and nothing else. It returns a descriptive error
// for the first mismatch. It reads one consistent point in time and does
// not block writers for long.
func (s *Store) Verify() error {
	if s.pg != nil {
		return s.verifyPostgres()
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	v := s.read()
	tx, err := s.db.Begin(false)
	events := s.eventCount
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("verify: cannot read state journal %s: %w", s.path, err)
	}
	defer tx.Rollback()

	if err := checkMeta(s.path, tx); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, table := range loadOrder {
		if tx.Bucket([]byte(table)) == nil {
			return fmt.Errorf("verify: journal bucket %s is missing", table)
		}
	}
	if err := verifyEvents(tx.Bucket([]byte(TableEvents)), events); err != nil {
		return err
	}
	return verifyAgainst(v, boltRecords{tx})
}

// records is a journal's tables as Verify reads them.
type records interface {
	// get is the framed record of key, nil when there is none.
	get(table string, key []byte) []byte
	// keys calls fn with each key of table, in order, until it says stop.
	keys(table string, fn func(k []byte) (stop bool))
}

type boltRecords struct{ tx *bolt.Tx }

func (r boltRecords) get(table string, key []byte) []byte {
	return r.tx.Bucket([]byte(table)).Get(key)
}

func (r boltRecords) keys(table string, fn func([]byte) bool) {
	c := r.tx.Bucket([]byte(table)).Cursor()
	for k, _ := c.First(); k != nil && !fn(k); k, _ = c.Next() {
	}
}

// verifyAgainst checks view v against the journal's records of every
// table but events.
func verifyAgainst(v *view, rec records) error {
	txn := v.txn()
	for _, table := range loadOrder {
		if table == TableEvents {
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
			raw := rec.get(table, key)
			if raw == nil {
				return fmt.Errorf("verify: %s is in memory but not in the journal", name)
			}
			got, err := unframeRecord(key, raw)
			if err != nil {
				return fmt.Errorf("verify: %s: journal record: %v", name, err)
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
		if table == TableUsers {
			if err := verifyUserIndexes(txn, v.users); err != nil {
				return fmt.Errorf("verify: %w", err)
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
		var extra []byte
		rec.keys(table, func(k []byte) bool {
			jn++
			if jn > n {
				extra = k
				return true
			}
			return false
		})
		if extra != nil {
			return fmt.Errorf("verify: journal bucket %s has more records than memory (%d); e.g. key %s", table, n, printableKey(table, extra))
		}
		if jn != n {
			return fmt.Errorf("verify: journal bucket %s has %d records, memory has %d", table, jn, n)
		}
	}
	return nil
}

// verifyEvents checks the events bucket, which has no memdb copy: every
// batch passes checkEventBatch, every record decodes in full, and the
// retention counter agrees with the number of events.
func verifyEvents(b *bolt.Bucket, want int) error {
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if _, err := eventDamage(k, v); err != nil {
			return fmt.Errorf("verify: %s %w", TableEvents, err)
		}
		body, _ := unframeRecord(k, v)
		err := eachEventEntry(body, func(seq uint64, rec []byte) (bool, error) {
			n++
			name := fmt.Sprintf("%s %s (in %s)", TableEvents, printableKey(TableEvents, eventKey(seq)), batchName(k))
			raw, _ := unframeRecord(eventKey(seq), rec)
			if _, err := decoders[TableEvents](raw); err != nil {
				return true, fmt.Errorf("verify: %s: journal record does not decode: %w", name, err)
			}
			return false, nil
		})
		if err != nil {
			return err
		}
	}
	if n != want {
		return fmt.Errorf("verify: %d events stored but the retention counter says %d", n, want)
	}
	return nil
}

// secondaryIndexes lists the non-primary indexes that every object has.
var secondaryIndexes = map[string][]string{
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

// verifyUserIndexes checks the users' B-tree indexes against the table:
// each user is reachable under every key it has, through an entry that
// holds this very object, and no index holds anything else.
func verifyUserIndexes(txn *memdb.Txn, x *userIndexes) error {
	it, err := txn.Get(TableUsers, "id")
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	type strIndex struct {
		name string
		ix   *ordIndex[string, User]
		want int
	}
	strs := []*strIndex{{name: "username", ix: x.username}, {name: "email", ix: x.email},
		{name: "cn", ix: x.cn}, {name: "entry_uuid", ix: x.entryUUID}}
	nums := 0
	for o := it.Next(); o != nil; o = it.Next() {
		u := o.(*User)
		for _, si := range strs {
			for _, k := range si.ix.keys(u) {
				si.want++
				if !si.ix.has(k, u) {
					return fmt.Errorf("users %q: not reachable through index %s (%q)", u.ID, si.name, k)
				}
			}
		}
		nums++
		if !x.uidNumber.has(u.UIDNumber, u) {
			return fmt.Errorf("users %q: not reachable through index uid_number (%d)", u.ID, u.UIDNumber)
		}
	}
	for _, si := range strs {
		if n := si.ix.len(); n != si.want {
			return fmt.Errorf("users index %s has %d entries; its %d users have %d keys", si.name, n, nums, si.want)
		}
	}
	if n := x.uidNumber.len(); n != nums {
		return fmt.Errorf("users index uid_number has %d entries for %d users", n, nums)
	}
	return nil
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
		errs = append(errs, is(TableUsers, "id", v.ID)) // the rest: verifyUserIndexes
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

// JournalReport is what VerifyJournal found in a journal.
type JournalReport struct {
	Path          string `json:"path"`
	SchemaVersion int    `json:"schema_version"`
	// Records is how many records were read.
	Records int `json:"records"`
	// Problems are about the file as a whole (header, meta pages, bbolt's
	// page structure); Damaged names single records.
	Problems []string        `json:"problems,omitempty"`
	Damaged  []DamagedRecord `json:"damaged,omitempty"`
	// MoreDamaged counts damaged records beyond the first maxReported.
	MoreDamaged int `json:"more_damaged,omitempty"`
	// Dependent counts records that are fine themselves but refer to a
	// damaged one (a membership of a damaged user); they are not listed.
	Dependent int `json:"dependent,omitempty"`
	// Notes need no action (an older schema that the next start upgrades).
	Notes []string `json:"notes,omitempty"`
}

// DamagedRecord is one record that fails its checksum, does not decode or
// contradicts the rest of the journal.
type DamagedRecord struct {
	Bucket  string `json:"bucket"`
	Key     string `json:"key"` // printable: quoted, or "seq N" for events
	Problem string `json:"problem"`
}

// OK reports a journal with nothing wrong.
func (r *JournalReport) OK() bool {
	return len(r.Problems) == 0 && len(r.Damaged) == 0 && r.MoreDamaged == 0
}

// maxReported bounds JournalReport.Damaged.
const maxReported = 1000

func (r *JournalReport) damagedRecord(bucket, key, format string, args ...any) {
	if len(r.Damaged) >= maxReported {
		r.MoreDamaged++
		return
	}
	r.Damaged = append(r.Damaged, DamagedRecord{Bucket: bucket, Key: key, Problem: fmt.Sprintf(format, args...)})
}

func (r *JournalReport) problem(err error) { r.Problems = append(r.Problems, detailOf(err)) }

// detailOf is a damage error without the path and the advice, which a
// report gives once.
func detailOf(err error) string {
	var d *damagedError
	if errors.As(err, &d) {
		return d.detail
	}
	return err.Error()
}

// VerifyJournal checks the journal of data dir dir, which no daemon may
// have open, without writing to it: the checks Open makes at start, but it
// goes on past the first problem and names every damaged record (bad
// checksum, bad JSON, under the wrong key, a duplicate name, a dangling
// reference). The error is for a journal it could not read at all (none
// there, or locked by a running daemon); damage is in the report.
func VerifyJournal(dir string) (*JournalReport, error) {
	path := filepath.Join(dir, journalFile)
	rep := &JournalReport{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open state journal %s: %w", path, err)
	}
	if err := journalHeaderCheck(path, fi.Size()); err != nil {
		rep.problem(err)
		return rep, nil
	}
	mp, _, err := readMetaPages(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read state journal %s: %w", path, err)
	}
	switch verdict, good, bad := mp.judge(); verdict {
	case metaNewestBad:
		rep.problem(metaRollbackError(path, good, bad))
		rep.Problems[len(rep.Problems)-1] += "; the records below are those of the older page's state (what `gatewayd store accept-rollback` would keep)"
	case metaOlderBad:
		rep.Notes = append(rep.Notes, fmt.Sprintf("the older bbolt meta page (page %d) is unreadable (%v); nothing is lost: the next start rewrites it", bad.slot, bad.err))
	}

	if use, ok := mp.inUse(); ok {
		if err := walkPages(path, use, mp.pageSize); err != nil {
			rep.problem(err) // bbolt would loop or overflow its stack on it
			return rep, nil
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state journal %s is in use: stop the gatewayd using this data dir first (store verify reads a stopped daemon's journal)", path)
		}
		if err := classifyOpenError(path, err); errors.Is(err, ErrDamaged) {
			rep.problem(err)
			return rep, nil
		}
		return nil, classifyOpenError(path, err)
	}
	defer db.Close()
	err = guard(path, func() error { return verifyJournalTx(path, db, fi.Size(), rep) })
	if err != nil {
		rep.problem(err)
	}
	return rep, nil
}

// verifyJournalTx reads every record in one read transaction.
func verifyJournalTx(path string, db *bolt.DB, size int64, rep *JournalReport) error {
	tx, err := db.Begin(false)
	if err != nil {
		return fmt.Errorf("cannot read state journal %s: %w", path, err)
	}
	defer tx.Rollback()
	if tx.Size() > size {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the file is %d bytes long but its header says %d: it was truncated", size, tx.Size()))
		return nil
	}
	n := 0
	for cerr := range tx.Check() { // drain fully: the checker goroutine sends until done
		if n++; n <= 10 {
			rep.Problems = append(rep.Problems, "bbolt consistency check: "+cerr.Error())
		}
	}
	if rep.SchemaVersion, err = readSchemaVersion(path, tx); err != nil {
		rep.problem(err)
	}
	if rep.SchemaVersion > schemaVersion {
		return newerSchemaError(path, rep.SchemaVersion)
	}
	framed := rep.SchemaVersion >= framedSchemaVersion
	current := rep.SchemaVersion == schemaVersion
	if !framed {
		rep.Notes = append(rep.Notes, fmt.Sprintf("schema version %d: its records carry no checksums yet (the next start of gatewayd upgrades the journal and adds them); they were decoded and cross-checked only", rep.SchemaVersion))
	}

	if b := tx.Bucket([]byte(metaBucket)); b != nil && framed {
		err := guard(path, func() error {
			return b.ForEach(func(k, v []byte) error {
				rep.Records++
				if _, err := unframeRecord(k, v); err != nil {
					rep.damagedRecord(metaBucket, strconv.Quote(string(k)), "%v", err)
				}
				return nil
			})
		})
		if err != nil {
			rep.problem(err)
		}
	}
	if current {
		for _, k := range []string{metaNextUID, metaNextGID} {
			if _, ok, err := readMetaInt(path, tx, k); err == nil && !ok {
				rep.Problems = append(rep.Problems, fmt.Sprintf("bucket meta: counter %s is missing", k))
			}
		}
	}

	mem, err := memdb.NewMemDB(schema())
	if err != nil {
		return err
	}
	mtx := mem.Txn(true)
	defer mtx.Abort()
	users := newUserIndexes()
	quiet := slog.New(slog.DiscardHandler)      // rules tightened since: not damage
	damagedKeys := map[string]map[string]bool{} // damaged keys by table
	for _, table := range loadOrder {
		b := tx.Bucket([]byte(table))
		if b == nil {
			if current {
				rep.Problems = append(rep.Problems, fmt.Sprintf("bucket %s is missing", table))
			}
			continue
		}
		var last []byte
		err := guard(path, func() error {
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				last = bytes.Clone(k)
				if table == TableEvents && rep.SchemaVersion >= batchedEventsVersion {
					rep.Records += verifyEventBatch(rep, k, v)
					continue
				}
				rep.Records++
				bad := func(format string, args ...any) {
					rep.damagedRecord(table, printableKey(table, k), format, args...)
					if damagedKeys[table] == nil {
						damagedKeys[table] = map[string]bool{}
					}
					damagedKeys[table][string(k)] = true
				}
				obj, err := decodeRecord(table, k, v, framed)
				if err != nil {
					bad("%v", err)
					continue
				}
				if obj == nil { // an event, checked as Open does
					continue
				}
				if refersToDamaged(damagedKeys, obj) {
					rep.Dependent++
					continue
				}
				if err := admitRecord(mtx, users, table, obj, quiet, path); err != nil {
					bad("%v", err)
				}
			}
			return nil
		})
		if err != nil {
			where := "at its first record"
			if last != nil {
				where = "after key " + printableKey(table, last)
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("bucket %s: reading stopped %s: %s", table, where, detailOf(err)))
		}
	}
	return nil
}

// verifyEventBatch reports what checkEventBatch finds in one events
// value: a damaged event by its seq, with the batch in the problem;
// damage to the batch as a whole as "batch seq N". It returns how many
// records were read (events, or the value when none could be).
func verifyEventBatch(rep *JournalReport, k, v []byte) int {
	entries := 0
	n := checkEventBatch(k, v, func(seq uint64, err error) {
		if seq == 0 {
			rep.damagedRecord(TableEvents, batchName(k), "%v", err)
			return
		}
		entries++
		rep.damagedRecord(TableEvents, printableKey(TableEvents, eventKey(seq)), "in %s: %v", batchName(k), err)
	})
	return max(n+entries, 1) // a batch with nothing readable is one record
}

// refersToDamaged reports an object that names a record VerifyJournal
// found damaged (users, groups and directories are keyed by their id).
func refersToDamaged(bad map[string]map[string]bool, obj any) bool {
	switch o := obj.(type) {
	case *Membership:
		return bad[TableUsers][o.UserID] || bad[TableGroups][o.GroupID]
	case *Binding:
		subj := TableUsers
		if o.Kind == BindGroup {
			subj = TableGroups
		}
		return bad[TableDirectories][o.Directory] || bad[subj][o.SubjectID]
	case *SyncState:
		return bad[TableDirectories][o.Directory]
	case *Invite:
		return bad[TableUsers][o.UserID]
	}
	return false
}
