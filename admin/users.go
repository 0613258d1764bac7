package admin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

type createUserRequest struct {
	Username         string            `json:"username"`
	Email            string            `json:"email"`
	FirstName        string            `json:"first_name"`
	LastName         string            `json:"last_name"`
	DisplayName      string            `json:"display_name"`
	Attributes       map[string]string `json:"attributes"`
	State            store.State       `json:"state"`
	ServiceAccount   bool              `json:"service_account"`
	PasswordResetter bool              `json:"password_resetter"`
}

// updateUserRequest: absent fields are left alone.
type updateUserRequest struct {
	Username    *string            `json:"username"`
	Email       *string            `json:"email"`
	FirstName   *string            `json:"first_name"`
	LastName    *string            `json:"last_name"`
	DisplayName *string            `json:"display_name"`
	Attributes  *map[string]string `json:"attributes"`
	// AttributeChanges sets the attributes given and removes those whose
	// value is null or "", leaving the others as they are.
	AttributeChanges   map[string]*string `json:"attribute_changes"`
	State              *store.State       `json:"state"`
	PasswordStatus     *string            `json:"password_status"`
	PasswordAuthority  *string            `json:"password_authority"`
	DelegatedAuthority *string            `json:"delegated_authority"`
	ServiceAccount     *bool              `json:"service_account"`
	PasswordResetter   *bool              `json:"password_resetter"`
}

type passwordRequest struct {
	Password string `json:"password"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var req createUserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	switch req.State {
	case "", store.StateActive, store.StateStaged:
	default:
		return badRequest("state must be active or staged at creation (suspend an existing user with POST /v1/users/{user}/suspend)")
	}
	if err := s.pw.NameConflict(req.Username, req.Email, ""); err != nil {
		return err
	}
	u, err := s.st.CreateUser(&store.User{
		Username: req.Username, Email: req.Email, FirstName: req.FirstName, LastName: req.LastName,
		DisplayName: req.DisplayName, Attributes: req.Attributes, State: req.State,
		PasswordStatus: store.PasswordPending, ServiceAccount: req.ServiceAccount, PasswordResetter: req.PasswordResetter,
	})
	if err != nil {
		return err
	}
	s.audit(store.Event{Type: store.EventUserCreate}, u, nil)
	writeJSON(w, http.StatusCreated, s.viewUser(u, s.now()))
	return nil
}

// lookupUser accepts an id or a username in the path.
func (s *Server) lookupUser(ref string) (*store.User, error) {
	u, err := s.st.UserByID(ref)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	u, err = s.st.UserByUsername(ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("no user with id or username %q", ref)}
	}
	return u, err
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.viewUser(u, s.now()))
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	users, next, err := s.st.ListUsers(r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	now := s.now()
	out := make([]userView, len(users))
	for i, u := range users {
		out[i] = s.viewUser(u, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "next": next})
	return nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	var req updateUserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	if req.Attributes != nil && req.AttributeChanges != nil {
		return badRequest("send attributes (the whole set) or attribute_changes (some of them), not both")
	}
	if req.PasswordStatus != nil {
		switch store.PasswordStatus(*req.PasswordStatus) {
		case store.PasswordExpired, store.PasswordPending, store.PasswordActive, store.PasswordDelegated:
		default:
			return badRequest("password_status can be set to active, pending, expired or delegated (use POST .../unlock to clear a lock)")
		}
	}
	if req.Username != nil || req.Email != nil {
		name, email := u.Username, u.Email
		set(&name, req.Username)
		set(&email, req.Email)
		if err := s.pw.NameConflict(name, email, u.ID); err != nil {
			return err
		}
	}
	nu, err := s.st.UpdateUser(u.ID, func(x *store.User) error {
		set(&x.Username, req.Username)
		set(&x.Email, req.Email)
		set(&x.FirstName, req.FirstName)
		set(&x.LastName, req.LastName)
		set(&x.DisplayName, req.DisplayName)
		set(&x.Attributes, req.Attributes)
		for k, v := range req.AttributeChanges {
			if v == nil || *v == "" {
				delete(x.Attributes, k)
				continue
			}
			if x.Attributes == nil {
				x.Attributes = map[string]string{}
			}
			x.Attributes[k] = *v
		}
		set(&x.State, req.State)
		set(&x.PasswordAuthority, req.PasswordAuthority)
		set(&x.DelegatedAuthority, req.DelegatedAuthority)
		set(&x.ServiceAccount, req.ServiceAccount)
		set(&x.PasswordResetter, req.PasswordResetter)
		if req.PasswordStatus != nil {
			if store.PasswordStatus(*req.PasswordStatus) == store.PasswordActive && x.PasswordHash == "" {
				return badRequest("the user has no password yet: set one with PUT /v1/users/{user}/password")
			}
			x.PasswordStatus = store.PasswordStatus(*req.PasswordStatus)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.audit(store.Event{Type: store.EventUserUpdate}, nu, nil)
	writeJSON(w, http.StatusOK, s.viewUser(nu, s.now()))
	return nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	if err := s.st.DeleteUser(u.ID); err != nil {
		return err
	}
	s.audit(store.Event{Type: store.EventUserDelete}, u, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setState(state store.State) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		u, err := s.lookupUser(r.PathValue("user"))
		if err != nil {
			return err
		}
		nu, err := s.st.UpdateUser(u.ID, func(x *store.User) error {
			x.State = state
			return nil
		})
		if err != nil {
			return err
		}
		typ := store.EventUserSuspend
		if state == store.StateActive {
			typ = store.EventUserUnsuspend
		}
		s.audit(store.Event{Type: typ}, nu, nil)
		writeJSON(w, http.StatusOK, s.viewUser(nu, s.now()))
		return nil
	}
}

func (s *Server) unlockUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	nu, err := s.st.UpdateUser(u.ID, func(x *store.User) error {
		x.LockedUntil = time.Time{}
		return nil
	})
	if err != nil {
		return err
	}
	s.audit(store.Event{Type: store.EventUserUnlock}, nu, nil)
	writeJSON(w, http.StatusOK, s.viewUser(nu, s.now()))
	return nil
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) error {
	var req passwordRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	pw := secret.FromString(req.Password)
	defer pw.Wipe()
	if pw.IsEmpty() {
		return badRequest(`the body needs {"password": "..."}`)
	}
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	if err := s.pw.ChangePassword(r.Context(), u.ID, pw, "admin"); err != nil {
		return err
	}
	nu, err := s.st.UserByID(u.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.viewUser(nu, s.now()))
	return nil
}

func (s *Server) userGroups(w http.ResponseWriter, r *http.Request) error {
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	gs, err := s.groupsOf(u.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": gs})
	return nil
}

// audit records a change made through the API: ev names its type and
// anything else it touched (a directory, a detail); u and g, when not nil,
// are the user and the group it was about.
func (s *Server) audit(ev store.Event, u *store.User, g *store.Group) {
	ev.Outcome, ev.Source = store.OutcomeSuccess, "admin"
	if u != nil {
		ev.UserID, ev.Username = u.ID, u.Username
	}
	if g != nil {
		ev.GroupID, ev.Group = g.ID, g.Name
	}
	s.st.Emit(ev)
}
