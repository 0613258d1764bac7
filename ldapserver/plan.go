package ldapserver

import (
	"errors"
	"strings"

	"github.com/gatewayd/gatewayd/store"
)

// The query planner: for each kind of entry a search may return (users,
// groups, user private groups) it looks for indexed clauses in the
// filter and turns them into a candidate list, so the search renders a
// few entries instead of walking every one. The filter itself still
// decides on each candidate, so a plan only has to return a superset of
// the matches; the order is the walk's (by lowercased username or group
// name), so size limits and paging give what a walk gives.
//
//   - an equality (or approx) on an indexed attribute, or a substrings
//     assertion with an initial part on uid, mail or cn, is a source;
//   - an assertion that can never be TRUE on that kind of entry (an
//     attribute it never carries, an unknown attribute, a value invalid
//     for the syntax, an objectClass it lacks) is the empty source;
//   - AND takes its most selective source (smallest candidate count,
//     counted cheaply and only up to the best so far);
//   - OR is the union of its children's sources, when every child has one;
//   - NOT, presence of a present attribute, ordering, extensible matches
//     and everything else give no source: the kind is walked.

// lookupIndex is the Directory's optional index side (the store has it,
// see store/lookup.go). Without it the planner uses the base Directory
// methods (uid, cn, memberOf, member, memberUid) and the older optional
// single lookups (emailIndex, uidNumberIndex, gidNumberIndex).
type lookupIndex interface {
	UserByEmail(email string) (*store.User, error)
	UsersByUIDNumber(n int) ([]*store.User, error)
	UsersByCommonName(cn string) ([]*store.User, error)
	UsersByEntryUUID(uuid string) ([]*store.User, error)
	EachUserWithPrefix(k store.UserKey, prefix string, fn func(*store.User) bool)
	GroupsByGIDNumber(n int) ([]*store.Group, error)
	GroupsByCommonName(cn string) ([]*store.Group, error)
	GroupsByEntryUUID(uuid string) ([]*store.Group, error)
	GroupsWithPrefix(prefix string, limit int) ([]*store.Group, error)
	CountGroupsWithPrefix(prefix string, max int) int
	CountMembers(groupID string, max int) int
	CountGroupsOfUser(userID string, max int) int
}

var _ lookupIndex = (*store.Store)(nil)

// sharedUsers is the Directory's optional copy-free user reads (the
// store's SharedUserByID and SharedUserByUsername): the door only reads
// the users it looks up, and copying one was a tenth of the work of a
// search for it.
type sharedUsers interface {
	SharedUserByID(id string) (*store.User, error)
	SharedUserByUsername(name string) (*store.User, error)
}

var _ sharedUsers = (*store.Store)(nil)

// readUserByID and readUserByUsername are the Directory's lookups for a
// user the caller only reads.
func readUserByID(dir Directory, id string) (*store.User, error) {
	if s, ok := dir.(sharedUsers); ok {
		return s.SharedUserByID(id)
	}
	return dir.UserByID(id)
}

func readUserByUsername(dir Directory, name string) (*store.User, error) {
	if s, ok := dir.(sharedUsers); ok {
		return s.SharedUserByUsername(name)
	}
	return dir.UserByUsername(name)
}

// noEstimate caps a count when there is nothing to beat yet.
const noEstimate = 1 << 30

// source is a candidate list for one kind of entry.
type source struct {
	desc string // for tests and logs: "uid=", "mail^", "or(...)", "none"
	// est counts the candidates, at most max; it may do store reads
	// (counts, never copies of many objects).
	est    func(max int) int
	users  func() ([]*store.User, error)
	groups func() ([]*store.Group, error)
}

func constEst(n int) func(int) int { return func(int) int { return n } }

// emptySource is the plan of a clause no entry of the kind satisfies.
func emptySource() *source {
	return &source{desc: "none", est: constEst(0),
		users:  func() ([]*store.User, error) { return nil, nil },
		groups: func() ([]*store.Group, error) { return nil, nil }}
}

