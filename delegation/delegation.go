// Package delegation validates passwords against Active Directory for
// users whose delegated authority is "ad" (SPEC 2.4, 6.1): a simple bind
// as the user, over LDAPS or StartTLS, on pooled connections, with
// failover across a domain's DCs and background re-probing of dead ones.
// It implements authn.Delegator; authn decides what a result means for
// the login (stored hash, password version, offline logins).
package delegation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ldap "github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
)

// Username attributes: which AD attribute holds the gateway's name for a user.
const (
	AttrSAMAccountName    = "sAMAccountName"
	AttrUserPrincipalName = "userPrincipalName"
	AttrMail              = "mail"
)

// DomainAttribute is the user attribute that names the [[ad]] block (its
// name or its domain) that validates the user, when several are configured.
const DomainAttribute = "ad_domain"

// Defaults. The timeouts keep a login under a second when one DC is dead
// (SPEC 6.1): a hung DC costs at most max(ConnectTimeout, Timeout) once,
// and is skipped afterwards until a probe reaches it.
const (
	DefaultConnectTimeout = 400 * time.Millisecond
	DefaultTimeout        = 500 * time.Millisecond
	DefaultPoolSize       = 4
	DefaultProbeInterval  = 5 * time.Second
	dnCacheTTL            = 5 * time.Minute
)

// Domain is one AD domain, as DomainConfig.Runtime makes it from an [[ad]] block.
type Domain struct {
	Name  string // the block's name, for metrics, events and health
	Realm string // the AD DNS domain, e.g. EXAMPLE.TEST: UPN suffix
	URLs  []string
	// StartTLS upgrades ldap:// URLs. ldaps:// is TLS from the start.
	StartTLS bool
	// RootCAs verifies DC certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// ServerName overrides the name checked in DC certificates (default:
	// each URL's host).
	ServerName string
	// AllowInsecure permits ldap:// without StartTLS.
	AllowInsecure bool
	BaseDN        string
	// BindDN/BindPassword: the service account that finds a user's DN.
	// Without it, users bind by UPN.
	BindDN            string
	BindPassword      secret.String
	UsernameAttribute string
	ConnectTimeout    time.Duration
	Timeout           time.Duration
	PoolSize          int
	// StoreHash and OfflineLogin are passed to authn with each result.
	StoreHash     bool
	OfflineLogin  time.Duration
	ProbeInterval time.Duration
}

