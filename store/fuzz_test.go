package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// FuzzByteSize: any text either parses to a size whose String parses back
// to the same size, or is refused; nothing panics.
func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"0", "256MiB", "1 GiB", "512B", "18446744073709551615", "16777216PiB", "1.5GiB", "-1", "KiB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b ByteSize
		if b.UnmarshalText([]byte(s)) != nil {
			return
		}
		var back ByteSize
		if err := back.UnmarshalText([]byte(b.String())); err != nil || back != b {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, uint64(b), b.String(), uint64(back), err)
		}
	})
}

var (
	fuzzJournalOnce sync.Once
	fuzzJournal     []byte
)

// FuzzJournalBytes: a small journal with bytes overwritten anywhere is
// inspected (as at start) and verified (as by store verify) without a
// panic escaping, a hang, or a damaged journal being accepted in a way
// that then fails to load.
func FuzzJournalBytes(f *testing.F) {
	f.Add(uint32(0), []byte{0xff})
	f.Add(uint32(4096+16+48), []byte{7})
	f.Add(uint32(3*4096+16), []byte{2, 0, 9, 0})
	f.Add(uint32(5*4096+100), []byte(`{"id":`))
	f.Fuzz(func(t *testing.T, at uint32, with []byte) {
		fuzzJournalOnce.Do(func() {
			dir := t.TempDir()
			s := openAt(t, dir, Options{})
			populate(t, s, 12)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			if fuzzJournal, err = os.ReadFile(filepath.Join(dir, journalFile)); err != nil {
				t.Fatal(err)
			}
		})
		b := append([]byte(nil), fuzzJournal...)
		if len(with) > 64 {
			with = with[:64]
		}
		copy(b[int(at)%len(b):], with)
		dir := t.TempDir()
		path := filepath.Join(dir, journalFile)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var inspectErr error
		go func() {
			defer close(done)
			_, inspectErr = inspectJournal(path, quiet)
			_, _ = VerifyJournal(dir)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("inspecting a journal with %x at %d did not end", with, int(at)%len(b))
		}
		if inspectErr != nil {
			return // refused: what start-up must do with a damaged journal
		}
		// Accepted (the bytes landed where nothing reads them, or changed
		// nothing): then it must really open, and its indexes agree.
		s, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("the inspection accepted %x at %d, then Open failed: %v", with, int(at)%len(b), err)
		}
		defer s.Close()
		if err := s.Verify(); err != nil {
			t.Fatalf("the inspection accepted %x at %d, then Verify failed: %v", with, int(at)%len(b), err)
		}
	})
}

// FuzzEventBatch: a PostgreSQL event batch value, as read back from the
// database, never panics the parser; what parses is in order and within
// the value; a batch the writer encodes parses back to its records.
func FuzzEventBatch(f *testing.F) {
	f.Add([]byte{}, uint64(1), []byte(`{"seq":1}`))
	f.Add(appendEventEntry(nil, 7, []byte("x")), uint64(9), []byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, uint64(2), []byte("y"))
	f.Fuzz(func(t *testing.T, raw []byte, seq uint64, rec []byte) {
		total := 0
		_ = eachEventEntry(raw, func(_ uint64, v []byte) (bool, error) {
			total += eventEntryHeader + len(v)
			if total > len(raw) {
				t.Fatalf("entries of %d bytes from a %d-byte value", total, len(raw))
			}
			return false, nil
		})
		enc := appendEventEntry(appendEventEntry(nil, seq, rec), seq+1, raw)
		var got [][]byte
		var seqs []uint64
		if err := eachEventEntry(enc, func(s uint64, v []byte) (bool, error) {
			seqs, got = append(seqs, s), append(got, v)
			return false, nil
		}); err != nil {
			t.Fatalf("an encoded batch does not parse: %v", err)
		}
		if len(got) != 2 || seqs[0] != seq || seqs[1] != seq+1 || !bytes.Equal(got[0], rec) || !bytes.Equal(got[1], raw) {
			t.Fatalf("round trip: %v %q", seqs, got)
		}
	})
}

// FuzzBoltEventBatch: checkEventBatch (the start-up, verify and migrate
// check of a bbolt events value) never panics on any key and value; a
// value it passes lists as consecutive events ending at its key; a batch
// built as the writer builds it passes, and any one flipped byte in it is
// reported.
func FuzzBoltEventBatch(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint64(1), []byte(`{"seq":1}`), 0)
	f.Add(eventKey(3), []byte{recordTag, 0, 0, 0, 0}, uint64(3), []byte(`{"seq":3,"type":"t"}`), 7)
	f.Fuzz(func(t *testing.T, k, v []byte, first uint64, payload []byte, flip int) {
		problems := 0
		n := checkEventBatch(k, v, func(uint64, error) { problems++ })
		if problems == 0 {
			body, err := unframeRecord(k, v)
			if err != nil {
				t.Fatalf("passed a value whose frame fails: %v", err)
			}
			want, seen := binary.BigEndian.Uint64(body), 0
			if err := eachEventEntry(body, func(seq uint64, _ []byte) (bool, error) {
				if seq != want {
					t.Fatalf("passed seq %d where %d follows", seq, want)
				}
				want++
				seen++
				return false, nil
			}); err != nil || seen != n || want-1 != binary.BigEndian.Uint64(k) {
				t.Fatalf("passed a batch that lists %d of %d events up to %d under key %x: %v", seen, n, want-1, k, err)
			}
		}

		// A batch of three events as the writer stores it.
		first = max(1, first%(1<<62))
		v = appendFrameHeader(nil)
		typ, _ := json.Marshal(string(payload))
		for i := range uint64(3) {
			seq := first + i
			rec := fmt.Appendf(nil, `{"seq":%d,"type":%s}`, seq, typ)
			v = appendEventEntry(v, seq, frameRecord(eventKey(seq), rec))
		}
		k = eventKey(first + 2)
		sealFrame(k, v)
		problems = 0
		if n := checkEventBatch(k, v, func(uint64, error) { problems++ }); n != 3 || problems != 0 {
			t.Fatalf("a written batch: %d events, %d problems", n, problems)
		}
		if flip < 0 {
			flip = -(flip + 1)
		}
		v[flip%len(v)] ^= byte(1 + flip%255)
		problems = 0
		checkEventBatch(k, v, func(uint64, error) { problems++ })
		if problems == 0 {
			t.Fatalf("a byte flipped at %d went unnoticed", flip%len(v))
		}
	})
}
