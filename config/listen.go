package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
)

// CheckListen checks a listen address: host:port with an IP address (or
// localhost, or nothing for every address) and a valid port. Blocks call
// it from Validate so every listener is written the same way.
func CheckListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (write 127.0.0.1:389 or [::1]:389): %v", s, err)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return fmt.Errorf("%q: the host must be an IP address", s)
		}
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

// CheckURL accepts "" (the block's default) or an absolute http(s) URL:
// the endpoint overrides of the cloud connectors.
func CheckURL(v string) error {
	if v == "" {
		return nil
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", v)
	}
	return nil
}
