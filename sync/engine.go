package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// Store is the slice of the store the engine needs.
type Store interface {
	UserByID(id string) (*store.User, error)
	UserByUsername(username string) (*store.User, error)
	ListUsers(after string, limit int) ([]*store.User, string, error)
	GroupByID(id string) (*store.Group, error)
	GroupsOfUser(userID string) ([]*store.Group, error)
	MembersOf(groupID string) ([]*store.User, error)
	BindingsOfSubject(subjectID string) ([]*store.Binding, error)
	ListBindings(directory string) ([]*store.Binding, error)
	SyncStateOf(directory, subjectID string) (*store.SyncState, error)
	ListSyncStates(directory string) ([]*store.SyncState, error)
	UpdateSyncState(directory, subjectID string, fn func(*store.SyncState) error) (*store.SyncState, error)
	Emit(ev store.Event)
}

// Directory is one configured target with its connector.
type Directory struct {
	Name                    string
	Connector               Connector
	Domains                 []string
	DefaultDomain           string
	Policy                  PasswordPolicy
	SuspendOnPasswordExpiry bool
	SuspendOnLockout        bool
	// Attributes maps gateway attribute names to remote properties
	// (DirectoryCommon.Attributes with the type's defaults); a name
	// absent or mapped to "" is not sent. nil sends no attribute.
	Attributes map[string]string
}

// trigger says why a pair is being reconciled.
type trigger int

const (
	trigChange   trigger = iota // a store change or the start-up scan
	trigRetry                   // a scheduled retry
	trigLogin                   // a verified login carrying the plaintext
	trigPassword                // a password set or changed (SPEC 3.4)
)

// pairKey names one (directory, user) or (directory, group) pair; user
// and group ids are UUIDs, so they never collide.
type pairKey struct {
	dir, id string
	group   bool
}

// pending is what is queued for one pair; later work merges into it.
type pending struct {
	trig  trigger
	pw    secret.String
	retry bool
	// claimTries counts the claims refused (or failed) in a row, for
	// the delay before the next try.
	claimTries int
}

// Engine reconciles (directory, user) pairs. Work for one pair is
// serialized on one worker; all remote calls happen off the login path.
type Engine struct {
	cfg Config
	st  Store
	// dirs maps name to directory; Forget swaps in a smaller map, so
	// readers load it once per use and never lock.
	dirs  atomic.Pointer[map[string]*Directory]
	log   *slog.Logger
	m     *engineMetrics
	shard []*queue
	wg    gosync.WaitGroup

	wakeMu gosync.Mutex
	wakes  map[pairKey]time.Time // pending wakeAt timers

	mgrMu gosync.Mutex
	mgrs  managerIndex // who reports to whom, for manager references

	// pauseMu guards paused and parked: a paused directory's work is
	// parked (merged per pair, like the queues) until Resume.
	pauseMu gosync.Mutex
	paused  map[string]bool
	parked  map[pairKey]pending

	// claimDown is set while Config.Claims fails (not refuses), so the
	// outage is logged once, and its end.
	claimDown atomic.Bool
}

// directories is the current name → directory map; do not modify it.
func (e *Engine) directories() map[string]*Directory { return *e.dirs.Load() }

// Forget stops all work for a directory (SPEC 4.5): nothing more is sent
// to it, and the store changes that follow (its bindings and sync state
// being deleted) deprovision nothing. Work already under way for it
// finishes. It reports whether the directory was configured.
func (e *Engine) Forget(name string) bool {
	for {
		old := e.dirs.Load()
		if _, ok := (*old)[name]; !ok {
			return false
		}
		next := make(map[string]*Directory, len(*old)-1)
		for n, d := range *old {
			if n != name {
				next[n] = d
			}
		}
		if e.dirs.CompareAndSwap(old, &next) {
			e.log.Info("sync: directory forgotten; no more calls go to it", "directory", name)
			return true
		}
	}
}

// New builds an engine; call Run to start it.
func New(cfg Config, st Store, dirs []*Directory, logger *slog.Logger, reg prometheus.Registerer) *Engine {
	cfg.defaults()
	if logger == nil {
		logger = slog.Default()
	}
	e := &Engine{cfg: cfg, st: st, log: logger, m: newEngineMetrics(reg)}
	byName := make(map[string]*Directory, len(dirs))
	for _, d := range dirs {
		byName[d.Name] = d
	}
	e.dirs.Store(&byName)
	for i := 0; i < cfg.Workers; i++ {
		e.shard = append(e.shard, newQueue())
	}
	return e
}

