package eap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"
)

// EAP-TLS (RFC 5216 for TLS 1.2, RFC 9190 for TLS 1.3): the client proves
// itself with a certificate the configured CAs issued; the certificate's
// identity (SAN email, else the UPN otherName, else the CN) goes to a
// CertFunc the door supplies, which decides whether that user may log in.
// No password is involved, so nothing is pushed anywhere.
//
// TLS 1.2: ... client Finished → our ChangeCipherSpec and Finished, sent
// only once the user is authorized → the peer's empty ACK → EAP-Success.
// TLS 1.3: ... client Finished → the protected success indication (one
// application-data record holding 0x00, RFC 9190 §2.1.1), sent only once
// the user is authorized (sent earlier, it breaks Windows 11) → the
// peer's empty ACK → EAP-Success. Session tickets are off, so no
// NewSessionTicket ever follows the handshake. A refused user gets an
// EAP-Failure at once.

// CertIdentity is the identity read from a verified client certificate.
type CertIdentity struct {
	// Name is what authn resolves (username, email or UPN).
	Name string
	// From says where Name came from: "email", "upn" or "cn".
	From string
	// Cert is the client's leaf certificate.
	Cert *x509.Certificate
}

// CertFunc authorizes the identity of a verified client certificate; it
// is called on the worker that handles the packet and may block.
type CertFunc func(ctx context.Context, id CertIdentity) bool

// ClientAuth is what EAP-TLS verifies client certificates against: the
// CAs and the serial numbers their CRLs revoke. Build it with
// NewClientAuth.
type ClientAuth struct {
	Roots   *x509.CertPool
	revoked map[string]map[string]bool // issuer RawSubject → serial (decimal)
}

// NewClientAuth returns the ClientAuth for roots and crls. The caller has
// checked each CRL's signature against its issuer (a CA in roots); a CRL
// is matched to a certificate by its issuer name.
func NewClientAuth(roots *x509.CertPool, crls []*x509.RevocationList) *ClientAuth {
	ca := &ClientAuth{Roots: roots, revoked: map[string]map[string]bool{}}
	for _, l := range crls {
		set := ca.revoked[string(l.RawIssuer)]
		if set == nil {
			set = map[string]bool{}
			ca.revoked[string(l.RawIssuer)] = set
		}
		for _, e := range l.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				set[e.SerialNumber.String()] = true
			}
		}
	}
	return ca
}

// ErrRevoked: every verified chain of the client certificate holds a
// certificate a configured CRL revokes.
var ErrRevoked = errors.New("eap: the client certificate is revoked")

// Revoked reports whether a CRL of issuer's revokes cert.
func (ca *ClientAuth) Revoked(cert, issuer *x509.Certificate) bool {
	return ca.revoked[string(issuer.RawSubject)][cert.SerialNumber.String()]
}

// verify is the handshake's VerifyPeerCertificate: one verified chain
// without a revoked certificate is enough.
func (ca *ClientAuth) verify(_ [][]byte, chains [][]*x509.Certificate) error {
	for _, chain := range chains {
		ok := true
		for i := 0; i+1 < len(chain); i++ {
			if ca.Revoked(chain[i], chain[i+1]) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return ErrRevoked
}

var errNoEMS = errors.New("eap: the client does not offer Extended Master Secret")

// eapTLSConfig is EAP-TLS's TLS server config: client certificates
// required and verified against the ClientAuth of the moment, TLS up to
// TLSMaxVersion. nil when EAP-TLS has no ClientAuth.
func (s *Server) eapTLSConfig() *tls.Config {
	if s.cfg.ClientAuth == nil {
		return nil
	}
	cert := s.cfg.Certificate
	base := &tls.Config{
		MinVersion:             s.cfg.MinVersion,
		MaxVersion:             s.cfg.TLSMaxVersion,
		SessionTicketsDisabled: true,
		ClientAuth:             tls.RequireAndVerifyClientCert,
		GetCertificate:         func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert(), nil },
	}
	conf := base.Clone()
	conf.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if !offersEMS(h) && !(s.cfg.TLSMaxVersion >= tls.VersionTLS13 && slices.Contains(h.SupportedVersions, tls.VersionTLS13)) {
			return nil, errNoEMS
		}
		ca := s.cfg.ClientAuth()
		if ca == nil || ca.Roots == nil {
			return nil, errors.New("eap: no client CAs loaded")
		}
		c := base.Clone()
		c.ClientCAs = ca.Roots
		c.VerifyPeerCertificate = ca.verify
		return c, nil
	}
	return conf
}

// tlsState is an EAP-TLS session whose user is authorized: the MSK
// waits for the peer's final ACK.
type tlsState struct {
	msk []byte
}

