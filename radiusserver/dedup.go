package radiusserver

import (
	"net/netip"
	"sync"
	"time"
)

// Duplicate detection (RFC 5080 §2.2.2): a request is identified by its
// client, source address and port, Identifier and Request Authenticator.
// A retransmission within the window gets the cached response; one that
// arrives while the first is still being worked on is dropped (the NAS
// retransmits again and then finds the answer in the cache).

const (
	dedupTTL        = 30 * time.Second
	dedupMaxEntries = 65536
)

type dedupKey struct {
	client string
	src    netip.AddrPort
	id     byte
	auth   [16]byte
}

type dedupEntry struct {
	key  dedupKey
	resp []byte // set when done
	done bool
	at   time.Time // insertion time; the entry lives until at+ttl
}

type dedupState int

const (
	dedupNew      dedupState = iota // not seen: the caller does the work
	dedupInFlight                   // seen, no answer yet: drop
	dedupCached                     // seen and answered: resend resp
)

type dedupCache struct {
	mu    sync.Mutex
	m     map[dedupKey]*dedupEntry
	fifo  []*dedupEntry // insertion order == expiry order
	head  int
	ttl   time.Duration
	limit int
}

func newDedupCache(ttl time.Duration, limit int) *dedupCache {
	return &dedupCache{m: make(map[dedupKey]*dedupEntry), ttl: ttl, limit: limit}
}

// begin looks key up. On dedupNew it has inserted an in-flight entry that
// the caller must pass to finish.
func (c *dedupCache) begin(k dedupKey, now time.Time) (*dedupEntry, dedupState, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if e, ok := c.m[k]; ok {
		if !e.done {
			return nil, dedupInFlight, nil
		}
		return nil, dedupCached, e.resp
	}
	for len(c.m) >= c.limit {
		c.evictOldest()
	}
	e := &dedupEntry{key: k, at: now}
	c.m[k] = e
	c.fifo = append(c.fifo, e)
	return e, dedupNew, nil
}

// finish records the answer. A nil resp (the request was dropped, or the
// handler panicked) forgets the entry so that a retransmit is served.
func (c *dedupCache) finish(e *dedupEntry, resp []byte) {
	if e == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.resp, e.done = resp, true
	if resp == nil && c.m[e.key] == e {
		delete(c.m, e.key)
	}
}

func (c *dedupCache) expire(now time.Time) {
	for c.head < len(c.fifo) && now.Sub(c.fifo[c.head].at) >= c.ttl {
		c.evictOldest()
	}
}

func (c *dedupCache) evictOldest() {
	if c.head >= len(c.fifo) {
		// Only entries forgotten by finish remain in the map's history;
		// nothing to evict.
		clear(c.m)
		c.fifo, c.head = c.fifo[:0], 0
		return
	}
	e := c.fifo[c.head]
	c.fifo[c.head] = nil
	c.head++
	if c.m[e.key] == e {
		delete(c.m, e.key)
	}
	if c.head > 1024 && c.head*2 > len(c.fifo) {
		n := copy(c.fifo, c.fifo[c.head:])
		clear(c.fifo[n:])
		c.fifo, c.head = c.fifo[:n], 0
	}
}

func (c *dedupCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
