package radiusserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/radiusserver/eap"
)

// EAPConfig is the [radius.eap] block: the EAP server (WiFi 802.1X). EAP
// is on when cert_file is set; otherwise EAP requests are rejected
// (unsupported_method) as before.
type EAPConfig struct {
	// CertFile and KeyFile are the server certificate (PEM, chain after
	// the leaf) and its key, re-read on SIGHUP. ECDSA P-256 is
	// recommended; give it a DNS SAN (Android 11+ checks the domain).
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// Methods enabled, in order of preference: "ttls" (EAP-TTLS with
	// inner PAP), "ttls-mschapv2" (EAP-TTLS with inner EAP-MSCHAPv2; needs
	// [authn] store_nt_hash; the outer TTLS is offered once for both),
	// "peap" (PEAPv0 with inner EAP-MSCHAPv2; needs [authn]
	// store_nt_hash), "tls" (EAP-TLS with client certificates; needs
	// ca_file).
	Methods []string `toml:"methods"`
	// CAFile holds the CA certificates (PEM) that issue EAP-TLS client
	// certificates; CRLFile optionally holds their CRLs (PEM or DER, each
	// signed by a CA in CAFile). Both re-read on SIGHUP.
	CAFile  string `toml:"ca_file"`
	CRLFile string `toml:"crl_file"`
	// TLSMinVersion and TLSMaxVersion: "1.2" or "1.3". TTLS and PEAP are
	// capped at 1.2 by default (most supplicants' TTLS does not do 1.3);
	// tls_min_version applies to EAP-TLS too.
	TLSMinVersion string `toml:"tls_min_version"`
	TLSMaxVersion string `toml:"tls_max_version"`
	// EAPTLSMaxVersion caps EAP-TLS: "1.3" (default, RFC 9190) or "1.2".
	EAPTLSMaxVersion string `toml:"eap_tls_max_version"`
	// FragmentSize is the largest EAP packet sent; a smaller Framed-MTU
	// in the request lowers it.
	FragmentSize int `toml:"fragment_size"`
	// MaxSessions caps EAP sessions that have started TLS (as many
	// half-open ones may wait besides; a Start stores nothing; see
	// radiusserver/eap/README.md).
	MaxSessions int `toml:"max_sessions"`
	// SessionTimeout drops a session that sends nothing for this long.
	SessionTimeout time.Duration `toml:"session_timeout"`
	// MaxRounds caps the round trips of one EAP session.
	MaxRounds int `toml:"max_rounds"`
}

// Defaults sets the [radius.eap] defaults (EAP off until cert_file).
func (c *EAPConfig) Defaults() {
	*c = EAPConfig{
		Methods:       []string{"ttls"},
		TLSMinVersion: "1.2",
		TLSMaxVersion: "1.2",
		// EAP-TLS does 1.3 (RFC 9190) unless capped.
		EAPTLSMaxVersion: "1.3",
		FragmentSize:     eap.DefaultFragmentSize,
		MaxSessions:      eap.DefaultMaxSessions,
		SessionTimeout:   eap.DefaultSessionTimeout,
		MaxRounds:        eap.DefaultMaxRounds,
	}
}

