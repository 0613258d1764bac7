// Package authn is the one login path every front door calls (SPEC 3.2):
// it resolves the identifier, checks state, password status and lockout,
// verifies the password, and records the outcome as an audit event.
package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// Users is the slice of the store that authn needs.
type Users interface {
	UserByID(id string) (*store.User, error)
	UserByUsername(name string) (*store.User, error)
	UserByEmail(email string) (*store.User, error)
	UpdateUser(id string, fn func(*store.User) error) (*store.User, error)
}

// sharedUsers is a Users that can also hand out its stored record itself,
// not a copy (the store does). LoginCached uses it: a cached login reads
// the user and never keeps or modifies it, and the copy was its largest
// allocation.
type sharedUsers interface {
	SharedUserByUsername(name string) (*store.User, error)
	SharedUserByEmail(email string) (*store.User, error)
}

// Events receives audit events; the store group-commits them.
type Events interface {
	Emit(ev store.Event)
}

// PasswordObserver learns of every verified or newly set plaintext, so the
// sync engine can push it (SPEC 3.3, 3.4). It gets its own copy and owns it;
// it must not block the login.
type PasswordObserver interface {
	PasswordVerified(user *store.User, pw secret.String)
	PasswordChanged(user *store.User, pw secret.String)
}

// Config is authn's policy and the [authn] block of gatewayd.toml. The
// zero value is usable: default hash parameters, cache off, no lockout,
// no rate limit. Defaults sets what the daemon runs with when the file
// says nothing, which turns all three on.
type Config struct {
	Hash HashParams `toml:"argon2"`
	// MaxConcurrentHashes bounds argon2 work in flight: each one holds
	// MemoryKiB of RAM, so a burst must queue rather than exhaust memory.
	MaxConcurrentHashes int `toml:"max_concurrent_hashes"`
	// QueueTimeout is how long a login waits for a hashing slot before it
	// fails with reason "busy".
	QueueTimeout time.Duration `toml:"hash_queue_timeout"`
	// CacheTTL keeps a keyed digest of a verified password in memory so a
	// repeat login skips argon2. 0 disables the cache.
	CacheTTL time.Duration `toml:"credential_cache_ttl"`
	// Lockout: MaxFailures bad passwords within Window lock the account
	// for Duration. MaxFailures 0 disables lockout.
	Lockout LockoutPolicy `toml:"lockout"`
	// RateLimit bounds failed logins per (source, login name) and per source.
	RateLimit RateLimitPolicy `toml:"rate_limit"`
	// UPNDomains: an identifier name@domain with a listed domain resolves
	// to the user named name when no user has that email.
	UPNDomains []string `toml:"upn_domains"`
	// Password length policy for passwords set through the gateway.
	MinPasswordLength int `toml:"min_password_length"`
	MaxPasswordLength int `toml:"max_password_length"`
	// MaxPasswordAge turns a local password older than this into
	// "expired" at the next login (0: passwords never expire). An expired
	// user changes their own password with the old one (ChangeOwnPassword).
	MaxPasswordAge time.Duration `toml:"max_password_age"`
	// StoreNTHash keeps each user's NT hash (captured at successful
	// plaintext logins and password changes), sealed with the key in
	// NTHashKeyFile, so PEAP-MSCHAPv2 can be verified. The NT hash is
	// password-equivalent. Off: MS-CHAPv2 logins fail (no_nt_hash) and
	// hashes stored earlier are dropped at start. Read at start only.
	StoreNTHash   bool   `toml:"store_nt_hash"`
	NTHashKeyFile string `toml:"nt_hash_key_file"`
}

// LockoutPolicy is SPEC 8's lockout after N failures in a window.
type LockoutPolicy struct {
	MaxFailures int           `toml:"max_failures"`
	Window      time.Duration `toml:"window"`
	Duration    time.Duration `toml:"duration"`
}

