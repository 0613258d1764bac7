package ldapserver

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/store"
)

// listBatch is how many users or groups one store call returns while a
// search walks the tree. Paged-results cookies point into these batches.
const listBatch = 256

var (
	// userClasses has shadowAccount, which inactive users and users whose
	// password age is known carry.
	userClasses  = []string{"top", "person", "organizationalperson", "inetorgperson", "posixaccount", "shadowaccount"}
	groupClasses = []string{"top", "groupofnames", "posixgroup"}
	upgClasses   = []string{"top", "posixgroup"}
)

type searchResult struct {
	code      int
	matched   string
	diag      string
	controls  [][]byte
	abandoned bool
	// pending holds the last entries of the search, encoded and not yet
	// written: the SearchResultDone goes out with them, in one write.
	pending *berWriter
}

// finishSearch counts a search and sends its SearchResultDone, after the
// entries still pending.
func (c *conn) finishSearch(m *message, start time.Time, res searchResult) {
	c.s.m.duration.WithLabelValues("search").Observe(time.Since(start).Seconds())
	w := res.pending
	if w == nil {
		w = getWriter()
	}
	defer putWriter(w)
	if res.abandoned {
		c.s.m.searches.WithLabelValues("abandoned").Inc()
		return
	}
	c.s.m.searches.WithLabelValues(searchOutcome(res.code)).Inc()
	w.appendResult(m.id, appSearchDone, res.code, res.matched, res.diag, res.controls...)
	_ = c.write(w.b, true)
}

// entryBatch is how many bytes of encoded entries a search gathers
// before writing them: a search of a few entries makes one write with
// its SearchResultDone instead of one per entry (each write takes the
// connection's write lock, sets its deadline and counts against
// max_bytes_in_flight), and a large one still writes as it goes.
const entryBatch = 8 << 10

// rootDSE is the entry at the empty DN, readable by anyone.
func (s *Server) rootDSE() *entry {
	e := &entry{kind: kindRootDSE}
	e.add("objectClass", "top")
	e.add("namingContexts", s.tree.baseDN)
	e.add("supportedLDAPVersion", "3")
	exts := []string{oidPasswordModify, oidWhoAmI}
	if s.tlsConf != nil {
		exts = append([]string{oidStartTLS}, exts...)
	}
	e.add("supportedExtension", exts...)
	e.add("supportedControl", oidPagedResults, oidManageDsaIT)
	e.add("vendorName", "gatewayd")
	e.add("vendorVersion", s.version)
	return e
}

// selection is the requested attribute list of a search.
type selection struct {
	allUser, allOp bool
	named          attrSet
}

func newSelection(attrs []string) selection {
	var sel selection
	if len(attrs) == 0 {
		sel.allUser = true
		return sel
	}
	for _, a := range attrs {
		switch a {
		case "*":
			sel.allUser = true
		case "+":
			sel.allOp = true
		case "1.1":
		default:
			if t, opts := lookupAttr(a); t != nil && !opts {
				sel.named |= t.bit
			}
		}
	}
	return sel
}

// set is the types the selection returns.
func (sel selection) set() attrSet {
	s := sel.named
	if sel.allUser {
		s |= userAttrSet
	}
	if sel.allOp {
		s |= opAttrSet
	}
	return s
}

func (sel selection) pick(e *entry) []outAttr {
	return sel.pickInto(nil, e)
}

// pickInto appends the selected attributes of e to out.
func (sel selection) pickInto(out []outAttr, e *entry) []outAttr {
	want := sel.set()
	for i := range e.attrs {
		a := &e.attrs[i]
		if !want.has(a.t) {
			continue
		}
		if vs := e.values(a); len(vs) > 0 {
			out = append(out, outAttr{name: a.t.name, vals: vs})
		}
	}
	return out
}

// pagePos is where a paged search resumes: phase index, store cursor of
// the batch (enumerating phases) and index within the batch or list.
type pagePos struct {
	phase  int
	cursor string
	skip   int
}

type phaseKind uint8

const (
	phFixed phaseKind = iota
	phUsers
	phGroups
	phUserGroups // users' private groups, walked over the users
)

