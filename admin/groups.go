package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gatewayd/gatewayd/store"
)

type createGroupRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req createGroupRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	g, err := s.st.CreateGroup(&store.Group{Name: req.Name, Description: req.Description})
	if err != nil {
		return err
	}
	s.audit(store.Event{Type: store.EventGroupCreate}, nil, g)
	writeJSON(w, http.StatusCreated, viewGroup(g))
	return nil
}

func (s *Server) lookupGroup(ref string) (*store.Group, error) {
	g, err := s.st.GroupByID(ref)
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	g, err = s.st.GroupByName(ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("no group with id or name %q", ref)}
	}
	return g, err
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	gs, next, err := s.st.ListGroups(r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	out := make([]groupView, len(gs))
	for i, g := range gs {
		out[i] = viewGroup(g)
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out, "next": next})
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.lookupGroup(r.PathValue("group"))
	if err != nil {
		return err
	}
	members, err := s.st.MembersOf(g.ID)
	if err != nil {
		return err
	}
	v := viewGroup(g)
	v.Members = make([]string, len(members))
	for i, m := range members {
		v.Members[i] = m.Username
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.lookupGroup(r.PathValue("group"))
	if err != nil {
		return err
	}
	if err := s.st.DeleteGroup(g.ID); err != nil {
		return err
	}
	s.audit(store.Event{Type: store.EventGroupDelete}, nil, g)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) membership(add bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		g, err := s.lookupGroup(r.PathValue("group"))
		if err != nil {
			return err
		}
		u, err := s.lookupUser(r.PathValue("user"))
		if err != nil {
			return err
		}
		typ := store.EventGroupMemberAdd
		if add {
			err = s.st.AddMember(g.ID, u.ID)
		} else {
			typ = store.EventGroupMemberRemove
			err = s.st.RemoveMember(g.ID, u.ID)
			if errors.Is(err, store.ErrNotFound) {
				return &apiError{http.StatusNotFound, fmt.Sprintf("user %s is not a member of group %s", u.Username, g.Name)}
			}
		}
		if err != nil {
			return err
		}
		s.audit(store.Event{Type: typ}, u, g)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) error {
	return s.membership(true)(w, r)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) error {
	return s.membership(false)(w, r)
}

func (s *Server) groupsOf(userID string) ([]groupView, error) {
	gs, err := s.st.GroupsOfUser(userID)
	if err != nil {
		return nil, err
	}
	out := make([]groupView, len(gs))
	for i, g := range gs {
		out[i] = viewGroup(g)
	}
	return out, nil
}
