package portal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// The one message every refused sign-in shows (SPEC 3.2: the reason is
// never shown).
const msgSignInFailed = "Sign-in failed. Check your name and password and try again."

const msgBadLink = "This activation link is not valid: it was used already, it expired, or a newer one was issued. Ask your administrator for a new link."

// csp: nothing inline, nothing from elsewhere, no framing.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// page is what a template renders.
type page struct {
	Title      string
	Org        string
	Logo       string // the logo's URL path, or ""
	CSRF       string
	User       *store.User
	Error      string
	Notice     string
	Identifier string
	Token      string
	Policy     []string
	ManagedAD  bool
	Expires    string
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.wrap(pattern, h)) }
	static, _ := fs.Sub(staticFS, "static")
	handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)).ServeHTTP)
	handle("GET /brand/{name}", s.serveLogo)
	handle("GET /{$}", s.home)
	handle("GET /signin", s.signinForm)
	handle("POST /signin", s.signin)
	handle("POST /signout", s.signout)
	handle("GET /password", s.passwordForm)
	handle("POST /password", s.password)
	handle("GET /expired", s.expiredForm)
	handle("POST /expired", s.expired)
	handle("GET /activate", s.activateForm)
	handle("POST /activate", s.activate)
	handle("/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, "error", page{Title: "Not found", Error: "There is no such page."}, "")
	})
	return mux
}

// wrap sets the security headers, bounds the body, recovers panics and
// counts the request.
func (s *Server) wrap(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("portal handler panic", "route", route, "panic", p)
				http.Error(rec, "internal error", http.StatusInternalServerError)
			}
			s.m.requests.WithLabelValues(route, statusText(rec.code)).Inc()
		}()
		hd := rec.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		if s.secure {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(rec, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					s.render(rec, r, http.StatusRequestEntityTooLarge, "error", page{Title: "Too large", Error: "The form was too large."}, "")
					return
				}
				s.render(rec, r, http.StatusBadRequest, "error", page{Title: "Bad request", Error: "The form could not be read."}, "")
				return
			}
		}
		h(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// render writes a page with a CSRF token bound to binding ("" when the
// page has no form: then the pre-session cookie is used or made).
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p page, binding string) {
	if binding == "" {
		binding = s.preBinding(w, r)
	}
	p.CSRF = s.csrfFor(binding)
	p.Org = s.cfg.OrgName
	if s.logo != nil {
		p.Logo = s.logo.path
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.log.Error("portal: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// preBinding is the pre-session cookie's value, made when absent: the
// CSRF binding of the forms shown before a session exists (double
// submit, SameSite=Strict).
func (s *Server) preBinding(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.preCookieName()); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	v := randomID()
	s.setCookie(w, s.preCookieName(), v, 0)
	return v
}

// checkCSRF refuses a POST whose token does not match its binding: the
// session when there is one, else the pre-session cookie. It writes the
// 403 and reports false.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, x *session) bool {
	got := r.PostForm.Get("csrf")
	ok := false
	if x != nil {
		ok = s.csrfOK(x.id, got)
	}
	if !ok {
		if c, err := r.Cookie(s.preCookieName()); err == nil {
			ok = s.csrfOK(c.Value, got)
		}
	}
	if !ok {
		s.render(w, r, http.StatusForbidden, "error", page{Title: "Refused", Error: "The form expired or did not come from this page. Go back, reload it and try again."}, "")
	}
	return ok
}

func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	x, u := s.current(r)
	if x == nil || u == nil {
		if x != nil && x.mustChange != "" {
			redirect(w, r, "/expired")
			return
		}
		redirect(w, r, "/signin")
		return
	}
	p := page{Title: "Your account", User: u}
	if r.URL.Query().Get("changed") == "1" {
		p.Notice = "Your password was changed."
	}
	if t := s.expiresAt(u); !t.IsZero() {
		p.Expires = t.Format("2 January 2006")
	}
	p.ManagedAD = managedInAD(u)
	s.render(w, r, http.StatusOK, "home", p, x.id)
}

func (s *Server) expiresAt(u *store.User) time.Time {
	if e, ok := s.auth.(interface{ PasswordExpiresAt(*store.User) time.Time }); ok {
		return e.PasswordExpiresAt(u)
	}
	return time.Time{}
}

