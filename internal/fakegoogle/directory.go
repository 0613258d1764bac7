package fakegoogle

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/internal/fakehttp"
	"github.com/gatewayd/gatewayd/internal/sha512crypt"
)

// Directory API messages, as Google words them.
const (
	MsgNotAuthorized     = "Not Authorized to access this resource/api"
	MsgInsufficientScope = "Request had insufficient authentication scopes."
	MsgInvalidCreds      = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	MsgRateLimit         = "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'admin.googleapis.com'."
	MsgUnavailable       = "The service is currently unavailable."
	MsgExists            = "Entity already exists."
	MsgMemberExists      = "Member already exists."
	MsgInvalidPassword   = "Invalid Password"
	MsgDomainNotFound    = "Domain not found."
)

const contentType = "application/json; charset=UTF-8"

func errResp(status int, reason, message string) *fakehttp.Response {
	return fakehttp.JSON(status, contentType, googleError(status, reason, message))
}

func jsonResp(status int, v any) *fakehttp.Response {
	return fakehttp.JSON(status, contentType, v)
}

func notFound(what string) *fakehttp.Response {
	return errResp(http.StatusNotFound, "notFound", "Resource Not Found: "+what)
}

func (s *Server) serveDirectory(w http.ResponseWriter, r *http.Request, kind string, segs []string, body []byte) {
	if s.hooks.Delay(r.Context()) != nil {
		return
	}
	s.mu.Lock()
	rs := s.directory(r, kind, segs, body)
	s.mu.Unlock()
	rs.Write(w)
}

// directory decides the answer to one Directory API call. mu held.
func (s *Server) directory(r *http.Request, kind string, segs []string, body []byte) *fakehttp.Response {
	now := s.now()
	tok, err := s.tokens.Check(r)
	if err != nil {
		rs := errResp(http.StatusUnauthorized, "authError", MsgInvalidCreds)
		rs.Header.Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		return rs
	}
	if _, down := s.hooks.Down(); down {
		return errResp(http.StatusServiceUnavailable, "backendError", MsgUnavailable)
	}
	if f, ok := s.hooks.TakeFault(r.Method, kind); ok {
		reason := f.Code
		if reason == "" {
			reason = "backendError"
		}
		msg := f.Message
		if msg == "" {
			msg = http.StatusText(f.Status)
		}
		rs := errResp(f.Status, reason, msg)
		if f.RetryAfter > 0 {
			rs.Header.Set("Retry-After", fakehttp.RetryAfter(f.RetryAfter))
		}
		return rs
	}
	if retryAfter, ok := s.hooks.TakeThrottle(); ok {
		rs := errResp(http.StatusTooManyRequests, "rateLimitExceeded", MsgRateLimit)
		rs.Header.Set("Retry-After", fakehttp.RetryAfter(retryAfter))
		return rs
	}
	if !tok.admin {
		return errResp(http.StatusForbidden, "forbidden", MsgNotAuthorized)
	}
	switch kind {
	case KindUsers, KindUser:
		if !tok.scopes[ScopeUser] && !(r.Method == http.MethodGet && tok.scopes[ScopeUser+".readonly"]) {
			return errResp(http.StatusForbidden, "insufficientPermissions", MsgInsufficientScope)
		}
	case KindGroups, KindGroup:
		if !tok.scopes[ScopeGroup] {
			return errResp(http.StatusForbidden, "insufficientPermissions", MsgInsufficientScope)
		}
	case KindMembers, KindMember:
		if !tok.scopes[ScopeGroup] && !tok.scopes[ScopeGroupMember] {
			return errResp(http.StatusForbidden, "insufficientPermissions", MsgInsufficientScope)
		}
	}

	q := r.URL.Query()
	switch kind {
	case KindUsers:
		switch r.Method {
		case http.MethodGet:
			return s.listUsers(q)
		case http.MethodPost:
			return s.insertUser(body, now)
		}
	case KindUser:
		switch r.Method {
		case http.MethodGet:
			if u := s.lookupUser(segs[1]); u != nil {
				return jsonResp(http.StatusOK, s.renderUser(u))
			}
			return notFound("userKey")
		case http.MethodPatch, http.MethodPut:
			return s.patchUser(segs[1], body)
		case http.MethodDelete:
			u := s.lookupUser(segs[1])
			if u == nil {
				return notFound("userKey")
			}
			s.removeUser(u)
			return &fakehttp.Response{Status: http.StatusNoContent}
		}
	case KindGroups:
		switch r.Method {
		case http.MethodGet:
			return s.listGroups(q)
		case http.MethodPost:
			return s.insertGroupAPI(body)
		}
	case KindGroup:
		g := s.lookupGroup(segs[1])
		if g == nil {
			return notFound("groupKey")
		}
		switch r.Method {
		case http.MethodGet:
			return jsonResp(http.StatusOK, s.renderGroup(g))
		case http.MethodDelete:
			s.removeGroup(g)
			return &fakehttp.Response{Status: http.StatusNoContent}
		}
	case KindMembers:
		g := s.lookupGroup(segs[1])
		if g == nil {
			return notFound("groupKey")
		}
		switch r.Method {
		case http.MethodGet:
			return s.listMembers(g, q)
		case http.MethodPost:
			return s.insertMember(g, body)
		}
	case KindMember:
		g := s.lookupGroup(segs[1])
		if g == nil {
			return notFound("groupKey")
		}
		u := s.lookupUser(segs[3])
		i := -1
		if u != nil {
			i = s.memberIndex(g.ID, u.ID)
		}
		if i < 0 {
			return notFound("memberKey")
		}
		switch r.Method {
		case http.MethodGet:
			return jsonResp(http.StatusOK, renderMember(s.members[g.ID][i]))
		case http.MethodDelete:
			ms := s.members[g.ID]
			s.members[g.ID] = append(ms[:i:i], ms[i+1:]...)
			return &fakehttp.Response{Status: http.StatusNoContent}
		}
	default:
		return errResp(http.StatusNotFound, "notFound", "Not Found")
	}
	return errResp(http.StatusMethodNotAllowed, "httpMethodNotAllowed", "Method not allowed")
}

