// Package fakegoogle is an in-process fake of Google's OAuth 2.0 token
// endpoint (the JWT-bearer grant a service account with domain-wide
// delegation uses) and of the Admin SDK Directory API v1 user, group and
// member endpoints, for tests. It is stateful and safe for concurrent use,
// speaks Google's JSON shapes (errors included), and has hooks to inject
// what Google does to a client: throttling (429 rateLimitExceeded),
// outages (503), latency, arbitrary faults, revoked tokens.
//
// The token endpoint verifies the JWT's RS256 signature with the public
// key of a registered service account, its issuer, audience and lifetime,
// that its scopes are granted by domain-wide delegation, and that its
// subject is the configured administrator. NewServiceAccountKey makes
// key files for tests, so no real credentials are ever needed.
//
// Passwords: the fake accepts a password only as a SHA-512 crypt ("$6$",
// at most 10,000 rounds) with hashFunction "crypt". A password sent any
// other way is refused with 400 and counted (PlaintextSeen), so a test
// can assert that the plaintext never left the client; Saw searches every
// raw request for a string. The request log keeps bodies with the
// password value removed.
package fakegoogle

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakehttp"
	"github.com/gatewayd/gatewayd/internal/sha512crypt"
)

// Defaults of a new fake.
const (
	ScopeUser        = "https://www.googleapis.com/auth/admin.directory.user"
	ScopeGroup       = "https://www.googleapis.com/auth/admin.directory.group"
	ScopeGroupMember = "https://www.googleapis.com/auth/admin.directory.group.member"

	DefaultAdmin          = "admin@example.com"
	DefaultDomain         = "example.com"
	DefaultCustomerID     = "C01fake42"
	DefaultServiceAccount = "gatewayd-sync@gatewayd-test.iam.gserviceaccount.com"
	DefaultClientID       = "109876543210987654321"
	// DefaultTokenLifetime is what Google issues (expires_in 3599).
	DefaultTokenLifetime = 3599 * time.Second
	// MaxCryptRounds is the most rounds the fake (like Google) accepts.
	MaxCryptRounds = 10000
)

// hashCrypt is Google's hashFunction for a crypt(3) password hash, the
// only kind of password the fake accepts.
const hashCrypt = "crypt"

// Path kinds for Count and Request.Kind.
const (
	KindToken   = "token"   // POST /token
	KindUsers   = "users"   // /admin/directory/v1/users (list, insert)
	KindUser    = "user"    // /admin/directory/v1/users/{key} (get, patch, update, delete)
	KindGroups  = "groups"  // /admin/directory/v1/groups (list, insert)
	KindGroup   = "group"   // /admin/directory/v1/groups/{key}
	KindMembers = "members" // /admin/directory/v1/groups/{key}/members (list, insert)
	KindMember  = "member"  // /admin/directory/v1/groups/{key}/members/{key} (get, delete)
	KindOther   = "other"
)

// RemovedPassword replaces password values in logged bodies.
const RemovedPassword = "[password removed by fakegoogle]"

// User is one account as the fake holds it.
type User struct {
	ID                        string
	PrimaryEmail              string
	Aliases                   []string
	GivenName                 string
	FamilyName                string
	Suspended                 bool
	IsAdmin                   bool
	ChangePasswordAtNextLogin bool
	OrgUnitPath               string
	CreationTime              time.Time
	// PasswordHash is the last password set, a "$6$" hash with
	// HashFunction "crypt"; empty when none is known.
	PasswordHash string
	HashFunction string
	// Fields holds the other fields set, as decoded JSON (organizations,
	// phones, addresses, externalIds, customSchemas, ...).
	Fields map[string]any
}

func (u User) clone() User {
	u.Aliases = append([]string(nil), u.Aliases...)
	if u.Fields != nil {
		b, _ := json.Marshal(u.Fields)
		u.Fields = nil
		_ = json.Unmarshal(b, &u.Fields)
	}
	return u
}

// Group is one group as the fake holds it.
type Group struct {
	ID           string
	Email        string
	Name         string
	Description  string
	AdminCreated bool
}

