package fakegraph

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func errMsg(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// walk follows @odata.nextLink from path and returns every item.
func (c *client) walk(path string) ([]map[string]any, int) {
	c.t.Helper()
	var out []map[string]any
	pages := 0
	for path != "" {
		pages++
		if pages > 100 {
			c.t.Fatal("endless paging")
		}
		st, m, _ := c.graph(http.MethodGet, path, "")
		if st != 200 {
			c.t.Fatalf("GET %s: %d %v", path, st, m)
		}
		for _, v := range m["value"].([]any) {
			out = append(out, v.(map[string]any))
		}
		path = ""
		if next, ok := m["@odata.nextLink"].(string); ok {
			if !strings.HasPrefix(next, c.s.URL()+"/v1.0/") {
				c.t.Fatalf("nextLink %q is not absolute on the fake", next)
			}
			path = strings.TrimPrefix(next, c.s.URL()+"/v1.0")
		}
	}
	return out, pages
}

func TestGroupsCreateAndFilter(t *testing.T) {
	c := newClient(t)
	c.s.AddGroup("Staff")
	c.s.AddGroup("staff")
	c.s.AddGroup("O'Brien's team")

	cases := []struct {
		name   string
		filter string
		want   int
		status int
	}{
		{"two, case-insensitive", "displayName eq 'STAFF'", 2, 200},
		{"apostrophe doubled", "displayName eq 'O''Brien''s team'", 1, 200},
		{"none", "displayName eq 'Nobody'", 0, 200},
		{"apostrophe not doubled", "displayName eq 'O'Brien's team'", 0, 400},
		{"other property", "mailNickname eq 'Staff'", 0, 400},
		{"other operator", "startswith(displayName,'S')", 0, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, m, _ := c.graph(http.MethodGet, "/groups?$filter="+url.QueryEscape(tc.filter)+"&$select=id,displayName", "")
			if st != tc.status {
				t.Fatalf("%d %v", st, m)
			}
			if st == 200 && len(m["value"].([]any)) != tc.want {
				t.Fatalf("%d matches: %v", len(m["value"].([]any)), m)
			}
		})
	}

	// Create: required fields, mail-enabled refused, unknown property.
	for body, want := range map[string]string{
		`{"displayName":"X","mailEnabled":false,"securityEnabled":true}`:                                 "mailNickname",
		`{"mailEnabled":false,"mailNickname":"x","securityEnabled":true}`:                                "displayName",
		`{"displayName":"X","mailNickname":"x","securityEnabled":true}`:                                  "mailEnabled",
		`{"displayName":"X","mailEnabled":false,"mailNickname":"x"}`:                                     "securityEnabled",
		`{"displayName":"X","mailEnabled":true,"mailNickname":"x","securityEnabled":true}`:               MsgMailEnabledGroup,
		`{"displayName":"X","mailEnabled":false,"mailNickname":"a b","securityEnabled":true}`:            "mailNickname",
		`{"displayName":"X","mailEnabled":false,"mailNickname":"x","securityEnabled":true,"colour":"r"}`: "colour",
	} {
		st, m, _ := c.graph(http.MethodPost, "/groups", body)
		if st != 400 || errCode(m) != "Request_BadRequest" || !strings.Contains(errMsg(m), want) {
			t.Errorf("%s: %d %v", body, st, m)
		}
	}
	st, m, _ := c.graph(http.MethodPost, "/groups", `{"displayName":"Staff","description":"All staff","mailEnabled":false,"mailNickname":"staff","securityEnabled":true}`)
	if st != 201 || m["id"] == nil || m["securityEnabled"] != true || m["mailEnabled"] != false || m["description"] != "All staff" {
		t.Fatalf("create: %d %v", st, m)
	}
	if n := len(c.s.Groups()); n != 4 {
		t.Fatalf("%d groups", n)
	}
	if st, m, _ := c.graph(http.MethodGet, "/groups/"+m["id"].(string), ""); st != 200 || m["displayName"] != "Staff" {
		t.Fatalf("get: %d %v", st, m)
	}
	if n := c.s.Count(http.MethodPost, KindGroups); n != 8 {
		t.Fatalf("Count(POST, groups) = %d", n)
	}
	if n := c.s.Count(http.MethodGet, KindGroup); n != 1 {
		t.Fatalf("Count(GET, group) = %d", n)
	}
}

