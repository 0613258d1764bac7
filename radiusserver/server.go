// Package radiusserver is gatewayd's RADIUS front door (SPEC 3.1, 3.2, 8):
// PAP Access-Requests from known clients become authn logins; responses
// carry a Message-Authenticator first (BlastRADIUS, CVE-2024-3596) and the
// reply attributes of the user's groups.
//
// layeh.com/radius is used as the packet codec and for its dictionaries
// only. The server loop is ours: bounded workers and queue, a 4096-byte
// packet limit, Message-Authenticator checks before any other work, a
// retransmission cache (RFC 5080), panic recovery and metrics.
package radiusserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/radiusserver/eap"
	"github.com/gatewayd/gatewayd/secret"
)

// Authenticator is the login service (authn). Both methods record the
// login event themselves.
type Authenticator interface {
	// Login validates req.Password for req.Identifier.
	Login(ctx context.Context, req authn.Request) authn.Result
	// Reject records a failed login without any password work (used for
	// unsupported methods: CHAP, MS-CHAP, EAP).
	Reject(ctx context.Context, req authn.Request, reason authn.Reason)
}

// cachedLogins is an Authenticator that can answer some logins without
// blocking (authn's credential cache). The server then answers those on
// the goroutine that read the packet and hands only the rest (argon2, AD)
// to its workers: a warm login costs no goroutine handoff.
type cachedLogins interface {
	// LoginCached answers like Login when no password work is needed
	// (res.User is then read-only: it may be the store's own record);
	// ok false means nothing was recorded and Login must be called.
	LoginCached(req authn.Request) (res authn.Result, ok bool)
}

// GroupResolver names a user's groups, for reply attributes.
type GroupResolver interface {
	GroupNamesOf(userID string) []string
}

const (
	// requestTimeout bounds one login; a NAS has long given up by then.
	requestTimeout = 10 * time.Second
	// queuePerWorker: packets that may wait for a worker, per worker.
	queuePerWorker = 4
	// socketBuffer is the kernel receive buffer asked for each socket.
	socketBuffer = 4 << 20
	// logEvery: a repeated warning about one source or client is logged
	// at most this often.
	logEvery = time.Minute
	// readFailWindow is how long after a failed read Health reports it:
	// failures that go on retry every few milliseconds, and the window
	// ends a report that no successful read can end while a load
	// balancer, told the door is down, sends nothing.
	readFailWindow = 3 * time.Second
)

// Server is the RADIUS authentication server. Create it with New, run it
// with Serve.
type Server struct {
	listen  []string
	workers int
	auth    Authenticator
	fast    cachedLogins // nil: every login goes to a worker
	groups  GroupResolver
	log     *slog.Logger
	m       *metrics

	clients  atomic.Pointer[clientTable]
	replies  *replyPlan
	replyMsg []*radius.AVP
	dedup    *dedupCache
	warn     *logLimiter

	// EAP (nil when [radius.eap] has no certificate).
	eap     *eap.Server
	eapCfg  EAPConfig
	eapCert atomic.Pointer[tls.Certificate]
	eapCA   atomic.Pointer[eap.ClientAuth] // EAP-TLS client CAs and CRLs

	bufPool sync.Pool

	started  atomic.Bool
	ready    chan struct{}
	mu       sync.Mutex
	conns    []*net.UDPConn
	stopping atomic.Bool
	// For Health, guarded by mu: why a socket stopped before shutdown,
	// and the last failed read, while reading keeps failing.
	sockErr   error
	readErr   error
	readErrAt time.Time
}

