// Package ldapserver is gatewayd's LDAP front door: simple binds that go
// through authn, searches over a virtual tree built from the store, the
// password modify extended operation, StartTLS and LDAPS. See README.md.
package ldapserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// Authenticator is the part of authn the LDAP door uses.
type Authenticator interface {
	// Login validates one bind. Protocol is authn.ProtocolLDAP; ByUsername
	// is set when the door resolved a DN to a username.
	Login(ctx context.Context, req authn.Request) authn.Result
	// ChangePassword bumps the password version and records the event; it
	// may return authn.ErrAuthorityAD or wrap authn.ErrWeakPassword.
	ChangePassword(ctx context.Context, userID string, newPassword secret.String, actor string) error
	// ChangeOwnPassword changes a password proven by the old one, without
	// a session (RFC 3062 on an unbound connection); an expired password
	// is accepted as proof. It returns authn.ErrNotProven,
	// authn.ErrAuthorityAD, authn.ErrBusy or wraps authn.ErrWeakPassword.
	ChangeOwnPassword(ctx context.Context, req authn.Request, newPassword secret.String, accept func(*store.User) error) (*store.User, error)
	// PasswordExpiresAt is when u's password expires under the password
	// policy (max_password_age); zero when it does not.
	PasswordExpiresAt(u *store.User) time.Time
}

// Directory is the read side of the store the tree is rendered from
// (implemented by *store.Store). Errors wrap store.ErrNotFound.
type Directory interface {
	UserByID(id string) (*store.User, error)
	UserByUsername(name string) (*store.User, error)
	ListUsers(after string, limit int) ([]*store.User, string, error)
	ListGroups(after string, limit int) ([]*store.Group, string, error)
	GroupByName(name string) (*store.Group, error)
	GroupsOfUser(userID string) ([]*store.Group, error)
	MembersOf(groupID string) ([]*store.User, error)
}

const (
	handshakeTimeout = 10 * time.Second
	maxWriteTimeout  = time.Minute
	shutdownGrace    = 5 * time.Second
	// acceptFailWindow is how long after a failed accept Health reports
	// it. Failures that go on retry at least every second (the accept
	// backoff's cap), so they are reported throughout; the window ends a
	// report that no successful accept can end while a load balancer,
	// told the door is down, sends nobody.
	acceptFailWindow = 3 * time.Second
)

// Server is the LDAP server. New checks the configuration; Serve runs it.
type Server struct {
	cfg     Config
	auth    Authenticator
	dir     Directory
	log     *slog.Logger
	m       *metrics
	tree    *tree
	version string

	cert    atomic.Pointer[tls.Certificate]
	tlsConf *tls.Config // nil without a certificate

	plainLn, ldapsLn net.Listener
	cookieKey        [32]byte

	nconn   atomic.Int64
	connSeq atomic.Uint64
	// walked counts the searches answered in a goroutine of their own
	// rather than inline by the reader (tests).
	walked atomic.Int64
	// budget is max_bytes_in_flight (budget.go).
	budget *byteBudget

	// perSource counts open connections by client address (loopback is
	// not counted unless capLoopback, which tests set).
	srcMu       sync.Mutex
	perSource   map[netip.Addr]int
	capLoopback atomic.Bool
	// refuseLog rate-limits the warning for refused connections.
	refuseLog logLimiter

	mu      sync.Mutex
	conns   map[*conn]struct{}
	served  bool
	closing bool
	ready   chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	// For Health, guarded by mu: why a listener stopped before shutdown,
	// and the last failed accept, while accepting keeps failing.
	lnErr       error
	acceptErr   error
	acceptErrAt time.Time

	// fullScan (tests) turns the planner off: every search walks every
	// kind of entry under its base and renders every entry whole (not
	// only the attributes it returns or filters on), the reference the
	// plans and the partial rendering are held to (with tree.reference,
	// which turns the matching shortcuts off).
	fullScan bool

	// wrapListener, when set (tests), wraps each listener at bind.
	wrapListener func(net.Listener) net.Listener
}

