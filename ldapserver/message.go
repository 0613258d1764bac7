package ldapserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// The LDAP message layer (RFC 4511 section 4 and 5.1), owned here rather than
// taken from gldap: frames are read with a size cap before any allocation,
// pre-scanned so go-asn1-ber never sees indefinite lengths, deep nesting or
// element floods, and decoded with strict type checks so hostile input
// yields an error, never a panic.

// Application tags of protocolOp.
const (
	appBindRequest      = 0
	appBindResponse     = 1
	appUnbindRequest    = 2
	appSearchRequest    = 3
	appSearchEntry      = 4
	appSearchDone       = 5
	appModifyRequest    = 6
	appModifyResponse   = 7
	appAddRequest       = 8
	appAddResponse      = 9
	appDelRequest       = 10
	appDelResponse      = 11
	appModDNRequest     = 12
	appModDNResponse    = 13
	appCompareRequest   = 14
	appCompareResponse  = 15
	appAbandonRequest   = 16
	appExtendedRequest  = 23
	appExtendedResponse = 24
)

// LDAP result codes used here.
const (
	rcSuccess                  = 0
	rcOperationsError          = 1
	rcProtocolError            = 2
	rcTimeLimitExceeded        = 3
	rcSizeLimitExceeded        = 4
	rcAuthMethodNotSupported   = 7
	rcUnavailableCriticalExt   = 12
	rcConfidentialityRequired  = 13
	rcConstraintViolation      = 19
	rcNoSuchObject             = 32
	rcInvalidDNSyntax          = 34
	rcInvalidCredentials       = 49
	rcInsufficientAccessRights = 50
	rcBusy                     = 51
	rcUnavailable              = 52
	rcUnwillingToPerform       = 53
	rcOther                    = 80
)

// OIDs.
const (
	oidStartTLS         = "1.3.6.1.4.1.1466.20037"
	oidPasswordModify   = "1.3.6.1.4.1.4203.1.11.1"
	oidWhoAmI           = "1.3.6.1.4.1.4203.1.11.3"
	oidNoticeDisconnect = "1.3.6.1.4.1.1466.20036"
	oidPagedResults     = "1.2.840.113556.1.4.319"
	oidManageDsaIT      = "2.16.840.1.113730.3.4.2"
)

// Limits of the pre-scan.
const (
	maxBERElements = 8192
	maxBERDepth    = 128
)

var (
	errNotLDAP       = errors.New("not an LDAP message")
	errTooLarge      = errors.New("message too large")
	errMalformed     = errors.New("malformed message")
	errIndefiniteLen = errors.New("indefinite length not allowed")
)

