package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// TestPortalInBrowser drives the self-service page of the real daemon
// with Debian's headless Chromium: sign in and change the password (one
// push to the fake Graph; the new password binds over LDAP, the old one
// not), activate a pending user from an invite link (the second use
// fails), change an expired password at sign-in, and a suspended user's
// open session ends; an invite link that expired fails, also from a form
// opened while it was valid; signing out ends the session and its cookie.
// Each step saves a screenshot in the test's temp dir. Afterwards no
// password the browser typed is in the data dir, the log or the events.
func TestPortalInBrowser(t *testing.T) {
	bin := testutil.RequireBinary(t, "chromium")
	testutil.RequireBinary(t, "ldapsearch")
	fg := fakegraph.New()
	defer fg.Close()
	dir := t.TempDir()
	text, _, ldapURL := takeoverConfig(t, dir, fg)
	portalAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	logoPath := filepath.Join(dir, "logo.svg")
	if err := os.WriteFile(logoPath, []byte(testLogoSVG), 0o644); err != nil {
		t.Fatal(err)
	}
	text += fmt.Sprintf("\n[portal]\nlisten = %q\norg_name = \"Example Corp\"\nlogo_file = %q\n", portalAddr, logoPath)
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	base := "http://" + portalAddr
	shots := t.TempDir()

	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(420, 900)) // a phone-sized window
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The expired-link step waits out a one-minute link.
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	defer cancel()

	doIn := func(ctx context.Context, step string, acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, acts...); err != nil {
			shot(t, ctx, shots, step+"-failed")
			t.Fatalf("%s: %v", step, err)
		}
	}
	do := func(step string, acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		doIn(ctx, step, acts...)
	}
	textIn := func(ctx context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	text1 := func(sel string) string {
		t.Helper()
		return textIn(ctx, sel)
	}
	absent := func(sel string) {
		t.Helper()
		gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) === null", sel)))
		if err != nil || !gone {
			t.Fatalf("%s is on the page (%v)", sel, err)
		}
	}
	typed := []string{} // every password the browser typed, for the plaintext scan

	// 0. An invite with the shortest life the API accepts (1m) for a
	// pending user, opened and filled in while valid in a second,
	// separate browser context; it is submitted after it expired (5).
	if _, err := p.api("POST", "/v1/users", map[string]any{"username": "frank", "email": "frank@example.test"}, nil); err != nil {
		t.Fatal(err)
	}
	var inv struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if _, err := p.api("POST", "/v1/users/frank/invite", map[string]string{"ttl": "1m"}, &inv); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inv.URL, base+"/activate?token=") || time.Until(inv.ExpiresAt) > time.Minute {
		t.Fatalf("invite: %+v", inv)
	}
	frankBefore := userRecord(t, p, "frank")
	do("start the browser", chromedp.Navigate("about:blank")) // a new browser context needs a browser
	tab, cancelTab := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancelTab()
	doIn(tab, "frank activate form", chromedp.Navigate(inv.URL), chromedp.WaitVisible(chromedp.CSS("form#activate")),
		chromedp.SendKeys(chromedp.CSS("#new"), "Frank-Password-1"), chromedp.SendKeys(chromedp.CSS("#confirm"), "Frank-Password-1"))
	typed = append(typed, "Frank-Password-1")
	shot(t, tab, shots, "0-activate-filled")
	signIn := func(step, user, pw string) {
		t.Helper()
		do(step, chromedp.Navigate(base+"/signin"), chromedp.WaitVisible(chromedp.CSS("form#signin")),
			chromedp.SendKeys(chromedp.CSS("#username"), user), chromedp.SendKeys(chromedp.CSS("#password"), pw),
			chromedp.Click(chromedp.CSS("form#signin button")))
	}
	signOut := func(step string) {
		t.Helper()
		do(step, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("form#signout")),
			chromedp.Click(chromedp.CSS("form#signout button")), chromedp.WaitVisible(chromedp.CSS("form#signin")))
	}

	// 1. Sign in, change the password.
	const upn = "alice@example.test"
	dn := "uid=alice,ou=users,dc=example,dc=test"
	if _, err := p.api("POST", "/v1/users", map[string]any{"username": "alice", "email": upn, "first_name": "Alice", "last_name": "L"}, nil); err != nil {
		t.Fatal(err)
	}
	p.api("PUT", "/v1/users/alice/password", map[string]string{"password": "First-Password-1"}, nil)
	if out, err := p.cli("", "bind", "m365", "-user", "alice"); err != nil {
		t.Fatal(err, out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { u, ok := fg.User(upn); return ok && u.AccountEnabled }, "account created")
	signIn("signin", "alice", "First-Password-1")
	typed = append(typed, "First-Password-1")
	do("home", chromedp.WaitVisible(chromedp.CSS("#change-link")))
	if got := text1("dd#username"); got != "alice" {
		t.Fatalf("home shows %q", got)
	}
	// The logo of [portal] logo_file loaded (the CSP let it through).
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.getElementById('logo').naturalWidth")); err != nil || w != 48 {
		t.Fatalf("logo not shown: width %d, %v", w, err)
	}
	shot(t, ctx, shots, "1-home")
	// The sign-in is a login (SPEC 3.3): the first one after binding pushes.
	waitPatches(t, fg, upn, 1)
	waitPushed(t, p, "alice")
	time.Sleep(200 * time.Millisecond)
	beforeChange := passwordPatches(fg, upn)
	do("password form", chromedp.Click(chromedp.CSS("#change-link")), chromedp.WaitVisible(chromedp.CSS("form#change")))
	if pol := text1("#policy"); !strings.Contains(pol, "8 to 256 characters") || !strings.Contains(pol, "For m365") {
		t.Fatalf("policy shown: %q", pol)
	}
	shot(t, ctx, shots, "1-password-form")
	do("change", chromedp.SendKeys(chromedp.CSS("#current"), "First-Password-1"),
		chromedp.SendKeys(chromedp.CSS("#new"), "Second-Password-2"), chromedp.SendKeys(chromedp.CSS("#confirm"), "Second-Password-2"),
		chromedp.Click(chromedp.CSS("form#change button")), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if n := text1("p.notice"); !strings.Contains(n, "password was changed") {
		t.Fatalf("after the change: %q", n)
	}
	typed = append(typed, "Second-Password-2")
	shot(t, ctx, shots, "1-changed")
	waitPatches(t, fg, upn, beforeChange+1)
	waitPushed(t, p, "alice")
	if !fg.PasswordMatches(upn, "Second-Password-2") {
		t.Fatal("the changed password did not reach Entra")
	}
	if !ldapBind(t, ldapURL, dn, "Second-Password-2") {
		t.Fatal("the new password does not bind over LDAP")
	}
	if ldapBind(t, ldapURL, dn, "First-Password-1") {
		t.Fatal("the old password still binds over LDAP")
	}
	// Exactly one push for the change: none more once the engine has
	// pushed the current version, nor after the LDAP binds (logins).
	time.Sleep(500 * time.Millisecond)
	if n := passwordPatches(fg, upn); n != beforeChange+1 || beforeChange != 1 {
		t.Fatalf("%d pushes, want %d (the sign-in's takeover, then exactly one for the change)", n, beforeChange+1)
	}

	// Sign out: the account page sends to sign-in, and the old cookie
	// no longer opens it.
	var cookies struct {
		Cookies []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"cookies"`
	}
	do("cookies", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return tg.Call(ctx, "Network.getCookies", map[string]any{"urls": []string{base + "/"}}, &cookies)
	}))
	var old string
	for _, c := range cookies.Cookies {
		if c.Name == "gatewayd_session" {
			old = c.Value
		}
	}
	if code, _ := getWithSession(t, base+"/", old); old == "" || code != http.StatusOK {
		t.Fatalf("the session cookie %q does not open the account before sign-out: %d", old, code)
	}
	signOut("signout alice")
	shot(t, ctx, shots, "1-signed-out")
	do("home after sign-out", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("form#signin")))
	absent("#change-link")
	if code, loc := getWithSession(t, base+"/", old); code != http.StatusSeeOther || loc != "/signin" {
		t.Fatalf("the cookie from before sign-out: %d %s", code, loc)
	}

	// 2. An invite link activates a pending user, once.
	if _, err := p.api("POST", "/v1/users", map[string]any{"username": "carol", "email": "carol@example.test"}, nil); err != nil {
		t.Fatal(err)
	}
	out, err := p.cli("", "user", "invite", "carol", "-ttl", "1h")
	if err != nil {
		t.Fatal(err, out)
	}
	link := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	if !strings.HasPrefix(link, base+"/activate?token=") {
		t.Fatalf("invite printed %q", out)
	}
	do("activate form", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("form#activate")))
	shot(t, ctx, shots, "2-activate")
	typed = append(typed, "Carol-Password-1")
	do("activate", chromedp.SendKeys(chromedp.CSS("#new"), "Carol-Password-1"), chromedp.SendKeys(chromedp.CSS("#confirm"), "Carol-Password-1"),
		chromedp.Click(chromedp.CSS("form#activate button")), chromedp.WaitVisible(chromedp.CSS("form#signin")))
	if n := text1("p.notice"); !strings.Contains(n, "password is set") {
		t.Fatalf("after activation: %q", n)
	}
	do("reuse", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("p.error")))
	if e := text1("p.error"); !strings.Contains(e, "not valid") {
		t.Fatalf("second use: %q", e)
	}
	shot(t, ctx, shots, "2-reused")
	if !ldapBind(t, ldapURL, "uid=carol,ou=users,dc=example,dc=test", "Carol-Password-1") {
		t.Fatal("the activated password does not bind")
	}

	// 3. An expired password is changed at sign-in, before anything else.
	p.api("POST", "/v1/users", map[string]any{"username": "dave", "email": "dave@example.test"}, nil)
	p.api("PUT", "/v1/users/dave/password", map[string]string{"password": "Dave-Password-1"}, nil)
	if _, err := p.api("PATCH", "/v1/users/dave", map[string]any{"password_status": "expired"}, nil); err != nil {
		t.Fatal(err)
	}
	signIn("signin dave", "dave", "Dave-Password-1")
	typed = append(typed, "Dave-Password-1", "Dave-Password-2")
	do("expired form", chromedp.WaitVisible(chromedp.CSS("form#expired")))
	shot(t, ctx, shots, "3-expired")
	do("home blocked", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("form#expired")))
	do("expired change", chromedp.SendKeys(chromedp.CSS("#current"), "Dave-Password-1"),
		chromedp.SendKeys(chromedp.CSS("#new"), "Dave-Password-2"), chromedp.SendKeys(chromedp.CSS("#confirm"), "Dave-Password-2"),
		chromedp.Click(chromedp.CSS("form#expired button")), chromedp.WaitVisible(chromedp.CSS("#change-link")))
	if got := text1("dd#username"); got != "dave" {
		t.Fatalf("home after the expired change shows %q", got)
	}
	signOut("signout dave")

	// 4. A suspended user's open session ends on its next request.
	p.api("POST", "/v1/users", map[string]any{"username": "erin", "email": "erin@example.test"}, nil)
	p.api("PUT", "/v1/users/erin/password", map[string]string{"password": "Erin-Password-1"}, nil)
	signIn("signin erin", "erin", "Erin-Password-1")
	typed = append(typed, "Erin-Password-1")
	do("erin home", chromedp.WaitVisible(chromedp.CSS("#change-link")))
	if out, err := p.cli("", "user", "suspend", "erin"); err != nil {
		t.Fatal(err, out)
	}
	do("after suspend", chromedp.Navigate(base+"/password"), chromedp.WaitVisible(chromedp.CSS("form#signin")))
	shot(t, ctx, shots, "4-suspended")

	// 5. The expired link: the form opened while it was valid is refused,
	// the link itself shows the error, and no password was set.
	if wait := time.Until(inv.ExpiresAt) + 1500*time.Millisecond; wait > 0 {
		t.Logf("waiting %s for the invite to expire", wait.Round(time.Second))
		time.Sleep(wait)
	}
	doIn(tab, "expired submit", chromedp.Click(chromedp.CSS("form#activate button")), chromedp.WaitVisible(chromedp.CSS("p.error")))
	if e := textIn(tab, "p.error"); !strings.Contains(e, "not valid") {
		t.Fatalf("the expired link's form: %q", e)
	}
	shot(t, tab, shots, "5-expired-submit")
	do("expired link", chromedp.Navigate(inv.URL), chromedp.WaitVisible(chromedp.CSS("p.error")))
	if e := text1("p.error"); !strings.Contains(e, "not valid") {
		t.Fatalf("the expired link: %q", e)
	}
	absent("form#activate")
	shot(t, ctx, shots, "5-expired-link")
	if after := userRecord(t, p, "frank"); after.PasswordStatus != "pending" || after.PasswordVersion != frankBefore.PasswordVersion {
		t.Fatalf("the expired link set a password: %+v, before %+v", after, frankBefore)
	}
	if ldapBind(t, ldapURL, "uid=frank,ou=users,dc=example,dc=test", "Frank-Password-1") {
		t.Fatal("the password typed into the expired link binds")
	}

	// 6. No password the browser typed is at rest or in the output.
	if len(typed) != 7 {
		t.Fatalf("typed %d passwords", len(typed))
	}
	noPlaintext(t, p, dir, cfgPath, typed)
}

// testLogoSVG is a 48x48 logo for [portal] logo_file.
const testLogoSVG = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48" viewBox="0 0 48 48"><circle cx="24" cy="24" r="20" fill="#fff"/><path d="M14 25l7 7 13-15" stroke="#0b5cad" stroke-width="5" fill="none"/></svg>
`

// userView is the part of GET /v1/users/{user} the portal tests read.
type userView struct {
	PasswordStatus  string `json:"password_status"`
	PasswordVersion uint64 `json:"password_version"`
}

func userRecord(t *testing.T, p *proc, name string) userView {
	t.Helper()
	var u userView
	if _, err := p.api("GET", "/v1/users/"+name, nil, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// waitPushed waits until every directory of user has pushed the user's
// current password version.
func waitPushed(t *testing.T, p *proc, user string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool {
		var v struct {
			Version     uint64 `json:"password_version"`
			Directories []struct {
				Pushed  uint64 `json:"pushed_password_version"`
				Pending bool   `json:"password_push_pending"`
			} `json:"directories"`
		}
		if _, err := p.api("GET", "/v1/users/"+user+"/sync", nil, &v); err != nil {
			t.Fatal(err)
		}
		for _, d := range v.Directories {
			if d.Pushed != v.Version || d.Pending {
				return false
			}
		}
		return len(v.Directories) > 0
	}, user+"'s current password pushed everywhere")
}

// getWithSession GETs url with only the given session cookie, without
// following a redirect.
func getWithSession(t *testing.T, url, session string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.AddCookie(&http.Cookie{Name: "gatewayd_session", Value: session})
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// noPlaintext stops the daemon (flushing the journal) and scans the data
// dir (every file under dir but the config), the daemon's log and the
// output of GET /v1/events for the passwords, as TestNoPlaintextAtRest
// does for the API and the CLI.
func noPlaintext(t *testing.T, p *proc, dir, cfgPath string, pws []string) {
	t.Helper()
	var events json.RawMessage
	if _, err := p.api("GET", "/v1/events?limit=1000", nil, &events); err != nil {
		t.Fatal(err)
	}
	var page struct {
		Events []event `json:"events"`
	}
	if err := json.Unmarshal(events, &page); err != nil || len(page.Events) < 10 {
		t.Fatalf("event output too small to mean anything: %v %d", err, len(page.Events))
	}
	p.stop()
	haystacks := map[string][]byte{"daemon log": []byte(p.logs()), "GET /v1/events": events}
	files := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && path != cfgPath {
			b, _ := os.ReadFile(path)
			haystacks[path] = b
			files++
		}
		return nil
	})
	if files < 3 || len(p.logs()) < 1000 {
		t.Fatalf("scanned too little: %d files, %d bytes of log", files, len(p.logs()))
	}
	for name, b := range haystacks {
		for _, pw := range pws {
			if bytes.Contains(b, []byte(pw)) {
				t.Errorf("%s contains the plaintext password %q", name, pw)
			}
		}
	}
}

// shot saves a full-page screenshot; failures to take one are logged only.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name+".jpg")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
	if os.Getenv("GATEWAYD_PORTAL_SHOTS") != "" {
		_ = os.WriteFile(filepath.Join(os.Getenv("GATEWAYD_PORTAL_SHOTS"), name+".jpg"), buf, 0o644)
	}
}

// portalClient is a browser without a browser: a cookie jar, no redirects
// followed.
type portalClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newPortalClient(t *testing.T, base string) *portalClient {
	jar, _ := cookiejar.New(nil)
	return &portalClient{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *portalClient) do(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *portalClient) get(path string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	return c.do(req)
}

func (c *portalClient) post(path string, v url.Values) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var portalCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token of the page at path.
func (c *portalClient) csrf(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	m := portalCSRF.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no form token on %s: %s", path, body)
	}
	return m[1]
}

func (c *portalClient) signin(user, pw string) (*http.Response, string) {
	c.t.Helper()
	return c.post("/signin", url.Values{"csrf": {c.csrf("/signin")}, "username": {user}, "password": {pw}})
}

// session is the session cookie's value, or "".
func (c *portalClient) session() string {
	u, _ := url.Parse(c.base)
	for _, k := range c.c.Jar.Cookies(u) {
		if k.Name == "gatewayd_session" {
			return k.Value
		}
	}
	return ""
}

// TestPortalBadInputOverHTTP: the page's refusals against the real
// daemon, without a browser: a missing or forged CSRF token is a 403 that
// changes nothing; an oversized form is a 413; a session cookie from
// before a password change is refused; a replayed invite is refused; 50
// wrong passwords lock the account (SPEC 8) as over LDAP, so the right
// password is then refused on the page and over LDAP. No password sent
// is at rest afterwards.
func TestPortalBadInputOverHTTP(t *testing.T) {
	testutil.RequireBinary(t, "ldapsearch")
	fg := fakegraph.New()
	defer fg.Close()
	dir := t.TempDir()
	text, _, ldapURL := takeoverConfig(t, dir, fg)
	portalAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	// Lockout after 50 failures; a rate limit that does not fire first
	// (every request comes from 127.0.0.1).
	text += fmt.Sprintf("\n[portal]\nlisten = %q\n\n[authn.lockout]\nmax_failures = 50\nwindow = \"15m\"\nduration = \"15m\"\n\n[authn.rate_limit]\nfailures_per_second = 200\nburst = 200\n", portalAddr)
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	base := "http://" + portalAddr
	const bobDN = "uid=bob,ou=users,dc=example,dc=test"
	sent := []string{"Bob-Password-1", "Bob-Password-2", "Bob-Password-3", "Bob-Wrong-Guess", "Pat-Password-1", "Pat-Replay-2"}
	p.api("POST", "/v1/users", map[string]any{"username": "bob", "email": "bob@example.test"}, nil)
	if _, err := p.api("PUT", "/v1/users/bob/password", map[string]string{"password": "Bob-Password-1"}, nil); err != nil {
		t.Fatal(err)
	}

	// CSRF: no token and a forged one, before and after sign-in.
	c := newPortalClient(t, base)
	good := c.csrf("/signin")
	for _, tok := range []string{"", "forged", strings.Repeat("A", len(good))} {
		if r, _ := c.post("/signin", url.Values{"csrf": {tok}, "username": {"bob"}, "password": {"Bob-Password-1"}}); r.StatusCode != http.StatusForbidden {
			t.Fatalf("sign-in with token %q: %d", tok, r.StatusCode)
		}
	}
	if c.session() != "" {
		t.Fatal("a refused sign-in made a session")
	}
	if r, _ := c.signin("bob", "Bob-Password-1"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("sign-in: %d", r.StatusCode)
	}
	before := userRecord(t, p, "bob")
	other := newPortalClient(t, base)
	foreign := other.csrf("/signin") // valid, but bound to another browser
	change := url.Values{"current": {"Bob-Password-1"}, "new": {"Bob-Password-2"}, "confirm": {"Bob-Password-2"}}
	for _, tok := range []string{"", "forged", foreign} {
		v := url.Values{"csrf": {tok}}
		for k, x := range change {
			v[k] = x
		}
		if r, _ := c.post("/password", v); r.StatusCode != http.StatusForbidden {
			t.Fatalf("password change with token %q: %d", tok, r.StatusCode)
		}
	}
	if r, _ := c.post("/signout", url.Values{"csrf": {"forged"}}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("forged sign-out: %d", r.StatusCode)
	}
	// Oversized: 413, on the sign-in form and on the password form.
	tok := c.csrf("/password")
	big := strings.Repeat("x", 9<<10)
	if r, _ := c.post("/password", url.Values{"csrf": {tok}, "current": {"Bob-Password-1"}, "new": {big}, "confirm": {big}}); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized password form: %d", r.StatusCode)
	}
	if r, _ := other.post("/signin", url.Values{"csrf": {foreign}, "username": {big}, "password": {"x"}}); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized sign-in form: %d", r.StatusCode)
	}
	if after := userRecord(t, p, "bob"); after != before {
		t.Fatalf("refused forms changed the user: %+v, before %+v", after, before)
	}
	if r, _ := c.get("/"); r.StatusCode != http.StatusOK {
		t.Fatalf("refused forms ended the session: %d", r.StatusCode)
	}
	if !ldapBind(t, ldapURL, bobDN, "Bob-Password-1") || ldapBind(t, ldapURL, bobDN, "Bob-Password-2") {
		t.Fatal("refused forms changed the password")
	}

	// A session cookie from before a password change is refused: the
	// changing browser's old one, another browser's, and after an
	// administrator's change the renewed one.
	second := newPortalClient(t, base)
	second.signin("bob", "Bob-Password-1")
	old := c.session()
	v := url.Values{"csrf": {tok}}
	for k, x := range change {
		v[k] = x
	}
	if r, _ := c.post("/password", v); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("password change: %d", r.StatusCode)
	}
	if code, loc := getWithSession(t, base+"/", old); code != http.StatusSeeOther || loc != "/signin" {
		t.Fatalf("the cookie from before the change: %d %s", code, loc)
	}
	if r, _ := second.get("/password"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("another browser's session survived the change: %d", r.StatusCode)
	}
	renewed := c.session()
	if code, _ := getWithSession(t, base+"/", renewed); renewed == old || code != http.StatusOK {
		t.Fatalf("the renewed session: %d", code)
	}
	if _, err := p.api("PUT", "/v1/users/bob/password", map[string]string{"password": "Bob-Password-3"}, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { code, _ := getWithSession(t, base+"/", renewed); return code == http.StatusSeeOther },
		"the session ended by an administrator's password change")

	// A replayed invite is refused, and sets nothing.
	p.api("POST", "/v1/users", map[string]any{"username": "pat", "email": "pat@example.test"}, nil)
	var inv struct {
		URL string `json:"url"`
	}
	if _, err := p.api("POST", "/v1/users/pat/invite", nil, &inv); err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse(inv.URL)
	token := lu.Query().Get("token")
	path := lu.RequestURI()
	a := newPortalClient(t, base)
	atok := a.csrf(path)
	if r, _ := a.post("/activate", url.Values{"csrf": {atok}, "token": {token}, "new": {"Pat-Password-1"}, "confirm": {"Pat-Password-1"}}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin?activated=1" {
		t.Fatalf("activation: %d", r.StatusCode)
	}
	activated := userRecord(t, p, "pat")
	if activated.PasswordStatus != "active" {
		t.Fatalf("after activation: %+v", activated)
	}
	if r, body := a.get(path); r.StatusCode != http.StatusGone || !strings.Contains(body, "not valid") {
		t.Fatalf("replayed link: %d", r.StatusCode)
	}
	replay := url.Values{"token": {token}, "new": {"Pat-Replay-2"}, "confirm": {"Pat-Replay-2"}}
	for _, cl := range []*portalClient{a, newPortalClient(t, base)} {
		replay.Set("csrf", cl.csrf("/signin"))
		if r, _ := cl.post("/activate", replay); r.StatusCode != http.StatusGone {
			t.Fatalf("replayed activation: %d", r.StatusCode)
		}
	}
	if after := userRecord(t, p, "pat"); after != activated {
		t.Fatalf("a replayed invite changed the user: %+v", after)
	}
	patDN := "uid=pat,ou=users,dc=example,dc=test"
	if !ldapBind(t, ldapURL, patDN, "Pat-Password-1") || ldapBind(t, ldapURL, patDN, "Pat-Replay-2") {
		t.Fatal("the replay changed pat's password")
	}

	// 50 wrong passwords lock bob (SPEC 8); the rate limit did not fire.
	guesser := newPortalClient(t, base)
	gtok := guesser.csrf("/signin")
	for i := range 50 {
		r, body := guesser.post("/signin", url.Values{"csrf": {gtok}, "username": {"bob"}, "password": {"Bob-Wrong-Guess"}})
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Sign-in failed") {
			t.Fatalf("wrong password %d: %d", i+1, r.StatusCode)
		}
	}
	if u := userRecord(t, p, "bob"); u.PasswordStatus != "locked" {
		t.Fatalf("after 50 wrong passwords: %+v", u)
	}
	r, body := guesser.post("/signin", url.Values{"csrf": {gtok}, "username": {"bob"}, "password": {"Bob-Password-3"}})
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Sign-in failed") || guesser.session() != "" {
		t.Fatalf("the right password while locked: %d", r.StatusCode)
	}
	evs := p.loginEvents(t, "bob", "portal_login", 54) // 2 successes, 50 failures, the refusal
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Reason]++
	}
	if reasons["bad_password"] != 50 || reasons["locked"] != 1 || reasons["rate_limited"] != 0 {
		t.Fatalf("portal_login reasons: %v", reasons)
	}
	if ldapBind(t, ldapURL, bobDN, "Bob-Password-3") {
		t.Fatal("a locked user binds over LDAP")
	}
	// Binds: Bob-Password-1 (success), Bob-Password-2 (refused), then
	// Bob-Password-3 refused as locked.
	binds := map[string]int{}
	for _, e := range p.loginEvents(t, "bob", "ldap_bind", 3) {
		binds[e.Outcome+"/"+e.Reason]++
	}
	if binds["failure/locked"] != 1 || binds["success/"] != 1 || len(binds) != 3 {
		t.Fatalf("LDAP binds: %v", binds)
	}

	noPlaintext(t, p, dir, cfgPath, sent)
}

