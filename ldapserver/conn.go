package ldapserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/gatewayd/gatewayd/store"
)

// lingerTime bounds how long a closing connection drains client input.
const lingerTime = 200 * time.Millisecond

// conn is one client connection. One goroutine (serve) reads and decodes
// messages, runs binds and extended operations itself, and checks and
// plans searches; a search that looks at few entries is answered there
// too, a larger one runs in its own goroutine, at most MaxRequestsPerConn
// at a time. Writes from all of them go through wmu.
type conn struct {
	s        *Server
	id       uint64
	raw      net.Conn
	remote   netip.AddrPort
	loopback bool
	ldaps    bool

	ctx    context.Context
	cancel context.CancelFunc

	// Owned by the serve goroutine.
	nc    net.Conn
	br    *bufio.Reader
	frame bytes.Buffer
	// The last search base parsed (a client searches under one base).
	lastBase   string
	lastBaseDN parsedDN

	wmu  sync.Mutex
	bw   *bufio.Writer
	wnc  net.Conn
	werr error

	// counted: the connection counts against its address's
	// max_connections_per_source (set at accept).
	counted bool

	mu        sync.Mutex
	tls       bool
	boundID   string
	boundName string
	// unboundAt is when the connection last became unbound (opened, or a
	// bind that left it anonymous); unbound_idle_timeout runs from it.
	unboundAt time.Time
	ops       map[int64]context.CancelFunc

	inflight  sync.WaitGroup
	nInflight atomic.Int32
	stopping  atomic.Bool

	// held is this connection's part of max_bytes_in_flight.
	held atomic.Int64
	// emu makes the connection's searches evaluate, render and write
	// their entries one at a time: a client that does not read its
	// answers then holds one rendered entry, not one per search.
	emu sync.Mutex
}

// hold counts n bytes against the connection and the global budget.
func (c *conn) hold(n int) {
	c.held.Add(int64(n))
	c.s.budget.add(int64(n))
}

func (c *conn) unhold(n int) {
	c.held.Add(-int64(n))
	c.s.budget.release(int64(n))
}