func managedInAD(u *store.User) bool {
	return u.PasswordAuthority == store.AuthorityAD || u.DelegatedAuthority == store.AuthorityAD
}

func (s *Server) signinForm(w http.ResponseWriter, r *http.Request) {
	if x, u := s.current(r); x != nil && u != nil {
		redirect(w, r, "/")
		return
	}
	p := page{Title: "Sign in"}
	if r.URL.Query().Get("activated") == "1" {
		p.Notice = "Your password is set. Sign in with it."
	}
	s.render(w, r, http.StatusOK, "signin", p, "")
}

func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	x, _ := s.current(r)
	if !s.checkCSRF(w, r, x) {
		return
	}
	ident := strings.TrimSpace(r.PostForm.Get("username"))
	pw := secret.FromString(r.PostForm.Get("password"))
	defer pw.Wipe()
	if ident == "" || pw.IsEmpty() || len(ident) > 256 {
		s.m.signins.WithLabelValues(signinFailure).Inc()
		s.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", Error: msgSignInFailed, Identifier: ident}, "")
		return
	}
	res := s.auth.Login(r.Context(), authn.Request{Identifier: ident, Password: pw, Protocol: authn.ProtocolPortal,
		Source: clientAddr(r), Client: "portal"})
	switch {
	case res.OK && res.User != nil:
		s.m.signins.WithLabelValues(signinSuccess).Inc()
		s.newSession(w, r, res.User, "")
		redirect(w, r, "/")
	case res.Reason == authn.ReasonExpired && res.User != nil && !managedInAD(res.User):
		// The password is checked by the change itself (ChangeOwnPassword).
		s.m.signins.WithLabelValues(signinExpired).Inc()
		s.newSession(w, r, nil, res.User.Username)
		redirect(w, r, "/expired")
	default:
		s.m.signins.WithLabelValues(signinFailure).Inc()
		s.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", Error: msgSignInFailed, Identifier: ident}, "")
	}
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	x, _ := s.current(r)
	if !s.checkCSRF(w, r, x) {
		return
	}
	s.dropCookieSession(r)
	s.setCookie(w, s.cookieName(), "", -1)
	redirect(w, r, "/signin")
}

// policyLines describes the policy a new password for u must meet: the
// gateway's own and every bound directory's.
func (s *Server) policyLines(userID string) ([]string, []Policy) {
	minL, maxL := s.auth.PasswordLengths()
	lines := []string{fmt.Sprintf("%d to %d characters.", minL, maxL)}
	var ps []Policy
	if s.policies != nil && userID != "" {
		var err error
		if ps, err = s.policies.PoliciesFor(userID); err != nil {
			s.log.Warn("portal: reading directory password policies", "err", err)
		}
	}
	for _, p := range ps {
		var parts []string
		switch {
		case p.MinLength > 0 && p.MaxLength > 0:
			parts = append(parts, fmt.Sprintf("%d to %d characters", p.MinLength, p.MaxLength))
		case p.MinLength > 0:
			parts = append(parts, fmt.Sprintf("at least %d characters", p.MinLength))
		case p.MaxLength > 0:
			parts = append(parts, fmt.Sprintf("at most %d characters", p.MaxLength))
		}
		if p.MinCharacterClasses > 0 {
			parts = append(parts, fmt.Sprintf("at least %d of: lowercase letters, uppercase letters, digits, symbols", p.MinCharacterClasses))
		}
		if len(parts) > 0 {
			lines = append(lines, fmt.Sprintf("For %s: %s.", p.Directory, strings.Join(parts, "; ")))
		}
	}
	return lines, ps
}

// checkNew checks a new password and its confirmation against the
// gateway's lengths and the directories' policies; the message is for
// the user and never repeats the password.
func (s *Server) checkNew(pw, confirm secret.String, ps []Policy) string {
	if !pw.Equal(confirm) {
		return "The new password and its confirmation differ."
	}
	minL, maxL := s.auth.PasswordLengths()
	if n := len([]rune(string(pw.Bytes()))); n < minL || n > maxL {
		return fmt.Sprintf("The new password must have %d to %d characters.", minL, maxL)
	}
	for _, p := range ps {
		if p.Check == nil {
			continue
		}
		if err := p.Check(pw); err != nil {
			return fmt.Sprintf("%s would refuse it: %v.", p.Directory, err)
		}
	}
	return ""
}

