package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// populate writes a bit of everything.
func populate(t testing.TB, s *Store, users int) {
	t.Helper()
	g := mustGroup(t, s, "Staff")
	if _, err := s.PutDirectory(&Directory{Name: "entra", Type: "entra"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBinding(&Binding{Directory: "entra", Kind: BindGroup, SubjectID: g.ID}); err != nil {
		t.Fatal(err)
	}
	for i := range users {
		u, err := s.CreateUser(&User{Username: fmt.Sprintf("user%04d", i), Email: fmt.Sprintf("user%04d@example.test", i),
			DisplayName: "User Number " + fmt.Sprint(i), Attributes: map[string]string{"department": "dept" + fmt.Sprint(i%7)}})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.AddMember(g.ID, u.ID); err != nil {
				t.Fatal(err)
			}
		}
		if i%10 == 0 {
			if _, err := s.PutSyncState(&SyncState{Directory: "entra", SubjectID: u.ID, Kind: BindUser, RemoteID: "r" + u.ID}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AppendEvents(Event{Type: "ldap_bind", UserID: u.ID, Outcome: OutcomeSuccess, Login: true}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	populate(t, s, 20)
	u, _ := s.UserByUsername("user0003")
	if err := s.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, journalFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, %v", fi.Mode(), err)
	}

	s = openAt(t, dir, Options{})
	defer s.Close()
	if got := dump(t, s); got != before {
		t.Errorf("state differs after reopen:\n%s\n%s", before, got)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	// Counters continue, never reusing a number (user0003's is gone).
	if n := mustUser(t, s, "new", "new@x.test").UIDNumber; n != firstIDNumber+20 {
		t.Errorf("next uid %d, want %d", n, firstIDNumber+20)
	}
	if n := mustGroup(t, s, "new").GIDNumber; n != firstGIDNumber+1 {
		t.Errorf("next gid %d", n)
	}
	if err := s.AppendEvents(Event{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := s.ListEvents(EventFilter{After: 20})
	if len(evs) != 1 || evs[0].Seq != 21 {
		t.Errorf("event seq continues: %+v", evs)
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := openAt(t, dir, Options{})
	s.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v %v", fi.Mode(), err)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	old := openTimeout
	openTimeout = 100 * time.Millisecond
	defer func() { openTimeout = old }()
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	defer s.Close()
	_, err := Open(dir, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "is another gatewayd running on this data dir?") {
		t.Fatalf("second Open: %v", err)
	}
}

// damageCase builds a journal and damages it.
type damageCase struct {
	name   string
	damage func(t *testing.T, path string)
	want   string // in the message, besides the path
}

func TestDamagedJournalIsRefusedAndLeftAlone(t *testing.T) {
	cases := []damageCase{
		{"truncated to half", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"truncated to one page", func(t *testing.T, path string) {
			if err := os.Truncate(path, 4096); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"truncated to 100 bytes", func(t *testing.T, path string) {
			if err := os.Truncate(path, 100); err != nil {
				t.Fatal(err)
			}
		}, "damaged"},
		{"garbage in a user record", func(t *testing.T, path string) {
			overwriteNear(t, path, []byte(`"username":"user0150"`), 0, bytes.Repeat([]byte{0xff}, 40))
		}, "bucket users"},
		{"garbage over a page header", func(t *testing.T, path string) {
			overwritePageOf(t, path, []byte(`"username":"user0150"`), 0, bytes.Repeat([]byte{0xa5}, 16))
		}, "damaged"},
		{"garbage in the middle of a bucket page", func(t *testing.T, path string) {
			overwritePageOf(t, path, []byte(`"username":"user0150"`), 1000, bytes.Repeat([]byte{0x5a}, 512))
		}, "damaged"},
		{"a loop in the page tree", func(t *testing.T, path string) {
			// A branch page whose first link names itself: bbolt's cursors
			// would go round forever, and tx.Check overflow its stack.
			live, ps := livePages(t, path)
			b, _ := os.ReadFile(path)
			for id := 2; id*ps < len(b); id++ {
				if pg := b[id*ps:]; live[uint64(id)] && binary.NativeEndian.Uint16(pg[8:]) == branchFlag {
					var link [8]byte
					binary.NativeEndian.PutUint64(link[:], uint64(id))
					writeAt(t, path, int64(id*ps+boltPageHeader+8), link[:])
					return
				}
			}
			t.Fatal("no branch page in the journal")
		}, "linked twice"},
		{"both meta pages", func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			f.WriteAt(bytes.Repeat([]byte{1}, 64), 16)
			f.WriteAt(bytes.Repeat([]byte{1}, 64), 4096+16)
		}, "header pages are unreadable"},
		{"bad JSON via bbolt", func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return putFramed(tx.Bucket([]byte(TableGroups)), []byte("g1"), []byte(`{"id":"g1","name":`))
			})
		}, "bucket groups, key \"g1\": value does not decode"},
		{"record under the wrong key", func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return putFramed(tx.Bucket([]byte(TableGroups)), []byte("g1"), []byte(`{"id":"g2","name":"x"}`))
			})
		}, "belongs to key \"g2\""},
		{"duplicate username", func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return putFramed(tx.Bucket([]byte(TableUsers)), []byte("zz"), []byte(`{"id":"zz","username":"USER0001","email":"zz@x.test"}`))
			})
		}, "username \"USER0001\" is also used"},
		{"membership of a missing user", func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return putFramed(tx.Bucket([]byte(TableMemberships)), []byte("g/u"), []byte(`{"group_id":"g","user_id":"u"}`))
			})
		}, "missing user"},
		{"missing bucket", func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(TableBindings)) })
		}, "bucket bindings is missing"},
		{"bad counter", func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return putFramed(tx.Bucket([]byte(metaBucket)), []byte(metaNextUID), []byte("ten"))
			})
		}, "not a number"},
	}
	// One populated journal, copied per case.
	src := t.TempDir()
	s := openAt(t, src, Options{})
	populate(t, s, 300)
	orig := closedJournal(t, s, src)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := journalCopy(t, orig)
			tc.damage(t, path)
			sum := fileHash(t, path)
			s, err := Open(dir, Options{Logger: quiet})
			if err == nil {
				s.Close()
				t.Fatal("Open accepted a damaged journal")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("error does not wrap ErrDamaged: %v", err)
			}
			for _, want := range []string{path, tc.want, "restore it from a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q", want)
				}
			}
			if fileHash(t, path) != sum {
				t.Error("the damaged journal was modified by Open")
			}
			// Still refused the second time (nothing was "repaired").
			if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrDamaged) {
				t.Errorf("second Open: %v", err)
			}
		})
	}
}