// phase is one stretch of the walk: fixed entries, or users, groups or
// user private groups, either from a candidate list (lists non-nil) or by
// enumerating the store.
type phase struct {
	kind      phaseKind
	entries   []*entry
	userList  func() ([]*store.User, error)
	groupList func() ([]*store.Group, error)
	// est, when set, counts a candidate list's candidates cheaply, up
	// to max (the planner's estimate; it may count more than the list).
	est func(max int) int

	// The candidate list once fetched (load).
	loaded  bool
	users   []*store.User
	groups  []*store.Group
	listErr error
}

// load fetches a candidate list phase's candidates (once).
func (ph *phase) load() {
	if ph.loaded {
		return
	}
	ph.loaded = true
	switch {
	case ph.userList != nil:
		ph.users, ph.listErr = ph.userList()
	case ph.groupList != nil:
		ph.groups, ph.listErr = ph.groupList()
	}
}

var errStop = errors.New("stop")

// inlineCandidates is the most entries a search may have to look at to
// be answered by the connection's reader itself rather than in a
// goroutine of its own.
const inlineCandidates = 32

// searchJob is a search checked and planned, ready to walk.
type searchJob struct {
	m           *message
	req         *searchRequest
	plan        []phase
	need        attrSet
	sel         selection
	deadline    time.Time
	paged       bool
	start       pagePos
	prev        int
	pageLimit   int
	limitIsSize bool // reaching pageLimit with more to come is sizeLimitExceeded, else a cookie
	// fingerprint binds paged-results cookies to the search (computed
	// only for a paged search).
	fingerprint []byte
}

// small reports whether the plan looks at no more than max entries:
// fixed entries and candidate lists (fetched now), no walk.
func (j *searchJob) small(max int) bool {
	n := 0
	for i := range j.plan {
		ph := &j.plan[i]
		switch {
		case ph.kind == phFixed:
			n += len(ph.entries)
		case ph.userList != nil || ph.groupList != nil:
			if ph.est != nil && ph.est(max+1) > max {
				return false // not fetched here: the walk's goroutine will
			}
			ph.load()
			n += len(ph.users) + len(ph.groups)
		default:
			return false
		}
		if n > max {
			return false
		}
	}
	return true
}

// searchCtx is what ends a search early: the operation's context
// (abandon, the connection closing) and the time limit.
type searchCtx struct {
	ctx      context.Context
	deadline time.Time
}

