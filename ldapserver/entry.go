package ldapserver

import (
	"errors"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

type entryKind uint8

const (
	kindRootDSE entryKind = iota
	kindBase
	kindContainer
	kindUser
	kindGroup
	kindUserGroup // a user's private group (ou=usergroups)
)

// container is one of the organizational units under the base.
type container uint8

const (
	ctrUsers      container = iota // ou=users
	ctrGroups                      // ou=groups
	ctrUserGroups                  // ou=usergroups: user private groups, when user_gid_number = 0
)

// attrVals is one attribute of an entry. load (or loadDN) fills vals on
// first use (memberOf, member, memberUid cost a store lookup).
type attrVals struct {
	t      *attrType
	vals   []string
	load   func() ([]string, error)
	loaded bool
	// For DN values the door builds itself (memberOf, member): loadDN
	// also gives each value's normalized form (normalizeDN of it), or ""
	// where that is not known, so a filter compares strings instead of
	// parsing every value.
	loadDN func() (vals, norm []string, err error)
	norm   []string
	// has, when set, answers an equality assertion on a lazy attribute
	// without loading it (a group's member and memberUid: one member
	// looked up rather than every member read); ok false means it cannot
	// tell and the values are loaded.
	has func(a assertion) (match, ok bool)
}

// entry is one object of the virtual tree, built per search from the store.
// It is used by one goroutine (the fixed entries of the tree, built once,
// hold no lazy attributes and are only read).
type entry struct {
	dn    string
	kind  entryKind
	attrs []attrVals
	err   error // a lazy load failed
	// skip is the attribute types not rendered: a search renders only
	// what it returns or its filter reads (zero: everything).
	skip attrSet
	// vbuf holds the values of the attributes added so far; each
	// attribute's vals is a capped slice of it, so an entry costs a few
	// allocations rather than one per attribute.
	vbuf []string
}

// newEntry starts an entry that renders the types in need, with room for
// about n attributes.
func newEntry(dn string, kind entryKind, need attrSet, n int) *entry {
	n = min(n, bits.OnesCount64(uint64(need)))
	return &entry{dn: dn, kind: kind, skip: ^need, attrs: make([]attrVals, 0, n), vbuf: make([]string, 0, n+4)}
}

// reuse is newEntry in e's memory (e nil: a new entry), for a walk that
// renders one entry after another and is done with each before the next.
func (e *entry) reuse(dn string, kind entryKind, need attrSet, n int) *entry {
	if e == nil {
		return newEntry(dn, kind, need, n)
	}
	clear(e.attrs) // the last entry's values and loaders
	*e = entry{dn: dn, kind: kind, skip: ^need, attrs: e.attrs[:0], vbuf: e.vbuf[:0]}
	return e
}

// wants reports whether the entry renders t.
func (e *entry) wants(t *attrType) bool { return e.skip&t.bit == 0 }

// add adds an attribute by its canonical name; empty values are left
// out, and so is an attribute with none.
func (e *entry) add(name string, vals ...string) {
	t := byName[name]
	if t == nil {
		panic("ldapserver: attribute not in schema: " + name)
	}
	e.addT(t, vals...)
}

func (e *entry) addT(t *attrType, vals ...string) {
	if !e.wants(t) {
		return
	}
	start := len(e.vbuf)
	for _, v := range vals {
		if v != "" {
			e.vbuf = append(e.vbuf, v)
		}
	}
	if len(e.vbuf) == start {
		return
	}
	end := len(e.vbuf)
	e.attrs = append(e.attrs, attrVals{t: t, vals: e.vbuf[start:end:end], loaded: true})
}

func (e *entry) addLazy(name string, load func() ([]string, error)) {
	t := byName[name]
	if t == nil {
		panic("ldapserver: attribute not in schema: " + name)
	}
	if !e.wants(t) {
		return
	}
	e.attrs = append(e.attrs, attrVals{t: t, load: load})
}

// get returns the values of attribute type t (nil when absent).
func (e *entry) get(t *attrType) []string {
	for i := range e.attrs {
		if e.attrs[i].t == t {
			return e.values(&e.attrs[i])
		}
	}
	return nil
}

// addLazyDN adds a DN-valued attribute loaded on first use, with the
// normalized form of its values.
func (e *entry) addLazyDN(name string, load func() (vals, norm []string, err error)) {
	t := byName[name]
	if t == nil || t.syn != synDN {
		panic("ldapserver: not a DN attribute in schema: " + name)
	}
	if !e.wants(t) {
		return
	}
	e.attrs = append(e.attrs, attrVals{t: t, loadDN: load})
}

// setHas sets the equality shortcut of e's attribute name, if rendered.
func (e *entry) setHas(name string, has func(assertion) (bool, bool)) {
	if a := e.attr(byName[name]); a != nil {
		a.has = has
	}
}

// attr returns attribute type t of e (nil when absent).
func (e *entry) attr(t *attrType) *attrVals {
	for i := range e.attrs {
		if e.attrs[i].t == t {
			return &e.attrs[i]
		}
	}
	return nil
}

func (e *entry) values(a *attrVals) []string {
	if !a.loaded {
		a.loaded = true
		var vs []string
		var err error
		if a.loadDN != nil {
			vs, a.norm, err = a.loadDN()
		} else {
			vs, err = a.load()
		}
		if err != nil && e.err == nil {
			e.err = err
		}
		a.vals = vs
	}
	return a.vals
}

// memberCheck is an optional Directory method (the store has it): whether
// a user is a direct member of a group, without reading the group's
// members.
type memberCheck interface {
	IsMember(groupID, userID string) bool
}

// memberVisitor is an optional Directory method (the store has it): the
// members of a group without a copy of each; fn must not keep the user.
type memberVisitor interface {
	EachMember(groupID string, fn func(*store.User) bool) error
}

// cleanName reports whether s holds only the characters of a username
// (letters, digits, '.', '_', '-'), which no preparation step changes
// except case.
func cleanName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// dnNorm is the normalized form of a DN the door builds from a name
// under a container (uid=<name>,ou=users,<base> and the like), without
// parsing it: "" when name has characters for which that shortcut is
// not proven equal to normalizeDN (TestDNNormShortcut), so the value is
// parsed as any other.
func dnNorm(typ, name, ctrNDN string) string {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@' || c == ' ') {
			return ""
		}
	}
	return typ + "=" + escapeDNValue(prepCaseIgnore(name)) + "," + ctrNDN
}

