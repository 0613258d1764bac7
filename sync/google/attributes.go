package google

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	admin "google.golang.org/api/admin/directory/v1"
	"google.golang.org/api/googleapi"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// ManagerProperty is the manager reference in Google: a relations entry
// of type "manager" whose value is the manager's primary email.
const ManagerProperty = "relations.manager"

// DefaultAttributes is the mapping of a [[directory]] block of type
// "google": gateway attribute → Admin SDK User field, written
// <field>.<key> (sync/README.md, "Attributes").
func DefaultAttributes() map[string]string {
	return map[string]string{
		gsync.AttrTitle:           "organizations.title",
		gsync.AttrDepartment:      "organizations.department",
		gsync.AttrCompany:         "organizations.name",
		gsync.AttrLocation:        "organizations.location",
		gsync.AttrEmployeeType:    "organizations.description", // the Admin console's "Type of employee"
		gsync.AttrTelephoneNumber: "phones.work",
		gsync.AttrMobile:          "phones.mobile",
		gsync.AttrPostalAddress:   "addresses.work",
		gsync.AttrManager:         ManagerProperty,
	}
}

// AttributeRules are the mapping rules of type "google".
func AttributeRules() gsync.AttributeRules {
	return gsync.AttributeRules{Defaults: DefaultAttributes(), ManagerProperty: ManagerProperty, CheckProperty: checkProperty}
}

// The remote properties the connector writes. A repeated field
// (organizations, phones, addresses, externalIds, relations) is sent as a
// whole, built from every mapped property of it that has a value: one
// primary "work" organization; one phone, address, external id or
// relation per type.
var (
	orgFields = map[string]func(*orgEntry, string){
		"title":       func(o *orgEntry, v string) { o.Title = v },
		"department":  func(o *orgEntry, v string) { o.Department = v },
		"name":        func(o *orgEntry, v string) { o.Name = v },
		"description": func(o *orgEntry, v string) { o.Description = v },
		"costCenter":  func(o *orgEntry, v string) { o.CostCenter = v },
		"location":    func(o *orgEntry, v string) { o.Location = v },
		"symbol":      func(o *orgEntry, v string) { o.Symbol = v },
		"domain":      func(o *orgEntry, v string) { o.Domain = v },
	}
	// typed lists the types each typed repeated field takes (Admin SDK
	// User resource); the first listed is the primary when present.
	typed = map[string][]string{
		"phones": {"work", "mobile", "home", "work_mobile", "work_fax", "home_fax", "mobile_fax", "other_fax", "main",
			"company_main", "assistant", "pager", "work_pager", "car", "radio", "callback", "isdn", "telex", "tty_tdd",
			"grand_central", "other"},
		"addresses":   {"work", "home", "other"},
		"externalIds": {"organization", "account", "customer", "network", "login_id", "other"},
		"relations": {"manager", "dotted_line_manager", "assistant", "admin_assistant", "exec_assistant", "referred_by",
			"partner", "spouse", "domestic_partner", "child", "parent", "mother", "father", "brother", "sister", "friend", "relative"},
	}
	customSchemaRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_]{0,99})\.([A-Za-z][A-Za-z0-9_]{0,99})$`)
)

// builtinFields are the User fields a custom schema name must not shadow.
var builtinFields = map[string]bool{"organizations": true, "phones": true, "addresses": true, "externalIds": true,
	"relations": true, "locations": true, "emails": true, "ims": true, "websites": true, "keywords": true,
	"languages": true, "posixAccounts": true, "sshPublicKeys": true, "name": true, "customSchemas": true}

// group is the User field a remote property writes: "organizations",
// "phones", ..., "orgUnitPath", or "customSchemas.<schema>"; "" for a
// property the connector does not write.
func group(p string) string {
	if p == "orgUnitPath" {
		return p
	}
	field, key, ok := strings.Cut(p, ".")
	if !ok {
		return ""
	}
	if field == "organizations" {
		if orgFields[key] != nil {
			return field
		}
		return ""
	}
	if types, ok := typed[field]; ok {
		if slices.Contains(types, key) {
			return field
		}
		return ""
	}
	if !builtinFields[field] && customSchemaRE.MatchString(p) {
		return "customSchemas." + field
	}
	return ""
}

func checkProperty(p string) error {
	if group(p) == "" {
		return fmt.Errorf("%q is not a Google user field the gateway writes (organizations.<title|department|name|description|costCenter|location|symbol|domain>, "+
			"phones.<type>, addresses.<type>, externalIds.<type>, relations.<type>, orgUnitPath, or <CustomSchema>.<field>)", p)
	}
	return nil
}

type orgEntry struct {
	Title       string `json:"title,omitempty"`
	Department  string `json:"department,omitempty"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	CostCenter  string `json:"costCenter,omitempty"`
	Location    string `json:"location,omitempty"`
	Symbol      string `json:"symbol,omitempty"`
	Domain      string `json:"domain,omitempty"`
	Primary     bool   `json:"primary"`
	Type        string `json:"type,omitempty"`
}