// policyRefusal is a bound directory's policy refusing the new password
// of an expired user, found once the old one proved them; its text is for
// the person.
type policyRefusal string

func (p policyRefusal) Error() string { return string(p) }

func changeError(err error) string {
	var pr policyRefusal
	if errors.As(err, &pr) {
		return string(pr)
	}
	switch {
	case errors.Is(err, authn.ErrNotProven):
		return "The current password is wrong."
	case errors.Is(err, authn.ErrWeakPassword):
		return "The new password does not meet the policy."
	case errors.Is(err, authn.ErrAuthorityAD):
		return "Your password is managed in Active Directory: change it there."
	case errors.Is(err, authn.ErrBusy):
		return "The service is busy. Try again in a moment."
	}
	return "The password could not be changed. Try again later."
}

func (s *Server) passwordForm(w http.ResponseWriter, r *http.Request) {
	x, u := s.current(r)
	if x == nil || u == nil {
		redirect(w, r, "/signin")
		return
	}
	lines, _ := s.policyLines(u.ID)
	s.render(w, r, http.StatusOK, "password", page{Title: "Change password", User: u, Policy: lines, ManagedAD: managedInAD(u)}, x.id)
}

func (s *Server) password(w http.ResponseWriter, r *http.Request) {
	x, u := s.current(r)
	if x == nil || u == nil {
		if s.checkCSRF(w, r, x) {
			redirect(w, r, "/signin")
		}
		return
	}
	if !s.checkCSRF(w, r, x) {
		return
	}
	lines, ps := s.policyLines(u.ID)
	p := page{Title: "Change password", User: u, Policy: lines, ManagedAD: managedInAD(u)}
	if p.ManagedAD {
		s.render(w, r, http.StatusConflict, "password", p, x.id)
		return
	}
	cur := secret.FromString(r.PostForm.Get("current"))
	pw := secret.FromString(r.PostForm.Get("new"))
	confirm := secret.FromString(r.PostForm.Get("confirm"))
	defer cur.Wipe()
	defer pw.Wipe()
	defer confirm.Wipe()
	if msg := s.checkNew(pw, confirm, ps); msg != "" {
		p.Error = msg
		s.render(w, r, http.StatusBadRequest, "password", p, x.id)
		return
	}
	nu, err := s.auth.ChangeOwnPassword(r.Context(), authn.Request{Identifier: u.Username, ByUsername: true, Password: cur,
		Protocol: authn.ProtocolPortal, Source: clientAddr(r), Client: "portal"}, pw, nil)
	if err != nil {
		s.m.changes.WithLabelValues("change", "failure").Inc()
		p.Error = changeError(err)
		s.render(w, r, http.StatusBadRequest, "password", p, x.id)
		return
	}
	s.m.changes.WithLabelValues("change", "success").Inc()
	// Every session of the user ended with the change; this browser gets
	// a fresh one.
	s.newSession(w, r, nu, "")
	redirect(w, r, "/?changed=1")
}

func (s *Server) expiredForm(w http.ResponseWriter, r *http.Request) {
	x, _ := s.current(r)
	if x == nil || x.mustChange == "" {
		redirect(w, r, "/signin")
		return
	}
	lines, _ := s.policyLines("")
	s.render(w, r, http.StatusOK, "expired", page{Title: "Change your expired password", Identifier: x.mustChange, Policy: lines}, x.id)
}

