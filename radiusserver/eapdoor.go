package radiusserver

import (
	"context"
	"fmt"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/radiusserver/eap"
	"github.com/gatewayd/gatewayd/secret"
)

// eapAccess hands an Access-Request carrying EAP-Message to the EAP
// server and turns its answer into a RADIUS one: Access-Challenge (EAP
// and State), Access-Accept (EAP-Success, the MS-MPPE keys and the
// user's reply-group attributes, exactly as for PAP) or Access-Reject
// (EAP-Failure). Code 0: send nothing. The inner identity decides; the
// outer User-Name is never used for authorization.
func (s *Server) eapAccess(ctx context.Context, c *client, p *radius.Packet, req authn.Request) (radius.Code, []*radius.AVP, string) {
	msg, _ := rfc2869.EAPMessage_Lookup(p)
	er := eap.Request{EAP: msg, Source: req.Source, Client: c.name}
	if st, err := rfc2865.State_Lookup(p); err == nil {
		er.State = st
	}
	if mtu, err := rfc2865.FramedMTU_Lookup(p); err == nil {
		er.FramedMTU = int(min(mtu, 65535))
	}
	var res authn.Result
	var loggedIn bool
	er.PAP = func(ctx context.Context, user string, pw secret.String) bool {
		r := req
		r.Identifier, r.Password, r.Method = user, pw, eap.MethodTTLSPAP
		lctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		res, loggedIn = s.auth.Login(lctx, r), true
		return res.OK
	}
	if ma, ok := s.auth.(MSCHAPv2Authenticator); ok {
		er.MSCHAPv2 = func(ctx context.Context, method, user string, authCh, peerCh, ntResp []byte) (string, bool) {
			r := authn.MSCHAPv2Request{Request: req, UserName: []byte(user), AuthChallenge: authCh, PeerChallenge: peerCh, NTResponse: ntResp}
			r.Identifier, r.Password, r.Method = user, secret.String{}, method
			lctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			mr := ma.LoginMSCHAPv2(lctx, r)
			res, loggedIn = mr.Result, true
			return mr.AuthenticatorResponse, mr.OK
		}
	}
	if ca, ok := s.auth.(CertificateAuthenticator); ok {
		er.Cert = func(ctx context.Context, id eap.CertIdentity) bool {
			r := req
			r.Identifier, r.Password, r.Method = id.Name, secret.String{}, eap.MethodTLS
			lctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			res, loggedIn = ca.LoginCertificate(lctx, r, certDetail(id)), true
			return res.OK
		}
	}
	er.Result = func() any { return res }
	resp := s.eap.Handle(ctx, er)
	switch resp.Outcome {
	case eap.Challenge:
		attrs := eapMessageAttrs(resp.EAP)
		attrs = append(attrs, &radius.AVP{Type: rfc2865.State_Type, Attribute: radius.Attribute(resp.State)})
		return radius.CodeAccessChallenge, attrs, ""
	case eap.Accept:
		if !loggedIn {
			// PEAP and EAP-TLS log in rounds before the Accept.
			res, _ = resp.Login.(authn.Result)
		}
		attrs := s.replyAttrs(res)
		attrs = append(attrs[:len(attrs):len(attrs)], eapMessageAttrs(resp.EAP)...)
		keys, err := mppeKeys(resp.MSK, c.secret, p.Authenticator)
		clear(resp.MSK)
		if err != nil {
			s.log.Error("radius eap: MS-MPPE keys not encoded", "err", err)
			return radius.CodeAccessReject, eapMessageAttrs(eap.Failure(0)), resp.Method
		}
		s.log.Debug("radius eap login", "client", c.name, "method", resp.Method, "user", resp.Identity)
		return radius.CodeAccessAccept, append(attrs, keys...), resp.Method
	case eap.Reject:
		if !loggedIn && resp.Reason != "" {
			s.log.Debug("radius eap refused", "client", c.name, "method", resp.Method, "identity", resp.Identity, "reason", resp.Reason)
			if resp.Reason == "no_common_method" || resp.Reason == "unsupported_inner_method" {
				r := req
				r.Identifier, r.Method = resp.Identity, resp.Method
				s.auth.Reject(ctx, r, authn.ReasonUnsupportedMethod)
			}
			if certRefusals[resp.Reason] {
				// EAP-TLS: the certificate itself was refused (unknown
				// CA, revoked, expired, none). Recorded under the outer
				// identity, which is only what the peer typed.
				r := req
				r.Identifier, r.Method = resp.Identity, resp.Method
				s.auth.Reject(ctx, r, authn.ReasonBadCertificate)
			}
			if resp.Reason == "sessions_full" && s.warn.allow("eap-full", time.Now()) {
				s.log.Warn("radius eap: max_sessions reached; new EAP sessions are refused", "client", c.name)
			}
		}
		return radius.CodeAccessReject, eapMessageAttrs(resp.EAP), resp.Method
	}
	return 0, nil, ""
}

