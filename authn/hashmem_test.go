package authn

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

func TestHashMemoryReleasedOnceIdle(t *testing.T) {
	var released atomic.Int32
	m := newHashMemory(20*time.Millisecond, 200*time.Millisecond, func() { released.Add(1) })

	// A burst: the release waits until hashing has been idle.
	for range 5 {
		m.hashed()
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return released.Load() == 1 }, "one release after the burst")

	// Nothing more happens without hashes: no timer is left running.
	m.mu.Lock()
	pending := m.timer != nil
	m.mu.Unlock()
	if pending {
		t.Fatal("a release is still scheduled after the burst was released")
	}

	// The next burst is released too, but not before the minimum
	// interval since the last release has passed.
	start := time.Now()
	m.hashed()
	testutil.Eventually(t, 5*time.Second, func() bool { return released.Load() == 2 }, "a release after the second burst")
	m.mu.Lock()
	gap := m.lastRelease.Sub(start)
	m.mu.Unlock()
	if gap < 150*time.Millisecond {
		t.Fatalf("second release %v after the second burst began; the minimum interval is 200ms from the first", gap)
	}
}