type phoneEntry struct {
	Type    string `json:"type"`
	Value   string `json:"value"`
	Primary bool   `json:"primary,omitempty"`
}

type addrEntry struct {
	Type      string `json:"type"`
	Formatted string `json:"formatted"`
	Primary   bool   `json:"primary,omitempty"`
}

type typedEntry struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// attrWrite is what one write carries: values by remote property (the
// manager's under ManagerProperty) and, on update, properties to clear.
type attrWrite struct {
	vals  map[string]string
	clear map[string]bool
}

// newAttrWrite reads a's attributes and manager. Properties the
// connector does not write are refused without a call.
func newAttrWrite(a gsync.Account, update bool) (attrWrite, []gsync.AttributeError) {
	w := attrWrite{vals: map[string]string{}, clear: map[string]bool{}}
	var refused []gsync.AttributeError
	add := func(p, v string) {
		if err := checkProperty(p); err != nil {
			refused = append(refused, gsync.AttributeError{Name: p, Message: "not sent: " + err.Error()})
			return
		}
		if p == "orgUnitPath" && v != "" && !strings.HasPrefix(v, "/") {
			refused = append(refused, gsync.AttributeError{Name: p, Message: fmt.Sprintf("not sent: %q is not an organizational unit path (it starts with /)", v)})
			return
		}
		switch {
		case v != "":
			w.vals[p] = v
		case update:
			w.clear[p] = true
		}
	}
	for _, p := range slices.Sorted(maps.Keys(a.Attributes)) {
		if p == ManagerProperty {
			refused = append(refused, gsync.AttributeError{Name: p, Message: "not sent: the manager reference comes from the manager attribute"})
			continue
		}
		add(p, strings.TrimSpace(a.Attributes[p]))
	}
	if update {
		for _, p := range a.Clear {
			if _, ok := a.Attributes[p]; !ok && p != ManagerProperty {
				add(p, "")
			}
		}
	}
	switch {
	case a.ManagerUPN != "":
		w.vals[ManagerProperty] = a.ManagerUPN
	case a.ClearManager && update:
		w.clear[ManagerProperty] = true
	}
	return w, refused
}

func (w attrWrite) empty() bool { return len(w.vals) == 0 && len(w.clear) == 0 }

