package fakehttp

import (
	"maps"
	"sync"
)

// Log is a fake's request log, entries of type R, with a count of
// requests by method and kind. The zero Log is empty and ready; it is
// safe for concurrent use.
type Log[R any] struct {
	mu      sync.Mutex
	entries []R
	counts  map[string]int // "METHOD kind"
}

// Add logs entry, a request of method and kind.
func (l *Log[R]) Add(method, kind string, entry R) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.entries = append(l.entries, entry)
	l.counts[method+" "+kind]++
}

// Entries is a copy of the log, oldest first.
func (l *Log[R]) Entries() []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]R(nil), l.entries...)
}

// Count is how many requests of method and kind were logged.
func (l *Log[R]) Count(method, kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[method+" "+kind]
}

// Counts is a copy of every count, keyed "METHOD kind".
func (l *Log[R]) Counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := maps.Clone(l.counts)
	if m == nil {
		m = map[string]int{}
	}
	return m
}

// Reset empties the log and the counts.
func (l *Log[R]) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries, l.counts = nil, nil
}