func newConn(s *Server, nc net.Conn, ldaps bool) *conn {
	c := &conn{
		s:     s,
		id:    s.connSeq.Add(1),
		raw:   nc,
		ldaps: ldaps,
		nc:    nc,
		wnc:   nc,
		ops:   make(map[int64]context.CancelFunc),
	}
	c.unboundAt = time.Now()
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		c.loopback = c.remote.Addr().IsLoopback()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// stop is called by the server's shutdown: stop reading, finish up.
func (c *conn) stop() {
	c.stopping.Store(true)
	_ = c.raw.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer c.s.untrack(c)
	defer c.cancel()
	defer func() {
		if r := recover(); r != nil {
			c.s.m.panics.Inc()
			c.s.log.Error("ldap connection panic", "conn", c.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
		_ = c.raw.Close()
	}()
	if c.ldaps {
		if !c.handshake() {
			c.s.m.refused.WithLabelValues("tls_handshake").Inc()
			return
		}
	}
	c.br = bufio.NewReaderSize(c.nc, 4096)
	c.wmu.Lock()
	c.bw = bufio.NewWriterSize(c.wnc, 16<<10)
	c.wmu.Unlock()
	c.readLoop()
	c.finish()
}

// handshake runs the TLS server handshake on the raw connection.
func (c *conn) handshake() bool {
	tc := tls.Server(c.raw, c.s.tlsConf)
	_ = c.raw.SetDeadline(time.Now().Add(min(handshakeTimeout, c.s.cfg.IdleTimeout)))
	if c.stopping.Load() {
		return false
	}
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.s.log.Debug("ldap tls handshake failed", "conn", c.id, "remote", c.remote.String(), "err", err)
		return false
	}
	_ = c.raw.SetDeadline(time.Time{})
	c.nc = tc
	c.wmu.Lock()
	c.wnc = tc
	c.wmu.Unlock()
	c.mu.Lock()
	c.tls = true
	c.mu.Unlock()
	return true
}

// readDeadline is when the next read gives up: IdleTimeout from now for a
// bound connection; for an unbound one UnboundIdleTimeout from when it
// became unbound, which its own traffic does not move (but never later
// than IdleTimeout from now). past reports that the unbound limit has
// run out.
func (c *conn) readDeadline(now time.Time) (deadline time.Time, past bool) {
	deadline = now.Add(c.s.cfg.IdleTimeout)
	c.mu.Lock()
	bound, since := c.boundID != "", c.unboundAt
	c.mu.Unlock()
	if bound {
		return deadline, false
	}
	if d := since.Add(c.s.cfg.UnboundIdleTimeout); d.Before(deadline) {
		deadline = d
	}
	return deadline, !now.Before(deadline)
}

func (c *conn) readLoop() {
	for {
		// Backpressure (max_bytes_in_flight): while the budget is spent,
		// a connection holding part of it is not read from. Its clients
		// are not reading their answers, or pipeline more than the door
		// answers; TCP then pushes back on them.
		if !c.s.budget.waitRoom(c.held.Load, c.stopping.Load, c.s.m.readPauses.Inc) {
			return
		}
		deadline, past := c.readDeadline(time.Now())
		if past && c.nInflight.Load() > 0 {
			// A bind may be running: look again shortly rather than spin.
			deadline = time.Now().Add(100 * time.Millisecond)
		}
		_ = c.nc.SetReadDeadline(deadline)
		if c.stopping.Load() {
			return
		}
		if _, err := c.br.Peek(1); err != nil {
			if isTimeout(err) && !c.stopping.Load() && c.nInflight.Load() > 0 {
				continue // not idle: operations are running
			}
			if isTimeout(err) && !c.stopping.Load() {
				c.s.log.Debug("ldap idle connection closed", "conn", c.id, "remote", c.remote.String())
				if _, unbound := c.readDeadline(time.Now()); unbound {
					c.s.m.unboundClosed.Inc()
				}
			}
			return
		}
		if _, past := c.readDeadline(time.Now()); past && c.nInflight.Load() == 0 {
			// Unbound for too long: its traffic does not keep it open.
			c.s.log.Debug("ldap unbound connection closed", "conn", c.id, "remote", c.remote.String())
			c.s.m.unboundClosed.Inc()
			c.notice(rcUnavailable, "unauthenticated connection idle limit reached; bind to stay connected")
			return
		}
		// The whole message must arrive within the idle timeout too.
		deadline, _ = c.readDeadline(time.Now())
		_ = c.nc.SetReadDeadline(deadline)
		frame, err := readFrame(c.br, c.s.cfg.MaxMessageBytes, &c.frame)
		if err != nil {
			switch {
			case errors.Is(err, errTooLarge):
				c.notice(rcProtocolError, fmt.Sprintf("message larger than %d bytes", c.s.cfg.MaxMessageBytes))
			case errors.Is(err, errNotLDAP), errors.Is(err, errIndefiniteLen):
				c.notice(rcProtocolError, "malformed message")
			}
			return
		}
		if id, ok := opIdentifier(frame); !ok || id == identifier(ber.ClassApplication, ber.TypeConstructed, appSearchRequest) {
			// A decoded request aliases its frame, and a search runs on
			// while the next message is read into the same buffer. (A
			// frame too odd to tell is copied too.)
			frame = bytes.Clone(frame)
		}
		m, err := decodeMessage(frame)
		if err != nil {
			c.s.log.Debug("ldap malformed message", "conn", c.id, "remote", c.remote.String(), "err", err)
			c.notice(rcProtocolError, "malformed message")
			return
		}
		if !c.dispatch(m, frame) {
			return
		}
	}
}

// finish lets operations in flight end (cancelling them after a grace
// period on shutdown), says goodbye on shutdown and closes.
func (c *conn) finish() {
	if c.stopping.Load() {
		done := make(chan struct{})
		go func() { c.inflight.Wait(); close(done) }()
		t := time.NewTimer(shutdownGrace)
		select {
		case <-done:
			t.Stop()
		case <-t.C:
			c.cancel()
			<-done
		}
		c.notice(rcUnavailable, "server shutting down")
	} else {
		// The client went away or broke the protocol: nobody is
		// listening for the answers, stop the work.
		c.cancel()
		c.inflight.Wait()
	}
	c.wmu.Lock()
	flushed := false
	if c.bw != nil && c.werr == nil {
		_ = c.wnc.SetWriteDeadline(time.Now().Add(time.Second))
		flushed = c.bw.Flush() == nil
	}
	c.wmu.Unlock()
	if flushed {
		c.linger()
	}
}

// linger half-closes and briefly drains what the client still sends, so
// that closing does not reset the connection (which can destroy our last
// answer or notice before the client reads it).
func (c *conn) linger() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.raw.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(lingerTime))
	var buf [4096]byte
	for total := 0; total < 64<<10; {
		n, err := c.raw.Read(buf[:])
		total += n
		if err != nil {
			return
		}
	}
}