// ---- users ----------------------------------------------------------------------

// coreUserFields are held in User's own fields; the others go to Fields.
var coreUserFields = map[string]bool{
	"primaryEmail": true, "name": true, "suspended": true, "password": true, "hashFunction": true,
	"changePasswordAtNextLogin": true, "orgUnitPath": true, "id": true, "kind": true, "etag": true,
	"isAdmin": true, "creationTime": true, "aliases": true, "customerId": true,
}

func decodeBody(body []byte) (map[string]any, *fakehttp.Response) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, errResp(http.StatusBadRequest, "parseError", "Invalid JSON payload received.")
	}
	return m, nil
}

// checkPassword validates a body's password: only a SHA-512 crypt hash
// with hashFunction "crypt" (at most MaxCryptRounds) is accepted; any
// other password counts as plaintext seen. mu held.
func (s *Server) checkPassword(m map[string]any, required bool) (string, bool, *fakehttp.Response) {
	v, has := m["password"]
	if !has {
		if _, hf := m["hashFunction"]; hf {
			return "", false, errResp(http.StatusBadRequest, "invalid", MsgInvalidPassword)
		}
		if required {
			return "", false, errResp(http.StatusBadRequest, "invalid", MsgInvalidPassword)
		}
		return "", false, nil
	}
	pw, _ := v.(string)
	hf, _ := m["hashFunction"].(string)
	if hf != hashCrypt {
		s.plaintextSeen++
		return "", false, errResp(http.StatusBadRequest, "invalid",
			MsgInvalidPassword+" (fakegoogle accepts a password only as a $6$ hash with hashFunction \"crypt\")")
	}
	if sha512crypt.Validate(pw) != nil {
		return "", false, errResp(http.StatusBadRequest, "invalid", MsgInvalidPassword)
	}
	if n, err := sha512crypt.Rounds(pw); err != nil || n > MaxCryptRounds {
		return "", false, errResp(http.StatusBadRequest, "invalid", MsgInvalidPassword)
	}
	return pw, true, nil
}

func (s *Server) domainOK(email string) bool {
	if len(s.domains) == 0 {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	dom := strings.ToLower(email[at+1:])
	for _, d := range s.domains {
		if d == dom {
			return true
		}
	}
	return false
}

func validEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	return at > 0 && at < len(e)-1 && !strings.ContainsAny(e, " \t\r\n")
}