// TestPortalLogoRefusedAtItsLine: a logo_file that is missing, too large
// or not an image is refused by the loader at the key's line.
func TestPortalLogoRefusedAtItsLine(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.png")
	os.WriteFile(big, append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 300<<10)...), 0o644)
	notImage := filepath.Join(dir, "logo.png")
	os.WriteFile(notImage, []byte("<html>not an image</html>"), 0o644)
	good := filepath.Join(dir, "logo.svg")
	os.WriteFile(good, []byte(testLogoSVG), 0o644)
	for _, tc := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.png"), "cannot read the logo"},
		{big, "a logo may have at most 262144"},
		{notImage, "not a PNG, JPEG or SVG image"},
		{good, ""},
	} {
		text := testConfig(t, dir, fmt.Sprintf("\n[portal]\nlisten = \"127.0.0.1:8443\"\norg_name = \"Example Corp\"\nlogo_file = %q\n", tc.file))
		path := writeConfig(t, dir, text)
		_, err := loadConfig(path)
		if tc.want == "" {
			if err != nil {
				t.Fatalf("a good logo refused: %v", err)
			}
			continue
		}
		line := 1 + strings.Count(text[:strings.Index(text, "logo_file")], "\n")
		if prefix := fmt.Sprintf("%s:%d: portal.logo_file: ", path, line); err == nil || !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %q ... %q", filepath.Base(tc.file), err, prefix, tc.want)
		}
	}
}
