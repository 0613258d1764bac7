// Package google is the Google Workspace connector: it implements
// sync.Connector and sync.GroupConnector over the Admin SDK Directory API
// v1 (google.golang.org/api/admin/directory/v1), authenticated as a
// service account with domain-wide delegation that acts as an
// administrator of the domain (SPEC 4.1–4.4).
//
// The connector classifies every failure (sync.ErrNotFound, or a
// *sync.Error that says whether to retry and how long to wait) but never
// retries or sleeps itself: the engine owns retries and backoff (SPEC
// 4.8). The single exception is a 401 from the Directory API, answered by
// fetching a new token once and repeating the call. The generated client
// does not retry either: every admin/directory/v1 call goes through
// gensupport.SendRequest, which sends once (only the Cloud Storage client
// uses the retrying sender), and the HTTP client given to it carries no
// retrying transport.
//
// Passwords never leave the host in clear: Google accepts a password as a
// crypt(3) hash (hashFunction "crypt"), so the connector sends a SHA-512
// crypt ("$6$") hash with a fresh random salt. The plaintext
// (secret.String) is only read by the hash function; it never reaches a
// request, a log line or an error message.
package google

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/jwt"
	admin "google.golang.org/api/admin/directory/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/gatewayd/gatewayd/internal/sha512crypt"
	"github.com/gatewayd/gatewayd/secret"
	gsync "github.com/gatewayd/gatewayd/sync"
)

// Scopes the service account must be granted by domain-wide delegation.
const (
	ScopeUser  = admin.AdminDirectoryUserScope  // https://www.googleapis.com/auth/admin.directory.user
	ScopeGroup = admin.AdminDirectoryGroupScope // https://www.googleapis.com/auth/admin.directory.group
)

// Defaults for Config.
const (
	DefaultEndpoint   = "https://admin.googleapis.com/"
	DefaultCustomerID = "my_customer"
	DefaultTimeout    = 15 * time.Second

	// MaxResponseBytes caps what the connector reads from one Directory
	// API response; a page of 200 groups or members is well under it.
	MaxResponseBytes = 4 << 20

	// HashFunction is what Google calls a crypt(3) password hash.
	HashFunction = "crypt"

	// directoryPath is where the generated client puts every call under
	// the endpoint.
	directoryPath = "admin/directory/v1/"
)

// Config is one [[directory]] block of type "google".
type Config struct {
	// Name is the directory's name in the configuration; it appears in
	// error messages and logs.
	Name string
	// CustomerID is the Google Workspace customer id (Admin console >
	// Account > Account settings, e.g. C01abc234); default "my_customer",
	// the admin subject's own account. Used to list groups.
	CustomerID string
	// AdminSubject is the administrator the service account acts as
	// (domain-wide delegation): a super admin's, or a delegated admin
	// with user and group privileges, primary email.
	AdminSubject string
	// CredentialsJSON is the service account's JSON key, read by the
	// caller from credentials_file.
	CredentialsJSON []byte
	// Domain is the domain of the email addresses of the groups the
	// connector creates (<mail nickname>@Domain): the directory's
	// default_domain, else its first domain. Default: AdminSubject's
	// domain.
	Domain string
	// Endpoint overrides the Directory API root (default
	// https://admin.googleapis.com/); calls go to
	// {Endpoint}admin/directory/v1/... An endpoint given with the
	// /admin/directory/v1/ suffix is accepted too.
	Endpoint string
	// TokenURL overrides the key file's token_uri (tests).
	TokenURL string
	// HTTPClient, when set, carries every request (token and API); its
	// Transport is used underneath the connector's token handling. The
	// default client uses TLS 1.2+ and does not follow redirects.
	HTTPClient *http.Client
	// Timeout bounds each call (token request included); default 15 s.
	// The caller's context bounds the whole method.
	Timeout time.Duration
	// Logger receives debug lines (method, path, status, duration); never
	// a password, a hash or a token. Default: discard.
	Logger *slog.Logger
}