// nameField reads name.givenName / name.familyName: present, and
// whether valid (1–60 characters).
func nameField(name map[string]any, key string) (string, bool, bool) {
	v, has := name[key]
	if !has {
		return "", false, true
	}
	s, _ := v.(string)
	s = strings.TrimSpace(s)
	return s, true, s != "" && utf8.RuneCountInString(s) <= 60 && !strings.ContainsAny(s, "<>=")
}

func badName(which string) *fakehttp.Response {
	return errResp(http.StatusBadRequest, "invalid", "Invalid Given/Family Name: "+which)
}

func (s *Server) insertUser(body []byte, now time.Time) *fakehttp.Response {
	m, rs := decodeBody(body)
	if rs != nil {
		return rs
	}
	if rs := s.checkFields(m); rs != nil {
		return rs
	}
	hash, _, rs := s.checkPassword(m, true)
	if rs != nil {
		return rs
	}
	email, _ := m["primaryEmail"].(string)
	if !validEmail(email) {
		return errResp(http.StatusBadRequest, "invalid", "Invalid Input: primary_user_email")
	}
	if !s.domainOK(email) {
		return errResp(http.StatusBadRequest, "notFound", MsgDomainNotFound)
	}
	name, _ := m["name"].(map[string]any)
	given, _, gok := nameField(name, "givenName")
	family, _, fok := nameField(name, "familyName")
	if !gok || given == "" {
		return badName("GivenName")
	}
	if !fok || family == "" {
		return badName("FamilyName")
	}
	if s.emailTaken(email) {
		return errResp(http.StatusConflict, "duplicate", MsgExists)
	}
	u := &User{
		ID:           newUserID(),
		PrimaryEmail: email,
		GivenName:    given,
		FamilyName:   family,
		OrgUnitPath:  "/",
		CreationTime: now.UTC().Truncate(time.Millisecond),
		PasswordHash: hash,
		HashFunction: hashCrypt,
	}
	u.Suspended, _ = m["suspended"].(bool)
	u.ChangePasswordAtNextLogin, _ = m["changePasswordAtNextLogin"].(bool)
	if ou, _ := m["orgUnitPath"].(string); ou != "" {
		u.OrgUnitPath = ou
	}
	for k, v := range m {
		if !coreUserFields[k] && v != nil {
			if u.Fields == nil {
				u.Fields = map[string]any{}
			}
			u.Fields[k] = v
		}
	}
	s.addUserLocked(u)
	return jsonResp(http.StatusOK, s.renderUser(u))
}

func (s *Server) patchUser(key string, body []byte) *fakehttp.Response {
	u := s.lookupUser(key)
	if u == nil {
		return notFound("userKey")
	}
	m, rs := decodeBody(body)
	if rs != nil {
		return rs
	}
	if rs := s.checkFields(m); rs != nil {
		return rs
	}
	hash, setPW, rs := s.checkPassword(m, false)
	if rs != nil {
		return rs
	}
	if v, ok := m["name"]; ok && v != nil {
		name, _ := v.(map[string]any)
		given, hasG, gok := nameField(name, "givenName")
		family, hasF, fok := nameField(name, "familyName")
		if !gok {
			return badName("GivenName")
		}
		if !fok {
			return badName("FamilyName")
		}
		if hasG {
			u.GivenName = given
		}
		if hasF {
			u.FamilyName = family
		}
	}
	if email, ok := m["primaryEmail"].(string); ok && !strings.EqualFold(email, u.PrimaryEmail) {
		switch {
		case !validEmail(email):
			return errResp(http.StatusBadRequest, "invalid", "Invalid Input: primary_user_email")
		case !s.domainOK(email):
			return errResp(http.StatusBadRequest, "notFound", MsgDomainNotFound)
		case s.emailTaken(email) && s.byEmail[strings.ToLower(email)] != u.ID:
			return errResp(http.StatusConflict, "duplicate", MsgExists)
		}
		// Google keeps the old address as an alias.
		u.Aliases = append(u.Aliases, u.PrimaryEmail)
		u.PrimaryEmail = email
		s.byEmail[strings.ToLower(email)] = u.ID
	} else if ok {
		u.PrimaryEmail = email // case change
	}
	if v, ok := m["suspended"].(bool); ok {
		u.Suspended = v
	}
	if v, ok := m["changePasswordAtNextLogin"].(bool); ok {
		u.ChangePasswordAtNextLogin = v
	}
	if ou, ok := m["orgUnitPath"].(string); ok && ou != "" {
		u.OrgUnitPath = ou
	}
	if setPW {
		u.PasswordHash, u.HashFunction = hash, hashCrypt
	}
	for k, v := range m {
		if coreUserFields[k] {
			continue
		}
		if v == nil {
			delete(u.Fields, k)
			continue
		}
		if u.Fields == nil {
			u.Fields = map[string]any{}
		}
		u.Fields[k] = v
	}
	return jsonResp(http.StatusOK, s.renderUser(u))
}

