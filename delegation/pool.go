package delegation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ldap "github.com/go-ldap/ldap/v3"
)

// idleMax: a pooled connection idle for longer is closed instead of used.
// AD drops idle LDAP connections after MaxConnIdleTime (900 s by default);
// staying well under it avoids binding on a connection the DC has
// already half-closed.
const idleMax = 4 * time.Minute

// errPoolBusy: every connection to this DC is in use and none came free
// in time. The login moves on to the next DC; the DC is not marked down.
var errPoolBusy = errors.New("every pooled connection to this domain controller is busy")

// conn is one LDAP connection to a DC.
type conn struct {
	l    *ldap.Conn
	used time.Time
}

func (c *conn) close() { _ = c.l.Close() }

// op runs one LDAP operation under timeout.
func (c *conn) bind(name, pw string, timeout time.Duration) error {
	c.l.SetTimeout(timeout)
	_, err := c.l.SimpleBind(&ldap.SimpleBindRequest{Username: name, Password: pw})
	return err
}

// pool keeps up to size connections to one DC. A login takes one (or
// waits for one), binds on it and gives it back: the next login rebinds
// on the same connection, so a steady stream of logins costs one round
// trip each and no TCP or TLS handshakes.
type pool struct {
	dc    *dc
	kind  string // "user" (rebinds as each user) or "service" (stays bound as bind_dn)
	slots chan struct{}
	mu    sync.Mutex
	idle  []*conn
	open  atomic.Int64
}

func newPool(d *dc, kind string, size int) *pool {
	return &pool{dc: d, kind: kind, slots: make(chan struct{}, size)}
}

// get returns a connection and whether it came from the pool (reused).
func (p *pool) get(ctx context.Context, wait time.Duration) (*conn, bool, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-t.C:
			return nil, false, errPoolBusy
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	now := time.Now()
	for {
		p.mu.Lock()
		var c *conn
		if n := len(p.idle); n > 0 {
			c = p.idle[n-1]
			p.idle = p.idle[:n-1]
		}
		p.mu.Unlock()
		if c == nil {
			break
		}
		p.dc.dom.d.m.poolIdle.WithLabelValues(p.dc.dom.cfg.Name, p.dc.url, p.kind).Dec()
		if c.l.IsClosing() || now.Sub(c.used) > idleMax {
			p.drop(c)
			continue
		}
		return c, true, nil
	}
	c, err := p.dc.dial(ctx)
	if err == nil && p.kind == "service" {
		err = p.dc.serviceBind(c)
		if err != nil {
			c.close()
		}
	}
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	p.open.Add(1)
	p.dc.dom.d.m.poolOpen.WithLabelValues(p.dc.dom.cfg.Name, p.dc.url, p.kind).Inc()
	return c, false, nil
}

// put returns a healthy connection to the pool.
func (p *pool) put(c *conn) {
	if p.dc.dom.d.closed.Load() {
		p.discard(c)
		return
	}
	c.used = time.Now()
	p.mu.Lock()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	p.dc.dom.d.m.poolIdle.WithLabelValues(p.dc.dom.cfg.Name, p.dc.url, p.kind).Inc()
	<-p.slots
}

// discard closes a connection that failed or timed out.
func (p *pool) discard(c *conn) {
	p.drop(c)
	<-p.slots
}

func (p *pool) drop(c *conn) {
	c.close()
	p.open.Add(-1)
	p.dc.dom.d.m.poolOpen.WithLabelValues(p.dc.dom.cfg.Name, p.dc.url, p.kind).Dec()
}

// closeIdle closes every idle connection (the DC went down, or shutdown).
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		p.dc.dom.d.m.poolIdle.WithLabelValues(p.dc.dom.cfg.Name, p.dc.url, p.kind).Dec()
		p.drop(c)
	}
}

// dc is one domain controller: its address, its pools and its state.
type dc struct {
	dom      *domain
	url      string // as configured
	scheme   string // ldap | ldaps
	addr     string // host:port
	startTLS bool
	tls      *tls.Config // nil for plain ldap:// (allow_insecure)
	users    *pool
	service  *pool // nil without bind_dn

	down      atomic.Bool
	probing   atomic.Bool
	lastOK    atomic.Int64 // unix nanos of the last successful operation
	lastProbe atomic.Int64 // unix nanos
	mu        sync.Mutex
	downSince time.Time
	lastErr   string
	// refusedSince/refusedErr: the last service bind on this DC was
	// refused (empty refusedErr: it was not, or there is no bind_dn).
	refusedSince time.Time
	refusedErr   string
}

// timeoutFor is the operation timeout bounded by ctx's deadline.
func (d *dc) timeoutFor(ctx context.Context) time.Duration {
	t := d.dom.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < t {
			t = left
		}
	}
	if t <= 0 {
		t = time.Millisecond
	}
	return t
}

// dial opens a connection: TCP, then TLS (LDAPS) or StartTLS, all within
// connect_timeout.
func (d *dc) dial(ctx context.Context) (*conn, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.dom.cfg.ConnectTimeout)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	var nc net.Conn = raw
	if d.scheme == "ldaps" {
		tc := tls.Client(raw, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, tlsError(err)
		}
		nc = tc
	}
	l := ldap.NewConn(nc, d.scheme == "ldaps")
	l.Start()
	if d.startTLS {
		dl, _ := ctx.Deadline()
		_ = raw.SetDeadline(dl) // go-ldap's StartTLS handshake has no timeout of its own
		l.SetTimeout(time.Until(dl))
		err := l.StartTLS(d.tls)
		_ = raw.SetDeadline(time.Time{})
		if err != nil {
			l.Close()
			if isTimeout(err) || ctx.Err() != nil {
				return nil, fmt.Errorf("StartTLS: %w", errTimeout)
			}
			return nil, tlsError(err)
		}
	}
	d.dom.d.m.latency.WithLabelValues(d.dom.cfg.Name, d.url, "connect").Observe(time.Since(start).Seconds())
	return &conn{l: l, used: time.Now()}, nil
}

