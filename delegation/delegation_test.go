package delegation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	ldap "github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

func TestSubCodeMapping(t *testing.T) {
	diag := func(code string) error {
		return &ldap.Error{ResultCode: ldap.LDAPResultInvalidCredentials,
			Err: fmt.Errorf("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data %s, v4563", code)}
	}
	tests := []struct {
		code   string
		reason authn.Reason
	}{
		{"52e", authn.ReasonBadPassword},
		{"525", authn.ReasonNoSuchUser},
		{"530", authn.ReasonRestricted},
		{"531", authn.ReasonRestricted},
		{"532", authn.ReasonExpired},
		{"533", authn.ReasonDisabled},
		{"701", authn.ReasonAccountExpired},
		{"773", authn.ReasonMustChange},
		{"775", authn.ReasonLocked},
		{"52E", authn.ReasonBadPassword},      // upper-case hex
		{"0000052e", authn.ReasonBadPassword}, // zero-padded
		{"568", authn.ReasonBadPassword},      // unknown: invalid credentials
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			err := diag(tc.code)
			if classify(err) != classCredentials {
				t.Fatalf("49 must classify as credentials, got %v", classify(err))
			}
			got, what := ReasonForSubCode(SubCode(err))
			if got != tc.reason || what == "" {
				t.Fatalf("data %s: got %q (%q), want %q", tc.code, got, what, tc.reason)
			}
		})
	}
	if SubCode(errors.New("LDAP Result Code 49 \"Invalid Credentials\": ")) != "" {
		t.Fatal("no data field must give no sub-code")
	}
	if r, _ := ReasonForSubCode(""); r != authn.ReasonBadPassword {
		t.Fatal("a bare 49 is a bad password")
	}
}

// TestServerTimeLimit: the DC gets at least one whole second beyond the
// client's timeout (Samba's limit starts at the current wall-clock second).
func TestServerTimeLimit(t *testing.T) {
	for _, tc := range []struct {
		t    time.Duration
		want int
	}{{500 * time.Millisecond, 2}, {time.Second, 2}, {1500 * time.Millisecond, 3}, {time.Millisecond, 2}} {
		if got := serverTimeLimit(tc.t); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.t, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want errClass
	}{
		{&ldap.Error{ResultCode: ldap.LDAPResultInvalidCredentials, Err: errors.New("x")}, classCredentials},
		{&ldap.Error{ResultCode: ldap.LDAPResultBusy, Err: errors.New("x")}, classBusy},
		{&ldap.Error{ResultCode: ldap.LDAPResultUnavailable, Err: errors.New("x")}, classBusy},
		{&ldap.Error{ResultCode: ldap.LDAPResultStrongAuthRequired, Err: errors.New("x")}, classRefused},
		{&ldap.Error{ResultCode: ldap.LDAPResultUnwillingToPerform, Err: errors.New("x")}, classRefused},
		{&ldap.Error{ResultCode: ldap.LDAPResultTimeLimitExceeded, Err: errors.New("Indexed and full searches both failed!")}, classTimeout},
		{ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection timed out")), classTimeout},
		{ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: response channel closed")), classNetwork},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, classNetwork},
		{io.EOF, classNetwork},
		{context.DeadlineExceeded, classTimeout},
	}
	for _, tc := range tests {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.err, got, tc.want)
		}
	}
}

