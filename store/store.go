package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
)

// openTimeout bounds the wait for the journal's file lock, so a second
// daemon on the same data dir fails fast with a clear message.
var openTimeout = 2 * time.Second

// DefaultEventRetention is the number of audit events kept when
// Options.EventRetention is zero.
const DefaultEventRetention = 100000

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// EventRetention is how many audit events are kept; the oldest beyond
	// it are pruned as new ones are written. 0 means
	// DefaultEventRetention; a negative value keeps every event.
	EventRetention int
	// MinFreeSpace is the free space (bytes) in the data dir below which
	// Health fails ([store] min_free_space); 0: no floor.
	MinFreeSpace uint64
	// Logger receives warnings (nil: slog.Default()).
	Logger *slog.Logger
	// Now is the clock used for timestamps (nil: time.Now). For tests.
	Now func() time.Time
	// Postgres, when set, selects the PostgreSQL backend instead of the
	// journal in the data dir (pg.go).
	Postgres *PostgresOptions
}

// Store is the identity store. All methods are safe for concurrent use.
// Reads are lock-free memdb snapshots; writes are serialized, and each is
// one bbolt transaction (fsync'd) committed before the memdb transaction,
// so an acknowledged write is on disk.
type Store struct {
	dir, path string
	log       *slog.Logger
	clock     func() time.Time
	retention int // <= 0: keep everything

	// j is the durable layer (backend.go); db is set when it is the
	// embedded bbolt journal, for what only that backend has (Snapshot,
	// Verify's page-level reads).
	j  journal
	db *bolt.DB
	pg *pgJournal
	// mem and users are the writer's (under mu): memdb with the tables
	// and their primary indexes, and the users' secondary indexes
	// (index.go). Readers use cur, published after every commit.
	mem   *memdb.MemDB
	users *userIndexes
	cur   atomic.Pointer[view]

	// mu serializes writers; held across the bbolt and memdb commits.
	mu         sync.Mutex
	closed     atomic.Bool
	eventCount int // guarded by mu

	// notifyMu is taken before mu is released so subscribers see changes
	// in commit order while the next writer already proceeds.
	notifyMu sync.Mutex
	subsMu   sync.RWMutex
	subs     []func(Change)

	// Background event writer (see event.go).
	q          emitQueue
	closing    chan struct{} // closed when Close begins
	writerDone chan struct{}
	lostEvents error // set by the writer before writerDone closes

	closeOnce sync.Once
	closeErr  error

	health journalHealth // see health.go

	coordOnce sync.Once
	coordSt   *coordState // coord.go
}

// Open opens (creating if needed) the store whose journal is
// dir/gatewayd.db. An existing journal is first checked read-only; a
// damaged one is refused with an error wrapping ErrDamaged and is never
// modified. A journal written by a newer schema is refused; an older one
// is migrated in one transaction.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{
		dir:        dir,
		path:       filepath.Join(dir, journalFile),
		log:        opts.Logger,
		clock:      opts.Now,
		retention:  opts.EventRetention,
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.retention == 0 {
		s.retention = DefaultEventRetention
	}
	s.health.minFree = opts.MinFreeSpace
	if opts.Postgres != nil {
		return s.openPostgres(*opts.Postgres)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data dir %s: %w", dir, err)
	}

	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("data dir is accessible to other users; it holds password hashes (chmod 700 it)",
			"dir", dir, "mode", fi.Mode().Perm().String())
	}

	var ins *inspection
	fi, err := os.Stat(s.path)
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("state journal is accessible to other users; it holds password hashes (chmod 600 it)",
			"journal", s.path, "mode", fi.Mode().Perm().String())
	}
	switch {
	case err == nil && fi.Size() > 0:
		if ins, err = inspectJournal(s.path, s.log); err != nil {
			return nil, err
		}
	case err == nil, errors.Is(err, fs.ErrNotExist):
		// new journal (an empty file never held data)
	default:
		return nil, fmt.Errorf("cannot open state journal %s: %w", s.path, err)
	}

	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, classifyOpenError(s.path, err)
	}
	var data *loaded
	if ins != nil {
		data = ins.data
		if ins.olderMetaBad {
			// The newest transaction is intact; one commit rewrites the
			// bad page (see metapage.go), so a fallback exists again.
			s.log.Warn("the older of the journal's two bbolt meta pages was unreadable; nothing was lost, rewriting it",
				"journal", s.path)
			if err := db.Update(func(tx *bolt.Tx) error {
				return putMetaInt(tx, metaHealthProbe, uint64(time.Now().Unix()))
			}); err != nil {
				db.Close()
				return nil, fmt.Errorf("state journal %s: rewriting its older meta page: %w", s.path, err)
			}
		}
	}
	if data == nil {
		from := 0
		if ins != nil {
			from = ins.version
		}
		if err := migrate(s.path, db, from); err != nil {
			db.Close()
			return nil, err
		}
		err = guard(s.path, func() error {
			return db.View(func(tx *bolt.Tx) error {
				var err error
				data, err = loadJournal(s.path, tx, s.log)
				return err
			})
		})
		if err != nil {
			db.Close()
			return nil, err
		}
	}
	s.db, s.mem, s.users, s.eventCount = db, data.mem, data.users, data.events
	s.j = &boltJournal{path: s.path, db: db}
	s.publish(true)
	s.q.init()
	go s.eventWriter()
	return s, nil
}

