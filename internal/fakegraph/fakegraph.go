// Package fakegraph is an in-process fake of the Microsoft identity
// platform token endpoint and of the Microsoft Graph v1.0 user, group and
// group-membership endpoints, for tests. It is stateful and safe for concurrent use, speaks Graph's
// documented JSON shapes (errors included), and has hooks to inject what
// a real tenant does to a client: throttling, outages, replication delay,
// on-premises mastered users, remote password changes, revoked tokens.
//
// It never stores a user's password: only a salted hash, so a test can
// ask PasswordMatches. The request log keeps bodies with the password
// value removed.
package fakegraph

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
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
)

// Defaults for the app registration the token endpoint accepts.
const (
	DefaultTenant       = "7a1c2f3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b"
	DefaultClientID     = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"
	DefaultClientSecret = "fake~Client.Secret-Value_0123456789"
	// GraphScope is the documented client-credentials scope. The token
	// endpoint also accepts URL()+"/.default" (a connector whose
	// graph_url points at the fake).
	GraphScope = "https://graph.microsoft.com/.default"
	// DefaultTokenLifetime is what Entra commonly issues (expires_in 3599).
	DefaultTokenLifetime = 3599 * time.Second
)

// Path kinds for Count and Request.Kind.
const (
	KindToken = "token" // POST /{tenant}/oauth2/v2.0/token
	KindUsers = "users" // /v1.0/users (list, create)
	KindUser  = "user"  // /v1.0/users/{id|upn} (get, patch, delete)
	// KindGroups is /v1.0/groups (list with $filter, create).
	KindGroups = "groups"
	// KindGroup is /v1.0/groups/{id} (get).
	KindGroup = "group"
	// KindMembers is GET /v1.0/groups/{id}/members[/microsoft.graph.user].
	KindMembers = "members"
	// KindMemberRef is POST /v1.0/groups/{id}/members/$ref and
	// DELETE /v1.0/groups/{id}/members/{uid}/$ref.
	KindMemberRef = "memberref"
	KindOther     = "other" // anything else
)

// User is one account as the fake holds it.
type User struct {
	ID                            string
	UserPrincipalName             string
	DisplayName                   string
	MailNickname                  string
	GivenName                     string
	Surname                       string
	AccountEnabled                bool
	CreatedDateTime               time.Time
	LastPasswordChangeDateTime    time.Time
	ForceChangePasswordNextSignIn bool
	OnPremisesSyncEnabled         bool
	// Attributes holds the other properties set (jobTitle, department,
	// businessPhones as []string, ...).
	Attributes map[string]any
	// ManagerID is the object id of the user's manager (the manager
	// relationship, set with PUT manager/$ref); "" for none.
	ManagerID string
}

func (u User) clone() User {
	if u.Attributes != nil {
		m := make(map[string]any, len(u.Attributes))
		for k, v := range u.Attributes {
			if s, ok := v.([]string); ok {
				v = append([]string(nil), s...)
			}
			m[k] = v
		}
		u.Attributes = m
	}
	return u
}

// Request is one logged request.
type Request struct {
	Time     time.Time
	Method   string
	Path     string // as sent, percent-encoding included
	RawQuery string
	Kind     string
	Status   int
	// HadPasswordProfile: the JSON body of a POST or PATCH had a
	// passwordProfile.
	HadPasswordProfile bool
	// Body is the JSON body with passwordProfile.password replaced by
	// RemovedPassword (re-encoded, keys sorted). Empty for token requests
	// (they carry the client secret) and bodiless requests.
	Body string
}

// RemovedPassword replaces passwords in logged bodies.
const RemovedPassword = "[password removed by fakegraph]"

// Fault makes the next Times matching Graph calls (or token requests,
// with Kind KindToken) fail with Status and a Graph error body.
type Fault struct {
	Method     string // "" for any
	Kind       string // "" for any Graph call; KindToken for the token endpoint
	Times      int    // 0 means 1
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // sent as Retry-After (whole seconds) when > 0
}

type user struct {
	User
	hasPW  bool
	pwSalt [16]byte
	pwHash [32]byte
}

// Server is the fake. Create with New, stop with Close.
type Server struct {
	ts     *httptest.Server
	clock  *fakehttp.Clock
	tokens *fakehttp.Tokens[struct{}] // a client-credentials token grants everything
	hooks  *fakehttp.Hooks
	log    fakehttp.Log[Request]

	// mu guards what follows; the fields above lock for themselves.
	mu           sync.Mutex
	tenant       string
	clientID     string
	clientSecret string
	users        map[string]*user // by id
	order        []string         // ids, creation order (listing)
	byUPN        map[string]string
	replDelay    time.Duration
	denyWrites   bool
	domains      []string
	groups       map[string]*Group // by id
	groupOrder   []string          // ids, creation order (listing)
	maxPage      int               // 0: as asked by $top
	refused      map[string]bool   // RefuseProperty: property → named in the error
}

