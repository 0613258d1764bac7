package sync

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/store"
)

// The gateway's attribute names (SPEC 2.1): the keys of store.User's
// Attributes that mean something to the gateway. Every other key is
// free-form, and reaches a directory only if its mapping names it.
const (
	AttrTitle           = "title"
	AttrDepartment      = "department"
	AttrCompany         = "company"
	AttrLocation        = "location"
	AttrEmployeeType    = "employeeType"
	AttrTelephoneNumber = "telephoneNumber"
	AttrMobile          = "mobile"
	AttrPostalAddress   = "postalAddress"
	// AttrManager holds the manager's gateway username. The engine
	// resolves it to the manager's account in each directory and passes
	// it as Account.ManagerID / ManagerUPN, never as a property.
	AttrManager = "manager"

	// Gateway-only: used by the LDAP door and AD delegation, never sent
	// to a directory whatever the mapping says.
	AttrLoginShell    = "loginShell"
	AttrHomeDirectory = "homeDirectory"
	AttrADDomain      = "ad_domain"
)

// StandardAttributes are the attributes every directory type maps by
// default (see its DefaultAttributes).
var StandardAttributes = []string{AttrTitle, AttrDepartment, AttrCompany, AttrLocation, AttrEmployeeType,
	AttrTelephoneNumber, AttrMobile, AttrPostalAddress, AttrManager}

var gatewayOnly = map[string]bool{AttrLoginShell: true, AttrHomeDirectory: true, AttrADDomain: true}

// GatewayOnly reports whether a gateway attribute is never sent to a
// directory (loginShell, homeDirectory, ad_domain).
func GatewayOnly(name string) bool { return gatewayOnly[name] }

// AttributeRules is what a directory type says about the attributes
// mapping of its blocks; its Defaults passes them to SetAttributeRules.
type AttributeRules struct {
	// Defaults maps gateway attribute names to the type's remote
	// properties; a block's attributes table is decoded over it.
	Defaults map[string]string
	// ManagerProperty is the remote property that holds the manager
	// reference ("manager" in Graph, "relations.manager" in Google);
	// only AttrManager may map to it. Empty: the type has none.
	ManagerProperty string
	// CheckProperty, when set, says why a remote property cannot be
	// mapped (nil when it can).
	CheckProperty func(remote string) error
}

// SetAttributeRules installs a type's mapping rules and defaults. Each
// block gets its own copy of the defaults: the file's attributes table is
// decoded into it, so a key the file sets overrides that entry only.
func (c *DirectoryCommon) SetAttributeRules(r AttributeRules) {
	c.Attributes = maps.Clone(r.Defaults)
	if c.Attributes == nil {
		c.Attributes = map[string]string{}
	}
	c.attrRules = &r
}

