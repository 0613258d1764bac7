package eap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strings"
)

// PEAPv0 with inner EAP-MSCHAPv2 (draft-kamath-pppext-peapv0,
// draft-kamath-pppext-eap-mschapv2, RFC 2759). Inside the tunnel PEAPv0
// leaves out the EAP header (Code, Identifier, Length) of every packet
// but the EAP-TLV ones (type 33), which carry it in full; wpa_supplicant,
// Windows and hostapd all do so. After the inner method, a Result TLV
// (success or failure) is exchanged before the outer EAP-Success or
// EAP-Failure: Windows requires it.

// MethodPEAPMSCHAPv2 is PEAP's method name in events and metrics.
const MethodPEAPMSCHAPv2 = "peap/mschapv2"

// TypeTLV is the EAP-TLV type (PEAP extensions).
const TypeTLV = 33

// MS-CHAPv2 opcodes.
const (
	msChallenge = 1
	msResponse  = 2
	msSuccess   = 3
	msFailure   = 4
)

// Result TLV (type 3) status values.
const (
	tlvResultSuccess = 1
	tlvResultFailure = 2
)

// MSCHAPv2Func verifies an inner MS-CHAPv2 response (RFC 2759) for user
// (the name the peer hashed, without a DOMAIN\ prefix) under method
// (MethodPEAPMSCHAPv2 or MethodTTLSMSCHAPv2, for the event). On success
// it returns the authenticator response ("S=" and 40 hex digits). The NT
// hash never reaches this package: the door's function (authn) holds it.
type MSCHAPv2Func func(ctx context.Context, method, user string, authChallenge, peerChallenge, ntResponse []byte) (authResponse string, ok bool)

// serverName is the Name of our MS-CHAPv2 Challenge.
const serverName = "gatewayd"

// peap stages, after the TLS handshake.
const (
	peapIdentity   = iota + 1 // sent the inner Identity request
	peapChallenge             // sent the MS-CHAPv2 Challenge
	peapSuccess               // sent MS-CHAPv2 Success
	peapFailure               // sent MS-CHAPv2 Failure
	peapResultOK              // sent Result TLV success
	peapResultFail            // sent Result TLV failure
)

type peapState struct {
	stage     int
	innerID   uint8 // identifier of the inner requests (TLV carries it)
	msID      uint8
	challenge [16]byte
}

// peapSend encrypts one inner packet and sends the first fragment.
func (s *Server) peapSend(ss *session, p Packet, inner []byte) Response {
	out, err := ss.eng.write(inner)
	if err != nil {
		return ss.fail(p, "tls_failed")
	}
	ss.out.load(out)
	return s.request(ss, ss.out.next(0, s.fragmentSize(ss)))
}

// innerRequest encodes a PEAPv0 inner request: the full EAP packet for
// EAP-TLV, Type and Data only for everything else.
func (ps *peapState) innerRequest(typ uint8, data []byte) []byte {
	ps.innerID++
	if typ == TypeTLV {
		return Packet{Code: CodeRequest, ID: ps.innerID, Type: typ, Data: data}.Marshal()
	}
	return append([]byte{typ}, data...)
}

// parseInner decodes a PEAPv0 inner response: a full EAP header when the
// octets are one (EAP-TLV; some peers send it for others too), else Type
// and Data.
func parseInner(b []byte) (typ uint8, data []byte, ok bool) {
	if len(b) >= 5 && b[0] == CodeResponse && int(binary.BigEndian.Uint16(b[2:4])) == len(b) {
		return b[4], b[5:], true
	}
	if len(b) < 1 {
		return 0, nil, false
	}
	return b[0], b[1:], true
}

// peapStart is the first inner round: the peer acknowledged our last
// handshake flight; ask for the inner identity.
func (s *Server) peapStart(ss *session, p Packet) Response {
	ss.peap = &peapState{}
	if _, err := rand.Read(ss.challenge()); err != nil {
		return ss.fail(p, "internal_error")
	}
	ss.peap.msID = ss.peap.challenge[0]
	ss.peap.stage = peapIdentity
	return s.peapSend(ss, p, ss.peap.innerRequest(TypeIdentity, nil))
}

func (ss *session) challenge() []byte { return ss.peap.challenge[:] }