func (sc searchCtx) err() error {
	if err := sc.ctx.Err(); err != nil {
		return err
	}
	if !time.Now().Before(sc.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// prepareSearch checks a search and plans it. It returns the job to run,
// or nil and the answer when the search is answered already (an error,
// the root DSE, a paged search abandoned by the client).
func (c *conn) prepareSearch(m *message, req *searchRequest, decodeErr error) (*searchJob, searchResult) {
	if code, diag := c.checkControls(m, true); code != rcSuccess {
		return nil, searchResult{code: code, diag: diag}
	}
	var paged *control
	for i := range m.controls {
		if m.controls[i].oid == oidPagedResults {
			paged = &m.controls[i]
		}
	}
	if decodeErr != nil {
		if errors.Is(decodeErr, errFilterTooBig) {
			return nil, searchResult{code: rcUnwillingToPerform, diag: "filter too complex"}
		}
		return nil, searchResult{code: rcProtocolError, diag: "malformed filter"}
	}
	if req.scope < scopeBase || req.scope > scopeSubordinate {
		return nil, searchResult{code: rcProtocolError, diag: "unknown search scope"}
	}
	var pageSize int64
	var cookie []byte
	if paged != nil {
		if !paged.hasValue {
			return nil, searchResult{code: rcProtocolError, diag: "paged results control without a value"}
		}
		var err error
		if pageSize, cookie, err = decodePagedValue(paged.value); err != nil {
			return nil, searchResult{code: rcProtocolError, diag: "malformed paged results control"}
		}
	}

	// The root DSE: anyone, bound or not.
	if req.base == "" && req.scope == scopeBase {
		e := c.s.rootDSE()
		if req.filter.eval(e) == triTrue {
			// Root DSE attributes count as user and operational
			// attributes: "*" and "+" both list them.
			sel := newSelection(req.attrs)
			sel.allUser = sel.allUser || sel.allOp
			if err := c.sendEntry(m.id, "", sel.pick(e), req.typesOnly); err != nil {
				return nil, searchResult{abandoned: true}
			}
		}
		res := searchResult{code: rcSuccess}
		if paged != nil {
			res.controls = [][]byte{pagedControl(nil)}
		}
		return nil, res
	}

	viewer, err := c.viewer()
	switch {
	case errors.Is(err, errNotBound):
		return nil, searchResult{code: rcInsufficientAccessRights, diag: "bind required to search"}
	case err != nil:
		c.s.log.Error("ldap search: reading the bound user failed", "conn", c.id, "err", err)
		return nil, searchResult{code: rcOperationsError, diag: "directory unavailable"}
	}
	base, err := c.parseBase(req.base)
	if err != nil {
		return nil, searchResult{code: rcInvalidDNSyntax, diag: "invalid base DN"}
	}
	seeAll := viewer.ServiceAccount || c.s.cfg.UsersSeeAll
	j := &searchJob{m: m, req: req, sel: newSelection(req.attrs), paged: paged != nil}
	// Entries render only what is returned or read by the filter.
	j.need = j.sel.set() | req.filter.attrs()
	if c.s.fullScan {
		j.need = allAttrs
	}
	var res searchResult
	if j.plan, res = c.plan(viewer, seeAll, base, req, j.need); res.code != rcSuccess {
		return nil, res
	}

	tl := c.s.cfg.TimeLimit
	if req.timeLimit > 0 && time.Duration(req.timeLimit)*time.Second < tl {
		tl = time.Duration(req.timeLimit) * time.Second
	}
	j.deadline = time.Now().Add(tl)

	j.pageLimit = c.s.cfg.SizeLimit
	j.limitIsSize = true
	if paged != nil {
		j.fingerprint = searchFingerprint(viewer.ID, seeAll, base.norm(), req)
		if len(cookie) > 0 {
			var ok bool
			if j.start, j.prev, ok = c.s.openCookie(cookie, j.fingerprint); !ok {
				return nil, searchResult{code: rcUnwillingToPerform, diag: "invalid paged results cookie"}
			}
		}
		if pageSize == 0 { // the client abandons the paged search
			return nil, searchResult{code: rcSuccess, controls: [][]byte{pagedControl(nil)}}
		}
		if pageSize < int64(j.pageLimit) {
			j.pageLimit = int(pageSize)
		}
		j.limitIsSize = false
	}
	if req.sizeLimit > 0 {
		if remaining := int(req.sizeLimit) - j.prev; remaining <= j.pageLimit {
			j.pageLimit, j.limitIsSize = max(remaining, 0), true
		}
	}
	return j, searchResult{code: rcSuccess}
}

// runSearch walks a planned search, sending its entries, and returns
// the answer for its SearchResultDone.
func (c *conn) runSearch(opCtx context.Context, j *searchJob) searchResult {
	ctx := searchCtx{ctx: opCtx, deadline: j.deadline}
	req, sel := j.req, j.sel
	sent := 0
	var next *pagePos
	// w gathers encoded entries (entryBatch); what is left at the end
	// goes to finishSearch with the result.
	w := getWriter()
	var attrs []outAttr
	walkErr := c.walk(ctx, j.plan, j.start, j.need, func(e *entry, pos pagePos) error {
		if err := ctx.err(); err != nil {
			return err
		}
		// One entry at a time per connection (conn.emu): evaluating may
		// load member lists, and rendering holds the entry's bytes.
		c.emu.Lock()
		defer c.emu.Unlock()
		match := req.filter.eval(e) == triTrue
		if e.err != nil {
			return e.err
		}
		if !match {
			return nil
		}
		if sent >= j.pageLimit {
			p := pos
			next = &p
			return errStop
		}
		attrs = sel.pickInto(attrs[:0], e)
		if e.err != nil {
			return e.err
		}
		w.appendEntry(j.m.id, e.dn, attrs, req.typesOnly)
		sent++
		if len(w.b) >= entryBatch {
			err := c.write(w.b, false)
			w.b, w.open = w.b[:0], w.open[:0]
			if err != nil {
				return errConnGone
			}
		}
		return nil
	})
	switch {
	case walkErr == nil, errors.Is(walkErr, errStop):
	case errors.Is(walkErr, errConnGone), opCtx.Err() != nil:
		return searchResult{abandoned: true, pending: w}
	case errors.Is(walkErr, context.DeadlineExceeded):
		return searchResult{code: rcTimeLimitExceeded, diag: "time limit exceeded", pending: w}
	default:
		c.s.log.Error("ldap search failed", "conn", c.id, "err", walkErr)
		return searchResult{code: rcOperationsError, diag: "directory unavailable", pending: w}
	}
	out := searchResult{code: rcSuccess, pending: w}
	var nextCookie []byte
	if next != nil {
		if j.limitIsSize {
			out.code, out.diag = rcSizeLimitExceeded, "size limit exceeded"
		} else {
			nextCookie = c.s.sealCookie(*next, j.prev+sent, j.fingerprint)
		}
	}
	if j.paged {
		out.controls = [][]byte{pagedControl(nextCookie)}
	}
	return out
}

var errConnGone = errors.New("connection gone")

// walk calls fn for each entry of the plan from start on, with the
// position of that entry. fn returning an error stops the walk. fn must
// be done with the entry when it returns: the next one may reuse it.
func (c *conn) walk(ctx searchCtx, plan []phase, start pagePos, need attrSet, fn func(*entry, pagePos) error) error {
	tr, dir := c.s.tree, c.s.dir
	// The users and groups of list and walk phases are rendered into one
	// entry each, reused: fn is done with an entry when it returns.
	var ue, ge *entry
	group := func(g *store.Group) *entry {
		ge = tr.renderGroupInto(ge, g, dir, need)
		return ge
	}
	// emitUser renders a user of a users or user-groups phase; hidden
	// users (hide_inactive) are skipped.
	emitUser := func(kind phaseKind, u *store.User, pos pagePos) error {
		if c.s.hidden(u) {
			return nil
		}
		if kind == phUsers {
			ue = tr.renderUserInto(ue, u, dir, need)
			return fn(ue, pos)
		}
		e, err := c.s.upgEntry(u, need)
		if err != nil || e == nil {
			return err
		}
		return fn(e, pos)
	}
	for pi := max(start.phase, 0); pi < len(plan); pi++ {
		ph := &plan[pi]
		skip, cursor := 0, ""
		if pi == start.phase {
			skip, cursor = max(start.skip, 0), start.cursor
		}
		users := ph.kind == phUsers || ph.kind == phUserGroups
		switch {
		case ph.kind == phFixed:
			for i := skip; i < len(ph.entries); i++ {
				if err := fn(ph.entries[i], pagePos{phase: pi, skip: i}); err != nil {
					return err
				}
			}
		case users && ph.userList != nil:
			ph.load()
			us, err := ph.users, ph.listErr
			if err != nil {
				return err
			}
			for i := skip; i < len(us); i++ {
				if err := emitUser(ph.kind, us[i], pagePos{phase: pi, skip: i}); err != nil {
					return err
				}
			}
		case ph.kind == phGroups && ph.groupList != nil:
			ph.load()
			gs, err := ph.groups, ph.listErr
			if err != nil {
				return err
			}
			for i := skip; i < len(gs); i++ {
				if err := fn(group(gs[i]), pagePos{phase: pi, skip: i}); err != nil {
					return err
				}
			}
		case users:
			for {
				if err := ctx.err(); err != nil {
					return err
				}
				batch, nx, err := dir.ListUsers(cursor, listBatch)
				if err != nil {
					return err
				}
				for i := skip; i < len(batch); i++ {
					if err := emitUser(ph.kind, batch[i], pagePos{phase: pi, cursor: cursor, skip: i}); err != nil {
						return err
					}
				}
				if nx == "" || len(batch) == 0 {
					break
				}
				cursor, skip = nx, 0
			}
		case ph.kind == phGroups:
			for {
				if err := ctx.err(); err != nil {
					return err
				}
				batch, nx, err := dir.ListGroups(cursor, listBatch)
				if err != nil {
					return err
				}
				for i := skip; i < len(batch); i++ {
					if err := fn(group(batch[i]), pagePos{phase: pi, cursor: cursor, skip: i}); err != nil {
						return err
					}
				}
				if nx == "" || len(batch) == 0 {
					break
				}
				cursor, skip = nx, 0
			}
		}
	}
	return nil
}

// hidden reports whether hide_inactive keeps u out of every search.
func (s *Server) hidden(u *store.User) bool {
	return s.tree.hidden(u, s.tree.now())
}

// upgEntry renders u's private group, or nil when a real group has the
// user's name (that group keeps the name; the user's gidNumber then has
// no group entry of its own).
func (s *Server) upgEntry(u *store.User, need attrSet) (*entry, error) {
	_, err := s.dir.GroupByName(u.Username)
	switch {
	case err == nil:
		return nil, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return s.tree.renderUPG(u, need), nil
}

// plan lists the phases a search walks, after checking that the base
// exists and is visible to the viewer.
func (c *conn) plan(viewer *store.User, seeAll bool, base parsedDN, req *searchRequest, need attrSet) ([]phase, searchResult) {
	tr := c.s.tree
	fixed := func(es ...*entry) phase { return phase{kind: phFixed, entries: es} }
	// withChildren appends the phases listing the entries of containers.
	withChildren := func(ps []phase, ctrs ...container) []phase {
		for _, ct := range ctrs {
			var p phase
			var ok bool
			switch ct {
			case ctrUsers:
				p, ok = c.usersPhase(viewer, seeAll, req.filter)
			case ctrGroups:
				p, ok = c.groupsPhase(viewer, seeAll, req.filter)
			case ctrUserGroups:
				p, ok = c.userGroupsPhase(viewer, seeAll, req.filter)
			}
			if ok {
				ps = append(ps, p)
			}
		}
		return ps
	}
	ctrs := tr.containers()
	ctrEntries := make([]*entry, 0, len(ctrs)+1)
	for _, ct := range ctrs {
		ctrEntries = append(ctrEntries, tr.containerEntry(ct))
	}
	withBase := append([]*entry{tr.baseEntry()}, ctrEntries...)
	ok := searchResult{code: rcSuccess}
	if len(base) == 0 {
		// Scopes one and below from the root: the naming context.
		if req.scope == scopeOne {
			return []phase{fixed(tr.baseEntry())}, ok
		}
		return withChildren([]phase{fixed(withBase...)}, ctrs...), ok
	}
	p := tr.locate(base)
	if !p.ok {
		return nil, searchResult{code: rcNoSuchObject, matched: p.matched, diag: "no such object"}
	}
	switch p.kind {
	case kindBase:
		switch req.scope {
		case scopeBase:
			return []phase{fixed(tr.baseEntry())}, ok
		case scopeOne:
			return []phase{fixed(ctrEntries...)}, ok
		case scopeSub:
			return withChildren([]phase{fixed(withBase...)}, ctrs...), ok
		default:
			return withChildren([]phase{fixed(ctrEntries...)}, ctrs...), ok
		}
	case kindContainer:
		switch req.scope {
		case scopeBase:
			return []phase{fixed(tr.containerEntry(p.ctr))}, ok
		case scopeSub:
			return withChildren([]phase{fixed(tr.containerEntry(p.ctr))}, p.ctr), ok
		default:
			return withChildren(nil, p.ctr), ok
		}
	case kindUser, kindUserGroup:
		matched := tr.usersDN
		if p.kind == kindUserGroup {
			matched = tr.upgDN
		}
		noSuch := searchResult{code: rcNoSuchObject, matched: matched, diag: "no such object"}
		u, err := readUserByUsername(c.s.dir, p.name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, searchResult{code: rcOperationsError, diag: "directory unavailable"}
		}
		if err != nil || (!seeAll && u.ID != viewer.ID) || c.s.hidden(u) {
			return nil, noSuch
		}
		var e *entry
		if p.kind == kindUser {
			e = tr.renderUser(u, c.s.dir, need)
		} else if e, err = c.s.upgEntry(u, need); err != nil {
			return nil, searchResult{code: rcOperationsError, diag: "directory unavailable"}
		} else if e == nil {
			return nil, noSuch
		}
		if req.scope == scopeBase || req.scope == scopeSub {
			return []phase{fixed(e)}, ok
		}
		return nil, ok
	case kindGroup:
		g, err := c.s.dir.GroupByName(p.name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, searchResult{code: rcOperationsError, diag: "directory unavailable"}
		}
		visible := err == nil
		if visible && !seeAll {
			visible = false
			gs, err := c.s.dir.GroupsOfUser(viewer.ID)
			if err != nil {
				return nil, searchResult{code: rcOperationsError, diag: "directory unavailable"}
			}
			for _, mg := range gs {
				if mg.ID == g.ID {
					visible = true
				}
			}
		}
		if !visible {
			return nil, searchResult{code: rcNoSuchObject, matched: tr.groupsDN, diag: "no such object"}
		}
		if req.scope == scopeBase || req.scope == scopeSub {
			return []phase{fixed(tr.renderGroup(g, c.s.dir, need))}, ok
		}
		return nil, ok
	}
	return nil, searchResult{code: rcNoSuchObject, diag: "no such object"}
}

// usersPhase, groupsPhase and userGroupsPhase plan one kind of entry:
// false when no entry of the kind can match f (planner: the empty
// source); a viewer who may not see all sees themself and their groups
// only; otherwise the planner's candidates, or a walk over the kind.
func (c *conn) usersPhase(viewer *store.User, seeAll bool, f *filter) (phase, bool) {
	return c.kindPhase(phUsers, viewer, seeAll, f)
}

func (c *conn) groupsPhase(viewer *store.User, seeAll bool, f *filter) (phase, bool) {
	return c.kindPhase(phGroups, viewer, seeAll, f)
}

func (c *conn) userGroupsPhase(viewer *store.User, seeAll bool, f *filter) (phase, bool) {
	return c.kindPhase(phUserGroups, viewer, seeAll, f)
}

func (c *conn) kindPhase(kind phaseKind, viewer *store.User, seeAll bool, f *filter) (phase, bool) {
	var src *source
	if !c.s.fullScan {
		src = c.s.planner(kind).plan(f)
	}
	if src != nil && src.desc == "none" {
		return phase{}, false
	}
	ph := phase{kind: kind}
	switch {
	case !seeAll && kind == phGroups:
		dir := c.s.dir
		ph.groupList = func() ([]*store.Group, error) {
			gs, err := dir.GroupsOfUser(viewer.ID)
			return sortGroups(gs), err
		}
	case !seeAll:
		ph.userList = func() ([]*store.User, error) { return []*store.User{viewer}, nil }
	case src == nil:
	case kind == phGroups:
		ph.est = src.est
		ph.groupList = func() ([]*store.Group, error) {
			gs, err := src.groups()
			return sortGroups(gs), err
		}
	default:
		ph.est = src.est
		ph.userList = func() ([]*store.User, error) {
			us, err := src.users()
			return sortUsers(us), err
		}
	}
	return ph, true
}

// upgAttrs are the attributes of a user private group entry.
var upgAttrs = map[string]bool{
	"objectclass": true, "cn": true, "description": true, "gidnumber": true,
	"entryuuid": true, "entrydn": true, "createtimestamp": true, "modifytimestamp": true,
	"structuralobjectclass": true, "hassubordinates": true,
}

// uidNumberIndex is an optional Directory method: the user with that
// uidNumber (an error wrapping store.ErrNotFound if none). Without it
// (and without lookupIndex) a getgrgid of a private group walks the users.
type uidNumberIndex interface {
	UserByUIDNumber(n int) (*store.User, error)
}

// gidNumberIndex is an optional Directory method: the group with that
// gidNumber (an error wrapping store.ErrNotFound if none).
type gidNumberIndex interface {
	GroupByGIDNumber(n int) (*store.Group, error)
}

// sortUsers drops nils and repeats from a candidate list and puts it in
// the walk's order (by lowercased username).
func sortUsers(us []*store.User) []*store.User {
	out := dedupe(us, func(u *store.User) string { return u.ID })
	slices.SortFunc(out, func(a, b *store.User) int { return compareFold(a.Username, b.Username) })
	return out
}

func sortGroups(gs []*store.Group) []*store.Group {
	out := dedupe(gs, func(g *store.Group) string { return g.ID })
	slices.SortFunc(out, func(a, b *store.Group) int { return compareFold(a.Name, b.Name) })
	return out
}

// dedupe drops nils and repeated ids from xs, in place. A short list (a
// search's few candidates) is checked without a map.
func dedupe[T any](xs []*T, id func(*T) string) []*T {
	out := xs[:0]
	var seen map[string]bool
	if len(xs) > 16 {
		seen = make(map[string]bool, len(xs))
	}
next:
	for _, x := range xs {
		if x == nil {
			continue
		}
		k := id(x)
		if seen != nil {
			if seen[k] {
				continue
			}
			seen[k] = true
		} else {
			for _, y := range out {
				if id(y) == k {
					continue next
				}
			}
		}
		out = append(out, x)
	}
	return out
}

// compareFold compares strings.ToLower(a) with strings.ToLower(b),
// without lowering either (an allocation per call for a name with
// capitals) while both are ASCII.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca >= utf8.RuneSelf || cb >= utf8.RuneSelf {
			return strings.Compare(strings.ToLower(a), strings.ToLower(b))
		}
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return cmp.Compare(ca, cb)
		}
	}
	// Equal so far, and ASCII: lowering maps the rest rune by rune, to
	// at least one byte per rune, so the longer one sorts after.
	return cmp.Compare(len(a), len(b))
}

