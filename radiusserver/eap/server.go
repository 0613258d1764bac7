package eap

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/secret"
)

// Method names, as events and metrics carry them.
const (
	MethodTTLSPAP = "eap-ttls/pap"
	MethodTLS     = "eap-tls"
)

// Defaults for a Config's zero fields.
const (
	DefaultFragmentSize   = 1000
	DefaultMaxSessions    = 1024
	DefaultSessionTimeout = 30 * time.Second
	DefaultMaxRounds      = 40
	// MaxSessionBytes bounds what one session may receive in all.
	MaxSessionBytes = 256 << 10
)

// Config configures a Server.
type Config struct {
	// Certificate returns the server certificate for each handshake (so a
	// reload takes effect for the next session).
	Certificate func() *tls.Certificate
	// Methods enabled, in order of preference: "ttls" (TTLS with inner
	// PAP), "ttls-mschapv2" (TTLS with inner EAP-MSCHAPv2; both share the
	// outer TTLS type), "peap", "tls". Empty: ["ttls"].
	Methods []string
	// MinVersion and MaxVersion bound TLS for TTLS and PEAP; zero: 1.2
	// and 1.2. MinVersion applies to EAP-TLS too.
	MinVersion, MaxVersion uint16
	// TLSMaxVersion bounds EAP-TLS (RFC 9190 allows 1.3); zero: 1.3.
	TLSMaxVersion uint16
	// ClientAuth returns the client CAs (and revocations) for each EAP-TLS
	// handshake, so a reload takes effect for the next session. Required
	// when "tls" is enabled.
	ClientAuth func() *ClientAuth
	// FragmentSize is the largest EAP packet sent (Framed-MTU lowers it).
	FragmentSize int
	// MaxSessions caps sessions that have started TLS; as many half-open
	// sessions (first TLS message partly received) may wait besides. A
	// Start stores nothing (cookie.go).
	MaxSessions int
	// SessionTimeout is the idle expiry of a session.
	SessionTimeout time.Duration
	// MaxRounds caps the round trips of one session.
	MaxRounds int
}

// Outcome is what the door sends.
type Outcome int

const (
	// Drop: send nothing (a response out of sequence).
	Drop Outcome = iota
	// Challenge: Access-Challenge with EAP and State.
	Challenge
	// Accept: Access-Accept with EAP (Success) and the MPPE keys from MSK.
	Accept
	// Reject: Access-Reject with EAP (Failure).
	Reject
)

// PAPFunc checks an inner PAP login; it is called on the worker that
// handles the packet and may block (argon2, AD).
type PAPFunc func(ctx context.Context, user string, password secret.String) bool

// Request is one Access-Request that carries EAP-Message.
type Request struct {
	EAP       []byte // the EAP-Message attributes, concatenated
	State     []byte // the State attribute, nil when absent
	FramedMTU int    // 0 when absent
	Source    netip.Addr
	Client    string // the RADIUS client's name, for logs
	PAP       PAPFunc
	MSCHAPv2  MSCHAPv2Func // PEAP's and TTLS's inner EAP-MSCHAPv2
	Cert      CertFunc     // EAP-TLS: authorizes the certificate's identity
	// Result, when set, is called right after PAP, MSCHAPv2 or Cert said
	// yes; what it returns (the door's login result) comes back in the
	// Accept's Response.Login, which may be rounds later (PEAP, EAP-TLS).
	Result func() any
}

// Response is what to answer.
type Response struct {
	Outcome Outcome
	EAP     []byte // EAP packet to send in EAP-Message
	State   []byte // for a Challenge
	MSK     []byte // for an Accept: 64 bytes
	// Method is set once a method was chosen ("eap-ttls/pap").
	Method string
	// Identity is the inner identity when known, else the outer one
	// (which is never used for authorization).
	Identity string
	// Reason says why a Reject happened at the EAP level (empty when the
	// inner login decided).
	Reason string
	// Login is, on an Accept, what Request.Result returned when the inner
	// login succeeded.
	Login any
}

