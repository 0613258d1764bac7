package radiusserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// mapUsers is authn.Users over a map, handing out copies as the store
// does.
type mapUsers struct {
	mu sync.Mutex
	m  map[string]*store.User
}

func (m *mapUsers) get(match func(*store.User) bool) (*store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.m {
		if match(u) {
			return u.Copy(), nil
		}
	}
	return nil, store.ErrNotFound
}
func (m *mapUsers) UserByID(id string) (*store.User, error) {
	return m.get(func(u *store.User) bool { return u.ID == id })
}
func (m *mapUsers) UserByUsername(n string) (*store.User, error) {
	return m.get(func(u *store.User) bool { return u.Username == n })
}
func (m *mapUsers) UserByEmail(e string) (*store.User, error) {
	return m.get(func(u *store.User) bool { return u.Email == e })
}
func (m *mapUsers) UpdateUser(id string, fn func(*store.User) error) (*store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.m[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	c := u.Copy()
	if err := fn(c); err != nil {
		return nil, err
	}
	m.m[id] = c
	return c.Copy(), nil
}

type discardEvents struct{}

func (discardEvents) Emit(store.Event) {}

// BenchmarkWarmLogin is the warm path of a re-authentication storm as
// the door runs it: a PAP Access-Request with a Message-Authenticator and
// a Calling-Station-Id, from a known NAS, answered inline by the real
// authn from its credential cache, with the daemon's default failure
// budget on. The store is a map and events are discarded, so the figure
// is the door's and authn's own cost per request (time, bytes,
// allocations); the event writer's is the store's (store
// BenchmarkEmit). The duplicate cache runs full, evicting as it inserts.
//
//	go test -run x -bench BenchmarkWarmLogin -benchmem ./radiusserver/
func BenchmarkWarmLogin(b *testing.B) {
	users := &mapUsers{m: map[string]*store.User{"u1": {ID: "u1", Username: "user1", Email: "user1@bench.test",
		State: store.StateActive, PasswordStatus: store.PasswordPending, PasswordAuthority: store.AuthorityLocal,
		DelegatedAuthority: store.AuthorityNone}}}
	var cfg authn.Config
	cfg.Defaults()
	cfg.Hash = authn.HashParams{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}
	a, err := authn.New(cfg, users, discardEvents{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.ChangePassword(context.Background(), "u1", secret.FromString("password1"), "bench"); err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Clients: unitConfig().Clients}, a, nil, testLogger(b), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	const distinct = 8192
	pkts := make([][]byte, distinct)
	for i := range pkts {
		pkts[i], _ = request{id: byte(i), user: "user1", password: "password1", extra: func(p *radius.Packet) {
			_ = rfc2865.CallingStationID_SetString(p, fmt.Sprintf("02-00-00-00-%02x-%02x", i>>8, i&0xff))
		}}.encode(b)
	}
	if resp := s.handlePacket(context.Background(), srcNAS, pkts[0], time.Now()); resp == nil || radius.Code(resp[0]) != radius.CodeAccessAccept {
		b.Fatal("the priming login was not accepted")
	}
	s.dedup = newDedupCache(dedupTTL, distinct/2) // a packet's entry is gone when it comes round again
	b.ReportAllocs()
	i := 0
	sc := new(packetScratch)
	for b.Loop() {
		resp, deferred := s.handle(context.Background(), srcNAS, pkts[i%distinct], time.Now(), true, sc)
		if deferred || resp == nil || radius.Code(resp[0]) != radius.CodeAccessAccept {
			b.Fatalf("request %d: deferred %v, answer %v", i, deferred, resp)
		}
		i++
	}
}
