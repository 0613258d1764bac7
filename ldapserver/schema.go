package ldapserver

import (
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

// The small schema this server knows: each attribute's syntax decides its
// matching rules (per-attribute case rules for filters), and whether it is
// operational (returned only for "+" or by name).

type syntax uint8

const (
	synString   syntax = iota // Directory String, caseIgnoreMatch / caseIgnoreSubstringsMatch / caseIgnoreOrderingMatch
	synIA5Ign                 // IA5 String, caseIgnoreIA5Match (mail)
	synIA5Exact               // IA5 String, caseExactIA5Match (homeDirectory, loginShell, memberUid)
	synDN                     // distinguishedNameMatch; no ordering, no substrings
	synInteger                // integerMatch / integerOrderingMatch
	synTime                   // generalizedTimeMatch / generalizedTimeOrderingMatch
	synUUID                   // UUIDMatch / UUIDOrderingMatch
	synOID                    // objectIdentifierMatch on descriptors (objectClass)
	synBoolean                // booleanMatch
	synTel                    // telephoneNumberMatch / telephoneNumberSubstringsMatch: case, spaces and hyphens ignored
	synPostal                 // Postal Address, caseIgnoreListMatch: lines separated by '$', each caseIgnore
)

type attrType struct {
	name        string // canonical name, as returned
	key         string // lowercase canonical name
	syn         syntax
	operational bool
	bit         attrSet // this type's member of an attrSet
}

var (
	schema = map[string]*attrType{}
	// byName finds a type by its canonical name as written in this
	// package (entry.add), without lowercasing on every call.
	byName = map[string]*attrType{}
	// userAttrSet and opAttrSet are every user and every operational
	// type ("*" and "+").
	userAttrSet, opAttrSet attrSet
)

// attrSet is a set of attribute types, one bit each: a search renders
// only the attributes it returns or its filter reads.
type attrSet uint64

// allAttrs is every type: an entry rendered whole.
const allAttrs = ^attrSet(0)

func (s attrSet) has(t *attrType) bool { return s&t.bit != 0 }

func defAttr(name string, syn syntax, operational bool, aliases ...string) {
	n := len(byName)
	if n >= 64 {
		panic("ldapserver: more attribute types than an attrSet holds")
	}
	t := &attrType{name: name, key: strings.ToLower(name), syn: syn, operational: operational, bit: 1 << n}
	schema[t.key] = t
	byName[name] = t
	if operational {
		opAttrSet |= t.bit
	} else {
		userAttrSet |= t.bit
	}
	for _, a := range aliases {
		schema[strings.ToLower(a)] = t
	}
}

func init() {
	defAttr("objectClass", synOID, false, "2.5.4.0")
	defAttr("uid", synString, false, "userid", "0.9.2342.19200300.100.1.1")
	defAttr("cn", synString, false, "commonName", "2.5.4.3")
	defAttr("sn", synString, false, "surname", "2.5.4.4")
	defAttr("givenName", synString, false, "gn", "2.5.4.42")
	defAttr("displayName", synString, false, "2.16.840.1.113730.3.1.241")
	defAttr("mail", synIA5Ign, false, "rfc822Mailbox", "0.9.2342.19200300.100.1.3")
	defAttr("memberOf", synDN, false, "1.2.840.113556.1.2.102")
	defAttr("uidNumber", synInteger, false, "1.3.6.1.1.1.1.0")
	defAttr("gidNumber", synInteger, false, "1.3.6.1.1.1.1.1")
	defAttr("homeDirectory", synIA5Exact, false, "1.3.6.1.1.1.1.3")
	defAttr("loginShell", synIA5Exact, false, "1.3.6.1.1.1.1.4")
	defAttr("member", synDN, false, "2.5.4.31")
	defAttr("memberUid", synIA5Exact, false, "1.3.6.1.1.1.1.12")
	defAttr("description", synString, false, "2.5.4.13")
	defAttr("ou", synString, false, "organizationalUnitName", "2.5.4.11")
	defAttr("dc", synString, false, "domainComponent", "0.9.2342.19200300.100.1.25")
	defAttr("o", synString, false, "organizationName", "2.5.4.10")
	// A user's optional attributes (SPEC 2.1), from the gateway
	// attributes of the same meaning (userAttrs in entry.go).
	defAttr("title", synString, false, "2.5.4.12")
	defAttr("departmentNumber", synString, false, "2.16.840.1.113730.3.1.2")
	defAttr("employeeType", synString, false, "2.16.840.1.113730.3.1.4")
	defAttr("telephoneNumber", synTel, false, "2.5.4.20")
	defAttr("mobile", synTel, false, "mobileTelephoneNumber", "0.9.2342.19200300.100.1.41")
	defAttr("l", synString, false, "localityName", "2.5.4.7")
	defAttr("postalAddress", synPostal, false, "2.5.4.16")
	defAttr("manager", synDN, false, "0.9.2342.19200300.100.1.10")
	// Password age for the shadow password policy of SSSD
	// (ldap_pwd_policy = shadow) and nslcd: RFC 2307 shadowLastChange and
	// shadowMax in days; OpenLDAP ppolicy's pwdChangedTime (operational).
	defAttr("shadowLastChange", synInteger, false, "1.3.6.1.1.1.1.5")
	defAttr("shadowMax", synInteger, false, "1.3.6.1.1.1.1.7")
	defAttr("pwdChangedTime", synTime, true, "1.3.6.1.4.1.42.2.27.8.1.16")
	// Disabled markers on inactive users (entry.go), one per account
	// check: RFC 2307 shadowExpire (nslcd, SSSD "shadow"), NDS
	// loginDisabled (SSSD "nds"), AD userAccountControl (SSSD "ad",
	// "ipa"); 389-DS nsAccountLock (SSSD "rhds", "ipa", "389ds") and
	// OpenLDAP ppolicy pwdAccountLockedTime (SSSD "ppolicy") are
	// operational there, and so here.
	defAttr("shadowExpire", synInteger, false, "1.3.6.1.1.1.1.10")
	defAttr("loginDisabled", synBoolean, false)
	defAttr("userAccountControl", synInteger, false, "1.2.840.113556.1.4.8")
	defAttr("nsAccountLock", synString, true, "2.16.840.1.113730.3.1.610")
	defAttr("pwdAccountLockedTime", synTime, true, "1.3.6.1.4.1.42.2.27.8.1.17")
	// Root DSE attributes; returned for "*" too, as Active Directory does,
	// because that is what clients probing a server expect.
	defAttr("namingContexts", synDN, false, "1.3.6.1.4.1.1466.101.120.5")
	defAttr("supportedLDAPVersion", synInteger, false, "1.3.6.1.4.1.1466.101.120.15")
	defAttr("supportedExtension", synOID, false, "1.3.6.1.4.1.1466.101.120.7")
	defAttr("supportedControl", synOID, false, "1.3.6.1.4.1.1466.101.120.13")
	defAttr("supportedSASLMechanisms", synString, false, "1.3.6.1.4.1.1466.101.120.14")
	defAttr("vendorName", synString, false, "1.3.6.1.1.4")
	defAttr("vendorVersion", synString, false, "1.3.6.1.1.5")
	// Operational attributes.
	defAttr("entryUUID", synUUID, true, "1.3.6.1.1.16.4")
	defAttr("entryDN", synDN, true, "1.3.6.1.1.20")
	defAttr("createTimestamp", synTime, true, "2.5.18.1")
	defAttr("modifyTimestamp", synTime, true, "2.5.18.2")
	defAttr("structuralObjectClass", synOID, true, "2.5.21.9")
	defAttr("hasSubordinates", synBoolean, true, "2.5.18.9")
	resolveAttrTypes()
}

// lookupAttr resolves an attribute description. Options (";lang-en") make
// it a subtype we hold no values for: ok is true, hasOptions is true.
func lookupAttr(desc string) (t *attrType, hasOptions bool) {
	if i := strings.IndexByte(desc, ';'); i >= 0 {
		desc, hasOptions = desc[:i], true
	}
	return schema[strings.ToLower(strings.TrimSpace(desc))], hasOptions
}

// assertion is a filter value prepared once for an attribute's syntax.
type assertion struct {
	ok   bool // the value is valid for the syntax; otherwise Undefined
	s    string
	n    int64
	t    time.Time
	bval bool
}

func prepAssertion(t *attrType, v string) assertion {
	switch t.syn {
	case synString, synIA5Ign:
		return assertion{ok: true, s: prepCaseIgnore(v)}
	case synIA5Exact:
		return assertion{ok: true, s: prepCaseExact(v)}
	case synTel:
		return assertion{ok: true, s: prepTel(v)}
	case synPostal:
		return assertion{ok: true, s: prepPostal(v)}
	case synOID:
		return assertion{ok: true, s: strings.ToLower(strings.TrimSpace(v))}
	case synDN:
		n, err := normalizeDN(v)
		return assertion{ok: err == nil, s: n}
	case synInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return assertion{ok: err == nil, n: n}
	case synTime:
		tm, ok := parseGeneralizedTime(v)
		return assertion{ok: ok, t: tm}
	case synUUID:
		s := strings.ToLower(strings.TrimSpace(v))
		return assertion{ok: store.IsUUID(s), s: s}
	case synBoolean:
		switch v {
		case "TRUE":
			return assertion{ok: true, bval: true}
		case "FALSE":
			return assertion{ok: true}
		}
	}
	return assertion{}
}

// prepValue normalizes a stored value the same way; ok false means the
// stored value itself does not parse (it then matches nothing).
func prepValue(t *attrType, v string) assertion { return prepAssertion(t, v) }

func matchEqual(t *attrType, a assertion, v string) bool {
	pv := prepValue(t, v)
	if !pv.ok {
		return false
	}
	switch t.syn {
	case synInteger:
		return pv.n == a.n
	case synTime:
		return pv.t.Equal(a.t)
	case synBoolean:
		return pv.bval == a.bval
	default:
		return pv.s == a.s
	}
}

// hasOrdering reports whether >= and <= are defined for the syntax.
func hasOrdering(t *attrType) bool {
	switch t.syn {
	case synDN, synOID, synBoolean, synTel, synPostal:
		return false
	}
	return true
}

// compareValue returns -1, 0, 1 comparing the stored value v with a.
func compareValue(t *attrType, a assertion, v string) (int, bool) {
	pv := prepValue(t, v)
	if !pv.ok {
		return 0, false
	}
	switch t.syn {
	case synInteger:
		switch {
		case pv.n < a.n:
			return -1, true
		case pv.n > a.n:
			return 1, true
		}
		return 0, true
	case synTime:
		return pv.t.Compare(a.t), true
	default:
		return strings.Compare(pv.s, a.s), true
	}
}

// hasSubstrings reports whether a substrings assertion is defined.
func hasSubstrings(t *attrType) bool {
	switch t.syn {
	case synString, synIA5Ign, synIA5Exact, synTel, synPostal:
		return true
	}
	return false
}

// prepSubstring prepares one substring component: case rule of the
// attribute, inner spaces collapsed, but no trimming (a component's edge
// spaces are significant only next to other text).
func prepSubstring(t *attrType, s string) string {
	switch t.syn {
	case synIA5Exact:
		return collapseSpaces(s, false)
	case synTel:
		return prepTel(s)
	}
	return collapseSpaces(strings.ToLower(s), false)
}

func matchSubstrings(t *attrType, initial string, anys []string, final string, hasInitial, hasFinal bool, v string) bool {
	var pv string
	switch t.syn {
	case synIA5Exact:
		pv = prepCaseExact(v)
	case synTel:
		pv = prepTel(v)
	case synPostal:
		pv = prepPostal(v)
	default:
		pv = prepCaseIgnore(v)
	}
	if hasInitial {
		if !strings.HasPrefix(pv, initial) {
			return false
		}
		pv = pv[len(initial):]
	}
	if hasFinal {
		if !strings.HasSuffix(pv, final) {
			return false
		}
		pv = pv[:len(pv)-len(final)]
	}
	for _, a := range anys {
		i := strings.Index(pv, a)
		if i < 0 {
			return false
		}
		pv = pv[i+len(a):]
	}
	return true
}

// prepTel is telephoneNumberMatch's preparation (RFC 4517 4.2.29): case
// ignored, spaces and hyphens insignificant.
func prepTel(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// prepPostal is caseIgnoreListMatch's preparation (RFC 4517 4.2.8): each
// line of a Postal Address ('$'-separated) prepared as caseIgnoreMatch.
func prepPostal(s string) string {
	lines := strings.Split(s, "$")
	for i, l := range lines {
		lines[i] = prepCaseIgnore(l)
	}
	return strings.Join(lines, "$")
}

// postalAddress renders a free-form address (lines separated by
// newlines) as a Postal Address (RFC 4517 3.3.28): lines joined with '$',
// '\' and '$' within a line escaped as \5C and \24, empty lines dropped.
func postalAddress(s string) string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		l = strings.ReplaceAll(l, `\`, `\5C`)
		out = append(out, strings.ReplaceAll(l, "$", `\24`))
	}
	return strings.Join(out, "$")
}

// generalizedTime renders t the way createTimestamp is stored.
func generalizedTime(t time.Time) string { return t.UTC().Format("20060102150405Z") }

var gtLayouts = []string{
	"20060102150405Z0700",
	"20060102150405.999999999Z0700",
	"200601021504Z0700",
	"2006010215Z0700",
	"20060102150405,999999999Z0700",
}

// parseGeneralizedTime accepts RFC 4517 3.3.13 GeneralizedTime.
func parseGeneralizedTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 11 || len(s) > 40 {
		return time.Time{}, false
	}
	for _, l := range gtLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
