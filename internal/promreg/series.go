package promreg

import (
	"sync"
	"sync/atomic"
)

// Series caches the children of a labelled metric vector that a hot path
// touches: finding one is then a map read with no lock, instead of
// prometheus' label hashing under its read lock on every request (which
// the cores of a busy door contend on). The label values must come from
// a small, bounded set (reasons, outcomes, configured client names): the
// cache never forgets.
type Series[K comparable, M any] struct {
	mu    sync.Mutex
	m     atomic.Pointer[map[K]M]
	child func(K) M
}

// NewSeries returns a cache that makes a missing child with child (a
// closure over the vector's WithLabelValues).
func NewSeries[K comparable, M any](child func(K) M) *Series[K, M] {
	return &Series[K, M]{child: child}
}

// Get returns k's child, making it on first use.
func (s *Series[K, M]) Get(k K) M {
	if m := s.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	n := make(map[K]M, 1+len(ptrMap(old)))
	for key, v := range ptrMap(old) {
		n[key] = v
	}
	v := s.child(k)
	n[k] = v
	s.m.Store(&n)
	return v
}

func ptrMap[K comparable, M any](p *map[K]M) map[K]M {
	if p == nil {
		return nil
	}
	return *p
}