// Config is the delegator's setup.
type Config struct {
	Domains    []Domain
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Delegator implements authn.Delegator over one or more AD domains.
type Delegator struct {
	domains []*domain
	log     *slog.Logger
	m       *metrics
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	closed  atomic.Bool
	once    sync.Once
}

type domain struct {
	d   *Delegator
	cfg Domain
	dcs []*dc

	mu      sync.Mutex
	dnCache map[string]dnEntry
}

type dnEntry struct {
	dn      string
	expires time.Time
}

var _ authn.Delegator = (*Delegator)(nil)

// New builds a delegator; it does no network I/O (Start does).
func New(cfg Config) (*Delegator, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("delegation: no AD domain configured")
	}
	d := &Delegator{log: cfg.Logger, m: newMetrics(), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := d.m.register(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("delegation metrics: %w", err)
	}
	for _, dc := range cfg.Domains {
		dom, err := d.newDomain(dc)
		if err != nil {
			return nil, fmt.Errorf("ad %q: %w", dc.Name, err)
		}
		d.domains = append(d.domains, dom)
	}
	return d, nil
}

func (d *Delegator) newDomain(c Domain) (*domain, error) {
	if c.Realm == "" {
		return nil, errors.New("the AD domain (realm) is required")
	}
	if len(c.URLs) == 0 {
		return nil, errors.New("at least one domain controller URL is required")
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.PoolSize <= 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	switch {
	case strings.EqualFold(c.UsernameAttribute, AttrUserPrincipalName):
		c.UsernameAttribute = AttrUserPrincipalName
	case strings.EqualFold(c.UsernameAttribute, AttrMail):
		c.UsernameAttribute = AttrMail
	case c.UsernameAttribute == "" || strings.EqualFold(c.UsernameAttribute, AttrSAMAccountName):
		c.UsernameAttribute = AttrSAMAccountName
	default:
		return nil, fmt.Errorf("username attribute %q: use sAMAccountName, userPrincipalName or mail", c.UsernameAttribute)
	}
	if c.UsernameAttribute == AttrMail && c.BindDN == "" {
		return nil, errors.New("username attribute mail needs a service account (bind_dn) to find the user's DN")
	}
	if c.BaseDN == "" {
		c.BaseDN = BaseDNOf(c.Realm)
	}
	dom := &domain{d: d, cfg: c, dnCache: map[string]dnEntry{}}
	for _, raw := range c.URLs {
		x, err := d.newDC(dom, raw)
		if err != nil {
			return nil, err
		}
		dom.dcs = append(dom.dcs, x)
		d.m.up.WithLabelValues(c.Name, x.url).Set(1)
	}
	return dom, nil
}

// BaseDNOf turns EXAMPLE.TEST into DC=example,DC=test.
func BaseDNOf(realm string) string {
	parts := strings.Split(strings.ToLower(strings.Trim(realm, ".")), ".")
	return "DC=" + strings.Join(parts, ",DC=")
}

func (d *Delegator) newDC(dom *domain, raw string) (*dc, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not an ldap:// or ldaps:// URL", raw)
	}
	x := &dc{dom: dom, url: raw, scheme: strings.ToLower(u.Scheme)}
	port := u.Port()
	switch x.scheme {
	case "ldaps":
		if port == "" {
			port = "636"
		}
	case "ldap":
		if port == "" {
			port = "389"
		}
		if !dom.cfg.StartTLS && !dom.cfg.AllowInsecure {
			return nil, fmt.Errorf("%s: plain ldap:// sends passwords in clear; use ldaps://, start_tls = true, or allow_insecure = true", raw)
		}
		x.startTLS = dom.cfg.StartTLS
	default:
		return nil, fmt.Errorf("%q: the scheme must be ldaps or ldap", raw)
	}
	x.addr = net.JoinHostPort(u.Hostname(), port)
	if x.scheme == "ldaps" || x.startTLS {
		name := dom.cfg.ServerName
		if name == "" {
			name = u.Hostname()
		}
		x.tls = &tls.Config{RootCAs: dom.cfg.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}
	}
	x.users = newPool(x, "user", dom.cfg.PoolSize)
	if dom.cfg.BindDN != "" {
		n := dom.cfg.PoolSize / 2
		if n < 1 {
			n = 1
		}
		x.service = newPool(x, "service", n)
	}
	return x, nil
}

// ProbeResult is one DC's state after Start's first probe.
type ProbeResult struct {
	Domain, URL string
	Err         error // nil: reachable; IsCertError(Err): the certificate did not verify
}

// Start probes every DC once (in parallel, bounded by the connect and
// operation timeouts) and then keeps probing in the background: DCs that
// are down every probe interval, idle ones now and then so /healthz stays
// true. The results let the caller refuse to start on a certificate that
// does not verify; an unreachable DC is only marked down.
func (d *Delegator) Start(ctx context.Context) []ProbeResult {
	var out []ProbeResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, dom := range d.domains {
		for _, x := range dom.dcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, dom.cfg.ConnectTimeout+2*dom.cfg.Timeout)
				err := x.probe(pctx)
				cancel()
				x.lastProbe.Store(time.Now().UnixNano())
				mu.Lock()
				out = append(out, ProbeResult{Domain: dom.cfg.Name, URL: x.url, Err: err})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if d.started.CompareAndSwap(false, true) {
		go d.prober()
	}
	return out
}

// Close stops the prober and closes pooled connections.
func (d *Delegator) Close() {
	d.once.Do(func() {
		d.closed.Store(true)
		close(d.stop)
		if d.started.Load() {
			<-d.done
		}
		for _, dom := range d.domains {
			for _, x := range dom.dcs {
				x.users.closeIdle()
				if x.service != nil {
					x.service.closeIdle()
				}
			}
		}
	})
}

func (d *Delegator) kickProber() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Delegator) prober() {
	defer close(d.done)
	tick := time.Second
	for _, dom := range d.domains {
		if h := dom.cfg.ProbeInterval / 2; h < tick {
			tick = h
		}
	}
	if tick < 20*time.Millisecond {
		tick = 20 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.probeDue(false)
		case <-d.kick:
			d.probeDue(true)
		}
	}
}

