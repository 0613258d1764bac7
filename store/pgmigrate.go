package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// MigrateReport is what MigrateToPostgres copied.
type MigrateReport struct {
	Journal  string         `json:"journal"`
	Database string         `json:"database"`
	Records  map[string]int `json:"records"` // by table, events included
}

// MigrateToPostgres copies the embedded journal of data dir dir into the
// PostgreSQL database dsn (`gatewayd store migrate`), in one transaction:
// every record as it is (checksum frame included), the uid/gid counters
// and the event sequence. The journal is checked first, as Open checks
// it, and is only read; the daemon must be stopped (the journal's lock
// says so otherwise). The database gets the schema if it has none and
// must hold no gatewayd data: a migration never merges.
func MigrateToPostgres(ctx context.Context, dir, dsn string, log *slog.Logger) (*MigrateReport, error) {
	path := filepath.Join(dir, journalFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.Size() == 0 {
		return nil, fmt.Errorf("there is no journal to migrate at %s (data_dir is where the bbolt journal is)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	ins, err := inspectJournal(path, log)
	if err != nil {
		return nil, err
	}
	if ins.data == nil {
		return nil, fmt.Errorf("journal %s has schema version %d; start this gatewayd on it once with backend = %q to upgrade it, then migrate", path, ins.version, BackendBolt)
	}
	j, _, err := openPostgres(ctx, PostgresOptions{DSN: dsn}, log)
	if err != nil {
		return nil, err
	}
	defer j.pool.Close()
	rep := &MigrateReport{Journal: path, Database: j.name, Records: map[string]int{}}

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		return nil, classifyOpenError(path, err)
	}
	defer db.Close()

	tx, err := j.pool.Begin(ctx)
	if err != nil {
		return nil, j.unavailable("migrating", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgWriteLock)); err != nil {
		return nil, j.unavailable("migrating", err)
	}
	var have int64
	if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM gw_records) + (SELECT count(*) FROM gw_event_batches)`).Scan(&have); err != nil {
		return nil, j.unavailable("migrating", err)
	}
	if have > 0 {
		return nil, fmt.Errorf("%s already holds gatewayd data (%d records): migrate only into an empty database", j.where(), have)
	}
	err = db.View(func(btx *bolt.Tx) error {
		for _, table := range loadOrder {
			b := btx.Bucket([]byte(table))
			c := b.Cursor()
			rows := [][]any{}
			events := 0
			for k, v := c.First(); k != nil; k, v = c.Next() {
				// Checked again record by record: what is copied is what
				// a start on it would accept.
				if table == TableEvents {
					// A batch value is a gw_event_batches row once its
					// frame is off: the same entries.
					n, err := eventDamage(k, v)
					if err != nil {
						return damaged(path, "bucket %s, %v; %s", table, err, verifyHint)
					}
					body, _ := unframeRecord(k, v)
					first := binary.BigEndian.Uint64(body)
					rows = append(rows, []any{int64(first), int64(binary.BigEndian.Uint64(k)), body})
					events += n
					continue
				}
				if _, err := decodeRecord(table, k, v, true); err != nil {
					return damaged(path, "bucket %s, key %s: %v; %s", table, printableKey(table, k), err, verifyHint)
				}
				rows = append(rows, []any{table, k, v, false, int64(1)})
			}
			rep.Records[table] = len(rows)
			var err error
			if table == TableEvents {
				rep.Records[table] = events
				_, err = tx.CopyFrom(ctx, pgx.Identifier{"gw_event_batches"}, []string{"first_seq", "last_seq", "recs"}, pgx.CopyFromRows(rows))
				if err == nil && len(rows) > 0 {
					_, err = tx.Exec(ctx, `UPDATE gw_meta SET n = $1 WHERE name IN ('event_floor', 'event_pruned')`, rows[0][0])
				}
				if err == nil {
					_, err = tx.Exec(ctx, `UPDATE gw_meta SET n = $1 WHERE name = 'event_seq'`, int64(b.Sequence()))
				}
			} else {
				_, err = tx.CopyFrom(ctx, pgx.Identifier{"gw_records"}, []string{"tbl", "key", "val", "deleted", "seq"}, pgx.CopyFromRows(rows))
			}
			if err != nil {
				return j.unavailable("copying "+table, err)
			}
		}
		for _, key := range []string{metaNextUID, metaNextGID} {
			n, ok, err := readMetaInt(path, btx, key)
			if err != nil {
				return err
			}
			if ok {
				if _, err := tx.Exec(ctx, `INSERT INTO gw_meta (name, n) VALUES ($1, $2)
					ON CONFLICT (name) DO UPDATE SET n = EXCLUDED.n`, key, int64(n)); err != nil {
					return j.unavailable("copying counters", err)
				}
			}
		}
		_, err := tx.Exec(ctx, `UPDATE gw_meta SET n = 1 WHERE name = 'change_seq'`)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, j.unavailable("committing the migration", err)
	}
	return rep, nil
}