// Run works until ctx is done. It first enqueues every pair that is bound
// or was ever provisioned, so work interrupted by a crash is finished.
func (e *Engine) Run(ctx context.Context) {
	for _, q := range e.shard {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.work(ctx, q)
		}()
	}
	e.indexManagers()
	e.scan()
	<-ctx.Done()
	for _, q := range e.shard {
		q.close()
	}
	e.wg.Wait()
}

func (e *Engine) scan() {
	for name := range e.directories() {
		e.scanDirectory(name)
	}
}

// scanDirectory enqueues every pair of the directory that is bound or was
// ever provisioned.
func (e *Engine) scanDirectory(name string) {
	states, err := e.st.ListSyncStates(name)
	if err != nil {
		e.log.Error("sync: listing sync state", "directory", name, "err", err)
	}
	for _, s := range states {
		e.enqueue(pairKey{name, s.SubjectID, s.Kind == store.BindGroup}, pending{trig: trigChange})
	}
	bindings, err := e.st.ListBindings(name)
	if err != nil {
		e.log.Error("sync: listing bindings", "directory", name, "err", err)
	}
	for _, b := range bindings {
		e.enqueueSubject(name, b.Kind, b.SubjectID)
	}
}

func (e *Engine) enqueueSubject(dir, kind, subjectID string) {
	if kind == store.BindUser {
		e.enqueue(pairKey{dir: dir, id: subjectID}, pending{trig: trigChange})
		return
	}
	e.enqueue(pairKey{dir: dir, id: subjectID, group: true}, pending{trig: trigChange})
	members, err := e.st.MembersOf(subjectID)
	if err != nil {
		return
	}
	for _, u := range members {
		e.enqueue(pairKey{dir: dir, id: u.ID}, pending{trig: trigChange})
	}
}

// enqueueGroupsOf re-reconciles the user's groups in dir, so a member
// that just got (or lost) an account is added to (or kept in) them.
func (e *Engine) enqueueGroupsOf(dir, userID string) {
	groups, err := e.st.GroupsOfUser(userID)
	if err != nil {
		return
	}
	for _, g := range groups {
		e.enqueue(pairKey{dir: dir, id: g.ID, group: true}, pending{trig: trigChange})
	}
}

func (e *Engine) enqueue(k pairKey, p pending) {
	if _, ok := e.directories()[k.dir]; !ok {
		p.pw.Wipe()
		return
	}
	h := fnv.New32a()
	h.Write([]byte(k.dir + "\x00" + k.id))
	e.shard[int(h.Sum32())%len(e.shard)].push(k, p)
}

// HandleChange is a store subscriber: it only enqueues (no store writes).
func (e *Engine) HandleChange(c store.Change) {
	switch c.Table {
	case store.TableUsers:
		before, _ := c.Before.(*store.User)
		after, _ := c.After.(*store.User)
		u := after
		if u == nil {
			u = before
		}
		if u != nil {
			e.mgrMu.Lock()
			e.mgrs.set(before, after)
			e.mgrMu.Unlock()
			for name := range e.directories() {
				e.enqueue(pairKey{dir: name, id: u.ID}, pending{trig: trigChange})
			}
		}
		// A manager deleted, renamed or given another email: the
		// references to it change (or go).
		if before != nil && (after == nil || !strings.EqualFold(before.Username, after.Username) || !strings.EqualFold(before.Email, after.Email)) {
			for name := range e.directories() {
				e.enqueueReports(name, before.Username)
				if after != nil {
					e.enqueueReports(name, after.Username)
				}
			}
		}
	case store.TableGroups:
		g, _ := c.After.(*store.Group)
		if g == nil {
			g, _ = c.Before.(*store.Group)
		}
		if g != nil {
			for name := range e.directories() {
				e.enqueue(pairKey{dir: name, id: g.ID, group: true}, pending{trig: trigChange})
			}
		}
	case store.TableMemberships:
		m, _ := c.After.(*store.Membership)
		if m == nil {
			m, _ = c.Before.(*store.Membership)
		}
		if m != nil {
			for name := range e.directories() {
				e.enqueue(pairKey{dir: name, id: m.UserID}, pending{trig: trigChange})
				e.enqueue(pairKey{dir: name, id: m.GroupID, group: true}, pending{trig: trigChange})
			}
		}
	case store.TableBindings:
		b, _ := c.After.(*store.Binding)
		if b == nil {
			b, _ = c.Before.(*store.Binding)
		}
		if b != nil {
			e.enqueueSubject(b.Directory, b.Kind, b.SubjectID)
		}
	}
}

