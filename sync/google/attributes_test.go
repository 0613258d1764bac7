package google_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/fakegoogle"
	gsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/google"
)

func refusedNames(t *testing.T, err error) string {
	t.Helper()
	refused, rest := gsync.Refusals(err)
	if rest != nil {
		t.Fatalf("want *sync.AttributesRefused, got %T %v", err, err)
	}
	var names []string
	for _, r := range refused {
		names = append(names, r.Name)
		if r.Message == "" {
			t.Errorf("refusal of %s without Google's message", r.Name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// TestRefusedAttributes: a field Google refuses fails that attribute (or
// the attributes of that field), never the account, named or not, at
// insert and patch.
func TestRefusedAttributes(t *testing.T) {
	cases := []struct {
		name   string
		refuse string
		named  bool
		want   string // refused properties
	}{
		{"property named", "organizations.description", true, "organizations.description"},
		{"field named", "relations", true, "relations.manager"},
		{"type named", "phones.mobile", true, "phones.mobile"},
		{"unnamed", "organizations.description", false, "organizations.description,organizations.title"},
	}
	for _, tc := range cases {
		for _, op := range []string{"create", "update"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				fg := newFake(t)
				c, _ := newConnector(t, fg)
				fg.RefuseField(tc.refuse, tc.named)
				a := gsync.Account{UPN: "dana@example.com", GivenName: "Dana", Surname: "Scully", Enabled: true,
					Attributes: map[string]string{"organizations.title": "Agent", "organizations.description": "Contractor",
						"phones.work": "+1 555 0100", "phones.mobile": "+1 555 0101"},
					ManagerUPN: "boss@example.com"}
				var id string
				var err error
				if op == "create" {
					ru, cerr := c.CreateUser(ctx(t), a, pw("Correct-Horse-42"))
					if ru == nil {
						t.Fatalf("create failed: %v", cerr)
					}
					id, err = ru.ID, cerr
				} else {
					id = fg.AddUser(fakegoogle.User{PrimaryEmail: a.UPN, GivenName: "D", FamilyName: "S"}).ID
					err = c.UpdateUser(ctx(t), id, a)
				}
				if got := refusedNames(t, err); got != tc.want {
					t.Fatalf("refused %q, want %q", got, tc.want)
				}
				u, _ := fg.User(id)
				if u.GivenName != "Dana" {
					t.Fatalf("account not written: %+v", u)
				}
				refused := map[string]bool{}
				for _, p := range strings.Split(tc.want, ",") {
					refused[p] = true
				}
				checks := map[string]string{
					"organizations.title":       fmt.Sprint(u.Organization()["title"]),
					"organizations.description": fmt.Sprint(u.Organization()["description"]),
					"phones.work":               u.Phone("work"),
					"phones.mobile":             u.Phone("mobile"),
					"relations.manager":         u.Relation("manager"),
				}
				for p, got := range checks {
					want := a.Attributes[p]
					if p == "relations.manager" {
						want = a.ManagerUPN
					}
					if refused[p] {
						if got == want {
							t.Errorf("refused %s is set", p)
						}
					} else if got != want {
						t.Errorf("%s = %q, want %q", p, got, want)
					}
				}
				if n := len(fg.Users()); op == "create" && n != 1 {
					t.Fatalf("%d accounts", n)
				}
			})
		}
	}
}

// TestAccountFailureIsNotAnAttribute: a 400 about the account itself is
// its failure, attributes or not.
func TestAccountFailureIsNotAnAttribute(t *testing.T) {
	fg := newFake(t)
	c, _ := newConnector(t, fg)
	_, err := c.CreateUser(ctx(t), gsync.Account{UPN: "x@elsewhere.org", GivenName: "X", Surname: "Y", Enabled: true,
		Attributes: map[string]string{"organizations.title": "x"}}, pw("Correct-Horse-42"))
	if e := syncErr(t, err); !e.Permanent || e.Status != 400 {
		t.Fatalf("%+v", e)
	}
	if n := fg.Count(http.MethodPost, fakegoogle.KindUsers); n != 1 {
		t.Fatalf("%d inserts: an account failure was retried as an attribute one", n)
	}
}

// TestManagerRelation: the manager is a relations entry of type manager
// holding the manager's email, changed and removed with it.
func TestManagerRelation(t *testing.T) {
	fg := newFake(t)
	c, _ := newConnector(t, fg)
	ru, err := c.CreateUser(ctx(t), gsync.Account{UPN: "dana@example.com", GivenName: "Dana", Surname: "S", Enabled: true,
		ManagerUPN: "boss@example.com", ManagerID: "1"}, pw("Correct-Horse-42"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		acct gsync.Account
		want string
	}{
		{"created", gsync.Account{}, "boss@example.com"},
		{"change", gsync.Account{GivenName: "Dana", Surname: "S", ManagerUPN: "boss2@example.com", ManagerID: "2"}, "boss2@example.com"},
		{"untouched", gsync.Account{GivenName: "Dana", Surname: "S"}, "boss2@example.com"},
		{"clear", gsync.Account{GivenName: "Dana", Surname: "S", ClearManager: true}, ""},
	}
	for i, st := range steps {
		if i > 0 {
			if err := c.UpdateUser(ctx(t), ru.ID, st.acct); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		if u, _ := fg.User(ru.ID); u.Relation("manager") != st.want {
			t.Fatalf("%s: manager relation %q, want %q (%v)", st.name, u.Relation("manager"), st.want, u.Fields)
		}
	}
}

func TestAttributeConfigDefaults(t *testing.T) {
	var c google.DirectoryConfig
	c.Defaults()
	want := map[string]string{"title": "organizations.title", "department": "organizations.department",
		"company": "organizations.name", "location": "organizations.location", "employeeType": "organizations.description",
		"telephoneNumber": "phones.work", "mobile": "phones.mobile", "postalAddress": "addresses.work",
		"manager": "relations.manager"}
	if fmt.Sprint(c.Attributes) != fmt.Sprint(want) {
		t.Fatalf("defaults %v", c.Attributes)
	}
}