// tree knows the naming context and builds entries.
type tree struct {
	base      parsedDN
	baseDN    string // display form
	baseNDN   string
	usersDN   string
	usersNDN  string
	groupsDN  string
	groupsNDN string
	// upgDN and upgNDN name ou=usergroups; empty when user_gid_number
	// is set (no private groups then).
	upgDN   string
	upgNDN  string
	userGID int
	// now is the clock an account's lock is judged by.
	now func() time.Time
	// expiresAt is when a user's password expires under the password
	// policy (zero: never); nil when there is no policy (tests).
	expiresAt func(*store.User) time.Time
	// hideInactive: inactive users are left out of every search
	// (hide_inactive), and so out of other users' manager.
	hideInactive bool

	// reference (tests, with Server.fullScan) turns the matching
	// shortcuts off (known normalized DNs, member lookups): filters then
	// read every value as the reference the shortcuts are held to.
	reference bool

	// The base and container entries never change: built once.
	base0 *entry
	ctr0  [3]*entry
}

func newTree(baseDN string, userGID int) (*tree, error) {
	d, err := parseDN(strings.TrimSpace(baseDN))
	if err != nil || len(d) == 0 {
		return nil, errBadDN
	}
	t := &tree{base: d, baseDN: displayDN(d), baseNDN: d.norm(), userGID: userGID, now: time.Now}
	t.usersDN = "ou=users," + t.baseDN
	t.usersNDN = "ou=users," + t.baseNDN
	t.groupsDN = "ou=groups," + t.baseDN
	t.groupsNDN = "ou=groups," + t.baseNDN
	if userGID == 0 {
		t.upgDN = "ou=usergroups," + t.baseDN
		t.upgNDN = "ou=usergroups," + t.baseNDN
	}
	t.base0 = t.renderBase()
	for _, c := range t.containers() {
		t.ctr0[c] = t.renderContainer(c)
	}
	return t, nil
}