func (s *Server) removeUser(u *User) {
	delete(s.users, u.ID)
	for e, id := range s.byEmail {
		if id == u.ID {
			delete(s.byEmail, e)
		}
	}
	for i, id := range s.userOrder {
		if id == u.ID {
			s.userOrder = append(s.userOrder[:i], s.userOrder[i+1:]...)
			break
		}
	}
	for g := range s.members {
		if i := s.memberIndex(g, u.ID); i >= 0 {
			ms := s.members[g]
			s.members[g] = append(ms[:i:i], ms[i+1:]...)
		}
	}
	s.deleted = append(s.deleted, u.ID)
}

func (s *Server) renderUser(u *User) map[string]any {
	m := map[string]any{}
	for k, v := range u.Fields {
		m[k] = v
	}
	m["kind"] = "admin#directory#user"
	m["id"] = u.ID
	m["etag"] = `"fake-` + u.ID + `"`
	m["primaryEmail"] = u.PrimaryEmail
	m["name"] = map[string]any{"givenName": u.GivenName, "familyName": u.FamilyName,
		"fullName": strings.TrimSpace(u.GivenName + " " + u.FamilyName)}
	m["isAdmin"] = u.IsAdmin
	m["isDelegatedAdmin"] = false
	m["lastLoginTime"] = "1970-01-01T00:00:00.000Z"
	m["creationTime"] = u.CreationTime.UTC().Format("2006-01-02T15:04:05.000Z")
	m["agreedToTerms"] = true
	m["suspended"] = u.Suspended
	if u.Suspended {
		m["suspensionReason"] = "ADMIN"
	}
	m["archived"] = false
	m["changePasswordAtNextLogin"] = u.ChangePasswordAtNextLogin
	m["ipWhitelisted"] = false
	m["emails"] = []map[string]any{{"address": u.PrimaryEmail, "primary": true}}
	if len(u.Aliases) > 0 {
		m["aliases"] = u.Aliases
	}
	m["customerId"] = s.customerID
	m["orgUnitPath"] = u.OrgUnitPath
	m["isMailboxSetup"] = true
	m["isEnrolledIn2Sv"] = false
	m["isEnforcedIn2Sv"] = false
	m["includeInGlobalAddressList"] = true
	return m
}

// customerOK: a listing names the customer ("my_customer" or the id).
func (s *Server) customerOK(q url.Values) bool {
	c := q.Get("customer")
	if c == "" {
		return q.Get("domain") != ""
	}
	return c == "my_customer" || c == s.customerID
}

// page reads maxResults (1..limit, default limit) and pageToken.
func page(q url.Values, limit int) (int, int, *fakehttp.Response) {
	n := limit
	if v := q.Get("maxResults"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 || k > limit {
			return 0, 0, errResp(http.StatusBadRequest, "invalid", "Invalid value for maxResults")
		}
		n = k
	}
	skip := 0
	if v := q.Get("pageToken"); v != "" {
		k, err := strconv.Atoi(strings.TrimPrefix(v, "fake-page-"))
		if err != nil || k < 0 || !strings.HasPrefix(v, "fake-page-") {
			return 0, 0, errResp(http.StatusBadRequest, "invalid", "Invalid Input: pageToken")
		}
		skip = k
	}
	return n, skip, nil
}