func (s *Server) expired(w http.ResponseWriter, r *http.Request) {
	x, _ := s.current(r)
	if !s.checkCSRF(w, r, x) {
		return
	}
	if x == nil || x.mustChange == "" {
		redirect(w, r, "/signin")
		return
	}
	lines, _ := s.policyLines("")
	p := page{Title: "Change your expired password", Identifier: x.mustChange, Policy: lines}
	cur := secret.FromString(r.PostForm.Get("current"))
	pw := secret.FromString(r.PostForm.Get("new"))
	confirm := secret.FromString(r.PostForm.Get("confirm"))
	defer cur.Wipe()
	defer pw.Wipe()
	defer confirm.Wipe()
	// The directories' policies are checked once the old password proved
	// the user (not before: that would tell a guesser whom they bind).
	if msg := s.checkNew(pw, confirm, nil); msg != "" {
		p.Error = msg
		s.render(w, r, http.StatusBadRequest, "expired", p, x.id)
		return
	}
	nu, err := s.auth.ChangeOwnPassword(r.Context(), authn.Request{Identifier: x.mustChange, ByUsername: true, Password: cur,
		Protocol: authn.ProtocolPortal, Source: clientAddr(r), Client: "portal"}, pw, func(u *store.User) error {
		_, ps := s.policyLines(u.ID)
		if msg := s.checkNew(pw, confirm, ps); msg != "" {
			return policyRefusal(msg)
		}
		return nil
	})
	if err != nil {
		s.m.changes.WithLabelValues("expired", "failure").Inc()
		p.Error = changeError(err)
		if errors.Is(err, authn.ErrNotProven) {
			p.Error = "The current password is wrong, or the account may not sign in."
		}
		s.render(w, r, http.StatusBadRequest, "expired", p, x.id)
		return
	}
	s.m.changes.WithLabelValues("expired", "success").Inc()
	s.newSession(w, r, nu, "")
	redirect(w, r, "/?changed=1")
}

// invite resolves a link's token to its invite and user, or says why not
// (the reason goes to the log; the person sees msgBadLink).
func (s *Server) invite(token string) (*store.Invite, *store.User, error) {
	if token == "" || len(token) > 100 {
		return nil, nil, errors.New("no token")
	}
	inv, err := s.users.InviteByTokenHash(tokenHash(token))
	if err != nil {
		return nil, nil, err
	}
	if !s.now().Before(inv.ExpiresAt) {
		return nil, nil, errors.New("expired")
	}
	u, err := s.users.UserByID(inv.UserID)
	if err != nil {
		return nil, nil, err
	}
	if u.PasswordVersion != inv.PasswordVersion {
		return nil, nil, errors.New("revoked: the password changed since it was issued")
	}
	if err := activatable(u); err != nil {
		return nil, nil, err
	}
	return inv, u, nil
}

func (s *Server) activateForm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	_, u, err := s.invite(token)
	if err != nil {
		s.render(w, r, http.StatusGone, "error", page{Title: "Link not valid", Error: msgBadLink}, "")
		return
	}
	lines, _ := s.policyLines(u.ID)
	s.render(w, r, http.StatusOK, "activate", page{Title: "Set your password", User: u, Token: token, Policy: lines}, "")
}

func (s *Server) activate(w http.ResponseWriter, r *http.Request) {
	if !s.checkCSRF(w, r, nil) {
		return
	}
	token := r.PostForm.Get("token")
	inv, u, err := s.invite(token)
	if err != nil {
		s.m.changes.WithLabelValues("activation", "failure").Inc()
		s.log.Info("portal: activation link refused", "err", err)
		s.render(w, r, http.StatusGone, "error", page{Title: "Link not valid", Error: msgBadLink}, "")
		return
	}
	lines, ps := s.policyLines(u.ID)
	p := page{Title: "Set your password", User: u, Token: token, Policy: lines}
	pw := secret.FromString(r.PostForm.Get("new"))
	confirm := secret.FromString(r.PostForm.Get("confirm"))
	defer pw.Wipe()
	defer confirm.Wipe()
	if msg := s.checkNew(pw, confirm, ps); msg != "" {
		p.Error = msg
		s.render(w, r, http.StatusBadRequest, "activate", p, "")
		return
	}
	// Consume first: of two submissions of one link only one gets here.
	if _, err := s.users.ConsumeInvite(inv.TokenHash); err != nil {
		s.m.changes.WithLabelValues("activation", "failure").Inc()
		s.render(w, r, http.StatusGone, "error", page{Title: "Link not valid", Error: msgBadLink}, "")
		return
	}
	if err := s.auth.ChangePassword(r.Context(), u.ID, pw, "portal:activation"); err != nil {
		s.m.changes.WithLabelValues("activation", "failure").Inc()
		s.log.Warn("portal: activation could not set the password; the link is used up", "user", u.Username, "err", err)
		p.Error = changeError(err) + " Ask your administrator for a new link."
		s.render(w, r, http.StatusBadRequest, "error", p, "")
		return
	}
	s.m.changes.WithLabelValues("activation", "success").Inc()
	redirect(w, r, "/signin?activated=1")
}