// probeDue probes the DCs that need it: down ones every probe interval
// (sooner when a login found no DC up), up ones that have been idle for
// six intervals.
func (d *Delegator) probeDue(kicked bool) {
	now := time.Now()
	var wg sync.WaitGroup
	for _, dom := range d.domains {
		for _, x := range dom.dcs {
			last := time.Unix(0, x.lastProbe.Load())
			due := false
			if x.down.Load() {
				due = now.Sub(last) >= dom.cfg.ProbeInterval || (kicked && now.Sub(last) >= 100*time.Millisecond)
			} else {
				keep := 6 * dom.cfg.ProbeInterval
				due = now.Sub(time.Unix(0, x.lastOK.Load())) >= keep && now.Sub(last) >= keep
			}
			if !due || !x.probing.CompareAndSwap(false, true) {
				continue
			}
			x.lastProbe.Store(now.UnixNano())
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer x.probing.Store(false)
				ctx, cancel := context.WithTimeout(context.Background(), dom.cfg.ConnectTimeout+2*dom.cfg.Timeout)
				defer cancel()
				_ = x.probe(ctx)
			}()
		}
	}
	wg.Wait()
}

// HealthChecks returns one check per domain, named "ad:<name>", for
// /healthz: nil while every DC of the domain is in use; while only some
// are (the others marked down, or refusing the service account), an error
// naming them whose Degraded method returns true, since logins fail over
// to the rest; when none is, a plain error. They read the state that the
// logins and the prober keep and do no network I/O, so a load balancer
// polling /healthz costs AD nothing.
func (d *Delegator) HealthChecks() map[string]func(context.Context) error {
	out := make(map[string]func(context.Context) error, len(d.domains))
	for _, dom := range d.domains {
		out["ad:"+dom.cfg.Name] = func(context.Context) error { return dom.health() }
	}
	return out
}