// Member is one membership.
type Member struct {
	ID     string // the member's user id
	Email  string
	Role   string // MEMBER, MANAGER, OWNER
	Type   string // USER
	Status string // ACTIVE
}

// Request is one logged request.
type Request struct {
	Time     time.Time
	Method   string
	Path     string // as sent, percent-encoding included
	RawQuery string
	Kind     string
	Status   int
	// HadPassword: the JSON body had a "password" field;
	// HashFunction is the body's hashFunction.
	HadPassword  bool
	HashFunction string
	// Body is the JSON body re-encoded (keys sorted) with the password
	// value replaced by RemovedPassword. Empty for token requests and
	// bodiless requests.
	Body string
}

// Fault makes the next Times matching calls fail with Status and Google's
// error body (Reason, Message); Kind KindToken targets the token endpoint
// (with OAuth's {"error": Reason, "error_description": Message}).
type Fault struct {
	Method     string // "" for any
	Kind       string // "" for any Directory call; KindToken for the token endpoint
	Times      int    // 0 means 1
	Status     int
	Reason     string
	Message    string
	RetryAfter time.Duration // sent as Retry-After (whole seconds) when > 0
}

// grant is what an access token allows.
type grant struct {
	scopes map[string]bool
	admin  bool // its subject is an administrator
}

// Server is the fake. Create with New, stop with Close.
type Server struct {
	ts     *httptest.Server
	clock  *fakehttp.Clock
	tokens *fakehttp.Tokens[grant]
	hooks  *fakehttp.Hooks
	log    fakehttp.Log[Request]

	// mu guards what follows; the fields above lock for themselves.
	mu         sync.Mutex
	admin      string
	customerID string
	domains    []string
	delegated  map[string]bool
	accounts   map[string]*account // service accounts by client_email
	saKey      []byte

	users     map[string]*User // by id
	userOrder []string
	byEmail   map[string]string // lower-case primary email or alias → id

	groups     map[string]*Group // by id
	groupOrder []string
	groupEmail map[string]string   // lower-case email → id
	members    map[string][]Member // group id → members in insertion order

	raw           []string // every request's path, query and body as received
	plaintextSeen int
	deleted       []string
	refusedFields map[string]bool // RefuseField: field → named in the error
}

// New starts a fake on a loopback port with the default service account
// (its key is ServiceAccountKey), admin subject, customer and domain.
func New() *Server {
	clock := &fakehttp.Clock{}
	s := &Server{
		clock:      clock,
		tokens:     fakehttp.NewTokens[grant](clock, "ya29.fake-", DefaultTokenLifetime),
		hooks:      fakehttp.NewHooks(clock, KindToken),
		admin:      DefaultAdmin,
		customerID: DefaultCustomerID,
		domains:    []string{DefaultDomain},
		delegated:  map[string]bool{ScopeUser: true, ScopeGroup: true},
		accounts:   map[string]*account{},
		users:      map[string]*User{},
		byEmail:    map[string]string{},
		groups:     map[string]*Group{},
		groupEmail: map[string]string{},
		members:    map[string][]Member{},
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	key, err := serviceAccountKeyJSON(defaultKey(), DefaultServiceAccount, DefaultClientID, "fakekeyid0001", s.TokenURL())
	if err != nil {
		panic("fakegoogle: " + err.Error())
	}
	if err := s.RegisterServiceAccount(key); err != nil {
		panic("fakegoogle: " + err.Error())
	}
	s.saKey = key
	return s
}

func (s *Server) now() time.Time { return s.clock.Now() }

// URL is the server's base URL.
func (s *Server) URL() string { return s.ts.URL }

// Endpoint is the Directory API root to give the client
// (option.WithEndpoint): URL() + "/".
func (s *Server) Endpoint() string { return s.ts.URL + "/" }

// TokenURL is the token endpoint, URL() + "/token".
func (s *Server) TokenURL() string { return s.ts.URL + "/token" }

// Close shuts the server down.
func (s *Server) Close() { s.ts.Close() }

// ServiceAccountKey is the JSON key file of the default service account,
// registered with the fake, token_uri pointing at it.
func (s *Server) ServiceAccountKey() []byte { return append([]byte(nil), s.saKey...) }

// SetAdminSubject sets the administrator a token's subject must be.
func (s *Server) SetAdminSubject(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admin = email
}

// AdminSubject is the accepted administrator.
func (s *Server) AdminSubject() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admin
}

