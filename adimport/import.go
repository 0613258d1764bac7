// Package adimport imports users and groups from Active Directory into
// the gateway (SPEC 6.2-6.4): the members of an integration group, direct
// or nested, with their attributes and state, and the nested groups
// mirrored with their flattened membership. See README.md.
package adimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/delegation"
	"github.com/gatewayd/gatewayd/store"
)

// Gateway attributes the import keeps on the users it manages.
const (
	// AttrObjectGUID is the AD objectGUID of the account a user was
	// imported from: renames are followed by it, and a re-created
	// account of the same name is a different account. Gateway-only
	// (no LDAP rendering, no directory mapping).
	AttrObjectGUID = "ad_object_guid"
	// AttrDisabled marks a user the import suspended because the
	// account is disabled in AD; it is unsuspended when AD enables the
	// account again. A suspension made by an admin has no mark and stays.
	AttrDisabled = "ad_disabled"
	// AttrExpired marks a password status the import set to expired.
	AttrExpired = "ad_expired"
	// AttrPwdLastSet is the account's pwdLastSet as last imported. When
	// AD reports another one, the password was changed or reset in AD:
	// the user's offline eligibility ends (store.User.LastADValidationAt
	// is cleared), so the previous password no longer logs in from the
	// stored hash while every DC is unreachable (SPEC 2.5).
	AttrPwdLastSet = "ad_pwd_last_set"
)

// Store is what the import reads and writes.
type Store interface {
	CreateUser(u *store.User) (*store.User, error)
	UpdateUser(id string, fn func(*store.User) error) (*store.User, error)
	DeleteUser(id string) error
	UserByID(id string) (*store.User, error)
	UserByUsername(name string) (*store.User, error)
	ListUsers(after string, limit int) ([]*store.User, string, error)
	CreateGroup(g *store.Group) (*store.Group, error)
	DeleteGroup(id string) error
	GroupByID(id string) (*store.Group, error)
	GroupByName(name string) (*store.Group, error)
	AddMember(groupID, userID string) error
	RemoveMember(groupID, userID string) error
	MembersOf(groupID string) ([]*store.User, error)
	Emit(ev store.Event)
	AppendEvents(evs ...store.Event) error
	PutADImportState(a *store.ADImportState) (*store.ADImportState, error)
	ADImportStateOf(domain string) (*store.ADImportState, error)
}

// Runner imports one [[ad]] domain.
type Runner struct {
	name   string
	cfg    Config
	domain delegation.Domain
	st     Store
	log    *slog.Logger
	now    func() time.Time
	// Dial opens the TCP connection to a DC (tests reach a DC in another
	// network namespace); nil: net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// WrittenBack, when set, returns the objectGUID of the AD account the
	// AD write-back (sync/ad) made or took over for a gateway user of this
	// domain ("" for none): such an account is the gateway's own, never
	// imported or taken over (SPEC 6.5: no loop).
	WrittenBack func(userID string) string

	// Leases, when set, decides which replica runs the domain's cycles
	// (leader.go): set it before Loop. nil: this runner always runs them.
	Leases Leases

	run     sync.Mutex // one cycle at a time
	mu      sync.Mutex
	next    time.Time
	running bool
	role    string // RoleLeader, RoleStandby; "" until the first try (guarded by mu)
	paused  atomic.Bool
}

// New builds the runner of one domain; cfg is its validated [ad.import].
func New(name string, cfg Config, domain delegation.Domain, st Store, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Root == "" {
		cfg.Root = domain.BaseDN
	}
	if domain.BaseDN == "" {
		domain.BaseDN = delegation.BaseDNOf(domain.Realm)
		if cfg.Root == "" {
			cfg.Root = domain.BaseDN
		}
	}
	r := &Runner{name: name, cfg: cfg, domain: domain, st: st, log: log, now: time.Now}
	if state, err := st.ADImportStateOf(name); err == nil {
		r.paused.Store(state.Paused)
	}
	return r
}

// ErrPaused: the domain's import is paused (`gatewayd ad resume NAME`).
var ErrPaused = errors.New("the import of this domain is paused (gatewayd ad resume NAME)")

