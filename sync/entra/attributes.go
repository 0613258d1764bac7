package entra

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// ManagerProperty is the manager reference in Graph: a relationship set
// with PUT /users/{id}/manager/$ref, not a property of the user.
const ManagerProperty = "manager"

// DefaultAttributes is the mapping of a [[directory]] block of type
// "entra": gateway attribute → Graph user property (sync/README.md,
// "Attributes").
func DefaultAttributes() map[string]string {
	return map[string]string{
		gsync.AttrTitle:           "jobTitle",
		gsync.AttrDepartment:      "department",
		gsync.AttrCompany:         "companyName",
		gsync.AttrLocation:        "officeLocation",
		gsync.AttrEmployeeType:    "employeeType",
		gsync.AttrTelephoneNumber: "businessPhones",
		gsync.AttrMobile:          "mobilePhone",
		gsync.AttrPostalAddress:   "streetAddress",
		gsync.AttrManager:         ManagerProperty,
	}
}

// AttributeRules are the mapping rules of type "entra".
func AttributeRules() gsync.AttributeRules {
	return gsync.AttributeRules{Defaults: DefaultAttributes(), ManagerProperty: ManagerProperty, CheckProperty: checkProperty}
}

func checkProperty(p string) error {
	if why, ok := reservedAttrs[p]; ok {
		return fmt.Errorf("%q cannot be mapped: %s", p, why)
	}
	if !attrNameRE.MatchString(p) {
		return fmt.Errorf("%q is not a Graph property name", p)
	}
	return nil
}

var attrNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,119}$`)

// reservedAttrs are set from Account's own fields, by another method, or
// not at all through mapping.
var reservedAttrs = map[string]string{
	"id":                "it is Entra's object id",
	"accountEnabled":    "sign-in is blocked and unblocked by the gateway's state",
	"passwordProfile":   "passwords are pushed by password takeover",
	"passwordPolicies":  "password policies are not managed by the gateway",
	"userPrincipalName": "it comes from the user's email (UPN rule)",
	"mailNickname":      "it comes from the user's username",
	"displayName":       "it comes from the user's display name",
	"givenName":         "it comes from the user's first name",
	"surname":           "it comes from the user's last name",
	"manager":           "manager is a relationship, set from the gateway's manager attribute",
}

// attributeFields turns a's attributes into Graph properties in their
// wire shape (businessPhones is a collection: one entry). Names Graph
// cannot take are refused without a call. On update an empty value, and
// every property in a.Clear, is sent as null ([] for businessPhones); on
// create they are left out.
func attributeFields(a gsync.Account, update bool) (map[string]any, []gsync.AttributeError) {
	fields := map[string]any{}
	var refused []gsync.AttributeError
	set := func(k, v string) {
		if err := checkProperty(k); err != nil {
			refused = append(refused, gsync.AttributeError{Name: k, Message: "not sent: " + err.Error()})
			return
		}
		switch {
		case k == "businessPhones" && v == "":
			if update {
				fields[k] = []string{}
			}
		case k == "businessPhones":
			fields[k] = []string{v}
		case v == "" && update:
			fields[k] = nil
		case v == "":
		default:
			fields[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Attributes)) {
		set(k, strings.TrimSpace(a.Attributes[k]))
	}
	if update {
		for _, k := range a.Clear {
			if _, ok := a.Attributes[k]; !ok && k != ManagerProperty {
				set(k, "")
			}
		}
	}
	return fields, refused
}

var propertyRE = regexp.MustCompile(`(?i)\bproperty '([^']+)'`)

// refusedProperty tells whether a failed write was Graph refusing one of
// the attributes sent (a 400 that is about none of the account's own
// properties, its password or its name), and which: "" when Graph named
// none, so they must be tried one at a time.
func refusedProperty(status int, ge *graphError, attrs map[string]any) (string, bool) {
	if len(attrs) == 0 || status != http.StatusBadRequest {
		return "", false
	}
	msg := ge.Error.Message
	lower := strings.ToLower(msg)
	for _, s := range []string{"password", "already exists", "on-premises", "on-premise", "domain portion", "directory sync"} {
		if strings.Contains(lower, s) {
			return "", false
		}
	}
	m := propertyRE.FindStringSubmatch(msg)
	if m == nil {
		return "", true
	}
	for k := range attrs {
		if strings.EqualFold(k, m[1]) {
			return k, true
		}
	}
	return "", false // about a property of the account itself
}

// refusedError is the connector's partial success: nil when nothing was
// refused.
func refusedError(refused []gsync.AttributeError) error {
	if len(refused) == 0 {
		return nil
	}
	return &gsync.AttributesRefused{Refused: refused}
}

