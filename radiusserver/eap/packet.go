// Package eap is the EAP server of gatewayd's RADIUS door (RFC 3748,
// RFC 3579): Identity, NAK, and EAP-TTLS (RFC 5281) with inner PAP, over
// crypto/tls with fragmentation (L/M/S flags) and bounded reassembly.
//
// It knows nothing of users or directories: the inner password goes to a
// PAPFunc the door supplies (which calls authn.Login), and the door turns
// a Response into an Access-Challenge, Access-Accept or Access-Reject.
// See README.md for the session policy.
package eap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EAP codes (RFC 3748 §4).
const (
	CodeRequest  = 1
	CodeResponse = 2
	CodeSuccess  = 3
	CodeFailure  = 4
)

// EAP method types.
const (
	TypeIdentity     = 1
	TypeNotification = 2
	TypeNAK          = 3
	TypeMD5          = 4
	TypeTLS          = 13
	TypeTTLS         = 21
	TypePEAP         = 25
	TypeMSCHAPv2     = 26
	TypeExpanded     = 254
)

// MaxPacket bounds one EAP packet as the door receives it: the
// EAP-Message attributes of one RADIUS packet (at most 4096 bytes).
const MaxPacket = 4096

var (
	errShort  = errors.New("eap: shorter than an EAP header")
	errLength = errors.New("eap: Length is longer than the octets received")
	errNoType = errors.New("eap: Request/Response without a Type")
	errCode   = errors.New("eap: unknown code")
	errBig    = errors.New("eap: packet too large")
)

// Packet is one EAP packet.
type Packet struct {
	Code uint8
	ID   uint8
	// Type is the method of a Request or Response (0 for Success and
	// Failure); Data is what follows it. Data aliases the parsed buffer.
	Type uint8
	Data []byte
}

// Parse decodes one EAP packet. Octets past the Length field are padding
// and are ignored (legal); a Length longer than b is malformed.
func Parse(b []byte) (Packet, error) {
	if len(b) > MaxPacket {
		return Packet{}, errBig
	}
	if len(b) < 4 {
		return Packet{}, errShort
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 4 {
		return Packet{}, errShort
	}
	if n > len(b) {
		return Packet{}, errLength
	}
	b = b[:n]
	p := Packet{Code: b[0], ID: b[1]}
	switch p.Code {
	case CodeRequest, CodeResponse:
		if n < 5 {
			return Packet{}, errNoType
		}
		p.Type, p.Data = b[4], b[5:]
	case CodeSuccess, CodeFailure:
		// RFC 3748 §4.2: no data; anything more is ignored.
	default:
		return Packet{}, fmt.Errorf("%w %d", errCode, p.Code)
	}
	return p, nil
}

// Marshal encodes p. Data is copied.
func (p Packet) Marshal() []byte {
	if p.Code == CodeSuccess || p.Code == CodeFailure {
		return []byte{p.Code, p.ID, 0, 4}
	}
	b := make([]byte, 5+len(p.Data))
	b[0], b[1] = p.Code, p.ID
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[4] = p.Type
	copy(b[5:], p.Data)
	return b
}

// Failure is an encoded EAP-Failure with the given identifier.
func Failure(id uint8) []byte { return Packet{Code: CodeFailure, ID: id}.Marshal() }

// Success is an encoded EAP-Success with the given identifier.
func Success(id uint8) []byte { return Packet{Code: CodeSuccess, ID: id}.Marshal() }
