package ldapserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
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
// go-asn1-ber allocates a packet per element.
func scanBER(b []byte, maxElems, maxDepth int) error {
	var ends []int
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
		if pos >= limit {
			return errMalformed
		}
		id := b[pos]
		pos++
		constructed := id&0x20 != 0
		if id&0x1f == 0x1f {
			for k := 0; ; k++ {
				if pos >= limit || k >= 4 {
					return errMalformed
				}
				c := b[pos]
				pos++
				if c&0x80 == 0 {
					break
				}
			}
		}
		if pos >= limit {
			return errMalformed
		}
		l := int(b[pos])
		pos++
		switch {
		case l == 0x80:
			return errIndefiniteLen
		case l == 0xff:
			return errMalformed
		case l > 0x80:
			n := l & 0x7f
			if n > 4 {
				return errMalformed
			}
			l = 0
			for i := 0; i < n; i++ {
				if pos >= limit {
					return errMalformed
				}
				l = l<<8 | int(b[pos])
				pos++
			}
		}
		if l > limit-pos {
			return errMalformed
		}
		count++
		if count > maxElems {
			return errTooLarge
		}
		if constructed {
			if len(ends)+1 > maxDepth {
				return errTooLarge
			}
			ends = append(ends, pos+l)
		} else {
			pos += l
		}
	}
	if pos != len(b) {
		return errMalformed
	}
	return nil
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
	body     *ber.Packet
	controls []control
}

// decodeMessage decodes and validates the envelope of one frame.
func decodeMessage(frame []byte) (*message, error) {
	if err := scanBER(frame, maxBERElements, maxBERDepth); err != nil {
		return nil, err
	}
	p, err := ber.DecodePacketErr(frame)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if p.ClassType != ber.ClassUniversal || p.Tag != ber.TagSequence || p.TagType != ber.TypeConstructed ||
		len(p.Children) < 2 || len(p.Children) > 3 {
		return nil, errMalformed
	}
	id, ok := universalInt(p.Children[0], ber.TagInteger)
	if !ok || id < 1 || id > math.MaxInt32 {
		return nil, errMalformed
	}
	op := p.Children[1]
	if op == nil || op.ClassType != ber.ClassApplication {
		return nil, errMalformed
	}
	m := &message{id: id, op: op.Tag, body: op}
	if len(p.Children) == 3 {
		c := p.Children[2]
		if c == nil || c.ClassType != ber.ClassContext || c.Tag != 0 || c.TagType != ber.TypeConstructed {
			return nil, errMalformed
		}
		for _, cp := range c.Children {
			ctl, err := decodeControl(cp)
			if err != nil {
				return nil, err
			}
			m.controls = append(m.controls, ctl)
		}
	}
	return m, nil
}

func decodeControl(p *ber.Packet) (control, error) {
	var c control
	if p == nil || p.ClassType != ber.ClassUniversal || p.Tag != ber.TagSequence || p.TagType != ber.TypeConstructed ||
		len(p.Children) < 1 || len(p.Children) > 3 || !isUniversalOctetString(p.Children[0]) {
		return c, errMalformed
	}
	c.oid, _ = octetString(p.Children[0])
	rest := p.Children[1:]
	if len(rest) > 0 && rest[0] != nil && rest[0].ClassType == ber.ClassUniversal && rest[0].Tag == ber.TagBoolean {
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
		c.value, c.hasValue = rest[0].Data.Bytes(), true
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return c, errMalformed
	}
	return c, nil
}

// universalInt reads a primitive INTEGER or ENUMERATED of the universal class.
func universalInt(p *ber.Packet, tag ber.Tag) (int64, bool) {
	if p == nil || p.ClassType != ber.ClassUniversal || p.Tag != tag || p.TagType != ber.TypePrimitive {
		return 0, false
	}
	return parseBERInt(p.Data.Bytes())
}

func parseBERInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	v, err := ber.ParseInt64(b)
	return v, err == nil
}

