package entra_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/secret"
	gsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
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

func newFake(t *testing.T) *fakegraph.Server {
	t.Helper()
	fg := fakegraph.New()
	t.Cleanup(fg.Close)
	return fg
}

func config(fg *fakegraph.Server, logs *logBuf) entra.Config {
	tenant, clientID, sec := fg.Credentials()
	cfg := entra.Config{
		Name:         "test-entra",
		TenantID:     tenant,
		ClientID:     clientID,
		ClientSecret: secret.FromString(sec),
		AuthorityURL: fg.URL(),
		GraphURL:     fg.URL(),
	}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func newConnector(t *testing.T, fg *fakegraph.Server, mod ...func(*entra.Config)) (*entra.Connector, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	cfg := config(fg, logs)
	for _, m := range mod {
		m(&cfg)
	}
	c, err := entra.New(cfg)
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

func TestLookupUser(t *testing.T) {
	fg := newFake(t)
	changed := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	alice := fg.AddUser(fakegraph.User{UserPrincipalName: "alice@contoso.com", AccountEnabled: true, LastPasswordChangeDateTime: changed})
	bob := fg.AddUser(fakegraph.User{UserPrincipalName: "bob@contoso.com", AccountEnabled: false})
	c, _ := newConnector(t, fg)

	cases := []struct {
		name        string
		upn         string
		wantID      string
		wantEnabled bool
		wantChanged time.Time
		wantErr     error
	}{
		{"existing enabled", "alice@contoso.com", alice.ID, true, changed, nil},
		{"case-insensitive", "ALICE@Contoso.com", alice.ID, true, changed, nil},
		{"existing blocked, no password time", "bob@contoso.com", bob.ID, false, time.Time{}, nil},
		{"missing", "carol@contoso.com", "", false, time.Time{}, gsync.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := c.LookupUser(ctx(t), tc.upn)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != tc.wantID || u.Enabled != tc.wantEnabled || !u.LastPasswordChange.Equal(tc.wantChanged) {
				t.Fatalf("got %+v, want id %s enabled %v changed %v", u, tc.wantID, tc.wantEnabled, tc.wantChanged)
			}
			if !strings.EqualFold(u.UPN, tc.upn) {
				t.Fatalf("UPN %q", u.UPN)
			}
		})
	}

	// GetUser by id, and the $select the connector sends.
	u, err := c.GetUser(ctx(t), alice.ID)
	if err != nil || u.UPN != "alice@contoso.com" {
		t.Fatalf("GetUser: %+v %v", u, err)
	}
	if _, err := c.GetUser(ctx(t), "00000000-0000-0000-0000-000000000000"); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("GetUser missing: %v", err)
	}
	for _, r := range fg.Requests() {
		if r.Kind == fakegraph.KindUser && !strings.Contains(r.RawQuery, "lastPasswordChangeDateTime") {
			t.Fatalf("GET without $select of lastPasswordChangeDateTime: %q", r.RawQuery)
		}
	}
}

func TestCreateUser(t *testing.T) {
	cases := []struct {
		name        string
		acct        gsync.Account
		pw          string
		wantDisplay string
		wantNick    string
	}{
		{
			name:        "active with password",
			acct:        gsync.Account{UPN: "dana@contoso.com", MailNickname: "dana", DisplayName: "Dana Scully", GivenName: "Dana", Surname: "Scully", Enabled: true, Attributes: map[string]string{"jobTitle": "Agent", "businessPhones": "+1 555 0100"}},
			pw:          goodPW,
			wantDisplay: "Dana Scully",
			wantNick:    "dana",
		},
		{
			name:        "staged without password gets a generated one",
			acct:        gsync.Account{UPN: "fox@contoso.com", GivenName: "Fox", Surname: "Mulder", Enabled: false},
			wantDisplay: "Fox Mulder",
			wantNick:    "fox",
		},
		{
			name:        "nickname sanitised",
			acct:        gsync.Account{UPN: "walter.skinner@contoso.com", MailNickname: "walter (ad)", Enabled: true},
			pw:          goodPW,
			wantDisplay: "walter.skinner",
			wantNick:    "walterad",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			fg.ReplicationDelay(400 * time.Millisecond)
			c, _ := newConnector(t, fg)

			ru, err := c.CreateUser(ctx(t), tc.acct, pw(tc.pw))
			if err != nil {
				t.Fatal(err)
			}
			if ru.ID == "" || ru.UPN != tc.acct.UPN || ru.Enabled != tc.acct.Enabled {
				t.Fatalf("created %+v", ru)
			}
			// Replication: the new account is not readable yet.
			if _, err := c.GetUser(ctx(t), ru.ID); !errors.Is(err, gsync.ErrNotFound) {
				t.Fatalf("GET right after create: %v, want ErrNotFound", err)
			}
			testutil.Eventually(t, 5*time.Second, func() bool {
				got, err := c.GetUser(ctx(t), ru.ID)
				return err == nil && got.Enabled == tc.acct.Enabled && !got.LastPasswordChange.IsZero()
			}, "created user never became readable")

			u, ok := fg.User(ru.ID)
			if !ok {
				t.Fatal("not in the fake")
			}
			if u.AccountEnabled != tc.acct.Enabled || u.DisplayName != tc.wantDisplay || u.MailNickname != tc.wantNick ||
				u.GivenName != tc.acct.GivenName || u.Surname != tc.acct.Surname || u.ForceChangePasswordNextSignIn {
				t.Fatalf("fake has %+v", u)
			}
			for k, v := range tc.acct.Attributes {
				got := fmt.Sprint(u.Attributes[k])
				if k == "businessPhones" {
					v = "[" + v + "]"
				}
				if got != v {
					t.Fatalf("attribute %s = %q, want %q", k, got, v)
				}
			}
			if tc.pw != "" && !fg.PasswordMatches(ru.ID, tc.pw) {
				t.Fatal("the given password was not set")
			}
			var posts int
			for _, r := range fg.Requests() {
				if r.Method == http.MethodPost && r.Kind == fakegraph.KindUsers {
					posts++
					if !r.HadPasswordProfile || !strings.Contains(r.Body, `"forceChangePasswordNextSignIn":false`) {
						t.Fatalf("POST body %s", r.Body)
					}
				}
			}
			if posts != 1 {
				t.Fatalf("%d POSTs", posts)
			}
		})
	}
}