// Server holds the EAP sessions of one RADIUS door.
type Server struct {
	cfg     Config
	tlsConf *tls.Config // TTLS and PEAP
	// tlsMethodConf is EAP-TLS's (client certificates, up to 1.3).
	tlsMethodConf *tls.Config
	methods       []uint8
	// ttlsPAP and ttlsMSCHAPv2: the inner methods TTLS accepts ("ttls",
	// "ttls-mschapv2").
	ttlsPAP, ttlsMSCHAPv2 bool
	log                   *slog.Logger
	m                     *metrics
	now                   func() time.Time

	// cookieKey keys the start cookies (cookie.go).
	cookieKey    [32]byte
	cookieSerial atomic.Uint64

	mu       sync.Mutex
	sessions map[string]*session
	// halfOpen: sessions whose first TLS message is still arriving in
	// fragments (no TLS state yet), oldest first.
	halfOpen  *list.List
	running   int // sessions with TLS started
	lastSweep time.Time
}

type session struct {
	key      string
	state    []byte
	elem     *list.Element // in halfOpen while no TLS
	busy     bool
	created  time.Time
	last     time.Time
	method   uint8
	lastID   uint8
	rounds   int
	bytes    int
	outer    string
	inner    string
	eng      *engine
	in       reassembler
	out      fragmenter
	mtu      int
	finished bool

	tls        *tlsState     // EAP-TLS, once the client is authorized
	peap       *peapState    // PEAP, after the handshake
	ttlsEAP    *ttlsEAPState // TTLS with inner EAP, after the inner Identity
	login      any           // Request.Result after the inner login said yes
	loginDone  bool          // the inner login was asked
	failReason string        // PEAP: why the Result TLV said failure
}

// New checks cfg and returns a Server. reg may be nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.Certificate == nil {
		return nil, errors.New("eap: no server certificate")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Methods) == 0 {
		cfg.Methods = []string{"ttls"}
	}
	s := &Server{cfg: cfg, log: logger, now: time.Now, sessions: make(map[string]*session), halfOpen: list.New()}
	if _, err := rand.Read(s.cookieKey[:]); err != nil {
		return nil, fmt.Errorf("eap: cookie key: %w", err)
	}
	for _, m := range cfg.Methods {
		t, err := MethodType(m)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(s.methods, t) {
			s.methods = append(s.methods, t)
		}
		switch strings.ToLower(m) {
		case "ttls":
			s.ttlsPAP = true
		case "ttls-mschapv2":
			s.ttlsMSCHAPv2 = true
		}
	}
	if s.cfg.MinVersion == 0 {
		s.cfg.MinVersion = tls.VersionTLS12
	}
	if s.cfg.MaxVersion == 0 {
		s.cfg.MaxVersion = tls.VersionTLS12
	}
	if s.cfg.MinVersion < tls.VersionTLS12 {
		return nil, errors.New("eap: TLS below 1.2 is not supported")
	}
	if s.cfg.MaxVersion < s.cfg.MinVersion {
		return nil, errors.New("eap: tls_max_version is below tls_min_version")
	}
	if s.cfg.FragmentSize <= 0 {
		s.cfg.FragmentSize = DefaultFragmentSize
	}
	if s.cfg.MaxSessions <= 0 {
		s.cfg.MaxSessions = DefaultMaxSessions
	}
	if s.cfg.SessionTimeout <= 0 {
		s.cfg.SessionTimeout = DefaultSessionTimeout
	}
	if s.cfg.MaxRounds <= 0 {
		s.cfg.MaxRounds = DefaultMaxRounds
	}
	if s.cfg.TLSMaxVersion == 0 {
		s.cfg.TLSMaxVersion = tls.VersionTLS13
	}
	if slices.Contains(s.methods, TypeTLS) {
		if cfg.ClientAuth == nil {
			return nil, errors.New("eap: EAP-TLS needs client CAs (ca_file)")
		}
		if s.cfg.TLSMaxVersion < s.cfg.MinVersion {
			return nil, errors.New("eap: the EAP-TLS maximum TLS version is below tls_min_version")
		}
	}
	cert := cfg.Certificate
	s.tlsConf = &tls.Config{
		MinVersion:             s.cfg.MinVersion,
		MaxVersion:             s.cfg.MaxVersion,
		SessionTicketsDisabled: true,
		GetCertificate:         func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert(), nil },
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			// Without TLS 1.3 the MSK needs Extended Master Secret
			// (RFC 7627): Go refuses the exporter otherwise. Refuse early.
			if !offersEMS(h) && !(s.cfg.MaxVersion >= tls.VersionTLS13 && slices.Contains(h.SupportedVersions, tls.VersionTLS13)) {
				return nil, errors.New("eap: the client does not offer Extended Master Secret")
			}
			return nil, nil
		},
	}
	s.tlsMethodConf = s.eapTLSConfig()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