// rawUpdate edits a journal behind the store's back.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// liveMarker is the file offset of the first copy of marker on a page in
// use (free pages may hold stale copies of a record: damage there changes
// nothing) and the page size.
func liveMarker(t *testing.T, path string, marker []byte) (int, int) {
	t.Helper()
	live, ps := livePages(t, path)
	b, _ := os.ReadFile(path)
	for i := 0; ; {
		j := bytes.Index(b[i:], marker)
		if j < 0 {
			t.Fatalf("marker %q not on a page in use", marker)
		}
		if live[uint64((i+j)/ps)] {
			return i + j, ps
		}
		i += j + 1
	}
}

// livePages are the pages the tree in use links, and the page size.
func livePages(t *testing.T, path string) (map[uint64]bool, int) {
	t.Helper()
	mp, ok, err := readMetaPages(path)
	use, _ := mp.inUse()
	if err != nil || !ok {
		t.Fatalf("meta pages: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &pageWalker{f: f, ps: uint64(mp.pageSize), hwm: use.hwm, seen: map[uint64]bool{}}
	if err := w.tree(use.root, 0); err != nil {
		t.Fatal(err)
	}
	return w.seen, mp.pageSize
}

// overwriteNear overwrites bytes at the first live occurrence of marker + off.
func overwriteNear(t *testing.T, path string, marker []byte, off int, with []byte) {
	t.Helper()
	i, _ := liveMarker(t, path, marker)
	writeAt(t, path, int64(i+off), with)
}

// overwritePageOf overwrites bytes at off inside the page in use holding marker.
func overwritePageOf(t *testing.T, path string, marker []byte, off int, with []byte) {
	t.Helper()
	i, ps := liveMarker(t, path, marker)
	page := i / ps * ps
	writeAt(t, path, int64(page+off), with)
}

func writeAt(t *testing.T, path string, at int64, with []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(with, at); err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	mustUser(t, s, "bob", "bob@x.test")
	s.Close()
	path := filepath.Join(dir, journalFile)
	rawUpdate(t, path, func(tx *bolt.Tx) error { return putMetaInt(tx, metaSchemaVersion, schemaVersion+1) })
	sum := fileHash(t, path)
	_, err := Open(dir, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", schemaVersion+1)) || !strings.Contains(err.Error(), "newer gatewayd") ||
		!strings.Contains(err.Error(), path) {
		t.Fatalf("Open: %v", err)
	}
	if fileHash(t, path) != sum {
		t.Error("journal modified")
	}
}

func TestMigrationFromV0(t *testing.T) {
	// A version-0 journal: data buckets, no meta, no version.
	dir := t.TempDir()
	path := filepath.Join(dir, journalFile)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte(TableUsers))
		b.Put([]byte("u1"), []byte(`{"id":"u1","username":"old","email":"old@x.test","state":"active","password_status":"pending","password_authority":"local","delegated_authority":"none","uid_number":10041}`))
		g, _ := tx.CreateBucket([]byte(TableGroups))
		return g.Put([]byte("g1"), []byte(`{"id":"g1","name":"Old Group","gid_number":12000}`))
	})
	// Count the steps that run.
	ran := 0
	old := migrations[0]
	migrations[0] = func(tx *bolt.Tx) error { ran++; return old(tx) }
	defer func() { migrations[0] = old }()

	s := openAt(t, dir, Options{})
	if ran != 1 {
		t.Errorf("migration ran %d times", ran)
	}
	if u, err := s.UserByUsername("OLD"); err != nil || u.UIDNumber != 10041 {
		t.Errorf("migrated user: %v %v", u, err)
	}
	if n := mustUser(t, s, "new", "new@x.test").UIDNumber; n != 10042 {
		t.Errorf("uid after migration %d, want 10042", n)
	}
	// 12000 is below the group range, so numbering starts at the range.
	if n := mustGroup(t, s, "new").GIDNumber; n != firstGIDNumber {
		t.Errorf("gid after migration %d, want %d", n, firstGIDNumber)
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
	s.Close()
	// Now current: reopening runs nothing.
	s = openAt(t, dir, Options{})
	s.Close()
	if ran != 1 {
		t.Errorf("migration ran again (%d)", ran)
	}
}

func TestFailedMigrationLeavesJournalUnchanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, journalFile)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte(TableUsers))
		return b.Put([]byte("u1"), []byte(`{"id":`))
	})
	sum := fileHash(t, path)
	_, err := Open(dir, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "could not be upgraded") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open: %v", err)
	}
	if fileHash(t, path) != sum {
		t.Error("journal modified by a failed migration")
	}
}