// SetPaused pauses or resumes the interval cycles and on-demand runs
// (SPEC 6.6); the flag is kept in the import state, so it survives a
// restart. Pausing waits for a cycle under way to end.
func (r *Runner) SetPaused(paused bool) error {
	r.run.Lock()
	defer r.run.Unlock()
	state, err := r.st.ADImportStateOf(r.name)
	if err != nil {
		state = &store.ADImportState{Domain: r.name}
	}
	if state.Paused != paused {
		state.Paused = paused
		if _, err := r.st.PutADImportState(state); err != nil {
			return err
		}
	}
	r.paused.Store(paused)
	return nil
}

// Paused reports whether the import is paused.
func (r *Runner) Paused() bool { return r.paused.Load() }

// Name is the [[ad]] block's name.
func (r *Runner) Name() string { return r.name }

// Options of one cycle.
type Options struct {
	// DryRun computes the changes and applies none.
	DryRun bool `json:"dry_run"`
	// ConfirmDeletions applies a cycle the safety stop would hold back.
	ConfirmDeletions bool `json:"confirm_deletions"`
	// Incremental reads only what changed since the high-water mark
	// (when there is one for the same DC); on-demand runs are full.
	Incremental bool `json:"incremental,omitempty"`
}

// Change is one planned or applied change.
type Change struct {
	// Action: create, update, takeover, suspend, unsuspend, expire,
	// remove, disconnect, group_create, group_update, group_delete, skip.
	Action string `json:"action"`
	User   string `json:"user,omitempty"`
	Group  string `json:"group,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Error: applying it failed.
	Error string `json:"error,omitempty"`

	apply func() error
}

// Counts summarises a cycle.
type Counts struct {
	InScope    int `json:"in_scope"`
	Skipped    int `json:"skipped"`
	Created    int `json:"created"`
	Updated    int `json:"updated"`
	TakenOver  int `json:"taken_over"`
	Suspended  int `json:"suspended"`
	Unsuspend  int `json:"unsuspended"`
	Expired    int `json:"expired"`
	Removed    int `json:"removed"`
	Disconnect int `json:"disconnected"`
	Groups     int `json:"groups"`
	Failed     int `json:"failed"`
}

// Result is one cycle's outcome.
type Result struct {
	Domain   string    `json:"domain"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Mode     string    `json:"mode"` // full | incremental
	DryRun   bool      `json:"dry_run"`
	DC       string    `json:"dc,omitempty"`
	URL      string    `json:"url,omitempty"`
	HighUSN  int64     `json:"high_usn,omitempty"`
	// ReadMS and ApplyMS split the cycle's time: reading AD (groups and
	// users), and writing the gateway's users and groups.
	ReadMS     int64    `json:"read_ms"`
	ApplyMS    int64    `json:"apply_ms"`
	Outcome    string   `json:"outcome"` // success | failure | stopped
	Error      string   `json:"error,omitempty"`
	SafetyStop string   `json:"safety_stop,omitempty"`
	Counts     Counts   `json:"counts"`
	Changes    []Change `json:"changes,omitempty"`
}

// Status is what `gatewayd ad status` shows of a domain.
type Status struct {
	Domain   string `json:"domain"`
	Enabled  bool   `json:"enabled"`
	Group    string `json:"group"`
	Root     string `json:"root"`
	Interval string `json:"interval"`
	Running  bool   `json:"running"`
	Paused   bool   `json:"paused,omitempty"`
	// Role is leader or standby when replicas share the store: only the
	// leader runs the cycles (issue 16). Empty before the first cycle.
	Role    string     `json:"role,omitempty"`
	NextRun *time.Time `json:"next_run,omitempty"`
	DC      string     `json:"dc,omitempty"`
	HighUSN int64      `json:"high_usn,omitempty"`
	LastRun *Result    `json:"last_run,omitempty"`
}

// Status reports the domain's import state.
func (r *Runner) Status() Status {
	s := Status{Domain: r.name, Enabled: r.cfg.Enabled, Group: r.cfg.Group, Root: r.cfg.Root, Interval: r.cfg.Interval.String()}
	r.mu.Lock()
	s.Running = r.running
	s.Paused = r.paused.Load()
	s.Role = r.role
	if !r.next.IsZero() {
		n := r.next
		s.NextRun = &n
	}
	r.mu.Unlock()
	if st, err := r.st.ADImportStateOf(r.name); err == nil {
		s.DC, s.HighUSN = st.DC, st.HighUSN
		if len(st.LastRun) > 0 {
			var last Result
			if json.Unmarshal(st.LastRun, &last) == nil {
				s.LastRun = &last
			}
		}
	}
	return s
}

