package delegation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/secret"
)

// isDegraded is how /healthz reads a check's error (admin.HealthCheck).
func isDegraded(err error) bool {
	var d interface{ Degraded() bool }
	return errors.As(err, &d) && d.Degraded()
}

// TestDomainHealth: one check per domain; one dead DC of two is degraded
// (logins fail over), both dead is down; the check reads the state kept by
// the start probe and logins, without connecting to any DC itself.
func TestDomainHealth(t *testing.T) {
	const svcDN = "CN=svc,CN=Users,DC=example,DC=test"
	tests := []struct {
		name        string
		dead        []bool // per DC: a closed port instead of a fake DC
		svcRefused  []bool // per DC: refuses the service account
		offline     time.Duration
		want        string // ok, degraded, down
		contains    []string
		notContains []string
	}{
		{name: "both up", dead: []bool{false, false}, want: "ok"},
		{name: "first dead", dead: []bool{true, false}, want: "degraded",
			contains: []string{"1 of 2 domain controllers", "#0 down since", "fail over"}, notContains: []string{"#1"}},
		{name: "second dead", dead: []bool{false, true}, want: "degraded",
			contains: []string{"1 of 2", "#1 down since"}, notContains: []string{"#0"}},
		{name: "both dead", dead: []bool{true, true}, want: "down",
			contains: []string{"no domain controller can validate logins", "#0 down since", "#1 down since"}},
		{name: "both dead, offline logins", dead: []bool{true, true}, offline: time.Hour, want: "down",
			contains: []string{"offline_login = 1h0m0s"}},
		{name: "one refuses the service account", dead: []bool{false, false}, svcRefused: []bool{false, true}, want: "degraded",
			contains: []string{"#1 refusing the service account (check bind_dn and bind_password) since"}, notContains: []string{"#0"}},
		{name: "every DC refuses the service account", dead: []bool{false, false}, svcRefused: []bool{true, true}, offline: time.Hour, want: "down",
			contains: []string{"#0 refusing the service account", "#1 refusing the service account"}, notContains: []string{"offline_login"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var urls []string
			var fakes []*fakeDC
			for i, dead := range tc.dead {
				if dead {
					urls = append(urls, "ldap://"+closedPort(t))
					continue
				}
				f := newFakeDC(t, nil, false)
				pw := "Svc-Pw"
				if tc.svcRefused != nil && tc.svcRefused[i] {
					pw = "another"
				}
				f.setService(svcDN, pw)
				fakes = append(fakes, f)
				urls = append(urls, f.url())
			}
			d := newTestDelegator(t, nil, func(dm *Domain) {
				dm.OfflineLogin = tc.offline
				if tc.svcRefused != nil {
					dm.BindDN, dm.BindPassword = svcDN, secret.FromString("Svc-Pw")
				}
			}, urls...)
			checks := d.HealthChecks()
			if len(checks) != 1 || checks["ad:corp"] == nil {
				t.Fatalf("want one check, ad:corp: %v", checks)
			}
			accepted := func() (n int64) {
				for _, f := range fakes {
					n += f.accepted.Load()
				}
				return n
			}
			before := accepted()
			err := checks["ad:corp"](context.Background())
			if n := accepted(); n != before {
				t.Errorf("the check connected to a DC (%d connections)", n-before)
			}
			got := "down"
			switch {
			case err == nil:
				got = "ok"
			case isDegraded(err):
				got = "degraded"
			}
			if got != tc.want {
				t.Fatalf("got %s (%v), want %s", got, err, tc.want)
			}
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			for i, u := range urls { // name the DCs by position in the expectations
				msg = strings.ReplaceAll(msg, u, "#"+string(rune('0'+i)))
			}
			for _, s := range tc.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
			for _, s := range tc.notContains {
				if strings.Contains(msg, s) {
					t.Errorf("message %q has %q", msg, s)
				}
			}
		})
	}
}

// TestDomainHealthFollowsTheProber: a DC that dies while idle, then comes
// back, moves the check to degraded and back to ok with no login.
func TestDomainHealthFollowsTheProber(t *testing.T) {
	a := newFakeDC(t, nil, false)
	b := newFakeDC(t, nil, false)
	d := newTestDelegator(t, nil, nil, a.url(), b.url())
	check := d.HealthChecks()["ad:corp"]
	if err := check(context.Background()); err != nil {
		t.Fatalf("both up: %v", err)
	}
	a.close()
	// A login notices at once; without logins, the idle probe does (after
	// six probe intervals).
	waitHealth(t, check, "degraded")
	a.restart()
	waitHealth(t, check, "ok")
}

func waitHealth(t *testing.T, check func(context.Context) error, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := check(context.Background())
		got := "down"
		switch {
		case err == nil:
			got = "ok"
		case isDegraded(err):
			got = "degraded"
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health is %s (%v), want %s", got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