func TestCreateUserConflictAndBadAttribute(t *testing.T) {
	fg := newFake(t)
	fg.AddUser(fakegraph.User{UserPrincipalName: "taken@contoso.com", AccountEnabled: true})
	c, _ := newConnector(t, fg)

	_, err := c.CreateUser(ctx(t), gsync.Account{UPN: "taken@contoso.com", Enabled: true}, pw(goodPW))
	e := syncErr(t, err)
	if !e.Permanent || e.Status != 400 || e.Code != "Request_BadRequest" || !strings.Contains(e.Message, fakegraph.MsgDuplicateUPN) {
		t.Fatalf("duplicate: %+v", e)
	}

	// A reserved name is refused without a call: the account is created
	// without it, and the refusal reported.
	ru, err := c.CreateUser(ctx(t), gsync.Account{UPN: "new@contoso.com", Enabled: true, Attributes: map[string]string{"passwordProfile": "x", "jobTitle": "Dev"}}, pw(goodPW))
	refused := refusedNames(t, err)
	if ru == nil || refused != "passwordProfile" {
		t.Fatalf("reserved attribute: %v %v", ru, err)
	}
	if u, _ := fg.User("new@contoso.com"); u.Attributes["jobTitle"] != "Dev" {
		t.Fatalf("the other attributes were not applied: %+v", u)
	}
	if n := fg.Count(http.MethodPost, fakegraph.KindUsers); n != 2 {
		t.Fatalf("%d POSTs, want the duplicate one and the create", n)
	}
	for _, r := range fg.Requests() {
		if strings.Contains(r.Body, `"x"`) {
			t.Fatalf("the reserved attribute reached Graph: %s", r.Body)
		}
	}

	fg.SetDomains("contoso.com")
	_, err = c.CreateUser(ctx(t), gsync.Account{UPN: "x@elsewhere.org", Enabled: true}, pw(goodPW))
	if e := syncErr(t, err); !e.Permanent || e.Status != 400 || !strings.Contains(e.Message, "verified domain") {
		t.Fatalf("unverified domain: %+v", e)
	}
}