// health sums up the domain's DCs for its check.
func (dom *domain) health() error {
	var bad []string
	down := 0
	for _, x := range dom.dcs {
		if err := x.state(); err != nil {
			bad = append(bad, x.url+" "+err.Error())
			if x.down.Load() {
				down++
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	if len(bad) < len(dom.dcs) {
		return &degradedError{fmt.Sprintf("%d of %d domain controllers cannot be used, logins fail over to the others: %s",
			len(bad), len(dom.dcs), strings.Join(bad, "; "))}
	}
	msg := "no domain controller can validate logins: " + strings.Join(bad, "; ")
	if down == len(dom.dcs) && dom.cfg.OfflineLogin > 0 {
		msg += fmt.Sprintf(" (users AD accepted within offline_login = %s can still log in from their stored hash)", dom.cfg.OfflineLogin)
	}
	return errors.New(msg)
}

// degradedError is a domain that still validates logins, with fewer DCs
// than configured.
type degradedError struct{ msg string }

func (e *degradedError) Error() string { return e.msg }

// Degraded tells /healthz (see admin.HealthCheck) that the domain still
// serves: a load balancer should keep sending logins.
func (e *degradedError) Degraded() bool { return true }

// Validate implements authn.Delegator.
func (d *Delegator) Validate(ctx context.Context, u authn.Principal, pw secret.String) authn.DelegationResult {
	dom, err := d.domainFor(u)
	if err != nil {
		d.m.validations.WithLabelValues("", string(authn.ReasonADUnreachable)).Inc()
		return authn.DelegationResult{Reason: authn.ReasonADUnreachable, Detail: err.Error()}
	}
	res := dom.validate(ctx, u, pw)
	res.Domain, res.StoreHash, res.OfflineWindow = dom.cfg.Name, dom.cfg.StoreHash, dom.cfg.OfflineLogin
	result := "ok"
	switch {
	case res.Unreachable:
		result = string(authn.ReasonADUnreachable)
	case !res.OK:
		result = string(res.Reason)
	}
	d.m.validations.WithLabelValues(dom.cfg.Name, result).Inc()
	return res
}

// domainFor picks the [[ad]] block that validates u: the one its
// ad_domain attribute names; else the only one; else the one whose domain
// is the user's email domain (or UPN suffix of the username).
func (d *Delegator) domainFor(u authn.Principal) (*domain, error) {
	if v := strings.TrimSpace(u.Attributes[DomainAttribute]); v != "" {
		for _, dom := range d.domains {
			if strings.EqualFold(v, dom.cfg.Name) || strings.EqualFold(v, dom.cfg.Realm) {
				return dom, nil
			}
		}
		return nil, fmt.Errorf("the user's %s attribute %q names no configured [[ad]] block", DomainAttribute, v)
	}
	if len(d.domains) == 1 {
		return d.domains[0], nil
	}
	for _, id := range []string{u.Email, u.Username} {
		at := strings.LastIndexByte(id, '@')
		if at < 0 {
			continue
		}
		for _, dom := range d.domains {
			if strings.EqualFold(id[at+1:], dom.cfg.Realm) {
				return dom, nil
			}
		}
	}
	return nil, fmt.Errorf("no [[ad]] block matches the user's email domain (%s); set the user's %s attribute to the block's name", u.Email, DomainAttribute)
}

// lookupValue is the user's value of the username attribute.
func (dom *domain) lookupValue(u authn.Principal) string {
	switch dom.cfg.UsernameAttribute {
	case AttrMail:
		return u.Email
	case AttrUserPrincipalName:
		if strings.Contains(u.Username, "@") {
			return u.Username
		}
		return u.Username + "@" + strings.ToLower(dom.cfg.Realm)
	default:
		return u.Username
	}
}

// principal is what a user binds as without a service account: the UPN
// (for sAMAccountName, AD's implicit UPN sAMAccountName@dns-domain).
func (dom *domain) principal(value string) string {
	if strings.Contains(value, "@") {
		return value
	}
	return value + "@" + strings.ToLower(dom.cfg.Realm)
}

func (dom *domain) validate(ctx context.Context, u authn.Principal, pw secret.String) authn.DelegationResult {
	if pw.IsEmpty() {
		// A simple bind with a name and no password is an unauthenticated
		// bind that "succeeds" (RFC 4513 5.1.2): never send one.
		return authn.DelegationResult{Reason: authn.ReasonBadPassword, Detail: "ad " + dom.cfg.Name + ": empty password (never sent to AD)"}
	}
	value := dom.lookupValue(u)
	var failed, skipped []string
	tried := 0
	for _, x := range dom.dcs {
		if x.down.Load() {
			skipped = append(skipped, x.url+": skipped, marked down")
			continue
		}
		if err := ctx.Err(); err != nil {
			failed = append(failed, x.url+": "+err.Error())
			break
		}
		if tried > 0 {
			dom.d.m.failovers.WithLabelValues(dom.cfg.Name).Inc()
		}
		tried++
		res, err := dom.try(ctx, x, value, pw)
		if err == nil {
			if len(failed) > 0 {
				res.Detail += " (after " + strings.Join(failed, "; ") + ")"
			}
			return res
		}
		failed = append(failed, x.errText(err))
	}
	if tried == 0 {
		dom.d.kickProber()
	}
	return authn.DelegationResult{Unreachable: true,
		Detail: "ad " + dom.cfg.Name + ": no domain controller answered: " + strings.Join(append(failed, skipped...), "; ")}
}

// try validates on one DC. A non-nil error means this DC failed and the
// next one should be tried; otherwise the result is final.
func (dom *domain) try(ctx context.Context, x *dc, value string, pw secret.String) (authn.DelegationResult, error) {
	via := "ad " + dom.cfg.Name + " via " + x.url
	fail := func(err error) (authn.DelegationResult, error) {
		c := classify(err)
		if errors.Is(err, errPoolBusy) {
			return authn.DelegationResult{}, err
		}
		var se *serviceError
		if errors.As(err, &se) || (!c.failover() && !IsCertError(err)) {
			x.dom.d.m.errors.WithLabelValues(dom.cfg.Name, x.url, errKind(err)).Inc()
			return authn.DelegationResult{Reason: authn.ReasonInternal, Detail: via + ": " + err.Error()}, nil
		}
		if ctx.Err() != nil {
			// The login itself was cancelled or ran out of time: not the
			// DC's fault, so it is not marked down.
			return authn.DelegationResult{}, err
		}
		x.dom.d.m.errors.WithLabelValues(dom.cfg.Name, x.url, errKind(err)).Inc()
		x.markDown(err)
		return authn.DelegationResult{}, err
	}

	name := dom.principal(value)
	cached := false
	if dom.cfg.BindDN != "" {
		dn, hit, err := dom.findDN(ctx, x, value, false)
		if errors.Is(err, errNotFound) {
			msg := err.Error()
			if err == errNotFound {
				msg = fmt.Sprintf("no user with %s=%s under %s", dom.cfg.UsernameAttribute, value, dom.cfg.BaseDN)
			}
			return authn.DelegationResult{Reason: authn.ReasonNoSuchUser, Detail: via + ": " + msg}, nil
		}
		if err != nil {
			return fail(err)
		}
		name, cached = dn, hit
	}
	err := x.userBind(ctx, name, pw)
	if err != nil && cached && classify(err) == classCredentials {
		// The cached DN may be stale (user renamed or moved): look it up
		// again, and bind again only if it changed.
		dn, _, ferr := dom.findDN(ctx, x, value, true)
		if ferr == nil && !strings.EqualFold(dn, name) {
			name = dn
			err = x.userBind(ctx, name, pw)
		}
	}
	if err == nil {
		x.lastOK.Store(time.Now().UnixNano())
		return authn.DelegationResult{OK: true, Detail: via}, nil
	}
	if classify(err) != classCredentials {
		return fail(err)
	}
	x.lastOK.Store(time.Now().UnixNano()) // it answered
	code := SubCode(err)
	reason, what := ReasonForSubCode(code)
	if code == "" {
		code = "none"
	}
	return authn.DelegationResult{Reason: reason, Detail: fmt.Sprintf("%s: bind refused, data %s (%s)", via, code, what)}, nil
}

var errNotFound = errors.New("not found")

// findDN returns the user's DN, from the cache unless refresh, else by a
// search on the DC's service-account pool.
func (dom *domain) findDN(ctx context.Context, x *dc, value string, refresh bool) (string, bool, error) {
	key := strings.ToLower(value)
	now := time.Now()
	if !refresh {
		dom.mu.Lock()
		e, ok := dom.dnCache[key]
		dom.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.dn, true, nil
		}
	}
	filter := fmt.Sprintf("(&(objectCategory=person)(objectClass=user)(%s=%s))", dom.cfg.UsernameAttribute, ldap.EscapeFilter(value))
	for attempt := 0; ; attempt++ {
		c, reused, err := x.service.get(ctx, x.timeoutFor(ctx))
		if err != nil {
			return "", false, err
		}
		start := time.Now()
		t := x.timeoutFor(ctx)
		c.l.SetTimeout(t)
		sr, err := c.l.Search(ldap.NewSearchRequest(dom.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2,
			serverTimeLimit(t), false, filter, []string{"1.1"}, nil))
		dom.d.m.latency.WithLabelValues(dom.cfg.Name, x.url, "search").Observe(time.Since(start).Seconds())
		if err != nil && ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && sr != nil {
			x.service.put(c)
			return "", false, fmt.Errorf("%w: more than one user has %s=%s", errNotFound, dom.cfg.UsernameAttribute, value)
		}
		if err != nil {
			if classify(err) == classNetwork || classify(err) == classTimeout || classify(err) == classBusy {
				x.service.discard(c)
				if reused && attempt == 0 && classify(err) == classNetwork {
					continue // the pooled connection had gone stale
				}
			} else {
				x.service.put(c)
			}
			return "", false, err
		}
		x.service.put(c)
		if len(sr.Entries) != 1 {
			if len(sr.Entries) > 1 {
				return "", false, fmt.Errorf("%w: more than one user has %s=%s", errNotFound, dom.cfg.UsernameAttribute, value)
			}
			return "", false, errNotFound
		}
		dn := sr.Entries[0].DN
		dom.mu.Lock()
		if len(dom.dnCache) > 50000 {
			clear(dom.dnCache)
		}
		dom.dnCache[key] = dnEntry{dn: dn, expires: now.Add(dnCacheTTL)}
		dom.mu.Unlock()
		return dn, false, nil
	}
}

// serverTimeLimit is the search's timeLimit for the DC, in whole seconds:
// one more than the client's timeout rounded up. Samba counts the limit
// from the wall clock's current second, so a limit of 1 ends a search
// anywhere from 1 ms to 1 s after it arrived; measured here, 2 of 300
// searches that took 20 ms failed with timeLimitExceeded at a limit of 1.
// The client's timeout bounds the login; this only stops a DC working on
// a search nobody waits for.
func serverTimeLimit(t time.Duration) int { return int((t+time.Second-1)/time.Second) + 1 }

// userBind binds as name on a pooled connection. A network error on a
// connection that came from the pool is retried once on a fresh one (the
// DC may have closed it while idle); a timeout is not, so a hung DC costs
// one timeout.
func (x *dc) userBind(ctx context.Context, name string, pw secret.String) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := x.users.get(ctx, x.timeoutFor(ctx))
		if err != nil {
			return err
		}
		start := time.Now()
		err = c.bind(name, string(pw.Bytes()), x.timeoutFor(ctx))
		x.dom.d.m.latency.WithLabelValues(x.dom.cfg.Name, x.url, "bind").Observe(time.Since(start).Seconds())
		if err == nil {
			x.users.put(c)
			return nil
		}
		cl := classify(err)
		if cl == classCredentials || cl == classRefused {
			x.users.put(c)
			return err
		}
		x.users.discard(c)
		if reused && attempt == 0 && cl == classNetwork {
			continue
		}
		return err
	}
}