// hasUPG reports whether users get private groups (user_gid_number = 0).
func (t *tree) hasUPG() bool { return t.upgDN != "" }

// containers lists the organizational units under the base, in order.
func (t *tree) containers() []container {
	if t.hasUPG() {
		return []container{ctrUsers, ctrGroups, ctrUserGroups}
	}
	return []container{ctrUsers, ctrGroups}
}

// inactive reports whether u may not log in at now: staged or suspended,
// locked out, with an expired password (recorded, or older than the
// policy's max_password_age: authn records that at the next login), or
// with no password yet unless AD holds it (SPEC 2.2, 2.3, 8). Such a user
// is rendered disabled (userEntry) and is a member of no group, so a host
// refuses them in the account phase too (an SSH key, su, cron), not only
// at a password prompt.
func (t *tree) inactive(u *store.User, now time.Time) bool {
	return u.State != store.StateActive || u.Locked(now) ||
		u.PasswordStatus == store.PasswordExpired || u.PasswordStatus == store.PasswordLocked ||
		(u.PasswordStatus == store.PasswordPending && u.DelegatedAuthority != store.AuthorityAD) ||
		(u.PasswordStatus == store.PasswordActive && t.passwordAged(u, now))
}

// passwordAged reports whether u's password is past its expiry at now.
func (t *tree) passwordAged(u *store.User, now time.Time) bool {
	if t.expiresAt == nil {
		return false
	}
	exp := t.expiresAt(u)
	return !exp.IsZero() && !now.Before(exp)
}

// hidden reports whether hide_inactive keeps u out of every search.
func (t *tree) hidden(u *store.User, now time.Time) bool {
	return t.hideInactive && t.inactive(u, now)
}

func (t *tree) userDN(username string) string {
	return "uid=" + escapeDNValue(username) + "," + t.usersDN
}

func (t *tree) groupDN(name string) string {
	return "cn=" + escapeDNValue(name) + "," + t.groupsDN
}

func (t *tree) upgEntryDN(username string) string {
	return "cn=" + escapeDNValue(username) + "," + t.upgDN
}

// place says where a DN falls in the tree.
type place struct {
	kind entryKind // kindBase, kindContainer, kindUser, kindGroup, kindUserGroup
	ctr  container // for kindContainer: which one
	name string    // username or group name as written in the DN
	// matched is the deepest existing ancestor, for noSuchObject.
	matched string
	ok      bool
}

// locate classifies a parsed DN under the base. ok is false when the DN
// cannot name an entry of ours; matched then says how far it got.
func (t *tree) locate(d parsedDN) place {
	if !d.hasSuffix(t.base) {
		return place{}
	}
	rel := d[:len(d)-len(t.base)]
	switch len(rel) {
	case 0:
		return place{kind: kindBase, ok: true}
	case 1:
		switch rel[0].norm {
		case "ou=users":
			return place{kind: kindContainer, ctr: ctrUsers, ok: true}
		case "ou=groups":
			return place{kind: kindContainer, ctr: ctrGroups, ok: true}
		case "ou=usergroups":
			if t.hasUPG() {
				return place{kind: kindContainer, ctr: ctrUserGroups, ok: true}
			}
		}
		return place{matched: t.baseDN}
	case 2:
		r := rel[0]
		upg := t.hasUPG() && rel[1].norm == "ou=usergroups"
		switch {
		case rel[1].norm == "ou=users" && len(r.avas) == 1 && r.avas[0].typ == "uid":
			return place{kind: kindUser, name: r.avas[0].val, matched: t.usersDN, ok: true}
		case rel[1].norm == "ou=groups" && len(r.avas) == 1 && r.avas[0].typ == "cn":
			return place{kind: kindGroup, name: r.avas[0].val, matched: t.groupsDN, ok: true}
		case upg && len(r.avas) == 1 && r.avas[0].typ == "cn":
			return place{kind: kindUserGroup, name: r.avas[0].val, matched: t.upgDN, ok: true}
		case rel[1].norm == "ou=users":
			return place{matched: t.usersDN}
		case rel[1].norm == "ou=groups":
			return place{matched: t.groupsDN}
		case upg:
			return place{matched: t.upgDN}
		}
		return place{matched: t.baseDN}
	default:
		p := t.locate(d[len(d)-len(t.base)-2:])
		if p.ok {
			// Below a leaf: the leaf exists (if it does), but we cannot
			// tell here; report its container.
			switch p.kind {
			case kindUser:
				return place{matched: t.usersDN}
			case kindGroup:
				return place{matched: t.groupsDN}
			case kindUserGroup:
				return place{matched: t.upgDN}
			}
		}
		return place{matched: p.matched}
	}
}

