package radiusserver

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"

	"layeh.com/radius"
	"layeh.com/radius/rfc2869"
)

const (
	// maxPacketSize is RFC 2865's limit (layeh: radius.MaxPacketLength).
	maxPacketSize = radius.MaxPacketLength
	headerLen     = 20
	maAttrLen     = 18 // type, length, 16-byte HMAC-MD5
)

var (
	errShort       = errors.New("shorter than a RADIUS header")
	errLength      = errors.New("bad length field")
	errAttrs       = errors.New("malformed attributes")
	errMALength    = errors.New("Message-Authenticator is not 16 bytes")
	errMADuplicate = errors.New("more than one Message-Authenticator")
)

// frame is the result of the cheap pre-parse done before any other work:
// the packet cut to its Length field and where its Message-Authenticator
// value sits (0 when absent).
type frame struct {
	b     []byte
	maOff int
	attrs int // how many attributes
}

// preparse checks the header and walks the attributes without copying
// them, to find the Message-Authenticator.
func preparse(b []byte) (frame, error) {
	if len(b) < headerLen {
		return frame{}, errShort
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < headerLen || n > maxPacketSize || n > len(b) {
		return frame{}, errLength
	}
	// Octets past Length are padding and are ignored (RFC 2865 §3).
	b = b[:n]
	f := frame{b: b}
	for off := headerLen; off < n; {
		if n-off < 2 {
			return frame{}, errAttrs
		}
		l := int(b[off+1])
		if l < 2 || off+l > n {
			return frame{}, errAttrs
		}
		if radius.Type(b[off]) == rfc2869.MessageAuthenticator_Type {
			if l != maAttrLen {
				return frame{}, errMALength
			}
			if f.maOff != 0 {
				return frame{}, errMADuplicate
			}
			f.maOff = off + 2
		}
		f.attrs++
		off += l
	}
	return f, nil
}

// parsePacket is radius.Parse for a frame preparse accepted. With a nil
// sc it makes four allocations whatever the attribute count (layeh makes
// one per attribute and grows the list): the packet, its attributes, the
// list of pointers to them and one copy of the attribute bytes, which the
// values share. With sc it makes none: the packet lives in sc and is
// valid until sc's next use, which is what a reader answering inline
// wants (at tens of thousands of requests a second those four were most
// of a cached login's garbage). Like radius.Parse, the packet owns its
// bytes: b may be reused.
func parsePacket(f frame, secret []byte, sc *packetScratch) *radius.Packet {
	if sc == nil {
		sc = new(packetScratch)
	}
	p := &sc.p
	*p = radius.Packet{Code: radius.Code(f.b[0]), Identifier: f.b[1], Secret: secret}
	copy(p.Authenticator[:], f.b[4:headerLen])
	if f.attrs == 0 {
		return p
	}
	sc.data = append(sc.data[:0], f.b[headerLen:]...)
	data := sc.data
	sc.avps = slices.Grow(sc.avps[:0], f.attrs)[:f.attrs]
	sc.attrs = slices.Grow(sc.attrs[:0], f.attrs)[:f.attrs]
	avps := sc.avps
	for i, off := 0, 0; i < f.attrs; i++ {
		l := int(data[off+1])
		avps[i] = radius.AVP{Type: radius.Type(data[off])}
		if l > 2 {
			avps[i].Attribute = radius.Attribute(data[off+2 : off+l : off+l])
		}
		sc.attrs[i] = &avps[i]
		off += l
	}
	// Full slices: a caller appending to the packet's attributes gets a
	// new array rather than writing into sc's.
	p.Attributes = sc.attrs[:f.attrs:f.attrs]
	return p
}

// packetScratch is the memory parsePacket reuses; one per goroutine.
type packetScratch struct {
	p     radius.Packet
	avps  []radius.AVP
	attrs radius.Attributes
	data  []byte
}

var zero16 [16]byte

// macKey is a shared secret's HMAC-MD5 key schedule (RFC 2104): the MD5
// states after the inner and the outer padded-key block, computed once
// per client. Each Message-Authenticator then hashes only the packet and
// the inner sum, two MD5 blocks fewer than keying from the secret each
// time (what crypto/hmac's Reset does too). The states are as secret as
// the key; wipe clears them.
type macKey struct {
	inner, outer []byte // marshaled MD5 states
}

func newMACKey(secret []byte) *macKey {
	var k [md5BlockSize]byte
	if len(secret) > md5BlockSize {
		sum := md5.Sum(secret)
		copy(k[:], sum[:])
	} else {
		copy(k[:], secret)
	}
	state := func(pad byte) []byte {
		var b [md5BlockSize]byte
		for i := range b {
			b[i] = k[i] ^ pad
		}
		h := md5.New()
		h.Write(b[:])
		clear(b[:])
		st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic("radiusserver: crypto/md5 state does not marshal: " + err.Error())
		}
		return st
	}
	m := &macKey{inner: state(0x36), outer: state(0x5c)}
	clear(k[:])
	return m
}

func (m *macKey) wipe() {
	clear(m.inner)
	clear(m.outer)
}

