package portal

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

type fixture struct {
	t    *testing.T
	st   *store.Store
	auth *authn.Authenticator
	srv  *Server
	ts   *httptest.Server
	now  *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixedPolicies []Policy

func (p fixedPolicies) PoliciesFor(string) ([]Policy, error) { return p, nil }

func newFixture(t *testing.T, acfg func(*authn.Config), pol Policies) *fixture {
	t.Helper()
	return newFixtureWith(t, acfg, pol, nil)
}

// newFixtureWith is newFixture with the [portal] block adjusted by pmod.
func newFixtureWith(t *testing.T, acfg func(*authn.Config), pol Policies, pmod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, now: &clock{t: time.Now()}}
	st, err := store.Open(t.TempDir(), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	var cfg authn.Config
	cfg.Defaults()
	cfg.Hash = authn.HashParams{Time: 1, MemoryKiB: 1024, Threads: 1}
	cfg.CacheTTL = 0
	if acfg != nil {
		acfg(&cfg)
	}
	f.auth, err = authn.New(cfg, st, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st.Subscribe(f.auth.HandleChange)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var pcfg Config
	pcfg.Defaults()
	pcfg.Listen = ln.Addr().String()
	if pmod != nil {
		pmod(&pcfg)
	}
	f.srv, err = New(pcfg, f.auth, st, pol, slog.New(slog.DiscardHandler), nil, WithListener(ln), WithClock(f.now.Now))
	if err != nil {
		t.Fatal(err)
	}
	st.Subscribe(f.srv.HandleChange)
	ln.Close()
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fixture) user(name, pw string) *store.User {
	f.t.Helper()
	u, err := f.st.CreateUser(&store.User{Username: name, Email: name + "@example.com", State: store.StateActive, PasswordStatus: store.PasswordPending})
	if err != nil {
		f.t.Fatal(err)
	}
	if pw != "" {
		if err := f.auth.ChangePassword(context.Background(), u.ID, secret.FromString(pw), "test"); err != nil {
			f.t.Fatal(err)
		}
	}
	u, _ = f.st.UserByID(u.ID)
	return u
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	f *fixture
	c *http.Client
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (*http.Response, string) {
	b.f.t.Helper()
	resp, err := b.c.Get(b.f.ts.URL + path)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

func (b *browser) csrf(path string) string {
	b.f.t.Helper()
	_, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.f.t.Fatalf("no csrf token on %s: %s", path, body)
	}
	return m[1]
}

func (b *browser) post(path string, v url.Values) (*http.Response, string) {
	b.f.t.Helper()
	resp, err := b.c.PostForm(b.f.ts.URL+path, v)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

func (b *browser) signin(name, pw string) *http.Response {
	b.f.t.Helper()
	tok := b.csrf("/signin")
	resp, _ := b.post("/signin", url.Values{"csrf": {tok}, "username": {name}, "password": {pw}})
	return resp
}

func TestSignInAndHeaders(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.user("ann", "correct horse 1")
	b := f.browser()
	resp := b.signin("ann", "correct horse 1")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "gatewayd_session" {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure {
		t.Fatalf("session cookie on loopback plain HTTP: %+v", sc)
	}
	r, body := b.get("/")
	if r.StatusCode != 200 || !strings.Contains(body, `id="username">ann<`) {
		t.Fatalf("home: %d %s", r.StatusCode, body)
	}
	for h, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
	} {
		if !strings.Contains(r.Header.Get(h), want) {
			t.Errorf("%s = %q, want %q", h, r.Header.Get(h), want)
		}
	}
	if strings.Contains(r.Header.Get("Content-Security-Policy"), "unsafe-inline") || strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Error("inline script or style")
	}
	if r.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain HTTP")
	}
	_ = f.st.Flush(context.Background())
	evs, _, _ := f.st.ListEvents(store.EventFilter{Type: store.EventPortalLogin})
	if len(evs) == 0 || evs[len(evs)-1].Outcome != store.OutcomeSuccess {
		t.Fatalf("portal_login events: %+v", evs)
	}
}

func TestSecureCookieAndHSTSOverTLS(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.srv.secure = true
	f.user("ann", "correct horse 1")
	b := f.browser()
	tok := b.csrf("/signin")
	// Over TLS the cookie names carry __Host-; httptest here is plain, so
	// read the Set-Cookie header directly.
	req, _ := http.NewRequest("POST", f.ts.URL+"/signin", strings.NewReader(url.Values{"csrf": {tok}, "username": {"ann"}, "password": {"correct horse 1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, req)
	sc := w.Header().Values("Set-Cookie")
	if w.Code != http.StatusSeeOther || len(sc) == 0 || !strings.Contains(strings.Join(sc, ";"), "__Host-gatewayd_session=") ||
		!strings.Contains(strings.Join(sc, ";"), "Secure") || !strings.Contains(strings.Join(sc, ";"), "HttpOnly") || !strings.Contains(strings.Join(sc, ";"), "SameSite=Strict") {
		t.Fatalf("%d %v", w.Code, sc)
	}
	if w.Header().Get("Strict-Transport-Security") == "" {
		t.Fatal("no HSTS over TLS")
	}
}

func TestGenericFailureMessage(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.user("ann", "correct horse 1")
	f.user("pend", "")
	s := f.user("sus", "correct horse 1")
	if _, err := f.st.UpdateUser(s.ID, func(u *store.User) error { u.State = store.StateSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, user, pw string }{
		{"bad password", "ann", "wrong wrong 1"},
		{"no such user", "nobody", "whatever 123"},
		{"pending", "pend", "whatever 123"},
		{"suspended", "sus", "correct horse 1"},
		{"empty", "ann", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := f.browser()
			tok := b.csrf("/signin")
			resp, body := b.post("/signin", url.Values{"csrf": {tok}, "username": {tc.user}, "password": {tc.pw}})
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, msgSignInFailed) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			for _, leak := range []string{"suspended", "pending", "no_such", "bad_password", "locked"} {
				if strings.Contains(body, leak) {
					t.Fatalf("body tells %q", leak)
				}
			}
		})
	}
}

func TestCSRFRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	u := f.user("ann", "correct horse 1")
	b := f.browser()
	if r := b.signin("ann", "correct horse 1"); r.StatusCode != http.StatusSeeOther {
		t.Fatal(r.StatusCode)
	}
	good := b.csrf("/password")
	for _, tc := range []struct {
		name, path string
		csrf       string
	}{
		{"sign-in without token", "/signin", ""},
		{"sign-in forged", "/signin", "forged"},
		{"password without token", "/password", ""},
		{"password forged", "/password", strings.Repeat("A", len(good))},
		{"sign-out forged", "/signout", "x"},
		{"activate without token", "/activate", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := url.Values{"username": {"ann"}, "password": {"correct horse 1"}, "current": {"correct horse 1"}, "new": {"another horse 2"}, "confirm": {"another horse 2"}}
			if tc.csrf != "" {
				v.Set("csrf", tc.csrf)
			}
			resp, _ := b.post(tc.path, v)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%d", resp.StatusCode)
			}
		})
	}
	nu, _ := f.st.UserByID(u.ID)
	if nu.PasswordVersion != u.PasswordVersion {
		t.Fatal("a refused form changed the password")
	}
	// A token from another browser's session does not work either.
	other := f.browser()
	resp, _ := other.post("/signin", url.Values{"csrf": {good}, "username": {"ann"}, "password": {"correct horse 1"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-session token: %d", resp.StatusCode)
	}
}

func TestOversizedForm(t *testing.T) {
	f := newFixture(t, nil, nil)
	b := f.browser()
	tok := b.csrf("/signin")
	resp, _ := b.post("/signin", url.Values{"csrf": {tok}, "username": {strings.Repeat("a", 20000)}, "password": {"x"}})
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatal(resp.StatusCode)
	}
}

func TestChangePasswordEndsSessions(t *testing.T) {
	pol := fixedPolicies{{Directory: "m365", MinLength: 10, MaxLength: 256, MinCharacterClasses: 3, Check: func(pw secret.String) error {
		if len(pw.Bytes()) < 10 {
			return errors.New("too short for m365")
		}
		return nil
	}}}
	f := newFixture(t, nil, pol)
	u := f.user("ann", "correct horse 1")
	b1, b2 := f.browser(), f.browser()
	b1.signin("ann", "correct horse 1")
	b2.signin("ann", "correct horse 1")
	_, body := b1.get("/password")
	if !strings.Contains(body, "For m365: 10 to 256 characters") || !strings.Contains(body, "8 to 256 characters") {
		t.Fatalf("policy not shown: %s", body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	// The directory's policy is checked server-side.
	resp, body := b1.post("/password", url.Values{"csrf": {tok}, "current": {"correct horse 1"}, "new": {"short123"}, "confirm": {"short123"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "m365 would refuse it") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, body = b1.post("/password", url.Values{"csrf": {tok}, "current": {"wrong one 12"}, "new": {"Another horse 2"}, "confirm": {"Another horse 2"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "current password is wrong") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, _ = b1.post("/password", url.Values{"csrf": {tok}, "current": {"correct horse 1"}, "new": {"Another horse 2"}, "confirm": {"Another horse 2"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatal(resp.StatusCode)
	}
	if r, _ := b1.get("/"); r.StatusCode != 200 {
		t.Fatalf("the changing browser lost its session: %d", r.StatusCode)
	}
	if r, _ := b2.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the other session survived the change: %d", r.StatusCode)
	}
	if n := f.srv.SessionsOf(u.ID); n != 1 {
		t.Fatalf("%d sessions after the change, want 1", n)
	}
	if res := f.auth.Login(context.Background(), authn.Request{Identifier: "ann", Password: secret.FromString("Another horse 2")}); !res.OK {
		t.Fatal("new password does not log in")
	}
}

func TestSuspendAndDeleteEndSessions(t *testing.T) {
	f := newFixture(t, nil, nil)
	u := f.user("ann", "correct horse 1")
	v := f.user("bob", "correct horse 1")
	b, c := f.browser(), f.browser()
	b.signin("ann", "correct horse 1")
	c.signin("bob", "correct horse 1")
	if _, err := f.st.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteUser(v.ID); err != nil {
		t.Fatal(err)
	}
	if f.srv.SessionsOf(u.ID) != 0 || f.srv.SessionsOf(v.ID) != 0 {
		t.Fatal("sessions outlived suspend/delete")
	}
	for _, x := range []*browser{b, c} {
		if r, _ := x.get("/"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.user("ann", "correct horse 1")
	b := f.browser()
	b.signin("ann", "correct horse 1")
	f.now.add(DefaultSessionIdleTimeout + time.Second)
	if r, _ := b.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatal(r.StatusCode)
	}
}

func TestExpiredPasswordChangedFirst(t *testing.T) {
	// A bound directory that wants 16 characters: checked once the old
	// password proved the user, before anything changes.
	pol := fixedPolicies{{Directory: "m365", MinLength: 16, MaxLength: 256, Check: func(pw secret.String) error {
		if len(pw.Bytes()) < 16 {
			return errors.New("at least 16 characters")
		}
		return nil
	}}}
	f := newFixture(t, nil, pol)
	u := f.user("ann", "correct horse 1")
	if _, err := f.st.UpdateUser(u.ID, func(x *store.User) error { x.PasswordStatus = store.PasswordExpired; return nil }); err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	resp := b.signin("ann", "correct horse 1")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/expired" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Nothing else is reachable.
	for _, p := range []string{"/", "/password"} {
		if r, _ := b.get(p); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") == p {
			t.Fatalf("%s: %d", p, r.StatusCode)
		}
	}
	tok := b.csrf("/expired")
	r, body := b.post("/expired", url.Values{"csrf": {tok}, "current": {"not it 12345"}, "new": {"Another horse 2"}, "confirm": {"Another horse 2"}})
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(body, "current password is wrong") {
		t.Fatalf("%d %s", r.StatusCode, body)
	}
	r, body = b.post("/expired", url.Values{"csrf": {tok}, "current": {"correct horse 1"}, "new": {"Another horse 2"}, "confirm": {"Another horse 2"}})
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(body, "m365 would refuse it") {
		t.Fatalf("a password the bound directory refuses: %d %s", r.StatusCode, body)
	}
	if nu, _ := f.st.UserByID(u.ID); nu.PasswordVersion != u.PasswordVersion || nu.PasswordStatus != store.PasswordExpired {
		t.Fatalf("the refused change changed the user: %+v", nu)
	}
	r, _ = b.post("/expired", url.Values{"csrf": {tok}, "current": {"correct horse 1"}, "new": {"Another horse 2 longer"}, "confirm": {"Another horse 2 longer"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatal(r.StatusCode)
	}
	if r, body := b.get("/?changed=1"); r.StatusCode != 200 || !strings.Contains(body, "password was changed") {
		t.Fatalf("%d %s", r.StatusCode, body)
	}
	nu, _ := f.st.UserByID(u.ID)
	if nu.PasswordStatus != store.PasswordActive {
		t.Fatal(nu.PasswordStatus)
	}
}

func TestInvite(t *testing.T) {
	f := newFixture(t, nil, nil)
	pend := f.user("pend", "")
	staged, _ := f.st.CreateUser(&store.User{Username: "stg", Email: "stg@example.com", State: store.StateStaged, PasswordStatus: store.PasswordPending})
	if _, _, err := f.srv.Invite(staged.ID, 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("staged invite: %v", err)
	}
	link, exp, err := f.srv.Invite(pend.ID, 0)
	if err != nil || !exp.After(time.Now().Add(71*time.Hour)) {
		t.Fatal(link, exp, err)
	}
	tokenOf := func(link string) string { u, _ := url.Parse(link); return u.Query().Get("token") }
	// The token is stored only as a hash.
	if _, err := f.st.InviteByTokenHash(tokenOf(link)); err == nil {
		t.Fatal("the token itself is stored")
	}
	activate := func(b *browser, tok, pw string) (*http.Response, string) {
		r, body := b.get("/activate?token=" + url.QueryEscape(tok))
		m := csrfRE.FindStringSubmatch(body)
		if m == nil {
			return r, body
		}
		return b.post("/activate", url.Values{"csrf": {m[1]}, "token": {tok}, "new": {pw}, "confirm": {pw}})
	}
	// A new invite revokes the old one.
	link2, _, err := f.srv.Invite(pend.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := activate(f.browser(), tokenOf(link), "First horse 1"); r.StatusCode != http.StatusGone {
		t.Fatalf("revoked link: %d", r.StatusCode)
	}
	r, _ := activate(f.browser(), tokenOf(link2), "First horse 1")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin?activated=1" {
		t.Fatalf("activation: %d", r.StatusCode)
	}
	nu, _ := f.st.UserByID(pend.ID)
	if nu.PasswordStatus != store.PasswordActive {
		t.Fatal(nu.PasswordStatus)
	}
	// Single use: a replay (GET and a POST with a fresh form token) fails.
	if r, _ := activate(f.browser(), tokenOf(link2), "Second horse 2"); r.StatusCode != http.StatusGone {
		t.Fatalf("replay: %d", r.StatusCode)
	}
	b := f.browser()
	tok := b.csrf("/signin")
	if r, _ := b.post("/activate", url.Values{"csrf": {tok}, "token": {tokenOf(link2)}, "new": {"Second horse 2"}, "confirm": {"Second horse 2"}}); r.StatusCode != http.StatusGone {
		t.Fatalf("replayed POST: %d", r.StatusCode)
	}
	// Expiry.
	other := f.user("other", "")
	link3, _, _ := f.srv.Invite(other.ID, time.Hour)
	f.now.add(time.Hour + time.Second)
	if r, _ := activate(f.browser(), tokenOf(link3), "First horse 1"); r.StatusCode != http.StatusGone {
		t.Fatalf("expired link: %d", r.StatusCode)
	}
	// A password change revokes it.
	link4, _, _ := f.srv.Invite(other.ID, time.Hour)
	if err := f.auth.ChangePassword(context.Background(), other.ID, secret.FromString("set by admin 1"), "admin"); err != nil {
		t.Fatal(err)
	}
	if r, _ := activate(f.browser(), tokenOf(link4), "First horse 1"); r.StatusCode != http.StatusGone {
		t.Fatalf("link after a password change: %d", r.StatusCode)
	}
}

func TestLockoutApplies(t *testing.T) {
	f := newFixture(t, func(c *authn.Config) {
		c.Lockout.MaxFailures = 5
		c.RateLimit.FailuresPerSecond = 0
	}, nil)
	u := f.user("ann", "correct horse 1")
	b := f.browser()
	for range 6 {
		b.signin("ann", "wrong password")
	}
	nu, _ := f.st.UserByID(u.ID)
	if !nu.Locked(time.Now()) {
		t.Fatal("not locked after repeated failures")
	}
	if r := b.signin("ann", "correct horse 1"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("locked user signed in: %d", r.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		bad  string
	}{
		{"loopback plain", func(c *Config) { c.Listen = "127.0.0.1:8443" }, ""},
		{"v6 loopback plain", func(c *Config) { c.Listen = "[::1]:8443" }, ""},
		{"all addresses plain", func(c *Config) { c.Listen = ":8443" }, "listen"},
		{"public plain", func(c *Config) { c.Listen = "10.0.0.1:8443" }, "listen"},
		{"public tls", func(c *Config) { c.Listen = "10.0.0.1:8443"; c.CertFile, c.KeyFile = "c", "k" }, ""},
		{"cert alone", func(c *Config) { c.CertFile = "c" }, "cert_file"},
		{"bad url", func(c *Config) { c.PublicURL = "ftp://x" }, "public_url"},
		{"short idle", func(c *Config) { c.SessionIdleTimeout = time.Second }, "session_idle_timeout"},
		{"long invite", func(c *Config) { c.InviteTTL = 365 * 24 * time.Hour }, "invite_ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.Defaults()
			tc.mod(&c)
			err := c.Validate()
			if (err != nil) != (tc.bad != "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("%v, want problem at %q", err, tc.bad)
			}
		})
	}
}

// writeLogo writes a logo file of the given kind into dir.
func writeLogo(t *testing.T, dir, kind string) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	var buf bytes.Buffer
	name := "logo." + kind
	switch kind {
	case "png":
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
	case "jpg":
		if err := jpeg.Encode(&buf, img, nil); err != nil {
			t.Fatal(err)
		}
	case "svg":
		buf.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<!-- logo -->` + "\n" +
			`<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#fff"/></svg>`)
	case "txt":
		buf.WriteString("not an image at all\n")
	case "fake.svg":
		buf.WriteString("<html><body>not an svg</body></html>")
		name = "fake.svg"
	case "big":
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		buf.Write(make([]byte, MaxLogoBytes))
		name = "big.png"
	case "empty":
		name = "empty.png"
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLogoValidate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		kind, bad string
	}{
		{"png", ""}, {"jpg", ""}, {"svg", ""},
		{"txt", "not a PNG, JPEG or SVG"},
		{"fake.svg", "not a PNG, JPEG or SVG"},
		{"big", "at most 262144"},
		{"empty", "is empty"},
		{"missing", "cannot read the logo"},
		{"dir", "not a regular file"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			var c Config
			c.Defaults()
			switch tc.kind {
			case "missing":
				c.LogoFile = filepath.Join(dir, "nope.png")
			case "dir":
				c.LogoFile = dir
			default:
				c.LogoFile = writeLogo(t, dir, tc.kind)
			}
			err := c.Validate()
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *config.FieldError
			if err == nil || !errors.As(err, &fe) || fe.Key != "logo_file" || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("%v, want a logo_file problem %q", err, tc.bad)
			}
		})
	}
}

// TestLogoServed: the logo is on every page, served under a hashed name
// with its sniffed type and a year-long cache, and nothing else is
// served under /brand/.
func TestLogoServed(t *testing.T) {
	for _, kind := range []string{"png", "svg", "jpg"} {
		t.Run(kind, func(t *testing.T) {
			file := writeLogo(t, t.TempDir(), kind)
			want, _ := os.ReadFile(file)
			f := newFixtureWith(t, nil, nil, func(c *Config) { c.LogoFile = file })
			b := f.browser()
			_, body := b.get("/signin")
			m := regexp.MustCompile(`<img class="logo" id="logo" src="(/brand/logo-[0-9a-f]{12}\.(png|svg|jpg))"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("no logo on the sign-in page: %s", body)
			}
			r, got := b.get(m[1])
			ctype := map[string]string{"png": "image/png", "svg": "image/svg+xml", "jpg": "image/jpeg"}[kind]
			if r.StatusCode != 200 || got != string(want) || r.Header.Get("Content-Type") != ctype ||
				!strings.Contains(r.Header.Get("Cache-Control"), "max-age=31536000") || r.Header.Get("X-Content-Type-Options") != "nosniff" ||
				!strings.Contains(r.Header.Get("Content-Security-Policy"), "sandbox") {
				t.Fatalf("%d %q %v", r.StatusCode, r.Header.Get("Content-Type"), r.Header)
			}
			for _, p := range []string{"/brand/logo-000000000000." + kind, "/brand/x"} {
				if r, _ := b.get(p); r.StatusCode != http.StatusNotFound || r.Header.Get("Cache-Control") != "no-store" {
					t.Fatalf("%s: %d %q", p, r.StatusCode, r.Header.Get("Cache-Control"))
				}
			}
		})
	}
	// Without logo_file there is no logo.
	f := newFixture(t, nil, nil)
	if _, body := f.browser().get("/signin"); strings.Contains(body, "<img") {
		t.Fatal("a logo without logo_file")
	}
	// New refuses a file that went bad after Validate.
	var c Config
	c.Defaults()
	c.LogoFile = filepath.Join(t.TempDir(), "gone.png")
	if _, err := New(c, f.auth, f.st, nil, nil, nil, WithListener(f.srv.ln)); err == nil || !strings.Contains(err.Error(), "logo_file") {
		t.Fatalf("New with a missing logo: %v", err)
	}
}

// TestCSRFChangesNothing: a refused sign-in makes no session and counts
// no failure; a refused sign-out ends nothing; a refused oversized
// password form changes nothing.
func TestCSRFChangesNothing(t *testing.T) {
	f := newFixture(t, func(c *authn.Config) { c.Lockout.MaxFailures = 1 }, nil)
	u := f.user("ann", "correct horse 1")
	fresh := f.browser()
	fresh.csrf("/signin") // has a pre-session cookie, but sends no token
	for _, tok := range []string{"", "forged"} {
		resp, _ := fresh.post("/signin", url.Values{"csrf": {tok}, "username": {"ann"}, "password": {"wrong one 123"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatal(resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if strings.HasSuffix(c.Name, "gatewayd_session") {
				t.Fatal("a refused sign-in set a session cookie")
			}
		}
	}
	if nu, _ := f.st.UserByID(u.ID); nu.Locked(time.Now()) || f.srv.SessionsOf(u.ID) != 0 {
		t.Fatal("a refused sign-in reached authn")
	}
	b := f.browser()
	b.signin("ann", "correct horse 1")
	if r, _ := b.post("/signout", url.Values{"csrf": {"forged"}}); r.StatusCode != http.StatusForbidden {
		t.Fatal(r.StatusCode)
	}
	if r, _ := b.get("/"); r.StatusCode != 200 {
		t.Fatalf("a refused sign-out ended the session: %d", r.StatusCode)
	}
	tok := b.csrf("/password")
	r, _ := b.post("/password", url.Values{"csrf": {tok}, "current": {"correct horse 1"}, "new": {strings.Repeat("x", 9000)}, "confirm": {"x"}})
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatal(r.StatusCode)
	}
	if nu, _ := f.st.UserByID(u.ID); nu.PasswordVersion != u.PasswordVersion {
		t.Fatal("a refused form changed the password")
	}
}

// TestOldCookieRefused: the cookie a browser held before its own password
// change, and before an administrator's, no longer opens the account.
func TestOldCookieRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	u := f.user("ann", "correct horse 1")
	b := f.browser()
	b.signin("ann", "correct horse 1")
	sessionCookie := func() *http.Cookie {
		t.Helper()
		tsURL, _ := url.Parse(f.ts.URL)
		for _, c := range b.c.Jar.Cookies(tsURL) {
			if c.Name == "gatewayd_session" {
				return c
			}
		}
		t.Fatal("no session cookie")
		return nil
	}
	withCookie := func(c *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", f.ts.URL+"/", nil)
		req.AddCookie(c)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	before := sessionCookie()
	if r := withCookie(before); r.StatusCode != 200 {
		t.Fatalf("the cookie does not work before the change: %d", r.StatusCode)
	}
	tok := b.csrf("/password")
	if r, _ := b.post("/password", url.Values{"csrf": {tok}, "current": {"correct horse 1"}, "new": {"Another horse 2"}, "confirm": {"Another horse 2"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatal(r.StatusCode)
	}
	after := sessionCookie()
	if after.Value == before.Value {
		t.Fatal("the session id was not renewed at the change")
	}
	if r := withCookie(before); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
		t.Fatalf("the cookie from before the change: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := withCookie(after); r.StatusCode != 200 {
		t.Fatalf("the renewed cookie: %d", r.StatusCode)
	}
	// An administrator's change ends that one too.
	if err := f.auth.ChangePassword(context.Background(), u.ID, secret.FromString("set by admin 3"), "admin"); err != nil {
		t.Fatal(err)
	}
	if r := withCookie(after); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the cookie from before the admin's change: %d", r.StatusCode)
	}
}
