package fakegraph

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type client struct {
	t   *testing.T
	s   *Server
	tok string
}

func (c *client) token(form url.Values, basic bool) (int, map[string]any) {
	c.t.Helper()
	tenant, id, sec := c.s.Credentials()
	if form == nil {
		form = url.Values{"grant_type": {"client_credentials"}, "scope": {GraphScope}}
		if !basic {
			form.Set("client_id", id)
			form.Set("client_secret", sec)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, c.s.URL()+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) (int, map[string]any) {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("%s: not JSON: %s", req.URL, b)
		}
	}
	return resp.StatusCode, m
}

func (c *client) graph(method, path, body string) (int, map[string]any, http.Header) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.s.URL()+"/v1.0"+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("%s %s: not JSON: %s", method, path, b)
		}
	}
	return resp.StatusCode, m, resp.Header
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	if _, ok := e["innerError"].(map[string]any); !ok {
		return "(no innerError)"
	}
	return code
}

func newClient(t *testing.T) *client {
	s := New()
	t.Cleanup(s.Close)
	c := &client{t: t, s: s}
	st, m := c.token(nil, false)
	if st != 200 || m["token_type"] != "Bearer" || m["expires_in"].(float64) != 3599 {
		t.Fatalf("token: %d %v", st, m)
	}
	c.tok = m["access_token"].(string)
	return c
}

func TestToken(t *testing.T) {
	c := newClient(t)
	if st, _ := c.token(nil, true); st != 200 {
		t.Fatalf("basic auth: %d", st)
	}
	tenant, id, _ := c.s.Credentials()
	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "scope": {GraphScope}, "client_id": {id}, "client_secret": {"nope"}}, 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "scope": {GraphScope}, "client_id": {"x"}, "client_secret": {"nope"}}, 400, "unauthorized_client"},
		{"bad grant", url.Values{"grant_type": {"password"}, "scope": {GraphScope}, "client_id": {id}}, 400, "unsupported_grant_type"},
		{"bad scope", url.Values{"grant_type": {"client_credentials"}, "scope": {"User.Read"}, "client_id": {id}, "client_secret": {DefaultClientSecret}}, 400, "invalid_scope"},
	}
	for _, tc := range cases {
		st, m := c.token(tc.form, false)
		if st != tc.status || m["error"] != tc.code || !strings.HasPrefix(m["error_description"].(string), "AADSTS") {
			t.Errorf("%s: %d %v", tc.name, st, m)
		}
	}
	c.s.SetCredentials("other-tenant", id, "s2")
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {GraphScope}, "client_id": {id}, "client_secret": {"s2"}}
	req, _ := http.NewRequest(http.MethodPost, c.s.URL()+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if st, m := c.send(req); st != 400 || !strings.Contains(m["error_description"].(string), "AADSTS90002") {
		t.Errorf("old tenant %s: %d %v", tenant, st, m)
	}
	if st, _ := c.token(nil, false); st != 200 {
		t.Errorf("new credentials refused: %d", st)
	}
	if n := c.s.Count(http.MethodPost, KindToken); n != 8 {
		t.Errorf("%d token requests counted", n)
	}
}

func TestGraphAuth(t *testing.T) {
	c := newClient(t)
	good := c.tok
	for _, tok := range []string{"", "forged"} {
		c.tok = tok
		if st, m, h := c.graph(http.MethodGet, "/users", ""); st != 401 || errCode(m) != "InvalidAuthenticationToken" || h.Get("WWW-Authenticate") == "" {
			t.Errorf("token %q: %d %v", tok, st, m)
		}
	}
	c.tok = good
	c.s.ExpireTokens()
	if st, m, _ := c.graph(http.MethodGet, "/users", ""); st != 401 || !strings.Contains(m["error"].(map[string]any)["message"].(string), "expired") {
		t.Errorf("expired: %d %v", st, m)
	}
}

