package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

// listEvents: GET /v1/events?user=&group=&type=&directory=&outcome=&reason=&since=&until=&after=&limit=
// since/until are RFC 3339; after is the "next" cursor of the previous page.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var f store.EventFilter
	var err error
	if f.Limit, err = limitParam(r); err != nil {
		return err
	}
	f.Type = store.EventType(q.Get("type"))
	f.Directory, f.Reason = q.Get("directory"), q.Get("reason")
	switch f.Outcome = q.Get("outcome"); f.Outcome {
	case "", store.OutcomeSuccess, store.OutcomeFailure:
	default:
		return badRequest("outcome must be %s or %s", store.OutcomeSuccess, store.OutcomeFailure)
	}
	if ref := q.Get("user"); ref != "" {
		u, err := s.lookupUser(ref)
		var ae *apiError
		switch {
		case err == nil:
			f.UserID = u.ID
		case errors.As(err, &ae) && ae.status == http.StatusNotFound:
			// A deleted user's events are still there under its id.
			f.UserID = ref
		default:
			return err
		}
	}
	if ref := q.Get("group"); ref != "" {
		g, err := s.lookupGroup(ref)
		var ae *apiError
		switch {
		case err == nil:
			f.GroupID = g.ID
		case errors.As(err, &ae) && ae.status == http.StatusNotFound:
			// Like a user's, a deleted group's events stay under its id.
			f.GroupID = ref
		default:
			return err
		}
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return badRequest("%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
			}
			*dst = t
		}
	}
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseUint(v, 10, 64); err != nil {
			return badRequest("after must be the numeric cursor returned as next")
		}
	}
	evs, next, err := s.st.ListEvents(f)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []store.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "next": next})
	return nil
}