// PasswordVerified is authn's observer hook: a login succeeded. It never
// blocks the login: the pair's queue takes the plaintext and returns.
func (e *Engine) PasswordVerified(u *store.User, pw secret.String) { e.password(u, pw, trigLogin) }

// PasswordChanged: an admin or the user set a new password (SPEC 3.4).
func (e *Engine) PasswordChanged(u *store.User, pw secret.String) { e.password(u, pw, trigPassword) }

// password hands the plaintext to each directory's worker. It runs inside
// the login, so it does no store reads: whether the user is bound or has
// an account there is the worker's question (reconcile answers it and
// drops the plaintext when neither holds).
func (e *Engine) password(u *store.User, pw secret.String, t trigger) {
	defer pw.Wipe()
	for name := range e.directories() {
		e.enqueue(pairKey{dir: name, id: u.ID}, pending{trig: t, pw: pw.Clone()})
	}
}

// bound computes the effective binding (SPEC 2.7): direct or via a group.
func (e *Engine) bound(dir, userID string) (bool, error) {
	bs, err := e.st.BindingsOfSubject(userID)
	if err != nil {
		return false, err
	}
	for _, b := range bs {
		if b.Directory == dir {
			return true, nil
		}
	}
	groups, err := e.st.GroupsOfUser(userID)
	if err != nil {
		return false, err
	}
	for _, g := range groups {
		bs, err := e.st.BindingsOfSubject(g.ID)
		if err != nil {
			return false, err
		}
		for _, b := range bs {
			if b.Directory == dir {
				return true, nil
			}
		}
	}
	return false, nil
}

func (e *Engine) work(ctx context.Context, q *queue) {
	for {
		k, p, ok := q.pop()
		if !ok {
			return
		}
		if e.park(k, p) {
			continue
		}
		release, ok := e.claim(ctx, k, p)
		if !ok {
			continue // scheduled again, with its plaintext
		}
		jctx, cancel := e.jobContext(ctx)
		if k.group {
			e.reconcileGroup(jctx, k, p)
		} else {
			e.reconcile(jctx, k, p)
		}
		cancel()
		release() // after the sync state is saved: the next holder reads it
		p.pw.Wipe()
	}
}

// jobError wraps a failure with the type of the step that failed; the
// failure is recorded as event.Failed().
type jobError struct {
	event store.EventType
	err   error
}

func (j *jobError) Error() string { return j.err.Error() }
func (j *jobError) Unwrap() error { return j.err }

func fail(event store.EventType, err error) error { return &jobError{event: event, err: err} }

func (e *Engine) reconcile(ctx context.Context, k pairKey, p pending) {
	d := e.directories()[k.dir]
	if d == nil { // forgotten since the work was queued
		p.pw.Wipe()
		return
	}
	start := e.cfg.Now()
	u, err := e.st.UserByID(k.id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.log.Error("sync: reading user", "err", err)
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		u = nil
	}
	st, err := e.st.SyncStateOf(k.dir, k.id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.log.Error("sync: reading sync state", "err", err)
			return
		}
		st = &store.SyncState{Directory: k.dir, SubjectID: k.id, Kind: store.BindUser}
	}
	bound := false
	if u != nil {
		if bound, err = e.bound(k.dir, k.id); err != nil {
			e.log.Error("sync: reading bindings", "err", err)
			return
		}
	}
	if !bound && !st.Provisioned {
		return // nothing there, nothing wanted
	}
	if st.Failed && p.trig == trigRetry {
		return
	}
	orig := *st
	if !p.retry {
		st.Attempts = 0
	}
	st.Failed = false
	st.LastError = "" // apply may set a note (a skip, a policy refusal)
	rerr := e.apply(ctx, d, u, bound, st, p)
	if rerr == nil {
		st.Attempts = 0
	} else {
		e.handleFailure(d, u, nil, st, p, rerr)
	}
	e.save(st, orig)
	if st.RemoteID != orig.RemoteID || st.Enabled != orig.Enabled {
		e.enqueueGroupsOf(k.dir, k.id)
	}
	if st.RemoteID != orig.RemoteID && u != nil {
		// Users whose manager this is can now point at its account.
		e.enqueueReports(k.dir, u.Username)
	}
	if bound && d.SuspendOnLockout && u.Locked(start) {
		e.wakeAt(k, u.LockedUntil)
	}
	e.m.duration.Observe(e.cfg.Now().Sub(start).Seconds())
}

