package fakegraph

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatewayd/gatewayd/internal/fakehttp"
)

// KindManager is GET /v1.0/users/{id}/manager and
// PUT / DELETE /v1.0/users/{id}/manager/$ref.
const KindManager = "manager"

// MsgInvalidProperty is Graph's answer to a property the user resource
// does not have (or, with RefuseProperty, one the tenant refuses).
const MsgInvalidProperty = "Invalid property '%s'."

// MsgInvalidValues is Graph's answer when it does not say which property
// it refused (RefuseProperty with named false).
const MsgInvalidValues = "One or more properties contains invalid values."

// RefuseProperty makes every POST or PATCH of /users carrying property p
// answer 400 Request_BadRequest, as a tenant does for a property it does
// not accept (an extension not registered, a value its policy refuses).
// named true words it "Invalid property 'p'."; false answers Graph's
// generic "One or more properties contains invalid values.", which names
// none. p "manager" refuses PUT manager/$ref the same way.
// RefuseProperty(p, ...) after AcceptProperty(p) refuses it again.
func (s *Server) RefuseProperty(p string, named bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused = map[string]bool{}
	}
	s.refused[p] = named
}

// AcceptProperty undoes RefuseProperty.
func (s *Server) AcceptProperty(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refused, p)
}

// refusal is the 400 for a refused property. mu held.
func (s *Server) refusal(p string) (*apiErr, bool) {
	named, ok := s.refused[p]
	if !ok {
		return nil, false
	}
	if named {
		return &apiErr{http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf(MsgInvalidProperty, p)}, true
	}
	return &apiErr{http.StatusBadRequest, "Request_BadRequest", MsgInvalidValues}, true
}

// Manager returns the object id of a user's manager ("" for none) and
// whether the user exists.
func (s *Server) Manager(idOrUPN string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.lookup(idOrUPN)
	if u == nil {
		return "", false
	}
	return u.ManagerID, true
}

// userSub splits /v1.0/users/{key}/... (or /v1.0/users('{key}')/...)
// into the key and the rest of the (unescaped) segments; ok false for a
// path that is not under one user.
func userSub(segs []string) (key string, rest []string, ok bool) {
	switch {
	case len(segs) >= 3 && segs[0] == "v1.0" && segs[1] == "users":
		k, err := url.PathUnescape(segs[2])
		if err != nil {
			return "", nil, false
		}
		key, rest = k, segs[3:]
	case len(segs) >= 2 && segs[0] == "v1.0" && strings.HasPrefix(segs[1], "users("):
		k, err := userKey(segs[:2])
		if err != nil {
			return "", nil, false
		}
		key, rest = k, segs[2:]
	default:
		return "", nil, false
	}
	out := make([]string, len(rest))
	for i, r := range rest {
		v, err := url.PathUnescape(r)
		if err != nil {
			return "", nil, false
		}
		out[i] = v
	}
	return key, out, true
}

// managerKind classifies /users/{key}/manager[/$ref].
func managerKind(segs []string) bool {
	_, rest, ok := userSub(segs)
	return ok && (len(rest) == 1 && rest[0] == "manager" || len(rest) == 2 && rest[0] == "manager" && rest[1] == "$ref")
}

func noManager() *fakehttp.Response {
	return errResp(http.StatusNotFound, "Request_ResourceNotFound",
		"Resource 'manager' does not exist or one of its queried reference-property objects are not present.")
}

// serveManager answers the manager endpoints. mu held.
func (s *Server) serveManager(r *http.Request, segs []string, body []byte) *fakehttp.Response {
	key, rest, _ := userSub(segs)
	u := s.lookup(key)
	if u == nil {
		return notFound(key)
	}
	ref := len(rest) == 2
	switch {
	case !ref && r.Method == http.MethodGet:
		m := s.users[u.ManagerID]
		if m == nil {
			return noManager()
		}
		out := render(m, defaultSelect)
		out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#directoryObjects/$entity"
		out["@odata.type"] = "#microsoft.graph.user"
		return jsonResp(http.StatusOK, out)
	case ref && r.Method == http.MethodPut:
		if ae, ok := s.refusal("manager"); ok {
			return errResp(ae.status, ae.code, ae.message)
		}
		var in struct {
			ID string `json:"@odata.id"`
		}
		if json.Unmarshal(body, &in) != nil || in.ID == "" {
			return errResp(http.StatusBadRequest, "Request_BadRequest", "Invalid request body: the @odata.id of the reference is missing.")
		}
		mid, ok := s.refTarget(in.ID)
		if !ok {
			return errResp(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid object identifier '%s'.", in.ID))
		}
		m := s.users[mid]
		if m == nil {
			return notFound(mid)
		}
		if m.ID == u.ID {
			return errResp(http.StatusBadRequest, "Request_BadRequest", "A user cannot be their own manager.")
		}
		if u.OnPremisesSyncEnabled {
			return errResp(http.StatusBadRequest, "Request_BadRequest", MsgOnPrem)
		}
		u.ManagerID = m.ID
		return &fakehttp.Response{Status: http.StatusNoContent}
	case ref && r.Method == http.MethodDelete:
		if u.ManagerID == "" {
			return noManager()
		}
		u.ManagerID = ""
		return &fakehttp.Response{Status: http.StatusNoContent}
	}
	return errResp(http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not allowed for this resource.")
}

// refTarget reads the object id of an @odata.id: this fake's (or
// Graph's) .../v1.0/users/{id} or .../v1.0/directoryObjects/{id}.
func (s *Server) refTarget(odataID string) (string, bool) {
	u, err := url.Parse(odataID)
	if err != nil || u.Host == "" {
		return "", false
	}
	segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	if len(segs) != 3 || segs[0] != "v1.0" || (segs[1] != "users" && segs[1] != "directoryObjects") {
		return "", false
	}
	id, err := url.PathUnescape(segs[2])
	if err != nil || id == "" {
		return "", false
	}
	return id, true
}
