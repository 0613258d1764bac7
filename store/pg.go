package store

import (
	"context"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// The PostgreSQL journal: the same records as the embedded one, shared by
// every replica (pgschema/ has the tables and why they look so).
//
// Each replica keeps its whole memdb view, so reads (logins) never wait
// on the database. A write takes the advisory lock pgWriteLock in its
// transaction, first applies what other replicas committed since this
// one last looked (so its checks — unique names, references — see every
// replica's writes), then commits its rows stamped with the next change
// sequence number and a NOTIFY. A follower goroutine applies other
// replicas' commits: woken by the NOTIFY, and polling every
// PostgresOptions.Poll regardless, because notifications are lost across
// reconnects.

//go:embed pgschema/*.sql
var pgSchema embed.FS

// pgWriteLock is the advisory lock key serializing writers ("gwjournal").
const pgWriteLock = 0x67776a6f75726e6c

// pgChannel is the NOTIFY channel; the payload is the change sequence.
const pgChannel = "gatewayd_changes"

// pgVersionTable is goose's bookkeeping table.
const pgVersionTable = "gatewayd_schema_version"

// PostgresOptions selects the PostgreSQL backend ([store] backend =
// "postgres").
type PostgresOptions struct {
	// DSN is the connection string (a secret: it may hold a password).
	DSN string
	// Replica names this process in leases and claims (default: host
	// name, pid and a random tag).
	Replica string
	// Poll is how often the follower looks for other replicas' writes
	// when no notification came (default 500 ms).
	Poll time.Duration
	// EventQueue bounds login events waiting while the database is
	// unreachable; beyond it they are dropped, counted and logged
	// (default 100000).
	EventQueue int
	// Timeout bounds one database round of a write (default 5 s).
	Timeout time.Duration
}

// ErrUnavailable marks a write refused because the database cannot be
// reached; the admin API answers 503. Logins keep being served from
// memory meanwhile.
var ErrUnavailable = errors.New("the store's database is unavailable")

type pgJournal struct {
	pool    *pgxpool.Pool
	dsn     string
	name    string // host:port/db for messages
	timeout time.Duration
	poll    time.Duration
	log     *slog.Logger
	// applied is the newest change sequence number in this replica's
	// memdb. Guarded by Store.mu.
	applied uint64
	stop    chan struct{}
	done    chan struct{}

	replica string // PostgresOptions.Replica, or defaultReplica()

	// Failure resets waiting for resetFlusher (pgcoord.go).
	resetMu   sync.Mutex
	resets    map[string]struct{}
	resetWake chan struct{}
	resetDone chan struct{}
}

// pgRow is one gw_records row.
type pgRow struct {
	tbl     string
	key     []byte
	val     []byte
	deleted bool
	seq     uint64
}

func (j *pgJournal) where() string { return "PostgreSQL database " + j.name }

func (j *pgJournal) unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s on %s: %v", ErrUnavailable, op, j.name, err)
}

// openPostgres connects, applies pending schema migrations and loads the
// records into a fresh memdb.
func openPostgres(ctx context.Context, o PostgresOptions, log *slog.Logger) (*pgJournal, *loaded, error) {
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, nil, errors.New("[store] dsn is not a PostgreSQL connection string (postgres://user@host:port/db or key=value pairs)")
	}
	cfg.MaxConns = 8
	j := &pgJournal{
		dsn: o.DSN, timeout: o.Timeout, poll: o.Poll, log: log, replica: o.Replica,
		name: net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))) + "/" + cfg.ConnConfig.Database,
		stop: make(chan struct{}), done: make(chan struct{}),
		resetWake: make(chan struct{}, 1), resetDone: make(chan struct{}),
	}
	if j.timeout <= 0 {
		j.timeout = 5 * time.Second
	}
	if j.poll <= 0 {
		j.poll = 500 * time.Millisecond
	}
	if j.replica == "" {
		j.replica = defaultReplica()
	}
	if j.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, nil, j.unavailable("connecting", err)
	}
	if err := j.migrate(ctx); err != nil {
		j.pool.Close()
		return nil, nil, err
	}
	data, err := j.load(ctx, log)
	if err != nil {
		j.pool.Close()
		return nil, nil, err
	}
	return j, data, nil
}

