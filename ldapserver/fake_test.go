package ldapserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// fakeDir is an in-memory Directory. Passwords live in plaintext beside
// the users, for fakeAuth.
type fakeDir struct {
	mu        sync.Mutex
	users     map[string]*store.User // by ID
	groups    map[string]*store.Group
	members   map[string]map[string]bool // group ID -> user IDs
	passwords map[string]string          // user ID -> plaintext

	// listGate, when set, makes ListUsers wait for a receive (or close).
	listGate chan struct{}
	// panicUser makes UserByUsername panic for that name.
	panicUser string
}

func newFakeDir() *fakeDir {
	return &fakeDir{
		users:     map[string]*store.User{},
		groups:    map[string]*store.Group{},
		members:   map[string]map[string]bool{},
		passwords: map[string]string{},
	}
}

var fakeEpoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func (d *fakeDir) addUser(u store.User, password string) *store.User {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u.ID == "" {
		u.ID = fmt.Sprintf("u-%s", strings.ToLower(u.Username))
	}
	if u.State == "" {
		u.State = store.StateActive
	}
	if u.PasswordStatus == "" {
		u.PasswordStatus = store.PasswordActive
	}
	if u.PasswordAuthority == "" {
		u.PasswordAuthority = store.AuthorityLocal
	}
	if u.UIDNumber == 0 {
		u.UIDNumber = 10000 + len(d.users) + 1
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt, u.UpdatedAt = fakeEpoch, fakeEpoch.Add(time.Hour)
	}
	u.PasswordHash = "$argon2id$v=19$m=65536,t=1,p=2$c2FsdHNhbHQ$aGFzaGhhc2g" // must never be served
	d.users[u.ID] = &u
	d.passwords[u.ID] = password
	return u.Copy()
}

func (d *fakeDir) addGroup(name string, gid int, members ...string) *store.Group {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := &store.Group{ID: "g-" + name, Name: name, GIDNumber: gid, Description: "the " + name + " group", CreatedAt: fakeEpoch, UpdatedAt: fakeEpoch}
	d.groups[g.ID] = g
	d.members[g.ID] = map[string]bool{}
	for _, m := range members {
		for _, u := range d.users {
			if strings.EqualFold(u.Username, m) {
				d.members[g.ID][u.ID] = true
			}
		}
	}
	return g.Copy()
}

func (d *fakeDir) update(username string, fn func(*store.User)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if strings.EqualFold(u.Username, username) {
			fn(u)
		}
	}
}

func (d *fakeDir) password(username string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if strings.EqualFold(u.Username, username) {
			return d.passwords[u.ID]
		}
	}
	return ""
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, store.ErrNotFound) }

func (d *fakeDir) UserByID(id string) (*store.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.users[id]; ok {
		return u.Copy(), nil
	}
	return nil, notFound("user " + id)
}

func (d *fakeDir) UserByUsername(name string) (*store.User, error) {
	d.mu.Lock()
	p := d.panicUser
	d.mu.Unlock()
	if p != "" && strings.EqualFold(name, p) {
		panic("fakeDir: boom for " + name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if strings.EqualFold(u.Username, name) {
			return u.Copy(), nil
		}
	}
	return nil, notFound("user " + name)
}

// UserByEmail makes the fake an emailIndex, as the store is.
func (d *fakeDir) UserByEmail(email string) (*store.User, error) {
	if u := d.userByEmail(email); u != nil {
		return u, nil
	}
	return nil, notFound("email " + email)
}

func (d *fakeDir) userByEmail(email string) *store.User {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if strings.EqualFold(u.Email, email) {
			return u.Copy()
		}
	}
	return nil
}

func (d *fakeDir) ListUsers(after string, limit int) ([]*store.User, string, error) {
	d.mu.Lock()
	gate := d.listGate
	d.mu.Unlock()
	if gate != nil {
		<-gate
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	all := make([]*store.User, 0, len(d.users))
	for _, u := range d.users {
		all = append(all, u)
	}
	sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Username) < strings.ToLower(all[j].Username) })
	var out []*store.User
	for _, u := range all {
		if after != "" && strings.ToLower(u.Username) <= after {
			continue
		}
		if len(out) == limit {
			return out, strings.ToLower(out[len(out)-1].Username), nil
		}
		out = append(out, u.Copy())
	}
	return out, "", nil
}

func (d *fakeDir) ListGroups(after string, limit int) ([]*store.Group, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	all := make([]*store.Group, 0, len(d.groups))
	for _, g := range d.groups {
		all = append(all, g)
	}
	sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Name) < strings.ToLower(all[j].Name) })
	var out []*store.Group
	for _, g := range all {
		if after != "" && strings.ToLower(g.Name) <= after {
			continue
		}
		if len(out) == limit {
			return out, strings.ToLower(out[len(out)-1].Name), nil
		}
		out = append(out, g.Copy())
	}
	return out, "", nil
}

