package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// flipAll changes one byte at off inside every copy of marker in the file
// (bbolt's free pages may hold stale copies of a record; changing all of
// them is sure to hit the live one) and returns how many it changed.
func flipAll(t *testing.T, path string, marker []byte, off int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], marker)
		if j < 0 {
			break
		}
		b[i+j+off] ^= 0x03 // 'u' -> 'v', '1' -> '2': still valid JSON
		i += j + len(marker)
		n++
	}
	if n == 0 {
		t.Fatalf("marker %q not in the journal", marker)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFlippedByteInRecordIsRefused (issue 14, C6): one byte changed inside
// a record, in a way that still decodes (an email altered), used to load
// and be served. Now the start is refused naming the table and the key,
// the file is left alone, and VerifyJournal names that record and no
// other.
func TestFlippedByteInRecordIsRefused(t *testing.T) {
	src := t.TempDir()
	s := openAt(t, src, Options{})
	populate(t, s, 300)
	u, err := s.UserByUsername("user0150")
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.GroupByName("Staff")
	if err != nil {
		t.Fatal(err)
	}
	orig := closedJournal(t, s, src)
	cases := []struct {
		name        string
		marker      string
		off         int
		bucket, key string
	}{
		{"an email", `"email":"user0150@example.test"`, len(`"email":"`), TableUsers, strconv.Quote(u.ID)},
		{"a group name", `"name":"Staff"`, len(`"name":"`), TableGroups, strconv.Quote(g.ID)},
		{"an event's user", `"seq":77,`, len(`"seq":7`), TableEvents, "seq 77"},
		{"a directory's type", `"type":"entra"`, len(`"type":"`), TableDirectories, `"entra"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := journalCopy(t, orig)
			flipAll(t, path, []byte(tc.marker), tc.off)
			sum := fileHash(t, path)

			_, err := Open(dir, Options{Logger: quiet})
			if err == nil {
				t.Fatal("Open accepted a record whose byte was changed")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("error does not wrap ErrDamaged: %v", err)
			}
			for _, want := range []string{path, "bucket " + tc.bucket + ", key " + tc.key, "checksum mismatch", "gatewayd store verify", "restore it from a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q", want)
				}
			}
			if fileHash(t, path) != sum {
				t.Error("Open modified the damaged journal")
			}

			rep, err := VerifyJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fileHash(t, path) != sum {
				t.Error("VerifyJournal modified the journal")
			}
			if len(rep.Damaged) != 1 || rep.Damaged[0].Bucket != tc.bucket || rep.Damaged[0].Key != tc.key ||
				!strings.Contains(rep.Damaged[0].Problem, "checksum mismatch") || len(rep.Problems) != 0 {
				t.Fatalf("VerifyJournal: problems %q, %d damaged, first %+v", rep.Problems, len(rep.Damaged), rep.Damaged[:min(3, len(rep.Damaged))])
			}
			// What the checksum caught still decodes: without it, this
			// record would have loaded with its altered value.
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			key := []byte(u.ID)
			switch tc.bucket {
			case TableGroups:
				key = []byte(g.ID)
			case TableEvents:
				key = eventKey(77)
			case TableDirectories:
				key = []byte("entra")
			}
			db.View(func(tx *bolt.Tx) error {
				v := tx.Bucket([]byte(tc.bucket)).Get(key)
				if tc.bucket == TableEvents { // the record inside its batch
					_, batch := tx.Bucket([]byte(tc.bucket)).Cursor().Seek(key)
					v = nil
					_ = eachEventEntry(batch[recordHeader:], func(seq uint64, rec []byte) (bool, error) {
						if seq == 77 {
							v = rec
						}
						return seq == 77, nil
					})
				}
				if v == nil || !json.Valid(v[recordHeader:]) {
					t.Errorf("the altered record does not decode: %q", v)
				}
				return nil
			})
		})
	}
}

// TestVerifyJournalNamesEveryDamagedRecord: it goes on past the first
// problem, and a healthy journal is reported OK.
func TestVerifyJournalNamesEveryDamagedRecord(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	populate(t, s, 40)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyJournal(dir)
	if err != nil || !rep.OK() || rep.SchemaVersion != schemaVersion || rep.Records < 40*2 {
		t.Fatalf("a healthy journal: %+v, %v", rep, err)
	}
	path := filepath.Join(dir, journalFile)
	flipAll(t, path, []byte(`@example.test"`), 1) // every user's email
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(metaBucket)).Put([]byte(metaNextGID), []byte("1000001")) // unframed
	})
	rep, err = VerifyJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range rep.Damaged {
		got[d.Bucket+" "+d.Key] = true
	}
	if len(got) != 41 || !got[`meta "next_gid"`] {
		t.Fatalf("want 40 users and meta next_gid named, got %d: %+v", len(got), rep.Damaged)
	}
}