// serviceBind binds a new service-pool connection as bind_dn.
func (d *dc) serviceBind(c *conn) error {
	cfg := d.dom.cfg
	err := c.bind(cfg.BindDN, string(cfg.BindPassword.Bytes()), cfg.Timeout)
	if err != nil && classify(err) == classCredentials {
		// The DC is not marked down for this (see probe), so /healthz
		// learns of it here: every login that needs a search fails.
		d.mu.Lock()
		if d.refusedErr == "" {
			d.refusedSince = time.Now()
		}
		d.refusedErr = err.Error()
		d.mu.Unlock()
		return &serviceError{err}
	}
	if err == nil {
		d.mu.Lock()
		d.refusedErr = ""
		d.mu.Unlock()
	}
	return err
}

// serviceError: the DC refused bind_dn/bind_password. Every DC will; it is
// a configuration problem, reported as such and never a failover.
type serviceError struct{ err error }

func (e *serviceError) Error() string {
	return "the service account (bind_dn) was refused; check bind_dn and bind_password: " + e.err.Error()
}
func (e *serviceError) Unwrap() error { return e.err }

// certError: the DC's certificate did not verify against ca_file.
type certError struct{ err error }

func (e *certError) Error() string {
	return "TLS certificate not verified (is ca_file the CA that issued the DC's certificate, and is the URL's host in its names?): " + e.err.Error()
}
func (e *certError) Unwrap() error { return e.err }

func tlsError(err error) error {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		strings.Contains(err.Error(), "failed to verify certificate") || strings.Contains(err.Error(), "x509:") {
		return &certError{err}
	}
	return err
}

// IsCertError reports whether err is a certificate verification failure.
func IsCertError(err error) bool {
	var ce *certError
	return errors.As(err, &ce)
}

// markDown records a failure that makes the DC unusable; later logins skip
// it until the prober reaches it again.
func (d *dc) markDown(err error) {
	d.mu.Lock()
	d.lastErr = err.Error()
	first := !d.down.Load()
	if first {
		d.downSince = time.Now()
	}
	d.down.Store(true)
	d.mu.Unlock()
	d.dom.d.m.up.WithLabelValues(d.dom.cfg.Name, d.url).Set(0)
	d.users.closeIdle()
	if d.service != nil {
		d.service.closeIdle()
	}
	if first {
		d.dom.d.log.Warn("AD domain controller marked down; logins skip it until a probe reaches it",
			"ad", d.dom.cfg.Name, "dc", d.url, "err", err)
	}
	d.dom.d.kickProber()
}

func (d *dc) markUp() {
	d.lastOK.Store(time.Now().UnixNano())
	if d.down.Load() {
		d.mu.Lock()
		was := d.downSince
		d.down.Store(false)
		d.lastErr = ""
		d.mu.Unlock()
		d.dom.d.m.up.WithLabelValues(d.dom.cfg.Name, d.url).Set(1)
		d.dom.d.log.Info("AD domain controller is back", "ad", d.dom.cfg.Name, "dc", d.url, "down_for", time.Since(was).Round(time.Millisecond))
	}
}

// state describes the DC for /healthz: nil while logins can use it.
func (d *dc) state() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.down.Load():
		return fmt.Errorf("down since %s: %s", d.downSince.UTC().Format(time.RFC3339), d.lastErr)
	case d.refusedErr != "":
		return fmt.Errorf("refusing the service account (check bind_dn and bind_password) since %s: %s", d.refusedSince.UTC().Format(time.RFC3339), d.refusedErr)
	}
	return nil
}

// errText names the error for events and logs.
func (d *dc) errText(err error) string {
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Err != nil {
		err = ne.Err
	}
	return d.url + ": " + err.Error()
}

// probe checks the DC with a rootDSE read (on the service pool when there
// is one, so the service bind is checked too) and updates its state.
func (d *dc) probe(ctx context.Context) error {
	p := d.users
	if d.service != nil {
		p = d.service
	}
	start := time.Now()
	c, _, err := p.get(ctx, d.dom.cfg.Timeout)
	if err == nil {
		c.l.SetTimeout(d.timeoutFor(ctx))
		_, err = c.l.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"dnsHostName"}, nil))
		if err != nil {
			p.discard(c)
		} else {
			p.put(c)
		}
	}
	d.dom.d.m.latency.WithLabelValues(d.dom.cfg.Name, d.url, "probe").Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, errPoolBusy) {
			return nil // busy is alive
		}
		d.dom.d.m.errors.WithLabelValues(d.dom.cfg.Name, d.url, errKind(err)).Inc()
		var se *serviceError
		if errors.As(err, &se) {
			// The DC works; the service account does not. Every login will
			// say so (internal_error); marking the DC down would hide it.
			d.markUp()
			return err
		}
		d.markDown(err)
		return err
	}
	d.markUp()
	return nil
}

// errKind labels the errors metric.
func errKind(err error) string {
	switch {
	case IsCertError(err):
		return "tls"
	case errors.As(err, new(*serviceError)):
		return "service_bind"
	}
	return classify(err).String()
}