// dispatch routes one message; false ends the session.
func (c *conn) dispatch(m *message, frame []byte) bool {
	switch m.op {
	case appUnbindRequest:
		return false
	case appAbandonRequest:
		id, err := decodeAbandon(m.body)
		if err != nil {
			c.notice(rcProtocolError, "malformed abandon request")
			return false
		}
		c.mu.Lock()
		cancel := c.ops[id]
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		return true
	case appBindRequest:
		req, err := decodeBind(m.body)
		if err != nil {
			c.notice(rcProtocolError, "malformed bind request")
			return false
		}
		c.inflight.Wait() // a bind waits for outstanding operations (RFC 4511 4.2.1)
		c.runSync(m, appBindResponse, func() { c.handleBind(m, req, frame) })
		return true
	case appExtendedRequest:
		req, err := decodeExtended(m.body)
		if err != nil {
			c.notice(rcProtocolError, "malformed extended request")
			return false
		}
		c.inflight.Wait()
		if req.oid == oidStartTLS {
			return c.handleStartTLS(m)
		}
		c.runSync(m, appExtendedResponse, func() { c.handleExtended(m, req, frame) })
		return true
	case appSearchRequest:
		req, err := decodeSearch(m.body)
		var fe errFilter
		if err != nil && !errors.As(err, &fe) {
			c.notice(rcProtocolError, "malformed search request")
			return false
		}
		c.startSearch(m, req, err, len(frame))
		return true
	case appModifyRequest, appAddRequest, appDelRequest, appModDNRequest, appCompareRequest:
		tag, _ := responseTag(m.op)
		c.sendResult(m.id, tag, rcUnwillingToPerform, "", "this directory is read-only", true)
		return true
	}
	c.notice(rcProtocolError, "unknown operation")
	return false
}

// runSync runs a handler in the reader goroutine with panic recovery.
func (c *conn) runSync(m *message, respTag ber.Tag, fn func()) {
	c.nInflight.Add(1)
	defer c.nInflight.Add(-1)
	c.safely(m, respTag, fn)
}

// safely runs fn; a panic is logged and answered with operationsError.
func (c *conn) safely(m *message, respTag ber.Tag, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			c.s.m.panics.Inc()
			switch respTag {
			case appBindResponse:
				c.s.m.binds.WithLabelValues(bindError).Inc()
			case appSearchDone:
				c.s.m.searches.WithLabelValues("error").Inc()
			}
			c.s.log.Error("ldap handler panic", "conn", c.id, "op", int(m.op), "msgid", m.id,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.sendResult(m.id, respTag, rcOperationsError, "", "internal error", true)
		}
	}()
	fn()
}

// parseBase parses a search base, remembering the last one.
func (c *conn) parseBase(base string) (parsedDN, error) {
	if c.lastBaseDN != nil && base == c.lastBase {
		return c.lastBaseDN, nil
	}
	d, err := parseDN(base)
	if err == nil && d != nil {
		c.lastBase, c.lastBaseDN = base, d
	}
	return d, err
}