func TestUpdateUser(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegraph.User{UserPrincipalName: "erin@contoso.com", GivenName: "Erin", Surname: "Old", AccountEnabled: true,
		Attributes: map[string]any{"jobTitle": "Intern"}})
	c, _ := newConnector(t, fg)

	steps := []struct {
		name  string
		acct  gsync.Account
		check func(fakegraph.User) bool
	}{
		{
			name: "names and attributes",
			acct: gsync.Account{UPN: "erin@contoso.com", MailNickname: "erin", DisplayName: "Erin New", GivenName: "Erin", Surname: "New",
				Attributes: map[string]string{"jobTitle": "Engineer", "department": "R&D", "businessPhones": "+33 1 23 45 67 89"}},
			check: func(f fakegraph.User) bool {
				return f.DisplayName == "Erin New" && f.Surname == "New" && f.Attributes["jobTitle"] == "Engineer" &&
					f.Attributes["department"] == "R&D" && fmt.Sprint(f.Attributes["businessPhones"]) == "[+33 1 23 45 67 89]"
			},
		},
		{
			name: "empty values clear",
			acct: gsync.Account{UPN: "erin@contoso.com", DisplayName: "Erin", GivenName: "Erin",
				Attributes: map[string]string{"jobTitle": "", "businessPhones": ""}},
			check: func(f fakegraph.User) bool {
				_, job := f.Attributes["jobTitle"]
				_, phones := f.Attributes["businessPhones"]
				return f.Surname == "" && !job && !phones && f.Attributes["department"] == "R&D" && f.DisplayName == "Erin"
			},
		},
		{
			name: "rename UPN",
			acct: gsync.Account{UPN: "erin.new@contoso.com", DisplayName: "Erin"},
			check: func(f fakegraph.User) bool {
				return f.UserPrincipalName == "erin.new@contoso.com"
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := c.UpdateUser(ctx(t), u.ID, st.acct); err != nil {
				t.Fatal(err)
			}
			got, _ := fg.User(u.ID)
			if !st.check(got) {
				t.Fatalf("fake has %+v", got)
			}
			if !got.AccountEnabled {
				t.Fatal("UpdateUser touched accountEnabled")
			}
		})
	}

	// Names the gateway must not set are refused without reaching Graph;
	// the rest of the update is applied.
	fg.ResetLog()
	for _, bad := range []string{"accountEnabled", "manager", "bad-name", "id"} {
		err := c.UpdateUser(ctx(t), u.ID, gsync.Account{DisplayName: "Erin", Attributes: map[string]string{bad: "x", "department": "Ops"}})
		if got := refusedNames(t, err); got != bad {
			t.Fatalf("%s: refused %q (%v)", bad, got, err)
		}
	}
	for _, r := range fg.Requests() {
		if strings.Contains(r.Body, `"x"`) {
			t.Fatalf("a refused attribute still reached Graph: %s", r.Body)
		}
	}
	if got, _ := fg.User(u.ID); got.Attributes["department"] != "Ops" {
		t.Fatalf("the accepted attribute was not applied: %+v", got)
	}
	// Unknown property: Graph refuses it by name; the update is repeated
	// without it.
	fg.ResetLog()
	err := c.UpdateUser(ctx(t), u.ID, gsync.Account{DisplayName: "Erin", Attributes: map[string]string{"favouriteColour": "blue", "department": "R&D"}})
	var ar *gsync.AttributesRefused
	if !errors.As(err, &ar) || len(ar.Refused) != 1 || ar.Refused[0].Name != "favouriteColour" ||
		ar.Refused[0].Message != "Invalid property 'favouriteColour'." {
		t.Fatalf("unknown property: %v", err)
	}
	if n := fg.Count(http.MethodPatch, fakegraph.KindUser); n != 2 {
		t.Fatalf("%d PATCHes, want the refused one and the one without it", n)
	}
	if got, _ := fg.User(u.ID); got.Attributes["department"] != "R&D" {
		t.Fatalf("the accepted attribute was not applied: %+v", got)
	}
	if err := c.UpdateUser(ctx(t), "11111111-1111-1111-1111-111111111111", gsync.Account{DisplayName: "x"}); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
}

func TestSetEnabled(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegraph.User{UserPrincipalName: "gil@contoso.com", AccountEnabled: true})
	c, _ := newConnector(t, fg)
	for _, want := range []bool{false, false, true, false, true} {
		t.Run(fmt.Sprint(want), func(t *testing.T) {
			if err := c.SetEnabled(ctx(t), u.ID, want); err != nil {
				t.Fatal(err)
			}
			got, _ := fg.User(u.ID)
			if got.AccountEnabled != want {
				t.Fatalf("accountEnabled = %v", got.AccountEnabled)
			}
			ru, err := c.GetUser(ctx(t), u.ID)
			if err != nil || ru.Enabled != want {
				t.Fatalf("GetUser: %+v %v", ru, err)
			}
		})
	}
	if err := c.SetEnabled(ctx(t), "22222222-2222-2222-2222-222222222222", false); !errors.Is(err, gsync.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestSetPassword(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegraph.User{UserPrincipalName: "hana@contoso.com", AccountEnabled: true,
		LastPasswordChangeDateTime: time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)})
	c, _ := newConnector(t, fg)

	at, err := c.SetPassword(ctx(t), u.ID, pw(goodPW))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fg.User(u.ID)
	if !at.Equal(got.LastPasswordChangeDateTime) {
		t.Fatalf("returned %v, fake has %v", at, got.LastPasswordChangeDateTime)
	}
	if !fg.PasswordMatches(u.ID, goodPW) || got.ForceChangePasswordNextSignIn {
		t.Fatalf("password not set as asked: %+v", got)
	}
	if time.Since(at) > time.Minute {
		t.Fatalf("time %v is not now", at)
	}

	// A remote change moves the time past ours; the next push moves it again.
	remote, _ := fg.SetPassword("hana@contoso.com")
	ru, err := c.GetUser(ctx(t), u.ID)
	if err != nil || !ru.LastPasswordChange.Equal(remote) || !remote.After(at) {
		t.Fatalf("after remote change: %+v %v (remote %v, ours %v)", ru, err, remote, at)
	}
	if fg.PasswordMatches(u.ID, goodPW) {
		t.Fatal("remote change kept the old password")
	}
	at2, err := c.SetPassword(ctx(t), u.ID, pw("Another-Pass-99"))
	if err != nil || !at2.After(remote) || !fg.PasswordMatches(u.ID, "Another-Pass-99") {
		t.Fatalf("second push: %v %v", at2, err)
	}

	var patches int
	for _, r := range fg.Requests() {
		if r.Method == http.MethodPatch {
			patches++
			if !r.HadPasswordProfile || !strings.Contains(r.Body, fakegraph.RemovedPassword) ||
				!strings.Contains(r.Body, `"forceChangePasswordNextSignIn":false`) {
				t.Fatalf("PATCH body %s", r.Body)
			}
		}
	}
	if patches != 2 {
		t.Fatalf("%d PATCHes", patches)
	}
}