// remotePropertyRE is the shape of a remote property name: Graph's
// (jobTitle, extension_<app>_<name>) and Google's dotted paths
// (organizations.title, Schema.field).
var remotePropertyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$`)

// validateAttributes checks the attributes table of one block.
func (c *DirectoryCommon) validateAttributes(label string) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, config.Errorf("attributes", "%s: %s", label, fmt.Sprintf(format, a...)))
	}
	var rules AttributeRules
	if c.attrRules != nil {
		rules = *c.attrRules
	}
	names := slices.Sorted(maps.Keys(c.Attributes))
	byRemote := map[string]string{}
	for _, name := range names {
		remote := c.Attributes[name]
		switch {
		case strings.TrimSpace(name) == "":
			bad("an attribute name must not be empty")
			continue
		case remote == "":
			continue // dropped: not sent
		case GatewayOnly(name):
			bad("%s is a gateway-only attribute (LDAP and AD delegation use it) and is never sent to a directory: remove it from the table", name)
			continue
		case name == AttrManager && rules.ManagerProperty == "":
			bad("this directory type has no manager reference; map manager to \"\"")
			continue
		case name == AttrManager && remote != rules.ManagerProperty:
			bad("manager is the manager's username and maps only to the manager reference %q (or to \"\" to drop it), not %q", rules.ManagerProperty, remote)
			continue
		case name != AttrManager && rules.ManagerProperty != "" && remote == rules.ManagerProperty:
			bad("%s: %q is the manager reference; only manager maps to it", name, remote)
			continue
		case !remotePropertyRE.MatchString(remote):
			bad("%s: %q is not a property name", name, remote)
			continue
		}
		if name != AttrManager && rules.CheckProperty != nil {
			if err := rules.CheckProperty(remote); err != nil {
				bad("%s: %v", name, err)
				continue
			}
		}
		if other, dup := byRemote[remote]; dup {
			bad("%s and %s both map to %q; one remote property takes one attribute", other, name, remote)
			continue
		}
		byRemote[remote] = name
	}
	return errors.Join(errs...)
}

// AttributeError is one attribute a directory refused: the account was
// created or updated without it.
type AttributeError struct {
	// Name is the remote property (as in Account.Attributes), or the
	// type's manager property for the manager reference.
	Name string
	// Message is what the directory said.
	Message string
}

// AttributesRefused is the error a connector's CreateUser or UpdateUser
// returns when everything was applied except some attributes. CreateUser
// returns the created account along with it. The engine takes it for a
// success, records the refusals and does not send a refused value again.
type AttributesRefused struct {
	Refused []AttributeError
}

func (e *AttributesRefused) Error() string {
	parts := make([]string, len(e.Refused))
	for i, r := range e.Refused {
		parts[i] = fmt.Sprintf("%s: %s", r.Name, r.Message)
	}
	return "attributes refused by the directory: " + strings.Join(parts, "; ")
}

// Refusals returns the attributes err refused and the rest of the error:
// nil for an *AttributesRefused (a partial success), err otherwise.
func Refusals(err error) ([]AttributeError, error) {
	var ar *AttributesRefused
	if errors.As(err, &ar) {
		return ar.Refused, nil
	}
	return nil, err
}

// ---- engine side ----------------------------------------------------------------

// applied is what the engine records of the attributes it last pushed to
// an account, kept in SyncState.AppliedHash as
// "<hash>[;s=<prop>,...][;r=<prop>:<value hash>,...]":
//   - hash: of the account as sent, so an unchanged user makes no call;
//   - s: the remote properties the gateway set, the only ones it clears
//     when their attribute goes (a takeover never clears the account's
//     own values);
//   - r: properties the directory refused, with the refused value's
//     hash: not sent again until the value changes.
type applied struct {
	hash    string
	set     map[string]bool
	refused map[string]string
}

func parseApplied(s string) applied {
	a := applied{set: map[string]bool{}, refused: map[string]string{}}
	parts := strings.Split(s, ";")
	a.hash = parts[0]
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		for _, item := range strings.Split(v, ",") {
			if item == "" {
				continue
			}
			switch k {
			case "s":
				if name, err := url.QueryUnescape(item); err == nil {
					a.set[name] = true
				}
			case "r":
				n, h, _ := strings.Cut(item, ":")
				if name, err := url.QueryUnescape(n); err == nil {
					a.refused[name] = h
				}
			}
		}
	}
	return a
}

func (a applied) encode() string {
	var b strings.Builder
	b.WriteString(a.hash)
	if len(a.set) > 0 {
		b.WriteString(";s=")
		for i, p := range slices.Sorted(maps.Keys(a.set)) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(url.QueryEscape(p))
		}
	}
	if len(a.refused) > 0 {
		b.WriteString(";r=")
		for i, p := range slices.Sorted(maps.Keys(a.refused)) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(url.QueryEscape(p) + ":" + a.refused[p])
		}
	}
	return b.String()
}

func valueHash(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:6])
}

// attrPlan is what a directory's mapping makes of one user.
type attrPlan struct {
	// want is every mapped property with a value, before refused ones
	// are left out; the manager property holds the manager's remote id.
	want map[string]string
	// skipped: refused before with the same value, so not sent.
	skipped map[string]bool
	// gateway maps each mapped remote property to its gateway name.
	gateway     map[string]string
	managerProp string
	notes       []string
}

// mapAttributes fills a's attributes and manager from u through d's
// mapping (SPEC 4.2). Gateway-only attributes never reach a; a value the
// directory refused before is left out until it changes; a property the
// gateway set before and that has no value now is listed to be cleared.
func (e *Engine) mapAttributes(d *Directory, u *store.User, a *Account, rec applied) attrPlan {
	p := attrPlan{want: map[string]string{}, skipped: map[string]bool{}, gateway: map[string]string{}}
	for _, name := range slices.Sorted(maps.Keys(d.Attributes)) {
		remote := d.Attributes[name]
		if remote == "" || GatewayOnly(name) {
			continue
		}
		p.gateway[remote] = name
		if name == AttrManager {
			p.managerProp = remote
			continue
		}
		v := strings.TrimSpace(u.Attributes[name])
		if v == "" {
			if rec.set[remote] {
				a.Clear = append(a.Clear, remote)
			}
			continue
		}
		p.want[remote] = v
		if h, ok := rec.refused[remote]; ok && h == valueHash(v) {
			p.skipped[remote] = true
			p.notes = append(p.notes, fmt.Sprintf("attribute %s refused by the directory; not sent again until it changes", name))
			continue
		}
		if a.Attributes == nil {
			a.Attributes = map[string]string{}
		}
		a.Attributes[remote] = v
	}
	if mp := p.managerProp; mp != "" {
		if mgr := strings.TrimSpace(u.Attributes[AttrManager]); mgr != "" {
			id, upn, why := e.resolveManager(d, u, mgr)
			switch {
			case why != "":
				p.notes = append(p.notes, "manager not set: "+why)
			case rec.refused[mp] == valueHash(id):
				p.want[mp] = id
				p.skipped[mp] = true
				p.notes = append(p.notes, fmt.Sprintf("manager %s refused by the directory; not sent again until it changes", mgr))
			default:
				p.want[mp] = id
				a.ManagerID, a.ManagerUPN = id, upn
			}
		}
		if a.ManagerID == "" && !p.skipped[mp] && rec.set[mp] {
			a.ClearManager = true
		}
	}
	sort.Strings(a.Clear)
	return p
}

// resolveManager finds the account of u's manager (a gateway username) in
// d: its remote id and principal name. why says, when it cannot, what is
// missing; the manager is then left out and the user reconciled again
// once the manager's account exists (see enqueueReports).
func (e *Engine) resolveManager(d *Directory, u *store.User, username string) (id, upn, why string) {
	if strings.EqualFold(username, u.Username) {
		return "", "", fmt.Sprintf("%s is the user's own username", username)
	}
	m, err := e.st.UserByUsername(username)
	if err != nil {
		return "", "", fmt.Sprintf("no gateway user %q", username)
	}
	st, err := e.st.SyncStateOf(d.Name, m.ID)
	if err != nil || !st.Provisioned || st.RemoteID == "" {
		return "", "", fmt.Sprintf("%s has no account in directory %q yet", m.Username, d.Name)
	}
	upn, err = PrincipalName(m.Email, d.Domains, d.DefaultDomain)
	if err != nil {
		return "", "", fmt.Sprintf("%s has no principal name in directory %q: %v", m.Username, d.Name, err)
	}
	return st.RemoteID, upn, ""
}

// next is the record after a's attributes were pushed and the directory
// refused those in refused.
func (rec applied) next(p attrPlan, a Account, refused []AttributeError) applied {
	out := applied{set: map[string]bool{}, refused: map[string]string{}}
	now := map[string]bool{}
	for _, r := range refused {
		now[r.Name] = true
	}
	for prop := range rec.set {
		if p.gateway[prop] != "" {
			out.set[prop] = true // still mapped; kept unless cleared below
		}
	}
	for prop := range a.Attributes {
		if !now[prop] {
			out.set[prop] = true
		}
	}
	for _, prop := range a.Clear {
		if !now[prop] {
			delete(out.set, prop)
		}
	}
	if mp := p.managerProp; mp != "" && !now[mp] {
		if a.ManagerID != "" {
			out.set[mp] = true
		} else if a.ClearManager {
			delete(out.set, mp)
		}
	}
	for prop := range p.skipped {
		out.refused[prop] = rec.refused[prop]
	}
	sent := a
	sent.Attributes = maps.Clone(a.Attributes)
	for prop := range now {
		if v, ok := p.want[prop]; ok {
			out.refused[prop] = valueHash(v)
		}
		delete(sent.Attributes, prop)
		if prop == p.managerProp {
			sent.ManagerID, sent.ManagerUPN = "", ""
		}
	}
	out.hash = attrHash(sent)
	return out
}

// reportRefused records one failed user_update_provision event per
// refused attribute, naming it and what the directory said; the account
// itself stays as provisioned.
func (e *Engine) reportRefused(d *Directory, u *store.User, st *store.SyncState, p attrPlan, refused []AttributeError) {
	for _, r := range refused {
		name := p.gateway[r.Name]
		if name == "" {
			name = r.Name
		}
		detail := fmt.Sprintf("attribute %s (%s) refused by the directory: %s; the account is provisioned without it, and it is not sent again until its value changes",
			name, r.Name, r.Message)
		e.emit(d, u, st, store.EventUserUpdateProvisionFailed, store.OutcomeFailure, detail)
		addNote(st, fmt.Sprintf("attribute %s refused: %s", name, r.Message))
	}
}

// addNote appends a note to the pair's LastError (skips, refusals).
func addNote(st *store.SyncState, note string) {
	if st.LastError == "" {
		st.LastError = note
		return
	}
	st.LastError += "; " + note
}

// ---- who reports to whom ----------------------------------------------------------

// managerIndex maps a manager's lower-case username to the ids of the
// users whose manager attribute names it, so a manager's new account
// re-reconciles their reports without a scan of every user. It is built
// at Run and kept up to date from store changes; a stale entry only
// costs an extra reconcile.
type managerIndex struct {
	by map[string]map[string]bool
}

func (x *managerIndex) set(before, after *store.User) {
	if before != nil {
		if m := managerKey(before); m != "" {
			delete(x.by[m], before.ID)
			if len(x.by[m]) == 0 {
				delete(x.by, m)
			}
		}
	}
	if after != nil {
		if m := managerKey(after); m != "" {
			if x.by == nil {
				x.by = map[string]map[string]bool{}
			}
			if x.by[m] == nil {
				x.by[m] = map[string]bool{}
			}
			x.by[m][after.ID] = true
		}
	}
}

func (x *managerIndex) reports(username string) []string {
	return slices.Collect(maps.Keys(x.by[strings.ToLower(username)]))
}

func managerKey(u *store.User) string {
	return strings.ToLower(strings.TrimSpace(u.Attributes[AttrManager]))
}

// indexManagers builds the manager index from every user.
func (e *Engine) indexManagers() {
	after := ""
	for {
		users, next, err := e.st.ListUsers(after, 1000)
		if err != nil {
			e.log.Error("sync: listing users for the manager index", "err", err)
			return
		}
		e.mgrMu.Lock()
		for _, u := range users {
			e.mgrs.set(nil, u)
		}
		e.mgrMu.Unlock()
		if next == "" {
			return
		}
		after = next
	}
}

// enqueueReports reconciles, in dir, the users whose manager is username:
// the manager's account there was just created, changed or lost.
func (e *Engine) enqueueReports(dir, username string) {
	d := e.directories()[dir]
	if d == nil || d.Attributes[AttrManager] == "" || username == "" {
		return
	}
	e.mgrMu.Lock()
	ids := e.mgrs.reports(username)
	e.mgrMu.Unlock()
	for _, id := range ids {
		e.enqueue(pairKey{dir: dir, id: id}, pending{trig: trigChange})
	}
}