// startSearch answers a search, or answers busy when the connection
// already has MaxRequestsPerConn operations in flight. The search is
// checked and planned here, in the reader. One whose plan looks at few
// entries (inlineCandidates: the lookups of SSSD, nslcd and most
// applications) is answered here too, when nothing else runs on the
// connection: no goroutine to start, no handoff, no stack to grow. A
// larger one walks in a goroutine of its own, so the reader goes on
// reading (abandon, more searches). size is the request's length, held
// against max_bytes_in_flight until it is answered (the search decodes
// from its own copy of the frame).
func (c *conn) startSearch(m *message, req *searchRequest, decodeErr error, size int) {
	c.mu.Lock()
	_, dup := c.ops[m.id]
	full := len(c.ops) >= c.s.cfg.MaxRequestsPerConn
	c.mu.Unlock()
	switch {
	case dup:
		c.s.m.searches.WithLabelValues("invalid").Inc()
		c.sendResult(m.id, appSearchDone, rcProtocolError, "", "message ID already in use", true)
		return
	case full:
		c.s.m.searches.WithLabelValues("busy").Inc()
		c.sendResult(m.id, appSearchDone, rcBusy, "", "too many operations in flight on this connection", true)
		return
	}
	c.hold(size)
	start := time.Now()
	var job *searchJob
	inline := true
	c.runSync(m, appSearchDone, func() {
		var res searchResult
		job, res = c.prepareSearch(m, req, decodeErr)
		if job != nil {
			// runSync counts this one: more means searches in flight.
			if c.nInflight.Load() > 1 || !job.small(inlineCandidates) {
				inline = false
				return
			}
			res = c.runSearch(c.ctx, job)
		}
		c.finishSearch(m, start, res)
	})
	if inline {
		c.unhold(size)
		return
	}
	opCtx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.ops[m.id] = cancel
	c.mu.Unlock()
	// release ends the operation before its answer goes out. It frees the
	// message ID, which the client may reuse as soon as it has read the
	// SearchResultDone. And it stops counting the search as running: a
	// client that sends its next search on reading this one's answer
	// (every sequential client) must find the connection idle. Counted
	// until the goroutine ended instead, it was still running whenever
	// the reader had been quicker, so that search walked in a goroutine
	// too, and the next, and so on: after one large search, each small
	// one on the connection paid a goroutine handoff (~0.1 ms on two
	// cores, three times the search).
	released := false
	release := func() {
		if !released {
			released = true
			c.mu.Lock()
			delete(c.ops, m.id)
			c.mu.Unlock()
			cancel()
			c.nInflight.Add(-1)
		}
	}
	c.inflight.Add(1)
	c.nInflight.Add(1)
	c.s.walked.Add(1)
	go func() {
		defer func() {
			release()
			c.unhold(size)
			c.inflight.Done()
		}()
		c.safely(m, appSearchDone, func() {
			res := c.runSearch(opCtx, job)
			release()
			c.finishSearch(m, start, res)
		})
	}()
}

// --- writing ---

func (c *conn) write(b []byte, flush bool) error {
	// The answer is in memory until written out: it counts against
	// max_bytes_in_flight meanwhile (a write blocks while the client
	// does not read).
	c.hold(len(b))
	defer c.unhold(len(b))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(c.wnc, 16<<10)
	}
	_ = c.wnc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout()))
	_, err := c.bw.Write(b)
	if err == nil && flush {
		err = c.bw.Flush()
	}
	if err != nil {
		c.werr = err
		// A client that does not read its answers: drop it. Closing
		// unblocks the reader, which then winds the connection down.
		_ = c.raw.Close()
	}
	return err
}

func (c *conn) sendResult(id int64, tag ber.Tag, code int, matched, diag string, flush bool, controls ...[]byte) {
	w := getWriter()
	w.appendResult(id, tag, code, matched, diag, controls...)
	_ = c.write(w.b, flush)
	putWriter(w)
}

func (c *conn) sendExtended(id int64, code int, diag, name string, value []byte) {
	w := getWriter()
	w.appendExtended(id, code, diag, name, value)
	_ = c.write(w.b, true)
	putWriter(w)
}

