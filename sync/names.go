package sync

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/secret"
)

// PrincipalName applies SPEC 5.2: no domains → the email as is; domains
// without a default → only listed domains are synced; with a default →
// listed domains as is, others become <local part>@<default>.
func PrincipalName(email string, domains []string, defaultDomain string) (string, error) {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return "", fmt.Errorf("email %q has no domain", email)
	}
	if len(domains) == 0 {
		return email, nil
	}
	domain := email[at+1:]
	for _, d := range domains {
		if strings.EqualFold(d, domain) {
			return email, nil
		}
	}
	if defaultDomain == "" {
		return "", fmt.Errorf("email domain %s is not one of this directory's domains (%s) and no default_domain is set", domain, strings.Join(domains, ", "))
	}
	return email[:at] + "@" + defaultDomain, nil
}

// PasswordPolicy is a directory's length rule (SPEC 3.6).
type PasswordPolicy struct {
	MinLength int `toml:"min_length"`
	MaxLength int `toml:"max_length"`
}

// Check says why the directory would reject pw, or nil.
func (p PasswordPolicy) Check(pw secret.String) error {
	n := utf8.RuneCount(pw.Bytes())
	if p.MinLength > 0 && n < p.MinLength {
		return fmt.Errorf("password has %d characters; this directory needs at least %d", n, p.MinLength)
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		return fmt.Errorf("password has %d characters; this directory allows at most %d", n, p.MaxLength)
	}
	return nil
}
