package authn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// credCache remembers that a password verified, as an HMAC under a key
// that exists only in this process: a memory dump yields digests that are
// useless without the key, and nothing of it ever reaches disk.
type credCache struct {
	key []byte
	// macs holds keyed HMAC states: building one costs two SHA-256 blocks
	// and allocations on every login of a re-authentication storm.
	macs    sync.Pool
	mu      sync.RWMutex
	entries map[string]cacheEntry // by user id
}

type cacheEntry struct {
	digest  [sha256.Size]byte
	hash    string // the stored hash this entry vouches for
	version uint64
	expires time.Time
}

func newCredCache() (*credCache, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("credential cache key: %w", err)
	}
	c := &credCache{key: key, entries: make(map[string]cacheEntry)}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, c.key)} }
	return c, nil
}

// macState is a pooled keyed HMAC with the buffers one digest needs, so
// a cache hit allocates nothing: the message is written in one call from
// buf, and the sum lands in out, neither escaping per call.
type macState struct {
	h   hash.Hash
	buf []byte
	out [sha256.Size]byte
}

func (c *credCache) digest(userID string, pw secret.String) [sha256.Size]byte {
	m := c.macs.Get().(*macState)
	m.h.Reset()
	m.buf = append(append(append(m.buf[:0], userID...), 0), pw.Bytes()...)
	m.h.Write(m.buf)
	m.h.Sum(m.out[:0])
	d := m.out
	// Keep no trace of the password in the pooled state.
	clear(m.buf)
	clear(m.out[:])
	m.h.Reset()
	c.macs.Put(m)
	return d
}

func (c *credCache) match(u *store.User, pw secret.String, now time.Time) bool {
	c.mu.RLock()
	e, ok := c.entries[u.ID]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) || e.hash != u.PasswordHash || e.version != u.PasswordVersion {
		return false
	}
	d := c.digest(u.ID, pw)
	return hmac.Equal(d[:], e.digest[:])
}

func (c *credCache) put(u *store.User, pw secret.String, expires time.Time) {
	e := cacheEntry{digest: c.digest(u.ID, pw), hash: u.PasswordHash, version: u.PasswordVersion, expires: expires}
	c.mu.Lock()
	c.entries[u.ID] = e
	if len(c.entries) > 1<<16 && len(c.entries)%1024 == 0 {
		c.sweepLocked(time.Now())
	}
	c.mu.Unlock()
}

func (c *credCache) drop(userID string) {
	c.mu.Lock()
	delete(c.entries, userID)
	c.mu.Unlock()
}

func (c *credCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

func (c *credCache) sweepLocked(now time.Time) {
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, id)
		}
	}
}

func (c *credCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
