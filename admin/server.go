// Package admin serves gatewayd's HTTP JSON API (users, groups, events),
// /metrics and /healthz.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// Store is what the API reads and writes.
type Store interface {
	CreateUser(u *store.User) (*store.User, error)
	UpdateUser(id string, fn func(*store.User) error) (*store.User, error)
	DeleteUser(id string) error
	UserByID(id string) (*store.User, error)
	UserByUsername(name string) (*store.User, error)
	UserByEmail(email string) (*store.User, error)
	ListUsers(after string, limit int) ([]*store.User, string, error)
	CreateGroup(g *store.Group) (*store.Group, error)
	DeleteGroup(id string) error
	GroupByID(id string) (*store.Group, error)
	GroupByName(name string) (*store.Group, error)
	ListGroups(after string, limit int) ([]*store.Group, string, error)
	AddMember(groupID, userID string) error
	RemoveMember(groupID, userID string) error
	MembersOf(groupID string) ([]*store.User, error)
	GroupsOfUser(userID string) ([]*store.Group, error)
	ListEvents(f store.EventFilter) ([]store.Event, uint64, error)
	Emit(ev store.Event)
	ListDirectories() ([]*store.Directory, error)
	DirectoryByName(name string) (*store.Directory, error)
	PutBinding(b *store.Binding) (*store.Binding, error)
	DeleteBinding(id string) error
	BindingsOfSubject(subjectID string) ([]*store.Binding, error)
	SyncStatesOfSubject(subjectID string) ([]*store.SyncState, error)
	UpdateSyncState(directory, subjectID string, fn func(*store.SyncState) error) (*store.SyncState, error)
}

// Passwords sets passwords (authn owns hashing and policy).
type Passwords interface {
	ChangePassword(ctx context.Context, userID string, pw secret.String, actor string) error
	// PasswordExpiresAt is when u's password expires (zero: never).
	PasswordExpiresAt(u *store.User) time.Time
	// NameConflict refuses a username/email pair that would make one
	// login name (an email, a UPN) mean two users.
	NameConflict(username, email, selfID string) error
}

// Config is the API's setup.
type Config struct {
	Token secret.String
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Checks are run by /healthz, by name (see HealthCheck and README.md).
	Checks map[string]HealthCheck
	// Importers are the directories users can be imported from, by name.
	Importers map[string]ImportSource
	// Forget makes the daemon forget a directory (SPEC 4.5): the sync
	// engine stops sending to it, then its bindings and sync state are
	// deleted. Nil: the route answers 501.
	Forget func(name string) (store.Forgotten, error)
	// ADImport runs the AD import (adimport.go). Nil: its routes answer 404.
	ADImport ADImporter
	// Invites issues the self-service page's activation links (invite.go).
	// Nil: the route answers 404.
	Invites Inviter
	// Pause pauses (or resumes) a directory's sync work (SPEC 6.6) and
	// returns its state. Nil: the routes answer 501.
	Pause func(name string, paused bool) (*DirectoryPause, error)
	// PauseAD pauses (or resumes) an [[ad]] domain: its import and every
	// write-back directory into it. Nil: the routes answer 501.
	PauseAD func(name string, paused bool) (*ADPause, error)
	Logger  *slog.Logger
	Now     func() time.Time
}

// maxBody bounds every request body; users and groups are small.
const maxBody = 64 << 10

// Server is the admin API handler.
type Server struct {
	st   Store
	pw   Passwords
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	mux  *http.ServeMux
	reqs *prometheus.CounterVec

	health healthLog
}

