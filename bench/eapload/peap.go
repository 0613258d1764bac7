package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"layeh.com/radius/rfc2759"

	"github.com/gatewayd/gatewayd/radiusserver/eap"
)

// authenticatePEAP runs one full PEAPv0/EAP-MSCHAPv2 session: true for an
// Accept (whose keys matched, after the server proved it knows the
// password in its MS-CHAPv2 Success), false for a Reject. Inside the
// tunnel PEAPv0 packets carry no EAP header, except EAP-TLV's.
func (c *client) authenticatePEAP(user, pass string) (bool, error) {
	tc, err := c.handshake()
	if err != nil {
		return c.ended(err, nil)
	}
	cs := tc.ConnectionState()
	msk, err := cs.ExportKeyingMaterial("client EAP encryption", nil, 64)
	if err != nil {
		return false, err
	}
	// The server speaks first inside the tunnel, after our ACK.
	c.ack = true
	var authCh, peerCh, nt []byte
	buf := make([]byte, 4096)
	for range 8 {
		n, err := tc.Read(buf)
		if err != nil {
			if c.final != nil {
				return c.ended(errEnded, msk)
			}
			return false, fmt.Errorf("PEAP inner read: %w", err)
		}
		b := buf[:n]
		var out []byte
		switch {
		case len(b) >= 5 && b[0] == eap.CodeRequest && int(binary.BigEndian.Uint16(b[2:4])) == len(b) && b[4] == eap.TypeTLV:
			// Result TLV (type 3): answer with the same status.
			status := resultStatus(b[5:])
			if status == 0 {
				return false, errors.New("EAP-TLV without a Result TLV")
			}
			tlv := []byte{0x80, 0x03, 0x00, 0x02, byte(status >> 8), byte(status)}
			out = eap.Packet{Code: eap.CodeResponse, ID: b[1], Type: eap.TypeTLV, Data: tlv}.Marshal()
		case len(b) >= 1 && b[0] == eap.TypeIdentity:
			out = append([]byte{eap.TypeIdentity}, user...)
		case len(b) >= 2 && b[0] == eap.TypeMSCHAPv2:
			d := b[1:]
			switch d[0] {
			case 1: // Challenge: OpCode, MS-CHAPv2-ID, MS-Length, Value-Size 16, challenge, name
				if len(d) < 5+16 || d[4] != 16 {
					return false, errors.New("malformed MS-CHAPv2 Challenge")
				}
				authCh = append([]byte(nil), d[5:21]...)
				peerCh = make([]byte, 16)
				rand.Read(peerCh)
				nt, err = rfc2759.GenerateNTResponse(authCh, peerCh, []byte(user), []byte(pass))
				if err != nil {
					return false, err
				}
				val := append(append(append(append([]byte{}, peerCh...), make([]byte, 8)...), nt...), 0)
				msg := []byte{2, d[1]}
				msg = binary.BigEndian.AppendUint16(msg, uint16(4+1+49+len(user)))
				msg = append(append(append(msg, 49), val...), user...)
				out = append([]byte{eap.TypeMSCHAPv2}, msg...)
			case 3: // Success: "S=<authenticator response> M=..."
				if nt == nil {
					return false, errors.New("MS-CHAPv2 Success before a Response")
				}
				want, err := rfc2759.GenerateAuthenticatorResponse(authCh, peerCh, nt, []byte(user), []byte(pass))
				if err != nil {
					return false, err
				}
				if len(d) < 4 || !strings.HasPrefix(string(d[4:]), want) {
					return false, errors.New("the server's MS-CHAPv2 authenticator response is wrong")
				}
				out = []byte{eap.TypeMSCHAPv2, 3}
			case 4: // Failure
				out = []byte{eap.TypeMSCHAPv2, 4}
			default:
				return false, fmt.Errorf("MS-CHAPv2 opcode %d", d[0])
			}
		default:
			return false, fmt.Errorf("unexpected PEAP inner packet %x", b[:min(len(b), 8)])
		}
		if _, err := tc.Write(out); err != nil {
			return false, err
		}
	}
	return false, errors.New("PEAP: no end after 8 inner rounds")
}

// resultStatus finds the Result TLV's status; 0 when absent.
func resultStatus(b []byte) uint16 {
	for len(b) >= 4 {
		t := binary.BigEndian.Uint16(b[0:2]) & 0x3fff
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if 4+l > len(b) {
			return 0
		}
		if t == 3 && l == 2 {
			return binary.BigEndian.Uint16(b[4:6])
		}
		b = b[4+l:]
	}
	return 0
}