func TestGroupMembership(t *testing.T) {
	c := newClient(t)
	alice := c.s.AddUser(User{UserPrincipalName: "alice@x.com", AccountEnabled: true})
	bob := c.s.AddUser(User{UserPrincipalName: "bob@x.com", AccountEnabled: true})
	nested := c.s.AddGroup("Nested")
	g := c.s.AddGroup("Staff", bob.ID, nested.ID)
	ref := func(id string) string {
		return `{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/` + id + `"}`
	}
	path := "/groups/" + g.ID + "/members/$ref"

	steps := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		msg    string
	}{
		{"add", http.MethodPost, path, ref(alice.ID), 204, ""},
		{"add again", http.MethodPost, path, ref(alice.ID), 400, MsgMemberExists},
		{"add unknown object", http.MethodPost, path, ref("00000000-0000-0000-0000-000000000000"), 404, "does not exist"},
		{"add to unknown group", http.MethodPost, "/groups/nope/members/$ref", ref(alice.ID), 404, "does not exist"},
		{"bad reference", http.MethodPost, path, `{"@odata.id":"https://evil.example/v1.0/directoryObjects/` + alice.ID + `"}`, 400, "Invalid object identifier"},
		{"fake's own host", http.MethodPost, path, `{"@odata.id":"` + c.s.URL() + `/v1.0/directoryObjects/` + alice.ID + `"}`, 400, MsgMemberExists},
		{"escaped $ref", http.MethodDelete, "/groups/" + g.ID + "/members/" + alice.ID + "/%24ref", "", 204, ""},
		{"remove again", http.MethodDelete, "/groups/" + g.ID + "/members/" + alice.ID + "/$ref", "", 404, "does not exist"},
	}
	for _, st := range steps {
		status, m, _ := c.graph(st.method, st.path, st.body)
		if status != st.status || (st.msg != "" && !strings.Contains(errMsg(m), st.msg)) {
			t.Fatalf("%s: %d %v", st.name, status, m)
		}
	}
	if got := c.s.GroupMembers(g.ID); len(got) != 2 || got[0] != bob.ID || got[1] != nested.ID {
		t.Fatalf("members %v", got)
	}
	if c.s.GroupMembers("nope") != nil {
		t.Fatal("members of a missing group")
	}
	if n := c.s.Count(http.MethodPost, KindMemberRef); n != 6 {
		t.Fatalf("Count(POST, memberref) = %d", n)
	}
	if n := c.s.Count(http.MethodDelete, KindMemberRef); n != 2 {
		t.Fatalf("Count(DELETE, memberref) = %d", n)
	}

	// Listing: every item typed; the cast keeps users only.
	items, _ := c.walk("/groups/" + g.ID + "/members?$select=id")
	if len(items) != 2 || items[0]["@odata.type"] != "#microsoft.graph.user" || items[1]["@odata.type"] != "#microsoft.graph.group" {
		t.Fatalf("members: %v", items)
	}
	items, _ = c.walk("/groups/" + g.ID + "/members/microsoft.graph.user?$select=id")
	if len(items) != 1 || items[0]["id"] != bob.ID {
		t.Fatalf("users: %v", items)
	}
	if n := c.s.Count(http.MethodGet, KindMembers); n != 2 {
		t.Fatalf("Count(GET, members) = %d", n)
	}

	// A deleted user leaves every group.
	c.graph(http.MethodDelete, "/users/"+bob.ID, "")
	if got := c.s.GroupMembers(g.ID); len(got) != 1 {
		t.Fatalf("after delete: %v", got)
	}

	// Distribution lists cannot be changed through Graph.
	dl := c.s.InsertGroup(Group{DisplayName: "All", MailEnabled: true})
	if st, m, _ := c.graph(http.MethodPost, "/groups/"+dl.ID+"/members/$ref", ref(alice.ID)); st != 400 || errMsg(m) != MsgMailEnabledUpdate {
		t.Fatalf("distribution list: %d %v", st, m)
	}
}

func TestMemberPaging(t *testing.T) {
	c := newClient(t)
	var ids []string
	for i := 0; i < 25; i++ {
		ids = append(ids, c.s.AddUser(User{UserPrincipalName: fmt.Sprintf("m%02d@x.com", i)}).ID)
	}
	g := c.s.AddGroup("Big", ids...)
	c.s.MaxPageSize(10)
	items, pages := c.walk("/groups/" + g.ID + "/members?$select=id&$top=999")
	if len(items) != 25 || pages != 3 {
		t.Fatalf("%d items in %d pages", len(items), pages)
	}
	for i, it := range items {
		if it["id"] != ids[i] {
			t.Fatalf("item %d = %v", i, it)
		}
	}
	c.s.MaxPageSize(0)
	if _, pages := c.walk("/groups/" + g.ID + "/members?$top=7"); pages != 4 {
		t.Fatalf("$top=7: %d pages", pages)
	}
	if st, _, _ := c.graph(http.MethodGet, "/groups/"+g.ID+"/members?$top=0", ""); st != 400 {
		t.Fatal("$top=0 accepted")
	}
}

