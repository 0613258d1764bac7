package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The journal is a bbolt file: one bucket per table (key = primary id,
// value = JSON of the object; events are a batch to a value, see
// boltevents.go) plus a meta bucket holding the schema version, the
// uid/gid counters and Health's probe stamp. Every value is framed with a
// checksum (record.go).

const (
	journalFile = "gatewayd.db"
	metaBucket  = "meta"

	metaSchemaVersion = "schema_version"
	metaNextUID       = "next_uid"
	metaNextGID       = "next_gid"

	// Users and groups get numbers from separate ranges, so a user's
	// private-group gidNumber (= uidNumber) never names a real group on
	// a Linux host reading the LDAP tree.
	firstIDNumber  = 10000
	firstGIDNumber = 1000000

	// boltMagic is bbolt's meta page marker; see journalHeaderCheck.
	boltMagic      = 0xED0CDAED
	boltPageHeader = 16
)

// checkJournalOnOpen runs bbolt's tx.Check (page reachability, double
// frees, key order) before the journal is opened for writing. Measured
// (TestCheckCostOn10kUsers, 2-core VM): a 16 MB journal with 10k users
// takes ~190 ms to inspect and load without it and ~280 ms with it, a
// one-off cost at start that is worth catching damage early, so it stays on.
var checkJournalOnOpen = true

// Journal keys.
func userKey(u *User) []byte             { return []byte(u.ID) }
func groupKey(g *Group) []byte           { return []byte(g.ID) }
func membershipKey(m *Membership) []byte { return []byte(m.GroupID + "/" + m.UserID) }
func directoryKey(d *Directory) []byte   { return []byte(d.Name) }
func bindingKey(b *Binding) []byte       { return []byte(b.ID) }
func syncStateKey(s *SyncState) []byte   { return []byte(s.Directory + "/" + s.SubjectID) }
func eventKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// objectKey returns the journal key for a stored object.
func objectKey(obj any) []byte {
	switch o := obj.(type) {
	case *User:
		return userKey(o)
	case *Group:
		return groupKey(o)
	case *Membership:
		return membershipKey(o)
	case *Event:
		return eventKey(o.Seq)
	case *Directory:
		return directoryKey(o)
	case *Binding:
		return bindingKey(o)
	case *SyncState:
		return syncStateKey(o)
	case *ADImportState:
		return adImportKey(o)
	case *Invite:
		return inviteKey(o)
	}
	panic(fmt.Sprintf("store: no journal key for %T", obj))
}

func decodeAs[T any](v []byte) (any, error) {
	o := new(T)
	if err := json.Unmarshal(v, o); err != nil {
		return nil, err
	}
	return o, nil
}

// decoders by table.
var decoders = map[string]func([]byte) (any, error){
	TableUsers:       decodeAs[User],
	TableGroups:      decodeAs[Group],
	TableMemberships: decodeAs[Membership],
	TableEvents:      decodeAs[Event],
	TableDirectories: decodeAs[Directory],
	TableBindings:    decodeAs[Binding],
	TableSyncState:   decodeAs[SyncState],
	TableADImport:    decodeAs[ADImportState],
	TableInvites:     decodeAs[Invite],
}

// loadOrder puts referenced tables before the tables that reference them.
var loadOrder = []string{
	TableUsers, TableGroups, TableMemberships, TableDirectories,
	TableBindings, TableSyncState, TableADImport, TableInvites, TableEvents,
}

// printableKey renders a journal key for an error message.
func printableKey(table string, k []byte) string {
	if table == TableEvents && len(k) == 8 {
		return "seq " + strconv.FormatUint(binary.BigEndian.Uint64(k), 10)
	}
	return strconv.Quote(string(k))
}

// readMetaInt reads a decimal counter from the meta bucket; ok is false
// when the key is absent.
func readMetaInt(path string, tx *bolt.Tx, key string) (n uint64, ok bool, err error) {
	n, _, ok, err = readMetaFramed(path, tx, key)
	return n, ok, err
}

// readMetaFramed is readMetaInt that also says whether the value carried
// a checksum frame. Unframed values are those of a journal older than
// schema version 4 (migrate.go frames them); checkMeta refuses them in a
// current journal.
func readMetaFramed(path string, tx *bolt.Tx, key string) (n uint64, framed, ok bool, err error) {
	b := tx.Bucket([]byte(metaBucket))
	if b == nil {
		return 0, false, false, nil
	}
	v := b.Get([]byte(key))
	if v == nil {
		return 0, false, false, nil
	}
	if len(v) > 0 && v[0] == recordTag {
		if v, err = unframeRecord([]byte(key), v); err != nil {
			return 0, false, false, damaged(path, "bucket meta, key %q: %v; %s", key, err, verifyHint)
		}
		framed = true
	}
	n, err = strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, false, false, damaged(path, "bucket meta, key %q: %q is not a number", key, v)
	}
	return n, framed, true, nil
}

