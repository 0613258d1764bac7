package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metaJournal is a journal whose newest transaction created user "last":
// before is the dump of the transaction before it.
type metaJournal struct {
	orig         []byte
	before, with string // dumps without and with "last"
}

func buildMetaJournal(t *testing.T) metaJournal {
	t.Helper()
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	populate(t, s, 50)
	var j metaJournal
	j.before = dump(t, s)
	mustUser(t, s, "last", "last@x.test") // the newest transaction
	j.with = dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if j.orig, err = os.ReadFile(filepath.Join(dir, journalFile)); err != nil {
		t.Fatal(err)
	}
	return j
}

// metaOf reads both meta pages, failing the test when that is impossible.
func metaOf(t *testing.T, path string) metaPages {
	t.Helper()
	mp, ok, err := readMetaPages(path)
	if err != nil || !ok {
		t.Fatalf("meta pages of %s: ok=%v %v", path, ok, err)
	}
	return mp
}

// TestMetaPageDamage (issue 14, C7). A newest meta page that fails
// validation used to make bbolt fall back to the older one silently,
// dropping the newest transaction. Now Open refuses and says how to
// accept the rollback; AcceptRollback continues from the older page's
// state, after which Open starts with exactly that state. A bad older page
// loses nothing: Open starts and its first commit rewrites the page. A bad
// txid field cannot be told apart from a lost newest transaction, so it is
// refused like one; accepting then keeps the newest state.
func TestMetaPageDamage(t *testing.T) {
	j := buildMetaJournal(t)
	cases := []struct {
		name    string
		newest  bool // damage the newest page (else the older)
		off     int  // byte offset in the meta, after the page header
		refused bool
		after   func(j metaJournal) string // the state once it starts
	}{
		{"newest: root", true, 16, true, func(j metaJournal) string { return j.before }},
		{"newest: checksum", true, metaSumOff, true, func(j metaJournal) string { return j.before }},
		{"newest: magic", true, metaMagicOff, true, func(j metaJournal) string { return j.before }},
		{"newest: txid", true, metaTxidOff, true, func(j metaJournal) string { return j.before }},
		{"older: root", false, 16, false, func(j metaJournal) string { return j.with }},
		{"older: freelist", false, 32, false, func(j metaJournal) string { return j.with }},
		{"older: txid", false, metaTxidOff, true, func(j metaJournal) string { return j.with }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, journalFile)
			if err := os.WriteFile(path, j.orig, 0o600); err != nil {
				t.Fatal(err)
			}
			mp := metaOf(t, path)
			newest, older := mp.pages[0], mp.pages[1]
			if older.txid > newest.txid {
				newest, older = older, newest
			}
			if newest.txid != older.txid+1 {
				t.Fatalf("meta txids %d and %d", newest.txid, older.txid)
			}
			hit := older
			if tc.newest {
				hit = newest
			}
			at := int64(hit.slot*mp.pageSize + boltPageHeader + tc.off)
			b := j.orig[at]
			writeAt(t, path, at, []byte{b ^ 0x5a})

			sum := fileHash(t, path)
			s, err := Open(dir, Options{Logger: quiet})
			if !tc.refused {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if got := dump(t, s); got != tc.after(j) {
					t.Errorf("the state after Open is not the newest one")
				}
				s.Close()
				if v, _, bad := metaOf(t, path).judge(); v != metaOK {
					t.Errorf("Open did not rewrite the bad older page: page %d %v", bad.slot, bad.err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("Open accepted a journal whose newest meta page may be lost")
			}
			t.Logf("error: %v", err)
			for _, want := range []string{path, "bbolt meta page", "would silently fall back", "gatewayd store accept-rollback -config FILE", "never acknowledged"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q", want)
				}
			}
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("error does not wrap ErrDamaged")
			}
			if fileHash(t, path) != sum {
				t.Error("Open modified the journal")
			}
			rep, err := VerifyJournal(dir)
			if err != nil || rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "would silently fall back") {
				t.Errorf("VerifyJournal: %+v %v", rep, err)
			}

			rb, err := AcceptRollback(dir, quiet)
			if err != nil {
				t.Fatalf("AcceptRollback: %v", err)
			}
			if !rb.Lost {
				t.Errorf("rollback: %+v", rb)
			}
			if v, _, _ := metaOf(t, path).judge(); v != metaOK {
				t.Error("a meta page is still bad after AcceptRollback")
			}
			s = openAt(t, dir, Options{})
			defer s.Close()
			if got := dump(t, s); got != tc.after(j) {
				t.Errorf("state after the rollback:\n got %s\nwant %s", got, tc.after(j))
			}
			if err := s.Verify(); err != nil {
				t.Error(err)
			}
			mustUser(t, s, "later", "later@x.test") // writes go on
		})
	}
}

