package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestListEventsFilterAndPaging(t *testing.T) {
	s := newStore(t, Options{})
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs []Event
	for i := range 30 {
		ev := Event{Type: "ldap_bind", UserID: fmt.Sprintf("u%d", i%3), Outcome: OutcomeSuccess, Time: base.Add(time.Duration(i) * time.Minute)}
		if i%5 == 0 {
			ev.Type = "radius_auth"
		}
		if i%10 == 9 {
			ev.UserID = ""
		}
		evs = append(evs, ev)
	}
	if err := s.AppendEvents(evs...); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(Event{UserID: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("event without type: %v", err)
	}
	match := func(f EventFilter) []uint64 {
		var out []uint64
		for i, ev := range evs {
			seq := uint64(i + 1)
			if (f.UserID == "" || ev.UserID == f.UserID) && (f.Type == "" || ev.Type == f.Type) &&
				(f.Since.IsZero() || !ev.Time.Before(f.Since)) && (f.Until.IsZero() || ev.Time.Before(f.Until)) {
				out = append(out, seq)
			}
		}
		return out
	}
	filters := []EventFilter{
		{},
		{UserID: "u1"},
		{Type: "radius_auth"},
		{UserID: "u0", Type: "radius_auth"},
		{Since: base.Add(10 * time.Minute), Until: base.Add(20 * time.Minute)},
		{UserID: "u2", Since: base.Add(5 * time.Minute)},
		{Type: "ldap_bind", Until: base.Add(7 * time.Minute)},
		{UserID: "nobody"},
	}
	for _, f := range filters {
		for _, limit := range []int{1, 4, 100} {
			t.Run(fmt.Sprintf("%+v/limit%d", f, limit), func(t *testing.T) {
				want := match(f)
				var got []uint64
				f.Limit, f.After = limit, 0
				for page := 0; ; page++ {
					if page > 40 {
						t.Fatal("paging does not end")
					}
					res, next, err := s.ListEvents(f)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range res {
						got = append(got, e.Seq)
					}
					if next == 0 {
						break
					}
					if len(res) != limit || next != res[len(res)-1].Seq {
						t.Fatalf("page of %d with next %d", len(res), next)
					}
					f.After = next
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("got %v\nwant %v", got, want)
				}
			})
		}
	}
	// default limit and cap
	if err := s.AppendEvents(make1500(t)...); err != nil {
		t.Fatal(err)
	}
	if res, next, _ := s.ListEvents(EventFilter{}); len(res) != 100 || next != 100 {
		t.Errorf("default limit: %d, next %d", len(res), next)
	}
	if res, _, _ := s.ListEvents(EventFilter{Limit: 5000}); len(res) != 1000 {
		t.Errorf("cap: %d", len(res))
	}
}

func make1500(t *testing.T) []Event {
	evs := make([]Event, 1500)
	for i := range evs {
		evs[i] = Event{Type: "user_create_provision"}
	}
	return evs
}

func TestEmitFlushAndLastLogin(t *testing.T) {
	c := newClock()
	s := newStore(t, Options{Now: c.Now})
	u := mustUser(t, s, "bob", "bob@x.test")
	var changes int
	s.Subscribe(func(Change) { changes++ })

	loginAt := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s.Emit(Event{Type: "ldap_bind", UserID: u.ID, Outcome: OutcomeFailure, Login: true, Time: loginAt.Add(-time.Hour)})
	s.Emit(Event{Type: "ldap_bind", UserID: u.ID, Outcome: OutcomeSuccess, Login: true, Time: loginAt})
	s.Emit(Event{Type: "radius_auth", UserID: "deleted-user", Outcome: OutcomeSuccess, Login: true})
	for i := range 500 {
		s.Emit(Event{Type: "radius_auth", Username: fmt.Sprint("x", i), Outcome: OutcomeFailure, Login: true})
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs, _, err := s.ListEvents(EventFilter{Limit: 1000})
	if err != nil || len(evs) != 503 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) || e.Time.IsZero() {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	got, _ := s.UserByID(u.ID)
	if !got.LastLoginAt.Equal(loginAt) {
		t.Errorf("LastLoginAt = %v, want %v", got.LastLoginAt, loginAt)
	}
	if !got.UpdatedAt.Equal(u.UpdatedAt) || changes != 0 {
		t.Errorf("login stamp bumped UpdatedAt or notified (%d changes)", changes)
	}
	// An older successful login does not move it back.
	if err := s.AppendEvents(Event{Type: "ldap_bind", UserID: u.ID, Outcome: OutcomeSuccess, Login: true, Time: loginAt.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserByID(u.ID); !got.LastLoginAt.Equal(loginAt) {
		t.Errorf("LastLoginAt moved back to %v", got.LastLoginAt)
	}

	// Durable across reopen.
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, dir, Options{})
	defer s2.Close()
	if got, _ := s2.UserByID(u.ID); !got.LastLoginAt.Equal(loginAt) {
		t.Errorf("LastLoginAt after reopen = %v", got.LastLoginAt)
	}
	if evs, _, _ := s2.ListEvents(EventFilter{Limit: 1000}); len(evs) != 504 {
		t.Errorf("%d events after reopen", len(evs))
	}
	if err := s2.Verify(); err != nil {
		t.Error(err)
	}
}

func TestFlushHonoursContext(t *testing.T) {
	s := newStore(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Either the marker was taken before noticing ctx (nil) or ctx wins.
	if err := s.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Flush: %v", err)
	}
}

func TestCloseFlushesEmitted(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	for range 1000 {
		s.Emit(Event{Type: "radius_auth", Outcome: OutcomeFailure})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Emit(Event{Type: "late"}) // logged, not a panic
	if err := s.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
	if _, err := s.CreateUser(&User{Username: "a", Email: "a@x.test"}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	s2 := openAt(t, dir, Options{})
	defer s2.Close()
	if evs, _, _ := s2.ListEvents(EventFilter{Limit: 1000}); len(evs) != 1000 {
		t.Errorf("%d events after reopen", len(evs))
	}
}

func TestEventRetention(t *testing.T) {
	wholeWriteBatches(t)
	dir := t.TempDir()
	s := openAt(t, dir, Options{EventRetention: 10})
	for i := range 25 {
		if i%2 == 0 {
			if err := s.AppendEvents(Event{Type: "t", Detail: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		} else {
			s.Emit(Event{Type: "t", Detail: fmt.Sprint(i)})
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(s *Store) {
		t.Helper()
		evs, _, _ := s.ListEvents(EventFilter{})
		if len(evs) != 10 || evs[0].Seq != 16 || evs[9].Seq != 25 {
			t.Errorf("kept %d events: first %+v", len(evs), evs[0])
		}
		if err := s.Verify(); err != nil {
			t.Error(err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, Options{EventRetention: 10})
	check(s)
	// A batch bigger than the retention is kept whole (events are pruned
	// a stored batch at a time) until every event in it is beyond the
	// retention; sequence numbers continue.
	if err := s.AppendEvents(make1500(t)...); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := s.ListEvents(EventFilter{Limit: 1000})
	if s.eventCount != 1500 || len(evs) != 1000 || evs[0].Seq != 26 {
		t.Errorf("after big batch: %d events, first seq %d", s.eventCount, evs[0].Seq)
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
	for i := range 10 {
		if err := s.AppendEvents(Event{Type: "t", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if want := 1501 + i; i < 9 && s.eventCount != want {
			t.Errorf("%d events after the big batch: kept %d, want %d", i+1, s.eventCount, want)
		}
	}
	evs, _, _ = s.ListEvents(EventFilter{})
	if len(evs) != 10 || evs[0].Seq != 1526 || evs[9].Seq != 1535 {
		t.Errorf("once the big batch is all beyond retention: %d events, first %+v", len(evs), evs[0])
	}
	if err := s.Verify(); err != nil {
		t.Error(err)
	}
	s.Close()
}

// TestJournalFailure: when the journal cannot be written, writes fail
// without changing memory, Flush reports the error, and Close reports the
// events it could not write.
func TestJournalFailure(t *testing.T) {
	s := openAt(t, t.TempDir(), Options{})
	bob := mustUser(t, s, "bob", "bob@x.test")
	if err := s.db.Close(); err != nil { // the disk goes away
		t.Fatal(err)
	}
	if _, err := s.CreateUser(&User{Username: "alice", Email: "alice@x.test"}); err == nil {
		t.Fatal("CreateUser succeeded without a journal")
	}
	if _, err := s.UpdateUser(bob.ID, func(u *User) error { u.FirstName = "B"; return nil }); err == nil {
		t.Fatal("UpdateUser succeeded without a journal")
	}
	if _, err := s.UserByUsername("alice"); !errors.Is(err, ErrNotFound) {
		t.Error("a failed create changed memory")
	}
	if u, _ := s.UserByID(bob.ID); u.FirstName != "" {
		t.Error("a failed update changed memory")
	}
	for range 10 {
		s.Emit(Event{Type: "ldap_bind", UserID: bob.ID, Outcome: OutcomeSuccess, Login: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush: %v", err)
	}
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "10 audit events could not be written") {
		t.Errorf("Close: %v", err)
	}
	if u, _ := s.UserByID(bob.ID); !u.LastLoginAt.IsZero() {
		t.Error("LastLoginAt stamped without a journal")
	}
}

// TestCloseDoesNotHangOnAFullQueueAndFailingJournal: an Emit blocked on a
// full queue behind a failing journal must not stop Close.
func TestCloseDoesNotHangOnAFullQueueAndFailingJournal(t *testing.T) {
	s := openAt(t, t.TempDir(), Options{})
	s.db.Close()
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for range 2*emitQueueSize + 10 {
			s.Emit(Event{Type: "radius_auth"})
		}
	}()
	// Wait until the queue is full (poll with a deadline).
	deadline := time.Now().Add(20 * time.Second)
	for s.q.queued() < emitQueueSize {
		if time.Now().After(deadline) {
			t.Fatalf("queue never filled (%d)", s.q.queued())
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "could not be written") {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs")
	}
	select {
	case <-emitted:
	case <-time.After(20 * time.Second):
		t.Fatal("Emit hangs after Close")
	}
}

// TestListEventsFromJournalMatchesModel: listing from the journal (with the
// undecoded prefilter) gives exactly what filtering every stored event in
// sequence order gives, on a random corpus with values that JSON escapes,
// for every filter kind, page size and cursor, before and after pruning
// and a restart.
func TestListEventsFromJournalMatchesModel(t *testing.T) {
	const retention = 700
	dir := t.TempDir()
	s := openAt(t, dir, Options{EventRetention: retention})
	rng := rand.New(rand.NewPCG(14, 100000))
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	users := []string{"", "u1", "u2", `u"3`, "u<4>", "u&5", "u\\6", "ü7", "u1x"}
	var model []Event // every event ever written, Seq = index+1
	add := func(n int) {
		t.Helper()
		batch := make([]Event, n)
		for i := range batch {
			batch[i] = Event{
				Type:      EventType(pick("ldap_bind", "radius_auth", "user_create", "t<x>")),
				UserID:    pick(users...),
				GroupID:   pick("", "", "g1", "g\"2"),
				Outcome:   pick("", OutcomeSuccess, OutcomeFailure),
				Reason:    pick("", "bad_password", "locked"),
				Directory: pick("", "entra", "goo&gle"),
				// Detail may hold text that looks like a field.
				Detail: pick("", `"user_id":"u1"`, `"type":"radius_auth"`),
				// Not monotonic: AppendEvents takes the caller's time.
				Time: base.Add(time.Duration(rng.IntN(3600)) * time.Second),
			}
		}
		if err := s.AppendEvents(batch...); err != nil {
			t.Fatal(err)
		}
		for _, ev := range batch {
			ev.Seq = uint64(len(model) + 1)
			model = append(model, ev)
		}
	}
	filters := []EventFilter{
		{},
		{UserID: "u1"},
		{UserID: `u"3`},
		{UserID: "u<4>"},
		{UserID: "u&5"},
		{UserID: "u\\6"},
		{UserID: "ü7"},
		{UserID: "nobody"},
		{GroupID: "g\"2"},
		{Type: "radius_auth", Outcome: OutcomeFailure},
		{Type: "t<x>"},
		{Directory: "goo&gle", Reason: "locked"},
		{Outcome: OutcomeSuccess, Since: base.Add(20 * time.Minute), Until: base.Add(40 * time.Minute)},
		{Until: base.Add(5 * time.Minute)},
		{Since: base.Add(59 * time.Minute)},
		{UserID: "u2", GroupID: "g1", Type: "ldap_bind", Directory: "entra", Outcome: OutcomeSuccess, Reason: "bad_password"},
	}
	check := func(stage string) {
		t.Helper()
		// Pruned whole batches at a time, once a chunk is due: at least
		// the retention is kept, and less than a full batch more than the
		// retention and the chunk.
		if s.eventCount < min(len(model), retention) || s.eventCount >= retention+maxEventBatch {
			t.Fatalf("%s: %d events kept at retention %d", stage, s.eventCount, retention)
		}
		kept := model[len(model)-s.eventCount:]
		for _, f := range filters {
			var want []uint64
			for i := range kept {
				if f.match(&kept[i]) {
					want = append(want, kept[i].Seq)
				}
			}
			for _, limit := range []int{1, 7, 1000} {
				f := f
				f.Limit = limit
				var got []Event
				for page := 0; ; page++ {
					if page > len(kept)+1 {
						t.Fatalf("%s %+v: paging does not end", stage, f)
					}
					res, next, err := s.ListEvents(f)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, res...)
					if next == 0 {
						break
					}
					if len(res) != limit || next != res[len(res)-1].Seq {
						t.Fatalf("%s %+v: page of %d with next %d", stage, f, len(res), next)
					}
					f.After = next
				}
				var seqs []uint64
				for _, e := range got {
					seqs = append(seqs, e.Seq)
					if m := model[e.Seq-1]; !reflect.DeepEqual(e, m) {
						t.Fatalf("%s: event %d is %+v, stored %+v", stage, e.Seq, e, m)
					}
				}
				if !slices.Equal(seqs, want) {
					t.Errorf("%s %+v limit %d:\n got %v\nwant %v", stage, f, limit, seqs, want)
				}
			}
		}
		// A cursor in the middle starts right after it.
		mid := kept[len(kept)/2].Seq
		if res, _, _ := s.ListEvents(EventFilter{After: mid, Limit: 1}); len(res) != 1 || res[0].Seq != mid+1 {
			t.Errorf("%s: after %d: %+v", stage, mid, res)
		}
		if err := s.Verify(); err != nil {
			t.Errorf("%s: %v", stage, err)
		}
	}
	// Batches of different sizes, so that pages and cursors fall inside
	// batches and across their boundaries, and pruning drops some whole
	// and keeps the one holding the boundary.
	add(150)
	add(250)
	check("below retention")
	for _, n := range []int{137, 1, 250, 112} {
		add(n)
	}
	for range 30 {
		s.Emit(Event{Type: "radius_auth", UserID: "u1", Outcome: OutcomeSuccess, Login: true, Time: base})
		model = append(model, Event{Seq: uint64(len(model) + 1), Type: "radius_auth", UserID: "u1", Outcome: OutcomeSuccess, Login: true, Time: base})
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("pruned")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ListEvents(EventFilter{}); !errors.Is(err, ErrClosed) {
		t.Errorf("ListEvents after Close: %v, want ErrClosed", err)
	}
	s = openAt(t, dir, Options{EventRetention: retention})
	defer s.Close()
	check("reopened")
}

// TestEventRecordsCheckedAtOpen: events are not loaded into memory, but
// every record is still checked at start; a damaged one is refused with
// its key named, and a record in another (valid) field order is accepted.
func TestEventRecordsCheckedAtOpen(t *testing.T) {
	src := t.TempDir()
	s := openAt(t, src, Options{})
	for i := range 5 {
		if err := s.AppendEvents(Event{Type: "ldap_bind", UserID: fmt.Sprint("u", i)}); err != nil {
			t.Fatal(err)
		}
	}
	orig := closedJournal(t, s, src)
	cases := []struct {
		name   string
		record string
		want   string // "" = accepted
	}{
		{"bad JSON", `{"seq":3,"time":"2025-01-02T03:04:05Z","type":"ldap_b`, "bucket events, key seq 3 (in batch seq 3): value does not decode"},
		{"wrong key", `{"seq":4,"time":"2025-01-02T03:04:05Z","type":"ldap_bind"}`, "bucket events, key seq 3 (in batch seq 3): the record inside belongs to key seq 4"},
		{"wrong key, seq not first", `{"type":"ldap_bind","seq":4}`, "belongs to key seq 4"},
		{"no seq", `{"time":"2025-01-02T03:04:05Z","type":"ldap_bind"}`, "event without sequence number"},
		{"seq not a number", `{"seq":"3","type":"ldap_bind"}`, "value does not decode"},
		{"seq not first", `{"type":"ldap_bind","user_id":"u2","seq":3}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := journalCopy(t, orig)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				// Each AppendEvents above was a batch of its own.
				return putEventBatch(tx.Bucket([]byte(TableEvents)), 3, []byte(tc.record))
			})
			s, err := Open(dir, Options{Logger: quiet})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				evs, _, err := s.ListEvents(EventFilter{UserID: "u2"})
				if err != nil || len(evs) != 1 || evs[0].Seq != 3 {
					t.Errorf("listing the rewritten record: %+v, %v", evs, err)
				}
				if err := s.Verify(); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("Open accepted a damaged events record")
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant ErrDamaged mentioning %q", err, tc.want)
			}
		})
	}
}