func putMetaInt(tx *bolt.Tx, key string, n uint64) error {
	b, err := tx.CreateBucketIfNotExists([]byte(metaBucket))
	if err != nil {
		return err
	}
	return b.Put([]byte(key), frameRecord([]byte(key), []byte(strconv.FormatUint(n, 10))))
}

// readSchemaVersion: a journal without a version is version 0.
func readSchemaVersion(path string, tx *bolt.Tx) (int, error) {
	n, framed, ok, err := readMetaFramed(path, tx, metaSchemaVersion)
	if err != nil || !ok {
		return 0, err
	}
	if n > 1<<20 {
		return 0, damaged(path, "bucket meta: schema version %d is not plausible", n)
	}
	if !framed && n >= framedSchemaVersion {
		// Version 4 and later always frame it: the tag byte was altered.
		return 0, damaged(path, "bucket meta, key %q: schema version %d %v", metaSchemaVersion, n, errUnframed)
	}
	return int(n), nil
}

func newerSchemaError(path string, v int) error {
	return fmt.Errorf("state journal %s has schema version %d, but this gatewayd only knows versions up to %d: "+
		"it was written by a newer gatewayd; run that version (or restore a backup taken before the upgrade)",
		path, v, schemaVersion)
}

// loaded is the result of reading a journal into memory.
type loaded struct {
	mem    *memdb.MemDB
	users  *userIndexes
	events int
}

// loadJournal decodes every bucket into a fresh memdb, checking what the
// write paths guarantee (key matches the object, unique names, references
// exist). Any failure is reported as damage; nothing is written.
//
// Decoding (JSON, checksums) runs on a second goroutine, a batch ahead of
// the indexing, which must stay in journal order for its checks: at 100k
// users the two were ~0.8 s and ~1.5 s of a ~2.4 s load, one after the
// other on one core.
func loadJournal(path string, tx *bolt.Tx, log *slog.Logger) (*loaded, error) {
	res, mtx, err := newLoaded()
	if err != nil {
		return nil, err
	}
	defer mtx.Abort()
	batches := make(chan []decodedRecord, 4)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		decodeJournal(path, tx, batches, stop)
	}()
	defer func() {
		close(stop)
		for range batches { // let the decoder see stop and end
		}
		<-done // the records point into tx's pages
	}()
	for batch := range batches {
		for _, r := range batch {
			if r.err != nil {
				return nil, r.err
			}
			if r.obj == nil { // a batch of events: checked, not kept in memory
				res.events += r.events
				continue
			}
			if err := admitRecord(mtx, res.users, r.table, r.obj, log, path); err != nil {
				return nil, damaged(path, "bucket %s, key %s: %v", r.table, printableKey(r.table, r.key), err)
			}
		}
	}
	mtx.Commit()
	return res, nil
}

// newLoaded is an empty state to load into, and its write transaction
// (to Commit once everything is in).
func newLoaded() (*loaded, *memdb.Txn, error) {
	mem, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, nil, err
	}
	return &loaded{mem: mem, users: newUserIndexes()}, mem.Txn(true), nil
}

// decodedRecord is one journal record as decodeJournal hands it over: the
// object, or the damage that ends the load.
type decodedRecord struct {
	table  string
	key    []byte
	obj    any
	events int // in an events batch
	err    error
}

// decodeJournal decodes every bucket in load order into batches, ending
// with the first damaged record, or when stop closes. It closes out.
func decodeJournal(path string, tx *bolt.Tx, out chan<- []decodedRecord, stop <-chan struct{}) {
	defer close(out)
	const batchSize = 256
	var batch []decodedRecord
	send := func() bool {
		select {
		case out <- batch:
			batch = make([]decodedRecord, 0, batchSize)
			return true
		case <-stop:
			return false
		}
	}
	// A damaged file may point bbolt outside its mapping, on this
	// goroutine as on the caller's (see guard).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			batch = append(batch, decodedRecord{err: damaged(path, "reading it failed: %v", r)})
			send()
		}
	}()
	for _, table := range loadOrder {
		b := tx.Bucket([]byte(table))
		if b == nil {
			batch = append(batch, decodedRecord{err: damaged(path, "bucket %s is missing", table)})
			send()
			return
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if table == TableEvents {
				n, err := eventDamage(k, v)
				if err != nil {
					batch = append(batch, decodedRecord{err: damaged(path, "bucket %s, %v; %s", table, err, verifyHint)})
					send()
					return
				}
				batch = append(batch, decodedRecord{table: table, key: k, events: n})
				if len(batch) == batchSize && !send() {
					return
				}
				continue
			}
			obj, err := decodeRecord(table, k, v, true)
			if err != nil {
				batch = append(batch, decodedRecord{err: damaged(path, "bucket %s, key %s: %v; %s", table, printableKey(table, k), err, verifyHint)})
				send()
				return
			}
			batch = append(batch, decodedRecord{table: table, key: k, obj: obj})
			if len(batch) == batchSize && !send() {
				return
			}
		}
	}
	if len(batch) > 0 {
		send()
	}
}