// writeUser sends core plus attrs with method to path (a POST /users or
// a PATCH /users/{id}); pw, when not nil, is added as the
// passwordProfile. When Graph refuses an attribute it names, the write is
// repeated without it; when it names none, the write is repeated without
// any and those are returned in rest, to be set one at a time. At most
// len(attrs)+1 calls. err is the account's own failure.
func (c *Connector) writeUser(ctx context.Context, op, method, path string, core, attrs map[string]any, pw []byte, out any) (
	refused []gsync.AttributeError, rest map[string]any, err error) {
	attrs = maps.Clone(attrs)
	for {
		fields := maps.Clone(core)
		maps.Copy(fields, attrs)
		var body []byte
		if pw != nil {
			body, err = bodyWithPassword(fields, pw)
		} else {
			body, err = jsonBody(fields)
		}
		if err != nil {
			return nil, nil, c.permanent(op, err.Error())
		}
		var status int
		var ge graphError
		_, err = c.exec(ctx, op, method, path, body, out, pw, func(s int, g *graphError) bool {
			status, ge = s, *g
			return false
		})
		wipe(body)
		if err == nil {
			return refused, rest, nil
		}
		name, ok := refusedProperty(status, &ge, attrs)
		if !ok {
			return nil, nil, err
		}
		if name == "" {
			rest, attrs = attrs, nil
			continue
		}
		refused = append(refused, gsync.AttributeError{Name: name, Message: scrub(ge.Error.Message, pw)})
		delete(attrs, name)
	}
}

// patchEach sets attributes one PATCH each, for when Graph refused a
// write without naming the property; the refused ones are returned.
func (c *Connector) patchEach(ctx context.Context, op, id string, attrs map[string]any) ([]gsync.AttributeError, error) {
	var refused []gsync.AttributeError
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		one := map[string]any{k: attrs[k]}
		body, err := jsonBody(one)
		if err != nil {
			return refused, c.permanent(op, err.Error())
		}
		var status int
		var ge graphError
		_, err = c.exec(ctx, op+" ("+k+")", http.MethodPatch, userPath(id), body, nil, nil, func(s int, g *graphError) bool {
			status, ge = s, *g
			return false
		})
		if err == nil {
			continue
		}
		if _, ok := refusedProperty(status, &ge, one); !ok {
			return refused, err
		}
		refused = append(refused, gsync.AttributeError{Name: k, Message: ge.Error.Message})
	}
	return refused, nil
}

// setManager points the user's manager reference at managerID
// (PUT /users/{id}/manager/$ref), or removes it when managerID is empty
// (DELETE, a missing reference being no error). A 400 refuses the
// manager attribute; a 404 is the manager (or the user) not replicated
// yet, which passes: transient.
func (c *Connector) setManager(ctx context.Context, id, managerID string) (*gsync.AttributeError, error) {
	path := userPath(id) + "/manager/$ref"
	var status int
	var ge graphError
	hook := func(s int, g *graphError) bool {
		status, ge = s, *g
		return false
	}
	var err error
	op := "set manager of user " + id
	if managerID == "" {
		op = "remove manager of user " + id
		_, err = c.exec(ctx, op, http.MethodDelete, path, nil, nil, nil, func(s int, g *graphError) bool {
			hook(s, g)
			return s == http.StatusNotFound && g.Error.Code != "" // no manager: done
		})
	} else {
		body, jerr := jsonBody(map[string]any{"@odata.id": c.graph + "/users/" + escapeSegment(managerID)})
		if jerr != nil {
			return nil, c.permanent(op, jerr.Error())
		}
		_, err = c.exec(ctx, op, http.MethodPut, path, body, nil, nil, hook)
	}
	switch {
	case err == nil:
		return nil, nil
	case status == http.StatusBadRequest:
		return &gsync.AttributeError{Name: ManagerProperty, Message: ge.Error.Message}, nil
	case errors.Is(err, gsync.ErrNotFound):
		return nil, &gsync.Error{Status: http.StatusNotFound, Code: ge.Error.Code, Message: fmt.Sprintf(
			"%s: directory %q: Graph does not see the manager's account %s (or the user's) yet; will retry", op, c.name, managerID)}
	}
	return nil, err
}

// applyManager sets or clears the manager reference as a asks.
func (c *Connector) applyManager(ctx context.Context, id string, a gsync.Account, refused []gsync.AttributeError) ([]gsync.AttributeError, error) {
	if a.ManagerID == "" && !a.ClearManager {
		return refused, nil
	}
	r, err := c.setManager(ctx, id, a.ManagerID)
	if err != nil {
		return refused, err
	}
	if r != nil {
		refused = append(refused, *r)
	}
	return refused, nil
}
