package entra_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	gsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
)

func TestFindGroups(t *testing.T) {
	fg := newFake(t)
	one := fg.AddGroup("Engineering")
	twoA := fg.AddGroup("Sales")
	twoB := fg.AddGroup("SALES")
	apos := fg.AddGroup("O'Brien's Team")
	fg.AddGroup("Sales EMEA")
	// Not security groups: a distribution list, a mail-enabled security
	// group and a Microsoft 365 group of a taken name, and of a new one.
	for _, name := range []string{"Sales", "Marketing"} {
		fg.InsertGroup(fakegraph.Group{DisplayName: name, MailEnabled: true})
		fg.InsertGroup(fakegraph.Group{DisplayName: name, MailEnabled: true, SecurityEnabled: true})
		fg.InsertGroup(fakegraph.Group{DisplayName: name, MailEnabled: true, GroupTypes: []string{"Unified"}})
	}
	c, _ := newConnector(t, fg)

	cases := []struct {
		name string
		q    string
		want []string
	}{
		{"none", "Marketing", nil},
		{"one", "Engineering", []string{one.ID}},
		{"one, other case", "engineering", []string{one.ID}},
		{"two with the same name", "Sales", []string{twoA.ID, twoB.ID}},
		{"apostrophes", "O'Brien's Team", []string{apos.ID}},
		{"quote alone", "'", nil},
		{"OData-looking text stays a literal", "x' or displayName eq 'Sales", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg.ResetLog()
			got, err := c.FindGroups(ctx(t), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("nil slice; want empty")
			}
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
				if !strings.EqualFold(g.Name, tc.q) {
					t.Fatalf("returned %+v for %q", g, tc.q)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("ids %v, want %v", ids, tc.want)
			}
			var reqs []fakegraph.Request
			for _, r := range fg.Requests() {
				if r.Kind != fakegraph.KindToken {
					reqs = append(reqs, r)
				}
			}
			if len(reqs) != 1 || reqs[0].Kind != fakegraph.KindGroups || !strings.Contains(reqs[0].RawQuery, "$select=id,displayName,securityEnabled,mailEnabled") {
				t.Fatalf("requests %+v", reqs)
			}
			if strings.ContainsAny(reqs[0].RawQuery, " '+") {
				t.Fatalf("query not escaped: %s", reqs[0].RawQuery)
			}
		})
	}
	if _, err := c.FindGroups(ctx(t), " "); !gsync.IsPermanent(err) {
		t.Fatalf("empty name: %v", err)
	}
}

func TestFindGroupsPaging(t *testing.T) {
	fg := newFake(t)
	var want []string
	for i := 0; i < 5; i++ {
		want = append(want, fg.AddGroup("Dup").ID)
	}
	fg.MaxPageSize(2)
	c, _ := newConnector(t, fg)
	got, err := c.FindGroups(ctx(t), "dup")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range got {
		ids = append(ids, g.ID)
	}
	if !slices.Equal(ids, want) || fg.Count(http.MethodGet, fakegraph.KindGroups) != 3 {
		t.Fatalf("ids %v in %d requests", ids, fg.Count(http.MethodGet, fakegraph.KindGroups))
	}
}