// SetDelegatedScopes sets the scopes domain-wide delegation grants (by
// default the user and group scopes). A token request for any other
// scope answers 401 unauthorized_client, as Google does.
func (s *Server) SetDelegatedScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delegated = map[string]bool{}
	for _, sc := range scopes {
		s.delegated[sc] = true
	}
}

// SetCustomerID sets the customer id group listings accept (besides
// "my_customer").
func (s *Server) SetCustomerID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customerID = id
}

// CustomerID is the accepted customer id.
func (s *Server) CustomerID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.customerID
}

// SetDomains sets the customer's domains; a user or group email in
// another domain is refused ("Domain not found."). None accepts any.
func (s *Server) SetDomains(domains ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.domains = nil
	for _, d := range domains {
		s.domains = append(s.domains, strings.ToLower(d))
	}
}

// SetClock replaces time.Now for timestamps and token expiry.
func (s *Server) SetClock(now func() time.Time) { s.clock.Set(now) }

// SetTokenLifetime sets expires_in (at least a second) of new tokens.
func (s *Server) SetTokenLifetime(d time.Duration) { s.tokens.SetLifetime(d) }

// ExpireTokens revokes every token issued so far: the API answers 401
// until the client fetches a new one.
func (s *Server) ExpireTokens() { s.tokens.ExpireAll() }

// TokensIssued counts successful token requests.
func (s *Server) TokensIssued() int { return s.tokens.Issued() }

// Throttle makes the next n Directory calls answer 429 with Retry-After
// (whole seconds, at least 1) and Google's rateLimitExceeded error.
func (s *Server) Throttle(n int, retryAfter time.Duration) { s.hooks.Throttle(n, retryAfter) }

// SetDown makes every Directory call answer 503 (without Retry-After)
// until SetDown(false).
func (s *Server) SetDown(down bool) { s.hooks.SetDown(down) }

// Latency delays every Directory call (not token requests) by d.
func (s *Server) Latency(d time.Duration) { s.hooks.SetLatency(d) }

// Fail queues a fault; faults are consumed in order, each by the next
// matching request.
func (s *Server) Fail(f Fault) {
	s.hooks.Fail(fakehttp.Fault{Method: f.Method, Kind: f.Kind, Times: f.Times, Status: f.Status,
		Code: f.Reason, Message: f.Message, RetryAfter: f.RetryAfter})
}

// AddUser pre-creates an account (a takeover target). Missing ID,
// CreationTime and OrgUnitPath are filled in. It panics on an email
// already in use.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = newUserID()
	}
	if u.CreationTime.IsZero() {
		u.CreationTime = s.now().Add(-24 * time.Hour).UTC().Truncate(time.Millisecond)
	}
	if u.OrgUnitPath == "" {
		u.OrgUnitPath = "/"
	}
	for _, e := range append([]string{u.PrimaryEmail}, u.Aliases...) {
		if s.emailTaken(e) {
			panic("fakegoogle: AddUser: email already in use: " + e)
		}
	}
	c := u.clone()
	s.addUserLocked(&c)
	return c.clone()
}

func (s *Server) addUserLocked(u *User) {
	s.users[u.ID] = u
	s.userOrder = append(s.userOrder, u.ID)
	s.byEmail[strings.ToLower(u.PrimaryEmail)] = u.ID
	for _, a := range u.Aliases {
		s.byEmail[strings.ToLower(a)] = u.ID
	}
}

// emailTaken: a user, alias or group has this email. mu held.
func (s *Server) emailTaken(e string) bool {
	e = strings.ToLower(e)
	_, u := s.byEmail[e]
	_, g := s.groupEmail[e]
	return u || g
}

// Users is a snapshot of every account, sorted by primary email.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PrimaryEmail < out[j].PrimaryEmail })
	return out
}

// User returns one account by id, primary email or alias
// (case-insensitive).
func (s *Server) User(key string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookupUser(key)
	if u == nil {
		return User{}, false
	}
	return u.clone(), true
}

