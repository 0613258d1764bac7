// Package sha512crypt is SHA-512 crypt ("$6$"), as specified by Ulrich
// Drepper in "Unix crypt using SHA-256 and SHA-512", the algorithm glibc's
// crypt(3) implements, written from that specification because
// golang.org/x/crypto has none. Google Workspace accepts a password as
// such a hash, so the Google connector hashes with it and the fake of
// Google verifies with it.
package sha512crypt

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Parameters of SHA-512 crypt.
const (
	// Prefix starts every SHA-512 crypt hash.
	Prefix = "$6$"
	// DefaultRounds is used when the setting names no rounds; the hash
	// then carries no "rounds=" field.
	DefaultRounds = 5000
	// MinRounds and MaxRounds bound an explicit rounds= value (the
	// specification clamps values outside).
	MinRounds = 1000
	MaxRounds = 999999999
	// SaltLen is the longest salt; longer ones are truncated.
	SaltLen = 16

	roundsPrefix = "rounds="
	cryptAlpha   = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	hashChars    = 86 // 64 bytes in crypt's base-64
)

// errFormat is wrapped by every error about a malformed setting or hash.
var errFormat = errors.New("not a SHA-512 crypt ($6$) setting")

// cryptSetting is a parsed "$6$[rounds=N$]salt[$hash]".
type cryptSetting struct {
	salt     string
	rounds   int
	explicit bool   // rounds= present
	hash     string // what follows the salt's '$', if any
}

// parseCryptSetting reads a setting or a full hash as crypt(3) does: the
// salt ends at the next '$' (or the end) and is truncated to 16
// characters; an explicit rounds value is clamped to [1000, 999999999].
func parseCryptSetting(s string) (cryptSetting, error) {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return cryptSetting{}, errFormat
	}
	cs := cryptSetting{rounds: DefaultRounds}
	if r, ok := strings.CutPrefix(rest, roundsPrefix); ok {
		num, after, found := strings.Cut(r, "$")
		if !found || num == "" {
			return cryptSetting{}, fmt.Errorf("%w: rounds= must be followed by digits and '$'", errFormat)
		}
		for _, ch := range num {
			if ch < '0' || ch > '9' {
				return cryptSetting{}, fmt.Errorf("%w: rounds=%q is not a number", errFormat, num)
			}
		}
		n, err := strconv.ParseUint(num, 10, 64)
		switch {
		case err != nil || n > MaxRounds:
			cs.rounds = MaxRounds
		case n < MinRounds:
			cs.rounds = MinRounds
		default:
			cs.rounds = int(n)
		}
		cs.explicit = true
		rest = after
	}
	salt, hash, _ := strings.Cut(rest, "$")
	if len(salt) > SaltLen {
		salt = salt[:SaltLen]
	}
	cs.salt, cs.hash = salt, hash
	return cs, nil
}

// Crypt computes the SHA-512 crypt hash of password for setting,
// "$6$salt" or "$6$rounds=N$salt" (anything after the salt's terminating
// '$' is ignored, so a full hash works as the setting, as with crypt(3)).
func Crypt(password []byte, setting string) (string, error) {
	cs, err := parseCryptSetting(setting)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(cs.salt, "\x00\n:") {
		return "", fmt.Errorf("%w: the salt holds a forbidden character", errFormat)
	}
	sum := digest(password, []byte(cs.salt), cs.rounds)
	var b strings.Builder
	b.Grow(len(Prefix) + len(roundsPrefix) + 10 + len(cs.salt) + 1 + hashChars)
	b.WriteString(Prefix)
	if cs.explicit {
		b.WriteString(roundsPrefix)
		b.WriteString(strconv.Itoa(cs.rounds))
		b.WriteByte('$')
	}
	b.WriteString(cs.salt)
	b.WriteByte('$')
	encodeCrypt64(&b, &sum)
	clear(sum[:])
	return b.String(), nil
}

// Hash hashes password with a fresh random 16-character salt
// (crypto/rand) and the default 5000 rounds: the plain "$6$salt$hash"
// form, which every crypt(3) implementation and Google accept.
func Hash(password []byte) (string, error) {
	salt, err := newSalt()
	if err != nil {
		return "", err
	}
	return Crypt(password, Prefix+salt)
}

// Verify reports whether hash is a well-formed SHA-512 crypt hash of
// password. The comparison is constant-time.
func Verify(hash string, password []byte) bool {
	if Validate(hash) != nil {
		return false
	}
	got, err := Crypt(password, hash)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1
}

