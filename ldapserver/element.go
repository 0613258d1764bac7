package ldapserver

import (
	ber "github.com/go-asn1-ber/asn1-ber"
)

// element is one decoded BER element. Requests are decoded into these
// rather than go-asn1-ber packets: a packet costs several allocations and
// a copy of its contents per element, which made decoding a bind cost as
// much as answering it. data and raw alias the frame; nothing is copied.
type element struct {
	class       ber.Class
	constructed bool
	tag         ber.Tag
	data        []byte // the contents octets
	raw         []byte // identifier, length and contents
	children    []*element
}

// parseElement decodes b, which must hold exactly one element, with the
// same limits scanBER enforces (it runs scanBER first).
func parseElement(b []byte, maxElems, maxDepth int) (*element, error) {
	if err := scanBER(b, maxElems, maxDepth); err != nil {
		return nil, err
	}
	e, n := decodeElement(b)
	if e == nil || n != len(b) {
		return nil, errMalformed
	}
	return e, nil
}

// decodeElement decodes the element at the start of b and returns it with
// its encoded size. b has passed scanBER, so the structure is sound; the
// checks here only keep a bug from becoming a panic.
func decodeElement(b []byte) (*element, int) {
	if len(b) < 2 {
		return nil, 0
	}
	id := b[0]
	e := &element{class: ber.Class(id & 0xc0), constructed: id&0x20 != 0, tag: ber.Tag(id & 0x1f)}
	pos := 1
	if e.tag == 0x1f {
		e.tag = 0
		for {
			if pos >= len(b) {
				return nil, 0
			}
			c := b[pos]
			pos++
			e.tag = e.tag<<7 | ber.Tag(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	if pos >= len(b) {
		return nil, 0
	}
	l := int(b[pos])
	pos++
	if l > 0x80 {
		n := l & 0x7f
		l = 0
		for range n {
			if pos >= len(b) {
				return nil, 0
			}
			l = l<<8 | int(b[pos])
			pos++
		}
	} else if l == 0x80 {
		return nil, 0
	}
	if l < 0 || l > len(b)-pos {
		return nil, 0
	}
	e.data = b[pos : pos+l]
	e.raw = b[:pos+l]
	if e.constructed {
		for rest := e.data; len(rest) > 0; {
			c, n := decodeElement(rest)
			if c == nil {
				return nil, 0
			}
			e.children = append(e.children, c)
			rest = rest[n:]
		}
	}
	return e, pos + l
}

// opIdentifier returns the identifier octet of an LDAPMessage's
// protocolOp (the element after the messageID) without decoding it; ok is
// false when the frame is too broken to tell (decodeMessage refuses it).
func opIdentifier(frame []byte) (id byte, ok bool) {
	pos, _, ok := header(frame, 0) // into the SEQUENCE
	if !ok {
		return 0, false
	}
	start, n, ok := header(frame, pos) // the messageID
	if !ok || start+n >= len(frame) {
		return 0, false
	}
	return frame[start+n], true
}

// header reads the identifier and length of the element at pos and
// returns where its contents start and their length. It reads
// single-octet identifiers only (LDAP uses no others).
func header(b []byte, pos int) (start, n int, ok bool) {
	if pos+1 >= len(b) || b[pos]&0x1f == 0x1f {
		return 0, 0, false
	}
	l := int(b[pos+1])
	pos += 2
	if l > 0x80 {
		k := l & 0x7f
		if k > 4 || pos+k > len(b) {
			return 0, 0, false
		}
		l = 0
		for _, c := range b[pos : pos+k] {
			l = l<<8 | int(c)
		}
		pos += k
	}
	return pos, l, l != 0x80 && pos <= len(b)
}
