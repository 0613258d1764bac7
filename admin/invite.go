package admin

import (
	"net/http"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

// Inviter issues one-time activation links for the self-service page
// (SPEC 9.1). The portal implements it; nil: the route answers 404.
type Inviter interface {
	// Invite returns the link and when it expires; ttl 0 is the page's
	// default. Errors wrap store.ErrNotFound, ErrConflict (staged, suspended,
	// AD-managed user) or ErrInvalid (ttl out of range).
	Invite(userID string, ttl time.Duration) (link string, expires time.Time, err error)
}

type inviteRequest struct {
	TTL string `json:"ttl"`
}

// inviteUser is POST /v1/users/{user}/invite, body {"ttl": "72h"} optional.
func (s *Server) inviteUser(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Invites == nil {
		return &apiError{http.StatusNotFound, "the self-service page is not configured (no [portal] listen)"}
	}
	var req inviteRequest
	if r.ContentLength != 0 { // the body is optional
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return badRequest("ttl %q is not a duration (write 72h)", req.TTL)
		}
		ttl = d
	}
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	link, exp, err := s.cfg.Invites.Invite(u.ID, ttl)
	if err != nil {
		return err
	}
	s.audit(store.Event{Type: store.EventUserInvite, Detail: "expires " + exp.Format(time.RFC3339)}, u, nil)
	writeJSON(w, http.StatusOK, map[string]any{"url": link, "expires_at": exp})
	return nil
}