func TestUsersCRUD(t *testing.T) {
	c := newClient(t)
	// Create: required fields, complexity, duplicates.
	st, m, _ := c.graph(http.MethodPost, "/users", `{"accountEnabled":true,"displayName":"A","mailNickname":"a","userPrincipalName":"a@x.com"}`)
	if st != 400 || !strings.Contains(m["error"].(map[string]any)["message"].(string), "passwordProfile") {
		t.Fatalf("no password: %d %v", st, m)
	}
	st, m, _ = c.graph(http.MethodPost, "/users", `{"accountEnabled":true,"displayName":"A","mailNickname":"a","userPrincipalName":"a@x.com","passwordProfile":{"password":"weakweak"}}`)
	if st != 400 || m["error"].(map[string]any)["message"] != MsgComplexity {
		t.Fatalf("weak: %d %v", st, m)
	}
	create := `{"accountEnabled":true,"displayName":"A","mailNickname":"a","userPrincipalName":"a@x.com","jobTitle":"Dev","passwordProfile":{"password":"Good-Pass-1","forceChangePasswordNextSignIn":false}}`
	st, m, _ = c.graph(http.MethodPost, "/users", create)
	if st != 201 || m["id"] == nil || m["accountEnabled"] != nil || m["jobTitle"] != "Dev" {
		t.Fatalf("create: %d %v", st, m)
	}
	id := m["id"].(string)
	st, m, _ = c.graph(http.MethodPost, "/users", strings.Replace(create, "a@x.com", "A@X.com", 1))
	if st != 400 || m["error"].(map[string]any)["message"] != MsgDuplicateUPN || errCode(m) != "Request_BadRequest" {
		t.Fatalf("duplicate: %d %v", st, m)
	}
	if !c.s.PasswordMatches("a@x.com", "Good-Pass-1") || c.s.PasswordMatches(id, "Good-Pass-2") {
		t.Fatal("PasswordMatches")
	}

	// $select: defaults lack accountEnabled; selected fields are returned.
	_, m, _ = c.graph(http.MethodGet, "/users/a@x.com", "")
	if _, ok := m["accountEnabled"]; ok || m["id"] != id {
		t.Fatalf("default select: %v", m)
	}
	_, m, _ = c.graph(http.MethodGet, "/users/"+id+"?$select=accountEnabled,lastPasswordChangeDateTime", "")
	if m["accountEnabled"] != true || m["lastPasswordChangeDateTime"] == nil || m["id"] != id || m["displayName"] != nil {
		t.Fatalf("select: %v", m)
	}
	if st, m, _ := c.graph(http.MethodGet, "/users/"+id+"?$select=nope", ""); st != 400 || errCode(m) != "BadRequest" {
		t.Fatalf("bad select: %d %v", st, m)
	}

	// PATCH: password moves the time, attributes, unknown property, read-only.
	before, _ := c.s.User(id)
	if st, _, _ := c.graph(http.MethodPatch, "/users/"+id, `{"passwordProfile":{"password":"Next-Pass-2","forceChangePasswordNextSignIn":false},"department":"Ops","accountEnabled":false}`); st != 204 {
		t.Fatalf("patch: %d", st)
	}
	after, _ := c.s.User(id)
	if !after.LastPasswordChangeDateTime.After(before.LastPasswordChangeDateTime) || after.AccountEnabled ||
		after.Attributes["department"] != "Ops" || !c.s.PasswordMatches(id, "Next-Pass-2") {
		t.Fatalf("after patch: %+v", after)
	}
	for body, code := range map[string]string{
		`{"favourite":"x"}`:      "Request_BadRequest",
		`{"id":"x"}`:             "Request_BadRequest",
		`{"displayName":""}`:     "Request_BadRequest",
		`{"accountEnabled":"x"}`: "Request_BadRequest",
		`not json`:               "BadRequest",
	} {
		if st, m, _ := c.graph(http.MethodPatch, "/users/"+id, body); st != 400 || errCode(m) != code {
			t.Errorf("%s: %d %v", body, st, m)
		}
	}

	// Request log: password removed, flag set.
	var sawPW bool
	for _, r := range c.s.Requests() {
		if strings.Contains(r.Body, "Good-Pass-1") || strings.Contains(r.Body, "Next-Pass-2") || strings.Contains(r.Body, "weakweak") {
			t.Fatalf("log kept a password: %s", r.Body)
		}
		sawPW = sawPW || (r.Method == http.MethodPatch && r.HadPasswordProfile)
	}
	if !sawPW {
		t.Fatal("HadPasswordProfile not set")
	}

	// Remote change and on-premises users.
	tm, _ := c.s.SetPassword("a@x.com")
	if u, _ := c.s.User(id); !u.LastPasswordChangeDateTime.Equal(tm) || c.s.PasswordMatches(id, "Next-Pass-2") {
		t.Fatal("remote change")
	}
	c.s.SetOnPremMastered("a@x.com")
	if st, m, _ := c.graph(http.MethodPatch, "/users/"+id, `{"passwordProfile":{"password":"Next-Pass-3"}}`); st != 403 || m["error"].(map[string]any)["message"] != MsgOnPrem {
		t.Fatalf("on-prem: %d %v", st, m)
	}

	// DELETE is recorded and honoured.
	if st, _, _ := c.graph(http.MethodDelete, "/users/"+id, ""); st != 204 || c.s.Count(http.MethodDelete, KindUser) != 1 {
		t.Fatal("delete")
	}
	if st, m, _ := c.graph(http.MethodGet, "/users/"+id, ""); st != 404 || errCode(m) != "Request_ResourceNotFound" {
		t.Fatalf("after delete: %d %v", st, m)
	}
}

