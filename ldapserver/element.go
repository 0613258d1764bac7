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
// same limits scanBER enforces (it runs countBER first). The elements and
// their child lists come out of two slices sized by that count, so
// a request costs two allocations, not two per element.
func parseElement(b []byte, maxElems, maxDepth int) (*element, error) {
	count, err := countBER(b, maxElems, maxDepth)
	if err != nil {
		return nil, err
	}
	sl := elemSlab{elems: make([]element, count), kids: make([]*element, count)}
	e, n := sl.decode(b)
	if e == nil || n != len(b) {
		return nil, errMalformed
	}
	return e, nil
}

// elemSlab hands out the elements of one decode.
type elemSlab struct {
	elems []element
	kids  []*element
}

// readHeader reads the identifier and length octets of the element at
// b[pos:], which must end by limit: its identifier octet and tag number,
// and where its contents start and how long they are. Tag numbers take at
// most 4 octets and lengths at most 4; indefinite lengths are refused.
// This is the one place BER headers are read (countBER, elemSlab.decode and
// opIdentifier all come here).
func readHeader(b []byte, pos, limit int) (id byte, tag ber.Tag, start, n int, err error) {
	if pos >= limit {
		return 0, 0, 0, 0, errMalformed
	}
	id = b[pos]
	pos++
	tag = ber.Tag(id & 0x1f)
	if tag == 0x1f {
		tag = 0
		for k := 0; ; k++ {
			if pos >= limit || k >= 4 {
				return 0, 0, 0, 0, errMalformed
			}
			c := b[pos]
			pos++
			tag = tag<<7 | ber.Tag(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
		if tag < 0x1f {
			// X.690 8.1.2.4: the long form is for tag numbers of 31 and
			// up. Refusing it also means the identifier octet alone
			// names every LDAP operation (see opIdentifier).
			return 0, 0, 0, 0, errMalformed
		}
	}
	if pos >= limit {
		return 0, 0, 0, 0, errMalformed
	}
	n = int(b[pos])
	pos++
	switch {
	case n == 0x80:
		return 0, 0, 0, 0, errIndefiniteLen
	case n == 0xff:
		return 0, 0, 0, 0, errMalformed
	case n > 0x80:
		k := n & 0x7f
		if k > 4 {
			return 0, 0, 0, 0, errMalformed
		}
		n = 0
		for range k {
			if pos >= limit {
				return 0, 0, 0, 0, errMalformed
			}
			n = n<<8 | int(b[pos])
			pos++
		}
	}
	if n > limit-pos {
		return 0, 0, 0, 0, errMalformed
	}
	return id, tag, pos, n, nil
}

// decode decodes the element at the start of b and returns it with its
// encoded size. b has passed scanBER, so the structure is sound and the
// slab has room for every element; the checks here only keep a bug from
// becoming a panic.
func (sl *elemSlab) decode(b []byte) (*element, int) {
	id, tag, start, n, err := readHeader(b, 0, len(b))
	if err != nil || len(sl.elems) == 0 {
		return nil, 0
	}
	e := &sl.elems[0]
	sl.elems = sl.elems[1:]
	*e = element{class: ber.Class(id & 0xc0), constructed: id&0x20 != 0, tag: tag,
		data: b[start : start+n], raw: b[:start+n]}
	if e.constructed {
		k := 0
		for pos := 0; pos < len(e.data); k++ {
			_, _, cs, cn, err := readHeader(e.data, pos, len(e.data))
			if err != nil {
				return nil, 0
			}
			pos = cs + cn
		}
		if k > len(sl.kids) {
			return nil, 0
		}
		e.children = sl.kids[:0:k]
		sl.kids = sl.kids[k:]
		for rest := e.data; len(rest) > 0; {
			c, size := sl.decode(rest)
			if c == nil {
				return nil, 0
			}
			e.children = append(e.children, c)
			rest = rest[size:]
		}
	}
	return e, start + n
}

// opIdentifier returns the identifier octet of an LDAPMessage's
// protocolOp (the element after the messageID) without decoding it; ok is
// false when the frame is too broken to tell (decodeMessage refuses it).
func opIdentifier(frame []byte) (id byte, ok bool) {
	_, _, pos, _, err := readHeader(frame, 0, len(frame)) // into the SEQUENCE
	if err != nil {
		return 0, false
	}
	_, _, start, n, err := readHeader(frame, pos, len(frame)) // the messageID
	if err != nil || start+n >= len(frame) {
		return 0, false
	}
	return frame[start+n], true
}
