package entra

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"unicode/utf8"
)

// userPath is the Graph path of one user by object id or UPN. Every byte
// but RFC 3986 unreserved characters and '@' is percent-encoded: '#' (B2B
// guests' #EXT#), '?', '/', '+', '%', apostrophes. A UPN that begins with
// '$' would read as an OData system segment, so Graph documents the key
// form /users('$name@domain') for it (quotes doubled inside).
func userPath(key string) string {
	if strings.HasPrefix(key, "$") {
		return "/users('" + escapeSegment(strings.ReplaceAll(key, "'", "''")) + "')"
	}
	return "/users/" + escapeSegment(key)
}

func escapeSegment(s string) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~', ch == '@':
			b.WriteByte(ch)
		default:
			b.WriteByte('%')
			b.WriteByte(hexdig[ch>>4])
			b.WriteByte(hexdig[ch&15])
		}
	}
	return b.String()
}

// jsonBody encodes a request body without secrets.
func jsonBody(fields map[string]any) ([]byte, error) {
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the request: %v", err)
	}
	return b, nil
}

const pwProfilePrefix = `"passwordProfile":{"forceChangePasswordNextSignIn":false,"password":"`

// bodyWithPassword encodes fields plus a passwordProfile holding pw. The
// buffer is sized exactly up front so that no reallocation leaves a stray
// copy of the password behind; the caller wipes it after the request.
func bodyWithPassword(fields map[string]any, pw []byte) ([]byte, error) {
	if !utf8.Valid(pw) {
		return nil, errors.New("the password is not valid UTF-8")
	}
	head := []byte("{")
	if len(fields) > 0 {
		j, err := json.Marshal(fields)
		if err != nil {
			return nil, fmt.Errorf("cannot encode the request: %v", err)
		}
		head = append(j[:len(j)-1], ',')
	}
	buf := make([]byte, 0, len(head)+len(pwProfilePrefix)+jsonStringLen(pw)+len(`"}}`))
	buf = append(buf, head...)
	buf = append(buf, pwProfilePrefix...)
	buf = appendJSONString(buf, pw)
	buf = append(buf, `"}}`...)
	return buf, nil
}

// jsonStringLen is the length of appendJSONString's output for b.
func jsonStringLen(b []byte) int {
	n := 0
	for _, ch := range b {
		switch {
		case ch == '"' || ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t':
			n += 2
		case ch < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// appendJSONString appends the body of a JSON string (no quotes) for
// valid UTF-8 b, without converting it to a Go string.
func appendJSONString(dst, b []byte) []byte {
	const hexdig = "0123456789abcdef"
	for _, ch := range b {
		switch {
		case ch == '"':
			dst = append(dst, '\\', '"')
		case ch == '\\':
			dst = append(dst, '\\', '\\')
		case ch == '\n':
			dst = append(dst, '\\', 'n')
		case ch == '\r':
			dst = append(dst, '\\', 'r')
		case ch == '\t':
			dst = append(dst, '\\', 't')
		case ch < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexdig[ch>>4], hexdig[ch&15])
		default:
			dst = append(dst, ch)
		}
	}
	return dst
}

func wipe(b []byte) { clear(b) }

// Character classes for generated passwords. The symbols are a subset of
// what Entra accepts, without quotes, backslash or space.
const (
	pwLower   = "abcdefghijkmnopqrstuvwxyz"
	pwUpper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	pwDigits  = "23456789"
	pwSymbols = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
	pwLen     = 24
)

// generatePassword returns a random password of pwLen characters with at
// least one of each class, which meets Entra's rule (8–256 characters,
// three of four classes). The caller wipes it.
func generatePassword() []byte {
	all := pwLower + pwUpper + pwDigits + pwSymbols
	pw := make([]byte, pwLen)
	for i, set := range []string{pwLower, pwUpper, pwDigits, pwSymbols} {
		pw[i] = set[randIntn(len(set))]
	}
	for i := 4; i < pwLen; i++ {
		pw[i] = all[randIntn(len(all))]
	}
	for i := pwLen - 1; i > 0; i-- { // Fisher–Yates
		j := randIntn(i + 1)
		pw[i], pw[j] = pw[j], pw[i]
	}
	return pw
}

func randIntn(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic("entra: crypto/rand failed: " + err.Error())
	}
	return int(v.Int64())
}

// newRequestID is a random UUID for Graph's client-request-id header,
// which Microsoft support uses to find a call.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func newTLSConfig() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }
