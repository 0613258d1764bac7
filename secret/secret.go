// Package secret holds plaintext credentials so that they cannot leak by
// accident: every printing, logging and encoding path yields "[redacted]" or
// an error, and the bytes can be wiped once the work that needs them is done.
package secret

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
)

const redacted = "[redacted]"

// ErrNoEncoding is returned by the marshalers: a secret has no wire form.
var ErrNoEncoding = errors.New("secret: a plaintext credential cannot be encoded")

// String is a plaintext credential. The zero value is an empty secret.
// Copies share the underlying bytes, so Wipe on one wipes all of them;
// call Clone when a copy must outlive the original (a background push).
type String struct {
	b []byte
}

// New takes ownership of b; the caller must not use b afterwards.
func New(b []byte) String { return String{b: b} }

// FromString copies s. Go strings are immutable and cannot be wiped, so
// prefer New with a byte slice read straight from the wire.
func FromString(s string) String { return String{b: []byte(s)} }

// Bytes exposes the plaintext for the code that must use it (hashing,
// a protocol encoder). Do not retain the slice.
func (s String) Bytes() []byte { return s.b }

// Len is the length in bytes.
func (s String) Len() int { return len(s.b) }

// IsEmpty reports whether there is no secret at all.
func (s String) IsEmpty() bool { return len(s.b) == 0 }

// Equal compares in constant time.
func (s String) Equal(o String) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// Clone returns an independent copy (own backing array).
func (s String) Clone() String {
	if s.b == nil {
		return String{}
	}
	c := make([]byte, len(s.b))
	copy(c, s.b)
	return String{b: c}
}

// Wipe overwrites the bytes with zeros. Go may have copied them elsewhere
// (GC moves nothing, but conversions do), so this narrows, not closes, the
// window in which a memory dump shows the password.
func (s String) Wipe() {
	for i := range s.b {
		s.b[i] = 0
	}
}

func (s String) String() string   { return redacted }
func (s String) GoString() string { return redacted }

// Format covers every verb, %x and %q included.
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue keeps slog handlers from reflecting into the struct.
func (s String) LogValue() slog.Value { return slog.StringValue(redacted) }

func (s String) MarshalJSON() ([]byte, error)   { return nil, ErrNoEncoding }
func (s String) MarshalText() ([]byte, error)   { return nil, ErrNoEncoding }
func (s String) MarshalBinary() ([]byte, error) { return nil, ErrNoEncoding }
