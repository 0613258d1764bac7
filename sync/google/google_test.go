package google_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegoogle"
	"github.com/gatewayd/gatewayd/secret"
	gsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/google"
)

// logBuf collects the connector's debug log for leak checks.
type logBuf struct {
	mu stdsync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newFake(t *testing.T) *fakegoogle.Server {
	t.Helper()
	fg := fakegoogle.New()
	t.Cleanup(fg.Close)
	return fg
}

func config(fg *fakegoogle.Server, logs *logBuf) google.Config {
	cfg := google.Config{
		Name:            "test-google",
		CustomerID:      fg.CustomerID(),
		AdminSubject:    fg.AdminSubject(),
		CredentialsJSON: fg.ServiceAccountKey(),
		Domain:          fakegoogle.DefaultDomain,
		Endpoint:        fg.Endpoint(),
	}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func newConnector(t *testing.T, fg *fakegoogle.Server, mod ...func(*google.Config)) (*google.Connector, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	cfg := config(fg, logs)
	for _, m := range mod {
		m(&cfg)
	}
	c, err := google.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, logs
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func syncErr(t *testing.T, err error) *gsync.Error {
	t.Helper()
	var e *gsync.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *sync.Error, got %T %v", err, err)
	}
	return e
}

func pw(s string) secret.String { return secret.FromString(s) }

const goodPW = "Correct-Horse-42"

// assertNoPlaintext checks that pw never reached the fake in any form and
// that no password was sent unhashed.
func assertNoPlaintext(t *testing.T, fg *fakegoogle.Server, logs *logBuf, pws ...string) {
	t.Helper()
	if n := fg.PlaintextSeen(); n != 0 {
		t.Errorf("the fake saw %d password(s) without hashFunction crypt", n)
	}
	for _, p := range pws {
		if fg.Saw(p) {
			t.Errorf("the plaintext password reached the server")
		}
		if logs != nil && strings.Contains(logs.String(), p) {
			t.Errorf("the plaintext password is in the log")
		}
	}
	for _, r := range fg.Requests() {
		if r.HadPassword && r.HashFunction != google.HashFunction {
			t.Errorf("%s %s: password with hashFunction %q", r.Method, r.Path, r.HashFunction)
		}
	}
}

func assertNoUserDeletes(t *testing.T, fg *fakegoogle.Server) {
	t.Helper()
	if n := fg.Count(http.MethodDelete, fakegoogle.KindUser); n != 0 || len(fg.DeletedUsers()) != 0 {
		t.Fatalf("users were deleted: %d DELETE, %v", n, fg.DeletedUsers())
	}
}

func TestLookupAndGetUser(t *testing.T) {
	fg := newFake(t)
	alice := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "Alice", FamilyName: "Liddell"})
	bob := fg.AddUser(fakegoogle.User{PrimaryEmail: "bob@example.com", GivenName: "Bob", FamilyName: "B", Suspended: true})
	fg.AddUser(fakegoogle.User{PrimaryEmail: "carol@example.com", GivenName: "Carol", FamilyName: "C",
		Aliases: []string{"caroline@example.com"}})
	c, _ := newConnector(t, fg)

	cases := []struct {
		name        string
		upn         string
		wantID      string
		wantEnabled bool
		wantErr     error
		permanent   bool
	}{
		{"existing active", "alice@example.com", alice.ID, true, nil, false},
		{"case-insensitive", "ALICE@Example.com", alice.ID, true, nil, false},
		{"existing suspended", "bob@example.com", bob.ID, false, nil, false},
		{"missing", "dave@example.com", "", false, gsync.ErrNotFound, false},
		{"an alias is not the account", "caroline@example.com", "", false, nil, true},
		{"empty", " ", "", false, nil, true},
		{"not an email", "alice", "", false, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ru, err := c.LookupUser(ctx(t), tc.upn)
			switch {
			case tc.permanent:
				if e := syncErr(t, err); !e.Permanent {
					t.Fatalf("want permanent, got %v", e)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("want %v, got %v", tc.wantErr, err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if ru.ID != tc.wantID || ru.Enabled != tc.wantEnabled || !strings.EqualFold(ru.UPN, tc.upn) || !ru.LastPasswordChange.IsZero() {
				t.Fatalf("got %+v", ru)
			}
			got, err := c.GetUser(ctx(t), ru.ID)
			if err != nil || *got != *ru {
				t.Fatalf("GetUser: %+v %v", got, err)
			}
		})
	}
	if _, err := c.GetUser(ctx(t), "100000000000000000000"); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("GetUser missing: %v", err)
	}
	assertNoUserDeletes(t, fg)
}

func TestCreateUser(t *testing.T) {
	cases := []struct {
		name          string
		acct          gsync.Account
		pw            string
		wantSuspended bool
		given, family string
	}{
		{"active with password", gsync.Account{UPN: "alice@example.com", MailNickname: "alice", DisplayName: "Alice Liddell",
			GivenName: "Alice", Surname: "Liddell", Enabled: true}, goodPW, false, "Alice", "Liddell"},
		{"staged is suspended", gsync.Account{UPN: "bob@example.com", MailNickname: "bob", DisplayName: "Bob Builder",
			Enabled: false}, goodPW, true, "Bob", "Builder"},
		{"no password yet", gsync.Account{UPN: "carol@example.com", MailNickname: "carol", Enabled: true}, "", false, "carol", "carol"},
		{"password with quotes and unicode", gsync.Account{UPN: "dave@example.com", GivenName: "Dave", Surname: "D", Enabled: true},
			`p"a\ss wörd'<>&`, false, "Dave", "D"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			c, logs := newConnector(t, fg)
			ru, err := c.CreateUser(ctx(t), tc.acct, pw(tc.pw))
			if err != nil {
				t.Fatal(err)
			}
			if ru.ID == "" || !strings.EqualFold(ru.UPN, tc.acct.UPN) || ru.Enabled != tc.acct.Enabled || !ru.LastPasswordChange.IsZero() {
				t.Fatalf("got %+v", ru)
			}
			u, ok := fg.User(ru.ID)
			if !ok {
				t.Fatal("not created")
			}
			if u.Suspended != tc.wantSuspended || u.GivenName != tc.given || u.FamilyName != tc.family ||
				u.ChangePasswordAtNextLogin || u.PrimaryEmail != tc.acct.UPN {
				t.Fatalf("fake holds %+v", u)
			}
			if !strings.HasPrefix(u.PasswordHash, "$6$") || u.HashFunction != "crypt" {
				t.Fatalf("password %q / %q", u.PasswordHash, u.HashFunction)
			}
			if tc.pw != "" && !fg.PasswordMatches(ru.ID, tc.pw) {
				t.Fatal("the password does not match")
			}
			if tc.pw == "" && (fg.PasswordMatches(ru.ID, "") || fg.PasswordMatches(ru.ID, goodPW)) {
				t.Fatal("the random password is guessable")
			}
			// suspended is sent explicitly, false included.
			reqs := fg.Requests()
			last := reqs[len(reqs)-1]
			want := fmt.Sprintf(`"suspended":%v`, tc.wantSuspended)
			if last.Method != http.MethodPost || !strings.Contains(last.Body, want) ||
				!strings.Contains(last.Body, `"changePasswordAtNextLogin":false`) {
				t.Fatalf("body %s lacks %s", last.Body, want)
			}
			if tc.pw != "" {
				assertNoPlaintext(t, fg, logs, tc.pw)
			}
			if strings.Contains(logs.String(), u.PasswordHash) {
				t.Fatal("the hash is in the log")
			}
		})
	}
}

func TestCreateUserFailures(t *testing.T) {
	fg := newFake(t)
	fg.AddUser(fakegoogle.User{PrimaryEmail: "taken@example.com", GivenName: "T", FamilyName: "T"})
	c, _ := newConnector(t, fg)

	// An existing account: permanent, and "already exists" so that the
	// engine looks it up again instead of failing for good.
	_, err := c.CreateUser(ctx(t), gsync.Account{UPN: "taken@example.com", Enabled: true}, pw(goodPW))
	e := syncErr(t, err)
	if !e.Permanent || e.Status != http.StatusConflict || !strings.Contains(strings.ToLower(e.Message), "already exists") {
		t.Fatalf("conflict: %+v", e)
	}
	// A domain the customer does not own.
	_, err = c.CreateUser(ctx(t), gsync.Account{UPN: "x@elsewhere.org", Enabled: true}, pw(goodPW))
	if e := syncErr(t, err); !e.Permanent || !strings.Contains(e.Message, "Domains") {
		t.Fatalf("domain: %+v", e)
	}
	// Names Google refuses.
	_, err = c.CreateUser(ctx(t), gsync.Account{UPN: "y@example.com", GivenName: "<script>", Surname: "Y", Enabled: true}, pw(goodPW))
	if e := syncErr(t, err); !e.Permanent || !strings.Contains(e.Message, "first and last name") {
		t.Fatalf("names: %+v", e)
	}
	if _, err := c.CreateUser(ctx(t), gsync.Account{UPN: ""}, pw(goodPW)); !gsync.IsPermanent(err) {
		t.Fatalf("empty UPN: %v", err)
	}
	assertNoPlaintext(t, fg, nil, goodPW)
}