// New starts a fake on a loopback port with the default credentials.
func New() *Server {
	clock := &fakehttp.Clock{}
	s := &Server{
		clock:        clock,
		tokens:       fakehttp.NewTokens[struct{}](clock, "fake.", DefaultTokenLifetime),
		hooks:        fakehttp.NewHooks(clock, KindToken),
		tenant:       DefaultTenant,
		clientID:     DefaultClientID,
		clientSecret: DefaultClientSecret,
		users:        map[string]*user{},
		byUPN:        map[string]string{},
		groups:       map[string]*Group{},
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

func (s *Server) now() time.Time { return s.clock.Now() }

// URL is the base URL for both the authority and Graph
// (authority_url = graph_url = URL()).
func (s *Server) URL() string { return s.ts.URL }

// Close shuts the server down.
func (s *Server) Close() { s.ts.Close() }

// SetCredentials sets the tenant id, client id and client secret the
// token endpoint accepts.
func (s *Server) SetCredentials(tenant, clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenant, s.clientID, s.clientSecret = tenant, clientID, secret
}

// Credentials returns the accepted tenant id, client id and secret.
func (s *Server) Credentials() (tenant, clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenant, s.clientID, s.clientSecret
}

// SetClock replaces time.Now for timestamps, token expiry, replication
// delay and outages (not for Latency, which sleeps).
func (s *Server) SetClock(now func() time.Time) { s.clock.Set(now) }

// SetTokenLifetime sets the lifetime (expires_in, whole seconds, at least
// one) of tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) { s.tokens.SetLifetime(d) }

// ExpireTokens makes every token issued so far expired: Graph answers 401
// InvalidAuthenticationToken until the client fetches a new one.
func (s *Server) ExpireTokens() { s.tokens.ExpireAll() }

// TokensIssued counts successful token requests.
func (s *Server) TokensIssued() int { return s.tokens.Issued() }

// Throttle makes the next n Graph calls answer 429 TooManyRequests with
// Retry-After (whole seconds, at least 1).
func (s *Server) Throttle(n int, retryAfter time.Duration) { s.hooks.Throttle(n, retryAfter) }

// Outage makes Graph answer 503 for d, with Retry-After the time left.
func (s *Server) Outage(d time.Duration) { s.hooks.Outage(d) }

// SetDown makes Graph answer 503 (Retry-After: 5) until SetDown(false).
func (s *Server) SetDown(down bool) { s.hooks.SetDown(down) }

// ReplicationDelay: a GET of a user created less than d ago answers 404
// Request_ResourceNotFound, as a replica that has not seen it yet would.
func (s *Server) ReplicationDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replDelay = d
}

// Latency delays every Graph call (not token requests) by d.
func (s *Server) Latency(d time.Duration) { s.hooks.SetLatency(d) }

// Fail queues a fault; faults are consumed in order, each by the next
// matching request.
func (s *Server) Fail(f Fault) { s.hooks.Fail(fakehttp.Fault(f)) }

// DenyWrites makes every POST, PATCH and DELETE answer 403
// Authorization_RequestDenied, as for an app without User.ReadWrite.All
// or without the User Administrator role.
func (s *Server) DenyWrites(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyWrites = deny
}

// SetDomains sets the tenant's verified domains; a userPrincipalName in
// another domain is refused. None (the default) accepts any domain.
func (s *Server) SetDomains(domains ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.domains = nil
	for _, d := range domains {
		s.domains = append(s.domains, strings.ToLower(d))
	}
}

// AddUser pre-creates an account (a takeover target). Missing ID,
// MailNickname, DisplayName and CreatedDateTime are filled in; the
// account has no known password. It panics on a duplicate UPN.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = newUUID()
	}
	if u.MailNickname == "" {
		u.MailNickname, _, _ = strings.Cut(u.UserPrincipalName, "@")
	}
	if u.DisplayName == "" {
		u.DisplayName = u.MailNickname
	}
	if u.CreatedDateTime.IsZero() {
		// Older than any replication delay.
		u.CreatedDateTime = s.now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	}
	if _, dup := s.byUPN[strings.ToLower(u.UserPrincipalName)]; dup {
		panic("fakegraph: AddUser: duplicate userPrincipalName " + u.UserPrincipalName)
	}
	u = u.clone()
	s.insert(&user{User: u})
	return u.clone()
}

func (s *Server) insert(u *user) {
	s.users[u.ID] = u
	s.order = append(s.order, u.ID)
	s.byUPN[strings.ToLower(u.UserPrincipalName)] = u.ID
}

// SetPassword is a remote password change (the user changed it in
// Microsoft 365): lastPasswordChangeDateTime moves to now, strictly later
// than before, and PasswordMatches is false for every password until the
// next push. It returns the new time; false if there is no such user.
func (s *Server) SetPassword(upn string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(upn)
	if u == nil {
		return time.Time{}, false
	}
	u.hasPW = false
	u.LastPasswordChangeDateTime = s.nextPasswordTime(u)
	return u.LastPasswordChangeDateTime, true
}