// macHash is a pooled MD5 whose state a macKey is loaded into; out keeps
// Sum from allocating.
type macHash struct {
	h   hash.Hash
	out [md5.Size]byte
}

var macHashes = sync.Pool{New: func() any { return &macHash{h: md5.New()} }}

// md5Blank is a fresh MD5's state. Loading it, unlike Reset, also clears
// the digest's block buffer, so a pooled hash keeps neither a key state
// nor the tail of what it hashed (the secret, for md5With).
var md5Blank = func() []byte {
	st, err := md5.New().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("radiusserver: crypto/md5 state does not marshal: " + err.Error())
	}
	return st
}()

func (mh *macHash) load(state []byte) {
	if err := mh.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		panic("radiusserver: crypto/md5 state does not unmarshal: " + err.Error())
	}
}

// put scrubs mh and returns it to the pool.
func (mh *macHash) put() {
	mh.load(md5Blank)
	clear(mh.out[:])
	macHashes.Put(mh)
}

// sum is HMAC-MD5 of msg with the 16 octets at zeroAt (when zeroAt > 0)
// taken as zeros: the Message-Authenticator computation of RFC 3579 §3.2.
// It allocates nothing.
func (m *macKey) sum(msg []byte, zeroAt int) [md5.Size]byte {
	mh := macHashes.Get().(*macHash)
	mh.load(m.inner)
	if zeroAt > 0 {
		mh.h.Write(msg[:zeroAt])
		mh.h.Write(zero16[:])
		mh.h.Write(msg[zeroAt+16:])
	} else {
		mh.h.Write(msg)
	}
	inner := mh.h.Sum(mh.out[:0])
	mh.load(m.outer)
	mh.h.Write(inner)
	sum := [md5.Size]byte(mh.h.Sum(mh.out[:0]))
	mh.put()
	return sum
}

const md5BlockSize = 64

// md5With is MD5(msg || secret), the Response Authenticator's sum (RFC
// 2865 §3), without allocating.
func md5With(msg, secret []byte) [md5.Size]byte {
	mh := macHashes.Get().(*macHash) // blank: put scrubbed it
	mh.h.Write(msg)
	mh.h.Write(secret)
	sum := [md5.Size]byte(mh.h.Sum(mh.out[:0]))
	mh.put()
	return sum
}

// verifyMA checks a request's Message-Authenticator (RFC 3579 §3.2):
// HMAC-MD5 keyed by the shared secret over the whole packet, with the
// Message-Authenticator value taken as 16 zero octets.
func verifyMA(f frame, key *macKey) bool {
	if f.maOff == 0 {
		return false
	}
	sum := key.sum(f.b, f.maOff)
	return hmac.Equal(sum[:], f.b[f.maOff:f.maOff+16])
}

// encodeResponse builds a signed response to a request with the given
// identifier and request authenticator. The Message-Authenticator is the
// first attribute (BlastRADIUS mitigation) and is computed over the
// response with the request authenticator in place, before the Response
// Authenticator (RFC 3579 §3.2, RFC 2865 §3). The answer is one
// allocation: it is kept in the duplicate cache.
func encodeResponse(code radius.Code, identifier byte, reqAuth [16]byte, secret []byte, key *macKey, attrs []*radius.AVP) ([]byte, error) {
	n := headerLen + maAttrLen
	for _, a := range attrs {
		if len(a.Attribute) > 253 {
			return nil, fmt.Errorf("radiusserver: reply attribute %d is %d bytes, more than 253", a.Type, len(a.Attribute))
		}
		n += 2 + len(a.Attribute)
	}
	if n > maxPacketSize {
		return nil, fmt.Errorf("radiusserver: response of %d bytes is over the %d-byte limit", n, maxPacketSize)
	}
	b := make([]byte, headerLen, n)
	b[0], b[1] = byte(code), identifier
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	copy(b[4:headerLen], reqAuth[:])
	b = append(b, byte(rfc2869.MessageAuthenticator_Type), maAttrLen)
	b = append(b, zero16[:]...)
	for _, a := range attrs {
		b = append(b, byte(a.Type), byte(2+len(a.Attribute)))
		b = append(b, a.Attribute...)
	}
	ma := key.sum(b, 0)
	copy(b[headerLen+2:headerLen+maAttrLen], ma[:])
	ra := md5With(b, secret) // code, id, length, request authenticator, attributes
	copy(b[4:headerLen], ra[:])
	return b, nil
}

// verifyResponse checks a response the way a NAS does: the Response
// Authenticator, and the Message-Authenticator when present. Used by the
// tests, the fuzz target and the load tool's twin.
func verifyResponse(resp []byte, reqAuth [16]byte, secret []byte) bool {
	f, err := preparse(resp)
	if err != nil || len(f.b) != len(resp) {
		return false
	}
	c := append([]byte(nil), resp...)
	copy(c[4:headerLen], reqAuth[:])
	sum := md5With(c, secret)
	if !hmac.Equal(sum[:], resp[4:headerLen]) {
		return false
	}
	if f.maOff == 0 {
		return true
	}
	key := newMACKey(secret)
	defer key.wipe()
	return verifyMA(frame{b: c, maOff: f.maOff}, key)
}