func (s *Server) listUsers(q url.Values) *fakehttp.Response {
	if !s.customerOK(q) {
		return errResp(http.StatusBadRequest, "badRequest", "Bad Request")
	}
	n, skip, rs := page(q, 500)
	if rs != nil {
		return rs
	}
	var all []*User
	for _, id := range s.userOrder {
		u := s.users[id]
		if d := q.Get("domain"); d != "" && !strings.HasSuffix(strings.ToLower(u.PrimaryEmail), "@"+strings.ToLower(d)) {
			continue
		}
		switch q.Get("query") {
		case "isSuspended=false":
			if u.Suspended {
				continue
			}
		case "isSuspended=true":
			if !u.Suspended {
				continue
			}
		}
		all = append(all, u)
	}
	out := map[string]any{"kind": "admin#directory#users", "etag": `"fake"`}
	var users []map[string]any
	for i := skip; i < len(all) && i < skip+n; i++ {
		users = append(users, s.renderUser(all[i]))
	}
	if len(users) > 0 {
		out["users"] = users
	}
	if skip+n < len(all) {
		out["nextPageToken"] = "fake-page-" + strconv.Itoa(skip+n)
	}
	return jsonResp(http.StatusOK, out)
}

// ---- groups ---------------------------------------------------------------------

func (s *Server) renderGroup(g *Group) map[string]any {
	return map[string]any{
		"kind":               "admin#directory#group",
		"id":                 g.ID,
		"etag":               `"fake-` + g.ID + `"`,
		"email":              g.Email,
		"name":               g.Name,
		"directMembersCount": strconv.Itoa(len(s.members[g.ID])),
		"description":        g.Description,
		"adminCreated":       g.AdminCreated,
	}
}

func renderMember(m Member) map[string]any {
	return map[string]any{
		"kind": "admin#directory#member", "etag": `"fake-` + m.ID + `"`, "id": m.ID, "email": m.Email,
		"role": m.Role, "type": m.Type, "status": m.Status,
	}
}

// parseGroupQuery supports the clauses an exact lookup needs, ANDed:
// name or email, '=' (exact, case-insensitive) or ':' (prefix with a
// trailing '*', else exact), the value bare or in single quotes with
// backslash escapes.
func parseGroupQuery(q string) (func(*Group) bool, bool) {
	var preds []func(*Group) bool
	for {
		q = strings.TrimLeft(q, " ")
		if q == "" {
			break
		}
		i := strings.IndexAny(q, "=:")
		if i <= 0 {
			return nil, false
		}
		field, op := q[:i], q[i]
		q = q[i+1:]
		var val string
		if strings.HasPrefix(q, "'") {
			var b strings.Builder
			j, closed := 1, false
			for j < len(q) {
				ch := q[j]
				if ch == '\\' && j+1 < len(q) {
					b.WriteByte(q[j+1])
					j += 2
					continue
				}
				j++
				if ch == '\'' {
					closed = true
					break
				}
				b.WriteByte(ch)
			}
			if !closed {
				return nil, false
			}
			val, q = b.String(), q[j:]
		} else {
			j := strings.IndexByte(q, ' ')
			if j < 0 {
				j = len(q)
			}
			val, q = q[:j], q[j:]
		}
		var get func(*Group) string
		switch field {
		case "name":
			get = func(g *Group) string { return g.Name }
		case "email":
			get = func(g *Group) string { return g.Email }
		default:
			return nil, false
		}
		if prefix, ok := strings.CutSuffix(val, "*"); ok && op == ':' {
			preds = append(preds, func(g *Group) bool {
				return strings.HasPrefix(strings.ToLower(get(g)), strings.ToLower(prefix))
			})
		} else {
			preds = append(preds, func(g *Group) bool { return strings.EqualFold(get(g), val) })
		}
	}
	return func(g *Group) bool {
		for _, p := range preds {
			if !p(g) {
				return false
			}
		}
		return true
	}, true
}