// baseEntry is the entry at the base DN; callers only read it.
func (t *tree) baseEntry() *entry { return t.base0 }

func (t *tree) renderBase() *entry {
	e := &entry{dn: t.baseDN, kind: kindBase}
	top := t.base[0].avas[0]
	switch top.typ {
	case "dc":
		e.addT(atObjectClass, "top", "domain")
		e.addT(atDC, top.val)
		e.addT(atStructuralObjectClass, "domain")
	case "o":
		e.addT(atObjectClass, "top", "organization")
		e.addT(atO, top.val)
		e.addT(atStructuralObjectClass, "organization")
	case "ou":
		e.addT(atObjectClass, "top", "organizationalUnit")
		e.addT(atOU, top.val)
		e.addT(atStructuralObjectClass, "organizationalUnit")
	default:
		e.addT(atObjectClass, "top", "extensibleObject")
		if schema[top.typ] != nil {
			e.add(top.typ, top.val)
		}
	}
	e.addT(atEntryDN, t.baseDN)
	e.addT(atHasSubordinates, "TRUE")
	return e
}

// containerEntry is one organizational unit's entry; callers only read it.
func (t *tree) containerEntry(c container) *entry { return t.ctr0[c] }

func (t *tree) renderContainer(c container) *entry {
	e := &entry{kind: kindContainer}
	var ou string
	switch c {
	case ctrUsers:
		ou, e.dn = "users", t.usersDN
	case ctrGroups:
		ou, e.dn = "groups", t.groupsDN
	default:
		ou, e.dn = "usergroups", t.upgDN
	}
	e.addT(atObjectClass, "top", "organizationalUnit")
	e.addT(atOU, ou)
	e.addT(atStructuralObjectClass, "organizationalUnit")
	e.addT(atEntryDN, e.dn)
	e.addT(atHasSubordinates, "TRUE")
	return e
}

// Disabled markers on an inactive user, one for each account check a
// Linux host may be configured with (see README.md, "Inactive users").
const (
	// shadowExpire is in days since 1970-01-01: day 1 is long past. (0
	// would mean "never" to SSSD and "expired" to nslcd.)
	disabledShadowExpire = "1"
	// pwdAccountLockedTime of OpenLDAP's ppolicy: locked until an
	// administrator unlocks.
	disabledPwdLockedTime = "000001010000Z"
	// userAccountControl: NORMAL_ACCOUNT | ACCOUNTDISABLE.
	disabledUAC = "514"
)

// The types the renderers add, resolved once (resolveAttrTypes, from
// the schema's init): a map lookup by name per attribute per entry was
// about a fifth of the CPU of a search returning a few users.
var (
	atCN                    *attrType
	atCreateTimestamp       *attrType
	atDC                    *attrType
	atDescription           *attrType
	atDisplayName           *attrType
	atEntryDN               *attrType
	atEntryUUID             *attrType
	atGIDNumber             *attrType
	atGivenName             *attrType
	atHasSubordinates       *attrType
	atHomeDirectory         *attrType
	atLoginDisabled         *attrType
	atLoginShell            *attrType
	atMail                  *attrType
	atManager               *attrType
	atMember                *attrType
	atMemberOf              *attrType
	atMemberUID             *attrType
	atModifyTimestamp       *attrType
	atNSAccountLock         *attrType
	atO                     *attrType
	atObjectClass           *attrType
	atOU                    *attrType
	atPwdAccountLockedTime  *attrType
	atPwdChangedTime        *attrType
	atShadowExpire          *attrType
	atShadowLastChange      *attrType
	atShadowMax             *attrType
	atSN                    *attrType
	atStructuralObjectClass *attrType
	atUID                   *attrType
	atUIDNumber             *attrType
	atUserAccountControl    *attrType
)