// TestMigrationFromV3: a schema-3 journal (no frames) is upgraded in one
// transaction, keeps everything, and every value is framed afterwards.
// Its VerifyJournal report before the upgrade is OK, with a note.
func TestMigrationFromV3(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	populate(t, s, 30)
	before := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, journalFile)
	// Write it back as version 3 wrote it: an event to a value, bare
	// values, version "3".
	rawUpdate(t, path, func(tx *bolt.Tx) error { return eventsAsV4(t, tx) })
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			var keys, vals [][]byte
			b.ForEach(func(k, v []byte) error {
				keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(payloadOf(t, k, v)))
				return nil
			})
			for i := range keys {
				if string(name) == metaBucket && string(keys[i]) == metaSchemaVersion {
					vals[i] = []byte("3")
				}
				if err := b.Put(keys[i], vals[i]); err != nil {
					return err
				}
			}
			return nil
		})
	})
	rep, err := VerifyJournal(dir)
	if err != nil || !rep.OK() || rep.SchemaVersion != 3 || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "no checksums yet") {
		t.Fatalf("v3 journal report: %+v, %v", rep, err)
	}

	ran := 0
	old := migrations[3]
	migrations[3] = func(tx *bolt.Tx) error { ran++; return old(tx) }
	defer func() { migrations[3] = old }()
	s = openAt(t, dir, Options{})
	if ran != 1 {
		t.Errorf("the v3->v4 step ran %d times", ran)
	}
	if got := dump(t, s); got != before {
		t.Errorf("state differs after the upgrade:\n%s\n%s", before, got)
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
	mustUser(t, s, "after", "after@x.test")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				n++
				if !isFramed(k, v) {
					t.Errorf("bucket %s, key %q is not framed after the upgrade", name, k)
				}
				return nil
			})
		})
	})
	// The events, regrouped by the v4->v5 step into batch values, each
	// with its own frame too.
	events := 0
	db.View(func(tx *bolt.Tx) error {
		eachStoredEvent(t, tx, func(seq uint64, rec []byte) {
			events++
			if !isFramed(eventKey(seq), rec) {
				t.Errorf("event seq %d is not framed after the upgrade", seq)
			}
		})
		return nil
	})
	db.Close()
	if n < 40 || events < 20 {
		t.Fatalf("only %d values, %d events", n, events)
	}
	if v, _ := inspectJournal(path, quiet); v == nil || v.version != schemaVersion {
		t.Fatalf("after the upgrade: %+v", v)
	}
	s = openAt(t, dir, Options{})
	s.Close()
	if ran != 1 {
		t.Errorf("the upgrade ran again")
	}
}

// TestFrameRoundTrip covers the frame itself.
func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key, v  []byte
		wantErr string
	}{
		{"ok", []byte("k"), frameRecord([]byte("k"), []byte(`{"a":1}`)), ""},
		{"empty payload", []byte("k"), frameRecord([]byte("k"), nil), ""},
		{"other key", []byte("j"), frameRecord([]byte("k"), []byte(`{"a":1}`)), "checksum mismatch"},
		{"key and payload trade a byte", []byte("ka"), frameRecord([]byte("k"), []byte(`a`)), "checksum mismatch"},
		{"unframed JSON", []byte("k"), []byte(`{"a":1}`), "no checksum frame"},
		{"nothing", []byte("k"), nil, "no checksum frame"},
		{"cut short", []byte("k"), []byte{recordTag, 1, 2}, "cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := unframeRecord(tc.key, tc.v)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// isFramed tells a valid framed value from anything else.
func isFramed(key, v []byte) bool {
	_, err := unframeRecord(key, v)
	return err == nil
}