// New checks cfg and loads the certificate; it binds nothing (Serve does),
// so it can validate a configuration while another daemon holds the ports.
// reg may be nil.
func New(cfg Config, auth Authenticator, dir Directory, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if auth == nil || dir == nil {
		return nil, errors.New("ldap: New needs an Authenticator and a Directory")
	}
	cfg.setDefaults()
	if !cfg.Enabled() {
		return nil, errors.New("ldap: neither listen nor ldaps_listen is set")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	tr, err := newTree(cfg.BaseDN, cfg.UserGIDNumber)
	if err != nil {
		return nil, fmt.Errorf("ldap: base_dn %q is not a DN", cfg.BaseDN)
	}
	tr.expiresAt = auth.PasswordExpiresAt
	tr.hideInactive = cfg.HideInactive
	s := &Server{
		cfg:       cfg,
		auth:      auth,
		dir:       dir,
		log:       logger.With("component", "ldap"),
		m:         newMetrics(),
		tree:      tr,
		conns:     make(map[*conn]struct{}),
		perSource: make(map[netip.Addr]int),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.version = "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		s.version = bi.Main.Version
	}
	if _, err := rand.Read(s.cookieKey[:]); err != nil {
		return nil, err
	}
	if cfg.CertFile != "" {
		if err := s.ReloadCertificates(); err != nil {
			return nil, err
		}
		s.tlsConf = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.cert.Load(), nil
			},
		}
	}
	if reg != nil {
		if err := s.m.register(reg); err != nil {
			return nil, fmt.Errorf("ldap: metrics: %w", err)
		}
	}
	s.m.inFlightLimit.Set(float64(cfg.MaxBytesInFlight))
	inFlight := s.m.inFlight
	s.budget = newByteBudget(cfg.MaxBytesInFlight, func(n int64) { inFlight.Set(float64(n)) })
	return s, nil
}

// Ready is closed once Serve has bound its listeners (or failed to).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses: nil before Serve has bound, and for
// a listener not configured.
func (s *Server) Addrs() (plain, ldaps net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plainLn != nil {
		plain = s.plainLn.Addr()
	}
	if s.ldapsLn != nil {
		ldaps = s.ldapsLn.Addr()
	}
	return plain, ldaps
}

// Health reports whether the door takes connections, for /healthz: nil
// once Serve has bound its listeners and while they accept; an error
// before that, after shutdown, once a listener stopped, and while
// accepting fails (EMFILE...). It does no I/O.
func (s *Server) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return errors.New("ldap: shut down")
	case s.lnErr != nil:
		return s.lnErr
	case s.plainLn == nil && s.ldapsLn == nil:
		return errors.New("ldap: not listening (yet)")
	case s.acceptErr != nil && time.Since(s.acceptErrAt) < acceptFailWindow:
		return fmt.Errorf("ldap: accepting connections fails: %w", s.acceptErr)
	}
	return nil
}

// bind opens the configured listeners.
func (s *Server) bind() error {
	var plain, ldaps net.Listener
	var err error
	if s.cfg.Listen != "" {
		if plain, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("ldap: listen %s: %w", s.cfg.Listen, err)
		}
	}
	if s.cfg.LDAPSListen != "" {
		if ldaps, err = net.Listen("tcp", s.cfg.LDAPSListen); err != nil {
			if plain != nil {
				_ = plain.Close()
			}
			return fmt.Errorf("ldap: ldaps_listen %s: %w", s.cfg.LDAPSListen, err)
		}
	}
	if s.wrapListener != nil {
		if plain != nil {
			plain = s.wrapListener(plain)
		}
		if ldaps != nil {
			ldaps = s.wrapListener(ldaps)
		}
	}
	s.mu.Lock()
	s.plainLn, s.ldapsLn = plain, ldaps
	s.mu.Unlock()
	return nil
}

// ReloadCertificates re-reads cert_file and key_file (SIGHUP). On error the
// certificate in use stays. Without a configured certificate it does nothing.
func (s *Server) ReloadCertificates() error {
	if s.cfg.CertFile == "" {
		return nil
	}
	c, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("ldap: loading certificate: %w", err)
	}
	s.cert.Store(&c)
	if s.log != nil {
		s.log.Info("ldap certificate loaded", "cert_file", s.cfg.CertFile)
	}
	return nil
}

// Serve binds the listeners (a bind failure is returned at once), accepts
// connections until ctx is done, then stops accepting, lets
// requests in flight finish (up to a few seconds), tells each client with
// a Notice of Disconnection and returns once every connection is closed.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("ldap: Serve called twice")
	}
	s.served = true
	s.mu.Unlock()
	if err := s.bind(); err != nil {
		close(s.ready)
		return err
	}
	close(s.ready)
	for _, l := range []struct {
		ln    net.Listener
		ldaps bool
	}{{s.plainLn, false}, {s.ldapsLn, true}} {
		if l.ln == nil {
			continue
		}
		s.log.Info("ldap listening", "addr", l.ln.Addr().String(), "ldaps", l.ldaps, "starttls", !l.ldaps && s.tlsConf != nil)
		s.wg.Add(1)
		go s.acceptLoop(l.ln, l.ldaps)
	}
	<-ctx.Done()
	s.shutdown()
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.plainLn, s.ldapsLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

