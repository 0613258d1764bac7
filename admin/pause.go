package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gatewayd/gatewayd/store"
)

// DirectoryPause is the answer of the pause and resume routes of a
// directory (SPEC 6.6).
type DirectoryPause struct {
	Directory string `json:"directory"`
	Paused    bool   `json:"paused"`
	// Waiting counts the jobs parked while paused (after a resume: the
	// jobs it put back).
	Waiting int `json:"waiting"`
}

// ADPause is the answer of the pause and resume routes of an [[ad]]
// domain: its import and its write-back directories.
type ADPause struct {
	Domain      string   `json:"domain"`
	Paused      bool     `json:"paused"`
	Import      bool     `json:"import"`      // the domain has an import, now (un)paused
	Directories []string `json:"directories"` // its write-back directories, now (un)paused
}

// pauseDirectory: POST /v1/directories/{dir}/pause and /resume.
func (s *Server) pauseDirectory(paused bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.Pause == nil {
			return &apiError{http.StatusNotImplemented, "this server cannot pause directories"}
		}
		name := r.PathValue("dir")
		if _, err := s.lookupDirectory(name); err != nil {
			return err
		}
		res, err := s.cfg.Pause(name, paused)
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{http.StatusNotFound, fmt.Sprintf("no directory %q is configured", name)}
		}
		if err != nil {
			return err
		}
		s.st.Emit(store.Event{Type: pauseEvent(paused), Outcome: store.OutcomeSuccess, Source: "admin", Directory: name,
			Detail: fmt.Sprintf("%d jobs waiting", res.Waiting)})
		writeJSON(w, http.StatusOK, res)
		return nil
	}
}

// pauseAD: POST /v1/ad/{name}/pause and /resume.
func (s *Server) pauseAD(paused bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.PauseAD == nil {
			return &apiError{http.StatusNotImplemented, "this server cannot pause AD domains"}
		}
		name := r.PathValue("name")
		res, err := s.cfg.PauseAD(name, paused)
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{http.StatusNotFound, err.Error()}
		}
		if err != nil {
			return err
		}
		s.st.Emit(store.Event{Type: pauseEvent(paused), Outcome: store.OutcomeSuccess, Source: "admin", Directory: name,
			Detail: fmt.Sprintf("ad domain: import %v, write-back directories %v", res.Import, res.Directories)})
		writeJSON(w, http.StatusOK, res)
		return nil
	}
}

func pauseEvent(paused bool) store.EventType {
	if paused {
		return store.EventDirectoryPause
	}
	return store.EventDirectoryResume
}
