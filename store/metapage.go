package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt keeps two meta pages, 0 and 1, each naming a transaction id, the
// root of the tree and the freelist as of that transaction, plus an
// FNV-64a checksum of those fields. A commit writes its meta page into
// slot txid%2, so the two slots alternate and the other one always holds
// the transaction before. When the newest page fails validation, bbolt
// quietly uses the older one (DB.meta in db.go), and the newest
// transaction is gone without a word (issue 14, C7). inspectJournal reads
// both pages itself first and refuses that fallback unless an operator
// asked for it (AcceptRollback).
//
// The layout below is bbolt v1.5.0's (internal/common/meta.go and
// page.go), in the machine's byte order like bbolt writes it: a 16-byte
// page header (id, flags, count, overflow) and then
//
//	0 magic u32 | 4 version u32 | 8 pageSize u32 | 12 flags u32 |
//	16 root pgid u64 | 24 root sequence u64 | 32 freelist u64 |
//	40 high-water pgid u64 | 48 txid u64 | 56 checksum u64
//
// with the checksum over bytes 0-55.

const (
	metaMagicOff    = 0
	metaVersionOff  = 4
	metaPageSizeOff = 8
	metaRootOff     = 16
	metaHWMOff      = 40
	metaTxidOff     = 48
	metaSumOff      = 56
	metaSize        = 64
	boltVersion     = 2
)

// metaPage is one of bbolt's two meta pages as read from the file.
type metaPage struct {
	slot int    // 0 or 1
	txid uint64 // as stored; meaningless when the damage hit it
	root uint64 // page of the root bucket
	hwm  uint64 // high-water mark: pages in use are below it
	err  error  // nil when magic, version and checksum are right
}

func (m metaPage) valid() bool { return m.err == nil }

// parseMeta validates the meta at the start of a page's bytes.
func parseMeta(page []byte, slot int) metaPage {
	m := metaPage{slot: slot}
	if len(page) < boltPageHeader+metaSize {
		m.err = errors.New("the page is cut short")
		return m
	}
	b := page[boltPageHeader : boltPageHeader+metaSize]
	ne := binary.NativeEndian
	m.txid = ne.Uint64(b[metaTxidOff:])
	m.root = ne.Uint64(b[metaRootOff:])
	m.hwm = ne.Uint64(b[metaHWMOff:])
	h := fnv.New64a()
	h.Write(b[:metaSumOff])
	switch {
	case ne.Uint32(b[metaMagicOff:]) != boltMagic:
		m.err = errors.New("its magic number is wrong")
	case ne.Uint32(b[metaVersionOff:]) != boltVersion:
		m.err = fmt.Errorf("its format version %d is unknown", ne.Uint32(b[metaVersionOff:]))
	case ne.Uint64(b[metaSumOff:]) != h.Sum64():
		m.err = errors.New("it fails its checksum")
	}
	return m
}

// metaPages is what readMetaPages found.
type metaPages struct {
	pageSize int
	pages    [2]metaPage
}

// readMetaPages reads both meta pages. The page size comes from a valid
// meta page: page 0 first; when that one is bad, the second page is
// looked for at every page size bbolt itself tries (1 KiB to 16 MiB).
// ok is false when neither page is valid (bbolt's own open reports that).
func readMetaPages(path string) (mp metaPages, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return mp, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return mp, false, err
	}
	read := func(off int64) []byte {
		buf := make([]byte, boltPageHeader+metaSize)
		n, _ := f.ReadAt(buf, off)
		return buf[:n]
	}
	first := read(0)
	p0 := parseMeta(first, 0)
	ps := 0
	if p0.valid() {
		ps = int(binary.NativeEndian.Uint32(first[boltPageHeader+metaPageSizeOff:]))
	} else {
		for i := 0; i <= 14; i++ {
			pos := int64(1024) << i
			if pos >= fi.Size() {
				break
			}
			if buf := read(pos); parseMeta(buf, 1).valid() &&
				int64(binary.NativeEndian.Uint32(buf[boltPageHeader+metaPageSizeOff:])) == pos {
				ps = int(pos)
				break
			}
		}
	}
	if ps == 0 {
		none := errors.New("no valid meta page tells the page size")
		mp.pages = [2]metaPage{{slot: 0, err: p0.err}, {slot: 1, err: none}}
		return mp, false, nil
	}
	mp.pageSize = ps
	mp.pages = [2]metaPage{p0, parseMeta(read(int64(ps)), 1)}
	return mp, mp.pages[0].valid() || mp.pages[1].valid(), nil
}

// inUse is the meta page bbolt will use: the valid one with the higher
// txid (DB.meta).
func (mp metaPages) inUse() (metaPage, bool) {
	a, b := mp.pages[0], mp.pages[1]
	if b.valid() && (!a.valid() || b.txid > a.txid) {
		a = b
	}
	return a, a.valid()
}