// planner plans one kind of entry for one search.
type planner struct {
	s    *Server
	kind phaseKind
	ix   lookupIndex // nil: base methods only
}

func (s *Server) planner(kind phaseKind) *planner {
	p := &planner{s: s, kind: kind}
	p.ix, _ = s.dir.(lookupIndex)
	return p
}

// Attributes an entry of each kind can ever carry; an assertion on any
// other cannot be TRUE there.
var (
	userAttrKeys  = attrKeys("objectClass", "uid", "cn", "sn", "givenName", "displayName", "mail", "memberOf", "uidNumber", "gidNumber", "homeDirectory", "loginShell", "title", "departmentNumber", "o", "l", "employeeType", "telephoneNumber", "mobile", "postalAddress", "manager", "shadowLastChange", "shadowMax", "pwdChangedTime", "shadowExpire", "nsAccountLock", "loginDisabled", "userAccountControl", "pwdAccountLockedTime", "entryUUID", "entryDN", "structuralObjectClass", "hasSubordinates", "createTimestamp", "modifyTimestamp")
	groupAttrKeys = attrKeys("objectClass", "cn", "description", "gidNumber", "member", "memberUid", "entryUUID", "entryDN", "structuralObjectClass", "hasSubordinates", "createTimestamp", "modifyTimestamp")
)

// attrKeys is a set of canonical attribute names, by key (lowercase;
// the schema is filled by init, after package variables, so these are
// checked against it by TestPlannerAttrSets).
func attrKeys(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = true
	}
	return m
}

func (p *planner) carries(t *attrType) bool {
	switch p.kind {
	case phUsers:
		return userAttrKeys[t.key]
	case phGroups:
		return groupAttrKeys[t.key]
	}
	return upgAttrs[t.key]
}

func (p *planner) classes() []string {
	switch p.kind {
	case phUsers:
		return userClasses
	case phGroups:
		return groupClasses
	}
	return upgClasses
}

// plan returns the source for f, nil when the kind must be walked.
func (p *planner) plan(f *filter) *source {
	switch f.op {
	case fAnd:
		srcs := make([]*source, 0, len(f.children))
		for _, c := range f.children {
			src := p.plan(c)
			if src == nil {
				continue
			}
			if src.desc == "none" {
				return src // the kind is ruled out
			}
			srcs = append(srcs, src)
		}
		var best *source
		bestN := noEstimate
		for _, src := range srcs {
			if n := src.est(bestN); n < bestN || best == nil {
				best, bestN = src, n
			}
			if bestN == 0 {
				break
			}
		}
		return best
	case fOr:
		if len(f.children) == 0 { // (|) is absolute false
			return emptySource()
		}
		srcs := make([]*source, 0, len(f.children))
		for _, c := range f.children {
			src := p.plan(c)
			if src == nil {
				return nil
			}
			if src.desc != "none" {
				srcs = append(srcs, src)
			}
		}
		return union(srcs)
	case fNot:
		return nil
	case fExtensible:
		if f.t == nil || f.ruleUnknown || f.hasOptions || (!f.dnAttrs && !p.carries(f.t)) {
			return emptySource()
		}
		return nil
	}
	// A single assertion.
	if f.t == nil || f.hasOptions {
		return emptySource() // Undefined or FALSE everywhere
	}
	switch f.op {
	case fPresent:
		if !p.carries(f.t) {
			return emptySource()
		}
		return nil
	case fGreaterOrEqual, fLessOrEqual:
		if !f.a.ok || !hasOrdering(f.t) || !p.carries(f.t) {
			return emptySource()
		}
		return nil
	case fSubstrings:
		if !hasSubstrings(f.t) || !p.carries(f.t) {
			return emptySource()
		}
		if !f.hasInitial {
			return nil
		}
		return p.prefix(f.t, f.initial)
	case fEqual, fApprox:
		if !f.a.ok || !p.carries(f.t) {
			return emptySource()
		}
		return p.equality(f)
	}
	return nil
}