func offersEMS(h *tls.ClientHelloInfo) bool { return slices.Contains(h.Extensions, 23) }

// MethodType maps a configured method name to its EAP type.
func MethodType(name string) (uint8, error) {
	switch strings.ToLower(name) {
	case "ttls", "ttls-mschapv2":
		return TypeTTLS, nil
	case "peap":
		return TypePEAP, nil
	case "tls":
		return TypeTLS, nil
	}
	return 0, fmt.Errorf("eap: unknown method %q (supported: ttls, ttls-mschapv2, peap, tls)", name)
}

// Sessions returns the number of half-open and running sessions.
func (s *Server) Sessions() (halfOpen, running int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.halfOpen.Len(), s.running
}

// Close ends every session.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		s.removeLocked(ss)
	}
}

// Handle answers one Access-Request carrying EAP-Message.
func (s *Server) Handle(ctx context.Context, req Request) (resp Response) {
	defer func() { s.m.result(resp) }()
	now := s.now()
	s.sweep(now)
	if len(req.EAP) == 0 {
		// EAP-Start (RFC 3579 §2.1): ask who it is. Stateless.
		return Response{Outcome: Challenge, EAP: Packet{Code: CodeRequest, ID: 0, Type: TypeIdentity}.Marshal()}
	}
	p, err := Parse(req.EAP)
	if err != nil || p.Code != CodeResponse {
		return Response{Outcome: Reject, EAP: Failure(0), Reason: "malformed"}
	}
	if len(req.State) == 0 {
		if p.Type != TypeIdentity {
			return Response{Outcome: Reject, EAP: Failure(p.ID), Reason: "no_session"}
		}
		return s.begin(req, p, now)
	}
	ss, busy := s.acquire(string(req.State), now)
	if busy {
		// Another packet of this session is being handled: the peer
		// retransmitted; its next try finds the answer.
		return Response{Outcome: Drop, Reason: "session_busy"}
	}
	if ss == nil {
		c, ok := s.openCookie(req.State, now)
		if !ok {
			return Response{Outcome: Reject, EAP: Failure(p.ID), Reason: "unknown_session"}
		}
		if r, done := s.fromCookie(req, p, c, now); done {
			return r
		}
		if ss, busy = s.acquire(string(req.State), now); busy || ss == nil {
			return Response{Outcome: Drop, Reason: "session_busy"}
		}
	}
	resp = s.continueSession(ctx, ss, req, p, now)
	s.release(ss, resp, now)
	return resp
}

// begin answers a Response/Identity without State with the Start of the
// preferred method. Nothing is stored: the State is a start cookie.
func (s *Server) begin(_ Request, p Packet, now time.Time) Response {
	outer := string(p.Data)
	if len(outer) > 253 {
		outer = outer[:253]
	}
	return s.offer(p.ID+1, s.methods[0], outer, now)
}

// offer is the Challenge with a method's Start, under a fresh cookie.
func (s *Server) offer(id, method uint8, outer string, now time.Time) Response {
	return Response{
		Outcome:  Challenge,
		EAP:      Packet{Code: CodeRequest, ID: id, Type: method, Data: []byte{flagStart}}.Marshal(),
		State:    s.sealCookie(startCookie{method: method, id: id, issued: now, outer: outer}),
		Identity: outer,
		Method:   methodName(method),
	}
}