// RateLimitPolicy bounds failed logins before any hash work. Each
// (source, login name) may produce FailuresPerSecond failures (Burst at
// once), and each source SourceFailuresPerSecond (SourceBurst) over all
// the names it tries; beyond either, its attempts are refused. The source
// is the client address, or for RADIUS the (NAS, Calling-Station-Id) when
// the NAS sends one. Successes don't count, so a busy NAS fronting many
// users is not throttled, and one guesser spends its own name's budget,
// not that of the others behind its NAS. 0 turns a limit off.
type RateLimitPolicy struct {
	FailuresPerSecond       float64 `toml:"failures_per_second"`
	Burst                   int     `toml:"burst"`
	SourceFailuresPerSecond float64 `toml:"source_failures_per_second"`
	SourceBurst             int     `toml:"source_burst"`
}

// Defaults of the settings that a zero Config leaves off or zero.
const (
	DefaultMaxConcurrentHashes = 4
	DefaultQueueTimeout        = 5 * time.Second
	DefaultCacheTTL            = 15 * time.Minute
	DefaultMinPasswordLength   = 8
	DefaultMaxPasswordLength   = 256
)

// Defaults sets the [authn] defaults: the credential cache for 15
// minutes, lockout after 10 failures in 15 minutes for 15 minutes, 1
// failed login per second (burst 10) per source and login name, and 20
// per second (burst 200) per source over all names: the ceiling a WiFi
// controller with hundreds of users behind one address stays under on
// the morning after a password change.
func (c *Config) Defaults() {
	*c = Config{
		CacheTTL:  DefaultCacheTTL,
		Lockout:   LockoutPolicy{MaxFailures: 10, Window: 15 * time.Minute, Duration: 15 * time.Minute},
		RateLimit: RateLimitPolicy{FailuresPerSecond: 1, Burst: 10, SourceFailuresPerSecond: 20, SourceBurst: 200},
	}
	c.setDefaults()
}