// decodeRecord checks one journal record as Open and VerifyJournal both
// do: its frame (when the journal is framed), then its decoding and that
// it belongs to its key. An event (one record of a batch, or of a journal
// older than schema version 5) is checked but not built (events are not
// kept in memory, see ListEvents): obj is nil for one.
func decodeRecord(table string, k, v []byte, framed bool) (obj any, err error) {
	if v == nil {
		return nil, errors.New("unexpected nested bucket")
	}
	payload := v
	if framed {
		if payload, err = unframeRecord(k, v); err != nil {
			return nil, err
		}
	}
	if table == TableEvents {
		return nil, checkEventRecord(k, payload)
	}
	if obj, err = decoders[table](payload); err != nil {
		return nil, fmt.Errorf("value does not decode: %w", err)
	}
	if want := objectKey(obj); !bytes.Equal(k, want) {
		return nil, fmt.Errorf("the record inside belongs to key %s", printableKey(table, want))
	}
	return obj, nil
}

// admitRecord checks a decoded object against what is loaded so far and
// indexes it.
func admitRecord(mtx *memdb.Txn, users *userIndexes, table string, obj any, log *slog.Logger, path string) error {
	if err := checkLoaded(mtx, users, obj, log, path); err != nil {
		return err
	}
	if err := mtx.Insert(table, obj); err != nil {
		return fmt.Errorf("cannot index: %w", err)
	}
	if u, ok := obj.(*User); ok {
		users.update(nil, u)
	}
	return nil
}

// checkLoaded verifies one decoded object against what is already loaded.
func checkLoaded(mtx *memdb.Txn, users *userIndexes, obj any, log *slog.Logger, path string) error {
	exists := func(t, index string, args ...any) bool {
		o, err := mtx.First(t, index, args...)
		return err == nil && o != nil
	}
	switch o := obj.(type) {
	case *User:
		if o.ID == "" || o.Username == "" || o.Email == "" {
			return errors.New("user without id, username or email")
		}
		if x := users.byUsername(o.Username); x != nil {
			return fmt.Errorf("username %q is also used by user %s", o.Username, x.ID)
		}
		if x := users.byEmail(o.Email); x != nil {
			return fmt.Errorf("email %q is also used by user %s", o.Email, x.ID)
		}
		if err := validateUser(o); err != nil {
			// Rules may have tightened since it was written: keep it.
			log.Warn("stored user breaks a validation rule", "journal", path, "user", o.ID, "problem", err.Error())
		}
	case *Group:
		if o.ID == "" || o.Name == "" {
			return errors.New("group without id or name")
		}
		if x, _ := mtx.First(TableGroups, "name", o.Name); x != nil {
			return fmt.Errorf("group name %q is also used by group %s", o.Name, x.(*Group).ID)
		}
	case *Membership:
		if !exists(TableUsers, "id", o.UserID) {
			return fmt.Errorf("membership of missing user %s", o.UserID)
		}
		if !exists(TableGroups, "id", o.GroupID) {
			return fmt.Errorf("membership in missing group %s", o.GroupID)
		}
	case *Directory:
		if o.Name == "" {
			return errors.New("directory without name")
		}
	case *Binding:
		if !exists(TableDirectories, "id", o.Directory) {
			return fmt.Errorf("binding to missing directory %q", o.Directory)
		}
		if o.Kind == BindUser && !exists(TableUsers, "id", o.SubjectID) ||
			o.Kind == BindGroup && !exists(TableGroups, "id", o.SubjectID) {
			return fmt.Errorf("binding of missing %s %s", o.Kind, o.SubjectID)
		}
	case *SyncState:
		if o.Directory == "" || o.SubjectID == "" {
			return errors.New("sync state without directory or subject")
		}
		if !exists(TableDirectories, "id", o.Directory) {
			return fmt.Errorf("sync state for missing directory %q", o.Directory)
		}
	case *ADImportState:
		if o.Domain == "" {
			return errors.New("ad import state without domain")
		}
	case *Invite:
		if o.UserID == "" || o.TokenHash == "" {
			return errors.New("invite without user or token hash")
		}
		if !exists(TableUsers, "id", o.UserID) {
			return fmt.Errorf("invite for missing user %s", o.UserID)
		}
	case *Event:
		if o.Seq == 0 {
			return errors.New("event without sequence number")
		}
	}
	return nil
}