func TestListPaging(t *testing.T) {
	c := newClient(t)
	for i := 0; i < 7; i++ {
		c.s.AddUser(User{UserPrincipalName: "u" + string(rune('a'+i)) + "@x.com", AccountEnabled: i%3 != 0})
	}
	var upns []string
	path := "/users?$filter=accountEnabled%20eq%20true&$top=2&$select=id,userPrincipalName"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("endless paging")
		}
		st, m, _ := c.graph(http.MethodGet, path, "")
		if st != 200 {
			t.Fatalf("%d %v", st, m)
		}
		for _, v := range m["value"].([]any) {
			upns = append(upns, v.(map[string]any)["userPrincipalName"].(string))
		}
		path = ""
		if next, ok := m["@odata.nextLink"].(string); ok {
			path = strings.TrimPrefix(next, c.s.URL()+"/v1.0")
		}
	}
	if strings.Join(upns, ",") != "ub@x.com,uc@x.com,ue@x.com,uf@x.com" {
		t.Fatalf("listed %v", upns)
	}
	if st, m, _ := c.graph(http.MethodGet, "/users?$filter=startswith(displayName,'a')", ""); st != 400 || errCode(m) != "Request_UnsupportedQuery" {
		t.Fatalf("unsupported filter: %d %v", st, m)
	}
}

func TestInjectedFailures(t *testing.T) {
	c := newClient(t)
	c.s.AddUser(User{UserPrincipalName: "a@x.com"})

	c.s.Throttle(2, 3*time.Second)
	for i := 0; i < 2; i++ {
		if st, m, h := c.graph(http.MethodGet, "/users/a@x.com", ""); st != 429 || h.Get("Retry-After") != "3" || errCode(m) != "TooManyRequests" {
			t.Fatalf("throttle: %d %v %v", st, m, h)
		}
	}
	if st, _, _ := c.graph(http.MethodGet, "/users/a@x.com", ""); st != 200 {
		t.Fatal("throttle did not end")
	}

	now := time.Now()
	c.s.SetClock(func() time.Time { return now })
	c.s.Outage(10 * time.Second)
	if st, _, h := c.graph(http.MethodGet, "/users/a@x.com", ""); st != 503 || h.Get("Retry-After") != "10" {
		t.Fatalf("outage: %d %v", st, h)
	}
	now = now.Add(11 * time.Second)
	if st, _, _ := c.graph(http.MethodGet, "/users/a@x.com", ""); st != 200 {
		t.Fatal("outage did not end")
	}

	c.s.ReplicationDelay(time.Minute)
	st, m, _ := c.graph(http.MethodPost, "/users", `{"accountEnabled":true,"displayName":"B","mailNickname":"b","userPrincipalName":"b@x.com","passwordProfile":{"password":"Good-Pass-1"}}`)
	if st != 201 {
		t.Fatalf("create: %d %v", st, m)
	}
	if st, _, _ := c.graph(http.MethodGet, "/users/b@x.com", ""); st != 404 {
		t.Fatal("replication delay ignored")
	}
	now = now.Add(time.Minute)
	if st, _, _ := c.graph(http.MethodGet, "/users/b@x.com", ""); st != 200 {
		t.Fatal("replication delay never ends")
	}

	c.s.Fail(Fault{Method: http.MethodPatch, Status: 409, Code: "Conflict", Message: "c"})
	if st, _, _ := c.graph(http.MethodGet, "/users/b@x.com", ""); st != 200 {
		t.Fatal("fault matched the wrong method")
	}
	if st, m, _ := c.graph(http.MethodPatch, "/users/b@x.com", `{"jobTitle":"x"}`); st != 409 || errCode(m) != "Conflict" {
		t.Fatalf("fault: %d %v", st, m)
	}

	c.s.DenyWrites(true)
	if st, m, _ := c.graph(http.MethodPatch, "/users/b@x.com", `{"jobTitle":"x"}`); st != 403 || errCode(m) != "Authorization_RequestDenied" {
		t.Fatalf("deny: %d %v", st, m)
	}
}

func TestComplex(t *testing.T) {
	for pw, want := range map[string]bool{
		"Abcdef1!": true, "abcdef12": false, "ABCdef12": true, "abc!def#": false, "abc!def1": true,
		"Ab1!": false, "Abcdéf12": false, strings.Repeat("Ab1", 86): false, strings.Repeat("Ab1", 85): true,
	} {
		if Complex(pw) != want {
			t.Errorf("Complex(%q) = %v", pw, !want)
		}
	}
}