// Validate checks the block.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	h := c.Hash
	if h.Time < 1 {
		bad("argon2.time", "must be at least 1")
	}
	if h.Threads < 1 {
		bad("argon2.threads", "must be at least 1")
	}
	if h.MemoryKiB < 8*uint32(h.Threads) || h.MemoryKiB > 4<<20 {
		bad("argon2.memory_kib", "must be between 8×threads and 4194304 (4 GiB); 65536 is the recommended 64 MiB")
	}
	if c.MaxConcurrentHashes < 1 {
		bad("max_concurrent_hashes", "must be at least 1 (each holds argon2.memory_kib of RAM)")
	}
	if c.QueueTimeout <= 0 {
		bad("hash_queue_timeout", "must be positive")
	}
	if c.CacheTTL < 0 {
		bad("credential_cache_ttl", "must not be negative (\"0s\" turns the cache off)")
	}
	if c.MinPasswordLength < 1 {
		bad("min_password_length", "must be at least 1")
	}
	if c.MaxPasswordAge < 0 {
		bad("max_password_age", "must not be negative (\"0s\" means passwords never expire)")
	}
	if c.MaxPasswordLength < c.MinPasswordLength {
		bad("max_password_length", "must be at least min_password_length (%d)", c.MinPasswordLength)
	}
	if c.Lockout.MaxFailures < 0 {
		bad("lockout.max_failures", "must be 0 (off) or more")
	}
	if c.Lockout.MaxFailures > 0 {
		if c.Lockout.Window <= 0 {
			bad("lockout.window", "must be positive when max_failures is set")
		}
		if c.Lockout.Duration <= 0 {
			bad("lockout.duration", "must be positive when max_failures is set")
		}
	}
	// NaN would pass a "< 0" test and then refuse every source after its
	// first failure (a limiter whose tokens are NaN never allows again).
	if r := c.RateLimit.FailuresPerSecond; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		bad("rate_limit.failures_per_second", "must be 0 (off) or a positive finite number, got %v", r)
	}
	if r := c.RateLimit.SourceFailuresPerSecond; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		bad("rate_limit.source_failures_per_second", "must be 0 (off) or a positive finite number, got %v", r)
	}
	if c.RateLimit.Burst < 0 {
		bad("rate_limit.burst", "must not be negative")
	}
	if c.RateLimit.SourceBurst < 0 {
		bad("rate_limit.source_burst", "must not be negative")
	}
	if c.StoreNTHash {
		if c.NTHashKeyFile == "" {
			bad("nt_hash_key_file", "is required when store_nt_hash is on (a file holding a 32-byte key)")
		} else if _, err := loadNTKey(c.NTHashKeyFile); err != nil {
			bad("nt_hash_key_file", "%v", err)
		}
	}
	for i, d := range c.UPNDomains {
		if d == "" || strings.ContainsAny(d, "@ ") {
			bad("upn_domains", "entry %d, %q, is not a domain name", i+1, d)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Hash == (HashParams{}) {
		c.Hash = DefaultHashParams
	}
	if c.Hash.SaltLen == 0 {
		c.Hash.SaltLen = 16
	}
	if c.Hash.KeyLen == 0 {
		c.Hash.KeyLen = 32
	}
	if c.MaxConcurrentHashes <= 0 {
		c.MaxConcurrentHashes = DefaultMaxConcurrentHashes
	}
	if c.QueueTimeout <= 0 {
		c.QueueTimeout = DefaultQueueTimeout
	}
	if c.MinPasswordLength <= 0 {
		c.MinPasswordLength = DefaultMinPasswordLength
	}
	if c.MaxPasswordLength <= 0 {
		c.MaxPasswordLength = DefaultMaxPasswordLength
	}
}

// Authenticator implements Login. Create it with New.
type Authenticator struct {
	users    Users
	noCopy   sharedUsers // users, when it has the no-copy lookups; else nil
	events   Events
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	hashSem  chan struct{}
	cache    *credCache
	observer PasswordObserver
	delegate Delegator
	ntKey    *ntKey // nil: store_nt_hash off

	mu       sync.RWMutex // guards cfg and dummy (SIGHUP swaps policy)
	cfg      Config
	failures *failureTracker
	budget   *budget
	flights  *flights

	// dummy is verified when the user does not exist, so a miss costs the
	// same as a wrong password and timing does not reveal usernames.
	dummy parsedHash

	// shared counts lockout failures across replicas (nil: failures
	// only counts them here); see shared.go.
	shared        FailureCounter
	sharedRetryAt atomic.Int64 // unix ns: before it, the shared counter is not asked
	sharedDown    atomic.Bool
}

// Option adjusts an Authenticator.
type Option func(*Authenticator)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(a *Authenticator) { a.now = now } }

// WithRegisterer registers metrics on reg instead of not at all.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(a *Authenticator) { a.metrics.register(reg) }
}

// WithDelegator sets the AD validator for delegated users.
func WithDelegator(d Delegator) Option { return func(a *Authenticator) { a.delegate = d } }

// WithObserver sets the receiver of verified and changed passwords.
func WithObserver(o PasswordObserver) Option { return func(a *Authenticator) { a.observer = o } }

// New builds the login path over users and events.
func New(cfg Config, users Users, events Events, logger *slog.Logger, opts ...Option) (*Authenticator, error) {
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	a := &Authenticator{
		users:    users,
		events:   events,
		log:      logger,
		now:      time.Now,
		metrics:  newMetrics(),
		hashSem:  make(chan struct{}, cfg.MaxConcurrentHashes),
		cfg:      cfg,
		failures: newFailureTracker(),
		budget:   newBudget(),
		flights:  newFlights(),
	}
	a.noCopy, _ = users.(sharedUsers)
	for _, o := range opts {
		o(a)
	}
	var err error
	if a.cache, err = newCredCache(); err != nil {
		return nil, err
	}
	dummy, err := hashPassword([]byte("gatewayd-timing-equaliser"), cfg.Hash)
	if err != nil {
		return nil, err
	}
	a.dummy, _ = parseHash(dummy)
	if cfg.StoreNTHash {
		if a.ntKey, err = loadNTKey(cfg.NTHashKeyFile); err != nil {
			return nil, fmt.Errorf("authn: nt_hash_key_file: %w", err)
		}
	} else if err := a.dropNTHashes(); err != nil {
		return nil, err
	}
	return a, nil
}