// union is the OR of sources.
func union(srcs []*source) *source {
	switch len(srcs) {
	case 0:
		return emptySource()
	case 1:
		return srcs[0]
	}
	descs := make([]string, len(srcs))
	for i, s := range srcs {
		descs[i] = s.desc
	}
	return &source{
		desc: "or(" + strings.Join(descs, ",") + ")",
		est: func(max int) int {
			n := 0
			for _, s := range srcs {
				if n += s.est(max - n); n >= max {
					return n
				}
			}
			return n
		},
		users: func() ([]*store.User, error) {
			var out []*store.User
			for _, s := range srcs {
				us, err := s.users()
				if err != nil {
					return nil, err
				}
				out = append(out, us...)
			}
			return out, nil
		},
		groups: func() ([]*store.Group, error) {
			var out []*store.Group
			for _, s := range srcs {
				gs, err := s.groups()
				if err != nil {
					return nil, err
				}
				out = append(out, gs...)
			}
			return out, nil
		},
	}
}

// userSource is a source of users (for the users and private group kinds).
func userSource(desc string, est func(int) int, fetch func() ([]*store.User, error)) *source {
	return &source{desc: desc, est: est, users: fetch,
		groups: func() ([]*store.Group, error) { return nil, nil }}
}

func groupSource(desc string, est func(int) int, fetch func() ([]*store.Group, error)) *source {
	return &source{desc: desc, est: est, groups: fetch,
		users: func() ([]*store.User, error) { return nil, nil }}
}

// memoUsers fetches once; est then counts what was fetched. For lookups
// that return few objects (an equality on a name).
func memoUsers(desc string, fetch func() ([]*store.User, error)) *source {
	var us []*store.User
	var err error
	done := false
	get := func() ([]*store.User, error) {
		if !done {
			done = true
			us, err = fetch()
		}
		return us, err
	}
	return userSource(desc, func(int) int {
		us, err := get()
		if err != nil {
			return 0 // the error comes back when the list is read
		}
		return len(us)
	}, get)
}

func memoGroups(desc string, fetch func() ([]*store.Group, error)) *source {
	var gs []*store.Group
	var err error
	done := false
	get := func() ([]*store.Group, error) {
		if !done {
			done = true
			gs, err = fetch()
		}
		return gs, err
	}
	return groupSource(desc, func(int) int {
		gs, err := get()
		if err != nil {
			return 0
		}
		return len(gs)
	}, get)
}

// one wraps a single lookup that may find nothing.
func oneUser(u *store.User, err error) ([]*store.User, error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []*store.User{u}, nil
}

func oneGroup(g *store.Group, err error) ([]*store.Group, error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []*store.Group{g}, nil
}

// intAssertion is an integer assertion as an int; ok false when out of
// range (no stored number is).
func intAssertion(a assertion) (int, bool) {
	n := int(a.n)
	return n, int64(n) == a.n
}