// journalHeaderCheck reads bbolt's first meta page by hand so that a file
// cut short before its second meta page is reported before bbolt maps it.
func journalHeaderCheck(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [boltPageHeader + 12]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return damaged(path, "the file is only %d bytes long: it was truncated", size)
	}
	if binary.NativeEndian.Uint32(hdr[boltPageHeader:]) != boltMagic {
		return nil // not readable as a first meta page; bbolt tries the second
	}
	ps := int64(binary.NativeEndian.Uint32(hdr[boltPageHeader+8:]))
	if ps > 0 && size < 2*ps {
		return damaged(path, "the file is only %d bytes long, less than its two %d-byte header pages: it was truncated", size, ps)
	}
	return nil
}

// classifyOpenError turns a bbolt.Open error into an actionable one.
func classifyOpenError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("state journal %s is locked: is another gatewayd running on this data dir? (waited %s)", path, openTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum):
		return damaged(path, "its header pages are unreadable: %v", err)
	case errors.Is(err, berrors.ErrVersionMismatch):
		return damaged(path, "its header has an unknown bbolt format version: %v", err)
	}
	return fmt.Errorf("cannot open state journal %s: %w", path, err)
}

// inspection is what inspectJournal learned from a read-only pass.
type inspection struct {
	version int
	data    *loaded // nil unless version == schemaVersion
	// olderMetaBad: bbolt's older meta page fails validation (nothing is
	// lost; the next commit rewrites that page).
	olderMetaBad bool
}

// inspectJournal opens an existing journal read-only and checks it before
// anything may write to it: header, size against the high-water mark, a
// walk of every page in use (memory faults from a damaged file become
// errors), bbolt's consistency check and, when the schema is current, a
// full decode into memory. It never writes to the file.
func inspectJournal(path string, log *slog.Logger) (res *inspection, err error) {
	return inspectJournalMeta(path, log, false)
}

// inspectJournalMeta is inspectJournal that, with acceptRollback, checks
// the state of the older meta page instead of refusing a newest meta page
// that fails validation (AcceptRollback).
func inspectJournalMeta(path string, log *slog.Logger, acceptRollback bool) (res *inspection, err error) {
	if log == nil {
		log = slog.Default()
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open state journal %s: %w", path, err)
	}
	if err := journalHeaderCheck(path, fi.Size()); err != nil {
		return nil, err
	}
	mp, _, err := readMetaPages(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read state journal %s: %w", path, err)
	}
	verdict, good, bad := mp.judge()
	if verdict == metaNewestBad && !acceptRollback {
		return nil, metaRollbackError(path, good, bad)
	}
	// metaUnreadable: bbolt's open below reports it.
	if use, ok := mp.inUse(); ok {
		if err := walkPages(path, use, mp.pageSize); err != nil {
			return nil, err
		}
	}

	// A damaged file may point bbolt outside its mapping: turn the fault
	// into a panic and the panic into an error.
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, damaged(path, "reading it failed: %v", r)
		}
	}()

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		return nil, classifyOpenError(path, err)
	}
	defer db.Close()
	tx, err := db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("cannot read state journal %s: %w", path, err)
	}
	defer tx.Rollback()

	if tx.Size() > fi.Size() {
		return nil, damaged(path, "the file is %d bytes long but its header says %d: it was truncated", fi.Size(), tx.Size())
	}

	// Touch every page in use. Nested buckets are not part of the format.
	err = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return damaged(path, "bucket %s, key %q: unexpected nested bucket", name, k)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}

	if checkJournalOnOpen {
		var problems []string
		for cerr := range tx.Check() { // drain fully: the checker goroutine sends until done
			if len(problems) < 3 {
				msg := cerr.Error()
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				problems = append(problems, msg)
			}
		}
		if len(problems) > 0 {
			return nil, damaged(path, "bbolt consistency check: %s", strings.Join(problems, "; "))
		}
	}

	res = &inspection{olderMetaBad: verdict == metaOlderBad}
	if res.version, err = readSchemaVersion(path, tx); err != nil {
		return nil, err
	}
	if res.version > schemaVersion {
		return nil, newerSchemaError(path, res.version)
	}
	if res.version == schemaVersion {
		if err := checkMeta(path, tx); err != nil {
			return nil, err
		}
		if res.data, err = loadJournal(path, tx, log); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// checkMeta makes sure a current-version journal has its counters and
// that every meta value passes its checksum.
func checkMeta(path string, tx *bolt.Tx) error {
	if b := tx.Bucket([]byte(metaBucket)); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			if _, err := unframeRecord(k, v); err != nil {
				return damaged(path, "bucket meta, key %q: %v; %s", k, err, verifyHint)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, k := range []string{metaNextUID, metaNextGID} {
		if _, ok, err := readMetaInt(path, tx, k); err != nil {
			return err
		} else if !ok {
			return damaged(path, "bucket meta: counter %s is missing", k)
		}
	}
	return nil
}