// TestAcceptRollbackRefusals: nothing to accept, or an older state that
// is damaged too.
func TestAcceptRollbackRefusals(t *testing.T) {
	j := buildMetaJournal(t)
	dir := t.TempDir()
	path := filepath.Join(dir, journalFile)
	if err := os.WriteFile(path, j.orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := AcceptRollback(dir, quiet); err == nil || !strings.Contains(err.Error(), "no rollback to accept") {
		t.Fatalf("healthy journal: %v", err)
	}
	// The newest page bad and a record of the older state altered.
	mp := metaOf(t, path)
	newest := mp.pages[0]
	if mp.pages[1].txid > newest.txid {
		newest = mp.pages[1]
	}
	writeAt(t, path, int64(newest.slot*mp.pageSize+boltPageHeader+metaSumOff), []byte{0xff, 0xff})
	flipAll(t, path, []byte(`"email":"user0007@`), len(`"email":"`))
	sum := fileHash(t, path)
	_, err := AcceptRollback(dir, quiet)
	if err == nil || !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "older meta page names cannot be used") ||
		!strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("AcceptRollback on a damaged older state: %v", err)
	}
	if fileHash(t, path) != sum {
		t.Error("AcceptRollback modified a journal it refused")
	}
}

// TestOlderMetaPageAfterInterruptedWrite reproduces the observation of
// issue 14: after a SIGKILL under create load, the older meta page named a
// state holding a user that was never acknowledged, which the newest state
// did not hold. Why: a commit writes its data pages, fdatasyncs, then
// writes its meta page (tx.go Commit, write, writeMeta). Pages that
// transaction T freed (the previous versions of what it rewrote, which
// are T-1's tree) are free again for T+1 as soon as no reader needs them
// (freelist ReleasePendingPages at the start of T+1). So T+1 writes its new
// pages, "ghost" included, over T-1's tree; killed before its meta page is
// written, the file holds a valid newest page T (T's tree is untouched)
// and a valid older page T-1 naming pages that now hold T+1's data.
//
// The state is built byte for byte: the file after T+1 committed, with
// both meta pages as they were before it (what a kill between T+1's data
// and its meta write leaves; written pages survive the death of the
// process in the page cache). Open uses T: the acknowledged state, no
// ghost. The older page, reached by damaging the newest one and accepting
// the rollback, names T-1's root over T+1's pages: depending on where
// T+1's pages landed that state is refused as damaged, or it passes every
// check and holds the ghost (here: T-1's root page now holds T+1's root,
// so the "older" state is all of T+1, acknowledged T included).
func TestOlderMetaPageAfterInterruptedWrite(t *testing.T) {
	ghosts := 0
	for _, n := range []int{0, 1, 5, 50} {
		dir := t.TempDir()
		path := filepath.Join(dir, journalFile)
		s := openAt(t, dir, Options{})
		populate(t, s, n)
		mustUser(t, s, "acked", "acked@x.test") // T
		acked := dump(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		mp := metaOf(t, path)
		s = openAt(t, dir, Options{})
		mustUser(t, s, "ghost", "ghost@x.test") // T+1, "killed" before its meta page
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		copy(after[:2*mp.pageSize], before[:2*mp.pageSize])
		if err := os.WriteFile(path, after, 0o600); err != nil {
			t.Fatal(err)
		}

		s = openAt(t, dir, Options{})
		if got := dump(t, s); got != acked {
			t.Errorf("n=%d: the newest meta page's state is not the acknowledged one", n)
		}
		if err := s.Verify(); err != nil {
			t.Errorf("n=%d: %v", n, err)
		}
		s.Close()
		// Open of a current journal writes nothing; put the crash state
		// back all the same, so the older page is the one built above.
		if err := os.WriteFile(path, after, 0o600); err != nil {
			t.Fatal(err)
		}

		newest := mp.pages[0]
		if mp.pages[1].txid > newest.txid {
			newest = mp.pages[1]
		}
		writeAt(t, path, int64(newest.slot*mp.pageSize+boltPageHeader+metaSumOff), []byte{^after[newest.slot*mp.pageSize+boltPageHeader+metaSumOff]})
		if _, err := AcceptRollback(dir, quiet); err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("n=%d: %v", n, err)
			}
			t.Logf("n=%d: the older page's state is refused: %v", n, err)
			continue
		}
		s = openAt(t, dir, Options{})
		_, gerr := s.UserByUsername("ghost")
		_, aerr := s.UserByUsername("acked")
		s.Close()
		if gerr == nil {
			ghosts++
		}
		t.Logf("n=%d: the older page's state passes every check; never-acknowledged ghost there: %v; acknowledged T there: %v", n, gerr == nil, aerr == nil)
	}
	if ghosts == 0 {
		t.Fatal("no journal size reproduced the unacknowledged user under the older meta page")
	}
}
