package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gatewayd/gatewayd/admin"
)

// degradedErr reports degradation the way other packages do: by method,
// without admin.Degraded.
type degradedErr struct{}

func (degradedErr) Error() string  { return "one of two DCs down" }
func (degradedErr) Degraded() bool { return true }

func TestHealthz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("journal not writable") }
	degraded := func(context.Context) error { return admin.Degraded(errors.New("dc1 down")) }
	byMethod := func(context.Context) error { return fmt.Errorf("ad corp: %w", degradedErr{}) }
	notReally := func(context.Context) error { return admin.Degraded(nil) }

	for _, tc := range []struct {
		name   string
		checks map[string]admin.HealthCheck
		code   int
		want   admin.HealthReport
	}{
		{"no checks", nil, 200, admin.HealthReport{Status: "ok", Checks: map[string]admin.CheckResult{}}},
		{"all ok", map[string]admin.HealthCheck{"store": ok, "ldap": ok, "nil degraded is ok": notReally}, 200,
			admin.HealthReport{Status: "ok", Checks: map[string]admin.CheckResult{
				"store": {Status: "ok"}, "ldap": {Status: "ok"}, "nil degraded is ok": {Status: "ok"}}}},
		{"one degraded", map[string]admin.HealthCheck{"store": ok, "ad:corp": degraded}, 200,
			admin.HealthReport{Status: "degraded", Checks: map[string]admin.CheckResult{
				"store": {Status: "ok"}, "ad:corp": {Status: "degraded", Message: "dc1 down"}}}},
		{"degraded by method", map[string]admin.HealthCheck{"ad:corp": byMethod}, 200,
			admin.HealthReport{Status: "degraded", Checks: map[string]admin.CheckResult{
				"ad:corp": {Status: "degraded", Message: "ad corp: one of two DCs down"}}}},
		{"one down", map[string]admin.HealthCheck{"store": down, "ldap": ok}, 503,
			admin.HealthReport{Status: "down", Checks: map[string]admin.CheckResult{
				"store": {Status: "down", Message: "journal not writable"}, "ldap": {Status: "ok"}}}},
		{"down beats degraded", map[string]admin.HealthCheck{"store": down, "ad:corp": degraded, "ldap": ok}, 503,
			admin.HealthReport{Status: "down", Checks: map[string]admin.CheckResult{
				"store":   {Status: "down", Message: "journal not writable"},
				"ad:corp": {Status: "degraded", Message: "dc1 down"}, "ldap": {Status: "ok"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(admin.New(nil, nil, admin.Config{Checks: tc.checks}, nil))
			defer srv.Close()
			// No token: load balancers have none.
			resp, err := http.Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got admin.HealthReport
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %d %+v\nwant %d %+v", resp.StatusCode, got, tc.code, tc.want)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q: a cached answer would hide a change", cc)
			}
		})
	}
}

// TestHealthzHead: some load balancers probe with HEAD.
func TestHealthzHead(t *testing.T) {
	down := func(context.Context) error { return errors.New("x") }
	srv := httptest.NewServer(admin.New(nil, nil, admin.Config{Checks: map[string]admin.HealthCheck{"store": down}}, nil))
	defer srv.Close()
	resp, err := http.Head(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HEAD /healthz: %d, want 503", resp.StatusCode)
	}
}
