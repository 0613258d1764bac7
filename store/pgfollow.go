package store

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// primaryArgs are obj's arguments for its table's "id" index.
func primaryArgs(obj any) []any {
	switch o := obj.(type) {
	case *User:
		return []any{o.ID}
	case *Group:
		return []any{o.ID}
	case *Membership:
		return []any{o.GroupID, o.UserID}
	case *Directory:
		return []any{o.Name}
	case *Binding:
		return []any{o.ID}
	case *SyncState:
		return []any{o.Directory, o.SubjectID}
	case *ADImportState:
		return []any{o.Domain}
	case *Invite:
		return []any{o.UserID}
	}
	return nil
}

// reported are the tables whose changes Subscribe reports.
var reported = map[string]bool{
	TableUsers: true, TableGroups: true, TableMemberships: true,
	TableDirectories: true, TableBindings: true, TableSyncState: true,
}

// applyRemote puts other replicas' commits into memdb and the users'
// indexes, and returns the changes to report. Called with s.mu held. A
// record that does not decode is logged and skipped: it is the shared
// database's damage, which `gatewayd store verify` names, and it must not
// stop this replica from following the others.
func (s *Store) applyRemote(rows []pgRow) []Change {
	var fresh []pgRow
	for _, r := range rows {
		if r.seq > s.pg.applied {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	w := &wtxn{s: s, mem: s.mem.Txn(true)}
	var changes []Change
	for _, r := range fresh {
		obj, err := decodeRecord(r.tbl, r.key, r.val, true)
		if err != nil || obj == nil {
			s.log.Error("a record written by another replica cannot be read; skipped (run gatewayd store verify)",
				"database", s.pg.name, "table", r.tbl, "key", printableKey(r.tbl, r.key), "err", err)
			continue
		}
		old := w.first(r.tbl, "id", primaryArgs(obj)...)
		if r.deleted {
			if old == nil {
				continue
			}
			if u, ok := old.(*User); ok {
				w.userIx().update(u, nil)
			}
			if err := w.mem.Delete(r.tbl, old); err != nil {
				s.log.Error("applying another replica's deletion", "table", r.tbl, "key", printableKey(r.tbl, r.key), "err", err)
				continue
			}
			if reported[r.tbl] {
				changes = append(changes, Change{Table: r.tbl, Before: copyObject(r.tbl, old)})
			}
			continue
		}
		if u, ok := obj.(*User); ok {
			ou, _ := old.(*User)
			w.userIx().update(ou, u)
		}
		if err := w.mem.Insert(r.tbl, obj); err != nil {
			s.log.Error("applying another replica's write", "table", r.tbl, "key", printableKey(r.tbl, r.key), "err", err)
			continue
		}
		if reported[r.tbl] && !onlyLoginStamp(old, obj) {
			changes = append(changes, Change{Table: r.tbl, Before: copyObject(r.tbl, old), After: copyObject(r.tbl, obj)})
		}
	}
	w.mem.Commit()
	if w.users != nil {
		s.users = w.users
	}
	s.pg.applied = fresh[len(fresh)-1].seq
	s.publish(w.users != nil)
	return changes
}

// onlyLoginStamp: a login's LastLoginAt stamp is not reported on the
// replica that wrote it, so not on the others either.
func onlyLoginStamp(old, new any) bool {
	ou, ok1 := old.(*User)
	nu, ok2 := new.(*User)
	if !ok1 || !ok2 || ou.LastLoginAt.Equal(nu.LastLoginAt) {
		return false
	}
	c := nu.Copy()
	c.LastLoginAt = ou.LastLoginAt
	return reflect.DeepEqual(c, ou)
}

// copyObject gives a subscriber its own copy (nil stays nil).
func copyObject(table string, obj any) any {
	switch o := obj.(type) {
	case nil:
		return nil
	case *User:
		return o.Copy()
	case *Group:
		return o.Copy()
	case *Membership:
		c := *o
		return &c
	case *Directory:
		return o.Copy()
	case *Binding:
		return o.Copy()
	case *SyncState:
		c := *o
		return &c
	}
	return obj
}

// follow applies other replicas' commits until Close: on each NOTIFY,
// every Poll without one, and after every reconnect (notifications sent
// while disconnected are gone; the change sequence is not).
func (s *Store) follow() {
	j := s.pg
	defer close(j.done)
	backoff := time.Duration(0)
	for {
		select {
		case <-j.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 2*time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-j.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		conn, err := pgx.Connect(ctx, j.dsn)
		if err != nil {
			cancel()
			_ = s.catchUp(context.Background()) // a pool connection may still work
			continue
		}
		if _, err := conn.Exec(ctx, "LISTEN "+pgChannel); err != nil {
			conn.Close(context.Background())
			cancel()
			continue
		}
		backoff = 0
		_ = s.catchUp(context.Background())
		for {
			wctx, wcancel := context.WithTimeout(ctx, j.poll)
			n, err := conn.WaitForNotification(wctx)
			wcancel()
			if ctx.Err() != nil {
				break
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				break // the connection is gone: reconnect
			}
			if n != nil && s.hasApplied(n.Payload) {
				continue // our own write (LISTEN hears it too), or already followed
			}
			_ = s.catchUp(context.Background())
		}
		conn.Close(context.Background())
		cancel()
	}
}

// hasApplied reports whether the change a notification names is already
// in memory.
func (s *Store) hasApplied(payload string) bool {
	seq, err := strconv.ParseUint(payload, 10, 64)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return seq <= s.pg.applied
}

// catchUp applies what other replicas committed since this one last
// looked. The read runs outside the writer's lock; rows a local write
// already applied meanwhile are skipped under it (applyRemote).
func (s *Store) catchUp(ctx context.Context) error {
	s.mu.Lock()
	from := s.pg.applied
	s.mu.Unlock()
	rows, err := s.pg.since(ctx, from)
	if err != nil {
		return s.pg.unavailable("catching up", err)
	}
	if len(rows) == 0 {
		return nil
	}
	locked, unlock := s.lockWriter()
	defer unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.notifyLocked(s.applyRemote(rows), locked)
	return nil
}

// CatchUp applies every write committed on other replicas before the
// call (PostgreSQL backend; the embedded store has nothing to catch up).
func (s *Store) CatchUp(ctx context.Context) error {
	if s.pg == nil {
		return nil
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return s.catchUp(ctx)
}
