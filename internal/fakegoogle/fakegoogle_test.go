package fakegoogle

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	xgoogle "golang.org/x/oauth2/google"

	"github.com/gatewayd/gatewayd/internal/sha512crypt"
)

// fetchToken runs x/oauth2's service-account JWT flow against the fake.
func fetchToken(t *testing.T, key []byte, subject string, scopes ...string) (*oauth2.Token, error) {
	t.Helper()
	jc, err := xgoogle.JWTConfigFromJSON(key, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	jc.Subject = subject
	return jc.TokenSource(context.Background()).Token()
}

func retrieveErr(t *testing.T, err error) (int, string, string) {
	t.Helper()
	re, ok := err.(*oauth2.RetrieveError)
	if !ok {
		t.Fatalf("want *oauth2.RetrieveError, got %T %v", err, err)
	}
	var b struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	_ = json.Unmarshal(re.Body, &b)
	return re.Response.StatusCode, b.Error, b.Desc
}

func TestTokenEndpoint(t *testing.T) {
	s := New()
	defer s.Close()
	s.AddUser(User{PrimaryEmail: "clerk@example.com", GivenName: "C", FamilyName: "C"})
	s.AddUser(User{PrimaryEmail: "boss@example.com", GivenName: "B", FamilyName: "B", IsAdmin: true})
	foreign, err := NewServiceAccountKey(DefaultServiceAccount, DefaultClientID, s.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := NewServiceAccountKey("x@other.iam.gserviceaccount.com", "2", s.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	both := []string{ScopeUser, ScopeGroup}
	cases := []struct {
		name    string
		key     []byte
		subject string
		scopes  []string
		status  int
		code    string
		desc    string
	}{
		{"admin", s.ServiceAccountKey(), DefaultAdmin, both, 200, "", ""},
		{"admin case-insensitive", s.ServiceAccountKey(), "Admin@Example.com", both, 200, "", ""},
		{"other admin user", s.ServiceAccountKey(), "boss@example.com", both, 200, "", ""},
		{"non-admin user gets a token", s.ServiceAccountKey(), "clerk@example.com", both, 200, "", ""},
		{"unknown subject", s.ServiceAccountKey(), "nobody@example.com", both, 400, "invalid_grant", MsgBadSubject},
		{"wrong key", foreign, DefaultAdmin, both, 400, "invalid_grant", MsgBadSignature},
		{"unknown account", unknown, DefaultAdmin, both, 400, "invalid_grant", MsgNoAccount},
		{"undelegated scope", s.ServiceAccountKey(), DefaultAdmin, []string{ScopeUser, "https://www.googleapis.com/auth/gmail.send"},
			401, "unauthorized_client", MsgUnauthorizedClient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := fetchToken(t, tc.key, tc.subject, tc.scopes...)
			if tc.status == 200 {
				if err != nil || !strings.HasPrefix(tok.AccessToken, "ya29.") || tok.Expiry.Before(time.Now().Add(50*time.Minute)) {
					t.Fatalf("%+v %v", tok, err)
				}
				return
			}
			st, code, desc := retrieveErr(t, err)
			if st != tc.status || code != tc.code || desc != tc.desc {
				t.Fatalf("got %d %s %q", st, code, desc)
			}
		})
	}

	// Raw requests: wrong grant type, garbage assertion, wrong audience.
	post := func(form url.Values) (int, string) {
		resp, err := http.PostForm(s.TokenURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := post(url.Values{"grant_type": {"client_credentials"}}); st != 400 || !strings.Contains(b, "unsupported_grant_type") {
		t.Fatalf("grant type: %d %s", st, b)
	}
	if st, b := post(url.Values{"grant_type": {jwtBearer}, "assertion": {"a.b.c"}}); st != 400 || !strings.Contains(b, "invalid_grant") {
		t.Fatalf("garbage: %d %s", st, b)
	}
	jc, _ := xgoogle.JWTConfigFromJSON(s.ServiceAccountKey(), ScopeUser)
	jc.Subject, jc.Audience = DefaultAdmin, "https://oauth2.googleapis.com/token"
	if _, err := jc.TokenSource(context.Background()).Token(); err == nil {
		t.Fatal("wrong audience accepted")
	}
	if s.TokensIssued() != 4 {
		t.Fatalf("%d tokens issued", s.TokensIssued())
	}
	if s.Count(http.MethodPost, KindToken) != 11 {
		t.Fatalf("%d token requests", s.Count(http.MethodPost, KindToken))
	}
}

// client is a bare Directory API client for the fake's own tests.
type client struct {
	t   *testing.T
	s   *Server
	tok string
}

func newClient(t *testing.T, s *Server, subject string, scopes ...string) *client {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{ScopeUser, ScopeGroup}
	}
	tok, err := fetchToken(t, s.ServiceAccountKey(), subject, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, s: s, tok: tok.AccessToken}
}

func (c *client) do(method, path string, body any) (int, map[string]any, http.Header) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.s.URL()+"/admin/directory/v1/"+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, resp.Header
}

func reason(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	errs, _ := e["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	r, _ := errs[0].(map[string]any)["reason"].(string)
	return r
}

func TestDirectoryAuth(t *testing.T) {
	s := New()
	defer s.Close()
	s.AddUser(User{PrimaryEmail: "clerk@example.com", GivenName: "C", FamilyName: "C"})

	bad := &client{t: t, s: s, tok: "ya29.forged"}
	if st, m, _ := bad.do("GET", "users/clerk@example.com", nil); st != 401 || reason(m) != "authError" {
		t.Fatalf("forged token: %d %v", st, m)
	}
	clerk := newClient(t, s, "clerk@example.com")
	if st, m, _ := clerk.do("GET", "users/clerk@example.com", nil); st != 403 || reason(m) != "forbidden" {
		t.Fatalf("non-admin: %d %v", st, m)
	}
	userOnly := newClient(t, s, DefaultAdmin, ScopeUser)
	if st, _, _ := userOnly.do("GET", "users/clerk@example.com", nil); st != 200 {
		t.Fatalf("user scope: %d", st)
	}
	if st, m, _ := userOnly.do("GET", "groups?customer=my_customer", nil); st != 403 || reason(m) != "insufficientPermissions" {
		t.Fatalf("group without scope: %d %v", st, m)
	}
	admin := newClient(t, s, DefaultAdmin)
	s.ExpireTokens()
	if st, _, _ := admin.do("GET", "users/clerk@example.com", nil); st != 401 {
		t.Fatalf("expired token: %d", st)
	}
}

func TestPasswords(t *testing.T) {
	s := New()
	defer s.Close()
	c := newClient(t, s, DefaultAdmin)
	hash, err := sha512crypt.Hash([]byte("Correct-Horse-42"))
	if err != nil {
		t.Fatal(err)
	}
	tooMany, _ := sha512crypt.Crypt([]byte("x"), "$6$rounds=20000$abcdefgh")
	md5 := "$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1"
	name := map[string]any{"givenName": "A", "familyName": "L"}

	cases := []struct {
		name      string
		body      map[string]any
		status    int
		plaintext int
	}{
		{"plaintext", map[string]any{"primaryEmail": "a@example.com", "name": name, "password": "Correct-Horse-42"}, 400, 1},
		{"hash without hashFunction", map[string]any{"primaryEmail": "a@example.com", "name": name, "password": hash}, 400, 2},
		{"SHA-1", map[string]any{"primaryEmail": "a@example.com", "name": name, "password": "abc", "hashFunction": "SHA-1"}, 400, 3},
		{"crypt but md5", map[string]any{"primaryEmail": "a@example.com", "name": name, "password": md5, "hashFunction": "crypt"}, 400, 3},
		{"crypt, too many rounds", map[string]any{"primaryEmail": "a@example.com", "name": name, "password": tooMany, "hashFunction": "crypt"}, 400, 3},
		{"no password", map[string]any{"primaryEmail": "a@example.com", "name": name}, 400, 3},
		{"no family name", map[string]any{"primaryEmail": "a@example.com", "name": map[string]any{"givenName": "A"},
			"password": hash, "hashFunction": "crypt"}, 400, 3},
		{"good", map[string]any{"primaryEmail": "a@example.com", "name": name, "password": hash, "hashFunction": "crypt"}, 200, 3},
		{"duplicate", map[string]any{"primaryEmail": "A@example.com", "name": name, "password": hash, "hashFunction": "crypt"}, 409, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, m, _ := c.do("POST", "users", tc.body)
			if st != tc.status || s.PlaintextSeen() != tc.plaintext {
				t.Fatalf("got %d (%v), plaintext %d", st, m, s.PlaintextSeen())
			}
		})
	}
	if !s.PasswordMatches("a@example.com", "Correct-Horse-42") || s.PasswordMatches("a@example.com", "x") {
		t.Fatal("PasswordMatches")
	}
	for _, r := range s.Requests() {
		if strings.Contains(r.Body, "Correct-Horse-42") || strings.Contains(r.Body, hash) {
			t.Fatalf("password in the log: %s", r.Body)
		}
		if r.HadPassword && !strings.Contains(r.Body, RemovedPassword) {
			t.Fatalf("not redacted: %s", r.Body)
		}
	}
	if !s.Saw("Correct-Horse-42") {
		t.Fatal("Saw misses the plaintext sent in the first request")
	}

	// PATCH: suspended false is recorded, a plaintext refused.
	u, _ := s.User("a@example.com")
	if st, _, _ := c.do("PATCH", "users/"+u.ID, map[string]any{"suspended": true}); st != 200 {
		t.Fatal(st)
	}
	if st, _, _ := c.do("PATCH", "users/"+u.ID, map[string]any{"suspended": false}); st != 200 {
		t.Fatal(st)
	}
	if got, _ := s.User(u.ID); got.Suspended {
		t.Fatal("still suspended")
	}
	if st, _, _ := c.do("PATCH", "users/"+u.ID, map[string]any{"password": "New-Plain-1"}); st != 400 || s.PlaintextSeen() != 4 {
		t.Fatalf("plaintext patch: %d %d", st, s.PlaintextSeen())
	}
	if !s.PasswordMatches(u.ID, "Correct-Horse-42") {
		t.Fatal("a refused patch changed the password")
	}
	if st, _, _ := c.do("DELETE", "users/"+u.ID, nil); st != 204 || len(s.DeletedUsers()) != 1 || s.Count("DELETE", KindUser) != 1 {
		t.Fatal("delete not recorded")
	}
}

func TestGroupsAndMembers(t *testing.T) {
	s := New()
	defer s.Close()
	c := newClient(t, s, DefaultAdmin)
	u := s.AddUser(User{PrimaryEmail: "a@example.com", GivenName: "A", FamilyName: "A"})
	g1 := s.AddGroup(Group{Name: "Sales"})
	g2 := s.AddGroup(Group{Name: "SALES"})
	s.AddGroup(Group{Name: "Sales Team"})
	s.AddGroup(Group{Name: `It's "quoted"`})

	list := func(q string) (int, []string) {
		st, m, _ := c.do("GET", "groups?customer="+url.QueryEscape(DefaultCustomerID)+"&query="+url.QueryEscape(q), nil)
		var names []string
		gs, _ := m["groups"].([]any)
		for _, g := range gs {
			names = append(names, g.(map[string]any)["name"].(string))
		}
		return st, names
	}
	for q, want := range map[string]string{
		`name='Sales'`:             "Sales,SALES",
		`name=Sales`:               "Sales,SALES",
		`name:Sales*`:              "Sales,SALES,Sales Team",
		`name='It\'s "quoted"'`:    `It's "quoted"`,
		`name='Nobody'`:            "",
		`email='` + g1.Email + `'`: "Sales",
		``:                         `Sales,SALES,Sales Team,It's "quoted"`,
	} {
		st, names := list(q)
		if st != 200 || strings.Join(names, ",") != want {
			t.Errorf("query %s: %d %v, want %s", q, st, names, want)
		}
	}
	if st, _ := list(`bogus~x`); st != 400 {
		t.Errorf("bad query: %d", st)
	}
	if st, _, _ := c.do("GET", "groups?customer=C99other", nil); st != 400 {
		t.Errorf("wrong customer: %d", st)
	}
	// Paging.
	st, m, _ := c.do("GET", "groups?customer=my_customer&maxResults=3", nil)
	if st != 200 || len(m["groups"].([]any)) != 3 || m["nextPageToken"] == nil {
		t.Fatalf("page 1: %d %v", st, m)
	}
	st, m, _ = c.do("GET", "groups?customer=my_customer&maxResults=3&pageToken="+m["nextPageToken"].(string), nil)
	if st != 200 || len(m["groups"].([]any)) != 1 || m["nextPageToken"] != nil {
		t.Fatalf("page 2: %d %v", st, m)
	}

	// Insert: duplicate email with a user or a group.
	if st, _, _ := c.do("POST", "groups", map[string]any{"email": "a@example.com", "name": "X"}); st != 409 {
		t.Fatalf("group on a user's email: %d", st)
	}
	st, m, _ = c.do("POST", "groups", map[string]any{"email": "vpn@example.com", "name": "VPN"})
	if st != 200 || m["directMembersCount"] != "0" {
		t.Fatalf("insert: %d %v", st, m)
	}
	// Members.
	if st, _, _ := c.do("POST", "groups/"+g1.ID+"/members", map[string]any{"id": u.ID, "role": "MEMBER"}); st != 200 {
		t.Fatal(st)
	}
	if st, m, _ := c.do("POST", "groups/"+g1.ID+"/members", map[string]any{"email": "A@example.com"}); st != 409 || reason(m) != "duplicate" {
		t.Fatalf("duplicate member: %d", st)
	}
	if st, _, _ := c.do("POST", "groups/"+g2.ID+"/members", map[string]any{"id": "1234"}); st != 404 {
		t.Fatalf("unknown member: %d", st)
	}
	if ids := s.MemberIDs(g1.Email); len(ids) != 1 || ids[0] != u.ID {
		t.Fatalf("members %v", ids)
	}
	if st, _, _ := c.do("DELETE", "groups/"+g1.ID+"/members/"+u.ID, nil); st != 204 {
		t.Fatal(st)
	}
	if st, m, _ := c.do("DELETE", "groups/"+g1.ID+"/members/"+u.ID, nil); st != 404 || reason(m) != "notFound" {
		t.Fatalf("second delete: %d", st)
	}
}

func TestHooks(t *testing.T) {
	s := New()
	defer s.Close()
	c := newClient(t, s, DefaultAdmin)
	s.AddUser(User{PrimaryEmail: "a@example.com", GivenName: "A", FamilyName: "A"})

	s.Throttle(2, 1500*time.Millisecond)
	for range 2 {
		st, m, h := c.do("GET", "users/a@example.com", nil)
		e, _ := m["error"].(map[string]any)
		errs, _ := e["errors"].([]any)
		if st != 429 || h.Get("Retry-After") != "2" || reason(m) != "rateLimitExceeded" ||
			errs[0].(map[string]any)["domain"] != "usageLimits" {
			t.Fatalf("throttle: %d %v %v", st, h, m)
		}
	}
	if st, _, _ := c.do("GET", "users/a@example.com", nil); st != 200 {
		t.Fatalf("after throttle: %d", st)
	}
	s.SetDown(true)
	if st, _, _ := c.do("GET", "users/a@example.com", nil); st != 503 {
		t.Fatalf("down: %d", st)
	}
	s.SetDown(false)
	s.Fail(Fault{Method: "PATCH", Status: 412, Reason: "conditionNotMet", Message: "Precondition Failed"})
	if st, _, _ := c.do("GET", "users/a@example.com", nil); st != 200 {
		t.Fatalf("fault for PATCH hit a GET: %d", st)
	}
	if st, m, _ := c.do("PATCH", "users/a@example.com", map[string]any{"suspended": true}); st != 412 || reason(m) != "conditionNotMet" {
		t.Fatalf("fault: %d", st)
	}
	s.Latency(100 * time.Millisecond)
	start := time.Now()
	c.do("GET", "users/a@example.com", nil)
	if time.Since(start) < 100*time.Millisecond {
		t.Fatal("no latency")
	}
	s.Latency(0)
	if n := s.Count("GET", KindUser); n != 6 {
		t.Fatalf("Count = %d", n)
	}

	// Concurrency.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := s.AddGroup(Group{Name: "G"})
			c.do("POST", "groups/"+g.ID+"/members", map[string]any{"email": "a@example.com"})
			_ = s.Groups()
			_ = s.Requests()
		}()
	}
	wg.Wait()
	if len(s.Groups()) != 20 {
		t.Fatal(len(s.Groups()))
	}
}
