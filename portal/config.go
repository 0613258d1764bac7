package portal

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/config"
)

// Config is the [portal] block of gatewayd.toml: the self-service page
// (SPEC 9). The daemon's loader calls Defaults, decodes the file over it
// and calls Validate; New gives zero durations their defaults.
type Config struct {
	// Listen is the page's address (host:port). Empty: no page.
	Listen string `toml:"listen"`
	// CertFile and KeyFile are PEM files; both or neither. Without them
	// the page is plain HTTP, which is accepted only on a loopback address
	// (a reverse proxy in front of it terminates TLS).
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// PublicURL is the base of the activation links the page hands out
	// (https://id.example.com). Empty: built from listen.
	PublicURL string `toml:"public_url"`
	// SessionIdleTimeout ends a session nobody used for this long.
	SessionIdleTimeout time.Duration `toml:"session_idle_timeout"`
	// InviteTTL is how long an activation link stays valid by default.
	InviteTTL time.Duration `toml:"invite_ttl"`
	// OrgName is shown in the page's title and header.
	OrgName string `toml:"org_name"`
	// LogoFile is an optional PNG, JPEG or SVG shown in the header, read
	// at start (at most MaxLogoBytes).
	LogoFile string `toml:"logo_file"`
}

// Defaults of the block.
const (
	DefaultSessionIdleTimeout = 15 * time.Minute
	DefaultInviteTTL          = 72 * time.Hour
	DefaultOrgName            = "gatewayd"
	// MaxInviteTTL bounds an activation link's life.
	MaxInviteTTL = 30 * 24 * time.Hour
	// MaxLogoBytes bounds logo_file.
	MaxLogoBytes = 256 << 10
)

// Defaults sets the [portal] defaults. No listener: the page is off
// unless the file names one.
func (c *Config) Defaults() {
	*c = Config{}
	c.setDefaults()
}

func (c *Config) setDefaults() {
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if c.InviteTTL == 0 {
		c.InviteTTL = DefaultInviteTTL
	}
	if c.OrgName == "" {
		c.OrgName = DefaultOrgName
	}
}

// Enabled reports whether the block names a listener.
func (c *Config) Enabled() bool { return c.Listen != "" }

// TLS reports whether the page serves TLS itself.
func (c *Config) TLS() bool { return c.CertFile != "" }

// Validate checks the block; problems name their key.
func (c *Config) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, config.Errorf("cert_file", "cert_file and key_file go together: set both or neither"))
	}
	if c.Listen != "" {
		if err := config.CheckListen(c.Listen); err != nil {
			errs = append(errs, config.Errorf("listen", "%v", err))
		} else if !c.TLS() && !loopbackListen(c.Listen) {
			errs = append(errs, config.Errorf("listen", "%q is not a loopback address: the page serves plain HTTP only on loopback (127.0.0.1, ::1); set cert_file and key_file, or listen on loopback behind a TLS proxy", c.Listen))
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, config.Errorf("public_url", "%q is not an http(s) base URL", c.PublicURL))
		}
	}
	if c.SessionIdleTimeout < time.Minute || c.SessionIdleTimeout > 24*time.Hour {
		errs = append(errs, config.Errorf("session_idle_timeout", "%s: use 1m to 24h", c.SessionIdleTimeout))
	}
	if c.InviteTTL < time.Minute || c.InviteTTL > MaxInviteTTL {
		errs = append(errs, config.Errorf("invite_ttl", "%s: use 1m to %s", c.InviteTTL, MaxInviteTTL))
	}
	if strings.TrimSpace(c.OrgName) == "" || len(c.OrgName) > 100 {
		errs = append(errs, config.Errorf("org_name", "give a name of 1 to 100 characters"))
	}
	if c.LogoFile != "" {
		if _, err := readLogo(c.LogoFile); err != nil {
			errs = append(errs, config.Errorf("logo_file", "%v", err))
		}
	}
	return errors.Join(errs...)
}

// loopbackListen: the host of a listen address is a loopback IP or
// localhost (an empty host means every address, which is not).
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// baseURL is where activation links point.
func (c *Config) baseURL(addr string) string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	scheme := "http"
	if c.TLS() {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s", scheme, addr)
}