func TestCreateGroupThenFind(t *testing.T) {
	cases := []struct {
		name     string
		spec     gsync.GroupSpec
		wantNick string
		wantDesc bool
	}{
		{"plain", gsync.GroupSpec{Name: "VPN Users", Description: "May use the VPN", MailNickname: "vpn-users"}, "vpn-users", true},
		{"nickname from the name, sanitised", gsync.GroupSpec{Name: "Sales & Marketing (EU): \"all\""}, "Sales&MarketingEUall", false},
		{"nickname sanitised", gsync.GroupSpec{Name: "Ops", MailNickname: "ops team@corp"}, "opsteamcorp", false},
		{"nothing usable", gsync.GroupSpec{Name: "Équipe é", MailNickname: "éé"}, "quipe", false},
		{"nothing at all", gsync.GroupSpec{Name: "日本"}, "group", false},
		{"apostrophe", gsync.GroupSpec{Name: "D'Arcy's"}, "D'Arcy's", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			c, _ := newConnector(t, fg)
			rg, err := c.CreateGroup(ctx(t), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if rg.ID == "" || rg.Name != tc.spec.Name {
				t.Fatalf("created %+v", rg)
			}
			g, ok := fg.Group(rg.ID)
			if !ok || !g.SecurityEnabled || g.MailEnabled || g.MailNickname != tc.wantNick || g.Description != tc.spec.Description {
				t.Fatalf("fake has %+v", g)
			}
			var posts int
			for _, r := range fg.Requests() {
				if r.Method == http.MethodPost && r.Kind == fakegraph.KindGroups {
					posts++
					if strings.Contains(r.Body, `"description"`) != tc.wantDesc ||
						!strings.Contains(r.Body, `"securityEnabled":true`) || !strings.Contains(r.Body, `"mailEnabled":false`) {
						t.Fatalf("POST body %s", r.Body)
					}
				}
			}
			if posts != 1 {
				t.Fatalf("%d POSTs", posts)
			}
			found, err := c.FindGroups(ctx(t), tc.spec.Name)
			if err != nil || len(found) != 1 || found[0].ID != rg.ID {
				t.Fatalf("find after create: %+v %v", found, err)
			}
			// A second group with the same name (SPEC 4.4: more than one
			// existing → the engine creates its own) is found alongside.
			rg2, err := c.CreateGroup(ctx(t), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			found, err = c.FindGroups(ctx(t), tc.spec.Name)
			if err != nil || len(found) != 2 || found[1].ID != rg2.ID {
				t.Fatalf("find after second create: %+v %v", found, err)
			}
		})
	}

	t.Run("refused before Graph", func(t *testing.T) {
		fg := newFake(t)
		c, _ := newConnector(t, fg)
		for _, spec := range []gsync.GroupSpec{{Name: ""}, {Name: "  "}, {Name: strings.Repeat("x", 257)}} {
			if _, err := c.CreateGroup(ctx(t), spec); !gsync.IsPermanent(err) {
				t.Fatalf("%q: %v", spec.Name, err)
			}
		}
		if n := fg.Count(http.MethodPost, fakegraph.KindGroups); n != 0 {
			t.Fatalf("%d POSTs", n)
		}
	})

	t.Run("missing permission", func(t *testing.T) {
		fg := newFake(t)
		fg.DenyWrites(true)
		c, _ := newConnector(t, fg)
		_, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "X"})
		e := syncErr(t, err)
		if !e.Permanent || e.Status != 403 || !strings.Contains(e.Message, "Group.ReadWrite.All") || !strings.Contains(e.Message, "Group.Create") {
			t.Fatalf("%+v", e)
		}
	})
}

func TestMembership(t *testing.T) {
	fg := newFake(t)
	alice := fg.AddUser(fakegraph.User{UserPrincipalName: "alice@contoso.com", AccountEnabled: true})
	bob := fg.AddUser(fakegraph.User{UserPrincipalName: "bob@contoso.com", AccountEnabled: true})
	g := fg.AddGroup("Staff")
	c, _ := newConnector(t, fg)
	const missing = "99999999-9999-9999-9999-999999999999"

	steps := []struct {
		name     string
		do       func() error
		notFound bool
		members  []string
	}{
		{"add alice", func() error { return c.AddMember(ctx(t), g.ID, alice.ID) }, false, []string{alice.ID}},
		{"add alice again (idempotent)", func() error { return c.AddMember(ctx(t), g.ID, alice.ID) }, false, []string{alice.ID}},
		{"add bob", func() error { return c.AddMember(ctx(t), g.ID, bob.ID) }, false, []string{alice.ID, bob.ID}},
		{"remove alice", func() error { return c.RemoveMember(ctx(t), g.ID, alice.ID) }, false, []string{bob.ID}},
		{"remove alice again (idempotent)", func() error { return c.RemoveMember(ctx(t), g.ID, alice.ID) }, false, []string{bob.ID}},
		{"remove from a missing group", func() error { return c.RemoveMember(ctx(t), missing, alice.ID) }, false, []string{bob.ID}},
		{"add a missing user", func() error { return c.AddMember(ctx(t), g.ID, missing) }, true, []string{bob.ID}},
		{"add to a missing group", func() error { return c.AddMember(ctx(t), missing, alice.ID) }, true, []string{bob.ID}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			if st.notFound {
				if !errors.Is(err, gsync.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := fg.GroupMembers(g.ID); !slices.Equal(got, st.members) {
				t.Fatalf("members %v, want %v", got, st.members)
			}
			got, err := c.ListMembers(ctx(t), g.ID)
			if err != nil || !slices.Equal(got, st.members) {
				t.Fatalf("ListMembers %v %v", got, err)
			}
		})
	}

	// Every add sent the reference built from graph_url, once (no retries).
	var adds int
	for _, r := range fg.Requests() {
		if r.Method == http.MethodPost && r.Kind == fakegraph.KindMemberRef {
			adds++
			if !strings.Contains(r.Body, `"@odata.id":"`+fg.URL()+`/v1.0/directoryObjects/`) {
				t.Fatalf("reference %s", r.Body)
			}
		}
	}
	if adds != 5 {
		t.Fatalf("%d POSTs", adds)
	}
	for _, f := range []func() error{
		func() error { return c.AddMember(ctx(t), "", alice.ID) },
		func() error { return c.RemoveMember(ctx(t), g.ID, " ") },
		func() error { _, err := c.ListMembers(ctx(t), ""); return err },
	} {
		if err := f(); !gsync.IsPermanent(err) {
			t.Fatalf("empty id: %v", err)
		}
	}
	if _, err := c.ListMembers(ctx(t), missing); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("members of a missing group: %v", err)
	}
}

