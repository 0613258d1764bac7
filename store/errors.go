package store

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by writes after Close.
	ErrClosed = errors.New("store is closed")
	// ErrDamaged marks an error about a damaged state journal (bad file
	// structure, a value that does not decode, a truncated file). The
	// daemon must not start on such a journal; the operator restores a
	// backup. The store never rewrites a journal it found damaged.
	ErrDamaged = errors.New("state journal is damaged")
)

// ruleError carries a message a person can act on and wraps one of the
// sentinel errors (ErrInvalid, ErrConflict, ErrNotFound) for errors.Is.
type ruleError struct {
	kind error
	msg  string
}

func (e *ruleError) Error() string { return e.msg }
func (e *ruleError) Unwrap() error { return e.kind }

func invalidf(format string, args ...any) error {
	return &ruleError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) error {
	return &ruleError{kind: ErrConflict, msg: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &ruleError{kind: ErrNotFound, msg: fmt.Sprintf(format, args...)}
}

// damagedError names the journal file and what is wrong with it.
type damagedError struct {
	path   string
	detail string
	advice string // what to do; empty: restore a backup
}

func (e *damagedError) Error() string {
	advice := e.advice
	if advice == "" {
		advice = "restore it from a backup (gatewayd never rewrites a damaged journal)"
	}
	return fmt.Sprintf("state journal %s is damaged (%s): %s", e.path, e.detail, advice)
}

func (e *damagedError) Is(target error) bool { return target == ErrDamaged }

func damaged(path, format string, args ...any) error {
	return &damagedError{path: path, detail: fmt.Sprintf(format, args...)}
}
