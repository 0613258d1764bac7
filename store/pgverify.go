package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// pgRecords holds the live records of a PostgreSQL journal.
type pgRecords map[string]map[string][]byte

func (r pgRecords) get(table string, key []byte) []byte { return r[table][string(key)] }

func (r pgRecords) keys(table string, fn func([]byte) bool) {
	for k := range r[table] {
		if fn([]byte(k)) {
			return
		}
	}
}

// readRecords reads every live record and checks the events (their
// frames, decoding and keys) in tx.
func readRecords(ctx context.Context, tx pgx.Tx) (pgRecords, []DamagedRecord, int, error) {
	rec := pgRecords{}
	rows, err := tx.Query(ctx, `SELECT tbl, key, val FROM gw_records WHERE NOT deleted`)
	if err != nil {
		return nil, nil, 0, err
	}
	var (
		tbl  string
		k, v []byte
		n    int
	)
	if _, err := pgx.ForEachRow(rows, []any{&tbl, &k, &v}, func() error {
		n++
		if rec[tbl] == nil {
			rec[tbl] = map[string][]byte{}
		}
		rec[tbl][string(k)] = bytes.Clone(v)
		return nil
	}); err != nil {
		return nil, nil, 0, err
	}
	var bad []DamagedRecord
	var first, last int64
	rows, err = tx.Query(ctx, `SELECT first_seq, last_seq, recs FROM gw_event_batches ORDER BY first_seq`)
	if err != nil {
		return nil, nil, 0, err
	}
	prev := uint64(0)
	if _, err := pgx.ForEachRow(rows, []any{&first, &last, &v}, func() error {
		batch := fmt.Sprintf("batch %d-%d", first, last)
		want := uint64(first)
		err := eachEventEntry(v, func(seq uint64, rec []byte) (bool, error) {
			n++
			k := eventKey(seq)
			if seq != want || seq <= prev {
				bad = append(bad, DamagedRecord{Bucket: TableEvents, Key: printableKey(TableEvents, k),
					Problem: fmt.Sprintf("out of order in %s (expected seq %d)", batch, want)})
			} else if _, err := decodeRecord(TableEvents, k, rec, true); err != nil {
				bad = append(bad, DamagedRecord{Bucket: TableEvents, Key: printableKey(TableEvents, k), Problem: err.Error()})
			}
			prev, want = seq, seq+1
			return false, nil
		})
		if err == nil && want != uint64(last)+1 {
			err = fmt.Errorf("it holds events up to seq %d", want-1)
		}
		if err != nil {
			bad = append(bad, DamagedRecord{Bucket: TableEvents, Key: batch, Problem: err.Error()})
		}
		return nil
	}); err != nil {
		return nil, nil, 0, err
	}
	return rec, bad, n, nil
}

// verifyPostgres is Verify on the PostgreSQL backend: with every
// replica's writers held off by the write lock, this replica catches up
// and its memory is compared with the database's records.
func (s *Store) verifyPostgres() error {
	j := s.pg
	ctx, cancel := context.WithTimeout(context.Background(), 2*j.timeout)
	defer cancel()
	locked, unlock := s.lockWriter()
	defer unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	tx, err := j.pool.Begin(ctx)
	if err != nil {
		return j.unavailable("verify", err)
	}
	defer tx.Rollback(context.Background())
	// Read committed after the lock: no writer commits until we end.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgWriteLock)); err != nil {
		return j.unavailable("verify", err)
	}
	rows, err := tx.Query(ctx, `SELECT tbl, key, val, deleted, seq FROM gw_records WHERE seq > $1 ORDER BY seq`, int64(j.applied))
	if err != nil {
		return j.unavailable("verify", err)
	}
	pulled, err := collectRows(rows)
	if err != nil {
		return j.unavailable("verify", err)
	}
	changes := s.applyRemote(pulled)
	v := s.read()
	rec, bad, _, err := readRecords(ctx, tx)
	if err != nil {
		return j.unavailable("verify", err)
	}
	s.notifyLocked(changes, locked)
	if len(bad) > 0 {
		return fmt.Errorf("verify: %s, %s %s: %s", j.where(), bad[0].Bucket, bad[0].Key, bad[0].Problem)
	}
	return verifyAgainst(v, rec)
}

// VerifyPostgres checks a PostgreSQL journal with no daemon needed: every
// record's checksum and decoding, the references between them, and the
// indexes built from them (`gatewayd store verify` on that backend). A
// daemon may keep running; the check holds writers off while it reads.
func VerifyPostgres(ctx context.Context, dsn string) (*JournalReport, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: connecting: %v", ErrUnavailable, err)
	}
	defer conn.Close(context.Background())
	name := conn.Config().Host + "/" + conn.Config().Database
	rep := &JournalReport{Path: "PostgreSQL database " + name}
	var ver int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM `+pgVersionTable+` WHERE is_applied`).Scan(&ver); err != nil {
		return nil, fmt.Errorf("%s has no gatewayd schema (start gatewayd on it, or run gatewayd store migrate): %w", rep.Path, err)
	}
	rep.SchemaVersion = int(ver)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgWriteLock)); err != nil {
		return nil, err
	}
	rec, bad, n, err := readRecords(ctx, tx)
	if err != nil {
		return nil, err
	}
	rep.Records = n
	for _, b := range bad {
		rep.damagedRecord(b.Bucket, b.Key, "%s", b.Problem)
	}
	ld, mtx, err := newLoaded()
	if err != nil {
		return nil, err
	}
	users := ld.users
	quiet := slog.New(slog.DiscardHandler)
	for _, table := range loadOrder {
		if table == TableEvents {
			continue
		}
		for k, v := range rec[table] {
			obj, err := decodeRecord(table, []byte(k), v, true)
			if err == nil {
				err = admitRecord(mtx, users, table, obj, quiet, rep.Path)
			}
			if err != nil {
				rep.damagedRecord(table, printableKey(table, []byte(k)), "%v", err)
				delete(rec[table], k) // reported once, not again as "not in memory"
			}
		}
	}
	mtx.Commit()
	if err := verifyAgainst(&view{mem: ld.mem, users: users}, rec); err != nil {
		rep.problem(err)
	}
	return rep, nil
}
