// Package config loads gatewayd's TOML file into the blocks the
// components own. It knows no component: each package (ldapserver,
// radiusserver, authn, delegation, the sync engine, each connector)
// exports a TOML-tagged struct with a Defaults and a Validate method, and
// the daemon lists those structs in one root struct. This package decodes
// the file over them, rejects unknown keys, resolves secret references,
// dispatches [[directory]] blocks by type through a registry, and turns
// every problem a component reports into "file:line: message" pointing at
// the offending key.
package config

import (
	"errors"
	"fmt"
	"strings"
)

// Defaulter is a block that can set its own defaults. The loader calls
// Defaults before the file is decoded over the block, so a key the file
// leaves out keeps its default and a key the file sets (even to zero or
// false) wins. Elements of arrays of tables get the same treatment.
type Defaulter interface {
	Defaults()
}

// Validator is a block that checks itself after decoding. Errors that
// concern one key should be made with Errorf so the problem points at the
// key's line; several may be joined with errors.Join.
type Validator interface {
	Validate() error
}

// FieldError is a problem with one key, named relative to the block that
// reports it ("max_message_bytes", "client[1].networks").
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// Errorf reports a problem with key. The message should read well after
// "file:line: " and name the key, so a person knows what to change.
func Errorf(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Prefix moves every FieldError in err under prefix: a block that
// validates its elements reports "client[1].networks" from the element's
// "networks". Errors that are not FieldErrors are attributed to prefix.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, &FieldError{Key: joinKey(prefix, fe.Key), Msg: fe.Msg})
			continue
		}
		out = append(out, &FieldError{Key: prefix, Msg: e.Error()})
	}
	return errors.Join(out...)
}

// flatten unpacks errors.Join trees so each problem gets its own line.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func joinKey(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix
	case strings.HasPrefix(key, "["):
		return prefix + key
	}
	return prefix + "." + key
}

// Problem is one configuration error with its place.
type Problem struct {
	File string
	Line int
	// Key is the full key path ("ldap.max_message_bytes"), when known.
	Key string
	Msg string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Problems is the error Load returns: every problem found, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
