package fakegraph

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakehttp"
)

// serveToken is the client-credentials token endpoint,
// POST /{tenant}/oauth2/v2.0/token. The client authenticates with
// client_id/client_secret in the form (client_secret_post, what Entra
// documents) or with HTTP Basic (client_secret_basic; x/oauth2
// URL-encodes both halves, RFC 6749 2.3.1).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, tenant string, body []byte) {
	if r.Method != http.MethodPost {
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST requests. Received a "+r.Method+" request.")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		tokenError(w, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
		return
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		if clientID != "" && clientID != u {
			tokenError(w, http.StatusBadRequest, "invalid_request", 90014, "client_id in the body and the header differ.")
			return
		}
		clientID, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.hooks.TakeFault(r.Method, KindToken); ok {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", fakehttp.RetryAfter(f.RetryAfter))
		}
		code := f.Code
		if code == "" {
			code = "temporarily_unavailable"
		}
		tokenError(w, f.Status, code, 0, f.Message)
		return
	}
	switch {
	case !strings.EqualFold(tenant, s.tenant):
		tokenError(w, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	case form.Get("grant_type") != "client_credentials":
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '"+form.Get("grant_type")+"'.")
	case clientID == "":
		tokenError(w, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'.")
	case clientID != s.clientID:
		tokenError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", clientID, s.tenant))
	case secret == "":
		tokenError(w, http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	case secret != s.clientSecret:
		tokenError(w, http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.clientID))
	case !s.validScope(form.Get("scope")):
		tokenError(w, http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", form.Get("scope")))
	default:
		tok, lifetime := s.tokens.Issue(struct{}{})
		secs := int64(lifetime / time.Second)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store, no-cache")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token_type":     "Bearer",
			"expires_in":     secs,
			"ext_expires_in": secs,
			"access_token":   tok,
		})
	}
}

// validScope accepts the documented Graph scope, and {base}/.default for a
// loopback base (a connector whose graph_url is this fake, or another
// test server).
func (s *Server) validScope(scope string) bool {
	if scope == GraphScope || scope == s.ts.URL+"/.default" {
		return true
	}
	base, ok := strings.CutSuffix(scope, "/.default")
	if !ok {
		return false
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Path != "" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())
}

// tokenError writes the identity platform's error shape.
func tokenError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	now := time.Now().UTC()
	trace, corr := newUUID(), newUUID()
	if aadsts != 0 {
		desc = fmt.Sprintf("AADSTS%d: %s", aadsts, desc)
	}
	desc += fmt.Sprintf("\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", trace, corr, now.Format("2006-01-02 15:04:05Z"))
	body := map[string]any{
		"error":             code,
		"error_description": desc,
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
	}
	if aadsts != 0 {
		body["error_codes"] = []int{aadsts}
		body["error_uri"] = fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
