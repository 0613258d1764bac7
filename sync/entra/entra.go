// Package entra is the Microsoft Entra ID connector: it implements
// sync.Connector over a handful of Microsoft Graph v1.0 user calls
// (SPEC 4.1–4.3), sync.GroupConnector over the group and membership calls
// (SPEC 4.4) and sync.Importer over the user list (SPEC 4.7),
// authenticated with the OAuth 2.0 client-credentials grant of an app
// registration.
//
// The connector classifies every failure (sync.ErrNotFound, or a
// *sync.Error that says whether to retry and how long to wait) but never
// retries or sleeps itself: the engine owns retries and backoff (SPEC
// 4.8). The single exception is a 401 from Graph, answered by fetching a
// new token once and repeating the call.
//
// Passwords (secret.String) are only ever copied into the JSON body of the
// one request that carries them; that buffer is wiped when the call
// returns. They never reach a log line or an error message.
package entra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatewayd/gatewayd/secret"
	gsync "github.com/gatewayd/gatewayd/sync"
)

// Defaults for Config.
const (
	DefaultAuthorityURL = "https://login.microsoftonline.com"
	DefaultGraphURL     = "https://graph.microsoft.com"
	DefaultTimeout      = 15 * time.Second

	// MaxResponseBytes caps what the connector reads from one Graph
	// response; a user object is a few KiB.
	MaxResponseBytes = 1 << 20
)

// Config is one [[directory]] block of type "entra".
type Config struct {
	// Name is the directory's name in the configuration; it appears in
	// error messages and logs.
	Name string
	// TenantID is the directory (tenant) id, a GUID, or a verified
	// domain such as contoso.onmicrosoft.com.
	TenantID string
	// ClientID is the app registration's application (client) id.
	ClientID string
	// ClientSecret is the app registration's client secret value.
	ClientSecret secret.String
	// AuthorityURL is the token authority; default
	// https://login.microsoftonline.com. The token endpoint is
	// {AuthorityURL}/{TenantID}/oauth2/v2.0/token.
	AuthorityURL string
	// GraphURL is the Graph endpoint; default https://graph.microsoft.com.
	// The token scope is {GraphURL}/.default, which is the documented
	// https://graph.microsoft.com/.default for the default, and the right
	// value for national clouds (https://graph.microsoft.us, ...).
	GraphURL string
	// HTTPClient, when set, carries every request (token and Graph). The
	// default client uses TLS 1.2+ and does not follow redirects.
	HTTPClient *http.Client
	// Timeout bounds each HTTP exchange (a token request or one Graph
	// call); default 15 s. The caller's context bounds the whole method.
	Timeout time.Duration
	// Logger receives debug lines (method, path, status, duration,
	// Graph request-id); never a password or token. Default: discard.
	Logger *slog.Logger
}

// Connector talks to one Entra ID tenant. It is safe for concurrent use.
type Connector struct {
	name    string
	graph   string // {GraphURL}/v1.0
	hc      *http.Client
	cc      *clientcredentials.Config
	timeout time.Duration
	log     *slog.Logger

	// tokLock is a one-slot semaphore (so waiters honour their context)
	// guarding tok and tokIssued.
	tokLock   chan struct{}
	tok       *oauth2.Token
	tokIssued time.Time
}

var _ gsync.Connector = (*Connector)(nil)