func TestUpdateUser(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L"})
	c, _ := newConnector(t, fg)

	cases := []struct {
		name          string
		acct          gsync.Account
		given, family string
		email         string
		check         func(t *testing.T, f map[string]any)
	}{
		{"names and attributes", gsync.Account{UPN: "alice@example.com", GivenName: "Alice", Surname: "Liddell",
			Attributes: map[string]string{"organizations.title": "Engineer", "organizations.department": "R&D",
				"phones.mobile": "+44 1865 000000"}},
			"Alice", "Liddell", "alice@example.com", func(t *testing.T, f map[string]any) {
				orgs, _ := f["organizations"].([]any)
				if len(orgs) != 1 || orgs[0].(map[string]any)["title"] != "Engineer" || orgs[0].(map[string]any)["department"] != "R&D" {
					t.Fatalf("organizations %v", f["organizations"])
				}
				if _, ok := f["phones"]; !ok {
					t.Fatal("no phones")
				}
			}},
		{"clearing attributes", gsync.Account{GivenName: "Alice", Surname: "Liddell",
			Clear: []string{"organizations.title", "organizations.department", "phones.mobile"}},
			"Alice", "Liddell", "alice@example.com", func(t *testing.T, f map[string]any) {
				if orgs, _ := f["organizations"].([]any); len(orgs) != 0 {
					t.Fatalf("organizations %v", f["organizations"])
				}
			}},
		{"display name only", gsync.Account{DisplayName: "Alice P. Liddell"}, "Alice P.", "Liddell", "alice@example.com", nil},
		{"rename", gsync.Account{UPN: "alice.liddell@example.com", GivenName: "Alice", Surname: "Liddell"},
			"Alice", "Liddell", "alice.liddell@example.com", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.UpdateUser(ctx(t), u.ID, tc.acct); err != nil {
				t.Fatal(err)
			}
			got, _ := fg.User(u.ID)
			if got.GivenName != tc.given || got.FamilyName != tc.family || got.PrimaryEmail != tc.email || got.Suspended {
				t.Fatalf("fake holds %+v", got)
			}
			if tc.check != nil {
				tc.check(t, got.Fields)
			}
			reqs := fg.Requests()
			if b := reqs[len(reqs)-1].Body; strings.Contains(b, "suspended") || strings.Contains(b, "password") {
				t.Fatalf("update touched sign-in or password: %s", b)
			}
		})
	}
	if err := c.UpdateUser(ctx(t), "100000000000000000000", gsync.Account{GivenName: "X", Surname: "Y"}); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	assertNoUserDeletes(t, fg)
}

func TestSetEnabled(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L"})
	c, _ := newConnector(t, fg)
	for _, enabled := range []bool{false, true, false, true} {
		if err := c.SetEnabled(ctx(t), u.ID, enabled); err != nil {
			t.Fatal(err)
		}
		got, _ := fg.User(u.ID)
		if got.Suspended == enabled {
			t.Fatalf("enabled=%v: fake has suspended=%v", enabled, got.Suspended)
		}
		reqs := fg.Requests()
		last := reqs[len(reqs)-1]
		want := fmt.Sprintf(`{"suspended":%v}`, !enabled)
		if last.Method != http.MethodPatch || last.Body != want {
			t.Fatalf("enabled=%v: sent %s %s, want %s", enabled, last.Method, last.Body, want)
		}
		ru, err := c.GetUser(ctx(t), u.ID)
		if err != nil || ru.Enabled != enabled {
			t.Fatalf("GetUser: %+v %v", ru, err)
		}
	}
	if err := c.SetEnabled(ctx(t), "100000000000000000000", false); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	assertNoUserDeletes(t, fg)
}

func TestSetPassword(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L", ChangePasswordAtNextLogin: true})
	c, logs := newConnector(t, fg)

	var hashes []string
	pws := []string{goodPW, "Another-Secret-7", goodPW}
	for _, p := range pws {
		at, err := c.SetPassword(ctx(t), u.ID, pw(p))
		if err != nil {
			t.Fatal(err)
		}
		if !at.IsZero() {
			t.Fatalf("want the zero time (Google reports none), got %v", at)
		}
		if !fg.PasswordMatches(u.ID, p) || fg.PasswordMatches(u.ID, p+"x") {
			t.Fatal("PasswordMatches")
		}
		got, _ := fg.User(u.ID)
		if got.ChangePasswordAtNextLogin || got.HashFunction != "crypt" {
			t.Fatalf("fake holds %+v", got)
		}
		hashes = append(hashes, got.PasswordHash)
	}
	if hashes[0] == hashes[2] {
		t.Fatal("the same password was hashed with the same salt twice")
	}
	assertNoPlaintext(t, fg, logs, pws...)
	for _, h := range hashes {
		if strings.Contains(logs.String(), h) {
			t.Fatal("a hash is in the log")
		}
	}

	if _, err := c.SetPassword(ctx(t), u.ID, pw("")); !gsync.IsPermanent(err) {
		t.Fatalf("empty password: %v", err)
	}
	if _, err := c.SetPassword(ctx(t), "100000000000000000000", pw(goodPW)); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
}