// openPostgres is Open for the PostgreSQL backend.
func (s *Store) openPostgres(o PostgresOptions) (*Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j, data, err := openPostgres(ctx, o, s.log)
	if err != nil {
		return nil, err
	}
	s.j, s.pg, s.path = j, j, j.where()
	s.mem, s.users = data.mem, data.users
	s.publish(true)
	s.q.init()
	s.q.limit, s.q.dropWhenFull = o.EventQueue, true
	if s.q.limit <= 0 {
		s.q.limit = defaultPGEventQueue
	}
	go s.eventWriter()
	go s.follow()
	go s.resetFlusher()
	return s, nil
}

// guard runs fn, turning memory faults and panics raised while reading a
// damaged journal into a damage error.
func guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, "reading it failed: %v", r)
		}
	}()
	return fn()
}

// Path is the journal file.
func (s *Store) Path() string { return s.path }

// Close flushes queued events, then closes the journal. Writes after
// Close return ErrClosed. It returns an error if queued events could not
// be written.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing) // a failing writer gives up after a few more tries
		s.q.mu.Lock()
		s.q.closed = true
		s.q.space.Broadcast()
		s.q.mu.Unlock()
		s.q.signal()
		<-s.writerDone
		if s.pg != nil {
			s.pg.halt()
		}

		s.mu.Lock()
		s.closed.Store(true)
		err := s.j.close()
		s.mu.Unlock()
		if err != nil {
			err = fmt.Errorf("closing state journal %s: %w", s.j.where(), err)
		}
		s.closeErr = errors.Join(s.lostEvents, err)
	})
	return s.closeErr
}

// Subscribe registers fn to be called after every committed change to
// users, groups, memberships, directories, bindings and sync state, in
// commit order, one call per changed object (a cascade — a user and its
// memberships — gives several calls). Values are copies. Events and the
// LastLoginAt stamp of a login are not reported.
//
// fn runs on the writer's goroutine while later notifications wait: it
// must not block and must not write to the store (a write that reports a
// change deadlocks; reads, Emit and AppendEvents are safe); hand work to
// another goroutine instead.
func (s *Store) Subscribe(fn func(Change)) {
	s.subsMu.Lock()
	s.subs = append(s.subs, fn)
	s.subsMu.Unlock()
}

// Snapshot writes a consistent copy of the journal to w (an online
// backup, taken in a bbolt read transaction). RestoreSnapshot puts it back.
func (s *Store) Snapshot(w io.Writer) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.db == nil {
		return errors.New("a snapshot is of the embedded journal; back up a PostgreSQL store with pg_dump")
	}
	return s.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