// --- paged results cookies ---

// searchFingerprint binds a cookie to the viewer and the search it came from.
func searchFingerprint(viewerID string, seeAll bool, baseNDN string, req *searchRequest) []byte {
	h := sha256.New()
	put := func(s string) {
		var l [binary.MaxVarintLen64]byte
		h.Write(l[:binary.PutUvarint(l[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	put(viewerID)
	if seeAll {
		put("all")
	} else {
		put("own")
	}
	put(baseNDN)
	put(string(rune('0' + req.scope)))
	put(string(req.filterRaw))
	put(strings.ToLower(strings.Join(req.attrs, "\x00")))
	if req.typesOnly {
		put("typesonly")
	}
	return h.Sum(nil)
}

const cookieMACLen = 16

// sealCookie encodes a resume position, MACed with a per-process key so a
// client can neither forge one nor replay it against another search.
func (s *Server) sealCookie(p pagePos, returned int, fp []byte) []byte {
	b := []byte{1}
	b = binary.AppendUvarint(b, uint64(p.phase))
	b = binary.AppendUvarint(b, uint64(p.skip))
	b = binary.AppendUvarint(b, uint64(returned))
	b = binary.AppendUvarint(b, uint64(len(p.cursor)))
	b = append(b, p.cursor...)
	return append(b, s.cookieMAC(b, fp)...)
}

func (s *Server) cookieMAC(payload, fp []byte) []byte {
	m := hmac.New(sha256.New, s.cookieKey[:])
	m.Write(fp)
	m.Write(payload)
	return m.Sum(nil)[:cookieMACLen]
}

func (s *Server) openCookie(ck, fp []byte) (pagePos, int, bool) {
	if len(ck) < 1+cookieMACLen || len(ck) > 4096 {
		return pagePos{}, 0, false
	}
	payload, mac := ck[:len(ck)-cookieMACLen], ck[len(ck)-cookieMACLen:]
	if !hmac.Equal(mac, s.cookieMAC(payload, fp)) || payload[0] != 1 {
		return pagePos{}, 0, false
	}
	b := payload[1:]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > 1<<31 {
			return pagePos{}, 0, false
		}
		vals[i], b = v, b[n:]
	}
	if uint64(len(b)) != vals[3] {
		return pagePos{}, 0, false
	}
	return pagePos{phase: int(vals[0]), skip: int(vals[1]), cursor: string(b)}, int(vals[2]), true
}