// migrate applies the embedded migrations with goose; its session lock
// keeps replicas starting together from racing.
func (j *pgJournal) migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(j.pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, mustSub(pgSchema, "pgschema"),
		goose.WithTableName(pgVersionTable), goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("store: schema migrations: %w", err)
	}
	cur, target, err := p.GetVersions(ctx)
	if err != nil {
		return j.unavailable("reading the schema version", err)
	}
	if cur > target {
		return fmt.Errorf("%s has schema version %d, newer than this gatewayd knows (%d): run the newer gatewayd, or restore a backup taken before the upgrade", j.where(), cur, target)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("%s: applying schema migrations: %w", j.where(), err)
	}
	return nil
}

// load reads every live record in one snapshot, checking each as the
// embedded journal's start does.
func (j *pgJournal) load(ctx context.Context, log *slog.Logger) (*loaded, error) {
	tx, err := j.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, j.unavailable("starting the load", err)
	}
	defer tx.Rollback(ctx)
	var seq int64
	if err := tx.QueryRow(ctx, `SELECT n FROM gw_meta WHERE name = 'change_seq'`).Scan(&seq); err != nil {
		return nil, j.unavailable("reading the change sequence", err)
	}
	res, mtx, err := newLoaded()
	if err != nil {
		return nil, err
	}
	defer mtx.Abort()
	for _, table := range loadOrder {
		if table == TableEvents {
			continue
		}
		rows, err := tx.Query(ctx, `SELECT key, val FROM gw_records WHERE tbl = $1 AND NOT deleted ORDER BY key`, table)
		if err != nil {
			return nil, j.unavailable("loading "+table, err)
		}
		var k, v []byte
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
			where := func(format string, args ...any) error {
				return fmt.Errorf("%w: %s, table %s, key %s: %s", ErrDamaged, j.where(), table, printableKey(table, k), fmt.Sprintf(format, args...))
			}
			obj, err := decodeRecord(table, k, v, true)
			if err != nil {
				return where("%v; run gatewayd store verify", err)
			}
			if err := admitRecord(mtx, res.users, table, obj, log, j.where()); err != nil {
				return where("%v", err)
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrDamaged) {
				return nil, err
			}
			return nil, j.unavailable("loading "+table, err)
		}
	}
	mtx.Commit()
	j.applied = uint64(seq)
	return res, nil
}

// halt stops the follower; Close calls it before taking the writer's
// lock, which the follower takes to apply what it read.
func (j *pgJournal) halt() {
	select {
	case <-j.stop:
	default:
		close(j.stop)
	}
	<-j.done
	<-j.resetDone
}

func (j *pgJournal) close() error {
	j.pool.Close()
	return nil
}

// begin opens the transaction, takes the write lock and reads, in one
// round trip, the counters and what other replicas wrote since.
func (j *pgJournal) begin() (journalTx, error) {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	tx, err := j.pool.Begin(ctx)
	if err != nil {
		cancel()
		return nil, j.unavailable("starting a write", err)
	}
	t := &pgTx{j: j, ctx: ctx, cancel: cancel, tx: tx, meta0: map[string]uint64{}, dirty: map[string]uint64{}}
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(pgWriteLock))
	b.Queue(`SELECT name, n FROM gw_meta`)
	b.Queue(`SELECT tbl, key, val, deleted, seq FROM gw_records WHERE seq > $1 ORDER BY seq`, int64(j.applied))
	br := tx.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		var (
			name string
			n    int64
		)
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
				t.meta0[name] = uint64(n)
				return nil
			})
		}
		if err == nil {
			t.pulled, err = scanRows(br)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.rollback()
		return nil, j.unavailable("starting a write", err)
	}
	return t, nil
}

func scanRows(br pgx.BatchResults) ([]pgRow, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	return collectRows(rows)
}

func collectRows(rows pgx.Rows) ([]pgRow, error) {
	var (
		out []pgRow
		r   pgRow
		seq int64
	)
	_, err := pgx.ForEachRow(rows, []any{&r.tbl, &r.key, &r.val, &r.deleted, &seq}, func() error {
		r.seq = uint64(seq)
		out = append(out, r)
		r = pgRow{}
		return nil
	})
	return out, err
}

// since reads other replicas' commits after seq (outside any write).
func (j *pgJournal) since(ctx context.Context, seq uint64) ([]pgRow, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	rows, err := j.pool.Query(ctx, `SELECT tbl, key, val, deleted, seq FROM gw_records WHERE seq > $1 ORDER BY seq`, int64(seq))
	if err != nil {
		return nil, err
	}
	return collectRows(rows)
}

