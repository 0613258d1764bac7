package entra_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	gsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
)

// TestRefusedAttributes: an attribute Graph refuses fails that attribute,
// never the account, whether Graph names it or not, at create and update.
func TestRefusedAttributes(t *testing.T) {
	attrs := map[string]string{"jobTitle": "Engineer", "employeeType": "Contractor", "businessPhones": "+1 555 0100"}
	cases := []struct {
		name      string
		refuse    string // property the fake refuses
		named     bool
		wantCalls int // POSTs + PATCHes of the create
	}{
		{"named", "employeeType", true, 2},    // refused POST, POST without it
		{"unnamed", "employeeType", false, 5}, // refused POST, bare POST, one PATCH per attribute
		{"unknown to Graph", "", true, 2},     // favouriteColour: not a user property
		{"businessPhones named", "businessPhones", true, 2},
	}
	for _, tc := range cases {
		for _, op := range []string{"create", "update"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				fg := newFake(t)
				c, _ := newConnector(t, fg)
				a := gsync.Account{UPN: "dana@contoso.com", MailNickname: "dana", GivenName: "Dana", Surname: "Scully", Enabled: true,
					Attributes: map[string]string{}}
				for k, v := range attrs {
					a.Attributes[k] = v
				}
				refuse := tc.refuse
				if refuse == "" {
					refuse = "favouriteColour"
					a.Attributes[refuse] = "blue"
				} else {
					fg.RefuseProperty(refuse, tc.named)
				}
				var id string
				var err error
				if op == "create" {
					var ru *gsync.RemoteUser
					ru, err = c.CreateUser(ctx(t), a, pw(goodPW))
					if ru == nil {
						t.Fatalf("create failed: %v", err)
					}
					id = ru.ID
				} else {
					id = fg.AddUser(fakegraph.User{UserPrincipalName: a.UPN, AccountEnabled: true}).ID
					fg.ResetLog()
					err = c.UpdateUser(ctx(t), id, a)
				}
				var names []string
				refused, rest := gsync.Refusals(err)
				if rest != nil {
					t.Fatalf("want a partial success, got %v", rest)
				}
				for _, r := range refused {
					names = append(names, r.Name)
					if r.Message == "" {
						t.Errorf("refusal of %s without Graph's message", r.Name)
					}
				}
				if strings.Join(names, ",") != refuse {
					t.Fatalf("refused %v, want %s", names, refuse)
				}
				u, _ := fg.User(id)
				if u.GivenName != "Dana" {
					t.Fatalf("account not written: %+v", u)
				}
				for k, v := range attrs {
					if k == refuse {
						if _, set := u.Attributes[k]; set {
							t.Errorf("refused %s is set", k)
						}
						continue
					}
					got := fmt.Sprint(u.Attributes[k])
					if k == "businessPhones" {
						v = "[" + v + "]"
					}
					if got != v {
						t.Errorf("%s = %s, want %s", k, got, v)
					}
				}
				if op == "create" {
					if n := fg.Count(http.MethodPost, fakegraph.KindUsers) + fg.Count(http.MethodPatch, fakegraph.KindUser); n != tc.wantCalls {
						t.Errorf("%d calls, want %d", n, tc.wantCalls)
					}
					if n := len(fg.Users()); n != 1 {
						t.Fatalf("%d accounts", n)
					}
				}
			})
		}
	}
}

// TestAccountFailureIsNotAnAttribute: a 400 about the account itself (a
// duplicate name, an unverified domain) is the account's failure, even
// with attributes in the body.
func TestAccountFailureIsNotAnAttribute(t *testing.T) {
	fg := newFake(t)
	fg.AddUser(fakegraph.User{UserPrincipalName: "taken@contoso.com", AccountEnabled: true})
	fg.SetDomains("contoso.com")
	c, _ := newConnector(t, fg)
	for _, upn := range []string{"taken@contoso.com", "x@elsewhere.org"} {
		_, err := c.CreateUser(ctx(t), gsync.Account{UPN: upn, Enabled: true, Attributes: map[string]string{"jobTitle": "x"}}, pw(goodPW))
		if e := syncErr(t, err); !e.Permanent || e.Status != 400 {
			t.Fatalf("%s: %+v", upn, e)
		}
	}
	if n := fg.Count(http.MethodPost, fakegraph.KindUsers); n != 2 {
		t.Fatalf("%d POSTs: an account failure was retried as an attribute one", n)
	}
}