func TestFindGroups(t *testing.T) {
	fg := newFake(t)
	one := fg.AddGroup(fakegoogle.Group{Name: "VPN Users"})
	twoA := fg.AddGroup(fakegoogle.Group{Name: "Sales"})
	twoB := fg.AddGroup(fakegoogle.Group{Name: "sales"})
	fg.AddGroup(fakegoogle.Group{Name: "Sales Team"})
	quoted := fg.AddGroup(fakegoogle.Group{Name: `O'Brien's "crew"`})
	c, _ := newConnector(t, fg)

	cases := []struct {
		name string
		want []string
	}{
		{"None Such", nil},
		{"VPN Users", []string{one.ID}},
		{"vpn users", []string{one.ID}},
		{"Sales", []string{twoA.ID, twoB.ID}},
		{`O'Brien's "crew"`, []string{quoted.ID}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.FindGroups(ctx(t), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("want an empty slice, not nil")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want ids %v", got, tc.want)
			}
			for i, g := range got {
				if g.ID != tc.want[i] || !strings.EqualFold(g.Name, tc.name) {
					t.Fatalf("got %+v, want ids %v", got, tc.want)
				}
			}
		})
	}
}

func TestFindGroupsPaging(t *testing.T) {
	fg := newFake(t)
	for range 205 {
		fg.AddGroup(fakegoogle.Group{Name: "Crowd"})
	}
	c, _ := newConnector(t, fg)
	got, err := c.FindGroups(ctx(t), "Crowd")
	if err != nil || len(got) != 205 {
		t.Fatalf("%d groups, %v", len(got), err)
	}
	if n := fg.Count(http.MethodGet, fakegoogle.KindGroups); n != 2 {
		t.Fatalf("%d list calls, want 2 pages", n)
	}
}

func TestCreateGroup(t *testing.T) {
	fg := newFake(t)
	c, _ := newConnector(t, fg)

	g, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "VPN Users", Description: "remote access", MailNickname: "vpn-users"})
	if err != nil {
		t.Fatal(err)
	}
	fgG, ok := fg.Group(g.ID)
	if !ok || fgG.Email != "vpn-users@example.com" || fgG.Name != "VPN Users" || fgG.Description != "remote access" || g.Name != "VPN Users" {
		t.Fatalf("got %+v, fake %+v", g, fgG)
	}
	// No mail nickname: derived from the name.
	g2, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "Sales Team"})
	if err != nil {
		t.Fatal(err)
	}
	if fgG, _ := fg.Group(g2.ID); fgG.Email != "sales-team@example.com" {
		t.Fatalf("email %s", fgG.Email)
	}

	// A retry whose first answer was lost finds its own, empty group.
	again, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "VPN Users", MailNickname: "vpn-users"})
	if err != nil || again.ID != g.ID {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if n := len(fg.Groups()); n != 2 {
		t.Fatalf("%d groups", n)
	}

	// The email held by something else — the same name with members,
	// another group, a user — gives the next free address.
	u := fg.AddUser(fakegoogle.User{PrimaryEmail: "m@example.com", GivenName: "M", FamilyName: "M"})
	fg.AddMember(g.ID, u.ID)
	for _, tc := range []struct {
		spec  gsync.GroupSpec
		email string
	}{
		{gsync.GroupSpec{Name: "VPN Users", MailNickname: "vpn-users"}, "vpn-users-2@example.com"},
		{gsync.GroupSpec{Name: "Other", MailNickname: "sales-team"}, "sales-team-2@example.com"},
		{gsync.GroupSpec{Name: "Mailing", MailNickname: "m"}, "m-2@example.com"},
	} {
		ng, err := c.CreateGroup(ctx(t), tc.spec)
		if err != nil {
			t.Fatalf("%+v: %v", tc.spec, err)
		}
		if got, _ := fg.Group(ng.ID); got.Email != tc.email || got.Name != tc.spec.Name || ng.ID == g.ID {
			t.Fatalf("%+v: got %+v", tc.spec, got)
		}
	}
	// Every address taken: permanent.
	for i := 1; i <= 9; i++ {
		email := "full@example.com"
		if i > 1 {
			email = fmt.Sprintf("full-%d@example.com", i)
		}
		fg.AddGroup(fakegoogle.Group{Name: "Someone else's", Email: email})
	}
	_, err = c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "Full", MailNickname: "full"})
	if e := syncErr(t, err); !e.Permanent || e.Status != http.StatusConflict || !strings.Contains(e.Message, "group email") {
		t.Fatalf("all taken: %+v", e)
	}
	if _, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "!!!"}); !gsync.IsPermanent(err) {
		t.Fatalf("underivable email: %v", err)
	}
}

