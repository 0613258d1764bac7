package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrentWriters: 8 goroutines create, update and delete users,
// touch groups and emit events while readers look users up; afterwards
// memory and journal agree (run with -race).
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{EventRetention: 500})
	group := mustGroup(t, s, "shared")
	var changes sync.Map // per-table counts, from the subscriber
	s.Subscribe(func(c Change) {
		n, _ := changes.LoadOrStore(c.Table, new(int))
		*n.(*int)++ // subscribers are called one at a time
	})

	const workers, rounds = 8, 40
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u, err := s.UserByUsername(fmt.Sprintf("w%d-u%d", r, i%rounds))
				if err == nil && u.Email == "" {
					errc <- errors.New("reader saw a user without email")
					return
				}
				s.ListUsers("", 50)
				s.UsersWithPrefix(UserKeyCN, fmt.Sprintf("w%d", r), 10)
				s.ListEvents(EventFilter{Type: "ldap_bind", Limit: 20})
			}
		}()
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var mine []string
			for i := range rounds {
				u, err := s.CreateUser(&User{Username: fmt.Sprintf("w%d-u%d", w, i), Email: fmt.Sprintf("w%d-u%d@x.test", w, i)})
				if err != nil {
					errc <- err
					return
				}
				mine = append(mine, u.ID)
				// A name every worker races for: exactly one wins.
				_, err = s.CreateUser(&User{Username: fmt.Sprintf("race%d", i), Email: fmt.Sprintf("race%d-%d@x.test", i, w)})
				if err != nil && !errors.Is(err, ErrConflict) {
					errc <- err
					return
				}
				s.Emit(Event{Type: "ldap_bind", UserID: u.ID, Outcome: OutcomeSuccess, Login: true})
				id := mine[rng.IntN(len(mine))]
				switch rng.IntN(4) {
				case 0:
					if err := s.DeleteUser(id); err == nil {
						mine = removeID(mine, id)
					} else if !errors.Is(err, ErrNotFound) {
						errc <- err
						return
					}
				case 1:
					if err := s.AddMember(group.ID, id); err != nil {
						errc <- err
						return
					}
				default:
					if _, err := s.UpdateUser(id, func(u *User) error { u.DisplayName = fmt.Sprint("n", i); return nil }); err != nil {
						errc <- err
						return
					}
				}
				if i%10 == 0 {
					if err := s.Flush(context.Background()); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	for i := range rounds {
		if _, err := s.UserByUsername(fmt.Sprintf("race%d", i)); err != nil {
			t.Errorf("race%d: %v", i, err)
		}
	}
	before := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, Options{EventRetention: 500})
	defer s.Close()
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	if dump(t, s) != before {
		t.Error("reopened store differs")
	}
}

func removeID(ids []string, id string) []string {
	for i, x := range ids {
		if x == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}