func (w attrWrite) props() []string {
	out := slices.Collect(maps.Keys(w.vals))
	for p := range w.clear {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// groups are the fields the write touches, sorted.
func (w attrWrite) groups() []string {
	seen := map[string]bool{}
	for _, p := range w.props() {
		seen[group(p)] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// only keeps the properties of one field.
func (w attrWrite) only(g string) attrWrite {
	out := attrWrite{vals: map[string]string{}, clear: map[string]bool{}}
	for p, v := range w.vals {
		if group(p) == g {
			out.vals[p] = v
		}
	}
	for p := range w.clear {
		if group(p) == g {
			out.clear[p] = true
		}
	}
	return out
}

// without drops properties.
func (w attrWrite) without(props []string) attrWrite {
	out := attrWrite{vals: maps.Clone(w.vals), clear: maps.Clone(w.clear)}
	for _, p := range props {
		delete(out.vals, p)
		delete(out.clear, p)
	}
	return out
}

// apply writes the fields into u. A field with values is sent whole; a
// field with only properties to clear is sent empty ([]), which clears it.
func (w attrWrite) apply(u *admin.User) {
	touched := func(field string) (vals map[string]string, clearing bool) {
		vals = map[string]string{}
		for p, v := range w.vals {
			if group(p) == field {
				_, key, _ := strings.Cut(p, ".")
				vals[key] = v
			}
		}
		for p := range w.clear {
			if group(p) == field {
				clearing = true
			}
		}
		return vals, clearing
	}
	if vals, clearing := touched("organizations"); len(vals) > 0 {
		o := orgEntry{Primary: true, Type: "work"}
		for k, v := range vals {
			orgFields[k](&o, v)
		}
		u.Organizations = []orgEntry{o}
	} else if clearing {
		u.Organizations = []orgEntry{}
	}
	if vals, clearing := touched("phones"); len(vals) > 0 {
		var es []phoneEntry
		for _, t := range typed["phones"] {
			if v, ok := vals[t]; ok {
				es = append(es, phoneEntry{Type: t, Value: v, Primary: len(es) == 0})
			}
		}
		u.Phones = es
	} else if clearing {
		u.Phones = []phoneEntry{}
	}
	if vals, clearing := touched("addresses"); len(vals) > 0 {
		var es []addrEntry
		for _, t := range typed["addresses"] {
			if v, ok := vals[t]; ok {
				es = append(es, addrEntry{Type: t, Formatted: v, Primary: len(es) == 0})
			}
		}
		u.Addresses = es
	} else if clearing {
		u.Addresses = []addrEntry{}
	}
	for _, field := range []string{"externalIds", "relations"} {
		vals, clearing := touched(field)
		var es []typedEntry
		for _, t := range typed[field] {
			if v, ok := vals[t]; ok {
				es = append(es, typedEntry{Type: t, Value: v})
			}
		}
		if len(es) == 0 && !clearing {
			continue
		}
		if es == nil {
			es = []typedEntry{}
		}
		if field == "externalIds" {
			u.ExternalIds = es
		} else {
			u.Relations = es
		}
	}
	if v := w.vals["orgUnitPath"]; v != "" {
		u.OrgUnitPath = v
	}
	custom := map[string]map[string]any{}
	for _, p := range w.props() {
		g := group(p)
		schema, ok := strings.CutPrefix(g, "customSchemas.")
		if !ok {
			continue
		}
		_, field, _ := strings.Cut(p, ".")
		if custom[schema] == nil {
			custom[schema] = map[string]any{}
		}
		if v, ok := w.vals[p]; ok {
			custom[schema][field] = v
		} else {
			custom[schema][field] = nil
		}
	}
	for schema, fields := range custom {
		b, err := json.Marshal(fields)
		if err != nil {
			continue
		}
		if u.CustomSchemas == nil {
			u.CustomSchemas = map[string]googleapi.RawMessage{}
		}
		u.CustomSchemas[schema] = b
	}
}

// refusedProps tells whether a failed write was Google refusing some of
// the attributes sent (a 400 about none of the account's own fields) and
// which: the property or field the message names, or nil when it names
// none, so the fields must be tried one at a time.
func refusedProps(err error, w attrWrite) ([]string, string, bool) {
	var ge *googleapi.Error
	if w.empty() || !errors.As(err, &ge) || ge.Code != http.StatusBadRequest {
		return nil, "", false
	}
	said := firstLine(ge.Message)
	if said == "" && len(ge.Errors) > 0 {
		said = firstLine(ge.Errors[0].Message)
	}
	lower := strings.ToLower(said)
	// A property named, the longest first ("organizations.description"
	// before a schema or field name it contains).
	byLen := w.props()
	sort.SliceStable(byLen, func(i, j int) bool { return len(byLen[i]) > len(byLen[j]) })
	for _, p := range byLen {
		if strings.Contains(lower, strings.ToLower(p)) {
			return []string{p}, said, true
		}
	}
	for _, s := range []string{"password", "given/family name", "givenname", "familyname", "domain not found",
		"primary_user_email", "customer"} {
		if strings.Contains(lower, s) {
			return nil, said, false
		}
	}
	for _, g := range w.groups() {
		name := strings.TrimPrefix(g, "customSchemas.")
		if strings.Contains(lower, strings.ToLower(name)) {
			return w.only(g).props(), said, true
		}
	}
	return nil, said, true
}

func refusedError(refused []gsync.AttributeError) error {
	if len(refused) == 0 {
		return nil
	}
	return &gsync.AttributesRefused{Refused: refused}
}
