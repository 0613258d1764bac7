package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the journal layout this binary writes. Bump it and add
// a migration whenever the layout or the meaning of a stored field changes.
const schemaVersion = 5

// framedSchemaVersion is the first version whose values all carry a
// checksum frame (record.go).
const framedSchemaVersion = 4

// batchedEventsVersion is the first version that stores events a batch
// to a value (boltevents.go).
const batchedEventsVersion = 5

// migrations[v] upgrades a journal from version v to v+1. Open runs every
// step from the stored version up to schemaVersion, in order, inside one
// bbolt transaction, then records the new version: either all of them
// apply or none does. A step returning an error aborts the upgrade and
// leaves the file as it was.
var migrations = map[int]func(tx *bolt.Tx) error{
	0: migrateV0toV1,
	1: migrateV1toV2,
	2: migrateV2toV3,
	3: migrateV3toV4,
	4: migrateV4toV5, // boltevents.go
}

// migrateV3toV4 frames every value of every bucket with its checksum
// (record.go). Values the earlier steps of the same upgrade wrote through
// putMetaInt are framed already and are left as they are; a legacy value
// cannot look framed (see recordTag), so nothing is framed twice.
func migrateV3toV4(tx *bolt.Tx) error {
	for _, name := range append([]string{metaBucket}, tables...) {
		b := tx.Bucket([]byte(name))
		if b == nil {
			continue // loading reports a missing table bucket as damage
		}
		// bbolt cursors must not run across their own Puts: collect the
		// bucket's legacy values first (copies: the pages they live in
		// are rewritten), then frame them.
		var keys, vals [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				return fmt.Errorf("bucket %s, key %q: unexpected nested bucket", name, k)
			}
			if len(v) > 0 && v[0] == recordTag {
				if _, err := unframeRecord(k, v); err != nil {
					return fmt.Errorf("bucket %s, key %q: %w", name, k, err)
				}
				return nil
			}
			keys = append(keys, bytes.Clone(k))
			vals = append(vals, frameRecord(k, v))
			return nil
		})
		if err != nil {
			return err
		}
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrateV2toV3 adds the invites bucket (Invite, the self-service page's
// activation links).
func migrateV2toV3(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte(TableInvites))
	return err
}

// migrateV1toV2 adds the ad_import bucket (ADImportState).
func migrateV1toV2(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte(TableADImport))
	return err
}

// migrateV0toV1: version 0 is a journal without a schema version — a
// brand-new file, or one written before versioning. Create every bucket
// and start the uid/gid counters past any number already in use.
func migrateV0toV1(tx *bolt.Tx) error {
	for _, t := range tables {
		if _, err := tx.CreateBucketIfNotExists([]byte(t)); err != nil {
			return err
		}
	}
	nextUID, nextGID := uint64(firstIDNumber), uint64(firstGIDNumber)
	err := tx.Bucket([]byte(TableUsers)).ForEach(func(k, v []byte) error {
		var u struct {
			UIDNumber int `json:"uid_number"`
		}
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("bucket users, key %q: %w", k, err)
		}
		if u.UIDNumber >= 0 && uint64(u.UIDNumber) >= nextUID {
			nextUID = uint64(u.UIDNumber) + 1
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket([]byte(TableGroups)).ForEach(func(k, v []byte) error {
		var g struct {
			GIDNumber int `json:"gid_number"`
		}
		if err := json.Unmarshal(v, &g); err != nil {
			return fmt.Errorf("bucket groups, key %q: %w", k, err)
		}
		if g.GIDNumber >= 0 && uint64(g.GIDNumber) >= nextGID {
			nextGID = uint64(g.GIDNumber) + 1
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, ok, _ := readMetaInt("", tx, metaNextUID); !ok {
		if err := putMetaInt(tx, metaNextUID, nextUID); err != nil {
			return err
		}
	}
	if _, ok, _ := readMetaInt("", tx, metaNextGID); !ok {
		if err := putMetaInt(tx, metaNextGID, nextGID); err != nil {
			return err
		}
	}
	return nil
}

// migrate brings the journal from version `from` to schemaVersion in one
// transaction.
func migrate(path string, db *bolt.DB, from int) error {
	err := db.Update(func(tx *bolt.Tx) error {
		for v := from; v < schemaVersion; v++ {
			step, ok := migrations[v]
			if !ok {
				return fmt.Errorf("no migration from schema version %d", v)
			}
			if err := step(tx); err != nil {
				return fmt.Errorf("migrating from schema version %d to %d: %w", v, v+1, err)
			}
		}
		return putMetaInt(tx, metaSchemaVersion, schemaVersion)
	})
	if err != nil {
		return fmt.Errorf("state journal %s could not be upgraded (it was left unchanged): %w", path, err)
	}
	return nil
}
