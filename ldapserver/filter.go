package ldapserver

import (
	"errors"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// RFC 4515 / RFC 4511 4.5.1.7 filters: decoded from BER into a tree, then
// evaluated against entries with three-valued logic (TRUE, FALSE,
// Undefined) and each attribute's own matching rules.

type filterOp uint8

const (
	fAnd filterOp = iota
	fOr
	fNot
	fEqual
	fSubstrings
	fGreaterOrEqual
	fLessOrEqual
	fPresent
	fApprox
	fExtensible
)

// BER tags of the Filter CHOICE.
const (
	tagFilterAnd        = 0
	tagFilterOr         = 1
	tagFilterNot        = 2
	tagFilterEqual      = 3
	tagFilterSubstrings = 4
	tagFilterGE         = 5
	tagFilterLE         = 6
	tagFilterPresent    = 7
	tagFilterApprox     = 8
	tagFilterExtensible = 9
)

// Limits on what a client may send: deeper or larger filters get
// unwillingToPerform, never a deep recursion.
const (
	maxFilterDepth = 64
	maxFilterNodes = 1024
)

type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUndefined
)

type filter struct {
	op       filterOp
	children []*filter

	desc       string    // attribute description as sent
	t          *attrType // nil: unknown attribute
	hasOptions bool
	value      string
	a          assertion

	// substrings, prepared for t
	initial, final       string
	hasInitial, hasFinal bool
	anys                 []string

	// extensible
	rule        string
	dnAttrs     bool
	caseExact   bool
	ruleUnknown bool
}

var (
	errFilterMalformed = errors.New("malformed filter")
	errFilterTooBig    = errors.New("filter too complex")
)

// decodeFilter turns a BER Filter into a filter tree.
func decodeFilter(p *element) (*filter, error) {
	n := 0
	return decodeFilterNode(p, 0, &n)
}

func octetString(p *element) (string, bool) {
	if p == nil || p.constructed {
		return "", false
	}
	return string(p.data), true
}

func isUniversalOctetString(p *element) bool {
	return p != nil && p.class == ber.ClassUniversal && p.tag == ber.TagOctetString && !p.constructed
}