// fromCookie answers a response to a Start. A NAK gets another Start,
// statelessly (done). The method's first TLS data makes the session: it
// is stored half-open under the cookie as its key (done false: the
// caller continues it), and it moves to running when its first TLS
// message is complete, which is at once unless it comes in fragments.
// Half-open sessions are at most MaxSessions: when full, the oldest makes
// room. Running sessions are never pushed out.
func (s *Server) fromCookie(req Request, p Packet, c startCookie, now time.Time) (_ Response, done bool) {
	if p.ID != c.id {
		// Not an answer to this Start: the session it began is gone
		// (ended, expired or pushed out).
		return Response{Outcome: Reject, EAP: Failure(p.ID), Identity: c.outer, Reason: "unknown_session"}, true
	}
	switch p.Type {
	case TypeNAK:
		for _, want := range p.Data {
			if slices.Contains(s.methods, want) {
				return s.offer(c.id+1, want, c.outer, now), true
			}
		}
		return Response{Outcome: Reject, EAP: Failure(p.ID), Identity: c.outer, Reason: "no_common_method", Method: methodName(c.method)}, true
	case c.method:
	default:
		return Response{Outcome: Reject, EAP: Failure(p.ID), Identity: c.outer, Reason: "unexpected_type", Method: methodName(c.method)}, true
	}
	ss := &session{key: string(req.State), state: req.State, created: c.issued, last: now, method: c.method, lastID: c.id, outer: c.outer, mtu: req.FramedMTU}
	ss.in.total = -1
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.key] != nil {
		// A concurrent copy of this packet made it first.
		return Response{Outcome: Drop, Reason: "session_busy"}, true
	}
	for s.halfOpen.Len() >= s.cfg.MaxSessions {
		old := s.halfOpen.Front().Value.(*session)
		if old.busy {
			break
		}
		s.removeLocked(old)
		s.m.evicted.Inc()
	}
	if s.halfOpen.Len() >= s.cfg.MaxSessions {
		return Response{Outcome: Reject, EAP: Failure(p.ID), Identity: c.outer, Reason: "sessions_full", Method: methodName(c.method)}, true
	}
	ss.elem = s.halfOpen.PushBack(ss)
	s.sessions[ss.key] = ss
	s.m.sessions.WithLabelValues("half_open").Set(float64(s.halfOpen.Len()))
	return Response{}, false
}

// methodName is the session's method for events and metrics: TTLS's
// name follows its inner method once that is known.
func (ss *session) methodName() string {
	if ss.ttlsEAP != nil {
		return MethodTTLSMSCHAPv2
	}
	return methodName(ss.method)
}

func methodName(t uint8) string {
	switch t {
	case TypeTTLS:
		return MethodTTLSPAP
	case TypePEAP:
		return MethodPEAPMSCHAPv2
	case TypeTLS:
		return MethodTLS
	}
	return fmt.Sprintf("eap-%d", t)
}

// acquire finds a live session and marks it busy (one packet at a time);
// busy reports a session already being worked on.
func (s *Server) acquire(key string, now time.Time) (_ *session, busy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[key]
	if ss == nil || now.Sub(ss.last) > s.cfg.SessionTimeout {
		return nil, false
	}
	if ss.busy {
		return nil, true
	}
	ss.busy = true
	return ss, false
}

// release ends a finished session or returns it to the table.
func (s *Server) release(ss *session, resp Response, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.busy = false
	ss.last = now
	if resp.Outcome == Accept || resp.Outcome == Reject {
		s.removeLocked(ss)
	}
}

func (s *Server) removeLocked(ss *session) {
	if s.sessions[ss.key] != ss {
		return
	}
	delete(s.sessions, ss.key)
	if ss.elem != nil {
		s.halfOpen.Remove(ss.elem)
		ss.elem = nil
	}
	if ss.eng != nil {
		ss.eng.close()
		s.running--
	}
	s.m.sessions.WithLabelValues("half_open").Set(float64(s.halfOpen.Len()))
	s.m.sessions.WithLabelValues("running").Set(float64(s.running))
}

// sweep drops idle sessions, at most once a second.
func (s *Server) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) < time.Second {
		return
	}
	s.lastSweep = now
	for _, ss := range s.sessions {
		if !ss.busy && now.Sub(ss.last) > s.cfg.SessionTimeout {
			s.removeLocked(ss)
			s.m.expired.Inc()
		}
	}
}

