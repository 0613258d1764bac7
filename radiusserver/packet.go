package radiusserver

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"

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
		off += l
	}
	return f, nil
}

var zero16 [16]byte

// verifyMA checks a request's Message-Authenticator (RFC 3579 §3.2):
// HMAC-MD5 keyed by the shared secret over the whole packet, with the
// Message-Authenticator value taken as 16 zero octets.
func verifyMA(f frame, secret []byte) bool {
	if f.maOff == 0 {
		return false
	}
	mac := hmac.New(md5.New, secret)
	mac.Write(f.b[:f.maOff])
	mac.Write(zero16[:])
	mac.Write(f.b[f.maOff+16:])
	var sum [md5.Size]byte
	return hmac.Equal(mac.Sum(sum[:0]), f.b[f.maOff:f.maOff+16])
}

// encodeResponse builds a signed response to a request with the given
// identifier and request authenticator. The Message-Authenticator is the
// first attribute (BlastRADIUS mitigation) and is computed over the
// response with the request authenticator in place, before the Response
// Authenticator (RFC 3579 §3.2, RFC 2865 §3).
func encodeResponse(code radius.Code, identifier byte, reqAuth [16]byte, secret []byte, attrs []*radius.AVP) ([]byte, error) {
	p := &radius.Packet{Code: code, Identifier: identifier, Authenticator: reqAuth}
	p.Attributes = make(radius.Attributes, 0, 1+len(attrs))
	p.Attributes = append(p.Attributes, &radius.AVP{Type: rfc2869.MessageAuthenticator_Type, Attribute: zero16[:]})
	p.Attributes = append(p.Attributes, attrs...)
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	// MarshalBinary skips attributes it cannot encode; check the
	// Message-Authenticator sits where it must.
	if len(b) < headerLen+maAttrLen || radius.Type(b[headerLen]) != rfc2869.MessageAuthenticator_Type || b[headerLen+1] != maAttrLen {
		return nil, errors.New("radiusserver: response encoding lost the Message-Authenticator")
	}
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	mac.Sum(b[headerLen+2 : headerLen+2 : headerLen+maAttrLen])
	h := md5.New()
	h.Write(b) // code, id, length, request authenticator, attributes
	h.Write(secret)
	h.Sum(b[4:4:headerLen])
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
	h := md5.New()
	h.Write(resp[:4])
	h.Write(reqAuth[:])
	h.Write(resp[headerLen:])
	h.Write(secret)
	var sum [md5.Size]byte
	if !hmac.Equal(h.Sum(sum[:0]), resp[4:headerLen]) {
		return false
	}
	if f.maOff == 0 {
		return true
	}
	c := append([]byte(nil), resp...)
	copy(c[4:headerLen], reqAuth[:])
	return verifyMA(frame{b: c, maOff: f.maOff}, secret)
}