func TestMembershipSpecialGroups(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegraph.User{UserPrincipalName: "carl@contoso.com", AccountEnabled: true})
	dl := fg.InsertGroup(fakegraph.Group{DisplayName: "All Hands", MailEnabled: true})
	c, _ := newConnector(t, fg)

	e := syncErr(t, c.AddMember(ctx(t), dl.ID, u.ID))
	if !e.Permanent || e.Status != 400 || !strings.Contains(e.Message, "Exchange Online") {
		t.Fatalf("distribution list: %+v", e)
	}

	// Replication: a group created a moment ago refuses members for a
	// while; that is transient.
	var clockMu stdsync.Mutex
	now := time.Now()
	fg.SetClock(func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now })
	fg.ReplicationDelay(time.Minute)
	rg, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "Fresh"})
	if err != nil {
		t.Fatal(err)
	}
	e = syncErr(t, c.AddMember(ctx(t), rg.ID, u.ID))
	if e.Permanent || !strings.Contains(e.Message, "replicated") {
		t.Fatalf("before replication: %+v", e)
	}
	clockMu.Lock()
	now = now.Add(time.Minute)
	clockMu.Unlock()
	if err := c.AddMember(ctx(t), rg.ID, u.ID); err != nil {
		t.Fatalf("after replication: %v", err)
	}

	// A bare 404 (not Graph's) on removal is not taken for "not a member".
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"t"}`)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	bare, err := entra.New(entra.Config{TenantID: "t", ClientID: "c", ClientSecret: pw("s"), AuthorityURL: srv.URL, GraphURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if e := syncErr(t, bare.RemoveMember(ctx(t), "g", "u")); !e.Permanent || !strings.Contains(e.Message, "graph_url") {
		t.Fatalf("bare 404: %+v", e)
	}
}

func TestListMembersPaging(t *testing.T) {
	fg := newFake(t)
	var users []string
	for i := 0; i < 23; i++ {
		users = append(users, fg.AddUser(fakegraph.User{UserPrincipalName: fmt.Sprintf("m%02d@contoso.com", i)}).ID)
	}
	nested := fg.AddGroup("Nested")
	members := append(users[:10:10], nested.ID)
	members = append(members, users[10:]...)
	g := fg.AddGroup("Big", members...)
	empty := fg.AddGroup("Empty")
	fg.MaxPageSize(5)
	c, _ := newConnector(t, fg)

	got, err := c.ListMembers(ctx(t), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, users) {
		t.Fatalf("got %d ids %v, want the 23 users in order", len(got), got)
	}
	if n := fg.Count(http.MethodGet, fakegraph.KindMembers); n != 5 {
		t.Fatalf("%d pages, want 5 (24 members by 5)", n)
	}
	got, err = c.ListMembers(ctx(t), empty.ID)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty group: %v %v", got, err)
	}
}

func TestListUsersImport(t *testing.T) {
	fg := newFake(t)
	enabled := map[string]fakegraph.User{}
	for i := 0; i < 250; i++ {
		u := fakegraph.User{
			UserPrincipalName: fmt.Sprintf("user%03d@contoso.com", i),
			GivenName:         "Given", Surname: fmt.Sprintf("S%03d", i),
			AccountEnabled: i%7 != 3,
		}
		if i%2 == 0 {
			u.Attributes = map[string]any{"mail": fmt.Sprintf("user%03d@mail.contoso.com", i)}
		}
		u = fg.AddUser(u)
		if u.AccountEnabled {
			enabled[u.ID] = u
		}
	}
	c, _ := newConnector(t, fg)

	seen := map[string]int{}
	token, pages := "", 0
	for {
		pages++
		if pages > 10 {
			t.Fatal("endless paging")
		}
		users, next, err := c.ListUsers(ctx(t), token)
		if err != nil {
			t.Fatal(err)
		}
		if next != "" && len(users) != entra.ImportPageSize {
			t.Fatalf("page %d has %d users", pages, len(users))
		}
		for _, u := range users {
			want, ok := enabled[u.ID]
			if !ok {
				t.Fatalf("disabled or unknown user %+v", u)
			}
			seen[u.ID]++
			wantMail, _ := want.Attributes["mail"].(string)
			if u.UPN != want.UserPrincipalName || u.Mail != wantMail || u.MailNickname != want.MailNickname ||
				u.GivenName != "Given" || u.Surname != want.Surname || u.DisplayName != want.DisplayName {
				t.Fatalf("got %+v, fake has %+v", u, want)
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(seen) != len(enabled) {
		t.Fatalf("%d users imported, %d enabled", len(seen), len(enabled))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("user %s listed %d times", id, n)
		}
	}
	if want := (len(enabled) + entra.ImportPageSize - 1) / entra.ImportPageSize; pages != want {
		t.Fatalf("%d pages, want %d", pages, want)
	}
	var first fakegraph.Request
	for _, r := range fg.Requests() {
		if r.Kind == fakegraph.KindUsers {
			first = r
			break
		}
	}
	for _, part := range []string{"$filter=accountEnabled%20eq%20true", "$top=100", "$select=id,userPrincipalName,mail,mailNickname,givenName,surname,displayName"} {
		if !strings.Contains(first.RawQuery, part) {
			t.Fatalf("first request %q lacks %q", first.RawQuery, part)
		}
	}
}

// hitCounter is a server that must never be contacted.
func hitCounter(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"value":[]}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestNextLinkToAnotherHostRefused(t *testing.T) {
	evil, hits := hitCounter(t)

	t.Run("page token from the caller", func(t *testing.T) {
		fg := newFake(t)
		fg.AddUser(fakegraph.User{UserPrincipalName: "a@contoso.com", AccountEnabled: true})
		c, _ := newConnector(t, fg)
		for _, tok := range []string{
			evil.URL + "/v1.0/users?$skiptoken=x",
			strings.Replace(fg.URL(), "127.0.0.1", "localhost", 1) + "/v1.0/users?$skiptoken=x",
			fg.URL() + "/beta/users?$skiptoken=x",
			fg.URL() + "/v1.0/../beta/users",
			strings.Replace(fg.URL(), "http://", "http://u:p@", 1) + "/v1.0/users",
			strings.Replace(fg.URL(), "http://", "https://", 1) + "/v1.0/users",
			"/v1.0/users?$skiptoken=x",
			"not a url at all",
		} {
			_, _, err := c.ListUsers(ctx(t), tok)
			if e := syncErr(t, err); !e.Permanent || !strings.Contains(e.Message, "refusing to follow") {
				t.Fatalf("%q: %+v", tok, e)
			}
			if strings.Contains(err.Error(), "u:p") {
				t.Fatal("credentials echoed")
			}
		}
		if n := len(fg.Requests()); n != 0 {
			t.Fatalf("%d requests reached Graph", n)
		}
	})

	t.Run("nextLink from Graph", func(t *testing.T) {
		// A Graph (or something posing as it) that links to another host.
		graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
				fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"t"}`)
			case strings.HasSuffix(r.URL.Path, "/members"):
				fmt.Fprintf(w, `{"value":[{"@odata.type":"#microsoft.graph.user","id":"u1"}],"@odata.nextLink":%q}`, evil.URL+"/v1.0/groups/g/members?$skiptoken=2")
			case strings.HasSuffix(r.URL.Path, "/groups"):
				fmt.Fprintf(w, `{"value":[{"id":"g1","displayName":"G"}],"@odata.nextLink":%q}`, evil.URL+"/v1.0/groups?$skiptoken=2")
			default:
				fmt.Fprintf(w, `{"value":[{"id":"u1","userPrincipalName":"a@b.c"}],"@odata.nextLink":%q}`, evil.URL+"/v1.0/users?$skiptoken=2")
			}
		}))
		defer graph.Close()
		c, err := entra.New(entra.Config{TenantID: "t", ClientID: "c", ClientSecret: pw("s"), AuthorityURL: graph.URL, GraphURL: graph.URL})
		if err != nil {
			t.Fatal(err)
		}
		calls := map[string]func() error{
			"ListUsers":   func() error { _, _, err := c.ListUsers(ctx(t), ""); return err },
			"FindGroups":  func() error { _, err := c.FindGroups(ctx(t), "G"); return err },
			"ListMembers": func() error { _, err := c.ListMembers(ctx(t), "g"); return err },
		}
		for name, call := range calls {
			e := syncErr(t, call())
			if !e.Permanent || !strings.Contains(e.Message, "refusing to follow") {
				t.Fatalf("%s: %+v", name, e)
			}
		}
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the other host was contacted %d times", n)
	}
}

