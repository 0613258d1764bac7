package authn

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"layeh.com/radius/rfc2759"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// The NT hash (MD4 of the UTF-16LE password) is what MS-CHAPv2 (PEAP)
// is verified against. It is password-equivalent: whoever holds it can
// log in as the user over MS-CHAPv2 and NTLM. It is kept only with
// [authn] store_nt_hash = true, sealed with AES-256-GCM under the key in
// nt_hash_key_file (the user id as additional data, so a sealed hash
// cannot be moved to another user), and it never leaves authn: the EAP
// server hands authn the challenge and the NT-Response and gets back the
// verdict and the authenticator response.

// ReasonNoNTHash: an MS-CHAPv2 login for a user the gateway holds no NT
// hash for (store_nt_hash is off, or the user has not logged in with a
// plaintext password since it was turned on).
const ReasonNoNTHash Reason = "no_nt_hash"

const ntSealVersion = 1

// ntKey is the NT-hash sealing key; nil when store_nt_hash is off.
type ntKey struct{ aead cipher.AEAD }

// loadNTKey reads a 32-byte key: 32 raw bytes, or 64 hex digits.
func loadNTKey(path string) (*ntKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	key := b
	if t := strings.TrimSpace(string(b)); len(t) == 64 {
		if k, err := hex.DecodeString(t); err == nil {
			key = k
			defer clear(k)
		}
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s: the key must be 32 bytes (or 64 hex digits), got %d bytes", path, len(b))
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &ntKey{aead: aead}, nil
}

func ntAAD(userID string) []byte { return []byte("gatewayd nt-hash v1 " + userID) }

func (k *ntKey) seal(userID string, nt []byte) ([]byte, error) {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(nt)+k.aead.Overhead())
	out[0] = ntSealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[1:], nt, ntAAD(userID)), nil
}

func (k *ntKey) open(userID string, sealed []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != ntSealVersion {
		return nil, errors.New("sealed NT hash: unknown format")
	}
	return k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], ntAAD(userID))
}

// ntHash is MD4(UTF-16LE(pw)).
func ntHash(pw secret.String) ([]byte, error) {
	u, err := rfc2759.ToUTF16(pw.Bytes())
	if err != nil {
		return nil, err
	}
	defer clear(u)
	return rfc2759.NTPasswordHash(u), nil
}

// sealedNTHash returns u's NT hash sealed for storage, nil when the
// option is off.
func (a *Authenticator) sealedNTHash(userID string, pw secret.String) []byte {
	if a.ntKey == nil {
		return nil
	}
	nt, err := ntHash(pw)
	if err != nil {
		return nil
	}
	defer clear(nt)
	s, err := a.ntKey.seal(userID, nt)
	if err != nil {
		a.log.Error("nt hash: sealing failed", "err", err)
		return nil
	}
	return s
}

// captureNTHash stores the NT hash of a plaintext that just proved u,
// when the option is on and the stored one is missing or differs. It
// writes only if the password is still the one verified.
func (a *Authenticator) captureNTHash(u *store.User, pw secret.String) {
	if a.ntKey == nil || u == nil {
		return
	}
	nt, err := ntHash(pw)
	if err != nil {
		return
	}
	defer clear(nt)
	if len(u.NTHashSealed) > 0 {
		if cur, err := a.ntKey.open(u.ID, u.NTHashSealed); err == nil {
			same := subtle.ConstantTimeCompare(cur, nt) == 1
			clear(cur)
			if same {
				return
			}
		}
	}
	sealed, err := a.ntKey.seal(u.ID, nt)
	if err != nil {
		a.log.Error("nt hash: sealing failed", "err", err)
		return
	}
	hash, version := u.PasswordHash, u.PasswordVersion
	_, err = a.users.UpdateUser(u.ID, func(x *store.User) error {
		if x.PasswordHash != hash || x.PasswordVersion != version {
			return errStale // the password changed meanwhile
		}
		x.NTHashSealed = sealed
		return nil
	})
	if err != nil && !errors.Is(err, errStale) {
		a.log.Error("nt hash: could not store", "user", u.Username, "err", err)
	}
}

// NTHashClearer is implemented by the store: one transaction that drops
// every user's NT hash.
type NTHashClearer interface {
	ClearNTHashes() (int, error)
}

// dropNTHashes runs at New when store_nt_hash is off: the hashes kept
// while it was on go, for everyone, in one store transaction.
func (a *Authenticator) dropNTHashes() error {
	c, ok := a.users.(NTHashClearer)
	if !ok {
		return nil
	}
	n, err := c.ClearNTHashes()
	if err != nil {
		return fmt.Errorf("authn: dropping stored NT hashes: %w", err)
	}
	if n > 0 {
		a.log.Warn("store_nt_hash is off: dropped the stored NT hashes", "users", n)
	}
	return nil
}