// wakeAt reconciles k again at t: a lockout that runs out changes no
// record, so without it an account disabled for the lockout would stay
// disabled until the next login or change (SPEC 3.8). The start-up scan
// re-arms it after a restart. One timer per pair: a later or equal
// request while one is pending adds none.
func (e *Engine) wakeAt(k pairKey, t time.Time) {
	e.wakeMu.Lock()
	defer e.wakeMu.Unlock()
	if at, ok := e.wakes[k]; ok && !t.Before(at) {
		return
	}
	if e.wakes == nil {
		e.wakes = map[pairKey]time.Time{}
	}
	e.wakes[k] = t
	// A little past the instant, so the lock has ended when we look.
	time.AfterFunc(t.Sub(e.cfg.Now())+10*time.Millisecond, func() {
		e.wakeMu.Lock()
		if e.wakes[k].Equal(t) {
			delete(e.wakes, k)
		}
		e.wakeMu.Unlock()
		e.enqueue(k, pending{trig: trigChange})
	})
}

func (e *Engine) save(st *store.SyncState, orig store.SyncState) {
	if *st == orig {
		return
	}
	if _, err := e.st.UpdateSyncState(st.Directory, st.SubjectID, func(x *store.SyncState) error {
		*x = *st
		return nil
	}); err != nil {
		e.log.Error("sync: recording sync state", "directory", st.Directory, "subject", st.SubjectID, "err", err)
	}
}

// handleFailure records a failed job on a user (u, nil once deleted) or,
// when g is not nil, on a group, and schedules its retry.
func (e *Engine) handleFailure(d *Directory, u *store.User, g *store.Group, st *store.SyncState, p pending, err error) {
	st.LastError = err.Error()
	event := store.EventUserUpdateProvision
	if g != nil {
		event = store.EventGroupUpdateProvision
	}
	var je *jobError
	if errors.As(err, &je) {
		event = je.event
	}
	event = event.Failed()
	report := func(detail string) {
		if g != nil {
			e.emitGroup(d, g, event, store.OutcomeFailure, detail)
		} else {
			e.emit(d, u, st, event, store.OutcomeFailure, detail)
		}
	}
	k := pairKey{dir: d.Name, id: st.SubjectID, group: st.Kind == store.BindGroup}
	if IsPermanent(err) {
		st.Failed = true
		report(err.Error())
		e.m.jobs.WithLabelValues(d.Name, "failed").Inc()
		return
	}
	st.Attempts++
	if st.Attempts >= e.cfg.MaxAttempts {
		st.Failed = true
		report(fmt.Sprintf("gave up after %d attempts: %v", st.Attempts, err))
		e.m.jobs.WithLabelValues(d.Name, "failed").Inc()
		return
	}
	delay := e.backoff(st.Attempts)
	if ra, ok := RetryAfter(err); ok && ra > delay {
		delay = ra
	}
	e.m.jobs.WithLabelValues(d.Name, "retry").Inc()
	e.log.Info("sync: will retry", "directory", d.Name, "user", st.SubjectID, "attempt", st.Attempts, "in", delay, "err", err)
	next := pending{trig: trigRetry, retry: true}
	if p.trig == trigLogin || p.trig == trigPassword {
		// Keep the plaintext in memory for the retry (never on disk).
		next.trig, next.pw = p.trig, p.pw.Clone()
	}
	time.AfterFunc(delay, func() { e.enqueue(k, next) })
}

func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.BackoffBase << min(attempt-1, 20)
	if d > e.cfg.BackoffMax || d <= 0 {
		d = e.cfg.BackoffMax
	}
	// Full jitter over the upper half keeps retries of many pairs apart.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// keepsSignIn says whether an imported account's sign-in state is still