// sendEntry queues a SearchResultEntry; the SearchResultDone flushes.
func (c *conn) sendEntry(id int64, dn string, attrs []outAttr, typesOnly bool) error {
	w := getWriter()
	w.appendEntry(id, dn, attrs, typesOnly)
	err := c.write(w.b, false)
	putWriter(w)
	return err
}

// notice sends a Notice of Disconnection (the caller then closes).
func (c *conn) notice(code int, diag string) {
	_ = c.write(noticeOfDisconnection(code, diag), true)
}

// --- per-connection authentication state ---

func (c *conn) setBound(u *store.User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u == nil {
		if c.boundID != "" {
			c.unboundAt = time.Now() // a fresh window, only on leaving a bind
		}
		c.boundID, c.boundName = "", ""
		return
	}
	c.boundID, c.boundName = u.ID, u.Username
}

func (c *conn) bound() (id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boundID
}

var errNotBound = errors.New("not bound")

// viewer re-reads the bound user, so a user suspended or deleted since the
// bind loses access at their next request.
func (c *conn) viewer() (*store.User, error) {
	id := c.bound()
	if id == "" {
		return nil, errNotBound
	}
	u, err := readUserByID(c.s.dir, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.clearBound(id)
			return nil, errNotBound
		}
		return nil, err
	}
	if c.s.tree.inactive(u, c.s.tree.now()) {
		c.clearBound(id)
		return nil, errNotBound
	}
	return u, nil
}

func (c *conn) clearBound(id string) {
	c.mu.Lock()
	if c.boundID == id {
		c.boundID, c.boundName = "", ""
	}
	c.mu.Unlock()
}

func (c *conn) isTLS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tls
}

// secureEnough says whether a cleartext password may cross this connection.
func (c *conn) secureEnough() bool {
	return c.isTLS() || c.s.cfg.AllowInsecureBind || (c.s.cfg.ExemptLoopback && c.loopback)
}

func (c *conn) clientName() string { return fmt.Sprintf("ldap#%d", c.id) }

// --- StartTLS ---

func (c *conn) handleStartTLS(m *message) bool {
	start := time.Now()
	defer func() { c.s.m.duration.WithLabelValues("starttls").Observe(time.Since(start).Seconds()) }()
	switch {
	case c.s.tlsConf == nil:
		c.sendExtended(m.id, rcUnavailable, "StartTLS is not configured", oidStartTLS, nil)
		return true
	case c.isTLS():
		c.sendExtended(m.id, rcOperationsError, "TLS already established", oidStartTLS, nil)
		return true
	case c.br.Buffered() > 0:
		// The client must wait for our answer before sending more.
		c.sendExtended(m.id, rcOperationsError, "data after StartTLS request", oidStartTLS, nil)
		return true
	}
	if code, diag := c.checkControls(m, false); code != rcSuccess {
		c.sendExtended(m.id, code, diag, oidStartTLS, nil)
		return true
	}
	c.sendExtended(m.id, rcSuccess, "", oidStartTLS, nil)
	c.wmu.Lock()
	werr := c.werr
	c.wmu.Unlock()
	if werr != nil {
		return false
	}
	if !c.handshake() {
		return false
	}
	c.br = bufio.NewReaderSize(c.nc, 4096)
	c.wmu.Lock()
	c.bw = bufio.NewWriterSize(c.wnc, 16<<10)
	c.wmu.Unlock()
	return true
}

// checkControls answers unavailableCriticalExtension for a critical control
// we do not implement. paged says whether Simple Paged Results applies.
func (c *conn) checkControls(m *message, paged bool) (int, string) {
	for _, ctl := range m.controls {
		switch {
		case ctl.oid == oidManageDsaIT: // we hold no referrals: a no-op
		case ctl.oid == oidPagedResults && paged:
		case ctl.critical:
			return rcUnavailableCriticalExt, "critical control not supported: " + ctl.oid
		}
	}
	return rcSuccess, ""
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}
