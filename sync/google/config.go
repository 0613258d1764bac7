package google

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/gatewayd/gatewayd/config"
	gsync "github.com/gatewayd/gatewayd/sync"
)

// TypeName is the [[directory]] type of a Google Workspace customer.
const TypeName = "google"

// DefaultPasswordPolicy is what Google Workspace accepts (SPEC 3.6).
var DefaultPasswordPolicy = gsync.PasswordPolicy{MinLength: 8, MaxLength: 100}

func init() {
	config.RegisterDirectoryType(TypeName, func() config.DirectoryBlock { return new(DirectoryConfig) })
}

// DirectoryConfig is a [[directory]] block with type = "google": the
// common keys plus the service account that reaches the customer.
type DirectoryConfig struct {
	gsync.DirectoryCommon
	// CustomerID is the Workspace customer id (C01abc234).
	CustomerID string `toml:"customer_id"`
	// CredentialsFile is the service account's JSON key, mode 0600.
	CredentialsFile string `toml:"credentials_file"`
	// AdminSubject is the administrator the key acts as.
	AdminSubject string `toml:"admin_subject"`
	// Endpoint and TokenURL override Google's endpoints (tests).
	Endpoint string `toml:"endpoint"`
	TokenURL string `toml:"token_url"`
}

var _ gsync.DirectoryConfig = (*DirectoryConfig)(nil)

// Defaults sets the block's defaults.
func (c *DirectoryConfig) Defaults() {
	*c = DirectoryConfig{}
	c.DirectoryCommon.Defaults(TypeName, DefaultPasswordPolicy)
	c.SetAttributeRules(AttributeRules())
}

// Validate checks the block, including that the key file is readable by
// its owner only.
func (c *DirectoryConfig) Validate() error {
	errs := []error{c.DirectoryCommon.Validate()}
	label := c.Label(-1)
	// What New refuses is refused here too, at its key: check-config
	// builds no connector.
	if c.CustomerID == "" {
		errs = append(errs, config.Errorf("customer_id", "%s: customer_id is required for type google", label))
	} else if strings.ContainsAny(strings.TrimSpace(c.CustomerID), "/?#&= \t\r\n") {
		errs = append(errs, config.Errorf("customer_id", "%s: customer_id %q is not a customer id (Admin console > Account > Account settings, e.g. C01abc234)", label, c.CustomerID))
	}
	if c.AdminSubject == "" {
		errs = append(errs, config.Errorf("admin_subject", "%s: admin_subject is required for type google", label))
	} else if !plausibleEmail(strings.TrimSpace(c.AdminSubject)) {
		errs = append(errs, config.Errorf("admin_subject", "%s: admin_subject must be the primary email of an administrator of the domain, got %q", label, c.AdminSubject))
	}
	if c.CredentialsFile == "" {
		errs = append(errs, config.Errorf("credentials_file", "%s: credentials_file is required for type google", label))
	} else if st, err := os.Stat(c.CredentialsFile); err != nil {
		errs = append(errs, config.Errorf("credentials_file", "%s: cannot read credentials_file: %v", label, err))
	} else if !st.Mode().IsRegular() {
		errs = append(errs, config.Errorf("credentials_file", "%s: credentials_file %s is not a file", label, c.CredentialsFile))
	} else if st.Mode().Perm()&0o077 != 0 {
		errs = append(errs, config.Errorf("credentials_file", "%s: credentials_file %s is readable by others (mode %v): chmod 600 it", label, c.CredentialsFile, st.Mode().Perm()))
	}
	for _, u := range []struct{ key, v string }{{"endpoint", c.Endpoint}, {"token_url", c.TokenURL}} {
		if u.v == "" {
			continue
		}
		if _, err := checkURL(u.v); err != nil {
			errs = append(errs, config.Errorf(u.key, "%s: %v", label, err))
		}
	}
	return errors.Join(errs...)
}

// Common returns the keys every directory type has.
func (c *DirectoryConfig) Common() *gsync.DirectoryCommon { return &c.DirectoryCommon }

// Identity is the customer: two blocks for one customer would fight over it.
func (c *DirectoryConfig) Identity() (key, value string) {
	if c.CustomerID == "" {
		return "customer_id", ""
	}
	return "customer_id", "customer " + strings.ToLower(c.CustomerID)
}

// NewConnector reads the key file and builds the Directory API connector.
// Groups it creates get addresses in default_domain, else the first of
// domains.
func (c *DirectoryConfig) NewConnector(ctx context.Context, logger *slog.Logger) (gsync.Connector, error) {
	key, err := os.ReadFile(c.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("credentials_file: %w", err)
	}
	domain := c.DefaultDomain
	if domain == "" && len(c.Domains) > 0 {
		domain = c.Domains[0]
	}
	return New(ctx, Config{Name: c.Name, CustomerID: c.CustomerID, AdminSubject: c.AdminSubject,
		CredentialsJSON: key, Domain: domain, Endpoint: c.Endpoint, TokenURL: c.TokenURL, Logger: logger})
}
