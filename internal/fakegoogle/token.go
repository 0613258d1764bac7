package fakegoogle

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakehttp"
)

// account is a registered service account.
type account struct {
	email    string
	clientID string
	keyID    string
	pub      *rsa.PublicKey
}

var (
	defaultKeyOnce sync.Once
	defaultRSA     *rsa.PrivateKey
)

// defaultKey is one RSA key per test process for every fake's default
// service account (generating 2048-bit keys is slow under -race).
func defaultKey() *rsa.PrivateKey {
	defaultKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("fakegoogle: " + err.Error())
		}
		defaultRSA = k
	})
	return defaultRSA
}

// NewServiceAccountKey generates a fresh RSA key and returns a service
// account JSON key file for email (as the Google Cloud console writes
// it), whose token_uri is tokenURI. Register it with RegisterServiceAccount
// for the fake to accept it; unregistered, it stands for a deleted or
// foreign key (the fake answers invalid_grant "Invalid JWT Signature."
// when email is a registered account).
func NewServiceAccountKey(email, clientID, tokenURI string) ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	var id [20]byte
	_, _ = rand.Read(id[:])
	return serviceAccountKeyJSON(k, email, clientID, fmt.Sprintf("%x", id), tokenURI)
}

func serviceAccountKeyJSON(k *rsa.PrivateKey, email, clientID, keyID, tokenURI string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	project := "gatewayd-test"
	if at := strings.IndexByte(email, '@'); at >= 0 {
		project, _, _ = strings.Cut(email[at+1:], ".")
	}
	return json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  project,
		"private_key_id":              keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                email,
		"client_id":                   clientID,
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + url.PathEscape(email),
		"universe_domain":             "googleapis.com",
	}, "", "  ")
}

// RegisterServiceAccount makes the fake accept JWTs signed by the key in
// keyJSON for its client_email (replacing an earlier key of that
// account: the earlier one stops working, as after a key rotation).
func (s *Server) RegisterServiceAccount(keyJSON []byte) error {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		ClientID     string `json:"client_id"`
		PrivateKeyID string `json:"private_key_id"`
		PrivateKey   string `json:"private_key"`
	}
	if err := json.Unmarshal(keyJSON, &f); err != nil {
		return err
	}
	blk, _ := pem.Decode([]byte(f.PrivateKey))
	if blk == nil {
		return errors.New("private_key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return errors.New("private_key is not RSA")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[f.ClientEmail] = &account{email: f.ClientEmail, clientID: f.ClientID, keyID: f.PrivateKeyID, pub: &rk.PublicKey}
	return nil
}

// OAuth error texts, as Google words them.
const (
	MsgUnauthorizedClient = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
	MsgBadSignature       = "Invalid JWT Signature."
	MsgBadSubject         = "Invalid email or User ID"
	MsgNoAccount          = "Invalid grant: account not found"
	MsgBadTime            = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
)

const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

type claims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
	Iat   int64  `json:"iat"`
	Sub   string `json:"sub"`
}

// serveToken is Google's token endpoint for the JWT-bearer grant
// (RFC 7523) a service account uses: POST /token with
// grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "Invalid request method.", 0)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		tokenError(w, http.StatusBadRequest, "invalid_request", "Required parameter is missing: grant_type", 0)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.hooks.TakeFault(r.Method, KindToken); ok {
		code := f.Code
		if code == "" {
			code = "internal_failure"
		}
		tokenError(w, f.Status, code, f.Message, f.RetryAfter)
		return
	}
	if gt := form.Get("grant_type"); gt != jwtBearer {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt, 0)
		return
	}
	c, msg := s.verifyAssertion(form.Get("assertion"))
	if msg != "" {
		tokenError(w, http.StatusBadRequest, "invalid_grant", msg, 0)
		return
	}
	scopes := map[string]bool{}
	for _, sc := range strings.Fields(c.Scope) {
		if !s.delegated[sc] {
			tokenError(w, http.StatusUnauthorized, "unauthorized_client", MsgUnauthorizedClient, 0)
			return
		}
		scopes[sc] = true
	}
	if len(scopes) == 0 {
		tokenError(w, http.StatusBadRequest, "invalid_scope", "Invalid OAuth scope or ID token audience provided.", 0)
		return
	}
	isAdmin := false
	switch {
	case c.Sub == "":
		// The service account itself: no Directory access.
	case strings.EqualFold(c.Sub, s.admin):
		isAdmin = true
	default:
		u := s.lookupUser(c.Sub)
		if u == nil || u.Suspended {
			tokenError(w, http.StatusBadRequest, "invalid_grant", MsgBadSubject, 0)
			return
		}
		isAdmin = u.IsAdmin
	}
	tok, lifetime := s.tokens.Issue(grant{scopes: scopes, admin: isAdmin})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"expires_in":   int64(lifetime / time.Second),
		"token_type":   "Bearer",
	})
}

// verifyAssertion checks the JWT: RS256, a registered issuer whose key
// signed it, the token endpoint as audience, a lifetime of at most an
// hour around now. mu held.
func (s *Server) verifyAssertion(jwt string) (claims, string) {
	var c claims
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c, "Invalid JWT: could not be parsed."
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return c, "Invalid JWT: could not be decoded."
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		return c, "Invalid JWT: could not be decoded."
	}
	if h.Alg != "RS256" {
		return c, MsgBadSignature
	}
	acct := s.accounts[c.Iss]
	if acct == nil {
		return c, MsgNoAccount
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(acct.pub, crypto.SHA256, digest[:], sig) != nil {
		return c, MsgBadSignature
	}
	if c.Aud != s.TokenURL() {
		return c, "Invalid JWT: audience must be " + s.TokenURL()
	}
	now := s.now().Unix()
	const skew = 300
	if c.Iat == 0 || c.Exp == 0 || c.Exp <= c.Iat || c.Exp-c.Iat > 3600 || c.Iat > now+skew || c.Exp < now-skew {
		return c, MsgBadTime
	}
	return c, ""
}

// tokenError writes the OAuth 2.0 error shape of Google's token endpoint.
func tokenError(w http.ResponseWriter, status int, code, desc string, retryAfter time.Duration) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if retryAfter > 0 {
		w.Header().Set("Retry-After", fakehttp.RetryAfter(retryAfter))
	}
	w.WriteHeader(status)
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	_ = json.NewEncoder(w).Encode(body)
}