func universalBool(p *ber.Packet) (bool, bool) {
	if p == nil || p.ClassType != ber.ClassUniversal || p.Tag != ber.TagBoolean || p.TagType != ber.TypePrimitive {
		return false, false
	}
	b := p.Data.Bytes()
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

func decodeBind(p *ber.Packet) (*bindRequest, error) {
	if p.TagType != ber.TypeConstructed || len(p.Children) != 3 {
		return nil, errMalformed
	}
	v, ok := universalInt(p.Children[0], ber.TagInteger)
	if !ok {
		return nil, errMalformed
	}
	if !isUniversalOctetString(p.Children[1]) {
		return nil, errMalformed
	}
	r := &bindRequest{version: v}
	r.name, _ = octetString(p.Children[1])
	auth := p.Children[2]
	if auth == nil || auth.ClassType != ber.ClassContext {
		return nil, errMalformed
	}
	switch {
	case auth.Tag == 0 && auth.TagType == ber.TypePrimitive:
		r.simple = true
		r.password = auth.Data.Bytes()
	case auth.Tag == 3 && auth.TagType == ber.TypeConstructed:
		if len(auth.Children) < 1 || len(auth.Children) > 2 || !isUniversalOctetString(auth.Children[0]) {
			return nil, errMalformed
		}
		r.mech, _ = octetString(auth.Children[0])
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

func decodeSearch(p *ber.Packet) (*searchRequest, error) {
	if p.TagType != ber.TypeConstructed || len(p.Children) != 8 {
		return nil, errMalformed
	}
	c := p.Children
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
	if c[7] == nil || c[7].ClassType != ber.ClassUniversal || c[7].Tag != ber.TagSequence || c[7].TagType != ber.TypeConstructed {
		return nil, errMalformed
	}
	for _, a := range c[7].Children {
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
	r.filterRaw = c[6].Bytes()
	return r, nil
}

type extendedRequest struct {
	oid      string
	value    []byte
	hasValue bool
}

func decodeExtended(p *ber.Packet) (*extendedRequest, error) {
	if p.TagType != ber.TypeConstructed || len(p.Children) < 1 || len(p.Children) > 2 {
		return nil, errMalformed
	}
	n := p.Children[0]
	if n == nil || n.ClassType != ber.ClassContext || n.Tag != 0 || n.TagType != ber.TypePrimitive {
		return nil, errMalformed
	}
	r := &extendedRequest{}
	r.oid, _ = octetString(n)
	if len(p.Children) == 2 {
		v := p.Children[1]
		if v == nil || v.ClassType != ber.ClassContext || v.Tag != 1 || v.TagType != ber.TypePrimitive {
			return nil, errMalformed
		}
		r.value, r.hasValue = v.Data.Bytes(), true
	}
	return r, nil
}

func decodeAbandon(p *ber.Packet) (int64, error) {
	if p.TagType != ber.TypePrimitive {
		return 0, errMalformed
	}
	id, ok := parseBERInt(p.Data.Bytes())
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
	if err := scanBER(v, 16, 4); err != nil {
		return nil, err
	}
	p, err := ber.DecodePacketErr(v)
	if err != nil {
		return nil, errMalformed
	}
	if p.ClassType != ber.ClassUniversal || p.Tag != ber.TagSequence || p.TagType != ber.TypeConstructed || len(p.Children) > 3 {
		return nil, errMalformed
	}
	last := -1
	for _, c := range p.Children {
		if c == nil || c.ClassType != ber.ClassContext || c.TagType != ber.TypePrimitive || int(c.Tag) <= last || c.Tag > 2 {
			return nil, errMalformed
		}
		last = int(c.Tag)
		b := c.Data.Bytes()
		switch c.Tag {
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

func newEnvelope(id int64, op *ber.Packet, controls ...*ber.Packet) *ber.Packet {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	env.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
		for _, c := range controls {
			cs.AppendChild(c)
		}
		env.AppendChild(cs)
	}
	return env
}

// resultOp builds an LDAPResult-shaped protocolOp with the given tag.
func resultOp(tag ber.Tag, code int, matched, diag string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, matched, ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, ""))
	return op
}

// extendedOp builds an ExtendedResponse with optional name and value.
func extendedOp(code int, diag, name string, value []byte) *ber.Packet {
	op := resultOp(appExtendedResponse, code, "", diag)
	if name != "" {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, name, ""))
	}
	if value != nil {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 11, string(value), ""))
	}
	return op
}

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

// noticeOfDisconnection is the unsolicited notification of RFC 4511 4.4.1.
func noticeOfDisconnection(code int, diag string) []byte {
	return newEnvelope(0, extendedOp(code, diag, oidNoticeDisconnect, nil)).Bytes()
}

// entryOp builds a SearchResultEntry.
func entryOp(dn string, attrs []outAttr, typesOnly bool) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchEntry, nil, "")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, a := range attrs {
		pa := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.name, ""))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		if !typesOnly {
			for _, v := range a.vals {
				set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, ""))
			}
		}
		pa.AppendChild(set)
		list.AppendChild(pa)
	}
	op.AppendChild(list)
	return op
}

type outAttr struct {
	name string
	vals []string
}

// pagedControl encodes the Simple Paged Results response control.
func pagedControl(cookie []byte) *ber.Packet {
	c := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, oidPagedResults, ""))
	v := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	v.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	v.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(cookie), ""))
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(v.Bytes()), ""))
	return c
}

// decodePagedValue decodes realSearchControlValue.
func decodePagedValue(v []byte) (size int64, cookie []byte, err error) {
	if err := scanBER(v, 8, 4); err != nil {
		return 0, nil, err
	}
	p, err := ber.DecodePacketErr(v)
	if err != nil || p.ClassType != ber.ClassUniversal || p.Tag != ber.TagSequence || p.TagType != ber.TypeConstructed || len(p.Children) != 2 {
		return 0, nil, errMalformed
	}
	size, ok := universalInt(p.Children[0], ber.TagInteger)
	if !ok || size < 0 || !isUniversalOctetString(p.Children[1]) {
		return 0, nil, errMalformed
	}
	return size, p.Children[1].Data.Bytes(), nil
}
