-- The PostgreSQL journal (store/pg.go). Every table of the embedded
-- journal is a row set in gw_records, keyed as in bbolt, holding the same
-- framed record (checksum included). A write stamps the rows it touches
-- with the next change sequence number; a deletion leaves a tombstone
-- (deleted, with the last record) so that a replica catching up knows
-- what to drop. Writers are serialized by an advisory lock, so sequence
-- numbers are handed out in commit order and any snapshot holds a prefix.

-- +goose Up
CREATE TABLE gw_records (
    tbl     text    NOT NULL,
    key     bytea   NOT NULL,
    val     bytea   NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    seq     bigint  NOT NULL,
    PRIMARY KEY (tbl, key)
);
CREATE INDEX gw_records_seq ON gw_records (seq);

-- Counters: change_seq (newest change), event_seq (newest event),
-- event_floor (first_seq of the oldest event batch), event_pruned (where
-- the last prune cut), next_uid, next_gid, health_probe.
CREATE TABLE gw_meta (
    name text   PRIMARY KEY,
    n    bigint NOT NULL
);
INSERT INTO gw_meta (name, n) VALUES ('change_seq', 0), ('event_seq', 0), ('event_floor', 0), ('event_pruned', 0);

-- The audit log of every replica, in one order: one row per committed
-- batch of events (a login storm commits one every 20 ms), holding the
-- framed records of first_seq..last_seq back to back, each as an 8-byte
-- sequence number, a 4-byte length and the record. A row per event cost
-- PostgreSQL ~10 us of CPU per login (a heap tuple, an index entry, WAL).
CREATE TABLE gw_event_batches (
    first_seq bigint PRIMARY KEY,
    last_seq  bigint NOT NULL,
    recs      bytea  COMPRESSION lz4 NOT NULL
);

-- Sync job claims and leader leases (store/coord.go).
CREATE TABLE gw_leases (
    name    text        PRIMARY KEY,
    holder  text        NOT NULL,
    expires timestamptz NOT NULL
);

-- Failed passwords per user within the lockout window, shared so that N
-- replicas do not allow N times the failures.
CREATE TABLE gw_failures (
    user_id text        PRIMARY KEY,
    since   timestamptz NOT NULL,
    n       integer     NOT NULL
);

-- +goose Down
DROP TABLE gw_failures;
DROP TABLE gw_leases;
DROP TABLE gw_event_batches;
DROP TABLE gw_meta;
DROP TABLE gw_records;