var (
	tenantRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$`)
	clientIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// New checks cfg and builds a connector. It makes no network call: the
// first token is fetched by the first method call.
func New(cfg Config) (*Connector, error) {
	name := cfg.Name
	if name == "" {
		name = "entra"
	}
	if !tenantRE.MatchString(cfg.TenantID) {
		return nil, fmt.Errorf("entra directory %q: tenant_id must be the tenant's GUID or a verified domain, got %q", name, cfg.TenantID)
	}
	if !clientIDRE.MatchString(cfg.ClientID) {
		return nil, fmt.Errorf("entra directory %q: client_id must be the app registration's application (client) id, got %q", name, cfg.ClientID)
	}
	if cfg.ClientSecret.IsEmpty() {
		return nil, fmt.Errorf("entra directory %q: client_secret is empty", name)
	}
	authority, err := baseURL(cfg.AuthorityURL, DefaultAuthorityURL)
	if err != nil {
		return nil, fmt.Errorf("entra directory %q: authority_url: %v", name, err)
	}
	graph, err := baseURL(cfg.GraphURL, DefaultGraphURL)
	if err != nil {
		return nil, fmt.Errorf("entra directory %q: graph_url: %v", name, err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Connector{
		name:    name,
		graph:   graph + "/v1.0",
		hc:      hc,
		timeout: timeout,
		log:     log.With("directory", name, "type", "entra"),
		cc: &clientcredentials.Config{
			ClientID: cfg.ClientID,
			// x/oauth2 takes the secret as a Go string, which cannot be
			// wiped; it lives as long as the connector, like the
			// configuration it came from.
			ClientSecret: string(cfg.ClientSecret.Bytes()),
			TokenURL:     authority + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token",
			Scopes:       []string{graph + "/.default"},
			// Entra documents client_secret in the form body; setting the
			// style avoids x/oauth2's probe (a second request per failure).
			AuthStyle: oauth2.AuthStyleInParams,
		},
		tokLock: make(chan struct{}, 1),
	}, nil
}

// Name is the directory's configured name.
func (c *Connector) Name() string { return c.name }

// baseURL validates an endpoint: https, or http to a loopback address
// (tests, a local proxy); no query or fragment; no trailing slash.
func baseURL(s, def string) (string, error) {
	if s == "" {
		s = def
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q must be scheme://host[/path], without credentials, query or fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("%q: plain http is only allowed to a loopback address", s)
		}
	default:
		return "", fmt.Errorf("%q: scheme must be https", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = newTLSConfig()
	}
	return &http.Client{
		Transport: tr,
		// A redirect from Graph or the authority is unexpected; following
		// it could carry the bearer token or the client secret elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ---- Connector methods ----------------------------------------------------

// userSelect is the $select of every user read.
const userSelect = "id,userPrincipalName,accountEnabled,lastPasswordChangeDateTime"

type graphUser struct {
	ID                         string  `json:"id"`
	UserPrincipalName          string  `json:"userPrincipalName"`
	AccountEnabled             *bool   `json:"accountEnabled"`
	LastPasswordChangeDateTime *string `json:"lastPasswordChangeDateTime"`
}

func (g *graphUser) remote() *gsync.RemoteUser {
	r := &gsync.RemoteUser{ID: g.ID, UPN: g.UserPrincipalName}
	if g.AccountEnabled != nil {
		r.Enabled = *g.AccountEnabled
	}
	if g.LastPasswordChangeDateTime != nil {
		if t, err := time.Parse(time.RFC3339Nano, *g.LastPasswordChangeDateTime); err == nil {
			r.LastPasswordChange = t.UTC()
		}
	}
	return r
}

// LookupUser reads an account by its userPrincipalName.
func (c *Connector) LookupUser(ctx context.Context, upn string) (*gsync.RemoteUser, error) {
	if strings.TrimSpace(upn) == "" {
		return nil, c.permanent("look up user", "the user principal name is empty")
	}
	return c.getUser(ctx, "look up user "+upn, upn)
}

// GetUser reads an account by its object id.
func (c *Connector) GetUser(ctx context.Context, id string) (*gsync.RemoteUser, error) {
	if strings.TrimSpace(id) == "" {
		return nil, c.permanent("read user", "the object id is empty")
	}
	return c.getUser(ctx, "read user "+id, id)
}

func (c *Connector) getUser(ctx context.Context, op, key string) (*gsync.RemoteUser, error) {
	var g graphUser
	if _, err := c.do(ctx, op, http.MethodGet, userPath(key)+"?$select="+userSelect, nil, &g, nil); err != nil {
		return nil, err
	}
	if g.ID == "" {
		return nil, c.permanent(op, "Graph answered without an object id")
	}
	return g.remote(), nil
}

// CreateUser creates the account (SPEC 4.1). Graph requires a password at
// creation: pw when given, otherwise a random one that meets Entra's
// complexity rule and that nobody knows (the first login pushes the
// real one, SPEC 3.3). The mapped attributes go in the same POST; those
// Graph refuses are left out (see writeUser) and reported with the
// created account in *sync.AttributesRefused. The manager reference is
// set after the POST.
func (c *Connector) CreateUser(ctx context.Context, a gsync.Account, pw secret.String) (*gsync.RemoteUser, error) {
	const op = "create user"
	if strings.TrimSpace(a.UPN) == "" {
		return nil, c.permanent(op, "the user principal name is empty")
	}
	core := map[string]any{
		"accountEnabled":    a.Enabled,
		"userPrincipalName": a.UPN,
		"displayName":       displayName(a),
		"mailNickname":      mailNickname(a),
	}
	if a.GivenName != "" {
		core["givenName"] = a.GivenName
	}
	if a.Surname != "" {
		core["surname"] = a.Surname
	}
	attrs, refused := attributeFields(a, false)

	var pwb []byte
	if pw.IsEmpty() {
		pwb = generatePassword()
		defer wipe(pwb)
	} else {
		pwb = pw.Bytes()
	}
	var g graphUser
	r, rest, err := c.writeUser(ctx, op+" "+a.UPN, http.MethodPost, "/users", core, attrs, pwb, &g)
	if err != nil {
		return nil, err
	}
	refused = append(refused, r...)
	if g.ID == "" {
		return nil, c.permanent(op+" "+a.UPN, "Graph answered without an object id")
	}
	ru := g.remote()
	if ru.UPN == "" {
		ru.UPN = a.UPN
	}
	// Graph's creation answer carries the default property set, which
	// has no accountEnabled: what we asked for is what was created.
	if g.AccountEnabled == nil {
		ru.Enabled = a.Enabled
	}
	if len(rest) > 0 {
		r, err := c.patchEach(ctx, op+" "+a.UPN, g.ID, rest)
		if err != nil {
			return nil, err // the engine's next attempt finds and takes it over
		}
		refused = append(refused, r...)
	}
	if refused, err = c.applyManager(ctx, g.ID, a, refused); err != nil {
		return nil, err
	}
	return ru, refusedError(refused)
}

// UpdateUser pushes the user's names, mapped attributes and manager
// (SPEC 4.2). An empty givenName or surname, an attribute in a.Clear and
// a.ClearManager clear it in Entra; an empty displayName or mailNickname
// is left alone (Entra requires them). accountEnabled is SetEnabled's
// business. Attributes Graph refuses are left out and reported in
// *sync.AttributesRefused; the rest is applied.
func (c *Connector) UpdateUser(ctx context.Context, id string, a gsync.Account) error {
	op := "update user " + id
	if strings.TrimSpace(id) == "" {
		return c.permanent("update user", "the object id is empty")
	}
	core := map[string]any{
		"givenName": nullIfEmpty(a.GivenName),
		"surname":   nullIfEmpty(a.Surname),
	}
	if a.UPN != "" {
		core["userPrincipalName"] = a.UPN
	}
	if a.DisplayName != "" || a.GivenName != "" || a.Surname != "" {
		core["displayName"] = displayName(a)
	}
	if a.MailNickname != "" {
		core["mailNickname"] = mailNickname(a)
	}
	attrs, refused := attributeFields(a, true)
	r, rest, err := c.writeUser(ctx, op, http.MethodPatch, userPath(id), core, attrs, nil, nil)
	if err != nil {
		return err
	}
	refused = append(refused, r...)
	if len(rest) > 0 {
		r, err := c.patchEach(ctx, op, id, rest)
		if err != nil {
			return err
		}
		refused = append(refused, r...)
	}
	if refused, err = c.applyManager(ctx, id, a, refused); err != nil {
		return err
	}
	return refusedError(refused)
}

// SetEnabled sets accountEnabled ("block sign-in" when false). It never
// deletes (SPEC 4.3).
func (c *Connector) SetEnabled(ctx context.Context, id string, enabled bool) error {
	op := "enable user " + id
	if !enabled {
		op = "disable user " + id
	}
	if strings.TrimSpace(id) == "" {
		return c.permanent(op, "the object id is empty")
	}
	body := []byte(`{"accountEnabled":false}`)
	if enabled {
		body = []byte(`{"accountEnabled":true}`)
	}
	_, err := c.do(ctx, op, http.MethodPatch, userPath(id), body, nil, nil)
	return err
}

// readBackSlack is how much older than the PATCH answer's Date a read-back
// lastPasswordChangeDateTime may be before it is taken for a stale replica.
const readBackSlack = 2 * time.Minute

// SetPassword pushes pw (forceChangePasswordNextSignIn false) and returns
// Entra's lastPasswordChangeDateTime for it, which the engine stores to
// tell a later remote change from its own push (SPEC 3.3).
//
// The time is read back with a GET after the PATCH. When that read fails,
// or returns a value older than the PATCH (a replica that has not seen
// the change yet), SetPassword still succeeds — the password is set, and
// an error would make the engine push again and log the user out of
// Microsoft 365 once more — and returns the Date header of the PATCH
// response (Graph's clock, at or after the change), or the local clock
// when there is none. The Date header can only hide a remote change made
// within the same few seconds; the local clock, if it runs behind
// Microsoft's, can cause one extra push at the next login.
func (c *Connector) SetPassword(ctx context.Context, id string, pw secret.String) (time.Time, error) {
	op := "set password of user " + id
	if strings.TrimSpace(id) == "" {
		return time.Time{}, c.permanent("set password", "the object id is empty")
	}
	if pw.IsEmpty() {
		return time.Time{}, c.permanent(op, "the password is empty")
	}
	body, err := bodyWithPassword(nil, pw.Bytes())
	if err != nil {
		return time.Time{}, c.permanent(op, err.Error())
	}
	hdr, err := c.do(ctx, op, http.MethodPatch, userPath(id), body, nil, pw.Bytes())
	wipe(body)
	if err != nil {
		return time.Time{}, err
	}

	fallback := time.Now().UTC().Truncate(time.Second)
	if d, err := http.ParseTime(hdr.Get("Date")); err == nil {
		fallback = d.UTC()
	}
	u, err := c.getUser(ctx, "read back password time of user "+id, id)
	switch {
	case err != nil:
		c.log.Debug("password set; read-back of lastPasswordChangeDateTime failed, using the PATCH response time",
			"id", id, "error", err)
	case u.LastPasswordChange.IsZero():
		c.log.Debug("password set; Graph returned no lastPasswordChangeDateTime, using the PATCH response time", "id", id)
	case u.LastPasswordChange.Before(fallback.Add(-readBackSlack)):
		c.log.Debug("password set; read-back lastPasswordChangeDateTime predates the change (replication), using the PATCH response time",
			"id", id, "read_back", u.LastPasswordChange)
	default:
		return u.LastPasswordChange, nil
	}
	return fallback, nil
}

// ---- HTTP plumbing ----------------------------------------------------------

// do runs one Graph call: token, request, classification. body may hold a
// password; the caller wipes it after do returns. secretBytes, when not
// nil, is scrubbed from any error text Graph sends back. On 2xx the JSON
// answer is decoded into out (if not nil) and the headers are returned.
func (c *Connector) do(ctx context.Context, op, method, path string, body []byte, out any, secretBytes []byte) (http.Header, error) {
	return c.exec(ctx, op, method, path, body, out, secretBytes, nil)
}

// exec is do with a hook: done, when not nil, sees every non-2xx Graph
// answer (after the 401 refresh) and may declare it a success — the
// idempotent no-ops of membership changes ("already a member", "not a
// member"). The headers are then returned with a nil error.
func (c *Connector) exec(ctx context.Context, op, method, path string, body []byte, out any, secretBytes []byte,
	done func(status int, ge *graphError) bool) (http.Header, error) {
	stale := ""
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx, stale)
		if err != nil {
			return nil, err
		}
		status, hdr, data, err := c.roundTrip(ctx, method, path, body, tok)
		if err != nil {
			return nil, c.transportError(ctx, op, "Microsoft Graph", err)
		}
		if status == http.StatusUnauthorized && attempt == 0 {
			// The token was revoked or expired early: fetch a new one,
			// once, and repeat the call.
			stale = tok
			c.log.Debug("Graph refused the token; fetching a new one", "op", op)
			continue
		}
		if status >= 200 && status < 300 {
			if out != nil && len(data) > 0 && status != http.StatusNoContent {
				if err := jsonUnmarshal(data, out); err != nil {
					return nil, &gsync.Error{Status: status, Message: fmt.Sprintf("%s: directory %q: unreadable answer from Graph: %v", op, c.name, err)}
				}
			}
			return hdr, nil
		}
		if done != nil {
			var ge graphError
			_ = jsonUnmarshal(data, &ge)
			if done(status, &ge) {
				return hdr, nil
			}
		}
		return nil, c.classify(op, status, hdr, data, secretBytes)
	}
}

// errTooLarge: the response exceeded MaxResponseBytes.
var errTooLarge = errors.New("response larger than 1 MiB")

func (c *Connector) roundTrip(ctx context.Context, method, path string, body []byte, tok string) (int, http.Header, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytesReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, c.graph+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gatewayd")
	req.Header.Set("client-request-id", newRequestID())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err == nil && len(data) > MaxResponseBytes {
		err = errTooLarge
	}
	c.log.Debug("graph call", "method", method, "path", req.URL.EscapedPath(), "status", resp.StatusCode,
		"duration", time.Since(start), "request_id", resp.Header.Get("request-id"))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, data, nil
}

// transportError turns a network failure, timeout or oversized answer
// into a transient error. When the caller's own context is done, its
// error (context.Canceled / DeadlineExceeded) is returned as is.
func (c *Connector) transportError(ctx context.Context, op, peer string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in op already
	}
	msg := fmt.Sprintf("%s: directory %q: cannot reach %s: %v", op, c.name, peer, err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("%s: directory %q: %s did not answer within %s", op, c.name, peer, c.timeout)
	case errors.Is(err, errTooLarge):
		msg = fmt.Sprintf("%s: directory %q: %s sent an answer larger than %d bytes", op, c.name, peer, MaxResponseBytes)
	}
	return &gsync.Error{Message: msg}
}

// token returns a bearer token, fetching one when there is none, it is
// about to expire, or it equals stale (Graph just refused it).
func (c *Connector) token(ctx context.Context, stale string) (string, error) {
	select {
	case c.tokLock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.tokLock }()

	now := time.Now()
	if t := c.tok; t != nil && t.AccessToken != stale && now.Before(t.Expiry.Add(-refreshMargin(t.Expiry.Sub(c.tokIssued)))) {
		return t.AccessToken, nil
	}
	tctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, c.hc), c.timeout)
	defer cancel()
	t, err := c.cc.Token(tctx)
	if err != nil {
		return "", c.tokenError(ctx, err)
	}
	if t.Expiry.IsZero() {
		// No expires_in: do not trust it for long.
		t.Expiry = now.Add(5 * time.Minute)
	}
	c.tok, c.tokIssued = t, now
	c.log.Debug("fetched a Graph token", "expires_in", time.Until(t.Expiry).Round(time.Second))
	return t.AccessToken, nil
}

// refreshMargin: renew a token a little before it expires, a tenth of its
// lifetime, at most a minute (Entra tokens live 60–90 minutes).
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(lifetime/10, time.Minute)
}

var aadstsRE = regexp.MustCompile(`AADSTS\d+`)

// tokenError classifies a failed token request. Credentials problems are
// permanent with a message that names the setting to fix.
func (c *Connector) tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	const op = "get a Graph access token"
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return c.transportError(ctx, op, "the Entra ID token endpoint", err)
	}
	status := 0
	var hdr http.Header
	if re.Response != nil {
		status, hdr = re.Response.StatusCode, re.Response.Header
	}
	code := re.ErrorCode
	aadsts := aadstsRE.FindString(re.ErrorDescription)
	said := firstLine(re.ErrorDescription)
	if said == "" {
		said = code
	}
	e := &gsync.Error{Status: status, Code: code}
	if aadsts != "" {
		e.Code = code + " " + aadsts
	}
	prefix := fmt.Sprintf("%s for directory %q: Entra ID said %q", op, c.name, said)
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		e.RetryAfter = gsync.ParseRetryAfter(hdr)
		e.Message = prefix + "; will retry"
		return e
	case aadsts == "AADSTS7000222":
		e.Message = prefix + ": the client secret has expired; create a new one under the app registration's Certificates & secrets and update client_secret"
	case code == "invalid_client" || aadsts == "AADSTS7000215":
		e.Message = prefix + ": check client_id and client_secret (client_secret must be the secret's Value, not its Secret ID, and must not have expired)"
	case aadsts == "AADSTS700016" || code == "unauthorized_client":
		e.Message = prefix + ": no application with this client_id in the tenant; check client_id and tenant_id"
	case aadsts == "AADSTS90002" || aadsts == "AADSTS900023" || aadsts == "AADSTS90013":
		e.Message = prefix + ": check tenant_id (the directory id GUID, or a verified domain of the tenant)"
	case code == "invalid_scope":
		e.Message = prefix + ": check graph_url (the token scope is graph_url + \"/.default\")"
	default:
		e.Message = prefix + ": check tenant_id, client_id and client_secret"
	}
	e.Permanent = true
	return e
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func (c *Connector) permanent(op, msg string) error {
	return &gsync.Error{Permanent: true, Message: fmt.Sprintf("%s: directory %q: %s", op, c.name, msg)}
}

// ---- names ------------------------------------------------------------------

func displayName(a gsync.Account) string {
	if s := strings.TrimSpace(a.DisplayName); s != "" {
		return s
	}
	if s := strings.TrimSpace(a.GivenName + " " + a.Surname); s != "" {
		return s
	}
	return localPart(a.UPN)
}

// mailNickname: Entra refuses @ ( ) \ [ ] " ; : < > , and spaces, and
// anything but ASCII, in a mail alias, 64 characters at most.
func mailNickname(a gsync.Account) string {
	src := a.MailNickname
	if src == "" {
		src = localPart(a.UPN)
	}
	return sanitizeNickname(src, "user")
}

// sanitizeNickname keeps the characters Entra accepts in a mailNickname
// (users and groups alike), at most 64; fallback when none is left.
func sanitizeNickname(src, fallback string) string {
	var b strings.Builder
	for _, r := range src {
		if r >= unicode.MaxASCII || r <= ' ' || strings.ContainsRune(`@()\[]";:<>,`, r) {
			continue
		}
		b.WriteRune(r)
		if b.Len() == 64 {
			break
		}
	}
	if b.Len() == 0 {
		return fallback
	}
	return b.String()
}

func localPart(upn string) string {
	if i := strings.LastIndexByte(upn, '@'); i >= 0 {
		return upn[:i]
	}
	return upn
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