func (s *Server) shutdown() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closing = true
	close(s.done)
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.closeListeners()
	for _, c := range conns {
		c.stop()
	}
	s.wg.Wait()
}

func (s *Server) acceptLoop(ln net.Listener, ldaps bool) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				unexpected := !s.closing
				if unexpected {
					s.lnErr = fmt.Errorf("ldap: listener %s stopped: %w", ln.Addr(), err)
				}
				s.mu.Unlock()
				if unexpected {
					s.log.Error("ldap listener stopped; no new connections on it", "addr", ln.Addr().String(), "err", err)
				}
				return
			}
			s.mu.Lock()
			s.acceptErr, s.acceptErrAt = err, time.Now()
			s.mu.Unlock()
			// EMFILE, ENFILE, ECONNABORTED...: keep serving the
			// connections we have and retry, rather than exit.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.log.Warn("ldap accept failed; retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if backoff != 0 {
			s.mu.Lock()
			s.acceptErr = nil
			s.mu.Unlock()
			backoff = 0
		}
		if n := s.nconn.Add(1); n > int64(s.cfg.MaxConnections) {
			s.nconn.Add(-1)
			s.refuse(nc, ldaps, "max_connections", "too many connections")
			continue
		}
		c := newConn(s, nc, ldaps)
		if !s.takeSource(c) {
			s.nconn.Add(-1)
			s.refuse(nc, ldaps, "max_connections_per_source", "too many connections from your address")
			continue
		}
		s.m.open.Inc()
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = nc.Close()
			s.releaseSource(c)
			s.nconn.Add(-1)
			s.m.open.Dec()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// refuse closes a connection over a cap (reason is the metric label). A
// plain one is told why with a Notice of Disconnection (unavailable); an
// LDAPS one would need a TLS handshake first, which is what the cap
// protects, so it is just closed. The warning is logged at most once per
// refuseLogEvery, with the count of refusals it stands for.
func (s *Server) refuse(nc net.Conn, ldaps bool, reason, diag string) {
	s.m.refused.WithLabelValues(reason).Inc()
	if n, ok := s.refuseLog.allow(time.Now()); ok {
		s.log.Warn("ldap connection refused", "reason", reason, "remote", nc.RemoteAddr().String(), "refused_since_last_log", n)
	}
	if !ldaps {
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write(noticeOfDisconnection(rcUnavailable, diag))
	}
	_ = nc.Close()
}

// takeSource counts c against its address's max_connections_per_source;
// false when the address is at the cap. Loopback is not counted, and
// neither is an address that does not parse.
func (s *Server) takeSource(c *conn) bool {
	a := c.remote.Addr()
	if !a.IsValid() || (c.loopback && !s.capLoopback.Load()) {
		return true
	}
	s.srcMu.Lock()
	defer s.srcMu.Unlock()
	if s.perSource[a] >= s.cfg.MaxConnectionsPerSource {
		return false
	}
	s.perSource[a]++
	c.counted = true
	return true
}

// releaseSource undoes takeSource when c closes.
func (s *Server) releaseSource(c *conn) {
	if !c.counted {
		return
	}
	a := c.remote.Addr()
	s.srcMu.Lock()
	if s.perSource[a]--; s.perSource[a] <= 0 {
		delete(s.perSource, a)
	}
	s.srcMu.Unlock()
}

// refuseLogEvery is how often a refused connection may be logged.
const refuseLogEvery = 10 * time.Second

// logLimiter lets one log line through per refuseLogEvery and counts
// the events it held back.
type logLimiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// allow reports whether to log now, and how many events (this one
// included) the line stands for.
func (l *logLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.skipped++
	if !l.last.IsZero() && now.Sub(l.last) < refuseLogEvery {
		return 0, false
	}
	n := l.skipped
	l.last, l.skipped = now, 0
	return n, true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.releaseSource(c)
	s.nconn.Add(-1)
	s.m.open.Dec()
	s.wg.Done()
}

func (s *Server) writeTimeout() time.Duration {
	if s.cfg.IdleTimeout < maxWriteTimeout {
		return s.cfg.IdleTimeout
	}
	return maxWriteTimeout
}
