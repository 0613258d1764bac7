package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

const token = "test-token-0123456789abcdef"

type env struct {
	t   *testing.T
	srv *httptest.Server
	st  *store.Store
}

func newEnv(t *testing.T) *env { return newEnvWith(t, authn.Config{}) }

// newEnvWith is newEnv with an authn policy (cheap hashing is forced).
func newEnvWith(t *testing.T, cfg authn.Config) *env {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Hash = authn.HashParams{Time: 1, MemoryKiB: 64, Threads: 1}
	auth, err := authn.New(cfg, st, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Subscribe(auth.HandleChange)
	reg := prometheus.NewRegistry()
	api := admin.New(st, auth, admin.Config{Token: secret.FromString(token), Gatherer: reg}, reg)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, st: st}
}

func (e *env) call(method, path string, body any, out any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decoding %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, string(data)
}

type user struct {
	ID             string `json:"id"`
	Username       string `json:"username"`
	Email          string `json:"email"`
	State          string `json:"state"`
	PasswordStatus string `json:"password_status"`
	PasswordVer    uint64 `json:"password_version"`
	UIDNumber      int    `json:"uid_number"`
}

func TestAuthRequired(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/v1/users", "/v1/groups", "/v1/events"} {
		for _, hdr := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x"} {
			req, _ := http.NewRequest("GET", e.srv.URL+p, nil)
			if hdr != "" {
				req.Header.Set("Authorization", hdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with %q: %d, want 401", p, hdr, resp.StatusCode)
			}
		}
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s needs no token: got %d", p, resp.StatusCode)
		}
	}
}