func (s *Server) lookupUser(key string) *User {
	if u, ok := s.users[key]; ok {
		return u
	}
	if id, ok := s.byEmail[strings.ToLower(key)]; ok {
		return s.users[id]
	}
	return nil
}

// PasswordMatches reports whether pw is the password last set on the
// account: it verifies the stored "$6$" hash against pw.
func (s *Server) PasswordMatches(key, pw string) bool {
	s.mu.Lock()
	u := s.lookupUser(key)
	var hash string
	if u != nil {
		hash = u.PasswordHash
	}
	s.mu.Unlock()
	return hash != "" && sha512crypt.Verify(hash, []byte(pw))
}

// PlaintextSeen counts requests that carried a password without
// hashFunction "crypt" (all refused with 400).
func (s *Server) PlaintextSeen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plaintextSeen
}

// Saw reports whether sub occurs in any request received so far, as
// received: path, query or body, token requests included.
func (s *Server) Saw(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.raw {
		if strings.Contains(r, sub) {
			return true
		}
	}
	return false
}

// DeletedUsers lists the ids of users deleted through the API.
func (s *Server) DeletedUsers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deleted...)
}

// AddGroup pre-creates a group (a takeover target). Missing ID and Email
// are filled in (the email from the name plus a random suffix, so two
// groups may share a name). It panics on an email already in use.
func (s *Server) AddGroup(g Group) Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.ID == "" {
		g.ID = newGroupID()
	}
	if g.Email == "" {
		dom := DefaultDomain
		if len(s.domains) > 0 {
			dom = s.domains[0]
		}
		g.Email = slug(g.Name) + "-" + newGroupID()[5:] + "@" + dom
	}
	if s.emailTaken(g.Email) {
		panic("fakegoogle: AddGroup: email already in use: " + g.Email)
	}
	c := g
	s.insertGroup(&c)
	return c
}

func (s *Server) insertGroup(g *Group) {
	s.groups[g.ID] = g
	s.groupOrder = append(s.groupOrder, g.ID)
	s.groupEmail[strings.ToLower(g.Email)] = g.ID
}

func slug(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	if s := strings.Trim(b.String(), "-"); s != "" {
		return s
	}
	return "group"
}

// Groups is a snapshot of every group in creation order.
func (s *Server) Groups() []Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Group, 0, len(s.groupOrder))
	for _, id := range s.groupOrder {
		out = append(out, *s.groups[id])
	}
	return out
}

// Group returns one group by id or email.
func (s *Server) Group(key string) (Group, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.lookupGroup(key)
	if g == nil {
		return Group{}, false
	}
	return *g, true
}

func (s *Server) lookupGroup(key string) *Group {
	if g, ok := s.groups[key]; ok {
		return g
	}
	if id, ok := s.groupEmail[strings.ToLower(key)]; ok {
		return s.groups[id]
	}
	return nil
}

// Members is a snapshot of a group's members (by group id or email), in
// insertion order; nil if there is no such group.
func (s *Server) Members(groupKey string) []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.lookupGroup(groupKey)
	if g == nil {
		return nil
	}
	return append([]Member{}, s.members[g.ID]...)
}

// MemberIDs is Members' user ids.
func (s *Server) MemberIDs(groupKey string) []string {
	var out []string
	for _, m := range s.Members(groupKey) {
		out = append(out, m.ID)
	}
	return out
}

// AddMember makes a user (by id or email) a MEMBER of a group (by id or
// email); false if either is missing. An existing membership is kept.
func (s *Server) AddMember(groupKey, userKey string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, u := s.lookupGroup(groupKey), s.lookupUser(userKey)
	if g == nil || u == nil {
		return false
	}
	if s.memberIndex(g.ID, u.ID) < 0 {
		s.members[g.ID] = append(s.members[g.ID], Member{ID: u.ID, Email: u.PrimaryEmail, Role: "MEMBER", Type: "USER", Status: "ACTIVE"})
	}
	return true
}

func (s *Server) memberIndex(groupID, userID string) int {
	for i, m := range s.members[groupID] {
		if m.ID == userID {
			return i
		}
	}
	return -1
}

// Requests is a copy of the request log.
func (s *Server) Requests() []Request { return s.log.Entries() }