// TestGroupTakeoverScenarios plays SPEC 4.4 as the engine will: exactly
// one group with the name is taken over, none or several mean a new one.
func TestGroupTakeoverScenarios(t *testing.T) {
	cases := []struct {
		name     string
		existing int
		wantNew  bool
	}{{"none: create", 0, true}, {"one: take over", 1, false}, {"two: create a third", 2, true}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			u := fg.AddUser(fakegoogle.User{PrimaryEmail: "dev@example.com", GivenName: "D", FamilyName: "D"})
			for i := range tc.existing {
				eg := fakegoogle.Group{Name: "Engineering"}
				if i == 0 {
					eg.Email = "engineering@example.com" // the address the engine derives
				}
				eg = fg.AddGroup(eg)
				fg.AddMember(eg.ID, u.ID)
			}
			c, _ := newConnector(t, fg)
			found, err := c.FindGroups(ctx(t), "Engineering")
			if err != nil || len(found) != tc.existing {
				t.Fatalf("found %v, %v", found, err)
			}
			var id string
			if len(found) == 1 {
				id = found[0].ID
			} else {
				g, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "Engineering", MailNickname: "engineering"})
				if err != nil {
					t.Fatal(err)
				}
				id = g.ID
			}
			want := tc.existing
			if tc.wantNew {
				want++
			}
			if n := len(fg.Groups()); n != want {
				t.Fatalf("%d groups, want %d", n, want)
			}
			rg, ok := fg.Group(id)
			if !ok {
				t.Fatal("recorded group missing")
			}
			if tc.wantNew && len(fg.Members(id)) != 0 {
				t.Fatalf("an existing group %s was taken instead of a new one", rg.Email)
			}
		})
	}
}

func TestMembers(t *testing.T) {
	fg := newFake(t)
	g := fg.AddGroup(fakegoogle.Group{Name: "VPN Users"})
	a := fg.AddUser(fakegoogle.User{PrimaryEmail: "a@example.com", GivenName: "A", FamilyName: "A"})
	b := fg.AddUser(fakegoogle.User{PrimaryEmail: "b@example.com", GivenName: "B", FamilyName: "B"})
	c, _ := newConnector(t, fg)

	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"add a", func() error { return c.AddMember(ctx(t), g.ID, a.ID) }, []string{a.ID}},
		{"add a again", func() error { return c.AddMember(ctx(t), g.ID, a.ID) }, []string{a.ID}},
		{"add b", func() error { return c.AddMember(ctx(t), g.ID, b.ID) }, []string{a.ID, b.ID}},
		{"remove a", func() error { return c.RemoveMember(ctx(t), g.ID, a.ID) }, []string{b.ID}},
		{"remove a again", func() error { return c.RemoveMember(ctx(t), g.ID, a.ID) }, []string{b.ID}},
		{"remove from a missing group", func() error { return c.RemoveMember(ctx(t), "0nosuchgroup00", a.ID) }, []string{b.ID}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			got, err := c.ListMembers(ctx(t), g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(st.want, ",") {
				t.Fatalf("members %v, want %v", got, st.want)
			}
			if strings.Join(fg.MemberIDs(g.ID), ",") != strings.Join(st.want, ",") {
				t.Fatalf("fake members %v", fg.MemberIDs(g.ID))
			}
		})
	}
	if err := c.AddMember(ctx(t), g.ID, "100000000000000000000"); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := c.ListMembers(ctx(t), "0nosuchgroup00"); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	empty := fg.AddGroup(fakegoogle.Group{Name: "Empty"})
	if got, err := c.ListMembers(ctx(t), empty.ID); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty group: %#v %v", got, err)
	}
}

func TestListMembersPaging(t *testing.T) {
	fg := newFake(t)
	g := fg.AddGroup(fakegoogle.Group{Name: "Big"})
	for i := range 230 {
		u := fg.AddUser(fakegoogle.User{PrimaryEmail: fmt.Sprintf("u%03d@example.com", i), GivenName: "U", FamilyName: "U"})
		fg.AddMember(g.ID, u.ID)
	}
	c, _ := newConnector(t, fg)
	got, err := c.ListMembers(ctx(t), g.ID)
	if err != nil || len(got) != 230 {
		t.Fatalf("%d members, %v", len(got), err)
	}
	if n := fg.Count(http.MethodGet, fakegoogle.KindMembers); n != 2 {
		t.Fatalf("%d list calls, want 2", n)
	}
}

