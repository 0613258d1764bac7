package authn

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// HashParams are the argon2id cost parameters (SPEC 2.8).
type HashParams struct {
	Time      uint32 `toml:"time"` // iterations
	MemoryKiB uint32 `toml:"memory_kib"`
	Threads   uint8  `toml:"threads"`
	SaltLen   uint32 `toml:"-"`
	KeyLen    uint32 `toml:"-"`
}

// DefaultHashParams: t=1, 64 MiB, p=2 measured 22–24 ms per verify on the
// 2-core reference machine (shared/DEPENDENCIES.md), the RFC 9106 second
// recommended option scaled to a small VM.
var DefaultHashParams = HashParams{Time: 1, MemoryKiB: 64 * 1024, Threads: 2, SaltLen: 16, KeyLen: 32}

var b64 = base64.RawStdEncoding

var errBadHash = errors.New("stored password hash is not a valid argon2id PHC string")

// hashPassword returns a PHC string: $argon2id$v=19$m=..,t=..,p=..$salt$key
func hashPassword(pw []byte, p HashParams) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read random salt: %w", err)
	}
	key := argon2.IDKey(pw, salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	processHashMemory.hashed()
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

type parsedHash struct {
	params HashParams
	salt   []byte
	key    []byte
}

func parseHash(s string) (parsedHash, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return parsedHash{}, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return parsedHash{}, errBadHash
	}
	var ph parsedHash
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &ph.params.MemoryKiB, &ph.params.Time, &threads); err != nil {
		return parsedHash{}, errBadHash
	}
	if threads == 0 || threads > 255 || ph.params.Time == 0 || ph.params.MemoryKiB < 8*threads {
		return parsedHash{}, errBadHash
	}
	ph.params.Threads = uint8(threads)
	var err error
	if ph.salt, err = b64.DecodeString(parts[4]); err != nil || len(ph.salt) < 8 {
		return parsedHash{}, errBadHash
	}
	if ph.key, err = b64.DecodeString(parts[5]); err != nil || len(ph.key) < 16 {
		return parsedHash{}, errBadHash
	}
	ph.params.SaltLen = uint32(len(ph.salt))
	ph.params.KeyLen = uint32(len(ph.key))
	return ph, nil
}

// verify computes the key for pw under the stored parameters and compares
// it in constant time.
func (ph parsedHash) verify(pw []byte) bool {
	key := argon2.IDKey(pw, ph.salt, ph.params.Time, ph.params.MemoryKiB, ph.params.Threads, ph.params.KeyLen)
	processHashMemory.hashed()
	return subtle.ConstantTimeCompare(key, ph.key) == 1
}

// needsRehash: the stored cost differs from what the config asks for now.
func (ph parsedHash) needsRehash(want HashParams) bool {
	return ph.params.Time != want.Time || ph.params.MemoryKiB != want.MemoryKiB ||
		ph.params.Threads != want.Threads || ph.params.KeyLen != want.KeyLen || ph.params.SaltLen != want.SaltLen
}
