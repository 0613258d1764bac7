package fakegoogle

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/gatewayd/gatewayd/internal/fakehttp"
)

// userResourceFields are the fields of the Admin SDK User resource
// (admin#directory#user). A body with any other top-level field is
// refused with 400, as Google refuses unknown JSON names.
var userResourceFields = map[string]bool{
	"addresses": true, "agreedToTerms": true, "aliases": true, "archived": true, "changePasswordAtNextLogin": true,
	"creationTime": true, "customSchemas": true, "customerId": true, "deletionTime": true, "emails": true, "etag": true,
	"externalIds": true, "gender": true, "guestAccountInfo": true, "hashFunction": true, "id": true, "ims": true,
	"includeInGlobalAddressList": true, "ipWhitelisted": true, "isAdmin": true, "isDelegatedAdmin": true,
	"isEnforcedIn2Sv": true, "isEnrolledIn2Sv": true, "isGuestUser": true, "isMailboxSetup": true, "keywords": true,
	"kind": true, "languages": true, "lastLoginTime": true, "locations": true, "name": true, "nonEditableAliases": true,
	"notes": true, "orgUnitPath": true, "organizations": true, "password": true, "phones": true, "posixAccounts": true,
	"primaryEmail": true, "recoveryEmail": true, "recoveryPhone": true, "relations": true, "sshPublicKeys": true,
	"suspended": true, "suspensionReason": true, "thumbnailPhotoEtag": true, "thumbnailPhotoUrl": true, "websites": true,
}

// repeated describes the repeated fields the fake checks entry by entry:
// the keys an entry may have, and the types "type" takes ("custom" needs
// customType). nil types: any string.
var repeated = map[string]struct {
	keys  []string
	types []string
}{
	"organizations": {keys: []string{"name", "title", "primary", "type", "customType", "department", "symbol", "location",
		"description", "domain", "costCenter", "fullTimeEquivalent"},
		types: []string{"unknown", "school", "work", "domain_only", "custom"}},
	"phones": {keys: []string{"value", "primary", "type", "customType"},
		types: []string{"custom", "home", "work", "other", "home_fax", "work_fax", "mobile", "pager", "other_fax",
			"company_main", "assistant", "car", "radio", "isdn", "callback", "telex", "tty_tdd",
			"work_mobile", "work_pager", "main", "grand_central"}},
	"addresses": {keys: []string{"type", "customType", "sourceIsStructured", "formatted", "poBox", "extendedAddress",
		"streetAddress", "locality", "region", "postalCode", "country", "primary", "countryCode"},
		types: []string{"custom", "home", "other", "work"}},
	"relations": {keys: []string{"value", "type", "customType"},
		types: []string{"admin_assistant", "assistant", "brother", "child", "custom", "domestic_partner",
			"dotted_line_manager", "exec_assistant", "father", "friend", "manager", "mother", "parent", "partner",
			"referred_by", "relative", "sister", "spouse"}},
	"externalIds": {keys: []string{"value", "type", "customType"},
		types: []string{"account", "custom", "customer", "login_id", "network", "organization", "other"}},
	"locations": {keys: []string{"type", "customType", "area", "buildingId", "floorName", "floorSection", "deskCode"},
		types: []string{"default", "desk", "custom"}},
}

func invalidInput(what string) *fakehttp.Response {
	return errResp(http.StatusBadRequest, "invalid", "Invalid Input: "+what)
}

func unknownName(name, at string) *fakehttp.Response {
	return errResp(http.StatusBadRequest, "invalid",
		fmt.Sprintf("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", name, at))
}

