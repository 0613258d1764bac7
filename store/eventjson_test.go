package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// checkAppendEventJSON fails t unless appendEventJSON writes exactly what
// json.Marshal writes for ev numbered seq, or declines exactly the events
// json.Marshal refuses.
func checkAppendEventJSON(t *testing.T, ev Event, seq uint64) (ok bool) {
	t.Helper()
	c := ev
	c.Seq = seq
	want, werr := json.Marshal(&c)
	prefix := []byte("prefix")
	got, ok := appendEventJSON(bytes.Clone(prefix), &ev, seq)
	defer func() { ok = ok && werr == nil }()
	switch {
	case !ok && werr == nil:
		t.Fatalf("appendEventJSON declined %#v, which json.Marshal writes as %s", c, want)
	case ok && werr != nil:
		t.Fatalf("appendEventJSON wrote %s for %#v, which json.Marshal refuses: %v", got, c, werr)
	case !ok:
		if !bytes.Equal(got, prefix) {
			t.Fatalf("appendEventJSON declined but changed dst to %q", got)
		}
	case !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want):
		t.Fatalf("appendEventJSON differs from json.Marshal for %#v:\n got %s\nwant %s", c, got[len(prefix):], want)
	}
	return ok
}

// randomJSONString mixes what json.Marshal treats differently: plain
// ASCII, ", \, control characters, <>&, DEL, multi-byte UTF-8, U+2028/9,
// U+FFFD itself, and bytes that are not UTF-8 (lone continuation bytes,
// truncated sequences, surrogates, overlong forms).
func randomJSONString(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return ""
	}
	pieces := []string{
		"a", "bob", "10.0.0.1:1812", " ", "\"", "\\", "/", "<", ">", "&", "\x7f",
		"\x00", "\x01", "\x1f", "\b", "\f", "\n", "\r", "\t",
		"é", "ß", "日本", "🙂", "\u2028", "\u2029", "\u2027", "\u202a", "\ufffd", "\ufeff",
		"\x80", "\xbf", "\xc3", "\xe6\x97", "\xed\xa0\x80", "\xc0\xaf", "\xf8\x88\x80\x80\x80", "\xff",
	}
	var b strings.Builder
	for range 1 + r.IntN(8) {
		if r.IntN(5) == 0 {
			b.WriteByte(byte(r.IntN(256))) // any byte at all
			continue
		}
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func randomEventTime(r *rand.Rand) time.Time {
	var sec int64
	switch r.IntN(6) {
	case 0:
		sec = r.Int64N(1<<40) - 1<<39 // years far outside 0-9999 too
	case 1:
		sec = -62167219200 + r.Int64N(3) - 1 // around 0000-01-01
	case 2:
		sec = 253402300799 + r.Int64N(3) - 1 // around 9999-12-31T23:59:59
	default:
		sec = 1_700_000_000 + r.Int64N(1<<30)
	}
	nsec := []int64{0, 1, 10, 100_000, 120_000_000, 999_999_999, r.Int64N(1e9)}[r.IntN(7)]
	t := time.Unix(sec, nsec)
	switch r.IntN(6) {
	case 0:
		return t.UTC()
	case 1:
		return t // local, with a monotonic-free wall clock
	case 2:
		return time.Now() // a monotonic reading, which JSON drops
	default:
		// Offsets with seconds, and at and beyond a day, which
		// MarshalJSON refuses.
		off := []int{0, 3600, -3600, 5*3600 + 30*60, -(9*3600 + 30*60), 23*3600 + 59*60, -(23*3600 + 59*60),
			24 * 3600, -24 * 3600, 99 * 3600, 3600 + 7, -(1800 + 59), r.IntN(200*3600) - 100*3600}[r.IntN(13)]
		return t.In(time.FixedZone("Z", off))
	}
}

func TestAppendEventJSONMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 2026))
	seqs := []uint64{0, 1, 9, 10, 4096, math.MaxUint64}
	written := 0
	const n = 20000
	for i := range n {
		ev := Event{
			Time: randomEventTime(r), Type: EventType(randomJSONString(r)),
			UserID: randomJSONString(r), Username: randomJSONString(r), GroupID: randomJSONString(r),
			Group: randomJSONString(r), Outcome: randomJSONString(r), Reason: randomJSONString(r),
			Source: randomJSONString(r), Directory: randomJSONString(r), Detail: randomJSONString(r),
			Method: randomJSONString(r), Login: r.IntN(2) == 0,
			Seq: r.Uint64(), // ignored: the record carries seq
		}
		seq := r.Uint64()
		if i < len(seqs) {
			seq = seqs[i]
		}
		if checkAppendEventJSON(t, ev, seq) {
			written++
		}
	}
	// Both paths taken often: the generator is not degenerate.
	if written < n/2 || written == n {
		t.Fatalf("%d of %d random events written, %d declined", written, n, n-written)
	}
}