// New validates cfg (clients, reply groups against the dictionaries) and
// returns a Server that is not yet listening. groups may be nil when no
// reply groups are configured; reg may be nil (no metrics exported).
func New(cfg Config, auth Authenticator, groups GroupResolver, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if auth == nil {
		return nil, errors.New("radiusserver: no Authenticator")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "radius")
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("radius: %w", err)
	}
	if err := secretsResolved(cfg.Clients); err != nil {
		return nil, err
	}
	if len(cfg.ReplyGroups) > 0 && groups == nil {
		return nil, errors.New("radiusserver: reply groups are configured but there is no GroupResolver")
	}
	table, _ := compileClients(cfg.Clients) // Validate compiled both already
	plan, _ := compileReplyGroups(cfg.ReplyGroups)
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{":1812"}
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("radiusserver: metrics: %w", err)
	}
	s := &Server{
		listen:   listen,
		workers:  cfg.Workers,
		auth:     auth,
		groups:   groups,
		log:      logger,
		m:        m,
		replies:  plan,
		replyMsg: replyMessageAttrs(cfg.ReplyMessage),
		dedup:    newDedupCache(dedupTTL, dedupMaxEntries),
		warn:     newLogLimiter(logEvery),
		ready:    make(chan struct{}),
	}
	if s.workers == 0 {
		s.workers = DefaultWorkers()
	}
	s.fast, _ = auth.(cachedLogins)
	if cfg.EAP.Enabled() {
		s.eapCfg = cfg.EAP
		if err := s.ReloadEAPCertificate(); err != nil {
			return nil, err
		}
		es, err := eap.New(cfg.EAP.eapServerConfig(s.eapCert.Load, s.eapCA.Load), logger, reg)
		if err != nil {
			return nil, fmt.Errorf("radius: %w", err)
		}
		s.eap = es
	}
	s.bufPool.New = func() any { b := make([]byte, maxPacketSize+1); return &b }
	s.clients.Store(table)
	s.warnClients(table)
	return s, nil
}

func (s *Server) warnClients(t *clientTable) {
	if len(t.clients) == 0 {
		s.log.Warn("no radius clients configured: every packet will be dropped")
	}
	for _, c := range t.clients {
		if !c.requireMA {
			s.log.Warn("radius client accepts Access-Requests without Message-Authenticator (BlastRADIUS exposure, CVE-2024-3596)", "client", c.name)
		}
		if len(c.secret) < 16 {
			s.log.Warn("radius client secret is shorter than 16 bytes", "client", c.name)
		}
	}
}

// ReloadEAPCertificate re-reads [radius.eap] cert_file and key_file,
// and ca_file and crl_file for EAP-TLS (SIGHUP); sessions started
// afterwards use them. On error what is in use stays (the pair and the
// CAs are replaced independently). Without EAP it does nothing.
func (s *Server) ReloadEAPCertificate() error {
	if s.eapCfg.CertFile == "" {
		return nil
	}
	var errs []error
	if c, err := tls.LoadX509KeyPair(s.eapCfg.CertFile, s.eapCfg.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("radius eap: loading certificate: %w", err))
	} else {
		s.eapCert.Store(&c)
		s.log.Info("radius eap certificate loaded", "cert_file", s.eapCfg.CertFile)
	}
	if s.eapCfg.CAFile != "" {
		if ca, err := loadClientAuth(s.eapCfg.CAFile, s.eapCfg.CRLFile); err != nil {
			errs = append(errs, fmt.Errorf("radius eap: loading ca_file/crl_file: %w", err))
		} else {
			s.eapCA.Store(ca)
			s.log.Info("radius eap client CAs loaded", "ca_file", s.eapCfg.CAFile, "crl_file", s.eapCfg.CRLFile)
		}
	}
	return errors.Join(errs...)
}

// EAPSessions reports the EAP sessions held (half-open, running).
func (s *Server) EAPSessions() (halfOpen, running int) {
	if s.eap == nil {
		return 0, 0
	}
	return s.eap.Sessions()
}

// ReloadClients validates clients and swaps them in atomically; requests
// already being handled finish with the client they started with. On
// error the old clients stay.
func (s *Server) ReloadClients(clients []Client) error {
	if err := secretsResolved(clients); err != nil {
		return err
	}
	t, err := compileClients(clients)
	if err != nil {
		return err
	}
	s.clients.Store(t)
	s.warnClients(t)
	s.log.Info("radius clients reloaded", "clients", len(t.clients))
	return nil
}

// secretsResolved refuses clients whose secret reference was never
// resolved: Validate lets those pass because the loader reports them.
func secretsResolved(clients []Client) error {
	for _, c := range clients {
		if c.Secret.Value.IsEmpty() {
			return fmt.Errorf("radius client %q: secret %q is not resolved", c.Name, c.Secret.Ref)
		}
	}
	return nil
}

// Ready is closed once Serve has bound its sockets (or failed to).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (nil before Serve has bound).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c.LocalAddr())
	}
	return out
}

