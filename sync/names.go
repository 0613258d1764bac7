package sync

import (
	"fmt"
	"strings"
	"unicode"
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

// PasswordPolicy is what a directory accepts (SPEC 3.6): a length range
// and how many of the four character classes (lowercase, uppercase,
// digits, symbols) a password must mix.
type PasswordPolicy struct {
	MinLength int `toml:"min_length"`
	MaxLength int `toml:"max_length"`
	// MinCharacterClasses is 0 (no rule) to 4. Entra ID wants 3 of 4.
	MinCharacterClasses int `toml:"min_character_classes"`
}

// Check says why the directory would reject pw, or nil. It never
// repeats the password or its characters.
func (p PasswordPolicy) Check(pw secret.String) error {
	b := pw.Bytes()
	n := utf8.RuneCount(b)
	if p.MinLength > 0 && n < p.MinLength {
		return fmt.Errorf("password has %d characters; this directory needs at least %d", n, p.MinLength)
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		return fmt.Errorf("password has %d characters; this directory allows at most %d", n, p.MaxLength)
	}
	if p.MinCharacterClasses > 0 {
		if c := characterClasses(b); c < p.MinCharacterClasses {
			return fmt.Errorf("password mixes %d of the 4 character classes (lowercase, uppercase, digits, symbols); this directory needs %d", c, p.MinCharacterClasses)
		}
	}
	return nil
}

// characterClasses counts the classes present in pw. Letters outside
// ASCII count by their case; other characters, spaces included, are
// symbols, as Entra ID counts them.
func characterClasses(pw []byte) int {
	var lower, upper, digit, symbol bool
	for _, r := range string(pw) {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		default:
			symbol = true
		}
	}
	n := 0
	for _, has := range []bool{lower, upper, digit, symbol} {
		if has {
			n++
		}
	}
	return n
}