func (d *fakeDir) GroupByName(name string) (*store.Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.groups {
		if strings.EqualFold(g.Name, name) {
			return g.Copy(), nil
		}
	}
	return nil, notFound("group " + name)
}

func (d *fakeDir) GroupsOfUser(userID string) ([]*store.Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*store.Group
	for gid, ms := range d.members {
		if ms[userID] {
			out = append(out, d.groups[gid].Copy())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (d *fakeDir) MembersOf(groupID string) ([]*store.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.groups[groupID]; !ok {
		return nil, notFound("group " + groupID)
	}
	var out []*store.User
	for uid := range d.members[groupID] {
		out = append(out, d.users[uid].Copy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}

// fakeUPNRealm: "<username>@corp.example.test" is a user's UPN in the fake.
const fakeUPNRealm = "corp.example.test"

// fakeAuth checks plaintext passwords held by fakeDir.
type fakeAuth struct {
	dir *fakeDir

	mu      sync.Mutex
	logins  []authn.Request // Password fields are wiped copies: do not read
	changes []fakeChange
	// panicOn makes Login panic for that identifier.
	panicOn string
	// maxAge is the fake's max_password_age (0: passwords never expire).
	maxAge time.Duration
	// ownErr, when set, is what ChangeOwnPassword returns once the old
	// password proved the user (busy, a weak new password...).
	ownErr error
	// owns records ChangeOwnPassword calls (passwords wiped: do not read).
	owns []authn.Request
}

type fakeChange struct {
	UserID, Actor string
}

func (a *fakeAuth) resolve(req authn.Request) *store.User {
	if u, err := a.dir.UserByUsername(req.Identifier); err == nil {
		return u
	}
	if req.ByUsername {
		return nil
	}
	if u := a.dir.userByEmail(req.Identifier); u != nil {
		return u
	}
	if local, realm, ok := strings.Cut(req.Identifier, "@"); ok && strings.EqualFold(realm, fakeUPNRealm) {
		if u, err := a.dir.UserByUsername(local); err == nil {
			return u
		}
	}
	return nil
}

func (a *fakeAuth) Login(_ context.Context, req authn.Request) authn.Result {
	a.mu.Lock()
	a.logins = append(a.logins, authn.Request{Identifier: req.Identifier, ByUsername: req.ByUsername, Protocol: req.Protocol, Source: req.Source, Client: req.Client})
	p := a.panicOn
	a.mu.Unlock()
	if p != "" && req.Identifier == p {
		panic("fakeAuth: boom")
	}
	if req.Protocol != authn.ProtocolLDAP {
		return authn.Result{Reason: authn.ReasonInternal}
	}
	u := a.resolve(req)
	if u == nil {
		return authn.Result{Reason: authn.ReasonNoSuchUser}
	}
	if u.State != store.StateActive {
		return authn.Result{Reason: authn.ReasonSuspended, User: u}
	}
	if a.expired(u) {
		return authn.Result{Reason: authn.ReasonExpired, User: u}
	}
	if u.PasswordStatus == store.PasswordPending && u.DelegatedAuthority != store.AuthorityAD {
		return authn.Result{Reason: authn.ReasonPending, User: u}
	}
	if a.dir.password(u.Username) != string(req.Password.Bytes()) {
		return authn.Result{Reason: authn.ReasonBadPassword, User: u}
	}
	return authn.Result{OK: true, User: u}
}

// expired: the status says so, or the password is older than maxAge.
func (a *fakeAuth) expired(u *store.User) bool {
	if u.PasswordStatus == store.PasswordExpired {
		return true
	}
	exp := a.PasswordExpiresAt(u)
	return !exp.IsZero() && !time.Now().Before(exp)
}

func (a *fakeAuth) PasswordExpiresAt(u *store.User) time.Time {
	a.mu.Lock()
	age := a.maxAge
	a.mu.Unlock()
	if age <= 0 || u.PasswordAuthority == store.AuthorityAD || u.PasswordChangedAt.IsZero() {
		return time.Time{}
	}
	return u.PasswordChangedAt.Add(age)
}

// ChangeOwnPassword mimics authn's: AD-held passwords refused first, a
// weak new password next, then the old password must prove an active
// user (an expired password counts), then the change.
func (a *fakeAuth) ChangeOwnPassword(ctx context.Context, req authn.Request, pw secret.String, _ func(*store.User) error) (*store.User, error) {
	a.mu.Lock()
	a.owns = append(a.owns, authn.Request{Identifier: req.Identifier, ByUsername: req.ByUsername, Protocol: req.Protocol, Source: req.Source, Client: req.Client})
	ownErr := a.ownErr
	a.mu.Unlock()
	if req.Protocol != authn.ProtocolLDAP {
		return nil, errors.New("fakeAuth: wrong protocol")
	}
	u := a.resolve(req)
	if u != nil && (u.PasswordAuthority == store.AuthorityAD || u.DelegatedAuthority == store.AuthorityAD) {
		return nil, authn.ErrAuthorityAD
	}
	if pw.Len() < 8 {
		return nil, fmt.Errorf("%w: at least 8 characters", authn.ErrWeakPassword)
	}
	if u == nil || u.State != store.StateActive || a.dir.password(u.Username) != string(req.Password.Bytes()) {
		return nil, authn.ErrNotProven
	}
	if ownErr != nil {
		return nil, ownErr
	}
	if err := a.ChangePassword(ctx, u.ID, pw, string(req.Protocol)+":self"); err != nil {
		return nil, err
	}
	return a.dir.UserByID(u.ID)
}

func (a *fakeAuth) ChangePassword(_ context.Context, userID string, pw secret.String, actor string) error {
	u, err := a.dir.UserByID(userID)
	if err != nil {
		return err
	}
	if u.PasswordAuthority == store.AuthorityAD {
		return authn.ErrAuthorityAD
	}
	if pw.Len() < 8 {
		return fmt.Errorf("%w: at least 8 characters", authn.ErrWeakPassword)
	}
	a.dir.mu.Lock()
	a.dir.passwords[userID] = string(pw.Bytes())
	x := a.dir.users[userID]
	x.PasswordVersion++
	x.PasswordChangedAt = time.Now()
	if x.PasswordStatus == store.PasswordExpired || x.PasswordStatus == store.PasswordPending {
		x.PasswordStatus = store.PasswordActive
	}
	a.dir.mu.Unlock()
	a.mu.Lock()
	a.changes = append(a.changes, fakeChange{UserID: userID, Actor: actor})
	a.mu.Unlock()
	return nil
}

func (a *fakeAuth) loginCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.logins)
}

// Test fixture.
const (
	testBase   = "dc=example,dc=test"
	aliceDN    = "uid=alice,ou=users," + testBase
	bobDN      = "uid=bob,ou=users," + testBase
	svcDN      = "uid=svc,ou=users," + testBase
	resetterDN = "uid=resetter,ou=users," + testBase
	staffDN    = "cn=staff,ou=groups," + testBase
	adminsDN   = "cn=admins,ou=groups," + testBase
	alicePW    = "alice-pass-1"
	bobPW      = "bob-pass-12"
	svcPW      = "svc-pass-123"
	resetterPW = "resetter-pass"
	nExtra     = 23 // user01..user23
)

func newFixture() (*fakeDir, *fakeAuth) {
	d := newFakeDir()
	d.addUser(store.User{Username: "alice", Email: "alice@example.test", FirstName: "Alice", LastName: "Example", DisplayName: "Alice Example", ID: "7f1c2b9e-4d3a-4c2b-9a8e-1f2e3d4c5b6a"}, alicePW)
	d.addUser(store.User{Username: "bob", Email: "bob@example.test", FirstName: "Bob", LastName: "Builder"}, bobPW)
	d.addUser(store.User{Username: "svc", Email: "svc@example.test", ServiceAccount: true}, svcPW)
	d.addUser(store.User{Username: "resetter", Email: "resetter@example.test", ServiceAccount: true, PasswordResetter: true}, resetterPW)
	d.addUser(store.User{Username: "carol", Email: "carol@example.test", State: store.StateSuspended}, "carol-pass-1")
	d.addUser(store.User{Username: "dave", Email: "dave@example.test", PasswordAuthority: store.AuthorityAD}, "dave-pass-12")
	for i := 1; i <= nExtra; i++ {
		d.addUser(store.User{Username: fmt.Sprintf("user%02d", i), Email: fmt.Sprintf("user%02d@example.test", i), FirstName: "User", LastName: fmt.Sprintf("Number %d", i)}, fmt.Sprintf("Passw0rd!%d", i))
	}
	d.addGroup("staff", 20001, "alice", "bob")
	d.addGroup("admins", 20002, "alice")
	d.addGroup("empty", 20003)
	return d, &fakeAuth{dir: d}
}

// totalUsers is the number of users in the fixture.
const totalUsers = 6 + nExtra
