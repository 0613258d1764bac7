package portal

import (
	"net/http"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

// Sessions live in memory, in this process only: a restart signs
// everyone out, and replicas do not share them.
type session struct {
	id       string
	userID   string // empty for a must-change pre-session
	pv       uint64 // the user's password version at sign-in
	lastSeen time.Time
	created  time.Time
	// mustChange holds what the user typed at a sign-in refused as
	// expired: the page asks for the old and a new password and nothing
	// else is reachable.
	mustChange string
}

func (x *session) idle(now time.Time, timeout time.Duration) bool {
	if x.mustChange != "" && now.Sub(x.created) > mustChangeLife {
		return true
	}
	return now.Sub(x.lastSeen) > timeout
}

func (s *Server) cookieName() string {
	if s.secure {
		return "__Host-gatewayd_session"
	}
	return "gatewayd_session"
}

func (s *Server) preCookieName() string {
	if s.secure {
		return "__Host-gatewayd_csrf"
	}
	return "gatewayd_csrf"
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
}

// newSession starts a session for u (or a must-change pre-session) and
// sets its cookie. Any session the browser had is dropped first (no
// fixation).
func (s *Server) newSession(w http.ResponseWriter, r *http.Request, u *store.User, mustChange string) *session {
	s.dropCookieSession(r)
	now := s.now()
	x := &session{id: randomID(), lastSeen: now, created: now, mustChange: mustChange}
	if u != nil {
		x.userID, x.pv = u.ID, u.PasswordVersion
	}
	s.mu.Lock()
	if len(s.sessions) >= maxSessions {
		for id, o := range s.sessions {
			if o.idle(now, s.cfg.SessionIdleTimeout) {
				delete(s.sessions, id)
			}
		}
		for id := range s.sessions { // still full: drop an arbitrary one
			if len(s.sessions) < maxSessions {
				break
			}
			delete(s.sessions, id)
		}
	}
	s.sessions[x.id] = x
	s.m.sessions.Set(float64(len(s.sessions)))
	s.mu.Unlock()
	s.setCookie(w, s.cookieName(), x.id, 0)
	return x
}

func (s *Server) dropCookieSession(r *http.Request) {
	if c, err := r.Cookie(s.cookieName()); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.m.sessions.Set(float64(len(s.sessions)))
		s.mu.Unlock()
	}
}

// current returns the request's live session, or nil. A signed-in
// session is checked against the user's record on every request, so a
// password change, suspend, lockout or delete ends it even if the store
// notification has not arrived yet.
func (s *Server) current(r *http.Request) (*session, *store.User) {
	c, err := r.Cookie(s.cookieName())
	if err != nil {
		return nil, nil
	}
	now := s.now()
	s.mu.Lock()
	x, ok := s.sessions[c.Value]
	if ok && x.idle(now, s.cfg.SessionIdleTimeout) {
		delete(s.sessions, c.Value)
		ok = false
	}
	if ok {
		x.lastSeen = now
	}
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	if x.userID == "" {
		return x, nil
	}
	u, err := s.users.UserByID(x.userID)
	if err != nil || !sessionValid(u, x.pv, now) {
		s.mu.Lock()
		delete(s.sessions, x.id)
		s.mu.Unlock()
		return nil, nil
	}
	return x, u
}

func sessionValid(u *store.User, pv uint64, now time.Time) bool {
	return u.State == store.StateActive && u.PasswordVersion == pv && !u.Locked(now) &&
		u.PasswordStatus != store.PasswordExpired && u.PasswordStatus != store.PasswordPending
}

// HandleChange ends the sessions of a user whose password changed, who
// was suspended, locked or deleted (subscribe it to the store).
func (s *Server) HandleChange(c store.Change) {
	if c.Table != store.TableUsers {
		return
	}
	var id string
	var after *store.User
	if u, ok := c.After.(*store.User); ok {
		after, id = u, u.ID
	} else if u, ok := c.Before.(*store.User); ok {
		id = u.ID
	}
	if id == "" {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for sid, x := range s.sessions {
		if x.userID == id && (after == nil || !sessionValid(after, x.pv, now)) {
			delete(s.sessions, sid)
		}
	}
	s.m.sessions.Set(float64(len(s.sessions)))
}

// SessionsOf counts a user's sessions (tests).
func (s *Server) SessionsOf(userID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.sessions {
		if x.userID == userID {
			n++
		}
	}
	return n
}