func TestAppendEventJSONCases(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 600_000_000, time.UTC)
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"zero", Event{}},
		{"login", Event{Time: at, Type: EventRADIUSAuth, UserID: "u1", Username: "bob", Outcome: OutcomeSuccess,
			Source: "127.0.0.1:40000", Method: "pap", Login: true}},
		{"every field", Event{Time: at, Type: "t", UserID: "u", Username: "n", GroupID: "g", Group: "G", Outcome: "o",
			Reason: "r", Source: "s", Directory: "d", Detail: "x", Method: "m", Login: true}},
		{"escapes", Event{Time: at, Type: "t", Detail: "\"quoted\" \\ <a href=x&y> \n\t\x00\x7f \u2028\u2029 é 🙂 \xff\xc3"}},
		{"year 10000", Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Type: "t"}},
		{"year -1", Event{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), Type: "t"}},
		{"offset 24h", Event{Time: at.In(time.FixedZone("x", 24*3600)), Type: "t"}},
		{"offset -23:59", Event{Time: at.In(time.FixedZone("x", -(23*3600 + 59*60))), Type: "t"}},
		{"offset with seconds", Event{Time: at.In(time.FixedZone("x", 3600+30)), Type: "t"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkAppendEventJSON(t, tc.ev, 42) })
	}
}

// FuzzAppendEventJSON: the hand-written encoder against json.Marshal on
// whatever strings and times the fuzzer finds.
func FuzzAppendEventJSON(f *testing.F) {
	f.Add(uint64(1), int64(1_700_000_000), int64(0), 0, "radius_auth", "u1", "bob", "127.0.0.1:1", "pap", true)
	f.Add(uint64(0), int64(-62167219201), int64(999_999_999), 24*3600, "\"<&>\"", "\xff", "\u2028", "\x00\x1f", "é", false)
	f.Fuzz(func(t *testing.T, seq uint64, sec, nsec int64, off int, typ, user, name, src, detail string, login bool) {
		ev := Event{Time: time.Unix(sec, nsec).In(time.FixedZone("f", off)), Type: EventType(typ), UserID: user,
			Username: name, Source: src, Detail: detail, Login: login}
		checkAppendEventJSON(t, ev, seq)
		if !utf8.ValidString(detail) {
			return
		}
		// What the prefilter relies on: a value with nothing to escape
		// appears quoted as is.
		if got, ok := appendEventJSON(nil, &ev, seq); ok && detail != "" && !bytes.ContainsAny([]byte(detail), "\"\\<>&\u2028\u2029") &&
			strings.IndexFunc(detail, func(r rune) bool { return r < 0x20 }) < 0 &&
			!bytes.Contains(got, []byte(`"detail":"`+detail+`"`)) {
			t.Fatalf("%s does not hold the detail %q as is", got, detail)
		}
	})
}

