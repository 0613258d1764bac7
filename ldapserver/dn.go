package ldapserver

import (
	"errors"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/store"
)

// DN handling. A DN is compared in its normalized form (RFC 4514 parsing,
// RFC 4517 distinguishedNameMatch with caseIgnoreMatch on every value, which
// holds for every naming attribute in our tree: uid, cn, ou, dc, o): attribute
// types folded to their canonical lowercase name, values case-folded with
// insignificant spaces removed, the AVAs of a multi-valued RDN sorted.

// dnAliases maps alternative names and OIDs of naming attributes to the
// canonical lowercase short name.
var dnAliases = map[string]string{
	"userid":                     "uid",
	"0.9.2342.19200300.100.1.1":  "uid",
	"commonname":                 "cn",
	"2.5.4.3":                    "cn",
	"organizationalunitname":     "ou",
	"2.5.4.11":                   "ou",
	"domaincomponent":            "dc",
	"0.9.2342.19200300.100.1.25": "dc",
	"organizationname":           "o",
	"2.5.4.10":                   "o",
}

type ava struct {
	typ  string // canonical lowercase type
	val  string // decoded value as given
	nval string // prepared value (caseIgnore + insignificant space)
}

type rdn struct {
	avas []ava
	norm string
}

// parsedDN is a DN split into RDNs, leaf first.
type parsedDN []rdn

func (d parsedDN) norm() string {
	parts := make([]string, len(d))
	for i, r := range d {
		parts[i] = r.norm
	}
	return strings.Join(parts, ",")
}

// hasSuffix reports whether base is a suffix of d (d under or equal to base).
func (d parsedDN) hasSuffix(base parsedDN) bool {
	if len(base) > len(d) {
		return false
	}
	off := len(d) - len(base)
	for i := range base {
		if d[off+i].norm != base[i].norm {
			return false
		}
	}
	return true
}

var errBadDN = errors.New("invalid DN")

// maxDNLen bounds the DNs we parse; nothing in our tree comes close.
const maxDNLen = 4096

// parseDN parses an RFC 4514 string. The empty string is the empty DN.
func parseDN(s string) (parsedDN, error) {
	if len(s) > maxDNLen {
		return nil, errBadDN
	}
	d, err := ldap.ParseDN(s)
	if err != nil {
		return nil, errBadDN
	}
	out := make(parsedDN, 0, len(d.RDNs))
	for _, r := range d.RDNs {
		if r == nil || len(r.Attributes) == 0 {
			return nil, errBadDN
		}
		pr := rdn{avas: make([]ava, 0, len(r.Attributes))}
		norms := make([]string, 0, len(r.Attributes))
		for _, a := range r.Attributes {
			if a == nil {
				return nil, errBadDN
			}
			t := strings.ToLower(strings.TrimSpace(a.Type))
			if t == "" {
				return nil, errBadDN
			}
			if c, ok := dnAliases[t]; ok {
				t = c
			}
			nv := prepCaseIgnore(a.Value)
			pr.avas = append(pr.avas, ava{typ: t, val: a.Value, nval: nv})
			norms = append(norms, escapeDNValue(t)+"="+escapeDNValue(nv))
		}
		sort.Strings(norms)
		pr.norm = strings.Join(norms, "+")
		out = append(out, pr)
	}
	return out, nil
}

// normalizeDN returns the comparison key of s, or an error when s is not a DN.
func normalizeDN(s string) (string, error) {
	d, err := parseDN(s)
	if err != nil {
		return "", err
	}
	return d.norm(), nil
}

// escapeDNValue escapes an attribute value for a DN string (RFC 4514 2.4).
func escapeDNValue(v string) string {
	need := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"', '+', ',', ';', '<', '>', '\\', 0:
			need = true
		}
	}
	if !need && v != "" && v[0] != ' ' && v[0] != '#' && v[len(v)-1] != ' ' {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == 0:
			b.WriteString(`\00`)
		case c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case i == 0 && (c == ' ' || c == '#'):
			b.WriteByte('\\')
			b.WriteByte(c)
		case i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// displayDN renders a parsed DN as a string, keeping the types and values
// as they were written (no spaces around separators).
func displayDN(d parsedDN) string {
	parts := make([]string, len(d))
	for i, r := range d {
		avs := make([]string, len(r.avas))
		for j, a := range r.avas {
			avs[j] = a.typ + "=" + escapeDNValue(a.val)
		}
		parts[i] = strings.Join(avs, "+")
	}
	return strings.Join(parts, ",")
}

// prepCaseIgnore prepares a value for caseIgnoreMatch (RFC 4518, simplified
// to Unicode lower-casing): fold case, drop leading and trailing spaces and
// collapse inner runs of spaces to one. It is the store's FoldCase, which
// keys the cn indexes: the two must agree or indexed searches miss.
func prepCaseIgnore(s string) string { return store.FoldCase(s) }

// prepCaseExact is prepCaseIgnore without the case folding.
func prepCaseExact(s string) string {
	return collapseSpaces(s, true)
}

func collapseSpaces(s string, trim bool) string {
	if trim {
		s = strings.Trim(s, " ")
	}
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prev := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' {
			if prev {
				continue
			}
			prev = true
		} else {
			prev = false
		}
		b.WriteByte(c)
	}
	return b.String()
}
