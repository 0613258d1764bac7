package google

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"unicode"

	admin "google.golang.org/api/admin/directory/v1"
	"google.golang.org/api/googleapi"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// maxNameRunes is Google's limit for givenName and familyName.
const maxNameRunes = 60

// userNames returns the givenName and familyName Google requires, both
// non-empty: the account's first and last name; a missing one is taken
// from the display name (first words / last word) when it has two words
// or more, else from the username (mail nickname, or the UPN's local
// part), which also stands in for both when nothing else is known.
func userNames(a gsync.Account) (given, family string) {
	given, family = cleanName(a.GivenName), cleanName(a.Surname)
	if given != "" && family != "" {
		return truncRunes(given, maxNameRunes), truncRunes(family, maxNameRunes)
	}
	words := strings.Fields(cleanName(a.DisplayName))
	user := cleanName(a.MailNickname)
	if user == "" {
		user = cleanName(localPart(a.UPN))
	}
	if user == "" {
		user = "user"
	}
	switch {
	case given == "" && family == "" && len(words) >= 2:
		given, family = strings.Join(words[:len(words)-1], " "), words[len(words)-1]
	case given == "" && family == "" && len(words) == 1:
		given, family = words[0], words[0]
	case given == "" && family == "":
		given, family = user, user
	case given == "" && len(words) >= 2 && !strings.EqualFold(words[0], family):
		given = words[0]
	case given == "":
		given = user
	case len(words) >= 2 && !strings.EqualFold(words[len(words)-1], given):
		family = words[len(words)-1]
	default:
		family = user
	}
	return truncRunes(given, maxNameRunes), truncRunes(family, maxNameRunes)
}

// cleanName drops control characters and collapses spaces.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func truncRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n]))
}

func localPart(upn string) string {
	if i := strings.LastIndexByte(upn, '@'); i >= 0 {
		return upn[:i]
	}
	return upn
}

// Attribute mapping. Account.Attributes use the gateway's (Graph-style)
// names; these map to Google user fields. A repeated Google field
// (organizations, phones, addresses, externalIds) is replaced as a whole
// by the first entry the mapped attributes describe, and only when at
// least one of its attributes is present.
var (
	orgAttrs = map[string]func(*orgEntry, string){
		"jobTitle":       func(o *orgEntry, v string) { o.Title = v },
		"department":     func(o *orgEntry, v string) { o.Department = v },
		"companyName":    func(o *orgEntry, v string) { o.Name = v },
		"employeeType":   func(o *orgEntry, v string) { o.Description = v },
		"costCenter":     func(o *orgEntry, v string) { o.CostCenter = v },
		"officeLocation": func(o *orgEntry, v string) { o.Location = v },
	}
	addrAttrs = map[string]func(*addrEntry, string){
		"streetAddress": func(a *addrEntry, v string) { a.StreetAddress = v },
		"city":          func(a *addrEntry, v string) { a.Locality = v },
		"state":         func(a *addrEntry, v string) { a.Region = v },
		"postalCode":    func(a *addrEntry, v string) { a.PostalCode = v },
		"country":       func(a *addrEntry, v string) { a.Country = v },
	}
	phoneAttrs = map[string]string{
		"businessPhones": "work",
		"mobilePhone":    "mobile",
		"faxNumber":      "work_fax",
	}
	customSchemaRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_]{0,99})\.([A-Za-z][A-Za-z0-9_]{0,99})$`)
)

// MappedAttributes lists the attribute names the connector maps to
// Google user fields (besides SchemaName.fieldName for custom schemas).
func MappedAttributes() []string {
	var out []string
	for k := range orgAttrs {
		out = append(out, k)
	}
	for k := range addrAttrs {
		out = append(out, k)
	}
	for k := range phoneAttrs {
		out = append(out, k)
	}
	out = append(out, "employeeId", "orgUnitPath")
	sort.Strings(out)
	return out
}

type orgEntry struct {
	Title       string `json:"title,omitempty"`
	Department  string `json:"department,omitempty"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	CostCenter  string `json:"costCenter,omitempty"`
	Location    string `json:"location,omitempty"`
	Primary     bool   `json:"primary"`
	Type        string `json:"type,omitempty"`
}