func TestUserLifecycle(t *testing.T) {
	e := newEnv(t)
	var u user
	if code, body := e.call("POST", "/v1/users", map[string]any{"username": "alice", "email": "alice@example.test", "first_name": "Alice"}, &u); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if u.PasswordStatus != "pending" || u.State != "active" || u.UIDNumber == 0 {
		t.Fatalf("new user: %+v", u)
	}
	if code, body := e.call("PUT", "/v1/users/alice/password", map[string]string{"password": "s3cret-enough"}, &u); code != 200 || strings.Contains(body, "s3cret") {
		t.Fatalf("set password: %d %s", code, body)
	}
	if u.PasswordStatus != "active" || u.PasswordVer != 1 {
		t.Fatalf("after password: %+v", u)
	}
	if code, _ := e.call("POST", "/v1/users/alice/suspend", nil, &u); code != 200 || u.State != "suspended" {
		t.Fatalf("suspend: %d %+v", code, u)
	}
	if code, _ := e.call("POST", "/v1/users/"+u.ID+"/unsuspend", nil, &u); code != 200 || u.State != "active" {
		t.Fatalf("unsuspend by id: %d %+v", code, u)
	}
	if code, body := e.call("PATCH", "/v1/users/alice", map[string]any{"email": "Alice.L@example.test", "display_name": "Alice L"}, &u); code != 200 || u.Email != "Alice.L@example.test" {
		t.Fatalf("update: %d %s", code, body)
	}
	var got map[string]any
	e.call("GET", "/v1/users/alice", nil, &got)
	for k := range got {
		if strings.Contains(strings.ToLower(k), "hash") {
			t.Fatalf("user view exposes %q", k)
		}
	}
	if code, _ := e.call("DELETE", "/v1/users/alice", nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, body := e.call("GET", "/v1/users/alice", nil, nil); code != 404 || !strings.Contains(body, "alice") {
		t.Fatalf("get deleted: %d %s", code, body)
	}
}

func TestListUsersPaging(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 7; i++ {
		e.call("POST", "/v1/users", map[string]any{"username": fmt.Sprintf("u%02d", i), "email": fmt.Sprintf("u%d@example.test", i)}, nil)
	}
	var seen []string
	after := ""
	for page := 0; page < 10; page++ {
		var resp struct {
			Users []user `json:"users"`
			Next  string `json:"next"`
		}
		if code, body := e.call("GET", "/v1/users?limit=3&after="+after, nil, &resp); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		for _, u := range resp.Users {
			seen = append(seen, u.Username)
		}
		if resp.Next == "" {
			break
		}
		after = resp.Next
	}
	if want := []string{"u00", "u01", "u02", "u03", "u04", "u05", "u06"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("paged %v, want %v", seen, want)
	}
	if code, _ := e.call("GET", "/v1/users?limit=0", nil, nil); code != 400 {
		t.Fatal("limit=0 accepted")
	}
}

// storeState captures everything an API call could have changed.
func storeState(t *testing.T, st *store.Store) string {
	t.Helper()
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	users, _, _ := st.ListUsers("", 1000)
	groups, _, _ := st.ListGroups("", 1000)
	var members []string
	for _, g := range groups {
		ms, _ := st.MembersOf(g.ID)
		for _, m := range ms {
			members = append(members, g.Name+"/"+m.Username)
		}
	}
	evs, _, _ := st.ListEvents(store.EventFilter{Limit: 1000})
	b, _ := json.Marshal(map[string]any{"users": users, "groups": groups, "members": members, "events": len(evs)})
	return string(b)
}

func TestBadInputLeavesStoreUnchanged(t *testing.T) {
	e := newEnv(t)
	e.call("POST", "/v1/users", map[string]any{"username": "bob", "email": "bob@example.test"}, nil)
	e.call("POST", "/v1/users", map[string]any{"username": "erin", "email": "erin@example.test"}, nil)
	e.call("POST", "/v1/groups", map[string]any{"name": "staff"}, nil)
	big := `{"username":"x","email":"x@example.test","first_name":"` + strings.Repeat("a", 100<<10) + `"}`
	tests := []struct {
		name, method, path string
		body               any
		code               int
		msg                string
	}{
		{"malformed json", "POST", "/v1/users", `{"username": "carol",`, 400, "malformed JSON"},
		{"not an object", "POST", "/v1/users", `[1,2]`, 400, "malformed JSON"},
		{"empty body", "POST", "/v1/users", ``, 400, "needs a JSON body"},
		{"trailing data", "POST", "/v1/users", `{"username":"carol","email":"c@example.test"} {}`, 400, "single JSON object"},
		{"oversized", "POST", "/v1/users", big, 413, "larger than"},
		{"unknown field", "POST", "/v1/users", `{"username":"carol","email":"c@example.test","admin":true}`, 400, "unknown field"},
		{"invalid email", "POST", "/v1/users", `{"username":"carol","email":"not-an-email"}`, 400, "email"},
		{"email with display name", "POST", "/v1/users", `{"username":"carol","email":"Carol <c@example.test>"}`, 400, "email"},
		{"missing username", "POST", "/v1/users", `{"email":"c@example.test"}`, 400, "username"},
		{"bad username", "POST", "/v1/users", `{"username":"a b/c","email":"c@example.test"}`, 400, "username"},
		{"duplicate username case", "POST", "/v1/users", `{"username":"BOB","email":"other@example.test"}`, 409, "BOB"},
		{"duplicate email case", "POST", "/v1/users", `{"username":"bobby","email":"Bob@Example.TEST"}`, 409, "email"},
		{"create suspended", "POST", "/v1/users", `{"username":"carol","email":"c@example.test","state":"suspended"}`, 400, "state"},
		{"update to taken email", "PATCH", "/v1/users/erin", `{"email":"BOB@example.test"}`, 409, "email"},
		{"update to taken username", "PATCH", "/v1/users/erin", `{"username":"Bob"}`, 409, "Bob"},
		{"update unknown field", "PATCH", "/v1/users/bob", `{"emial":"x@example.test"}`, 400, "unknown field"},
		{"update bad state", "PATCH", "/v1/users/bob", `{"state":"deleted"}`, 400, "state"},
		{"update bad password status", "PATCH", "/v1/users/bob", `{"password_status":"locked"}`, 400, "password_status"},
		{"activate without password", "PATCH", "/v1/users/bob", `{"password_status":"active"}`, 400, "no password"},
		{"short password", "PUT", "/v1/users/bob/password", `{"password":"short"}`, 400, "at least"},
		{"empty password", "PUT", "/v1/users/bob/password", `{"password":""}`, 400, "password"},
		{"password for nobody", "PUT", "/v1/users/nobody/password", `{"password":"long enough"}`, 404, "nobody"},
		{"duplicate group case", "POST", "/v1/groups", `{"name":"STAFF"}`, 409, "STAFF"},
		{"member of no group", "PUT", "/v1/groups/nogroup/members/bob", nil, 404, "nogroup"},
		{"remove non-member", "DELETE", "/v1/groups/staff/members/bob", nil, 404, "not a member"},
		{"bad events time", "GET", "/v1/events?since=yesterday", nil, 400, "RFC 3339"},
		{"unknown endpoint", "GET", "/v1/nothing", nil, 404, "no such endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := storeState(t, e.st)
			code, body := e.call(tc.method, tc.path, tc.body, nil)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			var er struct {
				Error string `json:"error"`
			}
			if json.Unmarshal([]byte(body), &er) != nil || er.Error == "" || !strings.Contains(er.Error, tc.msg) {
				t.Fatalf("error body %q should carry a message containing %q", body, tc.msg)
			}
			if after := storeState(t, e.st); after != before {
				t.Fatalf("store changed:\nbefore %s\nafter  %s", before, after)
			}
			if err := e.st.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGroupsAndEvents(t *testing.T) {
	e := newEnv(t)
	var u user
	e.call("POST", "/v1/users", map[string]any{"username": "dave", "email": "dave@example.test"}, &u)
	if code, body := e.call("POST", "/v1/groups", map[string]any{"name": "vpn users", "description": "VPN"}, nil); code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := e.call("PUT", "/v1/groups/vpn%20users/members/dave", nil, nil); code != 204 {
		t.Fatalf("add member: %d %s", code, body)
	}
	var g struct {
		Members []string `json:"members"`
	}
	e.call("GET", "/v1/groups/vpn%20users", nil, &g)
	if !reflect.DeepEqual(g.Members, []string{"dave"}) {
		t.Fatalf("members %v", g.Members)
	}
	var ug struct {
		Groups []struct{ Name string } `json:"groups"`
	}
	e.call("GET", "/v1/users/dave/groups", nil, &ug)
	if len(ug.Groups) != 1 || ug.Groups[0].Name != "vpn users" {
		t.Fatalf("user groups %+v", ug)
	}
	if code, _ := e.call("DELETE", "/v1/groups/vpn%20users/members/dave", nil, nil); code != 204 {
		t.Fatal("remove member")
	}
	if code, _ := e.call("DELETE", "/v1/groups/vpn%20users", nil, nil); code != 204 {
		t.Fatal("delete group")
	}
	e.st.Flush(context.Background())

	var evs struct {
		Events []store.Event `json:"events"`
		Next   uint64        `json:"next"`
	}
	e.call("GET", "/v1/events?user=dave", nil, &evs)
	var types []string
	for _, ev := range evs.Events {
		types = append(types, string(ev.Type))
	}
	if want := []string{"user_create", "group_member_add", "group_member_remove"}; !reflect.DeepEqual(types, want) {
		t.Fatalf("events for dave %v, want %v", types, want)
	}
	e.call("GET", "/v1/events?type=group_create", nil, &evs)
	if len(evs.Events) != 1 {
		t.Fatalf("type filter: %+v", evs.Events)
	}
	e.call("GET", "/v1/events?until="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), nil, &evs)
	if len(evs.Events) != 0 {
		t.Fatalf("until filter: %+v", evs.Events)
	}
	// Paging with the cursor walks every event exactly once.
	var all []uint64
	after := uint64(0)
	for i := 0; i < 20; i++ {
		e.call("GET", fmt.Sprintf("/v1/events?limit=2&after=%d", after), nil, &evs)
		for _, ev := range evs.Events {
			all = append(all, ev.Seq)
		}
		if evs.Next == 0 {
			break
		}
		after = evs.Next
	}
	// user_create, group_create, member add, member remove, group_delete
	if len(all) != 5 {
		t.Fatalf("paged events %v, want 5", all)
	}
}
