package authn

import (
	"crypto/sha256"
	"sync"
)

// flights coalesces concurrent verifies of one password for one user.
// After a start (or a cache expiry) a re-authentication storm brings many
// logins of the same user with the same password at once — a phone and a
// laptop, a service account binding on every connection of a pool — and
// each used to run its own argon2 (64 MiB and ~25 ms each) before the
// first could fill the cache: 50 such logins held every hashing slot,
// took the RSS past 500 MB and left some refused as busy. Now the first
// verifies and the others wait for it; when it succeeded they are
// answered from the cache it filled. When it failed they verify for
// themselves, so every wrong attempt is still checked and counted.
type flights struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*flight
}

type flight struct {
	done chan struct{}
	ok   bool // the leader's verify succeeded (set before done closes)
}

func newFlights() *flights { return &flights{m: make(map[[sha256.Size]byte]*flight)} }

// join returns the flight for key and whether the caller leads it (and
// must land it).
func (f *flights) join(key [sha256.Size]byte) (*flight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[key]; fl != nil {
		return fl, false
	}
	fl := &flight{done: make(chan struct{})}
	f.m[key] = fl
	return fl, true
}

// land ends the leader's flight with its outcome and wakes the waiters.
func (f *flights) land(key [sha256.Size]byte, fl *flight, ok bool) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
	fl.ok = ok
	close(fl.done)
}