// Health reports whether the door answers, for /healthz: nil once Serve
// has bound its sockets and while it reads from them; an error before
// that, after shutdown, once a socket stopped, and while reading fails.
// It does no I/O.
func (s *Server) Health() error {
	if s.stopping.Load() {
		return errors.New("radius: shut down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.sockErr != nil:
		return s.sockErr
	case len(s.conns) == 0:
		return errors.New("radius: not listening (yet)")
	case s.readErr != nil && time.Since(s.readErrAt) < readFailWindow:
		return fmt.Errorf("radius: reading requests fails: %w", s.readErr)
	}
	return nil
}

// Serve binds every Listen address and answers requests until ctx is
// done; it then stops reading, finishes the requests already received
// (their answers are still sent) and returns nil. A bind failure is
// returned at once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("radiusserver: Serve called twice")
	}
	conns, err := s.bind()
	if err != nil {
		close(s.ready)
		return err
	}
	s.mu.Lock()
	s.conns = conns
	s.mu.Unlock()
	close(s.ready)
	for _, c := range conns {
		s.log.Info("radius listening", "addr", c.LocalAddr().String())
	}

	reqCtx := context.WithoutCancel(ctx)
	jobs := make(chan job, s.workers*queuePerWorker)
	var workers, readers sync.WaitGroup
	for range s.workers {
		workers.Go(func() {
			for j := range jobs {
				s.serveJob(reqCtx, j)
			}
		})
	}
	// Several readers per socket: a cached login is answered on the
	// goroutine that read it, so one reader would hold the warm path to
	// one core however many the machine has. The kernel hands each
	// datagram to one of them.
	for _, c := range conns {
		for range readersPerSocket() {
			readers.Go(func() { s.readLoop(c, jobs) })
		}
	}

	<-ctx.Done()
	s.stopping.Store(true)
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now())
	}
	readers.Wait()
	close(jobs)
	workers.Wait()
	if s.eap != nil {
		s.eap.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	s.log.Info("radius stopped")
	return nil
}

// readersPerSocket is how many goroutines read each socket: one per CPU
// Go may use, at most 8 (more only contend on the socket).
func readersPerSocket() int { return min(max(runtime.GOMAXPROCS(0), 1), 8) }

func (s *Server) bind() ([]*net.UDPConn, error) {
	var conns []*net.UDPConn
	for _, l := range s.listen {
		a, err := net.ResolveUDPAddr("udp", l)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("radius listen %q: %w", l, err)
		}
		c, err := net.ListenUDP("udp", a)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("radius listen %q: %w", l, err)
		}
		_ = c.SetReadBuffer(socketBuffer)
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*net.UDPConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

type job struct {
	conn     *net.UDPConn
	src      netip.AddrPort
	buf      *[]byte
	n        int
	received time.Time
}

