package fakehttp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Why a bearer token is refused; each fake words them its own way.
var (
	ErrNoToken      = errors.New("fakehttp: no bearer token")
	ErrUnknownToken = errors.New("fakehttp: bearer token not issued here")
	ErrTokenExpired = errors.New("fakehttp: bearer token expired")
)

// Tokens are the bearer tokens a fake issued, each with its grant (what
// it allows, of type G), and how many it issued. They are safe for
// concurrent use.
type Tokens[G any] struct {
	clock  *Clock
	prefix string

	mu       sync.Mutex
	lifetime time.Duration
	issued   int
	tokens   map[string]*record[G]
}

type record[G any] struct {
	expiry time.Time
	grant  G
}

// NewTokens returns an empty store whose tokens start with prefix (so
// that they look like the service's own) and live lifetime by clock.
func NewTokens[G any](clock *Clock, prefix string, lifetime time.Duration) *Tokens[G] {
	t := &Tokens[G]{clock: clock, prefix: prefix, tokens: map[string]*record[G]{}}
	t.SetLifetime(lifetime)
	return t
}

// SetLifetime sets the lifetime of tokens issued from now on, at least a
// second, since expires_in is whole seconds.
func (t *Tokens[G]) SetLifetime(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lifetime = max(d, time.Second)
}

// Issue returns a new random token carrying grant, and its lifetime.
func (t *Tokens[G]) Issue(grant G) (string, time.Duration) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := t.prefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens[tok] = &record[G]{expiry: now.Add(t.lifetime), grant: grant}
	t.issued++
	return tok, t.lifetime
}

// Check returns the grant of r's bearer token, or why it has none:
// ErrNoToken, ErrUnknownToken or ErrTokenExpired.
func (t *Tokens[G]) Check(r *http.Request) (G, error) {
	var zero G
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return zero, ErrNoToken
	}
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	it := t.tokens[tok]
	switch {
	case it == nil:
		return zero, ErrUnknownToken
	case !now.Before(it.expiry):
		return zero, ErrTokenExpired
	}
	return it.grant, nil
}

// ExpireAll makes every token issued so far expired, as a revocation
// or a long pause would: the client must fetch a new one.
func (t *Tokens[G]) ExpireAll() {
	past := t.clock.Now().Add(-time.Second)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, it := range t.tokens {
		it.expiry = past
	}
}

// Issued counts the tokens issued.
func (t *Tokens[G]) Issued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.issued
}
