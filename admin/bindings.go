package admin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gatewayd/gatewayd/store"
)

func (s *Server) listDirectories(w http.ResponseWriter, r *http.Request) error {
	ds, err := s.st.ListDirectories()
	if err != nil {
		return err
	}
	type view struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Paused bool   `json:"paused,omitempty"`
	}
	out := make([]view, len(ds))
	for i, d := range ds {
		out[i] = view{d.Name, d.Type, d.Paused}
	}
	writeJSON(w, http.StatusOK, map[string]any{"directories": out})
	return nil
}

// forgetDirectory drops a directory's bindings and sync state; its remote
// accounts stay as they are (SPEC 4.5). A directory still configured comes
// back, empty, at the next start.
func (s *Server) forgetDirectory(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Forget == nil {
		return &apiError{http.StatusNotImplemented, "this server cannot forget directories"}
	}
	name := r.PathValue("dir")
	f, err := s.cfg.Forget(name)
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{http.StatusNotFound, fmt.Sprintf("the gateway knows no directory %q", name)}
	}
	if err != nil {
		return err
	}
	s.st.Emit(store.Event{Type: store.EventDirectoryForget, Outcome: store.OutcomeSuccess, Source: "admin", Directory: name,
		Detail: fmt.Sprintf("%d bindings, %d sync states", f.Bindings, f.SyncStates)})
	writeJSON(w, http.StatusOK, map[string]any{"directory": name, "bindings": f.Bindings, "sync_states": f.SyncStates})
	return nil
}

func (s *Server) lookupDirectory(name string) (*store.Directory, error) {
	d, err := s.st.DirectoryByName(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("no directory %q is configured (add a [[directory]] block and reload)", name)}
	}
	return d, err
}

// bindUser binds (PUT) or unbinds (DELETE) a user to a directory directly.
func (s *Server) bindUser(bind bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		d, err := s.lookupDirectory(r.PathValue("dir"))
		if err != nil {
			return err
		}
		u, err := s.lookupUser(r.PathValue("user"))
		if err != nil {
			return err
		}
		if err := s.binding(bind, d.Name, store.BindUser, u.ID, u.Username); err != nil {
			return err
		}
		s.audit(store.Event{Type: map[bool]store.EventType{true: store.EventUserBind, false: store.EventUserUnbind}[bind], Directory: d.Name}, u, nil)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) bindGroup(bind bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		d, err := s.lookupDirectory(r.PathValue("dir"))
		if err != nil {
			return err
		}
		g, err := s.lookupGroup(r.PathValue("group"))
		if err != nil {
			return err
		}
		if err := s.binding(bind, d.Name, store.BindGroup, g.ID, g.Name); err != nil {
			return err
		}
		s.audit(store.Event{Type: map[bool]store.EventType{true: store.EventGroupBind, false: store.EventGroupUnbind}[bind], Directory: d.Name}, nil, g)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) binding(bind bool, dir, kind, id, name string) error {
	if bind {
		_, err := s.st.PutBinding(&store.Binding{Directory: dir, Kind: kind, SubjectID: id})
		return err
	}
	err := s.st.DeleteBinding(store.BindingID(dir, kind, id))
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{http.StatusNotFound, fmt.Sprintf("%s %s is not bound to directory %s", kind, name, dir)}
	}
	return err
}

// syncView is one directory's view of a user: how the user is bound and
// what the engine knows of the remote account.
type syncView struct {
	Directory     string     `json:"directory"`
	BoundDirectly bool       `json:"bound_directly"`
	BoundVia      []string   `json:"bound_via_groups,omitempty"`
	RemoteID      string     `json:"remote_id,omitempty"`
	Provisioned   bool       `json:"provisioned"`
	Enabled       bool       `json:"enabled"`
	PushedVersion uint64     `json:"pushed_password_version"`
	PushPending   bool       `json:"password_push_pending"`
	LastPushAt    *time.Time `json:"last_push_at,omitempty"`
	Attempts      int        `json:"attempts"`
	Failed        bool       `json:"failed"`
	LastError     string     `json:"last_error,omitempty"`
}

func (s *Server) userSync(w http.ResponseWriter, r *http.Request) error {
	u, err := s.lookupUser(r.PathValue("user"))
	if err != nil {
		return err
	}
	views := map[string]*syncView{}
	get := func(dir string) *syncView {
		if v, ok := views[dir]; ok {
			return v
		}
		v := &syncView{Directory: dir}
		views[dir] = v
		return v
	}
	bs, err := s.st.BindingsOfSubject(u.ID)
	if err != nil {
		return err
	}
	for _, b := range bs {
		get(b.Directory).BoundDirectly = true
	}
	groups, err := s.st.GroupsOfUser(u.ID)
	if err != nil {
		return err
	}
	for _, g := range groups {
		gbs, err := s.st.BindingsOfSubject(g.ID)
		if err != nil {
			return err
		}
		for _, b := range gbs {
			v := get(b.Directory)
			v.BoundVia = append(v.BoundVia, g.Name)
		}
	}
	states, err := s.st.SyncStatesOfSubject(u.ID)
	if err != nil {
		return err
	}
	for _, st := range states {
		v := get(st.Directory)
		v.RemoteID, v.Provisioned, v.Enabled = st.RemoteID, st.Provisioned, st.Enabled
		v.PushedVersion, v.PushPending, v.LastPushAt = st.PushedVersion, st.PushPending, timePtr(st.LastPushAt)
		v.Attempts, v.Failed, v.LastError = st.Attempts, st.Failed, st.LastError
	}
	out := []*syncView{}
	ds, err := s.st.ListDirectories()
	if err != nil {
		return err
	}
	for _, d := range ds {
		if v, ok := views[d.Name]; ok {
			out = append(out, v)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u.Username, "password_version": u.PasswordVersion, "directories": out})
	return nil
}