// TestEventRecordsAsMarshalled: what the writer puts in the journal is,
// under each key, exactly the frame of json.Marshal's record (the frame's
// checksum over the key included), for events that need escaping too.
func TestEventRecordsAsMarshalled(t *testing.T) {
	s := newStore(t, Options{EventRetention: -1})
	r := rand.New(rand.NewPCG(3, 2))
	var evs []Event
	for range 3000 {
		ev := Event{Time: time.Unix(1_700_000_000+r.Int64N(1e8), r.Int64N(1e9)).UTC(), Type: EventRADIUSAuth,
			UserID: randomJSONString(r), Username: randomJSONString(r), Source: randomJSONString(r),
			Detail: randomJSONString(r), Outcome: OutcomeFailure, Login: true}
		evs = append(evs, ev)
	}
	if err := s.AppendEvents(evs...); err != nil {
		t.Fatal(err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		n := 0
		var bad error
		eachStoredEvent(t, tx, func(seq uint64, v []byte) {
			if bad != nil {
				return
			}
			want, err := encodeEvent(&evs[n], uint64(n+1))
			if err != nil {
				bad = err
				return
			}
			if k := eventKey(seq); seq != uint64(n+1) || !bytes.Equal(v, frameRecord(k, want)) {
				bad = fmt.Errorf("record %d under seq %d is %q, want %q", n, seq, v, frameRecord(k, want))
			}
			n++
		})
		if bad != nil {
			return bad
		}
		if n != len(evs) {
			return fmt.Errorf("%d records, want %d", n, len(evs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPruneAcrossManyPages: pruning drops whole batches, oldest first,
// once every event in one is beyond the retention; lowering the retention
// a lot deletes batches over many pages in one write, and a retention
// well past one write's cap takes several. The newest events stay, and
// bbolt's check passes.
func TestPruneAcrossManyPages(t *testing.T) {
	wholeWriteBatches(t)
	dir := t.TempDir()
	s := openAt(t, dir, Options{EventRetention: -1})
	const total = 60000 // 14 batches of 4096, then one of 2656 (57345-60000)
	batch := make([]Event, maxEventBatch)
	for i := range batch {
		batch[i] = Event{Type: EventRADIUSAuth, UserID: "u1", Username: "bob", Outcome: OutcomeSuccess,
			Source: "127.0.0.1:40000", Method: "pap", Login: true}
	}
	for written := 0; written < total; written += len(batch) {
		if err := s.AppendEvents(batch[:min(len(batch), total-written)]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	const last = 57345 // the first seq of the last big batch
	for _, tc := range []struct {
		retention, add int
		firstSeq       uint64 // the oldest event kept
		count          int
	}{
		// 60000+1 events, retention 100: one write may prune 50000, so
		// 12 whole batches go (13 would be more).
		{100, 1, 12*maxEventBatch + 1, total + 1 - 12*maxEventBatch},
		// The next write prunes the rest but the batch holding events
		// within the retention (57345-60000 holds the newest 100 but 2).
		{100, 1, last, total + 2 - last + 1},
		// Retention 7: 59999 and 60000 are within it, so that batch stays.
		{7, 3, last, total + 5 - last + 1},
		// Ten more: that batch and the three small ones go.
		{7, 10, total + 6, 10},
	} {
		s = openAt(t, dir, Options{EventRetention: tc.retention})
		if err := s.AppendEvents(batch[:tc.add]...); err != nil {
			t.Fatal(err)
		}
		evs, _, err := s.ListEvents(EventFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != min(tc.count, 1000) || evs[0].Seq != tc.firstSeq {
			t.Fatalf("retention %d: %d events listed from seq %d, want %d from %d", tc.retention, len(evs), evs[0].Seq, tc.count, tc.firstSeq)
		}
		if s.eventCount != tc.count {
			t.Fatalf("retention %d: eventCount %d, want %d", tc.retention, s.eventCount, tc.count)
		}
		if err := s.Verify(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