// fail ends a session with an EAP-Failure.
func (ss *session) fail(p Packet, reason string) Response {
	ss.finished = true
	return Response{Outcome: Reject, EAP: Failure(p.ID), Reason: reason, Method: ss.methodName(), Identity: ss.identity()}
}

func (ss *session) identity() string {
	if ss.inner != "" {
		return ss.inner
	}
	return ss.outer
}

func (s *Server) continueSession(ctx context.Context, ss *session, req Request, p Packet, now time.Time) Response {
	if p.ID != ss.lastID {
		// RFC 3748 §4.1: a Response that matches no outstanding Request
		// is silently discarded.
		return Response{Outcome: Drop, Reason: "eap_id_mismatch"}
	}
	ss.rounds++
	ss.bytes += len(p.Data)
	if ss.rounds > s.cfg.MaxRounds {
		return ss.fail(p, "too_many_rounds")
	}
	if ss.bytes > MaxSessionBytes {
		return ss.fail(p, "too_many_bytes")
	}
	if req.FramedMTU > 0 {
		ss.mtu = req.FramedMTU
	}
	switch p.Type {
	case TypeNAK:
		if ss.eng != nil {
			return ss.fail(p, "nak_after_start")
		}
		for _, want := range p.Data {
			if slices.Contains(s.methods, want) {
				ss.method = want
				ss.lastID++
				return Response{Outcome: Challenge, State: ss.state, Method: methodName(want), Identity: ss.outer,
					EAP: Packet{Code: CodeRequest, ID: ss.lastID, Type: want, Data: []byte{flagStart}}.Marshal()}
			}
		}
		return ss.fail(p, "no_common_method")
	case ss.method:
		return s.tlsRound(ctx, ss, req, p)
	}
	return ss.fail(p, "unexpected_type")
}

// fragmentSize is the largest EAP packet to send this session.
func (s *Server) fragmentSize(ss *session) int {
	n := s.cfg.FragmentSize
	if ss.mtu > 0 {
		// Framed-MTU is the supplicant link's MTU; EAPOL takes 4 octets.
		n = min(n, ss.mtu-4)
	}
	return max(n, minFragment)
}

func (s *Server) request(ss *session, data []byte) Response {
	ss.lastID++
	return Response{Outcome: Challenge, State: ss.state, Method: ss.methodName(), Identity: ss.identity(),
		EAP: Packet{Code: CodeRequest, ID: ss.lastID, Type: ss.method, Data: data}.Marshal()}
}

func (s *Server) tlsRound(ctx context.Context, ss *session, req Request, p Packet) Response {
	t, err := parseTLSData(p.Data)
	if err != nil {
		return ss.fail(p, "malformed_tls")
	}
	version := uint8(0) // TTLS v0
	if ss.out.pending() {
		// The peer acknowledges a fragment with an empty response.
		if len(t.data) != 0 || t.more() {
			return ss.fail(p, "fragment_not_acked")
		}
		return s.request(ss, ss.out.next(version, s.fragmentSize(ss)))
	}
	done, err := ss.in.add(t)
	if err != nil {
		return ss.fail(p, "bad_fragments")
	}
	if !done {
		return s.request(ss, []byte{version}) // ACK: flags only
	}
	msg := ss.in.buf
	ss.in.buf = nil
	if ss.eng == nil {
		if len(msg) == 0 {
			return ss.fail(p, "empty_tls")
		}
		if !s.startTLS(ss) {
			return ss.fail(p, "sessions_full")
		}
	}
	established, _ := ss.eng.state()
	if ss.method == TypeTLS && established {
		// EAP-TLS: the peer acknowledged our last flight (and, on 1.3,
		// the protected success indication).
		return s.tlsFinish(ss, p, msg)
	}
	if established && len(msg) == 0 && ss.method == TypePEAP && ss.peap == nil {
		// PEAP: the peer acknowledged our last handshake flight; the
		// server speaks first inside the tunnel.
		return s.peapStart(ss, p)
	}
	if established && len(msg) == 0 {
		// An empty response after our last flight: nothing for the
		// tunnel yet. TTLS v0 peers send the inner AVPs with their first
		// records, so there is nothing to wait for.
		return ss.fail(p, "no_inner_credentials")
	}
	out, app, err := ss.eng.step(msg)
	if err != nil {
		s.log.Debug("eap TLS failed", "client", req.Client, "identity", ss.outer, "err", err)
		return ss.fail(p, tlsFailReason(err))
	}
	if ss.method == TypeTLS {
		return s.tlsHandshakeStep(ctx, ss, req, p, out, app)
	}
	if len(app) > 0 {
		if ss.method == TypePEAP {
			return s.peapInner(ctx, ss, req, p, app)
		}
		return s.ttlsInner(ctx, ss, req, p, app)
	}
	if len(out) == 0 {
		return ss.fail(p, "tls_stalled")
	}
	ss.out.load(out)
	return s.request(ss, ss.out.next(version, s.fragmentSize(ss)))
}