func (j *pgJournal) listEvents(after uint64, fn func(k, v []byte) (bool, error)) error {
	const page = 16 // batches per query: up to 64k events
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	for {
		rows, err := j.pool.Query(ctx, `SELECT first_seq, last_seq, recs FROM gw_event_batches
			WHERE last_seq > $1 ORDER BY first_seq LIMIT $2`, int64(after), page)
		if err != nil {
			return j.unavailable("listing events", err)
		}
		var (
			first, last int64
			recs        []byte
			n           int
			stop        bool
		)
		_, err = pgx.ForEachRow(rows, []any{&first, &last, &recs}, func() error {
			n++
			if stop {
				return nil
			}
			from := after
			after = max(after, uint64(last))
			return eachEventEntry(recs, func(seq uint64, v []byte) (bool, error) {
				if seq <= from {
					return false, nil
				}
				k := eventKey(seq)
				rec, ferr := unframeRecord(k, v)
				if ferr != nil {
					return true, fmt.Errorf("%w: bucket %s, key %s: %v", ErrDamaged, TableEvents, printableKey(TableEvents, k), ferr)
				}
				stop, ferr = fn(k, rec)
				return stop, ferr
			})
		})
		if err != nil {
			if errors.Is(err, ErrDamaged) {
				return fmt.Errorf("%s: %w; run gatewayd store verify", j.where(), err)
			}
			var pe *pgconn.PgError
			if errors.As(err, &pe) || pgconn.Timeout(err) || isConnErr(err) {
				return j.unavailable("listing events", err)
			}
			return err
		}
		if stop || n < page {
			return nil
		}
	}
}

func isConnErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, pgx.ErrTxClosed)
}

// pgTx buffers a write's rows and sends them with the commit.
type pgTx struct {
	j      *pgJournal
	ctx    context.Context
	cancel context.CancelFunc
	tx     pgx.Tx
	pulled []pgRow // other replicas' commits, applied before the write

	meta0 map[string]uint64 // counters as read at begin
	dirty map[string]uint64
	recs  []pgRow
	recIx map[string]int // tbl+"\x00"+key -> index in recs
	// The events of this write, as one gw_event_batches row.
	evFirst, evLast uint64
	evRecs          []byte
	// pruneFrom, pruneBelow: the event range to delete (pruneEvents).
	pruneFrom, pruneBelow uint64
}

func (t *pgTx) rec(r pgRow) {
	if t.recIx == nil {
		t.recIx = map[string]int{}
	}
	id := r.tbl + "\x00" + string(r.key)
	if i, ok := t.recIx[id]; ok {
		t.recs[i] = r // one row per key: ON CONFLICT cannot touch a row twice
		return
	}
	t.recIx[id] = len(t.recs)
	t.recs = append(t.recs, r)
}

func (t *pgTx) put(table string, key, framed []byte) error {
	t.rec(pgRow{tbl: table, key: key, val: framed})
	return nil
}

func (t *pgTx) del(table string, key, framed []byte) error {
	t.rec(pgRow{tbl: table, key: key, val: framed, deleted: true})
	return nil
}

func (t *pgTx) meta(key string) (uint64, bool, error) {
	if n, ok := t.dirty[key]; ok {
		return n, true, nil
	}
	n, ok := t.meta0[key]
	return n, ok, nil
}

func (t *pgTx) setMeta(key string, n uint64) error {
	t.dirty[key] = n
	return nil
}

func (t *pgTx) eventSeq() uint64 {
	n, _, _ := t.meta("event_seq")
	return n
}

func (t *pgTx) putEvent(k, v []byte) error {
	seq := binary.BigEndian.Uint64(k)
	if len(t.evRecs) == 0 {
		t.evFirst = seq
	}
	t.evLast = seq
	t.evRecs = appendEventEntry(t.evRecs, seq, v)
	return nil
}

func (t *pgTx) setEventSeq(n uint64) error { return t.setMeta("event_seq", n) }