// TestThrottlingAndOutages: 429 and 5xx are transient, carry the server's
// Retry-After, and reach the caller after exactly one request: neither
// the connector nor the generated client retries behind the engine's back.
func TestThrottlingAndOutages(t *testing.T) {
	cases := []struct {
		name       string
		inject     func(fg *fakegoogle.Server)
		wantStatus int
		wantRetry  time.Duration
	}{
		{"429 rateLimitExceeded", func(fg *fakegoogle.Server) { fg.Throttle(1, 7*time.Second) }, 429, 7 * time.Second},
		{"503 down", func(fg *fakegoogle.Server) { fg.SetDown(true) }, 503, 0},
		{"403 userRateLimitExceeded", func(fg *fakegoogle.Server) {
			fg.Fail(fakegoogle.Fault{Status: 403, Reason: "userRateLimitExceeded", Message: "User Rate Limit Exceeded", RetryAfter: 3 * time.Second})
		}, 403, 3 * time.Second},
		{"500 backendError", func(fg *fakegoogle.Server) { fg.Fail(fakegoogle.Fault{Status: 500, Message: "Backend Error"}) }, 500, 0},
		{"502 with Retry-After", func(fg *fakegoogle.Server) {
			fg.Fail(fakegoogle.Fault{Status: 502, Message: "Bad Gateway", RetryAfter: 2 * time.Second})
		}, 502, 2 * time.Second},
		{"412 conditionNotMet", func(fg *fakegoogle.Server) {
			fg.Fail(fakegoogle.Fault{Status: 412, Reason: "conditionNotMet", Message: "Precondition Failed"})
		}, 412, 0},
	}
	ops := []struct {
		name string
		kind string
		do   func(c *google.Connector, id string) error
	}{
		{"lookup", fakegoogle.KindUser, func(c *google.Connector, _ string) error {
			_, err := c.LookupUser(context.Background(), "alice@example.com")
			return err
		}},
		{"set password", fakegoogle.KindUser, func(c *google.Connector, id string) error {
			_, err := c.SetPassword(context.Background(), id, pw(goodPW))
			return err
		}},
		{"find groups", fakegoogle.KindGroups, func(c *google.Connector, _ string) error {
			_, err := c.FindGroups(context.Background(), "Sales")
			return err
		}},
	}
	for _, tc := range cases {
		for _, op := range ops {
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				fg := newFake(t)
				u := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L"})
				c, _ := newConnector(t, fg)
				if _, err := c.GetUser(ctx(t), u.ID); err != nil { // token fetched
					t.Fatal(err)
				}
				fg.ResetLog()
				tc.inject(fg)
				err := op.do(c, u.ID)
				e := syncErr(t, err)
				if e.Permanent || e.Status != tc.wantStatus || e.RetryAfter != tc.wantRetry {
					t.Fatalf("got %+v", e)
				}
				if d, ok := gsync.RetryAfter(err); ok != (tc.wantRetry > 0) || d != tc.wantRetry {
					t.Fatalf("sync.RetryAfter = %v %v", d, ok)
				}
				total := 0
				for _, r := range fg.Requests() {
					if r.Kind != fakegoogle.KindToken {
						total++
					}
				}
				if total != 1 {
					t.Fatalf("%d requests reached the server, want 1 (no hidden retry)", total)
				}
				fg.SetDown(false)
				if err := op.do(c, u.ID); err != nil {
					t.Fatalf("after recovery: %v", err)
				}
			})
		}
	}
}

