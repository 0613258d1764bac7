package eap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// EAP-TTLS with inner EAP-MSCHAPv2 (RFC 5281 §11.2.4): inside the tunnel
// the inner EAP packets travel whole (headers included) in EAP-Message
// AVPs. The peer starts with its EAP-Response/Identity; then MS-CHAPv2
// runs as in PEAP (Challenge, Response, Success or Failure, the peer's
// ack), checked by the same MSCHAPv2Func against the user's opt-in NT
// hash, and the outer EAP-Success or EAP-Failure follows at once (no
// Result TLV: that is PEAP's). The MSK is TTLS's ("ttls keying
// material"); the inner method's keys are not used.

// MethodTTLSMSCHAPv2 is TTLS/EAP-MSCHAPv2's method name in events and
// metrics, and, as "ttls-mschapv2", its name in Config.Methods.
const MethodTTLSMSCHAPv2 = "eap-ttls/mschapv2"

// avpEAPMessage is the EAP-Message AVP (RADIUS attribute 79).
const avpEAPMessage = 79

// inner EAP stages.
const (
	ttlsEAPChallenge = iota + 1 // sent the MS-CHAPv2 Challenge
	ttlsEAPSuccess              // sent MS-CHAPv2 Success
	ttlsEAPFailure              // sent MS-CHAPv2 Failure
)

type ttlsEAPState struct {
	stage     int
	innerID   uint8 // the outstanding inner Request's Identifier
	msID      uint8
	challenge [16]byte
}

// ttlsEAPSend sends one inner EAP Request in an EAP-Message AVP.
func (s *Server) ttlsEAPSend(ss *session, p Packet, typ uint8, data []byte) Response {
	ts := ss.ttlsEAP
	ts.innerID++
	inner := Packet{Code: CodeRequest, ID: ts.innerID, Type: typ, Data: data}.Marshal()
	return s.peapSend(ss, p, AppendAVP(nil, avpEAPMessage, 0, true, inner))
}

// ttlsEAP handles one inner EAP Response (the EAP-Message AVP's data).
func (s *Server) ttlsEAP(ctx context.Context, ss *session, req Request, p Packet, msg []byte) Response {
	ip, err := Parse(msg)
	if err != nil || ip.Code != CodeResponse {
		return ss.fail(p, "malformed_inner")
	}
	ts := ss.ttlsEAP
	if ts == nil {
		// The peer's first inner packet: its identity.
		if ip.Type != TypeIdentity || len(ip.Data) == 0 || len(ip.Data) > 253 {
			return ss.fail(p, "malformed_inner")
		}
		ss.inner = stripDomain(string(ip.Data))
		if !s.ttlsMSCHAPv2 {
			// Recorded under the inner identity, as unsupported_method.
			r := ss.fail(p, "unsupported_inner_method")
			r.Method = MethodTTLSMSCHAPv2
			return r
		}
		ts = &ttlsEAPState{innerID: ip.ID}
		ss.ttlsEAP = ts
		if _, err := rand.Read(ts.challenge[:]); err != nil {
			return ss.fail(p, "internal_error")
		}
		ts.msID = ts.challenge[0]
		ts.stage = ttlsEAPChallenge
		return s.ttlsEAPSend(ss, p, TypeMSCHAPv2, msChallengePacket(ts.msID, ts.challenge[:]))
	}
	if ip.ID != ts.innerID {
		return ss.fail(p, "malformed_inner")
	}
	switch ts.stage {
	case ttlsEAPChallenge:
		if ip.Type == TypeNAK {
			return ss.fail(p, "unsupported_inner_method")
		}
		if ip.Type != TypeMSCHAPv2 {
			return ss.fail(p, "malformed_inner")
		}
		authResp, ok, bad := verifyMSCHAPv2Response(ctx, ss, req, MethodTTLSMSCHAPv2, ts.challenge[:], ip.Data)
		if bad != "" {
			return ss.fail(p, bad)
		}
		if !ok {
			ts.stage = ttlsEAPFailure
			return s.ttlsEAPSend(ss, p, TypeMSCHAPv2, msFailurePacket(ts.msID, ts.challenge[:]))
		}
		ss.remember(req)
		ts.stage = ttlsEAPSuccess
		return s.ttlsEAPSend(ss, p, TypeMSCHAPv2, msPacket(msSuccess, ts.msID, authResp+" M=OK"))
	case ttlsEAPSuccess:
		ss.finished = true
		if ip.Type != TypeMSCHAPv2 || len(ip.Data) < 1 || ip.Data[0] != msSuccess {
			return Response{Outcome: Reject, EAP: Failure(p.ID), Method: MethodTTLSMSCHAPv2, Identity: ss.inner, Reason: "malformed_inner"}
		}
		_, cs := ss.eng.state()
		msk, err := cs.ExportKeyingMaterial("ttls keying material", nil, 64)
		if err != nil {
			return ss.fail(p, "no_keying_material")
		}
		return Response{Outcome: Accept, EAP: Success(p.ID), MSK: msk, Method: MethodTTLSMSCHAPv2, Identity: ss.inner, Login: ss.login}
	case ttlsEAPFailure:
		// The peer acknowledged our MS-CHAPv2 Failure; the inner login
		// decided (Reason empty).
		ss.finished = true
		return Response{Outcome: Reject, EAP: Failure(p.ID), Method: MethodTTLSMSCHAPv2, Identity: ss.inner}
	}
	return ss.fail(p, "unexpected_inner_data")
}

// msChallengePacket is an MS-CHAPv2 Challenge (OpCode 1, MS-CHAPv2-ID,
// MS-Length, Value-Size 16, the challenge, our Name).
// msFailurePacket is the MS-CHAPv2 Failure for a wrong password: E=691
// (authentication failure), no retry (RFC 2759 §6).
func msFailurePacket(id uint8, challenge []byte) []byte {
	m := fmt.Sprintf("E=691 R=0 C=%s V=3 M=Authentication failed", strings.ToUpper(hex.EncodeToString(challenge)))
	return msPacket(msFailure, id, m)
}

func msChallengePacket(id uint8, challenge []byte) []byte {
	msg := make([]byte, 0, 5+16+len(serverName))
	msg = append(msg, msChallenge, id)
	msg = binary.BigEndian.AppendUint16(msg, uint16(4+1+16+len(serverName)))
	msg = append(msg, 16)
	msg = append(msg, challenge...)
	return append(msg, serverName...)
}
