package eap

import (
	"encoding/binary"
	"errors"
)

// Diameter AVPs carried inside the TTLS tunnel (RFC 5281 §10).
const (
	avpUserName     = 1
	avpUserPassword = 2

	avpFlagVendor    = 0x80
	avpFlagMandatory = 0x40
)

var (
	errAVPShort  = errors.New("eap: truncated diameter AVP")
	errAVPLength = errors.New("eap: diameter AVP length out of bounds")
)

// AVP is one diameter AVP.
type AVP struct {
	Code     uint32
	Flags    uint8
	VendorID uint32
	Data     []byte // aliases the parsed buffer
}

// Mandatory reports the M bit.
func (a AVP) Mandatory() bool { return a.Flags&avpFlagMandatory != 0 }

// ParseAVPs decodes a sequence of diameter AVPs. Each AVP's Length covers
// its header and data; AVPs are padded to 4 octets (the last one's
// padding may be missing).
func ParseAVPs(b []byte) ([]AVP, error) {
	var out []AVP
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, errAVPShort
		}
		a := AVP{Code: binary.BigEndian.Uint32(b[0:4]), Flags: b[4]}
		l := int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		hdr := 8
		if a.Flags&avpFlagVendor != 0 {
			if len(b) < 12 {
				return nil, errAVPShort
			}
			a.VendorID = binary.BigEndian.Uint32(b[8:12])
			hdr = 12
		}
		if l < hdr || l > len(b) {
			return nil, errAVPLength
		}
		a.Data = b[hdr:l]
		out = append(out, a)
		padded := (l + 3) &^ 3
		if padded > len(b) {
			padded = len(b) // the last AVP may come unpadded
		}
		b = b[padded:]
		if len(out) > 256 {
			return nil, errAVPLength
		}
	}
	return out, nil
}

// AppendAVP encodes one AVP (mandatory, no vendor when vendor is 0),
// padded to 4 octets.
func AppendAVP(b []byte, code uint32, vendor uint32, mandatory bool, data []byte) []byte {
	flags := uint8(0)
	if mandatory {
		flags |= avpFlagMandatory
	}
	hdr := 8
	if vendor != 0 {
		flags |= avpFlagVendor
		hdr = 12
	}
	l := hdr + len(data)
	b = binary.BigEndian.AppendUint32(b, code)
	b = append(b, flags, byte(l>>16), byte(l>>8), byte(l))
	if vendor != 0 {
		b = binary.BigEndian.AppendUint32(b, vendor)
	}
	b = append(b, data...)
	for range (4 - l%4) % 4 {
		b = append(b, 0)
	}
	return b
}