func decodeFilterNode(p *element, depth int, n *int) (*filter, error) {
	if p == nil || p.class != ber.ClassContext {
		return nil, errFilterMalformed
	}
	if depth > maxFilterDepth {
		return nil, errFilterTooBig
	}
	*n++
	if *n > maxFilterNodes {
		return nil, errFilterTooBig
	}
	f := &filter{}
	switch p.tag {
	case tagFilterAnd, tagFilterOr:
		if !p.constructed {
			return nil, errFilterMalformed
		}
		f.op = fAnd
		if p.tag == tagFilterOr {
			f.op = fOr
		}
		// RFC 4526 absolute true (&) and false (|) are empty sets.
		for _, c := range p.children {
			cf, err := decodeFilterNode(c, depth+1, n)
			if err != nil {
				return nil, err
			}
			f.children = append(f.children, cf)
		}
		return f, nil
	case tagFilterNot:
		if !p.constructed || len(p.children) != 1 {
			return nil, errFilterMalformed
		}
		cf, err := decodeFilterNode(p.children[0], depth+1, n)
		if err != nil {
			return nil, err
		}
		f.op = fNot
		f.children = []*filter{cf}
		return f, nil
	case tagFilterEqual, tagFilterGE, tagFilterLE, tagFilterApprox:
		if !p.constructed || len(p.children) != 2 ||
			!isUniversalOctetString(p.children[0]) || !isUniversalOctetString(p.children[1]) {
			return nil, errFilterMalformed
		}
		switch p.tag {
		case tagFilterEqual:
			f.op = fEqual
		case tagFilterGE:
			f.op = fGreaterOrEqual
		case tagFilterLE:
			f.op = fLessOrEqual
		default:
			f.op = fApprox
		}
		f.desc, _ = octetString(p.children[0])
		f.value, _ = octetString(p.children[1])
		if f.desc == "" {
			return nil, errFilterMalformed
		}
		f.t, f.hasOptions = lookupAttr(f.desc)
		if f.t != nil {
			f.a = prepAssertion(f.t, f.value)
		}
		return f, nil
	case tagFilterPresent:
		if p.constructed {
			return nil, errFilterMalformed
		}
		f.op = fPresent
		f.desc, _ = octetString(p)
		if f.desc == "" {
			return nil, errFilterMalformed
		}
		f.t, f.hasOptions = lookupAttr(f.desc)
		return f, nil
	case tagFilterSubstrings:
		// SubstringFilter ::= SEQUENCE { type, substrings SEQUENCE SIZE (1..MAX) OF CHOICE {initial [0], any [1], final [2]} }
		if !p.constructed || len(p.children) != 2 || !isUniversalOctetString(p.children[0]) {
			return nil, errFilterMalformed
		}
		seq := p.children[1]
		if seq == nil || seq.class != ber.ClassUniversal || seq.tag != ber.TagSequence || !seq.constructed || len(seq.children) == 0 {
			return nil, errFilterMalformed
		}
		f.op = fSubstrings
		f.desc, _ = octetString(p.children[0])
		if f.desc == "" {
			return nil, errFilterMalformed
		}
		f.t, f.hasOptions = lookupAttr(f.desc)
		for i, c := range seq.children {
			if c == nil || c.class != ber.ClassContext || c.constructed {
				return nil, errFilterMalformed
			}
			v, _ := octetString(c)
			if v == "" {
				return nil, errFilterMalformed
			}
			if f.t != nil {
				v = prepSubstring(f.t, v)
			}
			switch c.tag {
			case 0: // initial: at most once, first
				if i != 0 {
					return nil, errFilterMalformed
				}
				f.initial, f.hasInitial = v, true
			case 1:
				if f.hasFinal {
					return nil, errFilterMalformed
				}
				f.anys = append(f.anys, v)
			case 2: // final: at most once, last
				if i != len(seq.children)-1 {
					return nil, errFilterMalformed
				}
				f.final, f.hasFinal = v, true
			default:
				return nil, errFilterMalformed
			}
		}
		return f, nil
	case tagFilterExtensible:
		// MatchingRuleAssertion ::= SEQUENCE { matchingRule [1] OPTIONAL, type [2] OPTIONAL, matchValue [3], dnAttributes [4] BOOLEAN DEFAULT FALSE }
		if !p.constructed || len(p.children) == 0 || len(p.children) > 4 {
			return nil, errFilterMalformed
		}
		f.op = fExtensible
		last := ber.Tag(0)
		haveValue := false
		for _, c := range p.children {
			if c == nil || c.class != ber.ClassContext || c.constructed || c.tag <= last || c.tag > 4 {
				return nil, errFilterMalformed
			}
			last = c.tag
			v, _ := octetString(c)
			switch c.tag {
			case 1:
				f.rule = v
			case 2:
				f.desc = v
			case 3:
				f.value, haveValue = v, true
			case 4:
				b := c.data
				if len(b) != 1 {
					return nil, errFilterMalformed
				}
				f.dnAttrs = b[0] != 0
			}
		}
		if !haveValue || (f.rule == "" && f.desc == "") {
			return nil, errFilterMalformed
		}
		if f.desc != "" {
			f.t, f.hasOptions = lookupAttr(f.desc)
		}
		switch strings.ToLower(f.rule) {
		case "":
		case "caseexactmatch", "2.5.13.5", "caseexactia5match", "1.3.6.1.4.1.1466.109.114.1":
			f.caseExact = true
		case "caseignorematch", "2.5.13.2", "caseignoreia5match", "1.3.6.1.4.1.1466.109.114.2":
		default:
			f.ruleUnknown = true
		}
		if f.t != nil && !f.ruleUnknown {
			f.a = prepAssertion(f.t, f.value)
		}
		return f, nil
	}
	return nil, errFilterMalformed
}

// eval evaluates f against e.
func (f *filter) eval(e *entry) tri {
	switch f.op {
	case fAnd:
		res := triTrue
		for _, c := range f.children {
			switch c.eval(e) {
			case triFalse:
				return triFalse
			case triUndefined:
				res = triUndefined
			}
		}
		return res
	case fOr:
		res := triFalse
		for _, c := range f.children {
			switch c.eval(e) {
			case triTrue:
				return triTrue
			case triUndefined:
				res = triUndefined
			}
		}
		return res
	case fNot:
		switch f.children[0].eval(e) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUndefined
	case fPresent:
		if f.t == nil || f.hasOptions {
			return triFalse
		}
		if len(e.get(f.t)) > 0 {
			return triTrue
		}
		return triFalse
	case fEqual, fApprox:
		if f.t == nil || !f.a.ok {
			return triUndefined
		}
		if f.hasOptions {
			return triFalse
		}
		a := e.attr(f.t)
		if a == nil {
			return triFalse
		}
		if !a.loaded && a.has != nil {
			if match, ok := a.has(f.a); ok {
				if match {
					return triTrue
				}
				return triFalse
			}
		}
		vals := e.values(a)
		for i, v := range vals {
			if a.norm != nil && a.norm[i] != "" {
				// A DN the door built: its normalized form is known.
				if a.norm[i] == f.a.s {
					return triTrue
				}
				continue
			}
			if matchEqual(f.t, f.a, v) {
				return triTrue
			}
		}
		return triFalse
	case fGreaterOrEqual, fLessOrEqual:
		if f.t == nil || !f.a.ok || !hasOrdering(f.t) {
			return triUndefined
		}
		if f.hasOptions {
			return triFalse
		}
		for _, v := range e.get(f.t) {
			c, ok := compareValue(f.t, f.a, v)
			if !ok {
				continue
			}
			if (f.op == fGreaterOrEqual && c >= 0) || (f.op == fLessOrEqual && c <= 0) {
				return triTrue
			}
		}
		return triFalse
	case fSubstrings:
		if f.t == nil || !hasSubstrings(f.t) {
			return triUndefined
		}
		if f.hasOptions {
			return triFalse
		}
		for _, v := range e.get(f.t) {
			if matchSubstrings(f.t, f.initial, f.anys, f.final, f.hasInitial, f.hasFinal, v) {
				return triTrue
			}
		}
		return triFalse
	case fExtensible:
		return f.evalExtensible(e)
	}
	return triUndefined
}

// evalExtensible supports an attribute with no rule or a case rule, and
// dnAttributes over the entry's own RDN; anything else is Undefined.
func (f *filter) evalExtensible(e *entry) tri {
	if f.ruleUnknown || f.t == nil {
		return triUndefined
	}
	if f.hasOptions {
		return triFalse
	}
	if f.caseExact && !hasSubstrings(f.t) {
		return triUndefined
	}
	if !f.a.ok {
		return triUndefined
	}
	match := func(v string) bool {
		if f.caseExact {
			return prepCaseExact(v) == prepCaseExact(f.value)
		}
		return matchEqual(f.t, f.a, v)
	}
	for _, v := range e.get(f.t) {
		if match(v) {
			return triTrue
		}
	}
	if f.dnAttrs {
		if d, err := parseDN(e.dn); err == nil {
			for _, r := range d {
				for _, av := range r.avas {
					if schema[av.typ] == f.t && match(av.val) {
						return triTrue
					}
				}
			}
		}
	}
	return triFalse
}

// attrs is the attribute types f reads (dnAttributes read the DN, which
// every entry has).
func (f *filter) attrs() attrSet {
	var s attrSet
	if f.t != nil {
		s |= f.t.bit
	}
	for _, c := range f.children {
		s |= c.attrs()
	}
	return s
}