// tlsHandshakeStep follows one TLS step of EAP-TLS: while the handshake
// runs, our flight goes out; once it is complete (the client certificate
// verified), the user is authorized before anything more is sent.
func (s *Server) tlsHandshakeStep(ctx context.Context, ss *session, req Request, p Packet, out, app []byte) Response {
	if len(app) > 0 {
		// EAP-TLS carries no application data from the peer.
		clear(app)
		return ss.fail(p, "unexpected_tls_data")
	}
	established, cs := ss.eng.state()
	if !established {
		if len(out) == 0 {
			return ss.fail(p, "tls_stalled")
		}
		ss.out.load(out)
		return s.request(ss, ss.out.next(0, s.fragmentSize(ss)))
	}
	if len(cs.PeerCertificates) == 0 {
		return ss.fail(p, "no_client_certificate")
	}
	id := IdentityOf(cs.PeerCertificates[0])
	if id.Name == "" {
		return ss.fail(p, "no_certificate_identity")
	}
	ss.inner = id.Name
	if req.Cert == nil {
		return ss.fail(p, "internal_error")
	}
	msk, err := tlsMSK(cs)
	if err != nil {
		return ss.fail(p, "no_keying_material")
	}
	ok := req.Cert(ctx, id)
	ss.loginDone = true
	if !ok {
		clear(msk)
		ss.finished = true
		return Response{Outcome: Reject, EAP: Failure(p.ID), Method: MethodTLS, Identity: id.Name}
	}
	ss.remember(req)
	if cs.Version >= tls.VersionTLS13 {
		// RFC 9190 §2.1.1: the protected success indication, only now
		// that the user is authorized.
		rec, err := ss.eng.write([]byte{0})
		if err != nil {
			clear(msk)
			return ss.fail(p, "tls_failed")
		}
		out = append(out, rec...)
	}
	if len(out) == 0 {
		clear(msk)
		return ss.fail(p, "tls_stalled")
	}
	ss.tls = &tlsState{msk: msk}
	ss.out.load(out)
	return s.request(ss, ss.out.next(0, s.fragmentSize(ss)))
}

// tlsFinish answers the peer's response to our last EAP-TLS flight: an
// empty ACK (RFC 5216 §2.1.3, RFC 9190 §2.1.1) ends in EAP-Success.
func (s *Server) tlsFinish(ss *session, p Packet, msg []byte) Response {
	if ss.tls == nil || len(msg) != 0 {
		return ss.fail(p, "unexpected_tls_data")
	}
	ss.finished = true
	msk := ss.tls.msk
	ss.tls.msk = nil
	return Response{Outcome: Accept, EAP: Success(p.ID), MSK: msk, Method: MethodTLS, Identity: ss.inner, Login: ss.login}
}

// tlsMSK is EAP-TLS's MSK: on TLS 1.3 the first 64 of the 128 bytes of
// the exporter EXPORTER_EAP_TLS_Key_Material with context 0x0D (RFC 9190
// §2.3); on 1.2 the first 64 of "client EAP encryption" (RFC 5216 §2.3).
// The EMSK (the other 64) is not used.
func tlsMSK(cs tls.ConnectionState) ([]byte, error) {
	var km []byte
	var err error
	if cs.Version >= tls.VersionTLS13 {
		km, err = cs.ExportKeyingMaterial("EXPORTER_EAP_TLS_Key_Material", []byte{TypeTLS}, 128)
	} else {
		km, err = cs.ExportKeyingMaterial("client EAP encryption", nil, 128)
	}
	if err != nil {
		return nil, err
	}
	msk := append([]byte(nil), km[:64]...)
	clear(km)
	return msk, nil
}

// tlsFailReason names why a TLS handshake failed, for the result.
func tlsFailReason(err error) string {
	var ua x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	switch {
	case errors.Is(err, ErrRevoked):
		return "cert_revoked"
	case errors.As(err, &ua):
		return "cert_unknown_ca"
	case errors.As(err, &inv):
		return "cert_invalid"
	case strings.Contains(err.Error(), "client didn't provide a certificate"):
		return "no_client_certificate"
	}
	return "tls_failed"
}

// IdentityOf maps a client certificate to the name authn resolves: the
// first SAN email address, else the first SAN UPN otherName
// (1.3.6.1.4.1.311.20.2.3, what AD CS puts in user certificates), else
// the subject CN. Names longer than 253 bytes, not UTF-8 or with control
// characters are skipped.
func IdentityOf(c *x509.Certificate) CertIdentity {
	for _, e := range c.EmailAddresses {
		if usableName(e) {
			return CertIdentity{Name: e, From: "email", Cert: c}
		}
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			for _, u := range ParseUPNs(e.Value) {
				if usableName(u) {
					return CertIdentity{Name: u, From: "upn", Cert: c}
				}
			}
		}
	}
	if usableName(c.Subject.CommonName) {
		return CertIdentity{Name: c.Subject.CommonName, From: "cn", Cert: c}
	}
	return CertIdentity{Cert: c}
}

func usableName(s string) bool {
	if s == "" || len(s) > 253 || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// OIDUPN is the Microsoft UPN otherName (szOID_NT_PRINCIPAL_NAME).
	OIDUPN = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
)

// ParseUPNs returns the UPN otherNames of a SubjectAltName extension
// value (GeneralNames, RFC 5280 §4.2.1.6): otherName is [0] { type-id,
// [0] EXPLICIT UTF8String }. Malformed input yields what was read before.
func ParseUPNs(der []byte) []string {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil || len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil
	}
	var out []string
	b := seq.Bytes
	for len(b) > 0 && len(out) < 16 {
		var gn asn1.RawValue
		b, err = asn1.Unmarshal(b, &gn)
		if err != nil {
			return out
		}
		if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 || !gn.IsCompound {
			continue
		}
		var oid asn1.ObjectIdentifier
		v, err := asn1.Unmarshal(gn.Bytes, &oid)
		if err != nil || !oid.Equal(OIDUPN) {
			continue
		}
		var wrap asn1.RawValue
		if _, err := asn1.Unmarshal(v, &wrap); err != nil || wrap.Class != asn1.ClassContextSpecific || wrap.Tag != 0 || !wrap.IsCompound {
			continue
		}
		var str asn1.RawValue
		if _, err := asn1.Unmarshal(wrap.Bytes, &str); err != nil || str.Class != asn1.ClassUniversal || str.Tag != asn1.TagUTF8String {
			continue
		}
		out = append(out, string(str.Bytes))
	}
	return out
}
