package ad

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	ldap "github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/secret"
	gsync "github.com/gatewayd/gatewayd/sync"
)

// TypeName is the [[directory]] type of an Active Directory write-back.
const TypeName = "ad"

// DefaultPasswordPolicy is AD's default domain policy with complexity on
// (SPEC 3.6): at least 7 characters from 3 of the 4 classes. A domain
// with a stricter policy refuses a weaker password with a permanent
// error; set password_policy to match it.
var DefaultPasswordPolicy = gsync.PasswordPolicy{MinLength: 7, MaxLength: 256, MinCharacterClasses: 3}

func init() {
	config.RegisterDirectoryType(TypeName, func() config.DirectoryBlock { return new(DirectoryConfig) })
}

// DirectoryConfig is a [[directory]] block with type = "ad": the common
// keys, the [[ad]] block whose domain controllers and service account it
// uses, and the container new accounts and groups are made in.
type DirectoryConfig struct {
	gsync.DirectoryCommon
	// Domain names the [[ad]] block (its name) to write to.
	Domain string `toml:"domain"`
	// Root is the container (DN) for new accounts and groups; empty:
	// CN=Users under the domain's base DN. Existing accounts are found
	// (and taken over) anywhere under the base DN.
	Root string `toml:"root"`

	server *Server
}

var _ gsync.DirectoryConfig = (*DirectoryConfig)(nil)

// Server is what the daemon passes from the [[ad]] block named by domain:
// how to reach and bind to the domain controllers.
type Server struct {
	Realm string // AD DNS domain (EXAMPLE.TEST): UPN suffix
	URLs  []string
	// StartTLS upgrades ldap:// URLs; AllowInsecure permits plain
	// ldap:// (then no password is ever sent: unicodePwd is refused).
	StartTLS      bool
	AllowInsecure bool
	RootCAs       *x509.CertPool
	ServerName    string
	BaseDN        string
	BindDN        string
	BindPassword  secret.String
	// ConnectTimeout bounds a dial; Timeout each operation.
	ConnectTimeout time.Duration
	Timeout        time.Duration
	// Dial opens the TCP connection (tests); nil: net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Registerer takes the connector's metrics; nil: none.
	Registerer prometheus.Registerer
}

// Defaults sets the block's defaults.
func (c *DirectoryConfig) Defaults() {
	*c = DirectoryConfig{}
	c.DirectoryCommon.Defaults(TypeName, DefaultPasswordPolicy)
	c.SetAttributeRules(AttributeRules())
}

// Validate checks the block; that domain names an [[ad]] block with a
// service account is checked by the daemon, which sees both.
func (c *DirectoryConfig) Validate() error {
	errs := []error{c.DirectoryCommon.Validate()}
	label := c.Label(-1)
	if c.Domain == "" {
		errs = append(errs, config.Errorf("domain", "%s: domain is required for type ad: the name of the [[ad]] block to write to", label))
	}
	if c.Root != "" {
		if _, err := ldap.ParseDN(c.Root); err != nil {
			errs = append(errs, config.Errorf("root", "%s: root %q is not a DN: %v", label, c.Root, err))
		}
	}
	if len(c.Domains) > 0 || c.DefaultDomain != "" {
		errs = append(errs, config.Errorf("domains", "%s: type ad names accounts by username (sAMAccountName, UPN username@realm); domains and default_domain do not apply", label))
	}
	return errors.Join(errs...)
}

// Common returns the keys every directory type has.
func (c *DirectoryConfig) Common() *gsync.DirectoryCommon { return &c.DirectoryCommon }

// Identity is the [[ad]] block: two write-backs into one domain would
// fight over its accounts.
func (c *DirectoryConfig) Identity() (key, value string) {
	if c.Domain == "" {
		return "domain", ""
	}
	return "domain", "ad domain " + c.Domain
}

// SetServer gives the block its [[ad]] block's connection (the daemon).
func (c *DirectoryConfig) SetServer(s Server) { c.server = &s }

// NewConnector builds the LDAP connector; it does not connect yet.
func (c *DirectoryConfig) NewConnector(_ context.Context, logger *slog.Logger) (gsync.Connector, error) {
	if c.server == nil {
		return nil, fmt.Errorf("no [[ad]] block named %q", c.Domain)
	}
	return New(Config{Name: c.Name, Root: c.Root, Server: *c.server, Logger: logger})
}

// AttributeRules are the AD mapping rules: the defaults are the
// attributes the AD import reads (adimport), so what one writes the other
// reads back unchanged.
func AttributeRules() gsync.AttributeRules {
	return gsync.AttributeRules{Defaults: DefaultAttributes(), ManagerProperty: ManagerProperty, CheckProperty: checkProperty}
}

// ManagerProperty holds the manager's DN.
const ManagerProperty = "manager"

// DefaultAttributes maps gateway attributes to AD attributes.
func DefaultAttributes() map[string]string {
	return map[string]string{
		"title": "title", "department": "department", "company": "company", "location": "l",
		"employeeType": "employeeType", "telephoneNumber": "telephoneNumber", "mobile": "mobile",
		"postalAddress": "postalAddress", "manager": ManagerProperty,
	}
}

var reservedAttrs = map[string]string{
	"objectguid":         "it is the account's identity",
	"samaccountname":     "it is the gateway username",
	"userprincipalname":  "it is username@realm",
	"unicodepwd":         "passwords are pushed by password takeover",
	"useraccountcontrol": "sign-in is blocked and unblocked by the gateway's state",
	"givenname":          "it comes from the user's first name",
	"sn":                 "it comes from the user's last name",
	"displayname":        "it comes from the user's display name",
	"cn":                 "it is the account's RDN",
	"name":               "it is the account's RDN",
	"member":             "group membership follows the gateway's groups",
	"memberof":           "group membership follows the gateway's groups",
	"objectclass":        "it is the account's class",
	"admincount":         "privileged accounts are not managed by the gateway",
}

func checkProperty(p string) error {
	if why, ok := reservedAttrs[lower(p)]; ok {
		return fmt.Errorf("%q cannot be mapped: %s", p, why)
	}
	for i, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '-')) {
			return fmt.Errorf("%q is not an LDAP attribute name", p)
		}
	}
	return nil
}