// newTestDelegator builds a started delegator over one domain with urls.
func newTestDelegator(t *testing.T, reg prometheus.Registerer, mut func(*Domain), urls ...string) *Delegator {
	t.Helper()
	dom := Domain{Name: "corp", Realm: "EXAMPLE.TEST", URLs: urls, ConnectTimeout: 300 * time.Millisecond,
		Timeout: 300 * time.Millisecond, PoolSize: 2, ProbeInterval: 100 * time.Millisecond, StoreHash: true, AllowInsecure: true}
	if mut != nil {
		mut(&dom)
	}
	d, err := New(Config{Domains: []Domain{dom}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(d.Close)
	return d
}

func user(name string) *store.User {
	return &store.User{ID: "id-" + name, Username: name, Email: name + "@example.test"}
}

func validate(d *Delegator, u *store.User, pw string) authn.DelegationResult {
	return d.Validate(context.Background(), authn.PrincipalOf(u), secret.FromString(pw))
}

func TestBindReasonsOverLDAPS(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeDC(t, ca.server, true)
	f.addUser("alice", "Alice-Pw1", "")
	for code, name := range map[string]string{"533": "dis", "773": "chg", "775": "lck", "532": "exp", "701": "aexp", "530": "hours"} {
		f.addUser(name, "Pw-"+name, code)
	}
	d := newTestDelegator(t, nil, func(dm *Domain) { dm.RootCAs = ca.pool }, f.url())

	tests := []struct {
		user, pw string
		ok       bool
		reason   authn.Reason
	}{
		{"alice", "Alice-Pw1", true, authn.ReasonNone},
		{"alice", "wrong", false, authn.ReasonBadPassword},
		{"nobody", "x-password", false, authn.ReasonNoSuchUser},
		{"dis", "Pw-dis", false, authn.ReasonDisabled},
		{"chg", "Pw-chg", false, authn.ReasonMustChange},
		{"lck", "Pw-lck", false, authn.ReasonLocked},
		{"exp", "Pw-exp", false, authn.ReasonExpired},
		{"aexp", "Pw-aexp", false, authn.ReasonAccountExpired},
		{"hours", "Pw-hours", false, authn.ReasonRestricted},
		{"alice", "", false, authn.ReasonBadPassword},
	}
	for _, tc := range tests {
		r := validate(d, user(tc.user), tc.pw)
		if r.OK != tc.ok || r.Reason != tc.reason || r.Unreachable {
			t.Errorf("%s/%q: got %+v, want ok=%v reason=%q", tc.user, tc.pw, r, tc.ok, tc.reason)
		}
		if r.Domain != "corp" || !r.StoreHash {
			t.Errorf("result must carry the domain's policy: %+v", r)
		}
		if tc.pw != "" && !strings.Contains(r.Detail, f.url()) {
			t.Errorf("detail %q must name the DC", r.Detail)
		}
	}
	// Every bind went over one pooled connection (plus the probe's).
	if n := f.accepted.Load(); n > 2 {
		t.Fatalf("%d connections for %d logins: the pool is not reused", n, len(tests))
	}
	if f.binds.Load() != int64(len(tests)-1) {
		t.Fatalf("%d binds; the empty password must never reach AD", f.binds.Load())
	}
}

func TestWrongCAIsACertificateError(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	f := newFakeDC(t, ca.server, true)
	f.addUser("alice", "Alice-Pw1", "")
	dom := Domain{Name: "corp", Realm: "EXAMPLE.TEST", URLs: []string{f.url()}, RootCAs: other.pool, ProbeInterval: time.Hour}
	d, err := New(Config{Domains: []Domain{dom}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res := d.Start(context.Background())
	if len(res) != 1 || !IsCertError(res[0].Err) || !strings.Contains(res[0].Err.Error(), "ca_file") {
		t.Fatalf("start must report a certificate error naming ca_file: %+v", res)
	}
	r := validate(d, user("alice"), "Alice-Pw1")
	if r.OK || !r.Unreachable {
		t.Fatalf("a DC that fails verification must not be used: %+v", r)
	}
}

func TestStartTLS(t *testing.T) {
	ca := newTestCA(t)
	f := newFakeDC(t, ca.server, false) // plain listener that offers StartTLS
	f.addUser("alice", "Alice-Pw1", "")
	d := newTestDelegator(t, nil, func(dm *Domain) { dm.RootCAs, dm.StartTLS, dm.AllowInsecure = ca.pool, true, false }, f.url())
	if r := validate(d, user("alice"), "Alice-Pw1"); !r.OK {
		t.Fatalf("StartTLS login failed: %+v", r)
	}
	// A DC that refuses StartTLS is not used in clear.
	g := newFakeDC(t, nil, false)
	g.addUser("alice", "Alice-Pw1", "")
	d2 := newTestDelegator(t, nil, func(dm *Domain) { dm.RootCAs, dm.StartTLS, dm.AllowInsecure = ca.pool, true, false }, g.url())
	if r := validate(d2, user("alice"), "Alice-Pw1"); r.OK || g.binds.Load() != 0 {
		t.Fatalf("a bind went out without TLS: %+v binds=%d", r, g.binds.Load())
	}
}

func TestPlainLDAPRefusedWithoutAllowInsecure(t *testing.T) {
	_, err := New(Config{Domains: []Domain{{Name: "corp", Realm: "EXAMPLE.TEST", URLs: []string{"ldap://127.0.0.1:1"}}}})
	if err == nil || !strings.Contains(err.Error(), "allow_insecure") {
		t.Fatalf("plain ldap:// without start_tls must be refused: %v", err)
	}
}

// TestFailoverDeadFirstDC: the first DC refuses connections, or accepts
// and never answers; every login stays under a second, and once marked
// the dead DC is skipped.
func TestFailoverDeadFirstDC(t *testing.T) {
	for _, kind := range []string{"refused", "hung"} {
		t.Run(kind, func(t *testing.T) {
			good := newFakeDC(t, nil, false)
			good.addUser("alice", "Alice-Pw1", "")
			dead := "ldap://" + closedPort(t)
			if kind == "hung" {
				dead = "ldap://" + hungListener(t)
			}
			reg := prometheus.NewRegistry()
			dom := Domain{Name: "corp", Realm: "EXAMPLE.TEST", URLs: []string{dead, good.url()}, AllowInsecure: true,
				ConnectTimeout: 300 * time.Millisecond, Timeout: 300 * time.Millisecond, ProbeInterval: time.Hour}
			d, err := New(Config{Domains: []Domain{dom}, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			// Not started: the first login finds the dead DC itself.
			for i := 0; i < 5; i++ {
				start := time.Now()
				r := validate(d, user("alice"), "Alice-Pw1")
				took := time.Since(start)
				if !r.OK {
					t.Fatalf("login %d failed: %+v", i, r)
				}
				if took > time.Second {
					t.Fatalf("login %d took %v with a %s first DC", i, took, kind)
				}
				if i > 0 && (took > 250*time.Millisecond || strings.Contains(r.Detail, "after")) {
					t.Fatalf("login %d took %v (%q): the dead DC must be skipped once marked", i, took, r.Detail)
				}
				if i == 0 && !strings.Contains(r.Detail, "after "+dead) {
					t.Fatalf("the detail must say which DC failed: %q", r.Detail)
				}
			}
			if n := testutil.ToFloat64(d.m.failovers.WithLabelValues("corp")); n != 1 {
				t.Fatalf("failovers = %v, want 1", n)
			}
			if n := testutil.ToFloat64(d.m.up.WithLabelValues("corp", dead)); n != 0 {
				t.Fatal("the dead DC must be reported down")
			}
			err = d.HealthChecks()["ad:corp"](context.Background())
			if !isDegraded(err) || !strings.Contains(err.Error(), dead+" down since") || strings.Contains(err.Error(), good.url()) {
				t.Fatalf("health with the first DC dead: %v", err)
			}
		})
	}
}

// TestNoFailoverOnCredentials: a wrong password at the first DC is final.
func TestNoFailoverOnCredentials(t *testing.T) {
	a := newFakeDC(t, nil, false)
	b := newFakeDC(t, nil, false)
	a.addUser("alice", "Alice-Pw1", "")
	b.addUser("alice", "wrong", "") // would accept "wrong"
	b.addUser("dis", "Pw", "")
	a.addUser("dis", "Pw", "533")
	d := newTestDelegator(t, nil, nil, a.url(), b.url())
	if r := validate(d, user("alice"), "wrong"); r.OK || r.Reason != authn.ReasonBadPassword {
		t.Fatalf("got %+v", r)
	}
	if r := validate(d, user("dis"), "Pw"); r.OK || r.Reason != authn.ReasonDisabled {
		t.Fatalf("got %+v", r)
	}
	if b.binds.Load() != 0 {
		t.Fatalf("a credentials refusal failed over to the second DC (%d binds)", b.binds.Load())
	}
}

// TestAllDownThenBack: every DC down gives Unreachable at once; the
// prober brings a DC back without a login paying for it.
func TestAllDownThenBack(t *testing.T) {
	a := newFakeDC(t, nil, false)
	b := newFakeDC(t, nil, false)
	for _, f := range []*fakeDC{a, b} {
		f.addUser("alice", "Alice-Pw1", "")
	}
	d := newTestDelegator(t, nil, func(dm *Domain) { dm.OfflineLogin = time.Hour }, a.url(), b.url())
	if r := validate(d, user("alice"), "Alice-Pw1"); !r.OK {
		t.Fatalf("%+v", r)
	}
	a.close()
	b.close()
	r := validate(d, user("alice"), "Alice-Pw1")
	if r.OK || !r.Unreachable || r.OfflineWindow != time.Hour {
		t.Fatalf("want unreachable with the offline window: %+v", r)
	}
	start := time.Now()
	r = validate(d, user("alice"), "Alice-Pw1")
	if !r.Unreachable || time.Since(start) > 250*time.Millisecond || !strings.Contains(r.Detail, "marked down") {
		t.Fatalf("with every DC marked down the answer must be immediate: %v %+v", time.Since(start), r)
	}
	b.restart()
	deadline := time.Now().Add(3 * time.Second)
	for {
		if r = validate(d, user("alice"), "Alice-Pw1"); r.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the prober did not bring the DC back: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(r.Detail, b.url()) {
		t.Fatalf("want the login on the DC that came back: %q", r.Detail)
	}
}

// TestStalePooledConnection: the DC closed an idle pooled connection; the
// next login retries on a fresh one and the DC is not marked down.
func TestStalePooledConnection(t *testing.T) {
	f := newFakeDC(t, nil, false)
	f.addUser("alice", "Alice-Pw1", "")
	d := newTestDelegator(t, nil, func(dm *Domain) { dm.ProbeInterval = time.Hour }, f.url())
	if r := validate(d, user("alice"), "Alice-Pw1"); !r.OK {
		t.Fatalf("%+v", r)
	}
	f.dropConns()
	time.Sleep(20 * time.Millisecond)
	if r := validate(d, user("alice"), "Alice-Pw1"); !r.OK {
		t.Fatalf("a stale pooled connection failed the login: %+v", r)
	}
	if err := d.HealthChecks()["ad:corp"](context.Background()); err != nil {
		t.Fatalf("the DC must not be marked down: %v", err)
	}
}

// TestServiceAccountFindsDN: with bind_dn the user is found by attribute
// and bound by DN; the DN is cached.
func TestServiceAccountFindsDN(t *testing.T) {
	f := newFakeDC(t, nil, false)
	f.setService("CN=svc,CN=Users,DC=example,DC=test", "Svc-Pw")
	alice := f.addUser("alice", "Alice-Pw1", "")
	d := newTestDelegator(t, nil, func(dm *Domain) {
		dm.BindDN, dm.BindPassword = "CN=svc,CN=Users,DC=example,DC=test", secret.FromString("Svc-Pw")
	}, f.url())
	for i := 0; i < 3; i++ {
		if r := validate(d, user("alice"), "Alice-Pw1"); !r.OK {
			t.Fatalf("%+v", r)
		}
	}
	if r := validate(d, user("ghost"), "x-password"); r.OK || r.Reason != authn.ReasonNoSuchUser {
		t.Fatalf("unknown user: %+v", r)
	}
	// probe rootDSE + one lookup for alice + one for ghost
	if n := f.searches.Load(); n != 3 {
		t.Fatalf("%d searches: the DN must be cached", n)
	}
	_ = alice
	// Wrong service password: a configuration error, never a failover.
	g := newFakeDC(t, nil, false)
	g.setService("CN=svc,CN=Users,DC=example,DC=test", "Svc-Pw")
	g.addUser("alice", "Alice-Pw1", "")
	d2 := newTestDelegator(t, nil, func(dm *Domain) {
		dm.BindDN, dm.BindPassword = "CN=svc,CN=Users,DC=example,DC=test", secret.FromString("nope")
	}, g.url())
	r := validate(d2, user("alice"), "Alice-Pw1")
	if r.OK || r.Unreachable || r.Reason != authn.ReasonInternal || !strings.Contains(r.Detail, "service account") {
		t.Fatalf("want an internal error about the service account: %+v", r)
	}
}

func TestUsernameAttributes(t *testing.T) {
	f := newFakeDC(t, nil, false)
	f.addUser("alice", "Alice-Pw1", "")
	// userPrincipalName without a service account: bind as the UPN
	d := newTestDelegator(t, nil, func(dm *Domain) { dm.UsernameAttribute = "userprincipalname" }, f.url())
	if r := validate(d, user("alice"), "Alice-Pw1"); !r.OK {
		t.Fatalf("%+v", r)
	}
	if r := validate(d, &store.User{ID: "x", Username: "alice@example.test", Email: "a@x.test"}, "Alice-Pw1"); !r.OK {
		t.Fatalf("a username that is a UPN binds as itself: %+v", r)
	}
	// mail needs a service account
	_, err := New(Config{Domains: []Domain{{Name: "c", Realm: "EXAMPLE.TEST", URLs: []string{f.url()}, AllowInsecure: true, UsernameAttribute: "mail"}}})
	if err == nil {
		t.Fatal("mail without bind_dn must be refused")
	}
}

func TestDomainSelection(t *testing.T) {
	a := newFakeDC(t, nil, false)
	b := newFakeDC(t, nil, false)
	a.addUser("alice", "Pw-A", "")
	b.addUser("alice", "Pw-B", "")
	d, err := New(Config{Domains: []Domain{
		{Name: "corp", Realm: "EXAMPLE.TEST", URLs: []string{a.url()}, AllowInsecure: true},
		{Name: "lab", Realm: "LAB.TEST", URLs: []string{b.url()}, AllowInsecure: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// b's fake knows alice@example.test as UPN; the realm decides which DC is asked.
	if r := validate(d, &store.User{ID: "1", Username: "alice", Email: "alice@example.test"}, "Pw-A"); !r.OK || r.Domain != "corp" {
		t.Fatalf("email domain example.test must pick corp: %+v", r)
	}
	if r := validate(d, &store.User{ID: "2", Username: "alice", Email: "alice@lab.test"}, "Pw-A"); r.OK || r.Domain != "lab" {
		t.Fatalf("email domain lab.test must pick lab: %+v", r)
	}
	if r := validate(d, &store.User{ID: "3", Username: "alice", Email: "alice@elsewhere.test",
		Attributes: map[string]string{"ad_domain": "corp"}}, "Pw-A"); !r.OK || r.Domain != "corp" {
		t.Fatalf("the ad_domain attribute must pick corp: %+v", r)
	}
	r := validate(d, &store.User{ID: "4", Username: "alice", Email: "alice@elsewhere.test"}, "Pw-A")
	if r.OK || r.Unreachable || r.Reason != authn.ReasonADUnreachable || !strings.Contains(r.Detail, "ad_domain") {
		t.Fatalf("no matching domain must say how to fix it: %+v", r)
	}
}

// TestPoolBoundsConnections: concurrent logins share at most pool_size
// connections per DC.
func TestPoolBoundsConnections(t *testing.T) {
	f := newFakeDC(t, nil, false)
	f.addUser("alice", "Alice-Pw1", "")
	f.delay.Store(int64(5 * time.Millisecond))
	d := newTestDelegator(t, nil, func(dm *Domain) { dm.PoolSize = 3; dm.Timeout = 2 * time.Second }, f.url())
	errs := make(chan authn.DelegationResult, 30)
	for i := 0; i < 30; i++ {
		go func() { errs <- validate(d, user("alice"), "Alice-Pw1") }()
	}
	for i := 0; i < 30; i++ {
		if r := <-errs; !r.OK {
			t.Fatalf("%+v", r)
		}
	}
	if n := f.accepted.Load(); n > 3 {
		t.Fatalf("%d connections with pool_size 3", n)
	}
}
