package authn

import (
	"strings"
	"sync"

	"github.com/gatewayd/gatewayd/store"
)

// fakeUsers mimics the store's contract: copies out, notify after commit.
type fakeUsers struct {
	mu     sync.Mutex
	byID   map[string]*store.User
	notify func(store.Change)
	writes int
}

func newFakeUsers() *fakeUsers { return &fakeUsers{byID: map[string]*store.User{}} }

func (f *fakeUsers) add(u *store.User) *store.User {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[u.ID] = u.Copy()
	return u.Copy()
}

func (f *fakeUsers) UserByID(id string) (*store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.byID[id]; ok {
		return u.Copy(), nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeUsers) find(match func(*store.User) bool) (*store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.byID {
		if match(u) {
			return u.Copy(), nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeUsers) UserByUsername(n string) (*store.User, error) {
	return f.find(func(u *store.User) bool { return strings.EqualFold(u.Username, n) })
}

func (f *fakeUsers) UserByEmail(e string) (*store.User, error) {
	return f.find(func(u *store.User) bool { return strings.EqualFold(u.Email, e) })
}

func (f *fakeUsers) UpdateUser(id string, fn func(*store.User) error) (*store.User, error) {
	f.mu.Lock()
	old, ok := f.byID[id]
	if !ok {
		f.mu.Unlock()
		return nil, store.ErrNotFound
	}
	nu := old.Copy()
	if err := fn(nu); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	f.byID[id] = nu
	f.writes++
	notify := f.notify
	f.mu.Unlock()
	if notify != nil {
		notify(store.Change{Table: "users", Before: old.Copy(), After: nu.Copy()})
	}
	return nu.Copy(), nil
}

func (f *fakeUsers) delete(id string) {
	f.mu.Lock()
	old := f.byID[id]
	delete(f.byID, id)
	notify := f.notify
	f.mu.Unlock()
	if notify != nil && old != nil {
		notify(store.Change{Table: "users", Before: old})
	}
}

type fakeEvents struct {
	mu  sync.Mutex
	evs []store.Event
}

func (f *fakeEvents) Emit(ev store.Event) {
	f.mu.Lock()
	f.evs = append(f.evs, ev)
	f.mu.Unlock()
}

func (f *fakeEvents) last() store.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.evs) == 0 {
		return store.Event{}
	}
	return f.evs[len(f.evs)-1]
}

// get returns the stored user (a copy), failing nothing: tests check it.
func (f *fakeUsers) get(id string) *store.User {
	u, _ := f.UserByID(id)
	if u == nil {
		return &store.User{}
	}
	return u
}