// Connector talks to one Google Workspace customer. It is safe for
// concurrent use.
type Connector struct {
	name     string
	customer string
	subject  string
	domain   string
	// saClientID is the service account's OAuth client ID (the one
	// domain-wide delegation is granted to), for error messages.
	saClientID string
	svc        *admin.Service
	jwt        *jwt.Config
	base       http.RoundTripper // under the token handling
	timeout    time.Duration
	log        *slog.Logger

	tokens *tokenCache
}

var (
	_ gsync.Connector      = (*Connector)(nil)
	_ gsync.GroupConnector = (*Connector)(nil)
)

// serviceAccountKey is the part of the JSON key New checks itself.
type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	ClientID     string `json:"client_id"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// New checks cfg and builds a connector. It makes no network call: the
// first token is fetched by the first method call.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	name := cfg.Name
	if name == "" {
		name = "google"
	}
	fail := func(format string, a ...any) (*Connector, error) {
		return nil, fmt.Errorf("google directory %q: %s", name, fmt.Sprintf(format, a...))
	}
	subject := strings.TrimSpace(cfg.AdminSubject)
	if !plausibleEmail(subject) {
		return fail("admin_subject must be the primary email of an administrator of the domain, got %q", cfg.AdminSubject)
	}
	customer := strings.TrimSpace(cfg.CustomerID)
	if customer == "" {
		customer = DefaultCustomerID
	}
	if strings.ContainsAny(customer, "/?#&= \t\r\n") {
		return fail("customer_id %q is not a customer id (Admin console > Account > Account settings, e.g. C01abc234)", customer)
	}
	domain := strings.ToLower(strings.TrimSpace(cfg.Domain))
	if domain == "" {
		domain = strings.ToLower(subject[strings.LastIndexByte(subject, '@')+1:])
	}
	if !plausibleEmail("x@" + domain) {
		return fail("domain %q is not a domain name", cfg.Domain)
	}

	if len(cfg.CredentialsJSON) == 0 {
		return fail("credentials_file is empty: it must hold the service account's JSON key")
	}
	var key serviceAccountKey
	if err := json.Unmarshal(cfg.CredentialsJSON, &key); err != nil {
		return fail("credentials_file is not a JSON key file: %v", jsonErr(err))
	}
	if key.Type != "service_account" {
		return fail("credentials_file holds a key of type %q: create a key for a service account (Google Cloud console > IAM & Admin > Service accounts > Keys > Add key > JSON)", key.Type)
	}
	if !plausibleEmail(key.ClientEmail) {
		return fail("credentials_file has no client_email")
	}
	if err := checkPrivateKey(key.PrivateKey); err != nil {
		return fail("credentials_file: private_key: %v", err)
	}
	jc, err := google.JWTConfigFromJSON(cfg.CredentialsJSON, ScopeUser, ScopeGroup)
	if err != nil {
		return fail("credentials_file: %v", jsonErr(err))
	}
	jc.Subject = subject
	if cfg.TokenURL != "" {
		jc.TokenURL = cfg.TokenURL
	}
	if _, err := checkURL(jc.TokenURL); err != nil {
		return fail("token URL: %v", err)
	}

	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := checkURL(endpoint)
	if err != nil {
		return fail("endpoint: %v", err)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/"+strings.TrimSuffix(directoryPath, "/")) + "/"
	endpoint = u.String()

	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("directory", name, "type", "google")

	c := &Connector{
		name:       name,
		customer:   customer,
		subject:    subject,
		domain:     domain,
		saClientID: key.ClientID,
		jwt:        jc,
		timeout:    timeout,
		log:        log,
		tokens:     newTokenCache(),
	}
	hc := defaultHTTPClient()
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	c.base = hc.Transport
	if c.base == nil {
		c.base = http.DefaultTransport
	}
	hc.Transport = &authTransport{c: c}
	if hc.CheckRedirect == nil {
		hc.CheckRedirect = noRedirect
	}

	svc, err := admin.NewService(ctx,
		option.WithHTTPClient(hc),
		option.WithEndpoint(endpoint),
		// The generated client logs request bodies at debug level when
		// GOOGLE_SDK_GO_LOGGING_LEVEL says so; they carry password
		// hashes. Keep it silent whatever the environment.
		option.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return fail("cannot build the Directory API client: %v", err)
	}
	svc.UserAgent = "gatewayd"
	c.svc = svc
	return c, nil
}

// Name is the directory's configured name.
func (c *Connector) Name() string { return c.name }

// Domain is the domain of the groups the connector creates.
func (c *Connector) Domain() string { return c.domain }

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.TLSClientConfig = newTLSConfig()
	// A redirect from Google is unexpected; following it could carry the
	// bearer token elsewhere.
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}
}

// checkURL accepts https, or http to a loopback address (tests, a local
// proxy); no credentials, query or fragment.
func checkURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q must be scheme://host[/path], without credentials, query or fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%q: plain http is only allowed to a loopback address", s)
		}
	default:
		return nil, fmt.Errorf("%q: scheme must be https", s)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func plausibleEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return false
	}
	dom := s[at+1:]
	if strings.HasPrefix(dom, ".") || strings.HasSuffix(dom, ".") || strings.Contains(dom, "..") {
		return false
	}
	return !strings.ContainsAny(s, " \t\r\n/?#\"<>()[]\\,;:")
}

// checkPrivateKey parses the key's PEM as x/oauth2 will (PKCS #8 or
// PKCS #1 RSA), so a broken key file fails at start, not at the first
// sync.
func checkPrivateKey(p string) error {
	if strings.TrimSpace(p) == "" {
		return errors.New("missing")
	}
	blk, _ := pem.Decode([]byte(p))
	if blk == nil {
		return errors.New("not a PEM block (the key file may have been edited or truncated)")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); !ok {
			return errors.New("not an RSA key")
		}
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
		return errors.New("not a PKCS #8 or PKCS #1 RSA private key")
	}
	return nil
}

// jsonErr keeps encoding/json's message but never the input.
func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("JSON syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q has the wrong type", te.Field)
	}
	return err
}

// call bounds one API call with the per-call timeout.
func (c *Connector) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// ---- users ----------------------------------------------------------------------

// userFields is the partial response every user call asks for.
const userFields googleapi.Field = "id,primaryEmail,suspended"

func remote(u *admin.User) *gsync.RemoteUser {
	return &gsync.RemoteUser{ID: u.Id, UPN: u.PrimaryEmail, Enabled: !u.Suspended}
}

// LookupUser reads an account by its primary email. Google also answers
// for an alias; an account found through an alias is not the one asked
// for, and taking it over would be wrong, so that is a permanent error.
func (c *Connector) LookupUser(ctx context.Context, upn string) (*gsync.RemoteUser, error) {
	upn = strings.TrimSpace(upn)
	op := "look up user " + upn
	if upn == "" {
		return nil, c.permanent("look up user", "the user principal name is empty")
	}
	if !plausibleEmail(upn) {
		return nil, c.permanent(op, "the user principal name is not an email address")
	}
	u, err := c.getUser(ctx, op, upn)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(u.PrimaryEmail, upn) {
		return nil, c.permanent(op, fmt.Sprintf("%s is an alias of the Google account %s (id %s), not an account of its own: "+
			"remove the alias in the Admin console, or change the user's email", upn, u.PrimaryEmail, u.Id))
	}
	return remote(u), nil
}

// GetUser reads an account by its id.
func (c *Connector) GetUser(ctx context.Context, id string) (*gsync.RemoteUser, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, c.permanent("read user", "the user id is empty")
	}
	u, err := c.getUser(ctx, "read user "+id, id)
	if err != nil {
		return nil, err
	}
	return remote(u), nil
}

func (c *Connector) getUser(ctx context.Context, op, key string) (*admin.User, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	u, err := c.svc.Users.Get(key).Fields(userFields).Context(cctx).Do()
	if err != nil {
		return nil, c.classify(ctx, op, err, kindGet)
	}
	if u.Id == "" {
		return nil, c.permanent(op, "Google answered without a user id")
	}
	return u, nil
}

// CreateUser creates the account (SPEC 4.1): primaryEmail = the UPN,
// suspended for a staged user, the password as a SHA-512 crypt hash (pw,
// or when empty a random password nobody knows: the first login pushes
// the real one), changePasswordAtNextLogin false, the mapped attributes
// and the manager relation. Attributes Google refuses are left out (see
// writeUser) and reported with the created account in
// *sync.AttributesRefused.
func (c *Connector) CreateUser(ctx context.Context, a gsync.Account, pw secret.String) (*gsync.RemoteUser, error) {
	upn := strings.TrimSpace(a.UPN)
	op := "create user " + upn
	if upn == "" {
		return nil, c.permanent("create user", "the user principal name is empty")
	}
	if !plausibleEmail(upn) {
		return nil, c.permanent(op, "the user principal name is not an email address")
	}
	var hash string
	var err error
	if pw.IsEmpty() {
		hash, err = randomPasswordHash()
	} else {
		hash, err = sha512crypt.Hash(pw.Bytes())
	}
	if err != nil {
		return nil, c.permanent(op, "cannot hash the password: "+err.Error())
	}
	given, family := userNames(a)
	w, refused := newAttrWrite(a, false)
	var got *admin.User
	r, rest, err := c.writeUser(ctx, op, w, func(cctx context.Context, w attrWrite) error {
		u := &admin.User{
			PrimaryEmail:              upn,
			Name:                      &admin.UserName{GivenName: given, FamilyName: family},
			Suspended:                 !a.Enabled,
			Password:                  hash,
			HashFunction:              HashFunction,
			ChangePasswordAtNextLogin: false,
			ForceSendFields:           []string{"Suspended", "ChangePasswordAtNextLogin"},
		}
		w.apply(u)
		var err error
		got, err = c.svc.Users.Insert(u).Fields(userFields).Context(cctx).Do()
		return err
	}, kindCreate)
	if err != nil {
		return nil, err
	}
	refused = append(refused, r...)
	if got.Id == "" {
		return nil, c.permanent(op, "Google answered without a user id")
	}
	ru := remote(got)
	if ru.UPN == "" {
		ru.UPN = upn
	}
	if !rest.empty() {
		r, err := c.patchEach(ctx, op, got.Id, rest)
		if err != nil {
			return nil, err // the engine's next attempt finds and takes it over
		}
		refused = append(refused, r...)
	}
	return ru, refusedError(refused)
}

// UpdateUser pushes the user's names, primary email, mapped attributes
// and manager relation (SPEC 4.2). Google requires a first and a last
// name, so missing ones are derived (see README). suspended is
// SetEnabled's business. Attributes Google refuses are left out and
// reported in *sync.AttributesRefused; the rest is applied.
func (c *Connector) UpdateUser(ctx context.Context, id string, a gsync.Account) error {
	id = strings.TrimSpace(id)
	op := "update user " + id
	if id == "" {
		return c.permanent("update user", "the user id is empty")
	}
	given, family := userNames(a)
	upn := strings.TrimSpace(a.UPN)
	if upn != "" && !plausibleEmail(upn) {
		return c.permanent(op, "the user principal name is not an email address")
	}
	w, refused := newAttrWrite(a, true)
	r, rest, err := c.writeUser(ctx, op, w, func(cctx context.Context, w attrWrite) error {
		u := &admin.User{Name: &admin.UserName{GivenName: given, FamilyName: family}, PrimaryEmail: upn}
		w.apply(u)
		_, err := c.svc.Users.Patch(id, u).Fields(userFields).Context(cctx).Do()
		return err
	}, kindUpdate)
	if err != nil {
		return err
	}
	refused = append(refused, r...)
	if !rest.empty() {
		r, err := c.patchEach(ctx, op, id, rest)
		if err != nil {
			return err
		}
		refused = append(refused, r...)
	}
	return refusedError(refused)
}

// writeUser runs send with w, and again without what Google refuses:
// the property or field its message names, or, when it names none, every
// attribute, which are then returned in rest to be set one field at a
// time. At most one call per property, plus one. err is the account's
// own failure, classified.
func (c *Connector) writeUser(ctx context.Context, op string, w attrWrite, send func(context.Context, attrWrite) error, kind callKind) (
	refused []gsync.AttributeError, rest attrWrite, err error) {
	rest = attrWrite{}
	for {
		cctx, cancel := c.call(ctx)
		err = send(cctx, w)
		cancel()
		if err == nil {
			return refused, rest, nil
		}
		props, said, ok := refusedProps(err, w)
		if !ok {
			return nil, rest, c.classify(ctx, op, err, kind)
		}
		if props == nil {
			rest, w = w, attrWrite{}
			continue
		}
		for _, p := range props {
			refused = append(refused, gsync.AttributeError{Name: p, Message: said})
		}
		w = w.without(props)
	}
}

// patchEach sets the fields of rest one PATCH each, for when Google
// refused a write without naming the field; a field refused is reported
// for each of its properties.
func (c *Connector) patchEach(ctx context.Context, op, id string, rest attrWrite) ([]gsync.AttributeError, error) {
	var refused []gsync.AttributeError
	for _, g := range rest.groups() {
		one := rest.only(g)
		u := &admin.User{}
		one.apply(u)
		cctx, cancel := c.call(ctx)
		_, err := c.svc.Users.Patch(id, u).Fields(userFields).Context(cctx).Do()
		cancel()
		if err == nil {
			continue
		}
		if _, said, ok := refusedProps(err, one); ok {
			for _, p := range one.props() {
				refused = append(refused, gsync.AttributeError{Name: p, Message: said})
			}
			continue
		}
		return refused, c.classify(ctx, op+" ("+g+")", err, kindUpdate)
	}
	return refused, nil
}

// SetEnabled sets suspended (true to block sign-in). false is sent
// explicitly (the generated client drops false unless forced). It never
// deletes (SPEC 4.3).
func (c *Connector) SetEnabled(ctx context.Context, id string, enabled bool) error {
	id = strings.TrimSpace(id)
	op := "suspend user " + id
	if enabled {
		op = "unsuspend user " + id
	}
	if id == "" {
		return c.permanent(op, "the user id is empty")
	}
	return c.patch(ctx, op, id, &admin.User{Suspended: !enabled, ForceSendFields: []string{"Suspended"}})
}

// SetPassword pushes pw as a SHA-512 crypt hash (hashFunction "crypt",
// changePasswordAtNextLogin false). Google reports no password change
// time, so it returns the zero time.
func (c *Connector) SetPassword(ctx context.Context, id string, pw secret.String) (time.Time, error) {
	id = strings.TrimSpace(id)
	op := "set password of user " + id
	if id == "" {
		return time.Time{}, c.permanent("set password", "the user id is empty")
	}
	if pw.IsEmpty() {
		return time.Time{}, c.permanent(op, "the password is empty")
	}
	hash, err := sha512crypt.Hash(pw.Bytes())
	if err != nil {
		return time.Time{}, c.permanent(op, "cannot hash the password: "+err.Error())
	}
	u := &admin.User{
		Password:                  hash,
		HashFunction:              HashFunction,
		ChangePasswordAtNextLogin: false,
		ForceSendFields:           []string{"ChangePasswordAtNextLogin"},
	}
	return time.Time{}, c.patch(ctx, op, id, u)
}

func (c *Connector) patch(ctx context.Context, op, id string, u *admin.User) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.svc.Users.Patch(id, u).Fields(userFields).Context(cctx).Do()
	if err != nil {
		return c.classify(ctx, op, err, kindUpdate)
	}
	return nil
}

// randomPasswordHash hashes 32 random bytes (as 43 base-64 characters),
// a password nobody knows, for an account created before the user's
// first login.
func randomPasswordHash() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("crypto/rand: %v", err)
	}
	pw := make([]byte, base64.RawURLEncoding.EncodedLen(len(raw)))
	base64.RawURLEncoding.Encode(pw, raw[:])
	clear(raw[:])
	h, err := sha512crypt.Hash(pw)
	clear(pw)
	return h, err
}