// SetPolicy applies a reloaded config (SIGHUP). Hash concurrency is fixed
// at start; changing it needs a restart.
func (a *Authenticator) SetPolicy(cfg Config) {
	cfg.setDefaults()
	var dummy *parsedHash
	if cfg.Hash != a.policy().Hash {
		// An unknown user must keep costing what a known one does, or
		// timing tells which usernames exist.
		if h, err := hashPassword([]byte("gatewayd-timing-equaliser"), cfg.Hash); err == nil {
			if ph, err := parseHash(h); err == nil {
				dummy = &ph
			}
		}
	}
	a.mu.Lock()
	a.cfg = cfg
	if dummy != nil {
		a.dummy = *dummy
	}
	a.mu.Unlock()
	if cfg.CacheTTL == 0 {
		a.cache.clear()
	}
}

// dummyHash is what an unknown user's login is verified against.
func (a *Authenticator) dummyHash() parsedHash {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.dummy
}

func (a *Authenticator) policy() Config {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.cfg
}

// Login runs SPEC 3.2 and records the outcome. It never returns the
// reason to the client; the door only looks at OK.
func (a *Authenticator) Login(ctx context.Context, req Request) Result {
	start := a.now()
	res := a.login(ctx, req)
	a.record(req, res, start)
	return res
}

// Reject records a login refused by the door itself (an unsupported
// method) without any password work.
func (a *Authenticator) Reject(ctx context.Context, req Request, reason Reason) {
	res := Result{Reason: reason}
	if u, err := a.resolve(req, false); err == nil {
		res.User = u
	}
	a.record(req, res, a.now())
}

// LoginCached is Login for a caller that must not block: it answers only
// when no password work is needed (a credential-cache hit, or a refusal
// decided by state, lockout or rate limit) and then records the outcome
// as Login would. When ok is false nothing was recorded or counted and
// the caller must use Login, which may hash or ask AD. Unlike Login's,
// res.User may be the store's own record rather than a copy: read it
// during the request, never modify it.
func (a *Authenticator) LoginCached(req Request) (res Result, ok bool) {
	cfg := a.policy()
	start := a.now()
	res, next := a.precheckWith(req, cfg, start, true)
	switch {
	case next == stepDone:
	case next == stepLocal && cfg.CacheTTL > 0 && a.cache.match(res.User, req.Password, start):
		a.cacheHit(&res, req, cfg)
	default:
		return Result{}, false
	}
	a.record(req, res, start)
	return res, true
}

// step is what a login needs after precheck.
type step int

const (
	stepDone      step = iota // the result is the answer
	stepUnknown               // no such user: spend a dummy verify, then refuse
	stepDelegated             // AD validates the password
	stepLocal                 // verify against the stored hash (or the cache)
)

// precheck runs the part of SPEC 3.2 that needs no password work. For
// every step but stepUnknown, res.User is the resolved user.
func (a *Authenticator) precheck(req Request, cfg Config, now time.Time) (Result, step) {
	return a.precheckWith(req, cfg, now, false)
}