// startTLS moves a half-open session to running, if there is room.
func (s *Server) startTLS(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running >= s.cfg.MaxSessions {
		s.m.refused.Inc()
		return false
	}
	if ss.elem != nil {
		s.halfOpen.Remove(ss.elem)
		ss.elem = nil
	}
	s.running++
	conf := s.tlsConf
	if ss.method == TypeTLS {
		conf = s.tlsMethodConf
	}
	ss.eng = newEngine(conf)
	s.m.sessions.WithLabelValues("half_open").Set(float64(s.halfOpen.Len()))
	s.m.sessions.WithLabelValues("running").Set(float64(s.running))
	return true
}

// ttlsInner handles the tunnel's AVPs: User-Name and User-Password (PAP).
func (s *Server) ttlsInner(ctx context.Context, ss *session, req Request, p Packet, app []byte) Response {
	defer clear(app)
	avps, err := ParseAVPs(app)
	if err != nil {
		return ss.fail(p, "malformed_avp")
	}
	var user string
	var pw []byte
	havePW := false
	for _, a := range avps {
		if a.VendorID == 0 && a.Code == avpEAPMessage {
			// Inner EAP (RFC 5281 §11.2.4): the EAP-Message AVP decides;
			// a User-Name beside it is only a hint.
			return s.ttlsEAP(ctx, ss, req, p, a.Data)
		}
	}
	if ss.ttlsEAP != nil {
		// Inner EAP started: only EAP-Message AVPs may follow.
		return ss.fail(p, "malformed_inner")
	}
	if !s.ttlsPAP {
		return ss.fail(p, "unsupported_inner_method")
	}
	for _, a := range avps {
		switch {
		case a.VendorID == 0 && a.Code == avpUserName:
			user = string(a.Data)
		case a.VendorID == 0 && a.Code == avpUserPassword:
			pw, havePW = a.Data, true
		case a.Mandatory():
			// RFC 5281 §10.1: an unsupported mandatory AVP fails.
			return ss.fail(p, "unsupported_inner_method")
		}
	}
	if !havePW || user == "" {
		return ss.fail(p, "unsupported_inner_method")
	}
	if len(user) > 253 {
		return ss.fail(p, "malformed_avp")
	}
	ss.inner = user
	// The password is NUL-padded to a multiple of 16 (RFC 5281 §11.2.5).
	for len(pw) > 0 && pw[len(pw)-1] == 0 {
		pw = pw[:len(pw)-1]
	}
	_, cs := ss.eng.state()
	msk, err := cs.ExportKeyingMaterial("ttls keying material", nil, 64)
	if err != nil {
		return ss.fail(p, "no_keying_material")
	}
	if req.PAP == nil {
		return ss.fail(p, "internal_error")
	}
	password := secret.New(append([]byte(nil), pw...))
	ok := req.PAP(ctx, user, password)
	password.Wipe()
	ss.finished = true
	if !ok {
		clear(msk)
		return Response{Outcome: Reject, EAP: Failure(p.ID), Method: MethodTTLSPAP, Identity: user}
	}
	ss.remember(req)
	return Response{Outcome: Accept, EAP: Success(p.ID), MSK: msk, Method: MethodTTLSPAP, Identity: user, Login: ss.login}
}

// remember keeps the door's login result for the Accept.
func (ss *session) remember(req Request) {
	if req.Result != nil {
		ss.login = req.Result()
	}
}
