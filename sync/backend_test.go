package sync_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegoogle"
	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/secret"
	gwsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
	"github.com/gatewayd/gatewayd/sync/google"
)

// backend is a fake directory as the engine tests see it, so every test
// runs against Entra ID and Google Workspace alike.
type backend interface {
	connector(t *testing.T) gwsync.Connector
	exists(upn string) bool
	enabled(upn string) bool
	givenName(upn string) string
	// pushes counts successful password writes after creation.
	pushes(upn string) int
	passwordMatches(upn, pw string) bool
	addExisting(upn, given, family string, enabled bool)
	// remoteChange changes the password in the cloud; false if the
	// directory cannot report such a change (Google).
	remoteChange(upn string) bool
	throttle(n int, retryAfter time.Duration)
	setDown(down bool)
	deletes() int
	creates() int
	addGroup(name string) string
	groupsNamed(name string) []string
	groupMembers(groupID string) []string // member UPNs, sorted
	// leaked reports whether the plaintext reached the directory anywhere.
	leaked(pw string) bool
}

var backends = map[string]func(t *testing.T) backend{
	"entra":  newEntraBackend,
	"google": newGoogleBackend,
}

type entraBackend struct{ fg *fakegraph.Server }

func newEntraBackend(t *testing.T) backend {
	fg := fakegraph.New()
	t.Cleanup(fg.Close)
	return &entraBackend{fg}
}

func (b *entraBackend) connector(t *testing.T) gwsync.Connector {
	c, err := entra.New(entra.Config{Name: "m365", TenantID: fakegraph.DefaultTenant, ClientID: fakegraph.DefaultClientID,
		ClientSecret: secret.FromString(fakegraph.DefaultClientSecret), AuthorityURL: b.fg.URL(), GraphURL: b.fg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (b *entraBackend) exists(upn string) bool { _, ok := b.fg.User(upn); return ok }
func (b *entraBackend) enabled(upn string) bool {
	u, ok := b.fg.User(upn)
	return ok && u.AccountEnabled
}
func (b *entraBackend) givenName(upn string) string         { u, _ := b.fg.User(upn); return u.GivenName }
func (b *entraBackend) passwordMatches(upn, pw string) bool { return b.fg.PasswordMatches(upn, pw) }
func (b *entraBackend) throttle(n int, ra time.Duration)    { b.fg.Throttle(n, ra) }
func (b *entraBackend) setDown(down bool)                   { b.fg.SetDown(down) }
func (b *entraBackend) deletes() int                        { return b.fg.Count("DELETE", fakegraph.KindUser) }
func (b *entraBackend) creates() int                        { return b.fg.Count("POST", fakegraph.KindUsers) }
func (b *entraBackend) addGroup(name string) string         { return b.fg.AddGroup(name).ID }
func (b *entraBackend) leaked(string) bool                  { return false } // Entra takes the plaintext by design

func (b *entraBackend) pushes(upn string) int {
	u, ok := b.fg.User(upn)
	if !ok {
		return 0
	}
	n := 0
	for _, q := range b.fg.Requests() {
		if q.Method == "PATCH" && q.HadPasswordProfile && q.Status < 300 && strings.Contains(q.Path, u.ID) {
			n++
		}
	}
	return n
}

func (b *entraBackend) addExisting(upn, given, family string, enabled bool) {
	b.fg.AddUser(fakegraph.User{UserPrincipalName: upn, DisplayName: "Old " + given, MailNickname: strings.Split(upn, "@")[0],
		GivenName: "Old", Surname: family, AccountEnabled: enabled})
}

func (b *entraBackend) remoteChange(upn string) bool {
	// A little later than our push, as a person would.
	b.fg.SetClock(func() time.Time { return time.Now().Add(5 * time.Second) })
	b.fg.SetPassword(upn)
	return true
}

func (b *entraBackend) groupsNamed(name string) []string {
	var ids []string
	for _, g := range b.fg.Groups() {
		if g.DisplayName == name {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

func (b *entraBackend) groupMembers(id string) []string {
	var upns []string
	for _, m := range b.fg.GroupMembers(id) {
		if u, ok := b.fg.User(m); ok {
			upns = append(upns, u.UserPrincipalName)
		}
	}
	slices.Sort(upns)
	return upns
}

type googleBackend struct {
	fg     *fakegoogle.Server
	groups int // pre-existing groups made so far (each needs its own email)
}

func newGoogleBackend(t *testing.T) backend {
	fg := fakegoogle.New()
	fg.SetDomains("corp.test")
	t.Cleanup(fg.Close)
	return &googleBackend{fg: fg}
}

func (b *googleBackend) connector(t *testing.T) gwsync.Connector {
	c, err := google.New(context.Background(), google.Config{Name: "m365", CustomerID: b.fg.CustomerID(), AdminSubject: b.fg.AdminSubject(),
		CredentialsJSON: b.fg.ServiceAccountKey(), Domain: "corp.test", Endpoint: b.fg.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (b *googleBackend) exists(upn string) bool              { _, ok := b.fg.User(upn); return ok }
func (b *googleBackend) enabled(upn string) bool             { u, ok := b.fg.User(upn); return ok && !u.Suspended }
func (b *googleBackend) givenName(upn string) string         { u, _ := b.fg.User(upn); return u.GivenName }
func (b *googleBackend) passwordMatches(upn, pw string) bool { return b.fg.PasswordMatches(upn, pw) }
func (b *googleBackend) throttle(n int, ra time.Duration)    { b.fg.Throttle(n, ra) }
func (b *googleBackend) setDown(down bool)                   { b.fg.SetDown(down) }
func (b *googleBackend) deletes() int                        { return len(b.fg.DeletedUsers()) }
func (b *googleBackend) creates() int                        { return b.fg.Count("POST", fakegoogle.KindUsers) }
func (b *googleBackend) remoteChange(string) bool            { return false }
func (b *googleBackend) leaked(pw string) bool               { return b.fg.PlaintextSeen() > 0 || b.fg.Saw(pw) }

func (b *googleBackend) addGroup(name string) string {
	b.groups++
	email := fmt.Sprintf("%s-old%d@corp.test", strings.ReplaceAll(strings.ToLower(name), " ", "-"), b.groups)
	return b.fg.AddGroup(fakegoogle.Group{Name: name, Email: email}).ID
}

func (b *googleBackend) pushes(upn string) int {
	u, ok := b.fg.User(upn)
	if !ok {
		return 0
	}
	n := 0
	for _, q := range b.fg.Requests() {
		if q.Kind == fakegoogle.KindUser && q.Method != "GET" && q.HadPassword && q.Status < 300 &&
			(strings.Contains(q.Path, u.ID) || strings.Contains(q.Path, strings.ReplaceAll(upn, "@", "%40")) || strings.Contains(q.Path, upn)) {
			n++
		}
	}
	return n
}

func (b *googleBackend) addExisting(upn, given, family string, enabled bool) {
	b.fg.AddUser(fakegoogle.User{PrimaryEmail: upn, GivenName: "Old", FamilyName: family, Suspended: !enabled})
}

func (b *googleBackend) groupsNamed(name string) []string {
	var ids []string
	for _, g := range b.fg.Groups() {
		if g.Name == name {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

func (b *googleBackend) groupMembers(id string) []string {
	var upns []string
	for _, m := range b.fg.Members(id) {
		upns = append(upns, strings.ToLower(m.Email))
	}
	slices.Sort(upns)
	return upns
}