type addrEntry struct {
	Type          string `json:"type"`
	StreetAddress string `json:"streetAddress,omitempty"`
	Locality      string `json:"locality,omitempty"`
	Region        string `json:"region,omitempty"`
	PostalCode    string `json:"postalCode,omitempty"`
	Country       string `json:"country,omitempty"`
	Primary       bool   `json:"primary"`
}

type phoneEntry struct {
	Type    string `json:"type"`
	Value   string `json:"value"`
	Primary bool   `json:"primary,omitempty"`
}

type idEntry struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// applyAttributes sets u's fields from attrs and returns the names it
// did not map (sorted), which the caller logs: the gateway's attributes
// serve several directories and LDAP (loginShell, ...), so an unknown
// name is not an error. On update an empty value clears the field (a
// repeated field with nothing left is sent as []); on create it is
// omitted.
func applyAttributes(u *admin.User, attrs map[string]string, update bool) []string {
	var (
		org                        orgEntry
		addr                       addrEntry
		hasOrg, hasAddr, hasPhones bool
		orgSet, addrSet            bool
		phones                     []phoneEntry
		hasEmployeeID              bool
		employeeID                 string
		custom                     map[string]map[string]any
		ignored                    []string
	)
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic bodies
	for _, k := range keys {
		v := strings.TrimSpace(attrs[k])
		if set, ok := orgAttrs[k]; ok {
			hasOrg = true
			if v != "" {
				set(&org, v)
				orgSet = true
			}
			continue
		}
		if set, ok := addrAttrs[k]; ok {
			hasAddr = true
			if v != "" {
				set(&addr, v)
				addrSet = true
			}
			continue
		}
		if typ, ok := phoneAttrs[k]; ok {
			hasPhones = true
			if v != "" {
				phones = append(phones, phoneEntry{Type: typ, Value: v})
			}
			continue
		}
		switch k {
		case "employeeId":
			hasEmployeeID, employeeID = true, v
			continue
		case "orgUnitPath":
			if strings.HasPrefix(v, "/") {
				u.OrgUnitPath = v
			} else if v != "" {
				ignored = append(ignored, k)
			}
			continue
		}
		if m := customSchemaRE.FindStringSubmatch(k); m != nil {
			if custom == nil {
				custom = map[string]map[string]any{}
			}
			if custom[m[1]] == nil {
				custom[m[1]] = map[string]any{}
			}
			switch {
			case v != "":
				custom[m[1]][m[2]] = v
			case update:
				custom[m[1]][m[2]] = nil
			}
			continue
		}
		ignored = append(ignored, k)
	}
	if hasOrg && (orgSet || update) {
		if orgSet {
			org.Primary, org.Type = true, "work"
			u.Organizations = []orgEntry{org}
		} else {
			u.Organizations = []orgEntry{}
		}
	}
	if hasAddr && (addrSet || update) {
		if addrSet {
			addr.Type, addr.Primary = "work", true
			u.Addresses = []addrEntry{addr}
		} else {
			u.Addresses = []addrEntry{}
		}
	}
	if hasPhones && (len(phones) > 0 || update) {
		if len(phones) > 0 {
			phones[0].Primary = true
			u.Phones = phones
		} else {
			u.Phones = []phoneEntry{}
		}
	}
	if hasEmployeeID && (employeeID != "" || update) {
		if employeeID != "" {
			u.ExternalIds = []idEntry{{Type: "organization", Value: employeeID}}
		} else {
			u.ExternalIds = []idEntry{}
		}
	}
	for schema, fields := range custom {
		if len(fields) == 0 {
			continue
		}
		b, err := json.Marshal(fields)
		if err != nil {
			continue
		}
		if u.CustomSchemas == nil {
			u.CustomSchemas = map[string]googleapi.RawMessage{}
		}
		u.CustomSchemas[schema] = b
	}
	return ignored
}
