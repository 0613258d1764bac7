package admin_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

type fakeInviter struct {
	got []string
	ttl time.Duration
}

func (f *fakeInviter) Invite(userID string, ttl time.Duration) (string, time.Time, error) {
	f.got = append(f.got, userID)
	f.ttl = ttl
	if ttl > 1000*time.Hour {
		return "", time.Time{}, fmt.Errorf("%w: ttl too long", store.ErrInvalid)
	}
	return "http://127.0.0.1:1/activate?token=t", time.Unix(1e9, 0).UTC(), nil
}

func TestInviteRoute(t *testing.T) {
	e := newEnv(t)
	var u user
	if code, body := e.call("POST", "/v1/users", map[string]any{"username": "ann", "email": "ann@example.com"}, &u); code != 201 {
		t.Fatal(code, body)
	}
	if code, _ := e.call("POST", "/v1/users/ann/invite", nil, nil); code != http.StatusNotFound {
		t.Fatalf("without a portal: %d", code)
	}

	fi := &fakeInviter{}
	st, _ := store.Open(t.TempDir(), store.Options{})
	t.Cleanup(func() { st.Close() })
	auth, _ := authn.New(authn.Config{Hash: authn.HashParams{Time: 1, MemoryKiB: 64, Threads: 1}}, st, st, nil)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(admin.New(st, auth, admin.Config{Token: secret.FromString(token), Gatherer: reg, Invites: fi}, reg))
	t.Cleanup(srv.Close)
	e2 := &env{t: t, srv: srv, st: st}
	if code, body := e2.call("POST", "/v1/users", map[string]any{"username": "ann", "email": "ann@example.com"}, &u); code != 201 {
		t.Fatal(code, body)
	}
	var out struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if code, body := e2.call("POST", "/v1/users/ann/invite", nil, &out); code != 200 || out.URL == "" || out.ExpiresAt.IsZero() {
		t.Fatal(code, body)
	}
	if code, body := e2.call("POST", "/v1/users/ann/invite", map[string]string{"ttl": "2h"}, &out); code != 200 || fi.ttl != 2*time.Hour {
		t.Fatal(code, body, fi.ttl)
	}
	for _, tc := range []struct {
		body any
		want int
	}{{map[string]string{"ttl": "soon"}, 400}, {map[string]string{"ttl": "9999h"}, 400}, {map[string]int{"x": 1}, 400}} {
		if code, body := e2.call("POST", "/v1/users/ann/invite", tc.body, nil); code != tc.want {
			t.Errorf("%v: %d %s", tc.body, code, body)
		}
	}
	if code, _ := e2.call("POST", "/v1/users/nobody/invite", nil, nil); code != 404 {
		t.Fatal(code)
	}
	if len(fi.got) != 3 || fi.got[0] != u.ID {
		t.Fatalf("%v", fi.got)
	}
}
