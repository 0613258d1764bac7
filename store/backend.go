package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// journal is the durable layer under memdb: every write is one of its
// transactions, committed before the memdb one (store.go). Two
// implementations: boltJournal (the embedded default, one file in
// data_dir) and pgJournal (PostgreSQL, shared by several replicas).
//
// Values handed to a journal are framed records (record.go) whatever the
// backend, so decodeRecord and admitRecord check a record the same way
// wherever it was read from.
type journal interface {
	// begin starts a write transaction. Writers are serialized by the
	// store's lock (and, across replicas, by the backend).
	begin() (journalTx, error)
	// listEvents calls fn with the key and the record (JSON, its
	// checksum checked and its frame removed) of each event after seq
	// after, in ascending order, until fn says stop.
	listEvents(after uint64, fn func(k, v []byte) (stop bool, err error)) error
	// where names the journal in messages: its file, or the database.
	where() string
	close() error
}

// journalTx is one write transaction of a journal.
type journalTx interface {
	// put stores a framed record under key in table.
	put(table string, key, framed []byte) error
	// del removes key from table; framed is the record it held (a
	// replicated backend keeps it in a tombstone, so other replicas know
	// what to drop from memory).
	del(table string, key, framed []byte) error
	// meta reads a counter; ok is false when it was never set.
	meta(key string) (n uint64, ok bool, err error)
	setMeta(key string, n uint64) error
	// eventSeq is the sequence number of the newest event ever written.
	eventSeq() uint64
	// putEvent adds one framed event record to this write's batch (the
	// events of a write get consecutive seqs). v is copied: the caller
	// may reuse it.
	putEvent(k, v []byte) error
	setEventSeq(n uint64) error
	// pruneEvents drops the oldest events beyond retention, whole
	// batches at a time (so a few more than retention may be kept), at
	// most about limit in this transaction; count is how many the store
	// believes it holds (with this transaction's). It returns how many it
	// dropped.
	pruneEvents(count, retention, limit int) (int, error)
	commit() error
	rollback()
}

// boltJournal is the embedded journal (journal.go has its layout).
type boltJournal struct {
	path string
	db   *bolt.DB
	// evBuf is the batch buffer the last write left, for the next one
	// (writes are serialized by the store's lock).
	evBuf []byte
}

func (j *boltJournal) where() string { return j.path }
func (j *boltJournal) close() error  { return j.db.Close() }

func (j *boltJournal) begin() (journalTx, error) {
	tx, err := j.db.Begin(true)
	if err != nil {
		return nil, err
	}
	return &boltTx{j: j, path: j.path, tx: tx, evRecs: j.evBuf[:0], batchBytes: eventValueBytes(j.db)}, nil
}

type boltTx struct {
	j      *boltJournal
	path   string
	tx     *bolt.Tx
	events *bolt.Bucket // looked up once per transaction
	// The events of this write, as batch values (boltevents.go):
	// evRecs holds them back to back, the one being built from evStart
	// (its frame, then its evN entries); evLast is the newest seq.
	evRecs     []byte
	evStart    int
	batchBytes int // the size events values are cut at (boltevents.go)
	evN        int
	evLast     uint64
}

func (t *boltTx) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("state journal %s: %w", t.path, err)
}

func (t *boltTx) put(table string, key, framed []byte) error {
	return t.wrap(t.tx.Bucket([]byte(table)).Put(key, framed))
}

func (t *boltTx) del(table string, key, _ []byte) error {
	return t.wrap(t.tx.Bucket([]byte(table)).Delete(key))
}

func (t *boltTx) meta(key string) (uint64, bool, error) { return readMetaInt(t.path, t.tx, key) }
func (t *boltTx) setMeta(key string, n uint64) error    { return t.wrap(putMetaInt(t.tx, key, n)) }

func (t *boltTx) eventBucket() *bolt.Bucket {
	if t.events == nil {
		t.events = t.tx.Bucket([]byte(TableEvents))
		// Keys only grow and records are never rewritten, so a page
		// split never needs room for a later insert in the middle: pack
		// pages full (bbolt's default, 0.5, is for random inserts).
		t.events.FillPercent = 1.0
	}
	return t.events
}

func (t *boltTx) eventSeq() uint64           { return t.eventBucket().Sequence() }
func (t *boltTx) setEventSeq(n uint64) error { return t.wrap(t.eventBucket().SetSequence(n)) }

func (t *boltTx) rollback() {
	_ = t.tx.Rollback()
	if cap(t.evRecs) <= maxKeptBatchBuffer {
		t.j.evBuf = t.evRecs[:0]
	}
}