func TestGroupCallsTransient(t *testing.T) {
	ops := []struct {
		name string
		kind string
		call func(c *entra.Connector, t *testing.T, gid, uid string) error
	}{
		{"FindGroups", fakegraph.KindGroups, func(c *entra.Connector, t *testing.T, gid, uid string) error {
			_, err := c.FindGroups(ctx(t), "Staff")
			return err
		}},
		{"CreateGroup", fakegraph.KindGroups, func(c *entra.Connector, t *testing.T, gid, uid string) error {
			_, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "New"})
			return err
		}},
		{"AddMember", fakegraph.KindMemberRef, func(c *entra.Connector, t *testing.T, gid, uid string) error {
			return c.AddMember(ctx(t), gid, uid)
		}},
		{"RemoveMember", fakegraph.KindMemberRef, func(c *entra.Connector, t *testing.T, gid, uid string) error {
			return c.RemoveMember(ctx(t), gid, uid)
		}},
		{"ListMembers", fakegraph.KindMembers, func(c *entra.Connector, t *testing.T, gid, uid string) error {
			_, err := c.ListMembers(ctx(t), gid)
			return err
		}},
		{"ListUsers", fakegraph.KindUsers, func(c *entra.Connector, t *testing.T, gid, uid string) error {
			_, _, err := c.ListUsers(ctx(t), "")
			return err
		}},
	}
	faults := []struct {
		name   string
		inject func(fg *fakegraph.Server)
		status int
		retry  time.Duration
	}{
		{"429", func(fg *fakegraph.Server) { fg.Throttle(1, 7*time.Second) }, 429, 7 * time.Second},
		{"503", func(fg *fakegraph.Server) { fg.SetDown(true) }, 503, 5 * time.Second},
	}
	for _, op := range ops {
		for _, f := range faults {
			t.Run(op.name+" "+f.name, func(t *testing.T) {
				fg := newFake(t)
				u := fg.AddUser(fakegraph.User{UserPrincipalName: "dee@contoso.com", AccountEnabled: true})
				g := fg.AddGroup("Staff", u.ID)
				c, _ := newConnector(t, fg)
				f.inject(fg)
				e := syncErr(t, op.call(c, t, g.ID, u.ID))
				if e.Permanent || e.Status != f.status || e.RetryAfter != f.retry {
					t.Fatalf("%+v", e)
				}
				if gsync.IsPermanent(e) {
					t.Fatal("IsPermanent")
				}
				if d, ok := gsync.RetryAfter(e); !ok || d != f.retry {
					t.Fatalf("RetryAfter %v %v", d, ok)
				}
				var n int
				for _, r := range fg.Requests() {
					if r.Kind == op.kind {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("%d requests: the connector must not retry", n)
				}
				fg.SetDown(false)
				if err := op.call(c, t, g.ID, u.ID); err != nil {
					t.Fatalf("after the fault: %v", err)
				}
			})
		}
	}
}

func TestMembershipConcurrent(t *testing.T) {
	fg := newFake(t)
	g := fg.AddGroup("Crowd")
	var ids []string
	for i := 0; i < 12; i++ {
		ids = append(ids, fg.AddUser(fakegraph.User{UserPrincipalName: fmt.Sprintf("c%02d@contoso.com", i)}).ID)
	}
	fg.Latency(5 * time.Millisecond)
	c, _ := newConnector(t, fg)
	var wg stdsync.WaitGroup
	errs := make(chan error, 64)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range []func() error{
				func() error { return c.AddMember(context.Background(), g.ID, id) },
				func() error { return c.AddMember(context.Background(), g.ID, id) },
				func() error { _, err := c.ListMembers(context.Background(), g.ID); return err },
			} {
				if err := f(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := c.ListMembers(ctx(t), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("members %v", got)
	}
	if n := fg.TokensIssued(); n != 1 {
		t.Fatalf("%d tokens", n)
	}
}
