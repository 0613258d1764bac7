package store

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkOpen100kUsers is issue 14's memory figure without the daemon:
// a journal of 100,000 users (an email and two attributes each, as
// bench/scale creates them) is opened, and the live heap it holds after a
// GC is reported as heap-MB (the users, memdb and the secondary indexes;
// bbolt's pages are mmapped, not heap). ns/op is one Open. The journal
// is built once per run, in batches of 1000 users per transaction.
func BenchmarkOpen100kUsers(b *testing.B) {
	const users = 100000
	dir := b.TempDir()
	s := openAt(b, dir, Options{})
	now := time.Now().UTC()
	for i := 0; i < users; i += 1000 {
		err := s.write(func(w *wtxn) error {
			for j := i; j < i+1000; j++ {
				n, err := w.nextCounter(metaNextUID)
				if err != nil {
					return err
				}
				u := &User{ID: uuid.NewString(), Username: fmt.Sprintf("user%d", j), Email: fmt.Sprintf("user%d@example.test", j),
					Attributes: map[string]string{"department": "eng", "office": fmt.Sprint("b", j%50)},
					UIDNumber:  n, CreatedAt: now, UpdatedAt: now}
				applyUserDefaults(u)
				if err := w.put(TableUsers, u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var heap uint64
	for b.Loop() {
		before := liveHeap()
		r := openAt(b, dir, Options{})
		after := liveHeap()
		if after > before {
			heap = after - before
		}
		if got := r.CountUsersWithPrefix(UserKeyUsername, "user", 0); got != users {
			b.Fatalf("reopened store holds %d users, want %d", got, users)
		}
		runtime.KeepAlive(r)
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(heap)/1e6, "heap-MB")
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkOpenFullRetention is the events' share of a start (issue 14's
// 3 s goal counts the default retention filled by login events): a
// journal holding DefaultEventRetention login events, written in batches
// of 600 (a 20 ms linger at 30k logins/s), is opened; ns/op is one Open,
// which checks every event record without building it.
func BenchmarkOpenFullRetention(b *testing.B) {
	dir := b.TempDir()
	s := openAt(b, dir, Options{})
	u := mustUser(b, s, "bob", "bob@x.test")
	evs := make([]Event, 600)
	for written := 0; written < DefaultEventRetention; written += len(evs) {
		for i := range evs {
			evs[i] = Event{Type: EventRADIUSAuth, UserID: u.ID, Username: "bob", Outcome: OutcomeSuccess,
				Source: "127.0.0.1:40000", Method: "pap", Login: true}
		}
		if err := s.AppendEvents(evs[:min(len(evs), DefaultEventRetention-written)]...); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r := openAt(b, dir, Options{})
		if r.eventCount != DefaultEventRetention {
			b.Fatalf("reopened store holds %d events", r.eventCount)
		}
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