func (s *Server) listGroups(q url.Values) *fakehttp.Response {
	if !s.customerOK(q) {
		return errResp(http.StatusBadRequest, "badRequest", "Bad Request")
	}
	match, ok := parseGroupQuery(q.Get("query"))
	if !ok {
		return errResp(http.StatusBadRequest, "invalid", "Invalid Input")
	}
	n, skip, rs := page(q, 200)
	if rs != nil {
		return rs
	}
	var all []*Group
	for _, id := range s.groupOrder {
		if g := s.groups[id]; match(g) {
			all = append(all, g)
		}
	}
	out := map[string]any{"kind": "admin#directory#groups", "etag": `"fake"`}
	var groups []map[string]any
	for i := skip; i < len(all) && i < skip+n; i++ {
		groups = append(groups, s.renderGroup(all[i]))
	}
	if len(groups) > 0 {
		out["groups"] = groups
	}
	if skip+n < len(all) {
		out["nextPageToken"] = "fake-page-" + strconv.Itoa(skip+n)
	}
	return jsonResp(http.StatusOK, out)
}

func (s *Server) insertGroupAPI(body []byte) *fakehttp.Response {
	m, rs := decodeBody(body)
	if rs != nil {
		return rs
	}
	email, _ := m["email"].(string)
	if email == "" {
		return errResp(http.StatusBadRequest, "required", "Missing required field: email")
	}
	if !validEmail(email) {
		return errResp(http.StatusBadRequest, "invalid", "Invalid Input: email")
	}
	if !s.domainOK(email) {
		return errResp(http.StatusBadRequest, "notFound", MsgDomainNotFound)
	}
	if s.emailTaken(email) {
		return errResp(http.StatusConflict, "duplicate", MsgExists)
	}
	g := &Group{ID: newGroupID(), Email: email, AdminCreated: true}
	g.Name, _ = m["name"].(string)
	if g.Name == "" {
		g.Name = email[:strings.LastIndexByte(email, '@')]
	}
	g.Description, _ = m["description"].(string)
	s.insertGroup(g)
	return jsonResp(http.StatusOK, s.renderGroup(g))
}

func (s *Server) removeGroup(g *Group) {
	delete(s.groups, g.ID)
	delete(s.groupEmail, strings.ToLower(g.Email))
	delete(s.members, g.ID)
	for i, id := range s.groupOrder {
		if id == g.ID {
			s.groupOrder = append(s.groupOrder[:i], s.groupOrder[i+1:]...)
			break
		}
	}
}

func (s *Server) listMembers(g *Group, q url.Values) *fakehttp.Response {
	n, skip, rs := page(q, 200)
	if rs != nil {
		return rs
	}
	all := s.members[g.ID]
	out := map[string]any{"kind": "admin#directory#members", "etag": `"fake"`}
	var ms []map[string]any
	for i := skip; i < len(all) && i < skip+n; i++ {
		ms = append(ms, renderMember(all[i]))
	}
	if len(ms) > 0 {
		out["members"] = ms
	}
	if skip+n < len(all) {
		out["nextPageToken"] = "fake-page-" + strconv.Itoa(skip+n)
	}
	return jsonResp(http.StatusOK, out)
}

func (s *Server) insertMember(g *Group, body []byte) *fakehttp.Response {
	m, rs := decodeBody(body)
	if rs != nil {
		return rs
	}
	id, _ := m["id"].(string)
	email, _ := m["email"].(string)
	var u *User
	switch {
	case id != "":
		u = s.users[id]
	case email != "":
		u = s.lookupUser(email)
	default:
		return errResp(http.StatusBadRequest, "required", "Missing required field: memberKey")
	}
	if u == nil {
		return notFound("memberKey")
	}
	role, _ := m["role"].(string)
	switch role {
	case "":
		role = "MEMBER"
	case "MEMBER", "MANAGER", "OWNER":
	default:
		return errResp(http.StatusBadRequest, "invalid", fmt.Sprintf("Invalid Input: role %q", role))
	}
	if s.memberIndex(g.ID, u.ID) >= 0 {
		return errResp(http.StatusConflict, "duplicate", MsgMemberExists)
	}
	mem := Member{ID: u.ID, Email: u.PrimaryEmail, Role: role, Type: "USER", Status: "ACTIVE"}
	s.members[g.ID] = append(s.members[g.ID], mem)
	return jsonResp(http.StatusOK, renderMember(mem))
}