// Validate checks that hash is a complete SHA-512 crypt hash in canonical
// form: "$6$", an optional in-range "rounds=N$", a salt of 1–16 crypt
// characters, '$', and 86 crypt characters.
func Validate(hash string) error {
	cs, err := parseCryptSetting(hash)
	if err != nil {
		return err
	}
	rest := strings.TrimPrefix(hash, Prefix)
	if cs.explicit {
		want := roundsPrefix + strconv.Itoa(cs.rounds) + "$"
		if !strings.HasPrefix(rest, want) {
			return fmt.Errorf("%w: rounds must be written in range %d–%d without leading zeros", errFormat, MinRounds, MaxRounds)
		}
		rest = rest[len(want):]
	}
	salt, sum, found := strings.Cut(rest, "$")
	switch {
	case !found:
		return fmt.Errorf("%w: no hash after the salt", errFormat)
	case salt == "" || len(salt) > SaltLen || !isCrypt64(salt):
		return fmt.Errorf("%w: the salt must be 1 to %d characters of [./0-9A-Za-z]", errFormat, SaltLen)
	case len(sum) != hashChars || !isCrypt64(sum):
		return fmt.Errorf("%w: the hash must be %d characters of [./0-9A-Za-z]", errFormat, hashChars)
	}
	return nil
}

// Rounds returns the rounds of a SHA-512 crypt hash or setting, as
// crypt(3) would use them (an out-of-range rounds= value clamped).
func Rounds(hash string) (int, error) {
	cs, err := parseCryptSetting(hash)
	if err != nil {
		return 0, err
	}
	return cs.rounds, nil
}

func isCrypt64(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(cryptAlpha, s[i]) < 0 {
			return false
		}
	}
	return true
}

// newSalt returns 16 characters drawn uniformly from the crypt
// alphabet (64 symbols, so the low six bits of a random byte are exact).
func newSalt() (string, error) {
	var b [SaltLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("crypto/rand: %w", err)
	}
	for i := range b {
		b[i] = cryptAlpha[b[i]&0x3f]
	}
	return string(b[:]), nil
}

// digest is the specification's steps 1–21, returning the final
// digest (step 22 encodes it). Intermediate buffers derived from the
// password are wiped.
func digest(pw, salt []byte, rounds int) [sha512.Size]byte {
	const size = sha512.Size
	plen := len(pw)

	// Steps 4–8: digest B = SHA512(password, salt, password).
	h := sha512.New()
	h.Write(pw)
	h.Write(salt)
	h.Write(pw)
	var b [size]byte
	h.Sum(b[:0])

	// Steps 1–3, 9–12: digest A.
	h.Reset()
	h.Write(pw)
	h.Write(salt)
	n := plen
	for ; n > size; n -= size {
		h.Write(b[:])
	}
	h.Write(b[:n])
	for n = plen; n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b[:])
		} else {
			h.Write(pw)
		}
	}
	var a [size]byte
	h.Sum(a[:0])
	clear(b[:])

	// Steps 13–16: the P sequence, from DP = SHA512(password × len).
	h.Reset()
	for range plen {
		h.Write(pw)
	}
	var dp [size]byte
	h.Sum(dp[:0])
	p := make([]byte, plen)
	for i := 0; i < plen; i += size {
		copy(p[i:], dp[:])
	}
	clear(dp[:])

	// Steps 17–20: the S sequence, from DS = SHA512(salt × (16 + A[0])).
	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(salt)
	}
	var ds [size]byte
	h.Sum(ds[:0])
	s := make([]byte, len(salt))
	for i := 0; i < len(salt); i += size {
		copy(s[i:], ds[:])
	}

	// Step 21: the rounds.
	c := a
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c[:])
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c[:])
		} else {
			h.Write(p)
		}
		h.Sum(c[:0])
	}
	clear(p)
	clear(a[:])
	return c
}

// encodeCrypt64 is step 22 for SHA-512: the 64 bytes in the
// specification's order, three at a time, in crypt's base-64 (least
// significant six bits first), then the last byte alone.
func encodeCrypt64(b *strings.Builder, sum *[sha512.Size]byte) {
	put := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for range n {
			b.WriteByte(cryptAlpha[w&0x3f])
			w >>= 6
		}
	}
	for i := range 21 {
		x, y, z := sum[i], sum[i+21], sum[i+42]
		switch i % 3 {
		case 0:
			put(x, y, z, 4)
		case 1:
			put(y, z, x, 4)
		default:
			put(z, x, y, 4)
		}
	}
	put(0, 0, sum[63], 2)
}