// readFrame reads one LDAPMessage into buf: a SEQUENCE with a definite
// length no larger than max. The buffer grows only as data arrives.
func readFrame(r *bufio.Reader, max int, buf *bytes.Buffer) ([]byte, error) {
	buf.Reset()
	b0, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if b0 != 0x30 {
		return nil, errNotLDAP
	}
	buf.WriteByte(b0)
	l0, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	buf.WriteByte(l0)
	length := 0
	switch {
	case l0 < 0x80:
		length = int(l0)
	case l0 == 0x80:
		return nil, errIndefiniteLen
	default:
		n := int(l0 & 0x7f)
		if n > 4 {
			return nil, errTooLarge
		}
		for i := 0; i < n; i++ {
			c, err := r.ReadByte()
			if err != nil {
				return nil, err
			}
			buf.WriteByte(c)
			length = length<<8 | int(c)
		}
	}
	if length > max-buf.Len() {
		return nil, errTooLarge
	}
	if _, err := io.CopyN(buf, r, int64(length)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

// scanBER checks that b is exactly one well-formed BER element with
// definite lengths, at most maxElems elements and maxDepth nesting, before
// anything is decoded.
func scanBER(b []byte, maxElems, maxDepth int) error {
	_, err := countBER(b, maxElems, maxDepth)
	return err
}

// countBER is scanBER that also returns the number of elements.
func countBER(b []byte, maxElems, maxDepth int) (int, error) {
	var stack [16]int
	ends := stack[:0]
	pos, count := 0, 0
	for {
		for len(ends) > 0 && pos == ends[len(ends)-1] {
			ends = ends[:len(ends)-1]
		}
		if len(ends) == 0 && count > 0 {
			break
		}
		limit := len(b)
		if len(ends) > 0 {
			limit = ends[len(ends)-1]
		}
		id, _, start, n, err := readHeader(b, pos, limit)
		if err != nil {
			return 0, err
		}
		count++
		if count > maxElems {
			return 0, errTooLarge
		}
		if id&0x20 != 0 { // constructed
			if len(ends)+1 > maxDepth {
				return 0, errTooLarge
			}
			ends = append(ends, start+n)
			pos = start
		} else {
			pos = start + n
		}
	}
	if pos != len(b) {
		return 0, errMalformed
	}
	return count, nil
}

type control struct {
	oid      string
	critical bool
	value    []byte
	hasValue bool
}

// message is a decoded LDAPMessage envelope.
type message struct {
	id       int64
	op       ber.Tag
	body     *element
	controls []control
}

// decodeMessage decodes and validates the envelope of one frame.
func decodeMessage(frame []byte) (*message, error) {
	p, err := parseElement(frame, maxBERElements, maxBERDepth)
	if err != nil {
		return nil, err
	}
	if p.class != ber.ClassUniversal || p.tag != ber.TagSequence || !p.constructed ||
		len(p.children) < 2 || len(p.children) > 3 {
		return nil, errMalformed
	}
	id, ok := universalInt(p.children[0], ber.TagInteger)
	if !ok || id < 1 || id > math.MaxInt32 {
		return nil, errMalformed
	}
	op := p.children[1]
	if op == nil || op.class != ber.ClassApplication {
		return nil, errMalformed
	}
	m := &message{id: id, op: op.tag, body: op}
	if len(p.children) == 3 {
		c := p.children[2]
		if c == nil || c.class != ber.ClassContext || c.tag != 0 || !c.constructed {
			return nil, errMalformed
		}
		for _, cp := range c.children {
			ctl, err := decodeControl(cp)
			if err != nil {
				return nil, err
			}
			m.controls = append(m.controls, ctl)
		}
	}
	return m, nil
}

func decodeControl(p *element) (control, error) {
	var c control
	if p == nil || p.class != ber.ClassUniversal || p.tag != ber.TagSequence || !p.constructed ||
		len(p.children) < 1 || len(p.children) > 3 || !isUniversalOctetString(p.children[0]) {
		return c, errMalformed
	}
	c.oid, _ = octetString(p.children[0])
	rest := p.children[1:]
	if len(rest) > 0 && rest[0] != nil && rest[0].class == ber.ClassUniversal && rest[0].tag == ber.TagBoolean {
		b, ok := universalBool(rest[0])
		if !ok {
			return c, errMalformed
		}
		c.critical = b
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if !isUniversalOctetString(rest[0]) {
			return c, errMalformed
		}
		c.value, c.hasValue = rest[0].data, true
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return c, errMalformed
	}
	return c, nil
}

// universalInt reads a primitive INTEGER or ENUMERATED of the universal class.
func universalInt(p *element, tag ber.Tag) (int64, bool) {
	if p == nil || p.class != ber.ClassUniversal || p.tag != tag || p.constructed {
		return 0, false
	}
	return parseBERInt(p.data)
}

func parseBERInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	v, err := ber.ParseInt64(b)
	return v, err == nil
}

func universalBool(p *element) (bool, bool) {
	if p == nil || p.class != ber.ClassUniversal || p.tag != ber.TagBoolean || p.constructed {
		return false, false
	}
	b := p.data
	if len(b) != 1 {
		return false, false
	}
	return b[0] != 0, true
}

// --- requests ---

type bindRequest struct {
	version  int64
	name     string
	simple   bool
	password []byte // aliases the decoded packet; wipe after use
	mech     string // SASL mechanism when !simple
}

func decodeBind(p *element) (*bindRequest, error) {
	if !p.constructed || len(p.children) != 3 {
		return nil, errMalformed
	}
	v, ok := universalInt(p.children[0], ber.TagInteger)
	if !ok {
		return nil, errMalformed
	}
	if !isUniversalOctetString(p.children[1]) {
		return nil, errMalformed
	}
	r := &bindRequest{version: v}
	r.name, _ = octetString(p.children[1])
	auth := p.children[2]
	if auth == nil || auth.class != ber.ClassContext {
		return nil, errMalformed
	}
	switch {
	case auth.tag == 0 && !auth.constructed:
		r.simple = true
		r.password = auth.data
	case auth.tag == 3 && auth.constructed:
		if len(auth.children) < 1 || len(auth.children) > 2 || !isUniversalOctetString(auth.children[0]) {
			return nil, errMalformed
		}
		r.mech, _ = octetString(auth.children[0])
	default:
		return nil, errMalformed
	}
	return r, nil
}

type searchRequest struct {
	base      string
	scope     int64
	deref     int64
	sizeLimit int64
	timeLimit int64
	typesOnly bool
	filter    *filter
	filterRaw []byte
	attrs     []string
}

// Search scopes.
const (
	scopeBase        = 0
	scopeOne         = 1
	scopeSub         = 2
	scopeSubordinate = 3 // draft-sermersheim-ldap-subordinate-scope
)

// errFilter wraps a filter problem: the search gets an answer, the
// connection stays.
type errFilter struct{ err error }

func (e errFilter) Error() string { return e.err.Error() }
func (e errFilter) Unwrap() error { return e.err }

func decodeSearch(p *element) (*searchRequest, error) {
	if !p.constructed || len(p.children) != 8 {
		return nil, errMalformed
	}
	c := p.children
	r := &searchRequest{}
	var ok bool
	if !isUniversalOctetString(c[0]) {
		return nil, errMalformed
	}
	r.base, _ = octetString(c[0])
	if r.scope, ok = universalInt(c[1], ber.TagEnumerated); !ok {
		return nil, errMalformed
	}
	if r.deref, ok = universalInt(c[2], ber.TagEnumerated); !ok {
		return nil, errMalformed
	}
	if r.sizeLimit, ok = universalInt(c[3], ber.TagInteger); !ok || r.sizeLimit < 0 {
		return nil, errMalformed
	}
	if r.timeLimit, ok = universalInt(c[4], ber.TagInteger); !ok || r.timeLimit < 0 {
		return nil, errMalformed
	}
	if r.typesOnly, ok = universalBool(c[5]); !ok {
		return nil, errMalformed
	}
	if c[7] == nil || c[7].class != ber.ClassUniversal || c[7].tag != ber.TagSequence || !c[7].constructed {
		return nil, errMalformed
	}
	for _, a := range c[7].children {
		if !isUniversalOctetString(a) {
			return nil, errMalformed
		}
		s, _ := octetString(a)
		r.attrs = append(r.attrs, s)
	}
	f, err := decodeFilter(c[6])
	if err != nil {
		return r, errFilter{err}
	}
	r.filter = f
	r.filterRaw = c[6].raw
	return r, nil
}

type extendedRequest struct {
	oid      string
	value    []byte
	hasValue bool
}

func decodeExtended(p *element) (*extendedRequest, error) {
	if !p.constructed || len(p.children) < 1 || len(p.children) > 2 {
		return nil, errMalformed
	}
	n := p.children[0]
	if n == nil || n.class != ber.ClassContext || n.tag != 0 || n.constructed {
		return nil, errMalformed
	}
	r := &extendedRequest{}
	r.oid, _ = octetString(n)
	if len(p.children) == 2 {
		v := p.children[1]
		if v == nil || v.class != ber.ClassContext || v.tag != 1 || v.constructed {
			return nil, errMalformed
		}
		r.value, r.hasValue = v.data, true
	}
	return r, nil
}

func decodeAbandon(p *element) (int64, error) {
	if p.constructed {
		return 0, errMalformed
	}
	id, ok := parseBERInt(p.data)
	if !ok {
		return 0, errMalformed
	}
	return id, nil
}

// passwdModifyRequest is RFC 3062's PasswdModifyRequestValue.
type passwdModifyRequest struct {
	user           string
	hasUser        bool
	oldPw, newPw   []byte
	hasOld, hasNew bool
}

func decodePasswdModify(v []byte, hasValue bool) (*passwdModifyRequest, error) {
	r := &passwdModifyRequest{}
	if !hasValue || len(v) == 0 {
		return r, nil // every field is optional
	}
	p, err := parseElement(v, 16, 4)
	if err != nil {
		return nil, err
	}
	if p.class != ber.ClassUniversal || p.tag != ber.TagSequence || !p.constructed || len(p.children) > 3 {
		return nil, errMalformed
	}
	last := -1
	for _, c := range p.children {
		if c == nil || c.class != ber.ClassContext || c.constructed || int(c.tag) <= last || c.tag > 2 {
			return nil, errMalformed
		}
		last = int(c.tag)
		b := c.data
		switch c.tag {
		case 0:
			r.user, r.hasUser = string(b), true
		case 1:
			r.oldPw, r.hasOld = b, true
		case 2:
			r.newPw, r.hasNew = b, true
		}
	}
	return r, nil
}

// --- responses ---

// responseTag is the response protocolOp for a request op; ok is false for
// requests that get no response (unbind, abandon).
func responseTag(op ber.Tag) (ber.Tag, bool) {
	switch op {
	case appBindRequest:
		return appBindResponse, true
	case appSearchRequest:
		return appSearchDone, true
	case appModifyRequest:
		return appModifyResponse, true
	case appAddRequest:
		return appAddResponse, true
	case appDelRequest:
		return appDelResponse, true
	case appModDNRequest:
		return appModDNResponse, true
	case appCompareRequest:
		return appCompareResponse, true
	case appExtendedRequest:
		return appExtendedResponse, true
	}
	return 0, false
}

type outAttr struct {
	name string
	vals []string
}

// decodePagedValue decodes realSearchControlValue.
func decodePagedValue(v []byte) (size int64, cookie []byte, err error) {
	p, err := parseElement(v, 8, 4)
	if err != nil || p.class != ber.ClassUniversal || p.tag != ber.TagSequence || !p.constructed || len(p.children) != 2 {
		return 0, nil, errMalformed
	}
	size, ok := universalInt(p.children[0], ber.TagInteger)
	if !ok || size < 0 || !isUniversalOctetString(p.children[1]) {
		return 0, nil, errMalformed
	}
	return size, p.children[1].data, nil
}
