package testutil

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/config"
)

// ConfigFile is the file name the config helpers parse under: every
// problem they return reads "test.toml:LINE: ...".
const ConfigFile = "test.toml"

// ParseBlock decodes text as gatewayd.toml would be decoded if the root
// struct had one field, keyed key, of block's type: block points at a
// component's config struct ([ldap] -> *ldapserver.Config), at a slice of
// them for an array of tables ([[ad]] -> *[]delegation.DomainConfig), or
// at a []config.DirectoryBlock ([[directory]]). The loader runs as for the
// daemon (Defaults, decode, unknown keys, secrets, Validate); what it
// decoded is stored in *block even when it reports problems. The error is
// nil or config.Problems. Checks across blocks live in the root's
// Validate: use ParseRoot with a small root of the test's own for those.
func ParseBlock(t testing.TB, key string, block any, text string) error {
	t.Helper()
	bv := reflect.ValueOf(block)
	if bv.Kind() != reflect.Pointer || bv.IsNil() {
		t.Fatalf("ParseBlock: block must be a non-nil pointer, got %T", block)
	}
	root := reflect.New(reflect.StructOf([]reflect.StructField{{
		Name: "Block",
		Type: bv.Type().Elem(),
		Tag:  reflect.StructTag(`toml:"` + key + `"`),
	}}))
	_, err := config.Parse(ConfigFile, []byte(text), root.Interface(), config.Options{})
	bv.Elem().Set(root.Elem().Field(0))
	return err
}

// ParseRoot decodes text over root (a pointer to a struct of blocks, as
// config.Parse takes it), so a test can run a root Validate that checks
// across blocks. The error is nil or config.Problems.
func ParseRoot(t testing.TB, root any, text string) error {
	t.Helper()
	_, err := config.Parse(ConfigFile, []byte(text), root, config.Options{})
	return err
}

// ConfigProblems returns err as config.Problems: nil for nil, and a test
// failure for an error of another kind.
func ConfigProblems(t testing.TB, err error) config.Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want config.Problems, got %T: %v", err, err)
	}
	return ps
}

// WantProblem checks that err holds exactly one problem, in ConfigFile at
// line, about key (the full key path, "radius.client[1].secret"), whose
// text names the key and contains each of msgs. The loader writes a
// block's problems as "key: message" and an unknown key's as
// `unknown key "key"`.
func WantProblem(t testing.TB, err error, key string, line int, msgs ...string) config.Problem {
	t.Helper()
	ps := ConfigProblems(t, err)
	if len(ps) != 1 {
		t.Fatalf("want one problem at %s:%d (%s), got %d:\n%v", ConfigFile, line, key, len(ps), ps)
	}
	p := ps[0]
	CheckProblem(t, p, key, line, msgs...)
	return p
}

// CheckProblem checks one problem as WantProblem does.
func CheckProblem(t testing.TB, p config.Problem, key string, line int, msgs ...string) {
	t.Helper()
	s := p.String()
	if p.File != ConfigFile || p.Line != line || p.Key != key {
		t.Errorf("problem %q is at %s:%d, key %q; want %s:%d, key %q", s, p.File, p.Line, p.Key, ConfigFile, line, key)
	}
	if !strings.Contains(p.Msg, key) {
		t.Errorf("problem %q does not name its key %q", s, key)
	}
	for _, m := range msgs {
		if !strings.Contains(p.Msg, m) {
			t.Errorf("problem %q does not say %q", s, m)
		}
	}
}

// ConfigSection returns the part of a TOML file (gatewayd.toml.example)
// that belongs to the top-level table key: its [key] header and every
// line up to the next table that is not key's own sub-table ([key.x],
// [[key.x]]). A test decodes it with ParseBlock to compare the values the
// example documents with the block's Defaults.
func ConfigSection(t testing.TB, text []byte, key string) string {
	t.Helper()
	var out []string
	in := false
	for _, line := range strings.SplitAfter(string(text), "\n") {
		if h := strings.TrimSpace(line); strings.HasPrefix(h, "[") {
			h, _, _ = strings.Cut(h, "#")
			name := strings.Trim(h, "[] \t")
			in = name == key || strings.HasPrefix(name, key+".")
		}
		if in {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no [%s] table in the file", key)
	}
	return strings.Join(out, "")
}
