package entra

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/gatewayd/gatewayd/config"
	gsync "github.com/gatewayd/gatewayd/sync"
)

// TypeName is the [[directory]] type of an Entra ID tenant.
const TypeName = "entra"

// DefaultPasswordPolicy is what Entra ID accepts (SPEC 3.6): 8 to 256
// characters mixing 3 of the 4 character classes.
var DefaultPasswordPolicy = gsync.PasswordPolicy{MinLength: 8, MaxLength: 256, MinCharacterClasses: 3}

func init() {
	config.RegisterDirectoryType(TypeName, func() config.DirectoryBlock { return new(DirectoryConfig) })
}

// DirectoryConfig is a [[directory]] block with type = "entra": the common
// keys plus the app registration that reaches the tenant.
type DirectoryConfig struct {
	gsync.DirectoryCommon
	// TenantID is the directory (tenant) id or a verified domain.
	TenantID string `toml:"tenant_id"`
	// ClientID is the app registration's application (client) id.
	ClientID string `toml:"client_id"`
	// ClientSecret is the app registration's client secret, a reference.
	ClientSecret config.Secret `toml:"client_secret"`
	// AuthorityURL and GraphURL override the endpoints (tests, national
	// clouds); empty means the defaults.
	AuthorityURL string `toml:"authority_url"`
	GraphURL     string `toml:"graph_url"`
}

var _ gsync.DirectoryConfig = (*DirectoryConfig)(nil)

// Defaults sets the block's defaults.
func (c *DirectoryConfig) Defaults() {
	*c = DirectoryConfig{}
	c.DirectoryCommon.Defaults(TypeName, DefaultPasswordPolicy)
	c.SetAttributeRules(AttributeRules())
}

// Validate checks the block. The client secret was resolved by the loader.
func (c *DirectoryConfig) Validate() error {
	errs := []error{c.DirectoryCommon.Validate()}
	label := c.Label(-1)
	// What New refuses is refused here too, at its key: check-config
	// builds no connector.
	if c.TenantID == "" {
		errs = append(errs, config.Errorf("tenant_id", "%s: tenant_id is required for type entra", label))
	} else if !tenantRE.MatchString(c.TenantID) {
		errs = append(errs, config.Errorf("tenant_id", "%s: tenant_id must be the tenant's GUID or a verified domain, got %q", label, c.TenantID))
	}
	if c.ClientID == "" {
		errs = append(errs, config.Errorf("client_id", "%s: client_id is required for type entra", label))
	} else if !clientIDRE.MatchString(c.ClientID) {
		errs = append(errs, config.Errorf("client_id", "%s: client_id must be the app registration's application (client) id, got %q", label, c.ClientID))
	}
	if !c.ClientSecret.IsSet() {
		errs = append(errs, config.Errorf("client_secret", "%s: %s", label, config.ErrSecretRequired))
	}
	for _, u := range []struct{ key, v string }{{"authority_url", c.AuthorityURL}, {"graph_url", c.GraphURL}} {
		if u.v == "" {
			continue
		}
		if _, err := baseURL(u.v, ""); err != nil {
			errs = append(errs, config.Errorf(u.key, "%s: %v", label, err))
		}
	}
	return errors.Join(errs...)
}

// Common returns the keys every directory type has.
func (c *DirectoryConfig) Common() *gsync.DirectoryCommon { return &c.DirectoryCommon }

// Identity is the tenant: two blocks for one tenant would fight over it.
func (c *DirectoryConfig) Identity() (key, value string) {
	if c.TenantID == "" {
		return "tenant_id", ""
	}
	return "tenant_id", "tenant " + strings.ToLower(c.TenantID)
}

// NewConnector builds the Graph connector.
func (c *DirectoryConfig) NewConnector(_ context.Context, logger *slog.Logger) (gsync.Connector, error) {
	return New(Config{Name: c.Name, TenantID: c.TenantID, ClientID: c.ClientID, ClientSecret: c.ClientSecret.Value,
		AuthorityURL: c.AuthorityURL, GraphURL: c.GraphURL, Logger: logger})
}