// precheckWith is precheck; with view set, res.User may be the store's
// own record (see sharedUsers), which the caller must not modify or keep.
func (a *Authenticator) precheckWith(req Request, cfg Config, now time.Time, view bool) (Result, step) {
	if !a.budget.allow(req, cfg.RateLimit, now) {
		return Result{Reason: ReasonRateLimited}, stepDone
	}
	u, err := a.resolve(req, view)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.log.Error("login: user lookup failed", "err", err)
			return Result{Reason: ReasonInternal}, stepDone
		}
		return Result{}, stepUnknown
	}
	res := Result{User: u}
	switch u.State {
	case store.StateSuspended:
		res.Reason = ReasonSuspended
		return res, stepDone
	case store.StateStaged:
		res.Reason = ReasonStaged
		return res, stepDone
	}
	if u.Locked(now) {
		// Charged to the (source, name) budget, so a guesser hammering a
		// locked account is throttled; not to the source's ceiling, which
		// the others behind that source share.
		a.budget.charge(req, cfg.RateLimit, false, now)
		res.Reason = ReasonLocked
		return res, stepDone
	}
	switch u.PasswordStatus {
	case store.PasswordPending:
		// Pending means no local password; a delegated user's password
		// lives in AD, so AD decides (delegated.go).
		if u.DelegatedAuthority != store.AuthorityAD {
			res.Reason = ReasonPending
			return res, stepDone
		}
	case store.PasswordExpired:
		res.Reason = ReasonExpired
		return res, stepDone
	case store.PasswordActive:
		if passwordExpired(u, cfg, now) {
			res.Reason = ReasonExpired
			if nu := a.expire(u); nu != nil {
				res.User = nu
			}
			return res, stepDone
		}
	}
	if u.DelegatedAuthority == store.AuthorityAD {
		return res, stepDelegated
	}
	if u.PasswordHash == "" {
		res.Reason = ReasonPending
		return res, stepDone
	}
	return res, stepLocal
}

func (a *Authenticator) cacheHit(res *Result, req Request, cfg Config) {
	a.metrics.cacheSeries.Get("hit").Inc()
	res.OK, res.Cached = true, true
	a.succeeded(res.User, req.Password, cfg)
}

func (a *Authenticator) login(ctx context.Context, req Request) Result {
	cfg := a.policy()
	now := a.now()
	res, next := a.precheck(req, cfg, now)
	switch next {
	case stepDone:
		return res
	case stepUnknown:
		// Same cost as a wrong password, so response time does not tell
		// an attacker which usernames exist.
		if r := a.verifyHash(ctx, cfg, a.dummyHash(), req.Password); r != ReasonNone && r != ReasonBadPassword {
			return Result{Reason: r}
		}
		a.failed(req, nil, cfg, now)
		return Result{Reason: ReasonNoSuchUser}
	case stepDelegated:
		return a.loginDelegated(ctx, req, res.User, cfg, now)
	}
	u := res.User
	if cfg.CacheTTL > 0 && a.cache.match(u, req.Password, now) {
		a.cacheHit(&res, req, cfg)
		return res
	}
	if cfg.CacheTTL > 0 {
		a.metrics.cacheSeries.Get("miss").Inc()
		key := a.cache.digest(u.ID, req.Password)
		fl, leader := a.flights.join(key)
		if !leader {
			select {
			case <-fl.done:
			case <-ctx.Done():
				res.Reason = ReasonBusy
				return res
			}
			if fl.ok && a.cache.match(u, req.Password, a.now()) {
				a.cacheHit(&res, req, cfg)
				return res
			}
			// The leader failed (or the password changed meanwhile):
			// this attempt is verified and counted on its own.
		} else {
			ok := false
			defer func() { a.flights.land(key, fl, ok) }() // also on a panic
			res = a.verifyLocal(ctx, req, res, cfg, now)
			ok = res.OK
			return res
		}
	}
	return a.verifyLocal(ctx, req, res, cfg, now)
}