func TestSetPasswordReadBackFails(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegraph.User{UserPrincipalName: "ivan@contoso.com", AccountEnabled: true})
	c, _ := newConnector(t, fg)
	fg.Fail(fakegraph.Fault{Method: http.MethodGet, Status: 503, Code: "serviceNotAvailable", RetryAfter: time.Second})

	before := time.Now().Add(-2 * time.Second)
	at, err := c.SetPassword(ctx(t), u.ID, pw(goodPW))
	if err != nil {
		t.Fatalf("the password was set; a failed read-back must not fail the push: %v", err)
	}
	if at.Before(before) || at.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("fallback time %v is not the PATCH time", at)
	}
	if !fg.PasswordMatches(u.ID, goodPW) {
		t.Fatal("password not set")
	}
	if n := fg.Count(http.MethodPatch, fakegraph.KindUser); n != 1 {
		t.Fatalf("%d PATCHes", n)
	}
}

func TestSetPasswordFailures(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(fg *fakegraph.Server, upn string)
		pw        string
		id        string // default: the user's id
		status    int
		notFound  bool
		wantParts []string
	}{
		{
			name:      "weak password",
			pw:        "weakpassword",
			status:    400,
			wantParts: []string{fakegraph.MsgComplexity, "password_policy"},
		},
		{
			name:      "on-premises mastered (403)",
			setup:     func(fg *fakegraph.Server, upn string) { fg.SetOnPremMastered(upn) },
			pw:        goodPW,
			status:    403,
			wantParts: []string{"on-premises", "AD Connect", "change them in AD"},
		},
		{
			name: "on-premises mastered (400)",
			setup: func(fg *fakegraph.Server, upn string) {
				fg.Fail(fakegraph.Fault{Method: http.MethodPatch, Status: 400, Code: "Request_BadRequest", Message: fakegraph.MsgOnPrem})
			},
			pw:        goodPW,
			status:    400,
			wantParts: []string{"AD Connect"},
		},
		{
			name:      "missing permission or role",
			setup:     func(fg *fakegraph.Server, upn string) { fg.DenyWrites(true) },
			pw:        goodPW,
			status:    403,
			wantParts: []string{"Authorization_RequestDenied", "User.ReadWrite.All", "admin consent", "User Administrator", "Privileged Authentication Administrator", "AD Connect"},
		},
		{
			name:     "no such user",
			pw:       goodPW,
			id:       "33333333-3333-3333-3333-333333333333",
			notFound: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			u := fg.AddUser(fakegraph.User{UserPrincipalName: "jo@contoso.com", AccountEnabled: true})
			if tc.setup != nil {
				tc.setup(fg, u.UserPrincipalName)
			}
			c, _ := newConnector(t, fg)
			id := u.ID
			if tc.id != "" {
				id = tc.id
			}
			_, err := c.SetPassword(ctx(t), id, pw(tc.pw))
			if tc.notFound {
				if !errors.Is(err, gsync.ErrNotFound) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			e := syncErr(t, err)
			if !e.Permanent || e.Status != tc.status {
				t.Fatalf("got %+v", e)
			}
			for _, p := range tc.wantParts {
				if !strings.Contains(e.Error(), p) {
					t.Errorf("error lacks %q: %s", p, e.Error())
				}
			}
			if strings.Contains(e.Error(), tc.pw) {
				t.Fatal("the error carries the password")
			}
			if n := fg.Count(http.MethodPatch, fakegraph.KindUser); n != 1 {
				t.Fatalf("%d PATCHes: the connector must not retry", n)
			}
		})
	}

	t.Run("empty password never sent", func(t *testing.T) {
		fg := newFake(t)
		u := fg.AddUser(fakegraph.User{UserPrincipalName: "kim@contoso.com"})
		c, _ := newConnector(t, fg)
		if e := syncErr(t, func() error { _, err := c.SetPassword(ctx(t), u.ID, secret.String{}); return err }()); !e.Permanent {
			t.Fatalf("%+v", e)
		}
		if n := fg.Count(http.MethodPatch, fakegraph.KindUser); n != 0 {
			t.Fatal("sent")
		}
	})
}

