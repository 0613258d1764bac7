// Package portal is the self-service page (SPEC 9): a front door beside
// LDAP and RADIUS where people sign in, change their password, change an
// expired one, and set a first password through an activation link. It
// calls authn for every password decision and knows nothing of the
// directories: their policies reach it through the Policies interface.
package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// Authenticator is what the page needs of authn.
type Authenticator interface {
	Login(ctx context.Context, req authn.Request) authn.Result
	ChangePassword(ctx context.Context, userID string, pw secret.String, actor string) error
	ChangeOwnPassword(ctx context.Context, req authn.Request, newPw secret.String, accept func(*store.User) error) (*store.User, error)
	PasswordLengths() (minLen, maxLen int)
}

// Users reads users and keeps the activation links (the store).
type Users interface {
	UserByID(id string) (*store.User, error)
	PutInvite(in *store.Invite) (*store.Invite, error)
	InviteByTokenHash(hash string) (*store.Invite, error)
	ConsumeInvite(hash string) (*store.Invite, error)
}

// Policy is one bound directory's password policy (SPEC 3.6).
type Policy struct {
	Directory           string
	MinLength           int
	MaxLength           int
	MinCharacterClasses int
	// Check says why the directory would refuse pw, or nil; its message
	// never repeats the password.
	Check func(pw secret.String) error
}

// Policies gives the policies of every directory a user is bound to. The
// daemon wires it to the sync engine; nil means none.
type Policies interface {
	PoliciesFor(userID string) ([]Policy, error)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Limits.
const (
	maxFormBytes   = 8 << 10 // every form is a few short fields
	maxSessions    = 100000
	mustChangeLife = 5 * time.Minute
)

// Server is the page: its listener, its sessions and its handler.
type Server struct {
	cfg      Config
	auth     Authenticator
	users    Users
	policies Policies
	log      *slog.Logger
	m        *metrics
	now      func() time.Time
	key      []byte // HMAC key for CSRF tokens, per process
	pages    map[string]*template.Template
	logo     *logo // nil: no logo_file
	handler  http.Handler
	ln       net.Listener
	srv      *http.Server
	secure   bool

	mu       sync.Mutex
	sessions map[string]*session
	served   bool
	closed   bool
}

// Option adjusts a Server (tests).
type Option func(*Server)

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithListener serves on ln instead of listening on cfg.Listen.
func WithListener(ln net.Listener) Option { return func(s *Server) { s.ln = ln } }

// New builds the page and opens its listener. policies may be nil.
func New(cfg Config, auth Authenticator, users Users, policies Policies, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Server, error) {
	if auth == nil || users == nil {
		return nil, errors.New("portal: New needs an Authenticator and Users")
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{cfg: cfg, auth: auth, users: users, policies: policies, log: logger, now: time.Now,
		sessions: map[string]*session{}, secure: cfg.TLS(), key: make([]byte, 32)}
	for _, o := range opts {
		o(s)
	}
	if _, err := rand.Read(s.key); err != nil {
		return nil, err
	}
	var err error
	if s.m, err = newMetrics(reg); err != nil {
		return nil, err
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if cfg.LogoFile != "" {
		if s.logo, err = readLogo(cfg.LogoFile); err != nil {
			return nil, fmt.Errorf("portal: logo_file: %w", err)
		}
	}
	s.handler = s.routes()
	var tlsCfg *tls.Config
	if cfg.TLS() {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("portal: cert_file/key_file: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	if s.ln == nil {
		if !cfg.Enabled() {
			return nil, errors.New("portal: listen is not set")
		}
		if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("cannot listen on %s: %w", cfg.Listen, err)
		}
	}
	if tlsCfg != nil {
		s.ln = tls.NewListener(s.ln, tlsCfg)
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler is the page's HTTP handler (tests drive it with httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx ends, then drains for up to 5 s.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("portal: Serve called twice")
	}
	s.served = true
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	go s.sweep(ctx)
	select {
	case err := <-errc:
		s.setClosed()
		return err
	case <-ctx.Done():
	}
	s.setClosed()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(dctx)
	return nil
}

func (s *Server) setClosed() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// Health fails once the listener stopped (/healthz's "portal" check).
func (s *Server) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("portal: not serving")
	}
	return nil
}

// sweep drops idle sessions once a minute.
func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := s.now()
			s.mu.Lock()
			for id, x := range s.sessions {
				if x.idle(now, s.cfg.SessionIdleTimeout) {
					delete(s.sessions, id)
				}
			}
			s.m.sessions.Set(float64(len(s.sessions)))
			s.mu.Unlock()
		}
	}
}

// Invite issues an activation link for a user (SPEC 9.1): a random
// 32-byte token, stored only as its SHA-256, valid for ttl (0: the
// configured invite_ttl), replacing the user's previous link. Staged
// users, suspended users and users whose password lives in AD cannot
// activate here: those are refused with an error wrapping
// store.ErrConflict.
func (s *Server) Invite(userID string, ttl time.Duration) (link string, expires time.Time, err error) {
	if ttl == 0 {
		ttl = s.cfg.InviteTTL
	}
	if ttl < time.Minute || ttl > MaxInviteTTL {
		return "", time.Time{}, fmt.Errorf("%w: ttl %s: use 1m to %s", store.ErrInvalid, ttl, MaxInviteTTL)
	}
	u, err := s.users.UserByID(userID)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := activatable(u); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %v", store.ErrConflict, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	expires = s.now().Add(ttl).UTC().Truncate(time.Second)
	if _, err := s.users.PutInvite(&store.Invite{UserID: u.ID, TokenHash: tokenHash(token), PasswordVersion: u.PasswordVersion, ExpiresAt: expires}); err != nil {
		return "", time.Time{}, err
	}
	return s.cfg.baseURL(s.Addr().String()) + "/activate?token=" + token, expires, nil
}

// activatable says why u cannot set a password through a link, or nil.
func activatable(u *store.User) error {
	switch {
	case u.State == store.StateStaged:
		return errors.New("the user is staged; staged users cannot activate")
	case u.State != store.StateActive:
		return fmt.Errorf("the user is %s", u.State)
	case u.PasswordAuthority == store.AuthorityAD || u.DelegatedAuthority == store.AuthorityAD:
		return errors.New("the user's password is managed in Active Directory")
	}
	return nil
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// csrfFor is the form token bound to binding (a session id or the
// pre-session cookie).
func (s *Server) csrfFor(binding string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("csrf\x00" + binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) csrfOK(binding, got string) bool {
	if binding == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(s.csrfFor(binding)), []byte(got)) == 1
}

func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// clientAddr is the TCP peer: authn's per-source budget applies to it. A
// proxy's forwarding headers are not trusted.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" || base == "policy" {
			continue
		}
		t, err := template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/policy.html", n)
		if err != nil {
			return nil, err
		}
		out[base] = t
	}
	return out, nil
}

// statusText for the metrics' code label.
func statusText(code int) string { return strconv.Itoa(code) }