// verifyLocal checks req's password against u's stored hash (the
// argon2 path of a local login) and does what a success or a failure
// entails.
func (a *Authenticator) verifyLocal(ctx context.Context, req Request, res Result, cfg Config, now time.Time) Result {
	u := res.User
	ph, err := parseHash(u.PasswordHash)
	if err != nil {
		a.log.Error("login: stored hash unusable; reset the user's password", "user", u.Username, "err", err)
		res.Reason = ReasonInternal
		return res
	}
	if r := a.verifyHash(ctx, cfg, ph, req.Password); r != ReasonNone {
		res.Reason = r
		if r == ReasonBadPassword {
			if locked := a.failed(req, u, cfg, now); locked != nil {
				res.User = locked
			}
		}
		return res
	}
	res.OK = true
	if cfg.CacheTTL > 0 {
		a.cache.put(u, req.Password, now.Add(cfg.CacheTTL))
	}
	if ph.needsRehash(cfg.Hash) {
		if nu := a.rehash(ctx, u, req.Password, cfg); nu != nil {
			res.User = nu
		}
	}
	a.succeeded(res.User, req.Password, cfg)
	return res
}

// passwordExpired says whether u's local password is older than
// max_password_age (see expiresAt).
func passwordExpired(u *store.User, cfg Config, now time.Time) bool {
	at := expiresAt(u, cfg)
	return !at.IsZero() && !now.Before(at)
}

// expiresAt is when u's password expires: never (zero) without a max
// age, for AD-owned passwords (AD expires those), for passwords whose
// change time was not recorded, and for service accounts, whose
// passwords live in the configuration of the hosts that bind with them
// (an SSSD or nslcd bind account that expired would cut those hosts off).
func expiresAt(u *store.User, cfg Config) time.Time {
	if cfg.MaxPasswordAge <= 0 || u.PasswordAuthority == store.AuthorityAD || u.PasswordChangedAt.IsZero() || u.ServiceAccount {
		return time.Time{}
	}
	return u.PasswordChangedAt.Add(cfg.MaxPasswordAge)
}

// PasswordExpiresAt is when u's password expires under the current
// policy; zero when it does not.
func (a *Authenticator) PasswordExpiresAt(u *store.User) time.Time { return expiresAt(u, a.policy()) }

// expire records that u's password expired, so every door, the API and
// the sync engine (suspend_on_password_expiry) see it. It happens once
// per password: the next login finds the status already expired.
func (a *Authenticator) expire(u *store.User) *store.User {
	a.cache.drop(u.ID)
	changed := u.PasswordChangedAt
	nu, err := a.users.UpdateUser(u.ID, func(x *store.User) error {
		if x.PasswordStatus != store.PasswordActive || !x.PasswordChangedAt.Equal(changed) {
			return errStale // changed meanwhile
		}
		x.PasswordStatus = store.PasswordExpired
		return nil
	})
	if err != nil {
		if !errors.Is(err, errStale) {
			a.log.Error("login: could not record password expiry", "user", u.Username, "err", err)
		}
		return nil
	}
	a.log.Info("password expired", "user", u.Username, "changed", changed)
	return nu
}

