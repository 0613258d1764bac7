package ldapserver

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestByteBudget: a reader holding part of a spent budget waits until a
// release makes room; one holding none never waits; a stop ends a wait.
func TestByteBudget(t *testing.T) {
	var last atomic.Int64
	b := newByteBudget(100, func(n int64) { last.Store(n) })
	never := func() bool { return false }
	var held atomic.Int64
	holds := func() int64 { return held.Load() }

	b.add(60)
	held.Store(60)
	if !b.waitRoom(holds, never, func() { t.Error("paused with room left") }) {
		t.Fatal("refused with room left")
	}
	b.add(40) // spent: 100 of 100
	if !b.waitRoom(func() int64 { return 0 }, never, func() { t.Error("a reader holding nothing paused") }) {
		t.Fatal("a reader holding nothing was refused")
	}

	paused := make(chan struct{})
	done := make(chan bool)
	go func() { done <- b.waitRoom(holds, never, func() { close(paused) }) }()
	<-paused
	select {
	case <-done:
		t.Fatal("a reader holding part of a spent budget did not wait")
	default:
	}
	b.release(40)
	if ok := <-done; !ok {
		t.Fatal("the wait ended without room")
	}
	if last.Load() != 60 || b.inUse() != 60 {
		t.Fatalf("in use %d, reported %d; want 60", b.inUse(), last.Load())
	}

	// A stop ends a wait (polled).
	b.add(40)
	var stop atomic.Bool
	go func() { done <- b.waitRoom(holds, stop.Load, nil) }()
	stop.Store(true)
	select {
	case ok := <-done:
		if ok {
			t.Fatal("a stopped wait reported room")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stopped wait did not end")
	}
}