// nextPasswordTime is now to the second (Graph's precision), and strictly
// after the previous change so that tests can tell changes apart.
func (s *Server) nextPasswordTime(u *user) time.Time {
	t := s.now().UTC().Truncate(time.Second)
	if !t.After(u.LastPasswordChangeDateTime) && !u.LastPasswordChangeDateTime.IsZero() {
		t = u.LastPasswordChangeDateTime.Add(time.Second)
	}
	return t
}

// SetOnPremMastered marks a user as synchronised from on-premises AD: a
// password PATCH answers 403 and any other PATCH 400, both with Graph's
// "on-premises mastered Directory Sync objects" message.
func (s *Server) SetOnPremMastered(upn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(upn)
	if u == nil {
		return false
	}
	u.OnPremisesSyncEnabled = true
	return true
}

// Users is a snapshot of every account, sorted by UPN.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserPrincipalName < out[j].UserPrincipalName })
	return out
}

// User returns one account by id or UPN (case-insensitive).
func (s *Server) User(idOrUPN string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(idOrUPN)
	if u == nil {
		return User{}, false
	}
	return u.clone(), true
}

// PasswordMatches reports whether pw is the last password pushed to the
// account (by POST or PATCH) and not changed remotely since.
func (s *Server) PasswordMatches(idOrUPN, pw string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(idOrUPN)
	if u == nil || !u.hasPW {
		return false
	}
	h := hashPassword(u.pwSalt, []byte(pw))
	return subtle.ConstantTimeCompare(h[:], u.pwHash[:]) == 1
}

func (u *user) setPassword(pw []byte) {
	_, _ = rand.Read(u.pwSalt[:])
	u.pwHash = hashPassword(u.pwSalt, pw)
	u.hasPW = true
}

func hashPassword(salt [16]byte, pw []byte) [32]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write(pw)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Requests is a copy of the request log.
func (s *Server) Requests() []Request { return s.log.Entries() }

// Count is how many requests of method and kind arrived (whatever their
// answer), e.g. Count("DELETE", KindUser), Count("POST", KindToken).
func (s *Server) Count(method, kind string) int { return s.log.Count(method, kind) }

// Counts is a copy of every counter, keyed "METHOD kind".
func (s *Server) Counts() map[string]int { return s.log.Counts() }

// ResetLog clears the request log and the counters.
func (s *Server) ResetLog() { s.log.Reset() }

// lookup finds a user by id, or by UPN case-insensitively. mu held.
func (s *Server) lookup(key string) *user {
	if u, ok := s.users[key]; ok {
		return u
	}
	if id, ok := s.byUPN[strings.ToLower(key)]; ok {
		return s.users[id]
	}
	return nil
}

// ---- HTTP ---------------------------------------------------------------------

const maxBody = 1 << 20

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	kind := KindOther
	switch {
	case len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
		kind = KindToken
	case len(segs) == 2 && segs[0] == "v1.0" && segs[1] == "users":
		kind = KindUsers
	case len(segs) == 3 && segs[0] == "v1.0" && segs[1] == "users",
		len(segs) == 2 && segs[0] == "v1.0" && strings.HasPrefix(segs[1], "users("):
		kind = KindUser
	case len(segs) >= 2 && segs[0] == "v1.0" && segs[1] == "groups":
		kind = groupKind(segs)
	case managerKind(segs):
		kind = KindManager
	}
	entry := Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Kind: kind}
	entry.Status = fakehttp.Serve(w, r, maxBody, func(w http.ResponseWriter, body []byte, err error) {
		switch {
		case errors.Is(err, fakehttp.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, "Request_EntityTooLarge", "The request is too large.")
		case err != nil:
			writeError(w, http.StatusBadRequest, "BadRequest", "Cannot read the request body.")
		case kind == KindToken:
			tenant, _ := url.PathUnescape(segs[0])
			s.serveToken(w, r, tenant, body)
		default:
			entry.HadPasswordProfile, entry.Body = redactBody(body)
			s.serveGraph(w, r, kind, segs, body)
		}
	})
	entry.Time = s.now()
	s.log.Add(r.Method, kind, entry)
}

// redactBody reports whether a JSON body has a passwordProfile and returns
// it with the password value replaced.
func redactBody(body []byte) (bool, string) {
	if len(body) == 0 {
		return false, ""
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return false, "(unparseable body, not logged)"
	}
	raw, had := m["passwordProfile"]
	if had {
		var pp map[string]json.RawMessage
		if json.Unmarshal(raw, &pp) == nil {
			if _, ok := pp["password"]; ok {
				pp["password"], _ = json.Marshal(RemovedPassword)
			}
			m["passwordProfile"], _ = json.Marshal(pp)
		} else {
			m["passwordProfile"], _ = json.Marshal(RemovedPassword)
		}
	}
	out, _ := json.Marshal(m)
	return had, string(out)
}

// graphError is Graph's documented error shape.
func graphError(code, message string) map[string]any {
	now := time.Now().UTC()
	return map[string]any{
		"error": map[string]any{
			"code":    code,
			"message": message,
			"innerError": map[string]any{
				"date":              now.Format("2006-01-02T15:04:05"),
				"request-id":        newUUID(),
				"client-request-id": newUUID(),
			},
		},
	}
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	errResp(status, code, message).Write(w)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