// readLoop reads packets in batches (recvmmsg where the platform has it),
// answers what needs no blocking work at once, sends those answers in one
// batch, and queues the rest (a login that must hash or ask AD) for the
// workers.
func (s *Server) readLoop(c *net.UDPConn, jobs chan<- job) {
	bc := newBatchConn(c, readBatch)
	sc := new(packetScratch)
	for i := range bc.in {
		bc.in[i].Buffers[0] = *s.bufPool.Get().(*[]byte)
	}
	failing := false
	for {
		n, err := bc.read()
		if err != nil {
			if s.stopping.Load() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				s.sockErr = fmt.Errorf("radius: socket %s stopped: %w", c.LocalAddr(), err)
				s.mu.Unlock()
				s.log.Error("radius socket stopped; no more requests on it", "addr", c.LocalAddr().String(), "err", err)
				return
			}
			s.mu.Lock()
			s.readErr, s.readErrAt = err, time.Now()
			s.mu.Unlock()
			failing = true
			if s.warn.allow("read:"+c.LocalAddr().String(), time.Now()) {
				s.log.Warn("radius read error", "addr", c.LocalAddr().String(), "err", err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if failing {
			s.mu.Lock()
			s.readErr = nil
			s.mu.Unlock()
			failing = false
		}
		received := time.Now()
		for i := range n {
			src, ok := bc.source(i)
			if !ok {
				continue
			}
			m := &bc.in[i]
			resp, deferred := s.handle(context.Background(), src, m.Buffers[0][:m.N], received, true, sc)
			if deferred {
				s.enqueue(jobs, c, src, m, received)
				continue
			}
			if resp != nil {
				bc.queueReply(resp, m.Addr)
			}
		}
		if err := bc.flush(); err != nil && s.warn.allow("write:"+c.LocalAddr().String(), time.Now()) {
			s.log.Warn("radius write failed", "addr", c.LocalAddr().String(), "err", err)
		}
	}
}

// enqueue hands m's buffer to a worker and gives m a fresh one.
func (s *Server) enqueue(jobs chan<- job, c *net.UDPConn, src netip.AddrPort, m *batchMessage, received time.Time) {
	bp := s.bufPool.Get().(*[]byte)
	*bp, m.Buffers[0] = m.Buffers[0], *bp
	select {
	case jobs <- job{conn: c, src: src, buf: bp, n: m.N, received: received}:
	default:
		s.bufPool.Put(bp)
		s.m.drop(dropOverload)
		if s.warn.allow("overload", time.Now()) {
			s.log.Warn("radius queue full: dropping requests", "workers", s.workers)
		}
	}
}

func (s *Server) serveJob(ctx context.Context, j job) {
	resp := s.handlePacket(ctx, j.src, (*j.buf)[:j.n], j.received)
	s.bufPool.Put(j.buf)
	if resp == nil {
		return
	}
	if _, err := j.conn.WriteToUDPAddrPort(resp, j.src); err != nil {
		if s.warn.allow("write:"+j.src.Addr().String(), time.Now()) {
			s.log.Warn("radius write failed", "to", j.src.String(), "err", err)
		}
	}
}

// handlePacket answers one packet, blocking as long as the login takes:
// the worker path, and the tests'.
func (s *Server) handlePacket(ctx context.Context, src netip.AddrPort, b []byte, received time.Time) []byte {
	resp, _ := s.handle(ctx, src, b, received, false, nil)
	return resp
}

// handle is the whole packet path: it returns the bytes to send back to
// src, or nil to stay silent. b is not retained. With inline set it must
// not block: a login that needs password work returns deferred, with
// nothing recorded, for a worker to handle the packet from the start.
// The request is parsed into sc when it is not nil (the reader's, reused
// for each packet it answers), so nothing of the packet may outlive the
// call. The worker path passes nil: it runs EAP, whose sessions outlive
// a packet, and is not where the garbage of a login storm comes from.
func (s *Server) handle(ctx context.Context, src netip.AddrPort, b []byte, received time.Time, inline bool, sc *packetScratch) (resp []byte, deferred bool) {
	defer func() {
		if r := recover(); r != nil {
			resp, deferred = nil, false
			s.m.drop(dropPanic)
			s.log.Error("radius request handler panicked", "from", src.String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	if len(b) > maxPacketSize {
		s.m.drop(dropOversize)
		return nil, false
	}
	// 1. Who is it? Unknown sources get nothing, not even a parse.
	c := s.clients.Load().lookup(src.Addr())
	if c == nil {
		s.m.drop(dropUnknownClient)
		if s.warn.allow("unknown:"+src.Addr().String(), received) {
			s.log.Warn("radius packet from unknown client dropped", "from", src.Addr().String())
		}
		return nil, false
	}
	// 2. Header and Message-Authenticator, before any other work.
	f, err := preparse(b)
	if err != nil {
		s.m.drop(dropMalformed)
		s.log.Debug("radius malformed packet dropped", "client", c.name, "from", src, "err", err)
		return nil, false
	}
	code := radius.Code(f.b[0])
	if code != radius.CodeAccessRequest && code != radius.CodeStatusServer {
		s.m.drop(dropUnsupportedCode)
		s.log.Debug("radius packet code not served here dropped", "client", c.name, "code", code)
		return nil, false
	}
	if f.maOff != 0 {
		if !verifyMA(f, c.mac) {
			s.m.drop(dropBadMA)
			if s.warn.allow("badma:"+c.name, received) {
				s.log.Warn("radius packet with a wrong Message-Authenticator dropped (is the shared secret right?)",
					"client", c.name, "from", src.Addr().String())
			}
			return nil, false
		}
	} else if c.requireMA || code == radius.CodeStatusServer {
		s.m.drop(dropMissingMA)
		if s.warn.allow("noma:"+c.name, received) {
			msg := "radius packet without Message-Authenticator dropped"
			if code == radius.CodeAccessRequest {
				// The usual cause is an old NAS or pam_radius below 3.0
				// (Debian 12 ships 2.0), which never send one: say what fixes it.
				msg += fmt.Sprintf("; if this NAS cannot send one (pam_radius_auth below 3.0 cannot), set require_message_authenticator = false in its [[radius.client]] block (%q), which exposes it to BlastRADIUS (CVE-2024-3596)", c.name)
			}
			s.log.Warn(msg, "client", c.name, "from", src.Addr().String(), "code", code.String())
		}
		return nil, false
	}
	// 3. A retransmission (RFC 5080 §2.2.2) gets the first answer.
	if code == radius.CodeAccessRequest {
		key := dedupKey{client: c.name, src: src, id: f.b[1]}
		copy(key.auth[:], f.b[4:headerLen])
		entry, state, cached := s.dedup.begin(key, received)
		switch state {
		case dedupInFlight:
			s.m.drop(dropDuplicateRunning)
			return nil, false
		case dedupCached:
			s.m.answered(c.name, outcomeDuplicate, received)
			return cached, false
		}
		// A nil answer (drop, panic) forgets the entry.
		defer func() { s.dedup.finish(entry, resp) }()
	}
	p := parsePacket(f, c.secret, sc)
	if f.maOff == 0 {
		// Not required for this client, but a Proxy-State without a
		// Message-Authenticator is the BlastRADIUS shape: drop it
		// (FreeRADIUS limit_proxy_state).
		if _, ok := p.Lookup(rfc2865.ProxyState_Type); ok {
			s.m.drop(dropMissingMA)
			return nil, false
		}
	}
	if code == radius.CodeStatusServer {
		// RFC 5997: answered with Access-Accept; not cached.
		out, err := s.respond(radius.CodeAccessAccept, p, c, nil, false)
		if err != nil {
			s.m.drop(dropInternal)
			s.log.Error("radius response encoding failed", "client", c.name, "err", err)
			return nil, false
		}
		s.m.answered(c.name, outcomeStatus, received)
		return out, false
	}

	// 4. Authenticate.
	code, attrs, method, deferred := s.access(ctx, src, c, p, inline)
	if deferred {
		return nil, true // the dedup entry is forgotten with the nil answer
	}
	if code == 0 {
		// An EAP response out of sequence: silently discarded.
		s.m.drop(dropEAPSequence)
		return nil, false
	}
	out, err := s.respond(code, p, c, attrs, code != radius.CodeAccessChallenge)
	if err != nil {
		s.m.drop(dropInternal)
		s.log.Error("radius response encoding failed", "client", c.name, "err", err)
		return nil, false
	}
	outcome := outcomeReject
	switch code {
	case radius.CodeAccessAccept:
		outcome = outcomeAccept
	case radius.CodeAccessChallenge:
		outcome = outcomeChallenge
	}
	s.m.answered(c.name, outcome, received)
	if method != "" && outcome != outcomeChallenge {
		s.m.method(method, outcome)
	}
	return out, false
}

// access decides an Access-Request: the response code (0: send nothing),
// the reply attributes and the method that decided ("pap",
// "eap-ttls/pap"; empty for a refusal before any method). With inline set
// it answers only what needs no password work and otherwise returns
// deferred.
func (s *Server) access(ctx context.Context, src netip.AddrPort, c *client, p *radius.Packet, inline bool) (radius.Code, []*radius.AVP, string, bool) {
	station, _ := rfc2865.CallingStationID_LookupString(p)
	req := authn.Request{
		Protocol: authn.ProtocolRADIUS,
		Source:   src.Addr().Unmap(),
		Station:  station,
		Client:   c.name,
	}
	if _, ok := p.Lookup(rfc2869.EAPMessage_Type); ok && s.eap != nil {
		if inline {
			return 0, nil, "", true // TLS work: the worker path
		}
		code, attrs, method := s.eapAccess(ctx, c, p, req)
		return code, attrs, method, false
	}
	code, attrs, deferred := s.papAccess(ctx, c, p, req, inline)
	method := ""
	if _, ok := p.Lookup(rfc2865.UserPassword_Type); ok && otherMethod(p) == "" {
		method = MethodPAP
	}
	return code, attrs, method, deferred
}

// MethodPAP names plain PAP in events and metrics.
const MethodPAP = "pap"

func (s *Server) papAccess(ctx context.Context, c *client, p *radius.Packet, req authn.Request, inline bool) (_ radius.Code, _ []*radius.AVP, deferred bool) {
	userName, _ := rfc2865.UserName_LookupString(p)
	req.Identifier = userName
	if method := otherMethod(p); method != "" {
		s.auth.Reject(ctx, req, authn.ReasonUnsupportedMethod)
		s.log.Debug("radius unsupported authentication method", "client", c.name, "method", method)
		if method == "eap" {
			// EAP is off: end the supplicant's attempt at once.
			return radius.CodeAccessReject, eapFailureAttrs(p), false
		}
		return radius.CodeAccessReject, nil, false
	}
	enc, hasPAP := p.Lookup(rfc2865.UserPassword_Type)
	if !hasPAP {
		// No credential at all (e.g. Call-Check): nothing we serve.
		s.auth.Reject(ctx, req, authn.ReasonUnsupportedMethod)
		return radius.CodeAccessReject, nil, false
	}
	if userName == "" {
		s.auth.Reject(ctx, req, authn.ReasonNoSuchUser)
		return radius.CodeAccessReject, nil, false
	}
	pw, err := radius.UserPassword(enc, c.secret, p.Authenticator[:])
	if err != nil {
		// A User-Password of an impossible length: the NAS is broken.
		s.auth.Reject(ctx, req, authn.ReasonBadPassword)
		return radius.CodeAccessReject, nil, false
	}
	req.Password = secret.New(pw)
	req.Method = MethodPAP
	res, answered := s.login(ctx, req, inline)
	// Wipe the whole decode buffer, padding included.
	clear(pw[:cap(pw)])
	req.Password.Wipe()
	if !answered {
		return 0, nil, true
	}
	if !res.OK {
		s.log.Debug("radius login failed", "client", c.name, "user", userName, "reason", string(res.Reason))
		return radius.CodeAccessReject, nil, false
	}
	return radius.CodeAccessAccept, s.replyAttrs(res), false
}

// replyAttrs are the reply-group attributes for a successful login: the
// same plan for PAP and EAP.
func (s *Server) replyAttrs(res authn.Result) []*radius.AVP {
	if res.User != nil && s.groups != nil && s.replies != nil && len(s.replies.ordered) > 0 {
		return s.replies.attributesFor(s.groups.GroupNamesOf(res.User.ID))
	}
	return nil
}

// login runs the login; inline, only if it can be answered without
// blocking (answered false otherwise).
func (s *Server) login(ctx context.Context, req authn.Request, inline bool) (res authn.Result, answered bool) {
	if inline {
		if s.fast == nil {
			return authn.Result{}, false
		}
		return s.fast.LoginCached(req)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return s.auth.Login(ctx, req), true
}

// otherMethod names a non-PAP authentication method present in p.
func otherMethod(p *radius.Packet) string {
	if _, ok := p.Lookup(rfc2865.CHAPPassword_Type); ok {
		return "chap"
	}
	if _, ok := p.Lookup(rfc2869.EAPMessage_Type); ok {
		return "eap"
	}
	if _, ok := p.Lookup(rfc2869.ARAPPassword_Type); ok {
		return "arap"
	}
	if _, err := microsoft.MSCHAPChallenge_Lookup(p); err == nil {
		return "mschap"
	}
	if _, err := microsoft.MSCHAPResponse_Lookup(p); err == nil {
		return "mschap"
	}
	if _, err := microsoft.MSCHAP2Response_Lookup(p); err == nil {
		return "mschapv2"
	}
	return ""
}

// respond encodes the answer: Message-Authenticator first, then the
// reply attributes, Reply-Message (if configured) and the Proxy-State
// attributes of the request in their order.
func (s *Server) respond(code radius.Code, req *radius.Packet, c *client, attrs []*radius.AVP, withReplyMsg bool) ([]byte, error) {
	out := attrs
	if withReplyMsg && len(s.replyMsg) > 0 {
		out = append(out[:len(out):len(out)], s.replyMsg...)
	}
	for _, a := range req.Attributes {
		if a.Type == rfc2865.ProxyState_Type {
			out = append(out[:len(out):len(out)], a)
		}
	}
	return encodeResponse(code, req.Identifier, req.Authenticator, c.secret, c.mac, out)
}

// logLimiter lets a warning about one key through once per interval, and
// at most a few per second overall (spoofed sources cannot flood the log).
type logLimiter struct {
	mu     sync.Mutex
	every  time.Duration
	last   map[string]time.Time
	global *rate.Limiter
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: make(map[string]time.Time), global: rate.NewLimiter(5, 20)}
}

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	if !l.global.AllowN(now, 1) {
		return false
	}
	if len(l.last) >= 4096 {
		for k, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, k)
			}
		}
		if len(l.last) >= 4096 {
			clear(l.last)
		}
	}
	l.last[key] = now
	return true
}