// equality plans (t=v) for the kind; f.a is valid and the kind carries t.
func (p *planner) equality(f *filter) *source {
	dir, ix := p.s.dir, p.ix
	v := f.a.s
	switch p.kind {
	case phUsers:
		switch f.t.key {
		case "uid":
			return memoUsers("uid=", func() ([]*store.User, error) { return oneUser(readUserByUsername(dir, v)) })
		case "mail":
			if e, ok := dir.(emailIndex); ok {
				return memoUsers("mail=", func() ([]*store.User, error) { return oneUser(e.UserByEmail(v)) })
			}
		case "cn":
			if ix != nil {
				return memoUsers("cn=", func() ([]*store.User, error) { return ix.UsersByCommonName(v) })
			}
		case "uidnumber":
			return p.usersByNumber("uidNumber=", f.a)
		case "gidnumber":
			if p.s.tree.userGID > 0 {
				if int64(p.s.tree.userGID) == f.a.n {
					return nil // every user
				}
				return emptySource()
			}
			return p.usersByNumber("gidNumber=", f.a)
		case "entryuuid":
			if ix != nil {
				return memoUsers("entryUUID=", func() ([]*store.User, error) { return ix.UsersByEntryUUID(v) })
			}
		case "memberof":
			return p.membersOf(f.value)
		case "objectclass":
			return p.objectClass(v)
		}
	case phUserGroups:
		switch f.t.key {
		case "cn":
			return memoUsers("cn=", func() ([]*store.User, error) { return oneUser(readUserByUsername(dir, v)) })
		case "gidnumber":
			return p.usersByNumber("gidNumber=", f.a)
		case "entryuuid":
			if ix != nil {
				return memoUsers("entryUUID=", func() ([]*store.User, error) { return ix.UsersByEntryUUID(v) })
			}
		case "objectclass":
			return p.objectClass(v)
		}
	case phGroups:
		switch f.t.key {
		case "cn":
			if ix != nil {
				return memoGroups("cn=", func() ([]*store.Group, error) { return ix.GroupsByCommonName(v) })
			}
			return memoGroups("cn=", func() ([]*store.Group, error) { return oneGroup(dir.GroupByName(v)) })
		case "gidnumber":
			n, ok := intAssertion(f.a)
			if !ok {
				return emptySource()
			}
			if ix != nil {
				return memoGroups("gidNumber=", func() ([]*store.Group, error) { return ix.GroupsByGIDNumber(n) })
			}
			if g, ok := dir.(gidNumberIndex); ok {
				return memoGroups("gidNumber=", func() ([]*store.Group, error) { return oneGroup(g.GroupByGIDNumber(n)) })
			}
		case "member":
			d, err := parseDN(f.value)
			if err != nil {
				return emptySource()
			}
			pl := p.s.tree.locate(d)
			if !pl.ok || pl.kind != kindUser {
				return emptySource()
			}
			return p.groupsOf("member=", pl.name)
		case "memberuid":
			return p.groupsOf("memberUid=", v)
		case "entryuuid":
			if ix != nil {
				return memoGroups("entryUUID=", func() ([]*store.Group, error) { return ix.GroupsByEntryUUID(v) })
			}
		case "objectclass":
			return p.objectClass(v)
		}
	}
	return nil
}

// objectClass: no entry of the kind has a class it lacks; one it has is
// no help (every entry of the kind, or most, has it).
func (p *planner) objectClass(v string) *source {
	for _, c := range p.classes() {
		if v == c {
			return nil
		}
	}
	return emptySource()
}

// usersByNumber plans a uidNumber (or a private group's gidNumber).
func (p *planner) usersByNumber(desc string, a assertion) *source {
	n, ok := intAssertion(a)
	if !ok {
		return emptySource()
	}
	if p.ix != nil {
		return memoUsers(desc, func() ([]*store.User, error) { return p.ix.UsersByUIDNumber(n) })
	}
	if u, ok := p.s.dir.(uidNumberIndex); ok {
		return memoUsers(desc, func() ([]*store.User, error) { return oneUser(u.UserByUIDNumber(n)) })
	}
	return nil
}

// groupsByDN returns the groups a DN under ou=groups names.
func (p *planner) groupsByDN(dn string) ([]*store.Group, error) {
	d, err := parseDN(dn)
	if err != nil {
		return nil, nil
	}
	pl := p.s.tree.locate(d)
	if !pl.ok || pl.kind != kindGroup {
		return nil, nil
	}
	if p.ix != nil {
		return p.ix.GroupsByCommonName(pl.name)
	}
	return oneGroup(p.s.dir.GroupByName(pl.name))
}