// left as the directory has it: until the user's first login, or a
// password set while they are active (activation); never once they are
// suspended, deleted or unbound (off means off).
func keepsSignIn(u *store.User, bound bool, t trigger) bool {
	switch {
	case u == nil || !bound || u.State == store.StateSuspended:
		return false
	case t == trigLogin:
		return false
	case t == trigPassword && u.State == store.StateActive:
		return false
	}
	return true
}

// wantEnabled is the sign-in state SPEC 2.2, 3.8 and 4.3 ask for.
func wantEnabled(d *Directory, u *store.User, bound bool, now time.Time) bool {
	if u == nil || !bound || u.State != store.StateActive {
		return false
	}
	if d.SuspendOnLockout && u.Locked(now) {
		return false
	}
	if d.SuspendOnPasswordExpiry && u.PasswordStatus == store.PasswordExpired {
		return false
	}
	return true
}

func accountOf(u *store.User, upn string, enabled bool) Account {
	display := u.DisplayName
	if display == "" {
		display = strings.TrimSpace(u.FirstName + " " + u.LastName)
	}
	if display == "" {
		display = u.Username
	}
	// Attributes and the manager come from the directory's mapping
	// (mapAttributes), never from u.Attributes as they are.
	return Account{UPN: upn, MailNickname: u.Username, DisplayName: display, GivenName: u.FirstName,
		Surname: u.LastName, Enabled: enabled}
}

// attrHash identifies what an update sends: the account's names,
// attributes and manager (not its sign-in state, nor what is cleared,
// which follows from the attributes that are gone).
func attrHash(a Account) string {
	a.Enabled = false
	a.Clear, a.ClearManager = nil, false
	b, _ := json.Marshal(a)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

func (e *Engine) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.cfg.CallTimeout)
}