// New builds the handler; register its metrics with reg (may be nil).
func New(st Store, pw Passwords, cfg Config, reg prometheus.Registerer) *Server {
	s := &Server{st: st, pw: pw, cfg: cfg, log: cfg.Logger, now: cfg.Now, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatewayd_admin_requests_total", Help: "Admin API requests by route and status code.",
	}, []string{"route", "code"})
	if reg != nil {
		reg.MustRegister(s.reqs)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	if s.cfg.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	s.handle("POST /v1/users", s.createUser)
	s.handle("GET /v1/users", s.listUsers)
	s.handle("GET /v1/users/{user}", s.getUser)
	s.handle("PATCH /v1/users/{user}", s.updateUser)
	s.handle("DELETE /v1/users/{user}", s.deleteUser)
	s.handle("POST /v1/users/{user}/suspend", s.setState(store.StateSuspended))
	s.handle("POST /v1/users/{user}/unsuspend", s.setState(store.StateActive))
	s.handle("POST /v1/users/{user}/unlock", s.unlockUser)
	s.handle("POST /v1/users/{user}/invite", s.inviteUser)
	s.handle("PUT /v1/users/{user}/password", s.setPassword)
	s.handle("GET /v1/users/{user}/groups", s.userGroups)
	s.handle("POST /v1/groups", s.createGroup)
	s.handle("GET /v1/groups", s.listGroups)
	s.handle("GET /v1/groups/{group}", s.getGroup)
	s.handle("DELETE /v1/groups/{group}", s.deleteGroup)
	s.handle("PUT /v1/groups/{group}/members/{user}", s.addMember)
	s.handle("DELETE /v1/groups/{group}/members/{user}", s.removeMember)
	s.handle("GET /v1/events", s.listEvents)
	s.handle("GET /v1/directories", s.listDirectories)
	s.handle("DELETE /v1/directories/{dir}", s.forgetDirectory)
	s.handle("POST /v1/directories/{dir}/pause", s.pauseDirectory(true))
	s.handle("POST /v1/directories/{dir}/resume", s.pauseDirectory(false))
	s.handle("PUT /v1/directories/{dir}/users/{user}", s.bindUser(true))
	s.handle("DELETE /v1/directories/{dir}/users/{user}", s.bindUser(false))
	s.handle("PUT /v1/directories/{dir}/groups/{group}", s.bindGroup(true))
	s.handle("DELETE /v1/directories/{dir}/groups/{group}", s.bindGroup(false))
	s.handle("GET /v1/users/{user}/sync", s.userSync)
	s.handle("GET /v1/directories/{dir}/import", s.listImportable)
	s.handle("POST /v1/directories/{dir}/import", s.importUsers)
	s.adRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (the API lives under /v1/)", r.Method, r.URL.Path))
	})
}

// apiError carries a status with a message a person can act on.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle wraps a handler with the token check, panic recovery and error
// rendering, and counts the request by its route pattern.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("admin handler panic", "route", pattern, "panic", p)
				writeError(rec, http.StatusInternalServerError, "internal error; see the gatewayd log")
			}
			s.reqs.WithLabelValues(pattern, strconv.Itoa(rec.code)).Inc()
		}()
		if !s.authorized(r) {
			rec.Header().Set("WWW-Authenticate", `Bearer realm="gatewayd"`)
			writeError(rec, http.StatusUnauthorized, "missing or wrong bearer token (the token is in the file named by [admin] token_file)")
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, maxBody)
		if err := s.catchUp(r); err != nil {
			s.renderError(rec, r, err)
			return
		}
		if err := h(rec, r); err != nil {
			s.renderError(rec, r, err)
		}
	})
}

// catchingUp is a store shared by several replicas (PostgreSQL): CatchUp
// applies what the others committed before the call.
type catchingUp interface {
	CatchUp(ctx context.Context) error
}

// catchUp makes a write see every write acknowledged before it on any
// replica: behind a load balancer, a user created on one replica and
// then added to a group through another was not found there yet. A write
// that cannot catch up fails (503 when the database is away). Reads are
// served from this replica's view as it stands, like logins: they see
// another replica's write once it has been followed (milliseconds).
func (s *Server) catchUp(r *http.Request) error {
	c, ok := s.st.(catchingUp)
	if !ok || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	return c.CatchUp(r.Context())
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || s.cfg.Token.IsEmpty() {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(tok), s.cfg.Token.Bytes()) == 1
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.msg)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, store.ErrInvalid), errors.Is(err, authn.ErrWeakPassword):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, authn.ErrAuthorityAD), errors.Is(err, authn.ErrNameConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, authn.ErrBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		// PostgreSQL is away: nothing was changed, and logins go on.
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the write was not made: "+err.Error())
	default:
		s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error: "+err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads exactly one JSON object with no unknown fields.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &apiError{http.StatusUnsupportedMediaType, "send the body as application/json"}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("the request needs a JSON body")
		}
		return badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("the body must hold a single JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("unexpected data after the JSON object")
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// limitParam parses ?limit= (default 100, at most 1000).
func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, badRequest("limit must be a number from 1 to 1000")
	}
	return n, nil
}
