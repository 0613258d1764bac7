package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func BenchmarkUserByUsername(b *testing.B) {
	s := newStore(b, Options{})
	const n = 1000
	for i := range n {
		mustUser(b, s, fmt.Sprintf("user%04d", i), fmt.Sprintf("user%04d@x.test", i))
	}
	var ctr atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := ctr.Add(1) % n
			if _, err := s.UserByUsername(fmt.Sprintf("USER%04d", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCreateUser(b *testing.B) {
	s := newStore(b, Options{})
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.CreateUser(&User{Username: fmt.Sprintf("u%d", i), Email: fmt.Sprintf("u%d@x.test", i)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEmit(b *testing.B) {
	s := newStore(b, Options{EventRetention: -1})
	u := mustUser(b, s, "bob", "bob@x.test")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Emit(Event{Type: "ldap_bind", UserID: u.ID, Outcome: OutcomeSuccess, Login: true, Source: "10.0.0.1"})
		}
	})
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkListEvents lists from a full default retention (100k events
// in the journal): the newest page, a page of a user's events (the
// prefilter skips the others undecoded), and a filter that matches
// nothing (the whole retention is scanned).
func BenchmarkListEvents(b *testing.B) {
	s := newStore(b, Options{})
	batch := make([]Event, maxEventBatch)
	for written := 0; written < DefaultEventRetention; written += len(batch) {
		for i := range batch {
			batch[i] = Event{Type: "radius_auth", UserID: fmt.Sprintf("u%d", (written+i)%100), Username: "someone",
				Outcome: OutcomeSuccess, Source: "10.0.0.1:40000", Method: "pap", Login: true}
		}
		if err := s.AppendEvents(batch[:min(len(batch), DefaultEventRetention-written)]...); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		f    EventFilter
	}{
		{"newest-1000", EventFilter{After: DefaultEventRetention - 1000, Limit: 1000}},
		{"user-100", EventFilter{UserID: "u7", Limit: 100}},
		{"no-match", EventFilter{UserID: "nobody"}},
		{"no-match-time", EventFilter{Until: time.Unix(1, 0)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.ListEvents(bc.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendEventsRetained is the event writer's own cost per login
// event in steady state (issue 14): the default retention already full,
// so every batch also prunes as many events as it adds, one user whose
// successful logins stamp LastLoginAt, batches of the size a 30k logins/s
// storm gives one 20 ms linger. ns/op is per event.
func BenchmarkAppendEventsRetained(b *testing.B) {
	s := newStore(b, Options{})
	u := mustUser(b, s, "bob", "bob@x.test")
	fill := make([]Event, maxEventBatch)
	for i := range fill {
		fill[i] = Event{Type: "radius_auth", UserID: u.ID, Username: "bob", Outcome: OutcomeSuccess,
			Source: "127.0.0.1:40000", Method: "pap", Login: true}
	}
	for written := 0; written < DefaultEventRetention; written += len(fill) {
		if err := s.AppendEvents(fill[:min(len(fill), DefaultEventRetention-written)]...); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 600
	evs := make([]Event, batch)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for done := 0; done < b.N; done += batch {
		now := time.Now()
		for i := range evs {
			evs[i] = Event{Time: now, Type: "radius_auth", UserID: u.ID, Username: "bob", Outcome: OutcomeSuccess,
				Source: "127.0.0.1:40000", Method: "pap", Login: true}
		}
		if err := s.write(func(w *wtxn) error { return w.appendEvents(evs[:min(batch, b.N-done)]) }); err != nil {
			b.Fatal(err)
		}
	}
	// Wall time includes the fsyncs; the process's CPU is what a login
	// storm competes for.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system CPU time the test process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