// apply moves the remote account toward what the gateway says; st is
// updated in place as each step succeeds.
func (e *Engine) apply(ctx context.Context, d *Directory, u *store.User, bound bool, st *store.SyncState, p pending) error {
	now := e.cfg.Now()
	want := wantEnabled(d, u, bound, now)
	keep := st.KeepSignIn && keepsSignIn(u, bound, p.trig)
	if st.KeepSignIn && !keep {
		st.KeepSignIn = false
	}
	if keep && st.Provisioned {
		want = st.Enabled
	}

	if !bound || u == nil {
		// Deprovision (SPEC 4.3): disable, never delete.
		if st.Provisioned && st.Enabled {
			if err := e.setEnabled(ctx, d, st, false); err != nil {
				return fail(store.EventUserDeprovision, err)
			}
			e.emit(d, u, st, store.EventUserDeprovision, store.OutcomeSuccess, "sign-in blocked")
		}
		return nil
	}

	var upn string
	var err error
	if pn, ok := d.Connector.(PrincipalNamer); ok {
		upn, err = pn.PrincipalName(u.Username, u.Email)
	} else {
		upn, err = PrincipalName(u.Email, d.Domains, d.DefaultDomain)
	}
	if err != nil {
		e.log.Debug("sync: user skipped", "directory", d.Name, "user", u.Username, "reason", err)
		st.LastError = "skipped: " + err.Error()
		return nil
	}
	acct := accountOf(u, upn, want)
	rec := parseApplied(st.AppliedHash)
	plan := e.mapAttributes(d, u, &acct, rec)
	for _, n := range plan.notes {
		addNote(st, n)
	}
	hash := attrHash(acct)

	// A usable plaintext for this run, if any (SPEC 3.6: never send one
	// the directory would reject).
	var pw secret.String
	var policyErr error
	pushes := true
	if pf, ok := d.Connector.(PasswordFilter); ok && !pf.TakesPasswordOf(u.PasswordAuthority) {
		// The directory owns this password (AD write-back of an
		// AD-authority user): never pushed, never marked pending.
		pushes = false
		p.pw = secret.String{}
	}
	if !p.pw.IsEmpty() {
		if policyErr = d.Policy.Check(p.pw); policyErr == nil {
			pw = p.pw
		}
	}

	if !st.Provisioned {
		refused, err := e.provision(ctx, d, u, st, acct, pw, keep)
		if err != nil {
			return err
		}
		st.AppliedHash = rec.next(plan, acct, refused).encode()
		e.reportRefused(d, u, st, plan, refused)
	} else {
		if hash != rec.hash {
			ctx2, cancel := e.call(ctx)
			refused, err := Refusals(d.Connector.UpdateUser(ctx2, st.RemoteID, acct))
			cancel()
			if err != nil {
				return fail(store.EventUserUpdateProvision, e.notFoundGrace(st, err))
			}
			st.AppliedHash = rec.next(plan, acct, refused).encode()
			e.emit(d, u, st, store.EventUserUpdateProvision, store.OutcomeSuccess, "attributes updated")
			e.reportRefused(d, u, st, plan, refused)
		}
		if want != st.Enabled {
			if err := e.setEnabled(ctx, d, st, want); err != nil {
				if want {
					return fail(store.EventUserUpdateProvision, err)
				}
				return fail(store.EventUserDeprovision, err)
			}
			if want {
				// Re-enabled: a takeover trigger (SPEC 3.3).
				st.PushPending = true
				e.emit(d, u, st, store.EventUserUpdateProvision, store.OutcomeSuccess, "sign-in re-enabled")
			} else {
				e.emit(d, u, st, store.EventUserDeprovision, store.OutcomeSuccess, "sign-in blocked")
			}
		}
	}

	// Password takeover (SPEC 3.3, 3.4, 3.7).
	if !pushes {
		st.PushPending = false
		return nil
	}
	due := st.PushPending || st.PushedVersion != u.PasswordVersion || st.LastPushAt.IsZero()
	if p.pw.IsEmpty() {
		if due && u.PasswordHash != "" && !st.PushPending {
			st.PushPending = true // the next login completes it
		}
		return nil
	}
	if policyErr != nil {
		e.emit(d, u, st, store.EventUserPasswordUpdateProvisionFailed, store.OutcomeFailure, "not sent: "+policyErr.Error())
		addNote(st, "password not sent: "+policyErr.Error())
		return nil
	}
	if !due && p.trig == trigLogin && now.Sub(st.LastCheckAt) >= e.cfg.RemoteCheckInterval {
		ctx2, cancel := e.call(ctx)
		ru, err := d.Connector.GetUser(ctx2, st.RemoteID)
		cancel()
		if err != nil {
			return fail(store.EventUserPasswordUpdateProvision, e.notFoundGrace(st, err))
		}
		st.LastCheckAt = now
		if !ru.LastPasswordChange.IsZero() && ru.LastPasswordChange.After(st.RemotePasswordChangedAt.Add(time.Second)) {
			e.log.Info("sync: password changed in the directory since our push; the gateway's wins", "directory", d.Name, "user", u.Username)
			due = true
		}
	}
	if !due {
		return nil
	}
	if !st.PushPending {
		// Durable marker before the call: if we die now, the next login
		// finishes the push (SPEC 3.7).
		st.PushPending = true
		if _, err := e.st.UpdateSyncState(d.Name, st.SubjectID, func(x *store.SyncState) error { *x = *st; return nil }); err != nil {
			return fail(store.EventUserPasswordUpdateProvision, err)
		}
	}
	ctx2, cancel := e.call(ctx)
	changed, err := d.Connector.SetPassword(ctx2, st.RemoteID, pw)
	cancel()
	if err != nil {
		return fail(store.EventUserPasswordUpdateProvision, e.notFoundGrace(st, err))
	}
	if changed.IsZero() {
		changed = e.cfg.Now()
	}
	st.PushPending = false
	st.PushedVersion = u.PasswordVersion
	st.LastPushAt = e.cfg.Now()
	st.RemotePasswordChangedAt = changed
	st.LastCheckAt = st.LastPushAt
	e.m.pushes.WithLabelValues(d.Name).Inc()
	e.emit(d, u, st, store.EventUserPasswordUpdateProvision, store.OutcomeSuccess, fmt.Sprintf("password version %d", u.PasswordVersion))
	return nil
}