func TestErrorClassification(t *testing.T) {
	cases := []struct {
		name      string
		fault     fakegoogle.Fault
		permanent bool
		contains  string
	}{
		{"400 invalid password", fakegoogle.Fault{Status: 400, Reason: "invalid", Message: "Invalid Password"}, true, "SHA-512 crypt"},
		{"403 not an admin", fakegoogle.Fault{Status: 403, Reason: "forbidden", Message: fakegoogle.MsgNotAuthorized}, true, "admin_subject admin@example.com"},
		{"403 scopes", fakegoogle.Fault{Status: 403, Reason: "insufficientPermissions", Message: fakegoogle.MsgInsufficientScope}, true, fakegoogle.DefaultClientID},
		{"403 API disabled", fakegoogle.Fault{Status: 403, Reason: "accessNotConfigured",
			Message: "Admin SDK API has not been used in project 123 before or it is disabled."}, true, "enable it"},
		{"409", fakegoogle.Fault{Status: 409, Reason: "duplicate", Message: "Entity already exists."}, true, "already"},
		{"400 other", fakegoogle.Fault{Status: 400, Reason: "invalid", Message: "Invalid Input: organizations"}, true, "mapped attributes"},
		{"401 after a fresh token", fakegoogle.Fault{Status: 401, Reason: "authError", Message: "Invalid Credentials"}, true, "freshly issued"},
		{"504", fakegoogle.Fault{Status: 504, Message: "Gateway Timeout"}, false, "will retry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			u := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L"})
			c, _ := newConnector(t, fg)
			fg.Fail(tc.fault)
			_, err := c.SetPassword(ctx(t), u.ID, pw(goodPW))
			e := syncErr(t, err)
			if e.Permanent != tc.permanent || e.Status != tc.fault.Status || !strings.Contains(e.Message, tc.contains) {
				t.Fatalf("got %+v", e)
			}
			if tc.fault.Reason != "" && e.Code != tc.fault.Reason {
				t.Fatalf("code %q", e.Code)
			}
			if strings.Contains(e.Error(), goodPW) {
				t.Fatal("password in the error")
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config)
		permanent bool
		status    int
		contains  []string
	}{
		{"key not of this service account", func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config) {
			k, err := fakegoogle.NewServiceAccountKey(fakegoogle.DefaultServiceAccount, fakegoogle.DefaultClientID, fg.TokenURL())
			if err != nil {
				t.Fatal(err)
			}
			cfg.CredentialsJSON = k
		}, true, 400, []string{"Invalid JWT Signature", "new JSON key"}},
		{"unknown service account", func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config) {
			k, err := fakegoogle.NewServiceAccountKey("gone@deleted.iam.gserviceaccount.com", "1", fg.TokenURL())
			if err != nil {
				t.Fatal(err)
			}
			cfg.CredentialsJSON = k
		}, true, 400, []string{"deleted or disabled"}},
		{"subject not a user", func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config) {
			cfg.AdminSubject = "nobody@example.com"
		}, true, 400, []string{"admin_subject nobody@example.com", "super admin"}},
		{"subject not an admin", func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config) {
			fg.AddUser(fakegoogle.User{PrimaryEmail: "clerk@example.com", GivenName: "C", FamilyName: "C"})
			cfg.AdminSubject = "clerk@example.com"
		}, true, 403, []string{"clerk@example.com is not an administrator"}},
		{"delegation lacks the group scope", func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config) {
			fg.SetDelegatedScopes(fakegoogle.ScopeUser)
		}, true, 401, []string{"domain-wide delegation", fakegoogle.DefaultClientID, google.ScopeUser, google.ScopeGroup}},
		{"token endpoint unavailable", func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config) {
			fg.Fail(fakegoogle.Fault{Kind: fakegoogle.KindToken, Status: 503, Reason: "temporarily_unavailable", RetryAfter: 4 * time.Second})
		}, false, 503, []string{"will retry"}},
		{"clock skew", func(t *testing.T, fg *fakegoogle.Server, cfg *google.Config) {
			fg.SetClock(func() time.Time { return time.Now().Add(2 * time.Hour) })
		}, true, 400, []string{"clock"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L"})
			logs := &logBuf{}
			cfg := config(fg, logs)
			tc.setup(t, fg, &cfg)
			c, err := google.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.LookupUser(ctx(t), "alice@example.com")
			e := syncErr(t, err)
			if e.Permanent != tc.permanent || e.Status != tc.status {
				t.Fatalf("got %+v", e)
			}
			for _, s := range tc.contains {
				if !strings.Contains(e.Message, s) {
					t.Fatalf("message lacks %q: %s", s, e.Message)
				}
			}
			if strings.Contains(logs.String(), "PRIVATE KEY") || strings.Contains(e.Message, "PRIVATE KEY") {
				t.Fatal("key material leaked")
			}
		})
	}
}

