package store

import (
	"encoding/binary"
	"fmt"
	"os"
)

// walkPages follows the page tree that the meta page bbolt will use names,
// on the file's bytes, before bbolt traverses it. bbolt trusts page links:
// a damaged tree with a loop (a branch naming its own ancestor) sends its
// cursors round forever and its consistency check (tx.Check, which
// recurses) into a stack overflow, which kills the process. Such trees
// are not hypothetical: the state an older meta page names after an
// interrupted write (TestOlderMetaPageAfterInterruptedWrite) hung the
// start this way. Here every page may be reached once, within the
// high-water mark, with a known type and elements inside the page, or the
// journal is refused. The walk reads one page at a time and ends.
func walkPages(path string, meta metaPage, pageSize int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read state journal %s: %w", path, err)
	}
	defer f.Close()
	w := &pageWalker{f: f, ps: uint64(pageSize), hwm: meta.hwm, seen: map[uint64]bool{}}
	if err := w.tree(meta.root, 0); err != nil {
		return damaged(path, "page tree of transaction %d: %v", meta.txid, err)
	}
	return nil
}

type pageWalker struct {
	f    *os.File
	ps   uint64
	hwm  uint64 // pages at or above it are not part of the file's data
	seen map[uint64]bool
}

const (
	branchFlag    = 0x01
	leafFlag      = 0x02
	bucketElem    = 0x01
	elemSize      = 16 // bbolt's branch and leaf page elements
	inBucketSize  = 16 // root pgid, sequence
	maxTreeHeight = 64 // far above what 2^64 pages need
)

// page reads page id, with its overflow pages, once.
func (w *pageWalker) page(id uint64) ([]byte, error) {
	switch {
	case id < 2:
		return nil, fmt.Errorf("a link points at meta page %d", id)
	case id >= w.hwm:
		return nil, fmt.Errorf("a link points at page %d, beyond the high-water mark %d", id, w.hwm)
	case w.seen[id]:
		return nil, fmt.Errorf("page %d is linked twice (a loop or crossed links in the tree)", id)
	}
	hdr := make([]byte, boltPageHeader)
	if _, err := w.f.ReadAt(hdr, int64(id*w.ps)); err != nil {
		return nil, fmt.Errorf("page %d cannot be read: %v", id, err)
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(hdr); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+overflow >= w.hwm {
		return nil, fmt.Errorf("page %d runs %d pages on, beyond the high-water mark %d", id, overflow, w.hwm)
	}
	for i := uint64(0); i <= overflow; i++ {
		if w.seen[id+i] {
			return nil, fmt.Errorf("page %d overlaps page %d, linked before", id, id+i)
		}
		w.seen[id+i] = true
	}
	p := make([]byte, (overflow+1)*w.ps)
	if _, err := w.f.ReadAt(p, int64(id*w.ps)); err != nil {
		return nil, fmt.Errorf("page %d cannot be read: %v", id, err)
	}
	return p, nil
}

// tree walks the bucket tree rooted at page id.
func (w *pageWalker) tree(id uint64, depth int) error {
	if depth > maxTreeHeight {
		return fmt.Errorf("the tree is more than %d levels deep at page %d", maxTreeHeight, id)
	}
	p, err := w.page(id)
	if err != nil {
		return err
	}
	return w.nodes(p, id, depth)
}

// nodes checks one branch or leaf page (p may be an inline bucket's page,
// id 0) and follows its links.
func (w *pageWalker) nodes(p []byte, id uint64, depth int) error {
	ne := binary.NativeEndian
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if boltPageHeader+count*elemSize > len(p) {
		return fmt.Errorf("page %d claims %d elements, more than fit", id, count)
	}
	for i := range count {
		off := boltPageHeader + i*elemSize
		e := p[off : off+elemSize]
		switch flags {
		case branchFlag:
			if err := w.tree(ne.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		case leafFlag:
			pos, ks, vs := uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
			end := uint64(off) + pos + ks + vs
			if end > uint64(len(p)) {
				return fmt.Errorf("page %d element %d reaches past the page", id, i)
			}
			if ne.Uint32(e)&bucketElem == 0 {
				continue
			}
			v := p[uint64(off)+pos+ks : end]
			if len(v) < inBucketSize {
				return fmt.Errorf("page %d element %d is a bucket header cut short", id, i)
			}
			if root := ne.Uint64(v); root != 0 {
				if err := w.tree(root, depth+1); err != nil {
					return err
				}
			} else if inline := v[inBucketSize:]; len(inline) < boltPageHeader {
				return fmt.Errorf("page %d element %d holds an inline bucket cut short", id, i)
			} else if err := w.nodes(inline, 0, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("page %d has the unexpected type %#x for a bucket page", id, flags)
		}
	}
	return nil
}
