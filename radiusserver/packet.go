package radiusserver

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
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

// parsePacket is radius.Parse for a frame preparse accepted, in four
// allocations whatever the attribute count (layeh makes one per
// attribute and grows the list): the packet, its attributes, the list of
// pointers to them and one copy of the attribute bytes, which the values
// share. Like radius.Parse, the packet owns its bytes: b may be reused.
func parsePacket(f frame, secret []byte) *radius.Packet {
	p := &radius.Packet{Code: radius.Code(f.b[0]), Identifier: f.b[1], Secret: secret}
	copy(p.Authenticator[:], f.b[4:headerLen])
	if f.attrs == 0 {
		return p
	}
	data := append([]byte(nil), f.b[headerLen:]...)
	avps := make([]radius.AVP, f.attrs)
	p.Attributes = make(radius.Attributes, f.attrs)
	for i, off := 0, 0; i < f.attrs; i++ {
		l := int(data[off+1])
		avps[i].Type = radius.Type(data[off])
		if l > 2 {
			avps[i].Attribute = radius.Attribute(data[off+2 : off+l : off+l])
		}
		p.Attributes[i] = &avps[i]
		off += l
	}
	return p
}

var zero16 [16]byte

// scratch holds the contiguous MD5 input of one packet operation, so the
// per-packet sums run on md5.Sum without allocating: hmac.New and
// md5.New each allocate, and at tens of thousands of packets a second
// those allocations were a fifth of the door's garbage.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, md5BlockSize+maxPacketSize+64); return &b }}

const md5BlockSize = 64

// hmacMD5 is HMAC-MD5(key, msg) (RFC 2104) with the 16 octets of msg at
// zeroAt (when zeroAt > 0) taken as zeros: the Message-Authenticator
// computation of RFC 3579 §3.2. It allocates nothing and leaves no key
// material in the pooled buffer.
func hmacMD5(key, msg []byte, zeroAt int) [md5.Size]byte {
	var k [md5BlockSize]byte
	if len(key) > md5BlockSize {
		sum := md5.Sum(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	bp := scratch.Get().(*[]byte)
	buf := append((*bp)[:0], k[:]...)
	for i := range md5BlockSize {
		buf[i] ^= 0x36
	}
	buf = append(buf, msg...)
	if zeroAt > 0 {
		clear(buf[md5BlockSize+zeroAt : md5BlockSize+zeroAt+16])
	}
	inner := md5.Sum(buf)
	clear(buf[:md5BlockSize])
	*bp = buf[:0]
	scratch.Put(bp)
	var outer [md5BlockSize + md5.Size]byte
	for i := range md5BlockSize {
		outer[i] = k[i] ^ 0x5c
	}
	copy(outer[md5BlockSize:], inner[:])
	sum := md5.Sum(outer[:])
	clear(k[:])
	clear(outer[:md5BlockSize])
	return sum
}

// md5With is MD5(msg || secret), the Response Authenticator's sum (RFC
// 2865 §3), without allocating.
func md5With(msg, secret []byte) [md5.Size]byte {
	bp := scratch.Get().(*[]byte)
	buf := append(append((*bp)[:0], msg...), secret...)
	sum := md5.Sum(buf)
	clear(buf[len(msg):])
	*bp = buf[:0]
	scratch.Put(bp)
	return sum
}

// verifyMA checks a request's Message-Authenticator (RFC 3579 §3.2):
// HMAC-MD5 keyed by the shared secret over the whole packet, with the
// Message-Authenticator value taken as 16 zero octets.
func verifyMA(f frame, secret []byte) bool {
	if f.maOff == 0 {
		return false
	}
	sum := hmacMD5(secret, f.b, f.maOff)
	return hmac.Equal(sum[:], f.b[f.maOff:f.maOff+16])
}

// encodeResponse builds a signed response to a request with the given
// identifier and request authenticator. The Message-Authenticator is the
// first attribute (BlastRADIUS mitigation) and is computed over the
// response with the request authenticator in place, before the Response
// Authenticator (RFC 3579 §3.2, RFC 2865 §3). The answer is one
// allocation: it is kept in the duplicate cache.
func encodeResponse(code radius.Code, identifier byte, reqAuth [16]byte, secret []byte, attrs []*radius.AVP) ([]byte, error) {
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
	ma := hmacMD5(secret, b, 0)
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
	return verifyMA(frame{b: c, maOff: f.maOff}, secret)
}