// pruneEvents keeps the newest retention sequence numbers: every
// replica's events are numbered in one sequence under the write lock, so
// the count is the span. The prune is one range delete at commit, bounded
// below by the oldest batch left (event_floor): with only an upper bound,
// the dead rows of earlier prunes that autovacuum had not reached yet made
// the planner choose a sequential scan (50 ms for 300 rows, with the write
// lock held). It runs once pruneChunk events are due (event_pruned is
// where the last one cut), so the log holds up to retention+pruneChunk
// events (1% more at the default) and few login batches pay it.
func (t *pgTx) pruneEvents(_, retention, _ int) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	last := t.eventSeq()
	if last <= uint64(retention) {
		return 0, nil
	}
	below := last - uint64(retention) + 1 // first seq kept
	floor, _, _ := t.meta("event_floor")
	pruned, _, _ := t.meta("event_pruned")
	if below < pruned+max(1, min(pruneChunk, uint64(retention)/64)) {
		return 0, nil
	}
	t.pruneFrom, t.pruneBelow = floor, below
	t.dirty["event_pruned"] = below
	return 0, nil
}

// pruneChunk is how many events are due before a prune runs (less for a
// small retention: a 64th of it).
const pruneChunk = 1024

func (t *pgTx) commit() error {
	defer t.cancel()
	ctx := t.ctx
	b := &pgx.Batch{}
	var seq uint64
	if len(t.recs) > 0 {
		seq = t.meta0["change_seq"] + 1
		t.dirty["change_seq"] = seq
		tbls := make([]string, len(t.recs))
		keys := make([][]byte, len(t.recs))
		vals := make([][]byte, len(t.recs))
		dels := make([]bool, len(t.recs))
		for i, r := range t.recs {
			tbls[i], keys[i], vals[i], dels[i] = r.tbl, r.key, r.val, r.deleted
		}
		b.Queue(`INSERT INTO gw_records (tbl, key, val, deleted, seq)
			SELECT t, k, v, d, $5 FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bool[]) AS x(t, k, v, d)
			ON CONFLICT (tbl, key) DO UPDATE SET val = EXCLUDED.val, deleted = EXCLUDED.deleted, seq = EXCLUDED.seq`,
			tbls, keys, vals, dels, int64(seq))
	}
	if len(t.evRecs) > 0 {
		b.Queue(`INSERT INTO gw_event_batches (first_seq, last_seq, recs) VALUES ($1, $2, $3)`,
			int64(t.evFirst), int64(t.evLast), t.evRecs)
	}
	if t.pruneBelow > 0 {
		// A batch holding the boundary stays whole until it is all due.
		b.Queue(`DELETE FROM gw_event_batches WHERE first_seq >= $1 AND first_seq < $2 AND last_seq < $2`,
			int64(t.pruneFrom), int64(t.pruneBelow))
		// The next prune starts at the oldest batch left.
		b.Queue(`UPDATE gw_meta SET n = (SELECT coalesce(min(first_seq), $2) FROM gw_event_batches WHERE first_seq >= $1)
			WHERE name = 'event_floor'`, int64(t.pruneFrom), int64(t.pruneBelow))
	}
	if len(t.dirty) > 0 {
		names := make([]string, 0, len(t.dirty))
		ns := make([]int64, 0, len(t.dirty))
		for k, n := range t.dirty {
			names, ns = append(names, k), append(ns, int64(n))
		}
		b.Queue(`INSERT INTO gw_meta (name, n) SELECT * FROM unnest($1::text[], $2::bigint[])
			ON CONFLICT (name) DO UPDATE SET n = EXCLUDED.n`, names, ns)
	}
	if seq > 0 {
		b.Queue(`SELECT pg_notify($1, $2)`, pgChannel, strconv.FormatUint(seq, 10))
	}
	if b.Len() > 0 {
		if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
			_ = t.tx.Rollback(context.Background())
			return t.j.unavailable("writing", err)
		}
	}
	// A commit that fails here may still have committed; if it did, the
	// follower applies it like another replica's write.
	if err := t.tx.Commit(ctx); err != nil {
		return t.j.unavailable("committing", err)
	}
	if len(t.pulled) > 0 {
		t.j.applied = max(t.j.applied, t.pulled[len(t.pulled)-1].seq)
	}
	if seq > 0 {
		t.j.applied = seq
	}
	return nil
}

func (t *pgTx) rollback() {
	_ = t.tx.Rollback(context.Background())
	t.cancel()
	// What was pulled is applied to memdb whatever becomes of the write.
	if len(t.pulled) > 0 {
		t.j.applied = max(t.j.applied, t.pulled[len(t.pulled)-1].seq)
	}
}
