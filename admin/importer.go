package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

// ImportSource is a directory users can be imported from (SPEC 4.7).
type ImportSource struct {
	Lister interface {
		ListUsers(ctx context.Context, pageToken string) ([]gwsync.ImportUser, string, error)
	}
	// State of imported users: active or staged.
	State store.State
}

type importUserView struct {
	ID          string `json:"id"`
	UPN         string `json:"upn"`
	Mail        string `json:"mail,omitempty"`
	Username    string `json:"username"`
	GivenName   string `json:"given_name,omitempty"`
	Surname     string `json:"surname,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	// Exists: a gateway user already has this email.
	Exists bool `json:"exists"`
}

func (s *Server) importSource(name string) (ImportSource, error) {
	src, ok := s.cfg.Importers[name]
	if !ok {
		return ImportSource{}, &apiError{http.StatusNotFound, fmt.Sprintf("directory %q does not support import (only configured Entra ID directories do)", name)}
	}
	return src, nil
}

// importEmail and importUsername apply SPEC 4.7's naming: the email is the
// mail attribute or else the UPN; the username is mailNickname or else the
// email's local part.
func importEmail(u gwsync.ImportUser) string {
	if u.Mail != "" {
		return u.Mail
	}
	return u.UPN
}

func importUsername(u gwsync.ImportUser) string {
	if u.MailNickname != "" {
		return u.MailNickname
	}
	e := importEmail(u)
	if at := strings.IndexByte(e, '@'); at > 0 {
		return e[:at]
	}
	return e
}

// listImportable: GET /v1/directories/{dir}/import?page=TOKEN
func (s *Server) listImportable(w http.ResponseWriter, r *http.Request) error {
	src, err := s.importSource(r.PathValue("dir"))
	if err != nil {
		return err
	}
	users, next, err := src.Lister.ListUsers(r.Context(), r.URL.Query().Get("page"))
	if err != nil {
		return &apiError{http.StatusBadGateway, "listing the directory's users failed: " + err.Error()}
	}
	out := make([]importUserView, len(users))
	for i, u := range users {
		_, exists := s.emailTaken(importEmail(u))
		out[i] = importUserView{ID: u.ID, UPN: u.UPN, Mail: u.Mail, Username: importUsername(u), GivenName: u.GivenName,
			Surname: u.Surname, DisplayName: u.DisplayName, Exists: exists}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "next": next})
	return nil
}

func (s *Server) emailTaken(email string) (*store.User, bool) {
	u, err := s.st.UserByEmail(email)
	return u, err == nil
}

type importRequest struct {
	// Users are UPNs or remote ids of the directory's enabled users.
	Users []string `json:"users"`
	// Bind binds each imported user to the directory (default true), so
	// the existing account is taken over at the next login.
	Bind *bool `json:"bind"`
}

type importResult struct {
	User     string `json:"user"`
	Result   string `json:"result"` // imported | failed
	Username string `json:"username,omitempty"`
	Message  string `json:"message,omitempty"`
}

// importUsers: POST /v1/directories/{dir}/import {"users": [...]}
func (s *Server) importUsers(w http.ResponseWriter, r *http.Request) error {
	dir := r.PathValue("dir")
	src, err := s.importSource(dir)
	if err != nil {
		return err
	}
	var req importRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Users) == 0 || len(req.Users) > 1000 {
		return badRequest("name 1 to 1000 users (UPN or id) in \"users\"")
	}
	wanted := map[string]bool{}
	for _, u := range req.Users {
		wanted[strings.ToLower(u)] = true
	}
	found := map[string]gwsync.ImportUser{}
	page := ""
	for range 1000 { // pages; bounded so a looping nextLink cannot spin forever
		users, next, err := src.Lister.ListUsers(r.Context(), page)
		if err != nil {
			return &apiError{http.StatusBadGateway, "listing the directory's users failed: " + err.Error()}
		}
		for _, u := range users {
			for _, key := range []string{strings.ToLower(u.UPN), strings.ToLower(u.ID)} {
				if wanted[key] {
					found[key] = u
				}
			}
		}
		if next == "" || len(found) == len(wanted) {
			break
		}
		page = next
	}
	bind := req.Bind == nil || *req.Bind
	results := make([]importResult, 0, len(req.Users))
	for _, ref := range req.Users {
		res := importResult{User: ref, Result: "failed"}
		u, ok := found[strings.ToLower(ref)]
		switch {
		case !ok:
			res.Message = "not found among the directory's enabled users"
		case u.GivenName == "" || u.Surname == "":
			res.Message = "missing name: the directory has no first or last name for this user"
		default:
			res.Username = importUsername(u)
			if err := s.pw.NameConflict(res.Username, importEmail(u), ""); err != nil {
				res.Message = err.Error()
				break
			}
			nu, err := s.st.CreateUser(&store.User{Username: res.Username, Email: importEmail(u), FirstName: u.GivenName,
				LastName: u.Surname, DisplayName: u.DisplayName, State: src.State, PasswordStatus: store.PasswordPending})
			switch {
			case errors.Is(err, store.ErrConflict) && strings.Contains(err.Error(), "email"):
				res.Message = "email exists: " + err.Error()
			case errors.Is(err, store.ErrConflict):
				res.Message = "username taken: " + err.Error()
			case err != nil:
				res.Message = err.Error()
			default:
				res.Result = "imported"
				s.audit(store.Event{Type: store.EventUserImport, Directory: dir}, nu, nil)
				if bind {
					if err := s.bindImported(dir, nu.ID); err != nil {
						res.Message = "imported, but binding failed: " + err.Error()
					}
				}
			}
		}
		results = append(results, res)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
}

// bindImported binds an imported user so the engine takes the account
// over without touching its sign-in state: the user is staged or has no
// password yet, and disabling the account they sign in with today would
// lock them out of the directory. Their first gateway login or activation
// takes over for real. The mark goes first, so the engine never sees the
// binding without it.
func (s *Server) bindImported(dir, userID string) error {
	if _, err := s.st.UpdateSyncState(dir, userID, func(st *store.SyncState) error {
		st.Kind, st.KeepSignIn = store.BindUser, true
		return nil
	}); err != nil {
		return err
	}
	_, err := s.st.PutBinding(&store.Binding{Directory: dir, Kind: store.BindUser, SubjectID: userID})
	return err
}