// resolve maps what the client typed to a user (SPEC 3.1).
func (a *Authenticator) resolve(req Request, view bool) (*store.User, error) {
	id := strings.TrimSpace(req.Identifier)
	if id == "" {
		return nil, store.ErrNotFound
	}
	noCopy := a.noCopy
	if !view {
		noCopy = nil
	}
	if req.ByUsername || !strings.Contains(id, "@") {
		if noCopy != nil {
			return noCopy.SharedUserByUsername(id)
		}
		return a.users.UserByUsername(id)
	}
	var (
		byEmail *store.User
		err     error
	)
	if noCopy != nil {
		byEmail, err = noCopy.SharedUserByEmail(id)
	} else {
		byEmail, err = a.users.UserByEmail(id)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	byUPN, err := a.upnUser(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	switch {
	case byEmail != nil && byUPN != nil && byEmail.ID != byUPN.ID:
		// One name, two users: the email of one is the UPN of the other.
		// Picking either would let one log in under the other's name, so
		// the name logs nobody in (NameConflict refuses to make this).
		a.log.Warn("login name is one user's email and another's UPN; refused until one is renamed",
			"name", id, "email_of", byEmail.Username, "upn_of", byUPN.Username)
		return nil, store.ErrNotFound
	case byEmail != nil:
		return byEmail, nil
	case byUPN != nil:
		return byUPN, nil
	}
	return nil, store.ErrNotFound
}

// upnUser is the user whose UPN name@domain is id, when domain is one of
// upn_domains.
func (a *Authenticator) upnUser(id string) (*store.User, error) {
	at := strings.LastIndexByte(id, '@')
	if at < 0 {
		return nil, store.ErrNotFound
	}
	local, domain := id[:at], id[at+1:]
	for _, d := range a.policy().UPNDomains {
		if strings.EqualFold(d, domain) {
			return a.users.UserByUsername(local)
		}
	}
	return nil, store.ErrNotFound
}

// NameConflict says why a user (selfID: "" for a new one) may not have
// this username and email: the email would be another user's UPN
// (local part = their username, domain in upn_domains), or the
// username@domain UPN would be another user's email. Either way one name
// would log in two people; login refuses such a name, and the admin API
// refuses to create one. The error wraps ErrNameConflict.
func (a *Authenticator) NameConflict(username, email, selfID string) error {
	if email != "" {
		if other, err := a.upnUser(email); err == nil && other.ID != selfID {
			return fmt.Errorf("%w: %s is the UPN of user %s (upn_domains); give this user another email or rename %s",
				ErrNameConflict, email, other.Username, other.Username)
		}
	}
	if username != "" {
		for _, d := range a.policy().UPNDomains {
			upn := username + "@" + d
			if other, err := a.users.UserByEmail(upn); err == nil && other.ID != selfID {
				return fmt.Errorf("%w: %s would be the UPN of this user, but it is the email of user %s (upn_domains)",
					ErrNameConflict, upn, other.Username)
			}
		}
	}
	return nil
}

// verifyHash runs one argon2 verify inside the concurrency bound.
func (a *Authenticator) verifyHash(ctx context.Context, cfg Config, ph parsedHash, pw secret.String) Reason {
	if err := a.acquire(ctx, cfg); err != nil {
		return ReasonBusy
	}
	defer a.release()
	a.metrics.hashes.Inc()
	if !ph.verify(pw.Bytes()) {
		return ReasonBadPassword
	}
	return ReasonNone
}

func (a *Authenticator) acquire(ctx context.Context, cfg Config) error {
	select {
	case a.hashSem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(cfg.QueueTimeout)
	defer t.Stop()
	start := time.Now()
	select {
	case a.hashSem <- struct{}{}:
		a.metrics.queueWait.Observe(time.Since(start).Seconds())
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Authenticator) release() { <-a.hashSem }

// failed counts a bad password toward lockout, the (source, name) budget
// and the source's ceiling. It returns the updated user when this failure
// locked the account.
func (a *Authenticator) failed(req Request, u *store.User, cfg Config, now time.Time) *store.User {
	a.budget.charge(req, cfg.RateLimit, true, now)
	if u == nil || cfg.Lockout.MaxFailures <= 0 {
		return nil
	}
	if !a.countFailure(u.ID, cfg.Lockout, now) {
		return nil
	}
	a.cache.drop(u.ID)
	until := now.Add(cfg.Lockout.Duration)
	nu, err := a.users.UpdateUser(u.ID, func(x *store.User) error {
		x.LockedUntil = until
		return nil
	})
	if err != nil {
		a.log.Error("login: could not record lockout", "user", u.Username, "err", err)
		return nil
	}
	a.events.Emit(store.Event{Type: store.EventUserLocked, UserID: u.ID, Username: u.Username,
		Reason: "too_many_failures", Source: sourceString(req.Source),
		Detail: fmt.Sprintf("%d failures within %v; locked until %s", cfg.Lockout.MaxFailures, cfg.Lockout.Window, until.UTC().Format(time.RFC3339))})
	a.log.Warn("account locked", "user", u.Username, "until", until)
	return nu
}

func (a *Authenticator) succeeded(u *store.User, pw secret.String, cfg Config) {
	if cfg.Lockout.MaxFailures > 0 {
		a.resetFailures(u.ID)
	}
	a.captureNTHash(u, pw)
	if a.observer != nil {
		a.observer.PasswordVerified(u.Copy(), pw.Clone())
	}
}

// rehash replaces a hash made under old parameters (SPEC 2.8). It only
// writes when the stored hash is still the one we verified, so a password
// changed meanwhile is not overwritten.
func (a *Authenticator) rehash(ctx context.Context, u *store.User, pw secret.String, cfg Config) *store.User {
	if err := a.acquire(ctx, cfg); err != nil {
		return nil // try again at the next login
	}
	h, err := hashPassword(pw.Bytes(), cfg.Hash)
	a.release()
	if err != nil {
		a.log.Error("rehash failed", "user", u.Username, "err", err)
		return nil
	}
	a.metrics.hashes.Inc()
	old := u.PasswordHash
	nu, err := a.users.UpdateUser(u.ID, func(x *store.User) error {
		if x.PasswordHash != old {
			return errStale
		}
		x.PasswordHash = h
		return nil
	})
	if err != nil {
		if !errors.Is(err, errStale) {
			a.log.Error("rehash: store update failed", "user", u.Username, "err", err)
		}
		return nil
	}
	a.metrics.rehashes.Inc()
	// The new hash differs; re-key the cache entry so the next login hits.
	if cfg.CacheTTL > 0 {
		a.cache.put(nu, pw, a.now().Add(cfg.CacheTTL))
	}
	return nu
}

var errStale = errors.New("password changed during rehash")

func (a *Authenticator) record(req Request, res Result, start time.Time) {
	outcome := store.OutcomeSuccess
	if !res.OK {
		outcome = store.OutcomeFailure
	}
	ev := store.Event{
		Type:    req.Protocol.EventType(),
		Outcome: outcome,
		Reason:  string(res.Reason),
		Source:  sourceString(req.Source),
		Login:   true,
		Detail:  req.Client,
		Method:  req.Method,
	}
	if res.Cached {
		ev.Detail = strings.TrimPrefix(ev.Detail+" cached", " ")
	}
	if res.Detail != "" {
		ev.Detail = strings.TrimPrefix(ev.Detail+" "+res.Detail, " ")
	}
	if res.User != nil {
		ev.UserID, ev.Username = res.User.ID, res.User.Username
	} else {
		// Record what was typed, bounded, so an admin can see sprays; it is
		// a name, never a password.
		ev.Username = truncate(req.Identifier, 128)
	}
	a.events.Emit(ev)
	reason := string(res.Reason)
	if res.OK {
		reason = "ok"
	}
	a.metrics.loginSeries.Get(loginLabels{req.Protocol, outcome, reason}).Inc()
	a.metrics.durSeries.Get(req.Protocol).Observe(a.now().Sub(start).Seconds())
}

func sourceString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// HandleChange keeps the credential cache honest: any change to what a
// login depends on drops the user's entry (wire it to store.Subscribe).
func (a *Authenticator) HandleChange(c store.Change) {
	if c.Table != "users" {
		return
	}
	before, _ := c.Before.(*store.User)
	after, _ := c.After.(*store.User)
	switch {
	case before == nil:
		return
	case after == nil:
		a.cache.drop(before.ID)
		a.resetFailures(before.ID)
	case before.PasswordHash != after.PasswordHash || before.PasswordVersion != after.PasswordVersion ||
		before.State != after.State || before.PasswordStatus != after.PasswordStatus ||
		!before.LockedUntil.Equal(after.LockedUntil) || before.DelegatedAuthority != after.DelegatedAuthority:
		a.cache.drop(before.ID)
		if !after.LockedUntil.Equal(before.LockedUntil) && after.LockedUntil.IsZero() {
			a.resetFailures(before.ID) // an admin unlock starts a fresh count
		}
	}
}
