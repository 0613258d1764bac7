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

	// The next burst is released too, but never sooner than the minimum
	// interval after the first release (a bound fire enforces, so it
	// holds however slowly the test runs).
	m.mu.Lock()
	first := m.lastRelease
	m.mu.Unlock()
	m.hashed()
	testutil.Eventually(t, 5*time.Second, func() bool { return released.Load() == 2 }, "a release after the second burst")
	m.mu.Lock()
	gap := m.lastRelease.Sub(first)
	m.mu.Unlock()
	if gap < 200*time.Millisecond {
		t.Fatalf("second release %v after the first; the minimum interval is 200ms", gap)
	}
}