// MSCHAPv2Request is one MS-CHAPv2 login (RFC 2759), e.g. inside PEAP.
// Request.Password is unused: MS-CHAPv2 carries no plaintext.
type MSCHAPv2Request struct {
	Request
	// UserName is the name the peer hashed into the challenge (the
	// Name of its Response, without a DOMAIN\ prefix).
	UserName      []byte
	AuthChallenge []byte // 16 bytes, ours
	PeerChallenge []byte // 16 bytes
	NTResponse    []byte // 24 bytes
}

// MSCHAPv2Result is a Result plus, on success, the authenticator
// response ("S=" and 40 hex digits) that proves to the peer we knew its
// password.
type MSCHAPv2Result struct {
	Result
	AuthenticatorResponse string
}

// LoginMSCHAPv2 verifies an MS-CHAPv2 NT-Response against the user's
// stored NT hash, with every rule of a login (rate limit, state,
// lockout, password status; failures counted) and records the outcome.
// It carries no plaintext, so it never reaches the PasswordObserver (no
// takeover push, SPEC 3.1). Users without an NT hash fail with
// no_nt_hash. AD-delegated users are verified against their captured NT
// hash too: AD is not asked.
func (a *Authenticator) LoginMSCHAPv2(ctx context.Context, req MSCHAPv2Request) MSCHAPv2Result {
	start := a.now()
	res := a.loginMSCHAPv2(req, start)
	a.record(req.Request, res.Result, start)
	return res
}

func (a *Authenticator) loginMSCHAPv2(req MSCHAPv2Request, now time.Time) MSCHAPv2Result {
	cfg := a.policy()
	if len(req.AuthChallenge) != 16 || len(req.PeerChallenge) != 16 || len(req.NTResponse) != 24 {
		return MSCHAPv2Result{Result: Result{Reason: ReasonInternal, Detail: "malformed MS-CHAPv2 response"}}
	}
	res, next := a.precheck(req.Request, cfg, now)
	switch next {
	case stepDone:
		return MSCHAPv2Result{Result: res}
	case stepUnknown:
		a.failed(req.Request, nil, cfg, now)
		return MSCHAPv2Result{Result: Result{Reason: ReasonNoSuchUser}}
	}
	u := res.User
	if a.ntKey == nil || len(u.NTHashSealed) == 0 {
		res.Reason = ReasonNoNTHash
		if a.ntKey == nil {
			res.Detail = "store_nt_hash is off"
		} else {
			res.Detail = "no NT hash stored yet: the user must log in once with a password (LDAP, PAP, TTLS) or set one"
		}
		return MSCHAPv2Result{Result: res}
	}
	nt, err := a.ntKey.open(u.ID, u.NTHashSealed)
	if err != nil {
		res.Reason = ReasonNoNTHash
		res.Detail = "the stored NT hash does not open with nt_hash_key_file (key changed?)"
		return MSCHAPv2Result{Result: res}
	}
	defer clear(nt)
	ch := rfc2759.ChallengeHash(req.PeerChallenge, req.AuthChallenge, req.UserName)
	want := rfc2759.ChallengeResponse(ch, nt)
	if subtle.ConstantTimeCompare(want, req.NTResponse) != 1 {
		res.Reason = ReasonBadPassword
		if locked := a.failed(req.Request, u, cfg, now); locked != nil {
			res.User = locked
		}
		return MSCHAPv2Result{Result: res}
	}
	res.OK = true
	if cfg.Lockout.MaxFailures > 0 {
		a.resetFailures(u.ID)
	}
	return MSCHAPv2Result{Result: res, AuthenticatorResponse: authenticatorResponse(nt, req.NTResponse, ch)}
}

// RFC 2759 §8.7 constants.
var (
	magic1 = []byte("Magic server to client signing constant")
	magic2 = []byte("Pad to make it do more than one iteration")
)

// authenticatorResponse is RFC 2759 §8.7 from the NT hash.
func authenticatorResponse(nt, ntResponse, challengeHash []byte) string {
	hh := rfc2759.NTPasswordHash(nt)
	defer clear(hh)
	h := sha1.New()
	h.Write(hh)
	h.Write(ntResponse)
	h.Write(magic1)
	d := h.Sum(nil)
	h = sha1.New()
	h.Write(d)
	h.Write(challengeHash)
	h.Write(magic2)
	return "S=" + strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}