// membersOf plans (memberOf=<group DN>): the group's members.
func (p *planner) membersOf(dn string) *source {
	var gs []*store.Group
	var gerr error
	looked := false
	groups := func() ([]*store.Group, error) {
		if !looked {
			looked = true
			gs, gerr = p.groupsByDN(dn)
		}
		return gs, gerr
	}
	est := func(max int) int {
		gs, err := groups()
		if err != nil || p.ix == nil {
			return max // unknown: anything beats it
		}
		n := 0
		for _, g := range gs {
			n += p.ix.CountMembers(g.ID, max-n)
			if n >= max {
				return n
			}
		}
		return n
	}
	return userSource("memberOf=", est, func() ([]*store.User, error) {
		gs, err := groups()
		if err != nil {
			return nil, err
		}
		var out []*store.User
		for _, g := range gs {
			ms, err := p.s.dir.MembersOf(g.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			out = append(out, ms...)
		}
		return out, nil
	})
}

// groupsOf plans (member=<user DN>) and (memberUid=<name>): the groups of
// the user of that name (in any case; memberUid's case rule is the
// filter's to apply).
func (p *planner) groupsOf(desc, name string) *source {
	var u *store.User
	var uerr error
	looked := false
	user := func() (*store.User, error) {
		if !looked {
			looked = true
			us, err := oneUser(readUserByUsername(p.s.dir, strings.TrimSpace(name)))
			if len(us) > 0 {
				u = us[0]
			}
			uerr = err
		}
		return u, uerr
	}
	est := func(max int) int {
		u, err := user()
		switch {
		case err != nil:
			return 0
		case u == nil:
			return 0
		case p.ix == nil:
			return max
		}
		return p.ix.CountGroupsOfUser(u.ID, max)
	}
	return groupSource(desc, est, func() ([]*store.Group, error) {
		u, err := user()
		if err != nil || u == nil {
			return nil, err
		}
		gs, err := p.s.dir.GroupsOfUser(u.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return gs, err
	})
}

// prefixMemo is the most candidates a prefix source keeps while counting
// them, so that a search of a few (the count says whether it is) walks
// the index once.
const prefixMemo = 64

// prefix plans a substrings assertion with an initial part.
func (p *planner) prefix(t *attrType, initial string) *source {
	ix := p.ix
	if ix == nil {
		return nil
	}
	users := func(k store.UserKey) *source {
		// The store's own users (EachUserWithPrefix): the search only
		// reads them.
		var memo []*store.User
		complete := false
		est := func(max int) int {
			if complete {
				return len(memo)
			}
			n := 0
			got := make([]*store.User, 0, prefixMemo)
			ix.EachUserWithPrefix(k, initial, func(u *store.User) bool {
				if n++; n <= prefixMemo {
					got = append(got, u)
				}
				return max <= 0 || n < max
			})
			if (max <= 0 || n < max) && n <= prefixMemo {
				memo, complete = got, true // the walk ended: these are all
			}
			return n
		}
		fetch := func() ([]*store.User, error) {
			if complete {
				return memo, nil
			}
			var out []*store.User
			ix.EachUserWithPrefix(k, initial, func(u *store.User) bool {
				out = append(out, u)
				return true
			})
			return out, nil
		}
		return userSource(t.name+"^", est, fetch)
	}
	switch {
	case p.kind == phUsers && t.key == "uid":
		return users(store.UserKeyUsername)
	case p.kind == phUsers && t.key == "mail":
		return users(store.UserKeyEmail)
	case p.kind == phUsers && t.key == "cn":
		return users(store.UserKeyCN)
	case p.kind == phUserGroups && t.key == "cn":
		return users(store.UserKeyUsername)
	case p.kind == phGroups && t.key == "cn":
		// Counted none: no need to look again (a cn prefix of users
		// rarely names a group too).
		none := false
		return groupSource("cn^",
			func(max int) int {
				n := ix.CountGroupsWithPrefix(initial, max)
				none = n == 0
				return n
			},
			func() ([]*store.Group, error) {
				if none {
					return nil, nil
				}
				return ix.GroupsWithPrefix(initial, 0)
			})
	}
	return nil
}

// describe is the plan of f for the kind, for tests: the source's
// description, "scan" for a walk.
func (p *planner) describe(f *filter) string {
	if src := p.plan(f); src != nil {
		return src.desc
	}
	return "scan"
}