// resolveAttrTypes sets the at* types and userAttrs' types; the schema
// calls it once its types are defined.
func resolveAttrTypes() {
	must := func(name string) *attrType {
		t := byName[name]
		if t == nil {
			panic("ldapserver: attribute not in schema: " + name)
		}
		return t
	}
	atCN = must("cn")
	atCreateTimestamp = must("createTimestamp")
	atDC = must("dc")
	atDescription = must("description")
	atDisplayName = must("displayName")
	atEntryDN = must("entryDN")
	atEntryUUID = must("entryUUID")
	atGIDNumber = must("gidNumber")
	atGivenName = must("givenName")
	atHasSubordinates = must("hasSubordinates")
	atHomeDirectory = must("homeDirectory")
	atLoginDisabled = must("loginDisabled")
	atLoginShell = must("loginShell")
	atMail = must("mail")
	atManager = must("manager")
	atMember = must("member")
	atMemberOf = must("memberOf")
	atMemberUID = must("memberUid")
	atModifyTimestamp = must("modifyTimestamp")
	atNSAccountLock = must("nsAccountLock")
	atO = must("o")
	atObjectClass = must("objectClass")
	atOU = must("ou")
	atPwdAccountLockedTime = must("pwdAccountLockedTime")
	atPwdChangedTime = must("pwdChangedTime")
	atShadowExpire = must("shadowExpire")
	atShadowLastChange = must("shadowLastChange")
	atShadowMax = must("shadowMax")
	atSN = must("sn")
	atStructuralObjectClass = must("structuralObjectClass")
	atUID = must("uid")
	atUIDNumber = must("uidNumber")
	atUserAccountControl = must("userAccountControl")
	for i := range userAttrs {
		userAttrs[i].t = must(userAttrs[i].ldap)
	}
}

// userAttrs maps the gateway's attribute names (SPEC 2.1; sync.Attr*) to
// the LDAP attributes that render them on a user entry. manager (a
// username, rendered as that user's DN), loginShell and homeDirectory
// are rendered apart; any other key of User.Attributes (ad_domain,
// free-form ones) is not rendered.
var userAttrs = []struct {
	gateway, ldap string
	t             *attrType // ldap's type, set by resolveAttrTypes
}{
	{gateway: "title", ldap: "title"},
	{gateway: "department", ldap: "departmentNumber"},
	{gateway: "company", ldap: "o"},
	{gateway: "location", ldap: "l"},
	{gateway: "employeeType", ldap: "employeeType"},
	{gateway: "telephoneNumber", ldap: "telephoneNumber"},
	{gateway: "mobile", ldap: "mobile"},
	{gateway: "postalAddress", ldap: "postalAddress"},
}

// daySeconds is one day of the shadow attributes, which count days since
// 1970-01-01 UTC.
const daySeconds = 24 * 60 * 60

