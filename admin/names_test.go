package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/authn"
)

// TestUPNShadowRefused (issue 14, C5): with upn_domains, the API refuses
// an email that is another user's UPN, and a username whose UPN is
// another user's email, at create and at update.
func TestUPNShadowRefused(t *testing.T) {
	e := newEnvWith(t, authn.Config{UPNDomains: []string{"corp.test"}})
	for _, u := range []map[string]any{
		{"username": "bob", "email": "robert@elsewhere.test"},
		{"username": "dora", "email": "dee@corp.test"},
		{"username": "erin", "email": "erin@elsewhere.test"},
	} {
		if code, body := e.call("POST", "/v1/users", u, nil); code != http.StatusCreated {
			t.Fatalf("create %v: %d %s", u["username"], code, body)
		}
	}
	for _, tc := range []struct {
		name, method, path string
		body               map[string]any
		want               int
		msg                string
	}{
		{"email is bob's UPN", "POST", "/v1/users", map[string]any{"username": "carol", "email": "bob@corp.test"}, http.StatusConflict, "UPN of user bob"},
		{"username whose UPN is dora's email", "POST", "/v1/users", map[string]any{"username": "dee", "email": "d2@x.test"}, http.StatusConflict, "email of user dora"},
		{"update to bob's UPN", "PATCH", "/v1/users/erin", map[string]any{"email": "bob@corp.test"}, http.StatusConflict, "UPN of user bob"},
		{"rename to dora's email's local part", "PATCH", "/v1/users/erin", map[string]any{"username": "dee"}, http.StatusConflict, "email of user dora"},
		{"bob may take his own UPN as email", "PATCH", "/v1/users/bob", map[string]any{"email": "bob@corp.test"}, http.StatusOK, ""},
		{"no clash", "POST", "/v1/users", map[string]any{"username": "fred", "email": "fred@corp.test"}, http.StatusCreated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.call(tc.method, tc.path, tc.body, nil)
			if code != tc.want || !strings.Contains(body, tc.msg) {
				t.Fatalf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, body, tc.want, tc.msg)
			}
		})
	}
}