func TestUserImportPaging(t *testing.T) {
	c := newClient(t)
	enabled := map[string]bool{}
	for i := 0; i < 260; i++ {
		u := c.s.AddUser(User{UserPrincipalName: fmt.Sprintf("u%03d@x.com", i), AccountEnabled: i%10 != 0,
			GivenName: "G", Surname: "S", Attributes: map[string]any{"mail": fmt.Sprintf("u%03d@x.com", i)}})
		if u.AccountEnabled {
			enabled[u.ID] = true
		}
	}
	items, pages := c.walk("/users?$filter=accountEnabled%20eq%20true&$select=id,userPrincipalName,mail,mailNickname,givenName,surname,displayName&$top=100")
	if len(items) != len(enabled) || pages != 3 {
		t.Fatalf("%d users in %d pages, want %d in 3", len(items), pages, len(enabled))
	}
	seen := map[string]bool{}
	for _, it := range items {
		id := it["id"].(string)
		if !enabled[id] || seen[id] || it["mail"] == nil || it["mailNickname"] == nil || it["givenName"] != "G" {
			t.Fatalf("item %v", it)
		}
		seen[id] = true
	}
}

func TestGroupInjectedFailures(t *testing.T) {
	c := newClient(t)
	u := c.s.AddUser(User{UserPrincipalName: "a@x.com"})
	g := c.s.AddGroup("Staff")

	c.s.Throttle(1, 2*time.Second)
	if st, _, h := c.graph(http.MethodGet, "/groups?$filter=displayName%20eq%20'Staff'", ""); st != 429 || h.Get("Retry-After") != "2" {
		t.Fatalf("throttle: %d", st)
	}
	c.s.SetDown(true)
	if st, _, h := c.graph(http.MethodPost, "/groups/"+g.ID+"/members/$ref", `{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/`+u.ID+`"}`); st != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("down: %d", st)
	}
	c.s.SetDown(false)
	c.s.Fail(Fault{Kind: KindMemberRef, Method: http.MethodDelete, Status: 500, Code: "generalException"})
	if st, _, _ := c.graph(http.MethodGet, "/groups/"+g.ID+"/members", ""); st != 200 {
		t.Fatal("fault matched the wrong kind")
	}
	if st, _, _ := c.graph(http.MethodDelete, "/groups/"+g.ID+"/members/"+u.ID+"/$ref", ""); st != 500 {
		t.Fatal("fault not applied")
	}
	c.s.DenyWrites(true)
	if st, m, _ := c.graph(http.MethodPost, "/groups", `{"displayName":"X","mailEnabled":false,"mailNickname":"x","securityEnabled":true}`); st != 403 || errCode(m) != "Authorization_RequestDenied" {
		t.Fatalf("deny: %d %v", st, m)
	}
	c.s.DenyWrites(false)

	// Replication: a group created moments ago is not listed, and a
	// member cannot be added to it yet.
	now := time.Now()
	c.s.SetClock(func() time.Time { return now })
	c.s.ReplicationDelay(time.Minute)
	st, m, _ := c.graph(http.MethodPost, "/groups", `{"displayName":"Fresh","mailEnabled":false,"mailNickname":"fresh","securityEnabled":true}`)
	if st != 201 {
		t.Fatalf("create: %d %v", st, m)
	}
	id := m["id"].(string)
	if st, m, _ := c.graph(http.MethodGet, "/groups?$filter=displayName%20eq%20'Fresh'", ""); st != 200 || len(m["value"].([]any)) != 0 {
		t.Fatalf("listed before replication: %v", m)
	}
	if st, m, _ := c.graph(http.MethodPost, "/groups/"+id+"/members/$ref", `{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/`+u.ID+`"}`); st != 400 || errMsg(m) != MsgReferenceNotReplicated {
		t.Fatalf("add before replication: %d %v", st, m)
	}
	now = now.Add(time.Minute)
	if st, _, _ := c.graph(http.MethodPost, "/groups/"+id+"/members/$ref", `{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/`+u.ID+`"}`); st != 204 {
		t.Fatalf("add after replication: %d", st)
	}
}
