package main

import (
	"errors"
	"fmt"
	"net"
	"strings"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/adimport"
	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/delegation"
	"github.com/gatewayd/gatewayd/ldapserver"
	"github.com/gatewayd/gatewayd/portal"
	"github.com/gatewayd/gatewayd/radiusserver"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
	// Directory types register their [[directory]] blocks from init.
	adsync "github.com/gatewayd/gatewayd/sync/ad"
	_ "github.com/gatewayd/gatewayd/sync/entra"
	_ "github.com/gatewayd/gatewayd/sync/google"
)

const embeddedName = "(embedded gatewayd.toml.example)"

// fileConfig is gatewayd.toml: a list of the blocks the components own.
// Each block has its defaults and its validation in its own package; this
// struct adds only data_dir, [log] and the checks across blocks.
type fileConfig struct {
	DataDir     string                  `toml:"data_dir"`
	Log         logConfig               `toml:"log"`
	Admin       admin.ListenerConfig    `toml:"admin"`
	Authn       authn.Config            `toml:"authn"`
	Events      store.EventsConfig      `toml:"events"`
	Store       store.Config            `toml:"store"`
	LDAP        ldapserver.Config       `toml:"ldap"`
	RADIUS      radiusserver.Config     `toml:"radius"`
	Portal      portal.Config           `toml:"portal"`
	Sync        gwsync.Config           `toml:"sync"`
	Directories []config.DirectoryBlock `toml:"directory"`
	AD          []adDomain              `toml:"ad"`

	// src places problems found after loading at their lines.
	src *config.Source
}

// Defaults sets the root keys' defaults; the blocks set their own.
func (c *fileConfig) Defaults() { c.DataDir = "./data" }

// Validate checks data_dir and what spans blocks.
func (c *fileConfig) Validate() error {
	var errs []error
	if strings.TrimSpace(c.DataDir) == "" {
		errs = append(errs, config.Errorf("data_dir", "must name a directory for the state journal"))
	}
	errs = append(errs, gwsync.ValidateDirectories(c.directories()), delegation.ValidateDomains(c.adConfigs()))
	// An AD write-back (type = "ad") writes through an [[ad]] block's
	// service account (SPEC 6.5).
	for i, b := range c.Directories {
		w, ok := b.(*adsync.DirectoryConfig)
		if !ok || w.Domain == "" {
			continue
		}
		a := c.adDomain(w.Domain)
		switch {
		case a == nil:
			errs = append(errs, config.Errorf(fmt.Sprintf("directory[%d].domain", i), "%s: no [[ad]] block is named %q (configured: %s)",
				w.Label(i), w.Domain, strings.Join(c.adNames(), ", ")))
		case a.BindDN == "":
			errs = append(errs, config.Errorf(fmt.Sprintf("directory[%d].domain", i), "%s: the write-back needs a service account: set bind_dn and bind_password in [[ad]] %q",
				w.Label(i), w.Domain))
		}
	}
	return errors.Join(errs...)
}

// adDomain is the [[ad]] block named name, or nil.
func (c *fileConfig) adDomain(name string) *adDomain {
	for i := range c.AD {
		if c.AD[i].Name == name {
			return &c.AD[i]
		}
	}
	return nil
}

