package authn

import (
	"runtime/debug"
	"sync"
	"time"
)

// Each argon2id hash allocates its whole memory cost (64 MiB by default)
// and drops it when done. The Go runtime keeps such freed spans mapped
// for reuse and returns them to the OS only slowly, so a burst of first
// logins (a restart, a morning) left the daemon hundreds of MB above its
// live heap for minutes (bench/scale: 560 MB RssAnon over a 190 MB heap
// after 100k logins). Once hashing has been idle for a while, that memory
// is handed back at once.
const (
	// hashIdleRelease is how long no hash may have run before the memory
	// goes back: a burst is over, and the next one would only map it again.
	hashIdleRelease = 2 * time.Second
	// hashReleaseEvery bounds the releases (each one is a full GC) when
	// hashes come just slower than the idle time.
	hashReleaseEvery = 30 * time.Second
)

// hashMemory schedules the release after hashing. The zero value is not
// ready; use newHashMemory.
type hashMemory struct {
	idle, every time.Duration
	free        func()

	mu          sync.Mutex
	lastHash    time.Time
	lastRelease time.Time
	timer       *time.Timer // non-nil while a release is scheduled
}

func newHashMemory(idle, every time.Duration, free func()) *hashMemory {
	return &hashMemory{idle: idle, every: every, free: free}
}

// processHashMemory is shared by every Authenticator in the process: the
// memory is the runtime's, not one Authenticator's.
var processHashMemory = newHashMemory(hashIdleRelease, hashReleaseEvery, debug.FreeOSMemory)

// hashed records that a hash just ended.
func (m *hashMemory) hashed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastHash = time.Now()
	if m.timer == nil {
		m.timer = time.AfterFunc(m.idle, m.fire)
	}
}

func (m *hashMemory) fire() {
	m.mu.Lock()
	now := time.Now()
	wait := m.idle - now.Sub(m.lastHash)
	if w := m.every - now.Sub(m.lastRelease); w > wait {
		wait = w
	}
	if wait > 0 {
		m.timer = time.AfterFunc(wait, m.fire)
		m.mu.Unlock()
		return
	}
	m.timer = nil
	m.lastRelease = now
	m.mu.Unlock()
	m.free()
}
