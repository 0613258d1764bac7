package radiusserver

import (
	"encoding/binary"
	"hash/maphash"
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

// dedupEntry is one request seen. Entries live by value in a ring in
// insertion (= expiry) order, so recording a request allocates nothing
// but the answer it keeps: at tens of thousands of requests a second a
// pointer per entry, and the map keyed by the whole key, were a tenth of
// the door's CPU.
type dedupEntry struct {
	key  dedupKey
	hash uint64
	seq  uint64
	at   time.Duration // since the cache was made (monotonic)
	resp []byte        // set when done
	done bool
	live bool
}

// dedupSlot is an index entry. It carries the first half of the Request
// Authenticator so that the usual case, a NAS reusing an Identifier for
// a new request, is told apart without reading the ring entry: that
// read, of an entry written thousands of requests before, was a cache
// miss per request and most of begin's time. Half is enough to tell a
// new request (16 random octets, RFC 2865 §3) from a retransmission; a
// match is checked against the whole key in the ring.
type dedupSlot struct {
	seq      uint64
	authHead uint64
}

func authHead(auth *[16]byte) uint64 { return binary.LittleEndian.Uint64(auth[:8]) }

// dedupTicket names the entry a begin made, for finish.
type dedupTicket struct {
	seq uint64
	ok  bool
}

type dedupState int

const (
	dedupNew      dedupState = iota // not seen: the caller does the work
	dedupInFlight                   // seen, no answer yet: drop
	dedupCached                     // seen and answered: resend resp
)

type dedupCache struct {
	mu    sync.Mutex
	seed  maphash.Seed
	base  time.Time
	idx   map[uint64]dedupSlot // key hash → its entry
	ring  []dedupEntry         // seq s at ring[s % limit]; grows to limit
	tail  uint64               // oldest seq still in the ring
	head  uint64               // next seq
	ttl   time.Duration
	limit int
}

func newDedupCache(ttl time.Duration, limit int) *dedupCache {
	return &dedupCache{seed: maphash.MakeSeed(), base: time.Now(), idx: make(map[uint64]dedupSlot), ttl: ttl, limit: max(limit, 1)}
}

// hashKey is a keyed (per-process random seed) hash of k's client,
// source and Identifier, so a client cannot aim requests at one map slot.
// The Request Authenticator is left out: a NAS reuses an Identifier only
// for a new request (RFC 5080 §2.2.2), whose entry then takes the slot of
// the one before, so the index holds one entry per (source, Identifier) —
// at most 256 per NAS port, small enough to stay in cache, where an index
// of every request of the last 30 seconds was a map of 65536 entries
// missing the cache on each of its three operations per request. A lookup
// is checked against the full key, so a collision, or a retransmission
// of a request whose Identifier was reused since, is treated as new.
func (c *dedupCache) hashKey(k dedupKey) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(k.client)
	var b [16 + 2 + 1]byte
	a := k.src.Addr().As16()
	copy(b[:16], a[:])
	b[16], b[17] = byte(k.src.Port()>>8), byte(k.src.Port())
	b[18] = k.id
	h.Write(b[:])
	return h.Sum64()
}

func (c *dedupCache) at(seq uint64) *dedupEntry { return &c.ring[seq%uint64(c.limit)] }

// begin looks key up. On dedupNew it has inserted an in-flight entry that
// the caller must pass to finish.
func (c *dedupCache) begin(k dedupKey, now time.Time) (dedupTicket, dedupState, []byte) {
	h := c.hashKey(k)
	t := now.Sub(c.base)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(t)
	if sl, ok := c.idx[h]; ok && sl.authHead == authHead(&k.auth) {
		if e := c.at(sl.seq); e.live && e.seq == sl.seq && e.key == k {
			if !e.done {
				return dedupTicket{}, dedupInFlight, nil
			}
			return dedupTicket{}, dedupCached, e.resp
		}
	}
	for c.head-c.tail >= uint64(c.limit) {
		c.evictOldest()
	}
	seq := c.head
	c.head++
	if len(c.ring) < c.limit && int(seq%uint64(c.limit)) == len(c.ring) {
		c.ring = append(c.ring, dedupEntry{})
	}
	*c.at(seq) = dedupEntry{key: k, hash: h, seq: seq, at: t, live: true}
	c.idx[h] = dedupSlot{seq: seq, authHead: authHead(&k.auth)}
	return dedupTicket{seq: seq, ok: true}, dedupNew, nil
}

// finish records the answer. A nil resp (the request was dropped, or the
// handler panicked) forgets the entry so that a retransmit is served.
func (c *dedupCache) finish(tk dedupTicket, resp []byte) {
	if !tk.ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if tk.seq < c.tail || tk.seq >= c.head {
		return // evicted meanwhile
	}
	e := c.at(tk.seq)
	if !e.live || e.seq != tk.seq {
		return
	}
	e.resp, e.done = resp, true
	if resp == nil {
		c.unindex(e)
		e.key = dedupKey{}
	}
}

func (c *dedupCache) unindex(e *dedupEntry) {
	if sl, ok := c.idx[e.hash]; ok && sl.seq == e.seq {
		delete(c.idx, e.hash)
	}
}

func (c *dedupCache) expire(now time.Duration) {
	for c.tail < c.head && now-c.at(c.tail).at >= c.ttl {
		c.evictOldest()
	}
}

// evictOldest drops the entry at the tail, and the answer it kept.
func (c *dedupCache) evictOldest() {
	e := c.at(c.tail)
	if e.live {
		c.unindex(e)
	}
	*e = dedupEntry{}
	c.tail++
}

func (c *dedupCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idx)
}