func (c *fileConfig) adNames() []string {
	out := []string{}
	for _, a := range c.AD {
		out = append(out, fmt.Sprintf("%q", a.Name))
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// adWriteBacks are the names of the AD write-back directories of the
// [[ad]] block named domain.
func (c *fileConfig) adWriteBacks(domain string) []string {
	var out []string
	for _, b := range c.Directories {
		if w, ok := b.(*adsync.DirectoryConfig); ok && w.Domain == domain {
			out = append(out, w.Name)
		}
	}
	return out
}

// adDomain is one [[ad]] block: the delegation keys, flat, plus the
// [ad.import] table of the AD import (SPEC 6.2-6.4).
type adDomain struct {
	delegation.DomainConfig
	Import adimport.Config `toml:"import"`
}

func (d *adDomain) Defaults() {
	d.DomainConfig.Defaults()
	d.Import.Defaults()
}

func (d *adDomain) Validate() error {
	return errors.Join(d.DomainConfig.Validate(), config.Prefix("import", d.Import.Validate()), d.Import.ValidateWith(d.BindDN))
}

// adConfigs are the delegation parts of the [[ad]] blocks.
func (c *fileConfig) adConfigs() []delegation.DomainConfig {
	out := make([]delegation.DomainConfig, len(c.AD))
	for i := range c.AD {
		out[i] = c.AD[i].DomainConfig
	}
	return out
}

// directories are the [[directory]] blocks as the sync engine sees them.
// Every registered type implements gwsync.DirectoryConfig (each type's
// package asserts it).
func (c *fileConfig) directories() []gwsync.DirectoryConfig {
	out := make([]gwsync.DirectoryConfig, 0, len(c.Directories))
	for _, b := range c.Directories {
		out = append(out, b.(gwsync.DirectoryConfig))
	}
	return out
}

// Path is the file the config came from.
func (c *fileConfig) Path() string { return c.src.Name }

// TokenFile is where the admin token lives.
func (c *fileConfig) TokenFile() string { return c.Admin.TokenPath(c.DataDir) }

// Errorf builds a Problem at the line of a key path.
func (c *fileConfig) Errorf(path, format string, args ...any) config.Problem {
	return c.src.Errorf(path, format, args...)
}

// logConfig is the [log] block.
type logConfig struct {
	// Level is debug, info, warn or error; SIGHUP applies a change.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
}

func (c *logConfig) Defaults() { *c = logConfig{Level: "info", Format: "text"} }

func (c *logConfig) Validate() error {
	var errs []error
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, config.Errorf("level", "%q: use debug, info, warn or error", c.Level))
	}
	switch c.Format {
	case "text", "json":
	default:
		errs = append(errs, config.Errorf("format", "%q: use text or json", c.Format))
	}
	return errors.Join(errs...)
}

// loadConfig loads and validates the whole file (the embedded example
// when path is empty): what serve and check-config both run.
func loadConfig(path string) (*fileConfig, error) {
	return load(path, config.Options{})
}

// loadCLIConfig loads what the admin CLI needs, the admin address and
// token: it resolves no secret and checks no other block, so it works
// where the RADIUS secrets or the LDAP key are not readable.
func loadCLIConfig(path string) (*fileConfig, error) {
	return load(path, config.Options{Only: []string{"data_dir", "admin"}})
}

func load(path string, opts config.Options) (*fileConfig, error) {
	c := &fileConfig{}
	var err error
	if path == "" {
		c.src, err = config.Parse(embeddedName, gatewayd.ExampleConfig, c, opts)
	} else {
		c.src, err = config.Load(path, c, opts)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// checkPorts tries to bind every listen address and releases it at once,
// so check-config can report a port that is taken before the daemon
// starts. Run it when the daemon itself is not running.
func (c *fileConfig) checkPorts() config.Problems {
	var ps config.Problems
	try := func(path, network, addr string) {
		if addr == "" {
			return
		}
		var err error
		if network == "udp" {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", addr); err == nil {
				pc.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", addr); err == nil {
				l.Close()
			}
		}
		if err != nil {
			ps = append(ps, c.Errorf(path, "cannot listen on %s/%s: %v", addr, network, err))
		}
	}
	try("admin.listen", "tcp", c.Admin.Listen)
	try("ldap.listen", "tcp", c.LDAP.Listen)
	try("ldap.ldaps_listen", "tcp", c.LDAP.LDAPSListen)
	for _, l := range c.RADIUS.Listen {
		try("radius.listen", "udp", l)
	}
	return ps
}