func TestTokenReuseAndRefresh(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L"})
	c, logs := newConnector(t, fg)

	var wg stdsync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.GetUser(context.Background(), u.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := fg.TokensIssued(); n != 1 {
		t.Fatalf("%d tokens for concurrent calls, want 1", n)
	}

	// A revoked token: one new token, the call repeated once, success.
	fg.ExpireTokens()
	if _, err := c.SetPassword(ctx(t), u.ID, pw(goodPW)); err != nil {
		t.Fatal(err)
	}
	if n := fg.TokensIssued(); n != 2 {
		t.Fatalf("%d tokens, want 2", n)
	}
	if !fg.PasswordMatches(u.ID, goodPW) {
		t.Fatal("password not set by the repeated call")
	}
	if n := fg.Count(http.MethodPatch, fakegoogle.KindUser); n != 2 {
		t.Fatalf("%d PATCH, want the refused one and its repeat", n)
	}
	if strings.Contains(logs.String(), "ya29.") {
		t.Fatal("token in the log")
	}
}

func TestTimeoutsAndCancellation(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegoogle.User{PrimaryEmail: "alice@example.com", GivenName: "A", FamilyName: "L"})
	c, _ := newConnector(t, fg, func(cfg *google.Config) { cfg.Timeout = 300 * time.Millisecond })
	if _, err := c.GetUser(ctx(t), u.ID); err != nil {
		t.Fatal(err)
	}
	fg.Latency(2 * time.Second)
	start := time.Now()
	_, err := c.GetUser(ctx(t), u.ID)
	if e := syncErr(t, err); e.Permanent || !strings.Contains(e.Message, "did not answer within") {
		t.Fatalf("timeout: %+v", e)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("took %v", d)
	}

	cctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := c.GetUser(cctx, u.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestNetworkErrors(t *testing.T) {
	fg := newFake(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/"
	l.Close()

	// Directory API unreachable.
	c, _ := newConnector(t, fg, func(cfg *google.Config) { cfg.Endpoint = dead })
	_, err = c.GetUser(ctx(t), "1")
	if e := syncErr(t, err); e.Permanent || !strings.Contains(e.Message, "cannot reach") {
		t.Fatalf("api: %+v", e)
	}
	// Token endpoint unreachable.
	c, _ = newConnector(t, fg, func(cfg *google.Config) { cfg.TokenURL = dead + "token" })
	_, err = c.GetUser(ctx(t), "1")
	if e := syncErr(t, err); e.Permanent || !strings.Contains(e.Message, "token endpoint") {
		t.Fatalf("token: %+v", e)
	}
}

func TestBare404IsNotNotFound(t *testing.T) {
	fg := newFake(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found", http.StatusNotFound)
	}))
	defer other.Close()
	c, _ := newConnector(t, fg, func(cfg *google.Config) { cfg.Endpoint = other.URL + "/" })
	_, err := c.LookupUser(ctx(t), "alice@example.com")
	if e := syncErr(t, err); !e.Permanent || !strings.Contains(e.Message, "check endpoint") {
		t.Fatalf("got %+v", e)
	}
}

func TestNewValidation(t *testing.T) {
	fg := newFake(t)
	cases := []struct {
		name string
		mod  func(*google.Config)
		want string
	}{
		{"no subject", func(c *google.Config) { c.AdminSubject = "" }, "admin_subject"},
		{"subject not an email", func(c *google.Config) { c.AdminSubject = "admin" }, "admin_subject"},
		{"no key", func(c *google.Config) { c.CredentialsJSON = nil }, "credentials_file is empty"},
		{"not JSON", func(c *google.Config) { c.CredentialsJSON = []byte("-----BEGIN PRIVATE KEY-----") }, "not a JSON key file"},
		{"not a service account", func(c *google.Config) { c.CredentialsJSON = []byte(`{"type":"authorized_user"}`) }, "service account"},
		{"broken private key", func(c *google.Config) {
			c.CredentialsJSON = bytes.Replace(fg.ServiceAccountKey(), []byte("PRIVATE KEY-----\\n"), []byte("PRIVATE KEY-----\\nAAAA"), 1)
		}, "private_key"},
		{"plain http endpoint", func(c *google.Config) { c.Endpoint = "http://admin.example.com/" }, "loopback"},
		{"bad customer", func(c *google.Config) { c.CustomerID = "C01/../x" }, "customer_id"},
		{"bad domain", func(c *google.Config) { c.Domain = "exa mple.com" }, "domain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(fg, nil)
			tc.mod(&cfg)
			_, err := google.New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatal("key material in the error")
			}
		})
	}

	// The endpoint may be given with the API path; the group domain
	// defaults to the admin's.
	c, err := google.New(context.Background(), func() google.Config {
		cfg := config(fg, nil)
		cfg.Endpoint = fg.URL() + "/admin/directory/v1/"
		cfg.Domain = ""
		cfg.CustomerID = ""
		return cfg
	}())
	if err != nil {
		t.Fatal(err)
	}
	if c.Domain() != "example.com" || c.Name() != "test-google" {
		t.Fatalf("domain %q name %q", c.Domain(), c.Name())
	}
	if _, err := c.LookupUser(ctx(t), "nobody@example.com"); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("endpoint with path: %v", err)
	}
	if _, err := c.FindGroups(ctx(t), "x"); err != nil {
		t.Fatalf("my_customer: %v", err)
	}
	if fg.TokensIssued() != 1 {
		t.Fatal("New made a network call, or the token was not reused")
	}
}

// TestLifecycle runs provision → password → disable → enable → groups
// and checks the invariants: no user DELETE, no plaintext anywhere.
func TestLifecycle(t *testing.T) {
	fg := newFake(t)
	c, logs := newConnector(t, fg)
	var _ gsync.Connector = c
	var _ gsync.GroupConnector = c

	acct := gsync.Account{UPN: "alice@example.com", MailNickname: "alice", GivenName: "Alice", Surname: "Liddell", Enabled: false}
	if _, err := c.LookupUser(ctx(t), acct.UPN); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatal(err)
	}
	ru, err := c.CreateUser(ctx(t), acct, pw(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPassword(ctx(t), ru.ID, pw(goodPW)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEnabled(ctx(t), ru.ID, true); err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateGroup(ctx(t), gsync.GroupSpec{Name: "VPN", MailNickname: "vpn"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddMember(ctx(t), g.ID, ru.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEnabled(ctx(t), ru.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMember(ctx(t), g.ID, ru.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := fg.User(ru.ID)
	if !got.Suspended || !fg.PasswordMatches(ru.ID, goodPW) {
		t.Fatalf("fake holds %+v", got)
	}
	assertNoUserDeletes(t, fg)
	assertNoPlaintext(t, fg, logs, goodPW)
	for _, r := range fg.Requests() {
		if r.Status >= 400 && !(r.Status == http.StatusNotFound && r.Method == http.MethodGet) {
			t.Errorf("%s %s answered %d", r.Method, r.Path, r.Status)
		}
	}
}
