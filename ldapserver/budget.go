package ldapserver

import (
	"sync"
	"time"
)

// byteBudget is max_bytes_in_flight: the bytes of search requests read and
// not yet answered plus answer bytes handed to a connection and not yet
// written out, over every connection. Bytes are counted when they are
// already in memory (they cannot be refused then); the budget bounds
// memory by making readers wait: a connection that holds part of the
// budget is not read from while the budget is spent. A connection that
// holds none may always read its next request, so clients that wait for
// their answers are served while others' answers pile up.
//
// Answers are bounded per connection apart from it: a connection's
// searches render and write their entries one at a time (conn.emu), so a
// client that does not read holds at most one rendered entry, plus what
// its socket buffers hold.
type byteBudget struct {
	limit int64

	mu   sync.Mutex
	used int64
	// wake is closed (and cleared) by a release that leaves room, when
	// someone waits.
	wake chan struct{}

	// onChange reports the bytes in flight (the metric); may be nil.
	onChange func(used int64)
}

func newByteBudget(limit int64, onChange func(int64)) *byteBudget {
	return &byteBudget{limit: limit, onChange: onChange}
}

func (b *byteBudget) add(n int64) {
	b.mu.Lock()
	b.used += n
	used := b.used
	b.mu.Unlock()
	if b.onChange != nil {
		b.onChange(used)
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	used := b.used
	if b.wake != nil {
		// Wake on every release: a waiter may be waiting for its own
		// holdings to drain as well as for room.
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
	if b.onChange != nil {
		b.onChange(used)
	}
}

// inUse is the bytes in flight now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// waitRoom returns once the budget has room or held reports that the
// caller holds none of it (true), or when stop reports true (false);
// stop is polled, so a stop without a release is seen within poll.
// paused is called once if it has to wait.
func (b *byteBudget) waitRoom(held func() int64, stop func() bool, paused func()) bool {
	const poll = 100 * time.Millisecond
	waited := false
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.used < b.limit || held() <= 0 {
			b.mu.Unlock()
			return true
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		w := b.wake
		b.mu.Unlock()
		if stop() {
			return false
		}
		if !waited {
			waited = true
			if paused != nil {
				paused()
			}
		}
		if t == nil {
			t = time.NewTimer(poll)
		} else {
			t.Reset(poll)
		}
		select {
		case <-w:
		case <-t.C:
		}
	}
}