func TestClearAttributes(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegraph.User{UserPrincipalName: "erin@contoso.com", AccountEnabled: true,
		Attributes: map[string]any{"jobTitle": "Intern", "department": "R&D", "businessPhones": []string{"+1"}}})
	c, _ := newConnector(t, fg)
	if err := c.UpdateUser(ctx(t), u.ID, gsync.Account{DisplayName: "Erin", Clear: []string{"jobTitle", "businessPhones"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := fg.User(u.ID)
	if _, ok := got.Attributes["jobTitle"]; ok || got.Attributes["department"] != "R&D" {
		t.Fatalf("after clearing: %+v", got.Attributes)
	}
	if _, ok := got.Attributes["businessPhones"]; ok {
		t.Fatalf("businessPhones not cleared: %+v", got.Attributes)
	}
	reqs := fg.Requests()
	if b := reqs[len(reqs)-1].Body; !strings.Contains(b, `"businessPhones":[]`) || !strings.Contains(b, `"jobTitle":null`) {
		t.Fatalf("wire shape of a clear: %s", b)
	}
}

// TestManagerReference: the manager is a reference (PUT manager/$ref to
// the manager's object), changed and removed with it.
func TestManagerReference(t *testing.T) {
	fg := newFake(t)
	boss := fg.AddUser(fakegraph.User{UserPrincipalName: "boss@contoso.com", AccountEnabled: true})
	boss2 := fg.AddUser(fakegraph.User{UserPrincipalName: "boss2@contoso.com", AccountEnabled: true})
	c, _ := newConnector(t, fg)

	ru, err := c.CreateUser(ctx(t), gsync.Account{UPN: "dana@contoso.com", Enabled: true, ManagerID: boss.ID}, pw(goodPW))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := fg.Manager(ru.ID); m != boss.ID {
		t.Fatalf("manager after create = %q, want %s", m, boss.ID)
	}
	var put fakegraph.Request
	for _, r := range fg.Requests() {
		if r.Kind == fakegraph.KindManager && r.Method == http.MethodPut {
			put = r
		}
	}
	if !strings.HasSuffix(put.Path, "/manager/$ref") || put.Body != `{"@odata.id":"`+fg.URL()+`/v1.0/users/`+boss.ID+`"}` {
		t.Fatalf("PUT %s %s", put.Path, put.Body)
	}

	steps := []struct {
		name string
		acct gsync.Account
		want string
	}{
		{"change", gsync.Account{DisplayName: "Dana", ManagerID: boss2.ID}, boss2.ID},
		{"untouched", gsync.Account{DisplayName: "Dana"}, boss2.ID},
		{"clear", gsync.Account{DisplayName: "Dana", ClearManager: true}, ""},
		{"clear again is no error", gsync.Account{DisplayName: "Dana", ClearManager: true}, ""},
	}
	for _, st := range steps {
		if err := c.UpdateUser(ctx(t), ru.ID, st.acct); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if m, _ := fg.Manager(ru.ID); m != st.want {
			t.Fatalf("%s: manager %q, want %q", st.name, m, st.want)
		}
	}

	// A manager Graph refuses is reported; the rest of the update stands.
	fg.RefuseProperty(entra.ManagerProperty, true)
	err = c.UpdateUser(ctx(t), ru.ID, gsync.Account{DisplayName: "Dana B", ManagerID: boss.ID})
	if got := refusedNames(t, err); got != "manager" {
		t.Fatalf("refused %q", got)
	}
	if u, _ := fg.User(ru.ID); u.DisplayName != "Dana B" || u.ManagerID != "" {
		t.Fatalf("after a refused manager: %+v", u)
	}
	// A manager not visible yet is transient.
	fg.AcceptProperty(entra.ManagerProperty)
	err = c.UpdateUser(ctx(t), ru.ID, gsync.Account{DisplayName: "Dana", ManagerID: "99999999-9999-4999-8999-999999999999"})
	if e := syncErr(t, err); e.Permanent || e.Status != 404 {
		t.Fatalf("missing manager: %+v", e)
	}
}

func TestAttributeConfigDefaults(t *testing.T) {
	var c entra.DirectoryConfig
	c.Defaults()
	want := map[string]string{"title": "jobTitle", "department": "department", "company": "companyName",
		"location": "officeLocation", "employeeType": "employeeType", "telephoneNumber": "businessPhones",
		"mobile": "mobilePhone", "postalAddress": "streetAddress", "manager": "manager"}
	if fmt.Sprint(c.Attributes) != fmt.Sprint(want) {
		t.Fatalf("defaults %v", c.Attributes)
	}
	for _, name := range gsync.StandardAttributes {
		if c.Attributes[name] == "" {
			t.Errorf("standard attribute %s has no default", name)
		}
	}
	// Each block has its own map.
	var d entra.DirectoryConfig
	d.Defaults()
	d.Attributes["title"] = "x"
	if c.Attributes["title"] != "jobTitle" {
		t.Fatal("blocks share the defaults map")
	}
}