func TestCheckCostOn10kUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, journalFile)
	// Build the journal directly (10k fsync'd creates would take long).
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if err := migrateV0toV1(tx); err != nil {
			return err
		}
		b := tx.Bucket([]byte(TableUsers))
		for i := range 10000 {
			u := &User{ID: fmt.Sprintf("id-%05d", i), Username: fmt.Sprintf("user%05d", i), Email: fmt.Sprintf("user%05d@example.test", i),
				State: StateActive, PasswordStatus: PasswordActive, PasswordAuthority: AuthorityLocal, DelegatedAuthority: AuthorityNone,
				PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", UIDNumber: 10000 + i,
				Attributes: map[string]string{"department": "engineering", "title": "Engineer"}}
			if err := putFramed(b, userKey(u), []byte(jsonOf(t, u))); err != nil {
				return err
			}
		}
		return putMetaInt(tx, metaSchemaVersion, schemaVersion)
	})
	fi, _ := os.Stat(path)
	measure := func() time.Duration {
		start := time.Now()
		if _, err := inspectJournal(path, nil); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	withCheck := measure()
	checkJournalOnOpen = false
	without := measure()
	checkJournalOnOpen = true
	t.Logf("inspect of %d-byte journal with 10k users: %v with tx.Check, %v without", fi.Size(), withCheck, without)
}