// shadowAges returns shadowLastChange and shadowMax (RFC 2307, in days)
// of a user with a local password whose change time is known; ok is false
// for anyone else (no password, AD-held, set before change times were
// recorded). maxDays is "" when the password does not expire.
func (t *tree) shadowAges(u *store.User) (lastChange, maxDays string, ok bool) {
	if u.PasswordHash == "" || u.PasswordAuthority == store.AuthorityAD || u.DelegatedAuthority == store.AuthorityAD ||
		u.PasswordChangedAt.IsZero() {
		return "", "", false
	}
	changed := u.PasswordChangedAt.Unix()
	lastChange = strconv.FormatInt(floorDiv(changed, daySeconds), 10)
	if t.expiresAt != nil {
		if exp := t.expiresAt(u); !exp.IsZero() {
			age := exp.Unix() - changed
			if age < 1 {
				age = 1
			}
			maxDays = strconv.FormatInt((age+daySeconds-1)/daySeconds, 10) // rounded up
		}
	}
	return lastChange, maxDays, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// userEntry renders a user whole. The password hash is never part of an
// entry. An inactive user is rendered disabled and with no memberOf.
func (t *tree) userEntry(u *store.User, dir Directory) *entry { return t.renderUser(u, dir, allAttrs) }

// renderUser renders the attributes of u in need (and may render more).
func (t *tree) renderUser(u *store.User, dir Directory, need attrSet) *entry {
	return t.renderUserInto(nil, u, dir, need)
}

// renderUserInto is renderUser reusing e (entry.reuse).
func (t *tree) renderUserInto(e *entry, u *store.User, dir Directory, need attrSet) *entry {
	now := t.now()
	off := t.inactive(u, now)
	e = e.reuse(t.userDN(u.Username), kindUser, need, 40)
	var lastChange, maxDays string
	var shadow bool
	if e.wants(atObjectClass) || e.wants(atShadowLastChange) || e.wants(atShadowMax) || e.wants(atPwdChangedTime) {
		lastChange, maxDays, shadow = t.shadowAges(u)
	}
	// shadowAccount holds the shadow attributes: a user carries it while
	// inactive (shadowExpire) and whenever their password's age is known
	// (shadowLastChange, shadowMax).
	if off || shadow {
		e.addT(atObjectClass, "top", "person", "organizationalPerson", "inetOrgPerson", "posixAccount", "shadowAccount")
	} else {
		e.addT(atObjectClass, "top", "person", "organizationalPerson", "inetOrgPerson", "posixAccount")
	}
	e.addT(atUID, u.Username)
	cn := userCN(u)
	e.addT(atCN, cn)
	sn := u.LastName
	if sn == "" {
		sn = u.Username
	}
	e.addT(atSN, sn)
	e.addT(atGivenName, u.FirstName)
	display := u.DisplayName
	if display == "" {
		display = cn
	}
	e.addT(atDisplayName, display)
	e.addT(atMail, u.Email)
	if e.wants(atMemberOf) {
		id := u.ID
		e.addLazyDN("memberOf", func() ([]string, []string, error) {
			if off {
				return nil, nil, nil
			}
			gs, err := dir.GroupsOfUser(id)
			if err != nil {
				return nil, nil, err
			}
			out := make([]string, 0, len(gs))
			norm := make([]string, 0, len(gs))
			for _, g := range gs {
				out = append(out, t.groupDN(g.Name))
				norm = append(norm, dnNorm("cn", g.Name, t.groupsNDN))
			}
			if t.reference {
				norm = nil
			}
			return out, norm, nil
		})
	}
	if e.wants(atUIDNumber) {
		e.addT(atUIDNumber, strconv.Itoa(u.UIDNumber))
	}
	if e.wants(atGIDNumber) {
		gid := u.UIDNumber
		if t.userGID > 0 {
			gid = t.userGID
		}
		e.addT(atGIDNumber, strconv.Itoa(gid))
	}
	if e.wants(atHomeDirectory) {
		home := "/home/" + u.Username
		if v := u.Attributes["homeDirectory"]; v != "" {
			home = v
		}
		e.addT(atHomeDirectory, home)
	}
	shell := "/bin/bash"
	if v := u.Attributes["loginShell"]; v != "" {
		shell = v
	}
	e.addT(atLoginShell, shell)
	for _, a := range userAttrs {
		if !e.wants(a.t) {
			continue
		}
		v := u.Attributes[a.gateway]
		if a.ldap == "postalAddress" {
			v = postalAddress(v)
		}
		e.addT(a.t, strings.TrimSpace(v))
	}
	if mgr := strings.TrimSpace(u.Attributes["manager"]); mgr != "" && e.wants(atManager) {
		e.addLazy("manager", func() ([]string, error) { return t.managerDN(mgr, dir, now) })
	}
	if shadow {
		e.addT(atShadowLastChange, lastChange)
		e.addT(atShadowMax, maxDays)
		if e.wants(atPwdChangedTime) {
			e.addT(atPwdChangedTime, generalizedTime(u.PasswordChangedAt))
		}
	}
	if off {
		e.addT(atShadowExpire, disabledShadowExpire)
		e.addT(atNSAccountLock, "TRUE")
		e.addT(atLoginDisabled, "TRUE")
		e.addT(atUserAccountControl, disabledUAC)
		e.addT(atPwdAccountLockedTime, disabledPwdLockedTime)
	}
	if e.wants(atEntryUUID) {
		e.addT(atEntryUUID, store.EntryUUID(u.ID))
	}
	e.addT(atEntryDN, e.dn)
	e.addT(atStructuralObjectClass, "inetOrgPerson")
	e.addT(atHasSubordinates, "FALSE")
	e.addTimes(u.CreatedAt, userModified(u, now))
	return e
}

// addTimes adds createTimestamp and modifyTimestamp (when known).
func (e *entry) addTimes(created, modified time.Time) {
	if !created.IsZero() && e.wants(atCreateTimestamp) {
		e.addT(atCreateTimestamp, generalizedTime(created))
	}
	if !modified.IsZero() && e.wants(atModifyTimestamp) {
		e.addT(atModifyTimestamp, generalizedTime(modified))
	}
}

// managerDN is the DN of the user named by a manager attribute, none
// when no such user exists (or hide_inactive hides them).
func (t *tree) managerDN(name string, dir Directory, now time.Time) ([]string, error) {
	m, err := readUserByUsername(dir, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case t.hidden(m, now):
		return nil, nil
	}
	return []string{t.userDN(m.Username)}, nil
}

// userModified is when the user's rendering last changed: UpdatedAt, or
// the end of a lock that has run out since (a lock ends without a write,
// and the entry loses its disabled markers then).
func userModified(u *store.User, now time.Time) time.Time {
	if !u.LockedUntil.IsZero() && u.LockedUntil.After(u.UpdatedAt) && !now.Before(u.LockedUntil) {
		return u.LockedUntil
	}
	return u.UpdatedAt
}

// upgEntry renders a user's private group: a posixGroup named after the
// user whose gidNumber is the user's, with no members (as on a Debian
// host, where the primary group lists nobody). It is not a groupOfNames,
// so products looking for groups to authorize by do not list it.
func (t *tree) upgEntry(u *store.User) *entry { return t.renderUPG(u, allAttrs) }

// renderUPG renders the attributes in need of u's private group.
func (t *tree) renderUPG(u *store.User, need attrSet) *entry {
	e := newEntry(t.upgEntryDN(u.Username), kindUserGroup, need, 12)
	e.addT(atObjectClass, "top", "posixGroup")
	e.addT(atCN, u.Username)
	if e.wants(atDescription) {
		e.addT(atDescription, "private group of "+u.Username)
	}
	if e.wants(atGIDNumber) {
		e.addT(atGIDNumber, strconv.Itoa(u.UIDNumber))
	}
	if e.wants(atEntryUUID) {
		e.addT(atEntryUUID, store.UserGroupEntryUUID(u.ID))
	}
	e.addT(atEntryDN, e.dn)
	e.addT(atStructuralObjectClass, "posixGroup")
	e.addT(atHasSubordinates, "FALSE")
	e.addTimes(u.CreatedAt, u.UpdatedAt)
	return e
}

func userCN(u *store.User) string { return u.CommonName() }

func (t *tree) groupEntry(g *store.Group, dir Directory) *entry {
	return t.renderGroup(g, dir, allAttrs)
}

// renderGroup renders the attributes in need of g.
func (t *tree) renderGroup(g *store.Group, dir Directory, need attrSet) *entry {
	return t.renderGroupInto(nil, g, dir, need)
}

// renderGroupInto is renderGroup reusing e (entry.reuse).
func (t *tree) renderGroupInto(e *entry, g *store.Group, dir Directory, need attrSet) *entry {
	e = e.reuse(t.groupDN(g.Name), kindGroup, need, 14)
	e.addT(atObjectClass, "top", "groupOfNames", "posixGroup")
	e.addT(atCN, g.Name)
	e.addT(atDescription, g.Description)
	if e.wants(atGIDNumber) {
		e.addT(atGIDNumber, strconv.Itoa(g.GIDNumber))
	}
	if e.wants(atMember) || e.wants(atMemberUID) {
		// member and memberUid share one lookup. Inactive users are left
		// out: they are members again once reactivated. Only the names
		// are needed, in MembersOf's order (by lowercased username).
		var names []string
		var loaded bool
		var lerr error
		load := func() ([]string, error) {
			if loaded {
				return names, lerr
			}
			loaded = true
			now := t.now()
			if mv, ok := dir.(memberVisitor); ok {
				lerr = mv.EachMember(g.ID, func(m *store.User) bool {
					if !t.inactive(m, now) {
						names = append(names, m.Username)
					}
					return true
				})
				slices.SortFunc(names, func(a, b string) int {
					return strings.Compare(strings.ToLower(a), strings.ToLower(b))
				})
				return names, lerr
			}
			var all []*store.User
			all, lerr = dir.MembersOf(g.ID)
			for _, m := range all {
				if !t.inactive(m, now) {
					names = append(names, m.Username)
				}
			}
			return names, lerr
		}
		e.addLazyDN("member", func() ([]string, []string, error) {
			ms, err := load()
			out := make([]string, 0, len(ms))
			norm := make([]string, 0, len(ms))
			for _, name := range ms {
				out = append(out, t.userDN(name))
				norm = append(norm, dnNorm("uid", name, t.usersNDN))
			}
			if t.reference {
				norm = nil
			}
			return out, norm, err
		})
		e.addLazy("memberUid", func() ([]string, error) {
			ms, err := load()
			return slices.Clone(ms), err
		})
		if mc, ok := dir.(memberCheck); ok && !t.reference {
			// (memberUid=x) and (member=dn), the initgroups lookups of
			// SSSD and nslcd, on a group of thousands: look x up.
			isActiveMember := func(u *store.User) bool {
				return mc.IsMember(g.ID, u.ID) && !t.inactive(u, t.now())
			}
			e.setHas("memberUid", func(a assertion) (bool, bool) {
				// caseExactIA5: only a username spelled exactly so.
				// Usernames are letters, digits, '.', '_' and '-'
				// (store.validateUser), so a clean one has no other
				// spelling after preparation.
				if !cleanName(a.s) {
					return false, false
				}
				u, err := readUserByUsername(dir, a.s)
				switch {
				case errors.Is(err, store.ErrNotFound):
					return false, true
				case err != nil || !cleanName(u.Username):
					return false, false
				case u.Username != a.s:
					return false, true
				}
				return isActiveMember(u), true
			})
			e.setHas("member", func(a assertion) (bool, bool) {
				// A member value normalizes to uid=<lowercased
				// username>,<ou=users> (dnNorm, TestDNNormShortcut).
				rest, ok := strings.CutPrefix(a.s, "uid=")
				name, ok2 := strings.CutSuffix(rest, ","+t.usersNDN)
				if !ok || !ok2 {
					return false, true
				}
				if !cleanName(name) {
					return false, false
				}
				u, err := readUserByUsername(dir, name)
				switch {
				case errors.Is(err, store.ErrNotFound):
					return false, true
				case err != nil:
					return false, false // loading reports the error
				}
				return isActiveMember(u), true
			})
		}
	}
	if e.wants(atEntryUUID) {
		e.addT(atEntryUUID, store.EntryUUID(g.ID))
	}
	e.addT(atEntryDN, e.dn)
	e.addT(atStructuralObjectClass, "groupOfNames")
	e.addT(atHasSubordinates, "FALSE")
	e.addTimes(g.CreatedAt, g.UpdatedAt)
	return e
}