// provision looks the account up by principal name and takes it over, or
// creates it (SPEC 4.1). Looking up first makes a retry after a crash
// find the account instead of creating a second one (SPEC 4.8). It
// returns the attributes the directory refused (the account is
// provisioned without them).
func (e *Engine) provision(ctx context.Context, d *Directory, u *store.User, st *store.SyncState, acct Account, pw secret.String, keepSignIn bool) ([]AttributeError, error) {
	ctx2, cancel := e.call(ctx)
	ru, err := d.Connector.LookupUser(ctx2, acct.UPN)
	cancel()
	switch {
	case err == nil:
		if keepSignIn {
			acct.Enabled = ru.Enabled
		}
		// A takeover sets the gateway's values but clears nothing: what
		// the account holds that the gateway never set stays.
		acct.Clear, acct.ClearManager = nil, false
		ctx2, cancel := e.call(ctx)
		refused, err := Refusals(d.Connector.UpdateUser(ctx2, ru.ID, acct))
		cancel()
		if err == nil && ru.Enabled != acct.Enabled {
			ctx2, cancel := e.call(ctx)
			err = d.Connector.SetEnabled(ctx2, ru.ID, acct.Enabled)
			cancel()
		}
		if err != nil {
			return nil, fail(store.EventUserUpdateProvision, err)
		}
		st.RemoteID, st.Provisioned, st.Enabled, st.ProvisionedAt = ru.ID, true, acct.Enabled, e.cfg.Now()
		st.RemotePasswordChangedAt = ru.LastPasswordChange
		st.PushPending = true // just taken over: our password must win
		e.emit(d, u, st, store.EventUserUpdateProvision, store.OutcomeSuccess, "existing account taken over: "+acct.UPN)
		return refused, nil
	case errors.Is(err, ErrNotFound):
	default:
		return nil, fail(store.EventUserCreateProvision, err)
	}
	ctx2, cancel = e.call(ctx)
	ru, err = d.Connector.CreateUser(ctx2, acct, pw)
	cancel()
	var refused []AttributeError
	if ru != nil {
		refused, err = Refusals(err)
	}
	if err != nil {
		var re *Error
		if errors.As(err, &re) && strings.Contains(strings.ToLower(re.Message), "already exists") {
			// Created by an attempt that died before recording it, and
			// not yet visible to the lookup (replication): look again later.
			return nil, fail(store.EventUserCreateProvision, &Error{Status: re.Status, Code: re.Code, Message: "account exists but is not visible yet; looking it up again (" + re.Message + ")"})
		}
		return nil, fail(store.EventUserCreateProvision, err)
	}
	now := e.cfg.Now()
	st.RemoteID, st.Provisioned, st.Enabled, st.ProvisionedAt = ru.ID, true, acct.Enabled, now
	if pw.IsEmpty() {
		st.PushPending = u.PasswordHash != "" // created with a random password
	} else {
		st.PushedVersion, st.LastPushAt, st.LastCheckAt = u.PasswordVersion, now, now
		st.RemotePasswordChangedAt = ru.LastPasswordChange
		if st.RemotePasswordChangedAt.IsZero() {
			st.RemotePasswordChangedAt = now
		}
		st.PushPending = false
	}
	e.m.creates.WithLabelValues(d.Name).Inc()
	e.emit(d, u, st, store.EventUserCreateProvision, store.OutcomeSuccess, "created "+acct.UPN)
	return refused, nil
}

func (e *Engine) setEnabled(ctx context.Context, d *Directory, st *store.SyncState, enabled bool) error {
	ctx2, cancel := e.call(ctx)
	defer cancel()
	if err := d.Connector.SetEnabled(ctx2, st.RemoteID, enabled); err != nil {
		return e.notFoundGrace(st, err)
	}
	st.Enabled = enabled
	return nil
}

// notFoundGrace turns a 404 shortly after provisioning into a transient
// error (replication delay) and a later one into a permanent, explained one.
func (e *Engine) notFoundGrace(st *store.SyncState, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if e.cfg.Now().Sub(st.ProvisionedAt) < e.cfg.ReplicationGrace {
		return &Error{Status: 404, Message: "account not visible yet (replication delay)"}
	}
	return &Error{Permanent: true, Status: 404, Message: fmt.Sprintf("remote account %s no longer exists; unbind and bind the user again to re-create it", st.RemoteID)}
}

func (e *Engine) emit(d *Directory, u *store.User, st *store.SyncState, typ store.EventType, outcome, detail string) {
	ev := store.Event{Type: typ, Outcome: outcome, Directory: d.Name, UserID: st.SubjectID, Source: "sync", Detail: detail}
	if u != nil {
		ev.Username = u.Username
	}
	e.st.Emit(ev)
	e.m.events.WithLabelValues(d.Name, string(typ)).Inc()
}