// checkFields validates a user body's fields in the documented shapes
// and applies RefuseField. mu held.
func (s *Server) checkFields(m map[string]any) *fakehttp.Response {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad field is named, deterministically
	for _, k := range keys {
		if !userResourceFields[k] {
			return unknownName(k, "user")
		}
		v := m[k]
		if named, ok := s.refusedFields[k]; ok && v != nil {
			return refusedResp(k, named)
		}
		spec, ok := repeated[k]
		if !ok || v == nil {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			return invalidInput(k)
		}
		for i, e := range list {
			entry, ok := e.(map[string]any)
			if !ok {
				return invalidInput(fmt.Sprintf("%s[%d]", k, i))
			}
			for ek, ev := range entry {
				if !slices.Contains(spec.keys, ek) {
					return unknownName(ek, fmt.Sprintf("user.%s[%d]", k, i))
				}
				if named, ok := s.refusedFields[k+"."+ek]; ok {
					return refusedResp(k+"."+ek, named)
				}
				if ek == "primary" || ek == "sourceIsStructured" {
					if _, ok := ev.(bool); !ok {
						return invalidInput(fmt.Sprintf("%s[%d].%s", k, i, ek))
					}
				} else if _, ok := ev.(string); !ok && ek != "fullTimeEquivalent" {
					return invalidInput(fmt.Sprintf("%s[%d].%s", k, i, ek))
				}
			}
			typ, _ := entry["type"].(string)
			if named, ok := s.refusedFields[k+"."+typ]; ok && typ != "" {
				return refusedResp(k+"."+typ, named)
			}
			switch {
			case typ == "" && k != "organizations" && k != "locations":
				return invalidInput(fmt.Sprintf("%s[%d].type", k, i))
			case typ != "" && !slices.Contains(spec.types, typ):
				return invalidInput(fmt.Sprintf("%s[%d].type", k, i))
			case typ == "custom" && entry["customType"] == nil:
				return invalidInput(fmt.Sprintf("%s[%d].customType", k, i))
			}
			if k == "phones" || k == "relations" || k == "externalIds" {
				if v, _ := entry["value"].(string); strings.TrimSpace(v) == "" {
					return invalidInput(fmt.Sprintf("%s[%d].value", k, i))
				}
			}
		}
	}
	return nil
}

func refusedResp(field string, named bool) *fakehttp.Response {
	if named {
		return invalidInput(field)
	}
	return errResp(http.StatusBadRequest, "invalid", "Invalid Input")
}

// RefuseField makes every insert or patch of a user carrying field
// answer 400 invalid, as Google does for a value its rules refuse. field
// is a top-level field ("relations"), an entry key ("organizations.title")
// or an entry type ("phones.mobile", "relations.manager"). named true
// words it "Invalid Input: <field>"; false just "Invalid Input".
func (s *Server) RefuseField(field string, named bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refusedFields == nil {
		s.refusedFields = map[string]bool{}
	}
	s.refusedFields[field] = named
}

// AcceptField undoes RefuseField.
func (s *Server) AcceptField(field string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refusedFields, field)
}

// entries is a repeated field of u as decoded JSON objects.
func (u User) entries(field string) []map[string]any {
	list, _ := u.Fields[field].([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// Organization is u's primary organization entry (or its first), nil if
// it has none: title, department, name, description, location, ...
func (u User) Organization() map[string]any {
	es := u.entries("organizations")
	for _, e := range es {
		if p, _ := e["primary"].(bool); p {
			return e
		}
	}
	if len(es) > 0 {
		return es[0]
	}
	return nil
}

// typedValue is the "value" (or "formatted", for addresses) of u's
// first entry of field with this type, "" if none.
func (u User) typedValue(field, typ, key string) string {
	for _, e := range u.entries(field) {
		if t, _ := e["type"].(string); t == typ {
			v, _ := e[key].(string)
			return v
		}
	}
	return ""
}

// Phone is the value of u's phone of type typ ("work", "mobile").
func (u User) Phone(typ string) string { return u.typedValue("phones", typ, "value") }

// Address is the formatted address of u's address of type typ ("work").
func (u User) Address(typ string) string { return u.typedValue("addresses", typ, "formatted") }

// Relation is the value of u's relation of type typ: for "manager", the
// manager's email.
func (u User) Relation(typ string) string { return u.typedValue("relations", typ, "value") }

// ExternalID is the value of u's external id of type typ.
func (u User) ExternalID(typ string) string { return u.typedValue("externalIds", typ, "value") }
