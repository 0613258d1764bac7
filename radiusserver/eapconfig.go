package radiusserver

import (
	"crypto/tls"
	"errors"
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
	// inner PAP), "peap" (PEAPv0 with inner EAP-MSCHAPv2; needs [authn]
	// store_nt_hash).
	Methods []string `toml:"methods"`
	// TLSMinVersion and TLSMaxVersion: "1.2" or "1.3". TTLS is capped at
	// 1.2 by default (most supplicants' TTLS does not do 1.3).
	TLSMinVersion string `toml:"tls_min_version"`
	TLSMaxVersion string `toml:"tls_max_version"`
	// FragmentSize is the largest EAP packet sent; a smaller Framed-MTU
	// in the request lowers it.
	FragmentSize int `toml:"fragment_size"`
	// MaxSessions caps EAP sessions that have started TLS (as many
	// half-open ones may wait besides; see radiusserver/eap/README.md).
	MaxSessions int `toml:"max_sessions"`
	// SessionTimeout drops a session that sends nothing for this long.
	SessionTimeout time.Duration `toml:"session_timeout"`
	// MaxRounds caps the round trips of one EAP session.
	MaxRounds int `toml:"max_rounds"`
}

// Defaults sets the [radius.eap] defaults (EAP off until cert_file).
func (c *EAPConfig) Defaults() {
	*c = EAPConfig{
		Methods:        []string{"ttls"},
		TLSMinVersion:  "1.2",
		TLSMaxVersion:  "1.2",
		FragmentSize:   eap.DefaultFragmentSize,
		MaxSessions:    eap.DefaultMaxSessions,
		SessionTimeout: eap.DefaultSessionTimeout,
		MaxRounds:      eap.DefaultMaxRounds,
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
	for _, m := range c.Methods {
		if _, err := eap.MethodType(m); err != nil {
			bad("methods", "%q is not a supported method (supported: ttls, peap)", m)
		}
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
func (c *EAPConfig) eapServerConfig(cert func() *tls.Certificate) eap.Config {
	minV, _ := tlsVersion(c.TLSMinVersion, tls.VersionTLS12)
	maxV, _ := tlsVersion(c.TLSMaxVersion, tls.VersionTLS12)
	return eap.Config{
		Certificate:    cert,
		Methods:        c.Methods,
		MinVersion:     minV,
		MaxVersion:     maxV,
		FragmentSize:   c.FragmentSize,
		MaxSessions:    c.MaxSessions,
		SessionTimeout: c.SessionTimeout,
		MaxRounds:      c.MaxRounds,
	}
}