// MSCHAPv2Authenticator is the part of authn PEAP-MSCHAPv2 needs: it
// verifies the NT-Response against the user's stored NT hash, which never
// leaves authn. Without it, PEAP's inner logins fail.
type MSCHAPv2Authenticator interface {
	LoginMSCHAPv2(ctx context.Context, req authn.MSCHAPv2Request) authn.MSCHAPv2Result
}

// CertificateAuthenticator is the part of authn EAP-TLS needs: it
// authorizes the identity of a client certificate the EAP server has
// verified (user state, lockout, password status; no password) and
// records the event. Without it, EAP-TLS logins fail.
type CertificateAuthenticator interface {
	LoginCertificate(ctx context.Context, req authn.Request, detail string) authn.Result
}

// certRefusals are the EAP results that refuse an EAP-TLS client
// certificate before any user is looked up.
var certRefusals = map[string]bool{
	"cert_unknown_ca": true, "cert_revoked": true, "cert_invalid": true, "no_client_certificate": true,
}

// certDetail is the event detail of an EAP-TLS login: where the identity
// came from and which certificate it was.
func certDetail(id eap.CertIdentity) string {
	return fmt.Sprintf("cert %s serial=%s issuer=%q", id.From, id.Cert.SerialNumber.Text(16), truncateString(id.Cert.Issuer.String(), 128))
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// eapMessageAttrs splits an EAP packet over EAP-Message attributes.
func eapMessageAttrs(b []byte) []*radius.AVP {
	var out []*radius.AVP
	for len(b) > 0 {
		n := min(len(b), 253)
		out = append(out, &radius.AVP{Type: rfc2869.EAPMessage_Type, Attribute: radius.Attribute(append([]byte(nil), b[:n]...))})
		b = b[n:]
	}
	return out
}

// eapFailureAttrs is an EAP-Failure answering the request's EAP packet.
func eapFailureAttrs(p *radius.Packet) []*radius.AVP {
	msg, _ := rfc2869.EAPMessage_Lookup(p)
	id := uint8(0)
	if ep, err := eap.Parse(msg); err == nil {
		id = ep.ID
	}
	return eapMessageAttrs(eap.Failure(id))
}

// mppeKeys encodes MS-MPPE-Recv-Key = MSK[0:32] and MS-MPPE-Send-Key =
// MSK[32:64], salt-encrypted (RFC 2548 §2.4) with the Request
// Authenticator, which is what the response is built on.
func mppeKeys(msk []byte, secret []byte, reqAuth [16]byte) ([]*radius.AVP, error) {
	tmp := &radius.Packet{Secret: secret, Authenticator: reqAuth}
	if err := microsoft.MSMPPERecvKey_Set(tmp, msk[0:32]); err != nil {
		return nil, err
	}
	if err := microsoft.MSMPPESendKey_Set(tmp, msk[32:64]); err != nil {
		return nil, err
	}
	return tmp.Attributes, nil
}