// Count is how many requests of method and kind arrived (whatever their
// answer), e.g. Count("DELETE", KindUser), Count("POST", KindToken).
func (s *Server) Count(method, kind string) int { return s.log.Count(method, kind) }

// ResetLog clears the request log, the raw requests and the counters
// (not PlaintextSeen nor DeletedUsers).
func (s *Server) ResetLog() {
	s.log.Reset()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw = nil
}

// ---- HTTP -----------------------------------------------------------------------

const (
	maxBody       = 1 << 20
	directoryRoot = "/admin/directory/v1/"
)

// route returns the kind of a path and its unescaped segments under the
// Directory root.
func route(escapedPath string) (string, []string) {
	if escapedPath == "/token" {
		return KindToken, nil
	}
	rest, ok := strings.CutPrefix(escapedPath, directoryRoot)
	if !ok {
		return KindOther, nil
	}
	raw := strings.Split(rest, "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		v, err := url.PathUnescape(r)
		if err != nil || v == "" {
			return KindOther, nil
		}
		segs[i] = v
	}
	switch {
	case len(segs) == 1 && segs[0] == "users":
		return KindUsers, segs
	case len(segs) == 2 && segs[0] == "users":
		return KindUser, segs
	case len(segs) == 1 && segs[0] == "groups":
		return KindGroups, segs
	case len(segs) == 2 && segs[0] == "groups":
		return KindGroup, segs
	case len(segs) == 3 && segs[0] == "groups" && segs[2] == "members":
		return KindMembers, segs
	case len(segs) == 4 && segs[0] == "groups" && segs[2] == "members":
		return KindMember, segs
	}
	return KindOther, segs
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	kind, segs := route(r.URL.EscapedPath())
	entry := Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Kind: kind}
	entry.Status = fakehttp.Serve(w, r, maxBody, func(w http.ResponseWriter, body []byte, err error) {
		s.mu.Lock()
		s.raw = append(s.raw, r.URL.EscapedPath()+"?"+r.URL.RawQuery+"\n"+string(body))
		s.mu.Unlock()
		switch {
		case errors.Is(err, fakehttp.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, "badRequest", "Request too large.")
		case err != nil:
			writeError(w, http.StatusBadRequest, "badRequest", "Cannot read the request body.")
		case kind == KindToken:
			s.serveToken(w, r, body)
		default:
			entry.HadPassword, entry.HashFunction, entry.Body = redactBody(body)
			s.serveDirectory(w, r, kind, segs, body)
		}
	})
	entry.Time = s.now()
	s.log.Add(r.Method, kind, entry)
}

// redactBody returns whether a JSON body has a password, its
// hashFunction, and the body with the password value replaced.
func redactBody(body []byte) (bool, string, string) {
	if len(body) == 0 {
		return false, "", ""
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return false, "", "(unparseable body, not logged)"
	}
	_, had := m["password"]
	if had {
		m["password"] = RemovedPassword
	}
	hf, _ := m["hashFunction"].(string)
	out, _ := json.Marshal(m)
	return had, hf, string(out)
}

// googleError is the Directory API's error body.
func googleError(status int, reason, message string) map[string]any {
	st := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
		404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED",
		500: "INTERNAL", 503: "UNAVAILABLE"}[status]
	domain := "global"
	if reason == "rateLimitExceeded" || reason == "userRateLimitExceeded" || reason == "quotaExceeded" {
		domain = "usageLimits"
	}
	e := map[string]any{
		"code":    status,
		"message": message,
		"errors":  []map[string]any{{"message": message, "domain": domain, "reason": reason}},
	}
	if st != "" {
		e["status"] = st
	}
	return map[string]any{"error": e}
}

func writeError(w http.ResponseWriter, status int, reason, message string) {
	errResp(status, reason, message).Write(w)
}

// newUserID is a 21-digit id like Google's.
func newUserID() string {
	var b [21]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	b[0] = '1'
	return string(b[:])
}

// newGroupID is a 15-character id like Google's ("03rdcrjn...").
func newGroupID() string {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [15]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alpha[int(b[i])%len(alpha)]
	}
	b[0] = '0'
	return string(b[:])
}