func TestGraphErrorClassification(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(fg *fakegraph.Server)
		permanent bool
		status    int
		retry     time.Duration // exact, or -1 for "some positive value"
		code      string
	}{
		{"429 throttled", func(fg *fakegraph.Server) { fg.Throttle(1, 7*time.Second) }, false, 429, 7 * time.Second, "TooManyRequests"},
		{"503 outage", func(fg *fakegraph.Server) { fg.Outage(3 * time.Second) }, false, 503, -1, "serviceNotAvailable"},
		{"503 down", func(fg *fakegraph.Server) { fg.SetDown(true) }, false, 503, 5 * time.Second, "serviceNotAvailable"},
		{"502 with Retry-After", func(fg *fakegraph.Server) {
			fg.Fail(fakegraph.Fault{Status: 502, Code: "BadGateway", RetryAfter: 2 * time.Second})
		}, false, 502, 2 * time.Second, "BadGateway"},
		{"504", func(fg *fakegraph.Server) { fg.Fail(fakegraph.Fault{Status: 504, Code: "GatewayTimeout"}) }, false, 504, 0, "GatewayTimeout"},
		{"500", func(fg *fakegraph.Server) { fg.Fail(fakegraph.Fault{Status: 500, Code: "generalException"}) }, false, 500, 0, "generalException"},
		{"409 conflict", func(fg *fakegraph.Server) {
			fg.Fail(fakegraph.Fault{Status: 409, Code: "Request_MultipleObjectsWithSameKeyValue", Message: "Conflicting object present in directory."})
		}, true, 409, 0, "Request_MultipleObjectsWithSameKeyValue"},
		{"400", func(fg *fakegraph.Server) {
			fg.Fail(fakegraph.Fault{Status: 400, Code: "Request_BadRequest", Message: "Invalid value specified for property 'x'."})
		}, true, 400, 0, "Request_BadRequest"},
		{"403 other", func(fg *fakegraph.Server) {
			fg.Fail(fakegraph.Fault{Status: 403, Code: "Forbidden", Message: "Forbidden"})
		}, true, 403, 0, "Forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			u := fg.AddUser(fakegraph.User{UserPrincipalName: "lee@contoso.com", AccountEnabled: true})
			c, _ := newConnector(t, fg)
			tc.setup(fg)
			_, err := c.GetUser(ctx(t), u.ID)
			e := syncErr(t, err)
			if e.Permanent != tc.permanent || e.Status != tc.status || e.Code != tc.code {
				t.Fatalf("got %+v", e)
			}
			if gsync.IsPermanent(err) != tc.permanent {
				t.Fatal("IsPermanent disagrees")
			}
			switch {
			case tc.retry < 0:
				if e.RetryAfter <= 0 || e.RetryAfter > 3*time.Second {
					t.Fatalf("RetryAfter %v", e.RetryAfter)
				}
			case e.RetryAfter != tc.retry:
				t.Fatalf("RetryAfter %v, want %v", e.RetryAfter, tc.retry)
			}
			if n := fg.Count(http.MethodGet, fakegraph.KindUser); n != 1 {
				t.Fatalf("%d GETs: the connector must not retry", n)
			}
			if tc.name == "429 throttled" {
				if _, err := c.GetUser(ctx(t), u.ID); err != nil {
					t.Fatalf("after the throttle: %v", err)
				}
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	cases := []struct {
		name      string
		mod       func(*entra.Config)
		setup     func(*fakegraph.Server)
		permanent bool
		code      string
		wantParts []string
	}{
		{
			name:      "wrong client secret",
			mod:       func(c *entra.Config) { c.ClientSecret = secret.FromString("Wrong~Secret-Value") },
			permanent: true,
			code:      "invalid_client AADSTS7000215",
			wantParts: []string{"client_id", "client_secret", "AADSTS7000215"},
		},
		{
			name:      "unknown client id",
			mod:       func(c *entra.Config) { c.ClientID = "99999999-9999-9999-9999-999999999999" },
			permanent: true,
			code:      "unauthorized_client AADSTS700016",
			wantParts: []string{"client_id", "tenant_id"},
		},
		{
			name:      "unknown tenant",
			mod:       func(c *entra.Config) { c.TenantID = "nosuch.onmicrosoft.com" },
			permanent: true,
			code:      "invalid_request AADSTS90002",
			wantParts: []string{"tenant_id"},
		},
		{
			name: "token endpoint unavailable",
			setup: func(fg *fakegraph.Server) {
				fg.Fail(fakegraph.Fault{Kind: fakegraph.KindToken, Status: 503, Code: "temporarily_unavailable", Message: "try later", RetryAfter: 4 * time.Second})
			},
			permanent: false,
			code:      "temporarily_unavailable",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFake(t)
			u := fg.AddUser(fakegraph.User{UserPrincipalName: "max@contoso.com"})
			if tc.setup != nil {
				tc.setup(fg)
			}
			mods := []func(*entra.Config){}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			c, logs := newConnector(t, fg, mods...)
			_, err := c.GetUser(ctx(t), u.ID)
			e := syncErr(t, err)
			if e.Permanent != tc.permanent || e.Code != tc.code {
				t.Fatalf("got %+v", e)
			}
			if !tc.permanent && e.RetryAfter != 4*time.Second {
				t.Fatalf("RetryAfter %v", e.RetryAfter)
			}
			for _, p := range tc.wantParts {
				if !strings.Contains(e.Message, p) {
					t.Errorf("message lacks %q: %s", p, e.Message)
				}
			}
			_, _, realSecret := fg.Credentials()
			for _, s := range []string{realSecret, "Wrong~Secret-Value"} {
				if strings.Contains(e.Error(), s) || strings.Contains(logs.String(), s) {
					t.Fatal("a client secret leaked into the error or the log")
				}
			}
			if n := fg.Count(http.MethodGet, fakegraph.KindUser); n != 0 {
				t.Fatal("Graph called without a token")
			}
			if n := fg.Count(http.MethodPost, fakegraph.KindToken); n != 1 {
				t.Fatalf("%d token requests, want 1 (no auth-style probing, no retry)", n)
			}
		})
	}
}

func TestTokenReuse(t *testing.T) {
	fg := newFake(t)
	u := fg.AddUser(fakegraph.User{UserPrincipalName: "nia@contoso.com", AccountEnabled: true})
	c, _ := newConnector(t, fg)
	var wg stdsync.WaitGroup
	errs := make(chan error, 40)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if _, err := c.GetUser(context.Background(), u.ID); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := fg.TokensIssued(); n != 1 {
		t.Fatalf("%d tokens for 40 calls", n)
	}
	if n := fg.Count(http.MethodPost, fakegraph.KindToken); n != 1 {
		t.Fatalf("%d token requests", n)
	}
}

func TestTokenRefresh(t *testing.T) {
	t.Run("revoked or expired at the server: one refresh, call repeated", func(t *testing.T) {
		fg := newFake(t)
		u := fg.AddUser(fakegraph.User{UserPrincipalName: "oz@contoso.com"})
		c, _ := newConnector(t, fg)
		if _, err := c.GetUser(ctx(t), u.ID); err != nil {
			t.Fatal(err)
		}
		fg.ExpireTokens()
		if err := c.SetEnabled(ctx(t), u.ID, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := fg.User(u.ID); !got.AccountEnabled {
			t.Fatal("PATCH not repeated after the refresh")
		}
		if n := fg.TokensIssued(); n != 2 {
			t.Fatalf("%d tokens", n)
		}
		var unauthorized int
		for _, r := range fg.Requests() {
			if r.Status == http.StatusUnauthorized {
				unauthorized++
			}
		}
		if unauthorized != 1 {
			t.Fatalf("%d 401s", unauthorized)
		}
	})

	t.Run("expiring token renewed before use", func(t *testing.T) {
		fg := newFake(t)
		fg.SetTokenLifetime(2 * time.Second)
		u := fg.AddUser(fakegraph.User{UserPrincipalName: "pia@contoso.com"})
		c, _ := newConnector(t, fg)
		for i := 0; i < 3; i++ {
			if _, err := c.GetUser(ctx(t), u.ID); err != nil {
				t.Fatal(err)
			}
		}
		if n := fg.TokensIssued(); n != 1 {
			t.Fatalf("%d tokens before expiry", n)
		}
		time.Sleep(2100 * time.Millisecond)
		if _, err := c.GetUser(ctx(t), u.ID); err != nil {
			t.Fatal(err)
		}
		if n := fg.TokensIssued(); n != 2 {
			t.Fatalf("%d tokens after expiry", n)
		}
		for _, r := range fg.Requests() {
			if r.Status == http.StatusUnauthorized {
				t.Fatal("an expired token was sent")
			}
		}
	})

	t.Run("401 after the refresh is permanent", func(t *testing.T) {
		fg := newFake(t)
		u := fg.AddUser(fakegraph.User{UserPrincipalName: "quinn@contoso.com"})
		c, _ := newConnector(t, fg)
		fg.Fail(fakegraph.Fault{Status: 401, Code: "InvalidAuthenticationToken", Message: "Access token validation failure. Invalid audience.", Times: 5})
		_, err := c.GetUser(ctx(t), u.ID)
		e := syncErr(t, err)
		if !e.Permanent || e.Status != 401 || !strings.Contains(e.Message, "tenant_id") {
			t.Fatalf("%+v", e)
		}
		if n := fg.Count(http.MethodGet, fakegraph.KindUser); n != 2 {
			t.Fatalf("%d GETs, want 2 (one refresh)", n)
		}
		if n := fg.TokensIssued(); n != 2 {
			t.Fatalf("%d tokens", n)
		}
	})
}

func TestUPNEscaping(t *testing.T) {
	fg := newFake(t)
	c, _ := newConnector(t, fg)
	upns := []string{
		"o'neil@contoso.com",
		"a#b@contoso.com",
		"jdoe_fabrikam.com#EXT#@contoso.onmicrosoft.com",
		"a+b@contoso.com",
		"50%off@contoso.com",
		"what?no@contoso.com",
		"$svc@contoso.com",
		"$o'hara@contoso.com",
	}
	for _, upn := range upns {
		t.Run(upn, func(t *testing.T) {
			want := fg.AddUser(fakegraph.User{UserPrincipalName: upn, AccountEnabled: true})
			got, err := c.LookupUser(ctx(t), upn)
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if got.ID != want.ID || got.UPN != upn {
				t.Fatalf("got %+v, want id %s", got, want.ID)
			}
		})
	}
	// Create and look up a '#' and apostrophe UPN end to end.
	ru, err := c.CreateUser(ctx(t), gsync.Account{UPN: "d'arcy#1@contoso.com", Enabled: true}, pw(goodPW))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.LookupUser(ctx(t), "d'arcy#1@contoso.com")
	if err != nil || got.ID != ru.ID {
		t.Fatalf("lookup after create: %+v %v", got, err)
	}
	for _, r := range fg.Requests() {
		if strings.ContainsAny(r.Path, "#?+") {
			t.Fatalf("unescaped path %q", r.Path)
		}
	}
}

// TestNoSecretLeaks pushes a recognisable password through every path —
// success, refusal, throttling, token failure — and checks that it
// appears in no error, no log line, and (password field aside) nothing
// Graph received.
func TestNoSecretLeaks(t *testing.T) {
	const canary = "Canary-Pa55-7f3a9Q!"
	const weakCanary = "canaryweakpassword"
	fg := newFake(t)
	existing := fg.AddUser(fakegraph.User{UserPrincipalName: "rex@contoso.com", AccountEnabled: true})
	onprem := fg.AddUser(fakegraph.User{UserPrincipalName: "sam@contoso.com", AccountEnabled: true})
	fg.SetOnPremMastered(onprem.UserPrincipalName)
	c, logs := newConnector(t, fg)

	var errs []error
	record := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	ru, err := c.CreateUser(ctx(t), gsync.Account{UPN: "tess@contoso.com", DisplayName: "Tess", Enabled: true}, pw(canary))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SetPassword(ctx(t), existing.ID, pw(canary))
	record(err)
	_, err = c.SetPassword(ctx(t), existing.ID, pw(weakCanary))
	record(err)
	_, err = c.SetPassword(ctx(t), onprem.ID, pw(canary))
	record(err)
	fg.Throttle(1, time.Second)
	_, err = c.SetPassword(ctx(t), ru.ID, pw(canary))
	record(err)
	fg.DenyWrites(true)
	_, err = c.CreateUser(ctx(t), gsync.Account{UPN: "uma@contoso.com", Enabled: true}, pw(canary))
	record(err)
	fg.DenyWrites(false)
	_, err = c.SetPassword(ctx(t), "44444444-4444-4444-4444-444444444444", pw(canary))
	record(err)

	if len(errs) != 5 {
		t.Fatalf("expected 5 failures, got %d: %v", len(errs), errs)
	}
	if !fg.PasswordMatches(existing.ID, canary) || !fg.PasswordMatches(ru.ID, canary) {
		t.Fatal("the pushes did not land")
	}
	for _, err := range errs {
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(s, canary) || strings.Contains(s, weakCanary) {
				t.Fatalf("error carries the password: %s", s)
			}
		}
	}
	if l := logs.String(); strings.Contains(l, canary) || strings.Contains(l, weakCanary) || l == "" {
		t.Fatalf("log carries the password (or is empty):\n%s", l)
	}
	var withPW int
	for _, r := range fg.Requests() {
		all := r.Path + "?" + r.RawQuery + " " + r.Body
		if strings.Contains(all, canary) || strings.Contains(all, weakCanary) {
			t.Fatalf("Graph received the password outside passwordProfile.password: %s %s", r.Method, all)
		}
		if r.HadPasswordProfile {
			withPW++
		}
	}
	if withPW < 6 {
		t.Fatalf("only %d requests carried a passwordProfile", withPW)
	}
}

func TestContextAndTimeouts(t *testing.T) {
	t.Run("per-call timeout is transient", func(t *testing.T) {
		fg := newFake(t)
		u := fg.AddUser(fakegraph.User{UserPrincipalName: "vic@contoso.com"})
		c, _ := newConnector(t, fg, func(c *entra.Config) { c.Timeout = 200 * time.Millisecond })
		if _, err := c.GetUser(ctx(t), u.ID); err != nil { // token first
			t.Fatal(err)
		}
		fg.Latency(2 * time.Second)
		start := time.Now()
		_, err := c.GetUser(ctx(t), u.ID)
		e := syncErr(t, err)
		if e.Permanent || !strings.Contains(e.Message, "did not answer within") {
			t.Fatalf("%+v", e)
		}
		if time.Since(start) > 1500*time.Millisecond {
			t.Fatal("the timeout was not honoured")
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		fg := newFake(t)
		u := fg.AddUser(fakegraph.User{UserPrincipalName: "wes@contoso.com"})
		c, _ := newConnector(t, fg)
		fg.Latency(2 * time.Second)
		cctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.GetUser(cctx, u.ID)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
	t.Run("cancelled before the call", func(t *testing.T) {
		fg := newFake(t)
		c, _ := newConnector(t, fg)
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.LookupUser(cctx, "x@contoso.com"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestNetworkError(t *testing.T) {
	fg := newFake(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	c, _ := newConnector(t, fg, func(c *entra.Config) { c.GraphURL = dead })
	_, err = c.LookupUser(ctx(t), "yan@contoso.com")
	e := syncErr(t, err)
	if e.Permanent || e.Status != 0 || !strings.Contains(e.Message, "cannot reach Microsoft Graph") {
		t.Fatalf("%+v", e)
	}
}

func TestTokenEndpointUnreachable(t *testing.T) {
	fg := newFake(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	c, _ := newConnector(t, fg, func(c *entra.Config) { c.AuthorityURL = dead })
	_, err = c.LookupUser(ctx(t), "yan@contoso.com")
	e := syncErr(t, err)
	if e.Permanent || !strings.Contains(e.Message, "cannot reach the Entra ID token endpoint") {
		t.Fatalf("%+v", e)
	}
}

// A 404 that is not Graph's (wrong graph_url, a proxy) must not read as
// "no such user": the engine would create the account.
func TestBare404IsNotNotFound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"t"}`)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	c, err := entra.New(entra.Config{TenantID: "t", ClientID: "c", ClientSecret: pw("s"), AuthorityURL: srv.URL, GraphURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.LookupUser(ctx(t), "zed@contoso.com")
	if errors.Is(err, gsync.ErrNotFound) {
		t.Fatal("bare 404 taken for a missing user")
	}
	if e := syncErr(t, err); !e.Permanent || !strings.Contains(e.Message, "graph_url") {
		t.Fatalf("%+v", e)
	}
}

func TestResponseTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"t"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"`+strings.Repeat("x", 2<<20)+`"}`)
	}))
	defer srv.Close()
	c, err := entra.New(entra.Config{TenantID: "t", ClientID: "c", ClientSecret: pw("s"), AuthorityURL: srv.URL, GraphURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetUser(ctx(t), "id")
	e := syncErr(t, err)
	if e.Permanent || !strings.Contains(e.Message, "larger than") {
		t.Fatalf("%+v", e)
	}
}

func TestNewValidation(t *testing.T) {
	ok := entra.Config{TenantID: "contoso.onmicrosoft.com", ClientID: "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f", ClientSecret: pw("s")}
	cases := []struct {
		name string
		mod  func(*entra.Config)
		want string // "" = valid
	}{
		{"defaults", func(*entra.Config) {}, ""},
		{"loopback http and trailing slash", func(c *entra.Config) { c.GraphURL = "http://127.0.0.1:8080/"; c.AuthorityURL = "http://localhost:9" }, ""},
		{"national cloud", func(c *entra.Config) { c.GraphURL = "https://graph.microsoft.us" }, ""},
		{"no tenant", func(c *entra.Config) { c.TenantID = "" }, "tenant_id"},
		{"tenant with a slash", func(c *entra.Config) { c.TenantID = "a/b" }, "tenant_id"},
		{"no client id", func(c *entra.Config) { c.ClientID = "" }, "client_id"},
		{"no secret", func(c *entra.Config) { c.ClientSecret = secret.String{} }, "client_secret"},
		{"plain http to a remote host", func(c *entra.Config) { c.GraphURL = "http://graph.example.com" }, "graph_url"},
		{"bad scheme", func(c *entra.Config) { c.AuthorityURL = "ftp://login.example.com" }, "authority_url"},
		{"query in URL", func(c *entra.Config) { c.GraphURL = "https://graph.microsoft.com?x=1" }, "graph_url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			c, err := entra.New(cfg)
			if tc.want == "" {
				if err != nil || c == nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "Wrong") {
				t.Fatal("secret in error")
			}
		})
	}
}

// TestLifecycle walks one account through takeover-era operations in
// parallel with others (race detector) and checks nothing is ever
// deleted (SPEC 4.3).
func TestLifecycle(t *testing.T) {
	fg := newFake(t)
	c, _ := newConnector(t, fg)
	var wg stdsync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			upn := fmt.Sprintf("user%d@contoso.com", i)
			cx := context.Background()
			if _, err := c.LookupUser(cx, upn); !errors.Is(err, gsync.ErrNotFound) {
				errs <- fmt.Errorf("%s lookup before create: %v", upn, err)
				return
			}
			ru, err := c.CreateUser(cx, gsync.Account{UPN: upn, DisplayName: "User", Enabled: false}, secret.String{})
			if err != nil {
				errs <- err
				return
			}
			steps := []func() error{
				func() error {
					return c.UpdateUser(cx, ru.ID, gsync.Account{UPN: upn, DisplayName: "User Two", Attributes: map[string]string{"department": "Ops"}})
				},
				func() error { return c.SetEnabled(cx, ru.ID, true) },
				func() error { _, err := c.SetPassword(cx, ru.ID, pw(fmt.Sprintf("Pass-%d-word!", i))); return err },
				func() error { return c.SetEnabled(cx, ru.ID, false) },
			}
			for _, st := range steps {
				if err := st(); err != nil {
					errs <- err
					return
				}
			}
			u, _ := fg.User(ru.ID)
			if u.AccountEnabled || u.DisplayName != "User Two" || !fg.PasswordMatches(ru.ID, fmt.Sprintf("Pass-%d-word!", i)) {
				errs <- fmt.Errorf("%s ended as %+v", upn, u)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := fg.Count(http.MethodDelete, fakegraph.KindUser); n != 0 {
		t.Fatalf("%d DELETEs", n)
	}
	if len(fg.Users()) != 6 {
		t.Fatalf("%d users", len(fg.Users()))
	}
	if n := fg.TokensIssued(); n != 1 {
		t.Fatalf("%d tokens", n)
	}
}

// refusedNames returns the sorted, comma-joined names err refuses, and
// fails the test for any other error.
func refusedNames(t *testing.T, err error) string {
	t.Helper()
	refused, rest := gsync.Refusals(err)
	if rest != nil {
		t.Fatalf("want *sync.AttributesRefused, got %T %v", err, err)
	}
	var names []string
	for _, r := range refused {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