// Loop runs a cycle every interval until ctx ends: every full_every-th
// one is full, the others incremental.
func (r *Runner) Loop(ctx context.Context) {
	t := time.NewTimer(time.Second)
	r.setNext(r.now().Add(time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.paused.Load() {
			r.setNext(r.now().Add(r.cfg.Interval))
			t.Reset(r.cfg.Interval)
			continue
		}
		res, err := r.Run(ctx, Options{Incremental: true})
		if errors.Is(err, ErrPaused) {
			// paused while waiting for the cycle lock
		} else if errors.Is(err, ErrStandby) {
			// another replica leads; setRole logged the change
		} else if err != nil {
			r.log.Warn("ad import cycle failed", "domain", r.name, "err", err)
		} else if res.Outcome != store.OutcomeSuccess {
			r.log.Warn("ad import cycle not applied", "domain", r.name, "outcome", res.Outcome, "reason", res.SafetyStop+res.Error)
		}
		r.setNext(r.now().Add(r.cfg.Interval))
		t.Reset(r.cfg.Interval)
	}
}

func (r *Runner) setNext(t time.Time) {
	r.mu.Lock()
	r.next = t
	r.mu.Unlock()
}

// ErrDisabled: the domain's import is not enabled.
var ErrDisabled = errors.New("the import is not enabled for this domain ([ad.import] enabled = false)")

// Run runs one cycle. The error is for a cycle that could not read AD or
// record its outcome; a safety stop is a Result with Outcome "stopped".
func (r *Runner) Run(ctx context.Context, opts Options) (*Result, error) {
	if !r.cfg.Enabled {
		return nil, ErrDisabled
	}
	r.run.Lock()
	defer r.run.Unlock()
	if r.paused.Load() && !opts.DryRun {
		return nil, ErrPaused
	}
	if !opts.DryRun {
		// Only the leader writes: two replicas importing one domain
		// would race to create its users.
		if err := r.holdLease(ctx); err != nil {
			return nil, err
		}
		var stop func()
		ctx, stop = r.keepLease(ctx)
		defer stop()
	}
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	res := &Result{Domain: r.name, Started: r.now().UTC(), DryRun: opts.DryRun, Mode: "full"}
	state, err := r.st.ADImportStateOf(r.name)
	if err != nil {
		state = &store.ADImportState{Domain: r.name}
	}
	err = r.cycle(ctx, opts, state, res)
	res.Finished = r.now().UTC()
	if err != nil {
		res.Outcome, res.Error = store.OutcomeFailure, err.Error()
	}
	if opts.DryRun {
		return res, nil
	}
	// Record the outcome (without the change list) and the event.
	rec := *res
	rec.Changes = nil
	for _, c := range res.Changes {
		if c.Error != "" && len(rec.Changes) < 50 {
			rec.Changes = append(rec.Changes, c)
		}
	}
	state.LastRun, _ = json.Marshal(rec)
	if _, perr := r.st.PutADImportState(state); perr != nil {
		return res, fmt.Errorf("recording the import state: %w", perr)
	}
	ev := store.Event{Type: store.EventADImport, Directory: r.name, Source: "ad_import", Outcome: store.OutcomeSuccess,
		Detail: fmt.Sprintf("%s cycle via %s: %s", res.Mode, res.URL, res.Counts)}
	switch {
	case res.Outcome == "stopped":
		ev.Outcome, ev.Reason = store.OutcomeFailure, "safety_stop"
		ev.Detail = res.SafetyStop
	case res.Outcome == store.OutcomeFailure:
		ev.Outcome, ev.Reason = store.OutcomeFailure, "error"
		ev.Detail = res.Error
	}
	if aerr := r.st.AppendEvents(ev); aerr != nil {
		return res, aerr
	}
	return res, nil
}

func (c Counts) String() string {
	return fmt.Sprintf("in scope %d, skipped %d, created %d, updated %d, taken over %d, suspended %d, unsuspended %d, expired %d, removed %d, disconnected %d, groups changed %d, failed %d",
		c.InScope, c.Skipped, c.Created, c.Updated, c.TakenOver, c.Suspended, c.Unsuspend, c.Expired, c.Removed, c.Disconnect, c.Groups, c.Failed)
}

func (r *Runner) cycle(ctx context.Context, opts Options, state *store.ADImportState, res *Result) error {
	c, err := dial(ctx, r.domain, r.Dial)
	if err != nil {
		return fmt.Errorf("no domain controller could be used: %w", err)
	}
	defer c.Close()
	res.DC, res.URL = c.dc, c.url
	since := incrementalSince(opts, state, c.dc, r.cfg.FullEvery)
	if since > 0 {
		res.Mode = "incremental"
	}
	readStart := r.now()
	snap, err := c.read(r.cfg.Group, r.domain.BaseDN, r.cfg.Root, since)
	res.ReadMS = r.now().Sub(readStart).Milliseconds()
	if err != nil {
		return err
	}
	p, err := r.plan(snap)
	if err != nil {
		return err
	}
	res.Changes = p.changes
	res.Counts = p.counts
	if stop := r.safetyStop(p); stop != "" && !opts.ConfirmDeletions {
		res.Outcome, res.SafetyStop = "stopped", stop
		return nil
	}
	res.Outcome = store.OutcomeSuccess
	if opts.DryRun {
		return nil
	}
	applyStart := r.now()
	defer func() { res.ApplyMS = r.now().Sub(applyStart).Milliseconds() }()
	for i := range res.Changes {
		ch := &res.Changes[i]
		if ch.apply == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := ch.apply(); err != nil {
			ch.Error = err.Error()
			res.Counts.Failed++
			r.log.Warn("ad import change failed", "domain", r.name, "action", ch.Action, "user", ch.User, "group", ch.Group, "err", err)
		}
	}
	// Groups need the users' ids, so they are planned after the users apply.
	gch := r.planGroups(snap, state)
	for i := range gch {
		if gch[i].apply != nil {
			if err := gch[i].apply(); err != nil {
				gch[i].Error = err.Error()
				res.Counts.Failed++
			} else if gch[i].Action != "group_update" || gch[i].Detail != "+0 -0 members" {
				res.Counts.Groups++
			}
		}
	}
	res.Changes = append(res.Changes, gch...)
	// The watermark: the DC's highest committed USN read before the
	// search, so nothing changed during the cycle is missed.
	if state.DC != c.dc || res.Mode == "full" {
		state.SinceFull = 0
	} else {
		state.SinceFull++
	}
	state.DC, state.HighUSN = c.dc, c.highestUSN
	res.HighUSN = c.highestUSN
	return nil
}

// incrementalSince is the USN above which an incremental cycle reads, or
// 0 for a full cycle: on-demand runs, the first run, a run on another DC
// than the one the mark was taken from (USNs are per DC), and every
// full_every-th interval cycle are full.
func incrementalSince(opts Options, state *store.ADImportState, dc string, fullEvery int) int64 {
	if !opts.Incremental || state.DC != dc || dc == "" || state.HighUSN <= 0 || state.SinceFull+1 >= fullEvery {
		return 0
	}
	return state.HighUSN
}

// safetyStop says why the plan must not be applied without confirmation.
func (r *Runner) safetyStop(p *plan) string {
	n := p.counts.Removed + p.counts.Disconnect + p.counts.Suspended
	if n == 0 {
		return ""
	}
	switch {
	case p.imported > 0 && p.counts.InScope == 0:
		return fmt.Sprintf("AD returned no user in scope of %s while %d users are imported: nothing is removed (an unreadable or emptied integration group must not empty the gateway); run with -confirm-deletions if that is meant", r.cfg.Group, p.imported)
	case n > r.cfg.MaxDeletions:
		return fmt.Sprintf("the cycle would remove, disconnect or suspend %d users, more than max_deletions = %d; run with -confirm-deletions to apply it", n, r.cfg.MaxDeletions)
	case p.imported > 0 && float64(n) > r.cfg.MaxDeletionShare*float64(p.imported):
		return fmt.Sprintf("the cycle would remove, disconnect or suspend %d of %d imported users, more than max_deletion_share = %g; run with -confirm-deletions to apply it", n, p.imported, r.cfg.MaxDeletionShare)
	}
	return ""
}

type plan struct {
	changes  []Change
	counts   Counts
	imported int // gateway users imported from this domain before the cycle
}

// desired is the gateway user an AD account maps to.
type desired struct {
	ad        *adUser
	username  string
	email     string
	attrs     map[string]string // managed attributes (additional), "" = remove
	display   *string
	disabled  bool
	expired   bool
	managerDN string
}

// accountExpires: 0 and 0x7FFFFFFFFFFFFFFF mean never; else 100 ns ticks since 1601.
func expiredAt(v int64, now time.Time) bool {
	if v <= 0 || v == 0x7FFFFFFFFFFFFFFF {
		return false
	}
	const epochDiff = 116444736000000000
	t := time.Unix(0, (v-epochDiff)*100)
	return !t.After(now)
}

func (r *Runner) want(u *adUser, now time.Time) (*desired, string) {
	switch {
	case u.GUID == "":
		return nil, "no objectGUID"
	case u.AdminCount == 1:
		return nil, "adminCount=1: privileged accounts are never imported"
	case strings.TrimSpace(u.GivenName) == "" || strings.TrimSpace(u.SN) == "":
		return nil, "no first name (givenName) or last name (sn)"
	}
	d := &desired{ad: u, disabled: u.UAC&2 != 0, expired: expiredAt(u.AccountExpires, now)}
	switch r.domain.UsernameAttribute {
	case delegation.AttrUserPrincipalName:
		d.username = u.UPN
	case delegation.AttrMail:
		d.username = u.Mail
	default:
		d.username = u.Sam
	}
	d.email = u.Mail
	if d.email == "" {
		d.email = u.UPN
	}
	if d.username == "" {
		return nil, "no " + r.domain.UsernameAttribute
	}
	if d.email == "" {
		return nil, "no mail or userPrincipalName"
	}
	if r.cfg.AdditionalAttributes {
		d.attrs = map[string]string{}
		for _, x := range extraAttrs {
			if x.gw != "streetAddress" {
				d.attrs[x.gw] = u.Extra[x.gw]
			}
		}
		disp := u.Display
		d.display = &disp
		d.managerDN = u.ManagerDN
	}
	return d, ""
}

// allUsers lists every gateway user.
func (r *Runner) allUsers() ([]*store.User, error) {
	var out []*store.User
	after := ""
	for {
		us, next, err := r.st.ListUsers(after, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, us...)
		if next == "" {
			return out, nil
		}
		after = next
	}
}

func (r *Runner) ours(u *store.User) bool {
	return u.Attributes[AttrObjectGUID] != "" && u.Attributes[delegation.DomainAttribute] == r.name
}

func (r *Runner) event(typ store.EventType, u *store.User, detail string) {
	r.st.Emit(store.Event{Type: typ, UserID: u.ID, Username: u.Username, Directory: r.name, Source: "ad_import", Detail: detail})
}

// plan computes the user changes of a cycle.
func (r *Runner) plan(s *snapshot) (*plan, error) {
	now := r.now()
	users, err := r.allUsers()
	if err != nil {
		return nil, err
	}
	p := &plan{}
	byGUID := map[string]*store.User{}
	byName := map[string]*store.User{}
	for _, u := range users {
		byName[strings.ToLower(u.Username)] = u
		if r.ours(u) {
			byGUID[u.Attributes[AttrObjectGUID]] = u
			p.imported++
		}
	}
	// Usernames of every account in scope, for manager references.
	nameByDN := map[string]string{}
	keys := slices.Sorted(maps.Keys(s.users))
	wants := map[string]*desired{}
	for _, k := range keys {
		u := s.users[k]
		d, why := r.want(u, now)
		if d == nil {
			p.counts.Skipped++
			p.changes = append(p.changes, Change{Action: "skip", User: firstNonEmpty(u.Sam, u.DN), Detail: why})
			continue
		}
		wants[u.GUID] = d
		nameByDN[k] = d.username
	}
	p.counts.InScope = len(wants)
	inScopeGUID := map[string]bool{}
	for _, u := range s.users {
		inScopeGUID[u.GUID] = true
	}
	// Dissociations first (full cycles only), so a re-created account with
	// a departed one's name can be matched afterwards.
	freed := map[string]bool{}
	if s.full {
		for _, u := range users {
			if !r.ours(u) || inScopeGUID[u.Attributes[AttrObjectGUID]] {
				continue
			}
			freed[strings.ToLower(u.Username)] = r.cfg.UserDissociateAction == ActionRemove
			if r.cfg.UserDissociateAction == ActionRemove {
				p.counts.Removed++
				p.changes = append(p.changes, Change{Action: "remove", User: u.Username, Detail: "no longer in scope of " + r.cfg.Group + " (or deleted in AD)",
					apply: func() error {
						if err := r.st.DeleteUser(u.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
							return err
						}
						r.event(store.EventUserDelete, u, "removed by the AD import: no longer in scope (user_dissociate_action = remove)")
						return nil
					}})
				continue
			}
			p.counts.Disconnect++
			p.changes = append(p.changes, Change{Action: "disconnect", User: u.Username, Detail: "no longer in scope; kept, now managed locally (password pending)",
				apply: func() error {
					nu, err := r.st.UpdateUser(u.ID, func(x *store.User) error {
						for _, k := range []string{AttrObjectGUID, delegation.DomainAttribute, AttrDisabled, AttrExpired} {
							delete(x.Attributes, k)
						}
						x.PasswordAuthority, x.DelegatedAuthority = store.AuthorityLocal, store.AuthorityNone
						x.PasswordStatus, x.PasswordHash = store.PasswordPending, ""
						return nil
					})
					if err != nil {
						return err
					}
					r.event(store.EventUserUpdate, nu, "disconnected from AD by the import: no longer in scope; now local, password pending (user_dissociate_action = disconnect)")
					return nil
				}})
		}
	}
	for _, k := range keys {
		u := s.users[k]
		d := wants[u.GUID]
		if d == nil {
			continue
		}
		mgr := ""
		if d.managerDN != "" {
			mgr = nameByDN[strings.ToLower(d.managerDN)]
		}
		if cur := byGUID[u.GUID]; cur != nil {
			r.planUpdate(p, cur, d, mgr)
			continue
		}
		other := byName[strings.ToLower(d.username)]
		if other != nil && freed[strings.ToLower(d.username)] {
			other = nil // removed in this cycle
		}
		switch {
		case other != nil && !r.ours(other) && r.WrittenBack != nil && r.WrittenBack(other.ID) == u.GUID:
			p.counts.Skipped++
			p.changes = append(p.changes, Change{Action: "skip", User: d.username,
				Detail: "the gateway's own account, written back to AD by the AD write-back: not imported"})
		case other != nil && other.Attributes[AttrObjectGUID] != "":
			p.counts.Skipped++
			p.changes = append(p.changes, Change{Action: "skip", User: d.username,
				Detail: fmt.Sprintf("the username belongs to the gateway user of another AD account (objectGUID %s); a full cycle resolves it", other.Attributes[AttrObjectGUID])})
		case other != nil:
			r.planTakeover(p, other, d, mgr)
		default:
			r.planCreate(p, d, mgr)
		}
	}
	return p, nil
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

// apply sets d's fields on x and returns what changed.
func (r *Runner) applyTo(x *store.User, d *desired, mgr string) (changed []string, suspended, unsuspended, expired bool) {
	set := func(name string, dst *string, v string) {
		if *dst != v {
			*dst = v
			changed = append(changed, name)
		}
	}
	set("username", &x.Username, d.username)
	set("email", &x.Email, d.email)
	set("first_name", &x.FirstName, d.ad.GivenName)
	set("last_name", &x.LastName, d.ad.SN)
	if d.display != nil {
		set("display_name", &x.DisplayName, *d.display)
	}
	if x.Attributes == nil {
		x.Attributes = map[string]string{}
	}
	attr := func(k, v string) {
		if x.Attributes[k] == v {
			return
		}
		if v == "" {
			if _, ok := x.Attributes[k]; !ok {
				return
			}
			delete(x.Attributes, k)
		} else {
			x.Attributes[k] = v
		}
		changed = append(changed, k)
	}
	attr(AttrObjectGUID, d.ad.GUID)
	attr(delegation.DomainAttribute, r.name)
	if prev := x.Attributes[AttrPwdLastSet]; prev != d.ad.PwdLastSet {
		if prev != "" && !x.LastADValidationAt.IsZero() {
			x.LastADValidationAt = time.Time{}
			changed = append(changed, "password changed in AD (pwdLastSet): offline login ends until AD validates the new one")
		}
		attr(AttrPwdLastSet, d.ad.PwdLastSet)
	}
	if d.attrs != nil {
		for _, k := range slices.Sorted(maps.Keys(d.attrs)) {
			attr(k, d.attrs[k])
		}
		attr("manager", mgr)
	}
	switch {
	case d.disabled && x.State != store.StateSuspended:
		x.State, x.Attributes[AttrDisabled] = store.StateSuspended, "true"
		suspended = true
	case !d.disabled && x.Attributes[AttrDisabled] != "":
		delete(x.Attributes, AttrDisabled)
		if x.State == store.StateSuspended {
			x.State = store.StateActive
			unsuspended = true
		}
	}
	switch {
	case d.expired && x.PasswordStatus != store.PasswordExpired:
		x.PasswordStatus, x.Attributes[AttrExpired] = store.PasswordExpired, "true"
		expired = true
	case !d.expired && x.Attributes[AttrExpired] != "":
		delete(x.Attributes, AttrExpired)
		if x.PasswordStatus == store.PasswordExpired {
			x.PasswordStatus = store.PasswordPending
			changed = append(changed, "password_status")
		}
	}
	return changed, suspended, unsuspended, expired
}

func (r *Runner) planUpdate(p *plan, cur *store.User, d *desired, mgr string) {
	x := cur.Copy()
	changed, susp, unsusp, exp := r.applyTo(x, d, mgr)
	if len(changed) == 0 && !susp && !unsusp && !exp {
		return
	}
	action := "update"
	switch {
	case susp:
		action = "suspend"
		p.counts.Suspended++
	case unsusp:
		action = "unsuspend"
		p.counts.Unsuspend++
	case exp:
		action = "expire"
		p.counts.Expired++
	default:
		p.counts.Updated++
	}
	detail := strings.Join(changed, ", ")
	if susp {
		detail = strings.TrimPrefix(detail+", disabled in AD", ", ")
	}
	p.changes = append(p.changes, Change{Action: action, User: d.username, Detail: detail, apply: func() error {
		var s2, u2, e2 bool
		var ch []string
		nu, err := r.st.UpdateUser(cur.ID, func(y *store.User) error {
			ch, s2, u2, e2 = r.applyTo(y, d, mgr)
			return nil
		})
		if err != nil {
			return err
		}
		if len(ch) > 0 || e2 {
			r.event(store.EventUserUpdate, nu, "updated from AD: "+strings.Join(ch, ", "))
		}
		if s2 {
			r.event(store.EventUserSuspend, nu, "disabled in AD (user_disable_action = suspend)")
		}
		if u2 {
			r.event(store.EventUserUnsuspend, nu, "enabled again in AD")
		}
		return nil
	}})
}

func (r *Runner) planTakeover(p *plan, cur *store.User, d *desired, mgr string) {
	p.counts.TakenOver++
	act := r.cfg.UserTakeoverAction
	detail := "existing local user taken over; local password kept (user_takeover_action = retain)"
	if act == ActionDeactivate {
		detail = "existing local user taken over; password pending, validated by AD (user_takeover_action = deactivate)"
	}
	p.changes = append(p.changes, Change{Action: "takeover", User: d.username, Detail: detail, apply: func() error {
		nu, err := r.st.UpdateUser(cur.ID, func(y *store.User) error {
			r.applyTo(y, d, mgr)
			if act == ActionDeactivate {
				y.PasswordAuthority, y.DelegatedAuthority = store.AuthorityAD, store.AuthorityAD
				if y.PasswordStatus != store.PasswordExpired {
					y.PasswordStatus = store.PasswordPending
				}
				y.PasswordHash = ""
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.event(store.EventUserUpdate, nu, "taken over by the AD import: "+detail)
		return nil
	}})
}

func (r *Runner) planCreate(p *plan, d *desired, mgr string) {
	p.counts.Created++
	detail := d.email
	if d.disabled {
		detail += ", disabled in AD: created suspended"
	}
	p.changes = append(p.changes, Change{Action: "create", User: d.username, Detail: detail, apply: func() error {
		u := &store.User{State: store.StateActive, PasswordStatus: store.PasswordPending,
			PasswordAuthority: store.AuthorityAD, DelegatedAuthority: store.AuthorityAD}
		r.applyTo(u, d, mgr)
		nu, err := r.st.CreateUser(u)
		if err != nil {
			return err
		}
		r.event(store.EventUserImport, nu, "imported from AD "+d.ad.DN)
		return nil
	}})
}

// groupMarker starts the description of every mirrored group: a group
// created by a cycle that crashed before recording it is adopted, never
// duplicated, while a local group of the same name is left alone.
const groupMarker = "Mirrored from Active Directory "

// planGroups mirrors the integration group and its nested groups under
// root (SPEC 6.4): each holds the imported users among its direct and
// nested members. On a full cycle, mirrored groups that left the chain
// are deleted. Incremental cycles leave groups alone.
func (r *Runner) planGroups(s *snapshot, state *store.ADImportState) []Change {
	if !s.full {
		return nil
	}
	users, err := r.allUsers()
	if err != nil {
		return []Change{{Action: "group_update", Error: err.Error()}}
	}
	idByGUID := map[string]string{}
	for _, u := range users {
		if r.ours(u) {
			idByGUID[u.Attributes[AttrObjectGUID]] = u.ID
		}
	}
	if state.Groups == nil {
		state.Groups = map[string]string{}
	}
	var out []Change
	keep := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(s.groups)) {
		g := s.groups[k]
		if !under(g.DN, r.cfg.Root) || g.GUID == "" || g.Name == "" {
			continue
		}
		keep[g.GUID] = true
		want := map[string]bool{}
		for _, dn := range s.flatten(g.DN) {
			if u := s.users[dn]; u != nil && idByGUID[u.GUID] != "" {
				want[idByGUID[u.GUID]] = true
			}
		}
		idx := len(out)
		out = append(out, Change{Action: "group_update", Group: g.Name})
		out[idx].apply = func() error {
			ch := &out[idx]
			gw, created, err := r.mirrorGroup(g, state)
			if err != nil {
				return err
			}
			if created {
				ch.Action = "group_create"
			}
			have, err := r.st.MembersOf(gw.ID)
			if err != nil {
				return err
			}
			added, removed := 0, 0
			for _, m := range have {
				if !want[m.ID] {
					if err := r.st.RemoveMember(gw.ID, m.ID); err != nil {
						return err
					}
					removed++
					r.st.Emit(store.Event{Type: store.EventGroupMemberRemove, GroupID: gw.ID, Group: gw.Name, UserID: m.ID, Username: m.Username, Directory: r.name, Source: "ad_import"})
				}
				delete(want, m.ID)
			}
			for _, id := range slices.Sorted(maps.Keys(want)) {
				if err := r.st.AddMember(gw.ID, id); err != nil && !errors.Is(err, store.ErrConflict) {
					return err
				}
				added++
				r.st.Emit(store.Event{Type: store.EventGroupMemberAdd, GroupID: gw.ID, Group: gw.Name, UserID: id, Directory: r.name, Source: "ad_import"})
			}
			ch.Detail = fmt.Sprintf("+%d -%d members", added, removed)
			return nil
		}
	}
	for guid, id := range state.Groups {
		if keep[guid] {
			continue
		}
		out = append(out, Change{Action: "group_delete", Group: id, Detail: "no longer nested in " + r.cfg.Group, apply: func() error {
			g, err := r.st.GroupByID(id)
			if err == nil {
				if err := r.st.DeleteGroup(id); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				r.st.Emit(store.Event{Type: store.EventGroupDelete, GroupID: id, Group: g.Name, Directory: r.name, Source: "ad_import"})
			}
			delete(state.Groups, guid)
			return nil
		}})
	}
	return out
}

// mirrorGroup finds or creates the gateway group of g and records it.
func (r *Runner) mirrorGroup(g *adGroup, state *store.ADImportState) (*store.Group, bool, error) {
	if id := state.Groups[g.GUID]; id != "" {
		if gw, err := r.st.GroupByID(id); err == nil {
			return gw, false, nil
		}
	}
	marker := groupMarker + g.DN + " (ad " + r.name + ")"
	if gw, err := r.st.GroupByName(g.Name); err == nil {
		if !strings.HasPrefix(gw.Description, groupMarker) {
			return nil, false, fmt.Errorf("a local group is named %q: not mirrored (rename one of them)", g.Name)
		}
		state.Groups[g.GUID] = gw.ID
		return gw, false, r.saveGroups(state)
	}
	gw, err := r.st.CreateGroup(&store.Group{Name: g.Name, Description: marker})
	if err != nil {
		return nil, false, err
	}
	r.st.Emit(store.Event{Type: store.EventGroupCreate, GroupID: gw.ID, Group: gw.Name, Directory: r.name, Source: "ad_import"})
	state.Groups[g.GUID] = gw.ID
	return gw, true, r.saveGroups(state)
}

func (r *Runner) saveGroups(state *store.ADImportState) error {
	cur, err := r.st.ADImportStateOf(r.name)
	if err != nil {
		cur = &store.ADImportState{Domain: r.name}
	}
	cur.Groups = maps.Clone(state.Groups)
	_, err = r.st.PutADImportState(cur)
	return err
}