// peapInner handles one decrypted inner response.
func (s *Server) peapInner(ctx context.Context, ss *session, req Request, p Packet, app []byte) Response {
	defer clear(app)
	ps := ss.peap
	if ps == nil {
		return ss.fail(p, "unexpected_inner_data")
	}
	typ, data, ok := parseInner(app)
	if !ok {
		return ss.fail(p, "malformed_inner")
	}
	switch ps.stage {
	case peapIdentity:
		if typ != TypeIdentity || len(data) == 0 || len(data) > 253 {
			return ss.fail(p, "malformed_inner")
		}
		ss.inner = stripDomain(string(data))
		ps.stage = peapChallenge
		return s.peapSend(ss, p, ps.innerRequest(TypeMSCHAPv2, msChallengePacket(ps.msID, ps.challenge[:])))
	case peapChallenge:
		if typ == TypeNAK {
			return s.peapResult(ss, p, false, "unsupported_inner_method")
		}
		if typ != TypeMSCHAPv2 {
			return ss.fail(p, "malformed_inner")
		}
		authResp, ok, bad := verifyMSCHAPv2Response(ctx, ss, req, MethodPEAPMSCHAPv2, ps.challenge[:], data)
		if bad != "" {
			return ss.fail(p, bad)
		}
		if !ok {
			// E=691 (authentication failure), no retry. The peer
			// acknowledges, then the Result TLV says failure.
			ps.stage = peapFailure
			return s.peapSend(ss, p, ps.innerRequest(TypeMSCHAPv2, msFailurePacket(ps.msID, ps.challenge[:])))
		}
		ss.remember(req)
		ps.stage = peapSuccess
		return s.peapSend(ss, p, ps.innerRequest(TypeMSCHAPv2, msPacket(msSuccess, ps.msID, authResp+" M=OK")))
	case peapSuccess:
		if typ != TypeMSCHAPv2 || len(data) < 1 || data[0] != msSuccess {
			return s.peapResult(ss, p, false, "")
		}
		return s.peapResult(ss, p, true, "")
	case peapFailure:
		return s.peapResult(ss, p, false, "")
	case peapResultOK, peapResultFail:
		if typ != TypeTLV {
			return ss.fail(p, "malformed_inner")
		}
		ss.finished = true
		if ps.stage == peapResultOK && resultTLV(data) == tlvResultSuccess {
			_, cs := ss.eng.state()
			msk, err := cs.ExportKeyingMaterial("client EAP encryption", nil, 64)
			if err != nil {
				return ss.fail(p, "no_keying_material")
			}
			return Response{Outcome: Accept, EAP: Success(p.ID), MSK: msk, Method: MethodPEAPMSCHAPv2, Identity: ss.inner, Login: ss.login}
		}
		return Response{Outcome: Reject, EAP: Failure(p.ID), Method: MethodPEAPMSCHAPv2, Identity: ss.identity(), Reason: ss.failReason}
	}
	return ss.fail(p, "unexpected_inner_data")
}

// peapResult sends the Result TLV; reason is kept for the final Reject.
func (s *Server) peapResult(ss *session, p Packet, ok bool, reason string) Response {
	ps := ss.peap
	status := uint16(tlvResultFailure)
	ps.stage = peapResultFail
	if ok {
		status, ps.stage = tlvResultSuccess, peapResultOK
	}
	ss.failReason = reason
	tlv := []byte{0x80, 0x03, 0x00, 0x02, byte(status >> 8), byte(status)}
	return s.peapSend(ss, p, ps.innerRequest(TypeTLV, tlv))
}

// resultTLV finds the Result TLV's status in TLV data; 0 when absent.
func resultTLV(b []byte) uint16 {
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

// parseMSCHAPv2Response reads an EAP-MSCHAPv2 Response (OpCode 2,
// MS-CHAPv2-ID, MS-Length, Value-Size 49, Value, Name): the peer
// challenge, the NT-Response and the Name without a DOMAIN\ prefix.
// verifyMSCHAPv2Response checks the peer's MS-CHAPv2 Response (the
// Type-Data of an inner EAP-MSCHAPv2 packet) against our challenge with
// req.MSCHAPv2, for PEAP and TTLS alike. The name in the Response becomes
// the session's inner identity (the outer one when it is empty). bad is
// the reject reason when the Response could not be checked at all.
func verifyMSCHAPv2Response(ctx context.Context, ss *session, req Request, method string, challenge, data []byte) (authResp string, ok bool, bad string) {
	peer, nt, name, parsed := parseMSCHAPv2Response(data)
	if !parsed {
		return "", false, "malformed_inner"
	}
	if name == "" {
		name = ss.inner
	}
	if len(name) > 253 {
		return "", false, "malformed_inner"
	}
	ss.inner = name
	if req.MSCHAPv2 == nil {
		return "", false, "internal_error"
	}
	authResp, ok = req.MSCHAPv2(ctx, method, name, challenge, peer, nt)
	ss.loginDone = true
	return authResp, ok, ""
}

func parseMSCHAPv2Response(data []byte) (peer, nt []byte, name string, ok bool) {
	if len(data) < 4+1+49 || data[0] != msResponse || data[4] != 49 {
		return nil, nil, "", false
	}
	v := data[5 : 5+49]
	return v[0:16], v[24:48], stripDomain(string(data[5+49:])), true
}

func msPacket(op, id uint8, msg string) []byte {
	b := []byte{op, id}
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(msg)))
	return append(b, msg...)
}

// stripDomain drops a DOMAIN\ prefix, as MS-CHAPv2 peers do before
// hashing the name into the challenge.
func stripDomain(name string) string {
	if i := strings.IndexByte(name, '\\'); i >= 0 {
		return name[i+1:]
	}
	return name
}