// Enabled reports whether EAP is configured.
func (c *EAPConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

func tlsVersion(s string, def uint16) (uint16, bool) {
	switch strings.TrimSpace(s) {
	case "":
		return def, true
	case "1.2":
		return tls.VersionTLS12, true
	case "1.3":
		return tls.VersionTLS13, true
	}
	return 0, false
}

// validate checks the block, loading the certificate pair.
func (c *EAPConfig) validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, config.Errorf("eap."+key, format, args...)) }
	switch {
	case c.CertFile == "":
		bad("key_file", "cert_file and key_file go together")
	case c.KeyFile == "":
		bad("cert_file", "cert_file and key_file go together")
	default:
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			bad("cert_file", "EAP TLS certificate: %v", err)
		}
	}
	wantTLS := false
	for _, m := range c.Methods {
		t, err := eap.MethodType(m)
		if err != nil {
			bad("methods", "%q is not a supported method (supported: ttls, ttls-mschapv2, peap, tls)", m)
		}
		wantTLS = wantTLS || t == eap.TypeTLS
	}
	switch {
	case c.CAFile != "":
		if _, err := loadClientAuth(c.CAFile, c.CRLFile); err != nil {
			key := "ca_file"
			if errors.As(err, new(crlError)) {
				key = "crl_file"
			}
			bad(key, "%v", err)
		}
	case wantTLS:
		bad("methods", "\"tls\" (EAP-TLS) needs ca_file: the CA certificates that issue client certificates")
	case c.CRLFile != "":
		bad("crl_file", "needs ca_file")
	}
	minV, ok1 := tlsVersion(c.TLSMinVersion, tls.VersionTLS12)
	if !ok1 {
		bad("tls_min_version", "%q: write \"1.2\" or \"1.3\" (TLS below 1.2 is refused)", c.TLSMinVersion)
	}
	maxV, ok2 := tlsVersion(c.TLSMaxVersion, tls.VersionTLS12)
	if !ok2 {
		bad("tls_max_version", "%q: write \"1.2\" or \"1.3\"", c.TLSMaxVersion)
	}
	if ok1 && ok2 && maxV < minV {
		bad("tls_max_version", "is below tls_min_version")
	}
	if v, ok := tlsVersion(c.EAPTLSMaxVersion, tls.VersionTLS13); !ok {
		bad("eap_tls_max_version", "%q: write \"1.2\" or \"1.3\"", c.EAPTLSMaxVersion)
	} else if ok1 && v < minV {
		bad("eap_tls_max_version", "is below tls_min_version")
	}
	if c.FragmentSize != 0 && (c.FragmentSize < 256 || c.FragmentSize > 4000) {
		bad("fragment_size", "must be between 256 and 4000 bytes, got %d", c.FragmentSize)
	}
	if c.MaxSessions < 0 || c.MaxSessions > 1<<20 {
		bad("max_sessions", "must be between 1 and 1048576 (0 picks %d), got %d", eap.DefaultMaxSessions, c.MaxSessions)
	}
	if c.SessionTimeout < 0 || c.SessionTimeout > 10*time.Minute {
		bad("session_timeout", "must be between 1s and 10m (0 picks %v)", eap.DefaultSessionTimeout)
	}
	if c.MaxRounds < 0 || c.MaxRounds > 1000 {
		bad("max_rounds", "must be between 1 and 1000 (0 picks %d), got %d", eap.DefaultMaxRounds, c.MaxRounds)
	}
	return errors.Join(errs...)
}

// eapServerConfig turns the block into the eap package's Config.
func (c *EAPConfig) eapServerConfig(cert func() *tls.Certificate, clientAuth func() *eap.ClientAuth) eap.Config {
	minV, _ := tlsVersion(c.TLSMinVersion, tls.VersionTLS12)
	maxV, _ := tlsVersion(c.TLSMaxVersion, tls.VersionTLS12)
	tlsMax, _ := tlsVersion(c.EAPTLSMaxVersion, tls.VersionTLS13)
	var ca func() *eap.ClientAuth
	if clientAuth != nil && c.CAFile != "" {
		ca = clientAuth
	}
	return eap.Config{
		Certificate:    cert,
		ClientAuth:     ca,
		Methods:        c.Methods,
		MinVersion:     minV,
		MaxVersion:     maxV,
		TLSMaxVersion:  tlsMax,
		FragmentSize:   c.FragmentSize,
		MaxSessions:    c.MaxSessions,
		SessionTimeout: c.SessionTimeout,
		MaxRounds:      c.MaxRounds,
	}
}

// crlError marks a crl_file problem (reported at that key).
type crlError struct{ error }

func (e crlError) Unwrap() error { return e.error }

// loadClientAuth reads the EAP-TLS client CAs (PEM certificates) and the
// optional CRLs (PEM "X509 CRL" blocks or one DER CRL). Every CRL must be
// signed by a CA in caFile; an expired one (NextUpdate passed) still
// applies.
func loadClientAuth(caFile, crlFile string) (*eap.ClientAuth, error) {
	cas, err := config.ReadCertificates(caFile)
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS client CAs: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	var crls []*x509.RevocationList
	if crlFile != "" {
		b, err := os.ReadFile(crlFile)
		if err != nil {
			return nil, crlError{fmt.Errorf("EAP-TLS CRLs: %w", err)}
		}
		var ders [][]byte
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type == "X509 CRL" {
				ders = append(ders, blk.Bytes)
			}
		}
		if len(ders) == 0 && !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----")) {
			ders = [][]byte{b} // one DER CRL
		}
		if len(ders) == 0 {
			return nil, crlError{fmt.Errorf("%s holds no X509 CRL", crlFile)}
		}
		for _, der := range ders {
			l, err := x509.ParseRevocationList(der)
			if err != nil {
				return nil, crlError{fmt.Errorf("%s: %w", crlFile, err)}
			}
			signed := false
			for _, c := range cas {
				if bytes.Equal(c.RawSubject, l.RawIssuer) && l.CheckSignatureFrom(c) == nil {
					signed = true
					break
				}
			}
			if !signed {
				return nil, crlError{fmt.Errorf("%s: the CRL issued by %q is not signed by a CA in ca_file", crlFile, l.Issuer.String())}
			}
			crls = append(crls, l)
		}
	}
	return eap.NewClientAuth(pool, crls), nil
}
