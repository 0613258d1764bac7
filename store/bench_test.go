package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
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