// RestoreSnapshot writes a snapshot taken by Snapshot as the journal of
// data dir dir, which must not already have one. The snapshot is checked
// (as Open checks a journal) before it is put in place, so a bad snapshot
// leaves dir without a journal.
func RestoreSnapshot(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create data dir %s: %w", dir, err)
	}
	final := filepath.Join(dir, journalFile)
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("cannot restore into %s: %s already exists (restore into an empty data dir)", dir, final)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot restore into %s: %w", dir, err)
	}
	tmp := final + ".restore"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot restore into %s: %w", dir, err)
	}
	defer os.Remove(tmp)
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing snapshot to %s: %w", tmp, err)
	}
	// An older schema passes (Open migrates it); damage or a newer schema
	// does not.
	if _, err := inspectJournal(tmp, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("the snapshot is not usable: %w", err)
	}
	// Link fails if a journal appeared meanwhile; never overwrite one.
	if err := os.Link(tmp, final); err != nil {
		return fmt.Errorf("cannot restore into %s: %w", dir, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func (s *Store) now() time.Time { return s.clock().UTC() }

func (s *Store) subscribers() []func(Change) {
	s.subsMu.RLock()
	defer s.subsMu.RUnlock()
	return s.subs
}

// wtxn is one write: a memdb write txn and a bbolt write txn applied
// together, plus the changes to report once both have committed.
type wtxn struct {
	s       *Store
	mem     *memdb.Txn
	users   *userIndexes // nil until the write touches a user (userIx)
	tx      journalTx
	changes []Change
	after   []func() // run after commit, still under s.mu
}

// write runs fn in a write transaction. The bbolt transaction commits
// (fsync'd) first; only then the memdb one. If fn or the bbolt commit
// fails, both are rolled back and nothing changed.
func (s *Store) write(fn func(w *wtxn) error) error {
	locked, unlock := s.lockWriter()
	defer unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	tx, err := s.j.begin()
	if err != nil {
		err = fmt.Errorf("state journal %s: cannot start a write: %w", s.j.where(), err)
		s.health.noteWrite(err)
		return err
	}
	// Another replica's writes come first: fn decides on current state.
	var remote []Change
	if s.pg != nil {
		remote = s.applyRemote(tx.(*pgTx).pulled)
	}
	w := &wtxn{s: s, mem: s.mem.Txn(true), tx: tx, changes: remote}
	done := false
	defer func() {
		if !done {
			w.mem.Abort()
			tx.rollback()
			if len(remote) > 0 {
				s.notifyLocked(remote, locked)
			}
		}
	}()
	if err := fn(w); err != nil {
		return err
	}
	if err := tx.commit(); err != nil {
		err = fmt.Errorf("state journal %s: write failed, nothing was changed: %w", s.j.where(), err)
		s.health.noteWrite(err)
		return err
	}
	s.health.noteWrite(nil)
	w.mem.Commit()
	if w.users != nil {
		s.users = w.users
	}
	s.publish(w.users != nil)
	done = true
	for _, f := range w.after {
		f()
	}
	s.notifyLocked(w.changes, locked)
	return nil
}

// lockWriter takes the writer's lock. unlock releases it unless
// notifyLocked (given locked) already has.
func (s *Store) lockWriter() (locked *bool, unlock func()) {
	s.mu.Lock()
	held := true
	return &held, func() {
		if held {
			s.mu.Unlock()
		}
	}
}

// notifyLocked reports changes to the subscribers, in commit order: it
// is called with s.mu held and releases it (setting *locked false) once
// notifyMu orders it before the next writer's report.
func (s *Store) notifyLocked(changes []Change, locked *bool) {
	if len(changes) == 0 {
		return
	}
	subs := s.subscribers()
	if len(subs) == 0 {
		return
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.mu.Unlock()
	*locked = false
	for _, c := range changes {
		for _, fn := range subs {
			fn(c)
		}
	}
}

// put stores obj (which must not be modified afterwards) in both.
func (w *wtxn) put(table string, obj any) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encoding %s record: %w", table, err)
	}
	key := objectKey(obj)
	if err := w.tx.put(table, key, frameRecord(key, data)); err != nil {
		return err
	}
	if u, ok := obj.(*User); ok {
		old, _ := w.first(TableUsers, "id", u.ID).(*User)
		w.userIx().update(old, u)
	}
	return w.mem.Insert(table, obj)
}

// del removes obj (as found in memdb) from both.
func (w *wtxn) del(table string, obj any) error {
	key := objectKey(obj)
	var last []byte
	if w.s.pg != nil { // the tombstone tells other replicas what to drop
		data, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encoding %s record: %w", table, err)
		}
		last = frameRecord(key, data)
	}
	if err := w.tx.del(table, key, last); err != nil {
		return err
	}
	if u, ok := obj.(*User); ok {
		w.userIx().update(u, nil)
	}
	return w.mem.Delete(table, obj)
}

func (w *wtxn) notify(table string, before, after any) {
	w.changes = append(w.changes, Change{Table: table, Before: before, After: after})
}

// first returns the object or nil.
func (w *wtxn) first(table, index string, args ...any) any {
	o, err := w.mem.First(table, index, args...)
	if err != nil {
		return nil
	}
	return o
}

// all collects the objects of an index lookup (so they can be deleted
// without mutating under an iterator).
func all(txn *memdb.Txn, table, index string, args ...any) []any {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		return nil
	}
	var out []any
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o)
	}
	return out
}

// nextCounter takes the next uid/gid number; it is never handed out twice
// (the bump is in the same transaction as the object that uses it).
func (w *wtxn) nextCounter(key string) (int, error) {
	n, ok, err := w.tx.meta(key)
	if err != nil {
		return 0, err
	}
	if !ok {
		n = firstIDNumber
		if key == metaNextGID {
			n = firstGIDNumber
		}
	}
	if err := w.tx.setMeta(key, n+1); err != nil {
		return 0, err
	}
	return int(n), nil
}

func normLimit(limit int) int {
	switch {
	case limit <= 0:
		return 100
	case limit > 1000:
		return 1000
	}
	return limit
}
