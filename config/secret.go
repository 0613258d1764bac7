package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gatewayd/gatewayd/secret"
)

// Secret is a config value written as a reference, "env:NAME" or
// "file:PATH". Literal secrets are refused so that the config file can be
// shared, versioned and logged safely. The loader resolves every Secret it
// decodes (unless told to leave them, as the admin CLI does); a component
// reads Value and checks in Validate that a required one IsSet.
type Secret struct {
	// Ref is the reference as written.
	Ref string
	// Value is what Ref points at, once resolved.
	Value secret.String
}

// UnmarshalText keeps the reference; resolving it is a separate step so
// that a command that does not need a secret never reads it.
func (s *Secret) UnmarshalText(b []byte) error {
	s.Ref = string(b)
	return nil
}

// IsSet reports whether the file gave a reference.
func (s Secret) IsSet() bool { return s.Ref != "" }

// String never shows the value.
func (s Secret) String() string { return s.Ref }

// Resolve reads the referenced secret. Trailing newlines of a file are
// dropped, since editors and `echo` add them. An empty Ref resolves to
// nothing without error: whether a secret is required is the block's
// call.
func (s *Secret) Resolve() error {
	switch {
	case s.Ref == "":
		return nil
	case strings.HasPrefix(s.Ref, "env:"):
		name := strings.TrimPrefix(s.Ref, "env:")
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return fmt.Errorf("environment variable %s (from %q) is not set or empty", name, s.Ref)
		}
		s.Value = secret.FromString(v)
	case strings.HasPrefix(s.Ref, "file:"):
		p := strings.TrimPrefix(s.Ref, "file:")
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("cannot read secret file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return fmt.Errorf("secret file %s is empty", p)
		}
		s.Value = secret.New(b)
	default:
		return errors.New("secrets must be references, env:NAME or file:PATH; a literal secret is not accepted so it never sits in the config file")
	}
	return nil
}

// ErrSecretRequired is the message for a required secret left out.
const ErrSecretRequired = "a secret is required: write env:NAME or file:PATH"