// metaVerdict says what one bad meta page means.
type metaVerdict int

const (
	metaOK         metaVerdict = iota // both pages valid
	metaOlderBad                      // the older page is bad: nothing lost, the next commit rewrites it
	metaNewestBad                     // the newest page is (or may be) bad: bbolt would drop a transaction
	metaUnreadable                    // neither page is valid
)

// judge classifies the pair. With one page bad, the good page holds
// transaction t; the bad one held t-1 (older) or t+1 (the newest, lost).
// Only when the bad page still reads t-1 is it taken as the older one:
// any other value means the damage may have hit the txid itself, and
// then losing the newest transaction cannot be ruled out.
func (mp metaPages) judge() (v metaVerdict, good, bad metaPage) {
	a, b := mp.pages[0], mp.pages[1]
	switch {
	case a.valid() && b.valid():
		return metaOK, a, b
	case !a.valid() && !b.valid():
		return metaUnreadable, a, b
	case b.valid():
		a, b = b, a
	}
	if a.txid > 0 && b.txid == a.txid-1 {
		return metaOlderBad, a, b
	}
	return metaNewestBad, a, b
}

// metaRollbackError is the refusal to start on a newest meta page that
// fails validation.
func metaRollbackError(path string, good, bad metaPage) error {
	return &damagedError{path: path,
		detail: fmt.Sprintf("bbolt meta page %d is unreadable (%v; it names transaction %d); the other page, %d, names transaction %d "+
			"and bbolt would silently fall back to it: if the unreadable page held the newest transaction, %d, that transaction is dropped",
			bad.slot, bad.err, bad.txid, good.slot, good.txid, good.txid+1),
		advice: "if the machine crashed or lost power while gatewayd was writing, that transaction was never acknowledged and nothing acknowledged is lost: " +
			"with the daemon stopped, run `gatewayd store accept-rollback -config FILE` to continue from transaction " +
			fmt.Sprint(good.txid) + " (it checks that state in full first); otherwise restore the journal from a backup",
	}
}

// metaRollbackAccepted is the meta key AcceptRollback stamps (unix
// seconds): the commit that rewrites the bad meta page, and a trace that
// an operator chose the rollback.
const metaRollbackAccepted = "rollback_accepted"

// Rollback is what AcceptRollback did.
type Rollback struct {
	// Kept is the transaction the journal continues from.
	Kept uint64
	// Dropped is the transaction id the unreadable page holds as stored
	// (meaningless when the damage hit that field).
	Dropped uint64
	// Lost is false when the unreadable page was the older one, so the
	// newest transaction was kept and nothing was dropped.
	Lost bool
}

// AcceptRollback makes a journal whose newest bbolt meta page fails
// validation usable again, on purpose: it checks the state the other meta
// page names the way Open checks a journal (a failure there is refused as
// damage: restore a backup), then commits one transaction. bbolt writes a
// commit's meta page into slot txid%2, and the new txid is the kept one
// plus one, which is exactly the slot of the bad page, whichever of the
// two it was: afterwards both pages are valid again and Open accepts the
// journal. No daemon may have the journal open.
func AcceptRollback(dir string, log *slog.Logger) (*Rollback, error) {
	if log == nil {
		log = slog.Default()
	}
	path := filepath.Join(dir, journalFile)
	mp, _, err := readMetaPages(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read state journal %s: %w", path, err)
	}
	verdict, good, bad := mp.judge()
	switch verdict {
	case metaOK:
		return nil, fmt.Errorf("state journal %s: both bbolt meta pages are valid (transactions %d and %d): there is no rollback to accept", path, good.txid, bad.txid)
	case metaUnreadable:
		return nil, damaged(path, "neither bbolt meta page is readable")
	}
	if _, err := inspectJournalMeta(path, log, true); err != nil {
		return nil, fmt.Errorf("the state the older meta page names cannot be used either: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, classifyOpenError(path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if got := uint64(tx.ID()); got != good.txid+1 {
			return fmt.Errorf("bbolt continues from transaction %d, not %d as read from the file", got-1, good.txid)
		}
		return putMetaInt(tx, metaRollbackAccepted, uint64(time.Now().Unix()))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("state journal %s: accepting the rollback: %w", path, err)
	}
	after, _, err := readMetaPages(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read state journal %s: %w", path, err)
	}
	if v, _, b := after.judge(); v != metaOK {
		return nil, damaged(path, "a bbolt meta page is still unreadable after the rollback commit (page %d: %v)", b.slot, b.err)
	}
	return &Rollback{Kept: good.txid, Dropped: bad.txid, Lost: verdict == metaNewestBad}, nil
}
