package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/jackc/pgx/v5"
)

// openPG opens a store on dsn as one replica.
func openPG(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	o := PostgresOptions{DSN: dsn, Poll: 100 * time.Millisecond, Timeout: 3 * time.Second}
	if opts.Postgres != nil {
		o = *opts.Postgres
		o.DSN = dsn
	}
	opts.Postgres = &o
	s, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open(postgres): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresReplicasSeeEachOther(t *testing.T) {
	pg := testutil.StartPostgres(t)
	dsn := pg.DSN()
	a, b := openPG(t, dsn, Options{}), openPG(t, dsn, Options{})

	var mu sync.Mutex
	var seen []Change
	b.Subscribe(func(c Change) {
		mu.Lock()
		seen = append(seen, c)
		mu.Unlock()
	})

	u, err := a.CreateUser(&User{Username: "alice", Email: "alice@corp.test"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Second, func() bool {
		got, err := b.UserByUsername("alice")
		return err == nil && got.ID == u.ID && got.UIDNumber == u.UIDNumber
	}, "a user created on replica a is visible on replica b within 1 s")
	testutil.Eventually(t, time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 1 && seen[0].Table == TableUsers && seen[0].Before == nil && seen[0].After.(*User).ID == u.ID
	}, "replica b reports the create to its subscribers")

	// b's write sees a's first: the name is taken on both.
	if _, err := b.CreateUser(&User{Username: "ALICE", Email: "other@corp.test"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate username across replicas: err = %v, want ErrConflict", err)
	}
	// Numbers are handed out once across replicas.
	v, err := b.CreateUser(&User{Username: "bob", Email: "bob@corp.test"})
	if err != nil {
		t.Fatal(err)
	}
	if v.UIDNumber == u.UIDNumber {
		t.Fatalf("uidNumber %d handed out twice", v.UIDNumber)
	}

	g, err := b.CreateGroup(&Group{Name: "staff"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddMember(g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Second, func() bool {
		gs, err := a.GroupsOfUser(u.ID)
		return err == nil && len(gs) == 1 && gs[0].ID == g.ID
	}, "a membership added on b is on a")

	if _, err := a.UpdateUser(u.ID, func(x *User) error { x.Username = "alice2"; return nil }); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Second, func() bool {
		_, e1 := b.UserByUsername("alice")
		got, e2 := b.UserByUsername("alice2")
		return errors.Is(e1, ErrNotFound) && e2 == nil && got.ID == u.ID
	}, "a rename on a reaches b's username index")

	if err := a.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Second, func() bool {
		_, err := b.UserByID(u.ID)
		ms, _ := b.MembersOf(g.ID)
		return errors.Is(err, ErrNotFound) && len(ms) == 0
	}, "a deletion on a (with its memberships) reaches b")

	for _, s := range []*Store{a, b} {
		if err := s.CatchUp(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	// A third replica started now loads the same state.
	c := openPG(t, dsn, Options{})
	if _, err := c.UserByUsername("bob"); err != nil {
		t.Fatalf("a new replica does not load bob: %v", err)
	}
	if _, err := c.UserByID(u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a new replica loads a deleted user: %v", err)
	}
}

func TestPostgresConcurrentWritersAcrossReplicas(t *testing.T) {
	pg := testutil.StartPostgres(t)
	dsn := pg.DSN()
	reps := []*Store{openPG(t, dsn, Options{}), openPG(t, dsn, Options{}), openPG(t, dsn, Options{})}
	const per = 30
	var wg sync.WaitGroup
	errs := make(chan error, len(reps)*per)
	for i, s := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range per {
				// Every replica also tries a name another replica creates.
				name := fmt.Sprintf("u%d", n)
				if _, err := s.CreateUser(&User{Username: fmt.Sprintf("r%d-%s", i, name), Email: fmt.Sprintf("r%d-%s@corp.test", i, name)}); err != nil {
					errs <- err
				}
				if _, err := s.CreateUser(&User{Username: "shared-" + name, Email: "shared-" + name + "@corp.test"}); err != nil && !errors.Is(err, ErrConflict) {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := len(reps)*per + per
	for i, s := range reps {
		if err := s.CatchUp(t.Context()); err != nil {
			t.Fatal(err)
		}
		users, _, err := s.ListUsers("", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != want {
			t.Fatalf("replica %d holds %d users, want %d (each shared name once)", i, len(users), want)
		}
		nums := map[int]string{}
		for _, u := range users {
			if o, dup := nums[u.UIDNumber]; dup {
				t.Fatalf("uidNumber %d of both %s and %s", u.UIDNumber, o, u.Username)
			}
			nums[u.UIDNumber] = u.Username
		}
		if err := s.Verify(); err != nil {
			t.Fatalf("replica %d: Verify: %v", i, err)
		}
	}
}

func TestPostgresEventsInOneLog(t *testing.T) {
	pg := testutil.StartPostgres(t)
	dsn := pg.DSN()
	a, b := openPG(t, dsn, Options{EventRetention: 50}), openPG(t, dsn, Options{EventRetention: 50})
	for i := range 40 {
		s := a
		if i%2 == 1 {
			s = b
		}
		s.Emit(Event{Type: EventRADIUSAuth, Outcome: OutcomeSuccess, Login: true, Detail: fmt.Sprint(i)})
		if i%10 == 9 {
			if err := a.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := b.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	evs, _, err := a.ListEvents(EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 40 {
		t.Fatalf("%d events listed, want 40 from both replicas", len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != evs[i-1].Seq+1 {
			t.Fatalf("events not in one sequence: %d after %d", evs[i].Seq, evs[i-1].Seq)
		}
	}
	for i := range 30 {
		b.Emit(Event{Type: EventRADIUSAuth, Outcome: OutcomeFailure, Detail: fmt.Sprint("more", i)})
	}
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs, _, err = a.ListEvents(EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 50 || evs[len(evs)-1].Detail != "more29" {
		t.Fatalf("after pruning: %d events (want the retention, 50), last %q", len(evs), evs[len(evs)-1].Detail)
	}
}

func TestPostgresOutage(t *testing.T) {
	pg := testutil.StartPostgres(t)
	dsn := pg.DSN()
	a := openPG(t, dsn, Options{Postgres: &PostgresOptions{EventQueue: 100, Poll: 100 * time.Millisecond, Timeout: 2 * time.Second}})
	u, err := a.CreateUser(&User{Username: "carol", Email: "carol@corp.test"})
	if err != nil {
		t.Fatal(err)
	}
	pg.Stop(t)

	if _, err := a.CreateUser(&User{Username: "dave", Email: "dave@corp.test"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write during the outage: err = %v, want ErrUnavailable", err)
	}
	if got, err := a.UserByUsername("carol"); err != nil || got.ID != u.ID {
		t.Fatalf("reads during the outage: %v", err)
	}
	// Emit never blocks: beyond the queue's bound events are dropped.
	done := make(chan struct{})
	go func() {
		for i := range 5000 {
			a.Emit(Event{Type: EventRADIUSAuth, Outcome: OutcomeSuccess, Login: true, UserID: u.ID, Detail: fmt.Sprint(i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Emit blocked during the outage")
	}
	if a.DroppedEvents() == 0 {
		t.Fatal("no event counted as dropped beyond the queue's bound")
	}

	pg.Start(t)
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := a.CreateUser(&User{Username: "dave", Email: "dave@corp.test"})
		return err == nil || errors.Is(err, ErrConflict)
	}, "writes succeed again once PostgreSQL is back")
	if err := a.Flush(t.Context()); err != nil {
		t.Fatalf("queued events after the outage: %v", err)
	}
	written, after := 0, uint64(0)
	for {
		evs, next, err := a.ListEvents(EventFilter{UserID: u.ID, After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		written += len(evs)
		if next == 0 {
			break
		}
		after = next
	}
	if written == 0 || uint64(written)+a.DroppedEvents() != 5000 {
		t.Fatalf("%d events written and %d dropped of 5000 emitted", written, a.DroppedEvents())
	}
}

func TestPostgresCoordination(t *testing.T) {
	pg := testutil.StartPostgres(t)
	dsn := pg.DSN()
	a, b := openPG(t, dsn, Options{}), openPG(t, dsn, Options{})
	ctx := t.Context()

	t.Run("claims", func(t *testing.T) {
		rel, err := a.ClaimJob(ctx, "entra/u1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.ClaimJob(ctx, "entra/u1", time.Minute); !errors.Is(err, ErrClaimed) {
			t.Fatalf("second replica's claim: %v, want ErrClaimed", err)
		}
		// The holder's state write is seen by the next holder at once.
		if _, err := a.CreateUser(&User{Username: "claimed", Email: "claimed@corp.test"}); err != nil {
			t.Fatal(err)
		}
		rel()
		rel() // idempotent
		rel2, err := b.ClaimJob(ctx, "entra/u1", time.Minute)
		if err != nil {
			t.Fatalf("claim after release: %v", err)
		}
		if _, err := b.UserByUsername("claimed"); err != nil {
			t.Fatalf("the claim did not catch up with the previous holder's write: %v", err)
		}
		rel2()

		// An expired claim is taken over; the old holder's late release
		// leaves the new claim alone.
		old, err := a.ClaimJob(ctx, "entra/u2", 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var next func()
		testutil.Eventually(t, 10*time.Second, func() bool {
			next, err = b.ClaimJob(ctx, "entra/u2", time.Minute)
			return err == nil
		}, "an expired claim is taken over by another replica")
		old()
		if _, err := a.ClaimJob(ctx, "entra/u2", time.Minute); !errors.Is(err, ErrClaimed) {
			t.Fatalf("after a stale release: %v, want ErrClaimed (the new holder keeps it)", err)
		}
		next()
	})

	t.Run("lease", func(t *testing.T) {
		ok, err := a.HoldLease(ctx, "ad-import/corp", 200*time.Millisecond)
		if err != nil || !ok {
			t.Fatalf("first HoldLease = %v, %v", ok, err)
		}
		if ok, err := b.HoldLease(ctx, "ad-import/corp", time.Minute); err != nil || ok {
			t.Fatalf("other replica's HoldLease while held = %v, %v", ok, err)
		}
		if ok, err := a.HoldLease(ctx, "ad-import/corp", 200*time.Millisecond); err != nil || !ok {
			t.Fatalf("renewal = %v, %v", ok, err)
		}
		testutil.Eventually(t, 10*time.Second, func() bool {
			ok, err := b.HoldLease(ctx, "ad-import/corp", time.Minute)
			return err == nil && ok
		}, "the lease passes to another replica once it runs out")
		if ok, _ := a.HoldLease(ctx, "ad-import/corp", time.Minute); ok {
			t.Fatal("the old leader got the lease back while the new one holds it")
		}
	})

	t.Run("failures", func(t *testing.T) {
		if !a.SharedFailures() {
			t.Fatal("SharedFailures is false on PostgreSQL")
		}
		now := time.Now()
		for i, s := range []*Store{a, b, a, b} {
			n, err := s.CountFailure(ctx, "u9", time.Minute, now.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if n != i+1 {
				t.Fatalf("failure %d counted as %d across replicas", i+1, n)
			}
		}
		if n, _ := a.CountFailure(ctx, "u9", time.Minute, now.Add(2*time.Minute)); n != 1 {
			t.Fatalf("a failure after the window counts %d, want 1", n)
		}
		if err := b.ResetFailures(ctx, "u9"); err != nil {
			t.Fatal(err)
		}
		// Resets are sent in batches, shortly after.
		conn := pgConn(t, dsn)
		testutil.Eventually(t, 10*time.Second, func() bool {
			var n int
			return conn.QueryRow(ctx, `SELECT count(*) FROM gw_failures WHERE user_id = 'u9'`).Scan(&n) == nil && n == 0
		}, "the reset reaches the shared count")
		if n, _ := a.CountFailure(ctx, "u9", time.Minute, now.Add(3*time.Minute)); n != 1 {
			t.Fatalf("after a reset on the other replica: %d, want 1", n)
		}
	})
}

func TestPostgresMigrateAndVerify(t *testing.T) {
	pg := testutil.StartPostgres(t)
	dsn := pg.DSN()
	ctx := t.Context()
	dir := t.TempDir()
	src := openAt(t, dir, Options{})
	u, err := src.CreateUser(&User{Username: "erin", Email: "erin@corp.test"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := src.CreateGroup(&Group{Name: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.AddMember(g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := src.AppendEvents(Event{Type: EventRADIUSAuth, Outcome: OutcomeSuccess, UserID: u.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := MigrateToPostgres(ctx, dir, dsn, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("migrated a journal the running store holds")
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := MigrateToPostgres(ctx, dir, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records[TableUsers] != 1 || rep.Records[TableGroups] != 1 || rep.Records[TableMemberships] != 1 || rep.Records[TableEvents] != 1 {
		t.Fatalf("copied %v", rep.Records)
	}
	if _, err := MigrateToPostgres(ctx, dir, dsn, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a second migration merged into a database holding data")
	}
	ver, err := VerifyPostgres(ctx, dsn)
	if err != nil || !ver.OK() {
		t.Fatalf("VerifyPostgres after migrate: %+v, %v", ver, err)
	}
	s := openPG(t, dsn, Options{})
	got, err := s.UserByUsername("erin")
	if err != nil || got.UIDNumber != u.UIDNumber {
		t.Fatalf("migrated user: %+v, %v", got, err)
	}
	if ms, _ := s.MembersOf(g.ID); len(ms) != 1 {
		t.Fatalf("migrated membership: %v", ms)
	}
	// The counters came along: the next user does not reuse erin's number.
	v, err := s.CreateUser(&User{Username: "frank", Email: "frank@corp.test"})
	if err != nil || v.UIDNumber == u.UIDNumber {
		t.Fatalf("next user after migrate: %+v, %v", v, err)
	}
	if evs, _, _ := s.ListEvents(EventFilter{}); len(evs) != 1 || evs[0].UserID != u.ID {
		t.Fatalf("migrated events: %v", evs)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}

	// A flipped byte in a stored record is named by verify.
	conn := pgConn(t, dsn)
	if _, err := conn.Exec(ctx, `UPDATE gw_records SET val = overlay(val placing '\x58'::bytea from 12 for 1) WHERE tbl = 'users' AND key = $1`, []byte(v.ID)); err != nil {
		t.Fatal(err)
	}
	ver, err = VerifyPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if ver.OK() || len(ver.Damaged) != 1 || ver.Damaged[0].Bucket != TableUsers || ver.Damaged[0].Key != fmt.Sprintf("%q", v.ID) {
		t.Fatalf("verify of a flipped byte: %+v", ver)
	}
	if _, err := Open(t.TempDir(), Options{Logger: slog.New(slog.DiscardHandler), Postgres: &PostgresOptions{DSN: dsn}}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a replica started on a damaged record: %v, want ErrDamaged", err)
	}
}

func pgConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
