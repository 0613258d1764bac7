package fakegraph

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/internal/fakehttp"
)

// Graph's messages, as the service words them.
const (
	MsgComplexity   = "The specified password does not comply with password complexity requirements. Please provide a different password."
	MsgDuplicateUPN = "Another object with the same value for property userPrincipalName already exists."
	MsgOnPrem       = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."
	MsgDenied       = "Insufficient privileges to complete the operation."
	MsgThrottled    = "Please retry again later."
	MsgUnavailable  = "The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request after a delay, the length of which may be specified in a Retry-After header."
)

func errResp(status int, code, message string) *fakehttp.Response {
	return fakehttp.JSON(status, "application/json", graphError(code, message))
}

func jsonResp(status int, v any) *fakehttp.Response {
	return fakehttp.JSON(status, "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8", v)
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, kind string, segs []string, body []byte) {
	if s.hooks.Delay(r.Context()) != nil {
		return
	}
	s.mu.Lock()
	rs := s.graph(r, kind, segs, body)
	s.mu.Unlock()
	w.Header().Set("request-id", newUUID())
	rs.Write(w)
}

// authFailure is Graph's wording of why a bearer token was refused.
func authFailure(err error) string {
	switch {
	case errors.Is(err, fakehttp.ErrNoToken):
		return "Access token is empty."
	case errors.Is(err, fakehttp.ErrTokenExpired):
		return "Lifetime validation failed, the token is expired."
	}
	return "Access token validation failure. Invalid audience."
}

// graph decides the answer to one Graph call. mu held.
func (s *Server) graph(r *http.Request, kind string, segs []string, body []byte) *fakehttp.Response {
	now := s.now()
	if _, err := s.tokens.Check(r); err != nil {
		rs := errResp(http.StatusUnauthorized, "InvalidAuthenticationToken", authFailure(err))
		rs.Header.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
		return rs
	}
	if left, down := s.hooks.Down(); down {
		if left == 0 {
			left = 5 * time.Second // SetDown's outage has no known end
		}
		rs := errResp(http.StatusServiceUnavailable, "serviceNotAvailable", MsgUnavailable)
		rs.Header.Set("Retry-After", fakehttp.RetryAfter(left))
		return rs
	}
	if f, ok := s.hooks.TakeFault(r.Method, kind); ok {
		code := f.Code
		if code == "" {
			code = http.StatusText(f.Status)
		}
		rs := errResp(f.Status, code, f.Message)
		if f.RetryAfter > 0 {
			rs.Header.Set("Retry-After", fakehttp.RetryAfter(f.RetryAfter))
		}
		return rs
	}
	if retryAfter, ok := s.hooks.TakeThrottle(); ok {
		rs := errResp(http.StatusTooManyRequests, "TooManyRequests", MsgThrottled)
		rs.Header.Set("Retry-After", fakehttp.RetryAfter(retryAfter))
		return rs
	}
	if s.denyWrites && r.Method != http.MethodGet {
		return errResp(http.StatusForbidden, "Authorization_RequestDenied", MsgDenied)
	}

	switch kind {
	case KindUsers:
		switch r.Method {
		case http.MethodGet:
			return s.listUsers(r, now)
		case http.MethodPost:
			return s.createUser(body, now)
		}
		return errResp(http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not allowed for this resource.")
	case KindUser:
		key, err := userKey(segs)
		if err != nil {
			return errResp(http.StatusBadRequest, "BadRequest", "Bad request. Please fix the request before retrying.")
		}
		switch r.Method {
		case http.MethodGet:
			return s.getUser(r, key, now)
		case http.MethodPatch:
			return s.patchUser(key, body)
		case http.MethodDelete:
			u := s.lookup(key)
			if u == nil {
				return notFound(key)
			}
			s.remove(u)
			return &fakehttp.Response{Status: http.StatusNoContent}
		}
		return errResp(http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not allowed for this resource.")
	case KindGroups, KindGroup, KindMembers, KindMemberRef:
		return s.serveGroups(r, kind, segs, body, now)
	case KindManager:
		return s.serveManager(r, segs, body)
	}
	last := segs[len(segs)-1]
	return errResp(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", last))
}

// userKey decodes /v1.0/users/{key} or /v1.0/users('{key}').
func userKey(segs []string) (string, error) {
	if len(segs) == 3 {
		return url.PathUnescape(segs[2])
	}
	raw, err := url.PathUnescape(segs[1])
	if err != nil {
		return "", err
	}
	inner, ok := strings.CutPrefix(raw, "users('")
	if !ok {
		return "", fmt.Errorf("bad key")
	}
	inner, ok = strings.CutSuffix(inner, "')")
	if !ok {
		return "", fmt.Errorf("bad key")
	}
	return strings.ReplaceAll(inner, "''", "'"), nil
}

func notFound(key string) *fakehttp.Response {
	return errResp(http.StatusNotFound, "Request_ResourceNotFound",
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", key))
}

func (s *Server) remove(u *user) {
	for _, o := range s.users {
		if o.ManagerID == u.ID {
			o.ManagerID = "" // Graph drops references to a deleted object
		}
	}
	delete(s.users, u.ID)
	delete(s.byUPN, strings.ToLower(u.UserPrincipalName))
	s.dropMember(u.ID)
	for i, id := range s.order {
		if id == u.ID {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// visible: not hidden by the replication delay.
func (s *Server) visible(u *user, now time.Time) bool {
	return s.replDelay <= 0 || now.Sub(u.CreatedDateTime) >= s.replDelay
}

func (s *Server) getUser(r *http.Request, key string, now time.Time) *fakehttp.Response {
	u := s.lookup(key)
	if u == nil || !s.visible(u, now) {
		return notFound(key)
	}
	sel, rs := parseSelect(r.URL.Query().Get("$select"))
	if rs != nil {
		return rs
	}
	out := render(u, sel)
	out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#users/$entity"
	return jsonResp(http.StatusOK, out)
}

func (s *Server) listUsers(r *http.Request, now time.Time) *fakehttp.Response {
	q := r.URL.Query()
	sel, rs := parseSelect(q.Get("$select"))
	if rs != nil {
		return rs
	}
	match, rs := parseFilter(q.Get("$filter"))
	if rs != nil {
		return rs
	}
	top := 100
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			return errResp(http.StatusBadRequest, "Request_BadRequest",
				fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", v))
		}
		top = n
	}
	top = s.pageSize(top)
	skip := 0
	if v := q.Get("$skiptoken"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "fake-"))
		if err != nil || n < 0 {
			return errResp(http.StatusBadRequest, "Request_BadRequest", "Invalid skip token.")
		}
		skip = n
	}
	var all []*user
	for _, id := range s.order {
		if u := s.users[id]; s.visible(u, now) && match(u) {
			all = append(all, u)
		}
	}
	value := []map[string]any{}
	for i := skip; i < len(all) && i < skip+top; i++ {
		value = append(value, render(all[i], sel))
	}
	out := map[string]any{
		"@odata.context": s.ts.URL + "/v1.0/$metadata#users",
		"value":          value,
	}
	if skip+top < len(all) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$skiptoken", "fake-"+strconv.Itoa(skip+top))
		out["@odata.nextLink"] = s.ts.URL + "/v1.0/users?" + nq.Encode()
	}
	return jsonResp(http.StatusOK, out)
}

// parseFilter supports what an import needs: accountEnabled eq
// true|false, and userPrincipalName / mailNickname / displayName eq '...'.
func parseFilter(f string) (func(*user) bool, *fakehttp.Response) {
	f = strings.TrimSpace(f)
	if f == "" {
		return func(*user) bool { return true }, nil
	}
	bad := errResp(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
	parts := strings.SplitN(f, " ", 3)
	if len(parts) != 3 || !strings.EqualFold(parts[1], "eq") {
		return nil, bad
	}
	prop, val := parts[0], strings.TrimSpace(parts[2])
	if prop == "accountEnabled" {
		switch strings.ToLower(val) {
		case "true":
			return func(u *user) bool { return u.AccountEnabled }, nil
		case "false":
			return func(u *user) bool { return !u.AccountEnabled }, nil
		}
		return nil, bad
	}
	if len(val) < 2 || val[0] != '\'' || val[len(val)-1] != '\'' {
		return nil, bad
	}
	lit := strings.ReplaceAll(val[1:len(val)-1], "''", "'")
	var get func(*user) string
	switch prop {
	case "userPrincipalName":
		get = func(u *user) string { return u.UserPrincipalName }
	case "mailNickname":
		get = func(u *user) string { return u.MailNickname }
	case "displayName":
		get = func(u *user) string { return u.DisplayName }
	default:
		return nil, bad
	}
	return func(u *user) bool { return strings.EqualFold(get(u), lit) }, nil
}

// ---- properties ---------------------------------------------------------------

// defaultSelect is Graph's default property set for users.
var defaultSelect = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail",
	"mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

// stringAttrs and arrayAttrs are the settable properties of Graph's user
// resource the fake knows (v1.0); any other property in a POST or PATCH
// is refused with 400 "Invalid property 'x'.", as Graph does. manager is
// not among them: it is a relationship (manager/$ref).
var stringAttrs = map[string]bool{
	"jobTitle": true, "department": true, "companyName": true, "officeLocation": true,
	"employeeType": true, "employeeId": true, "mobilePhone": true, "faxNumber": true,
	"city": true, "country": true, "state": true, "streetAddress": true, "postalCode": true,
	"usageLocation": true, "preferredLanguage": true, "mail": true, "ageGroup": true,
	"aboutMe": true, "consentProvidedForMinor": true, "employeeHireDate": true, "employeeLeaveDateTime": true,
	"mySite": true, "onPremisesImmutableId": true, "preferredName": true, "userType": true,
	"preferredDataLocation": true,
}

var arrayAttrs = map[string]bool{"businessPhones": true, "otherMails": true, "imAddresses": true,
	"interests": true, "pastProjects": true, "responsibilities": true, "schools": true, "skills": true}

var readOnly = map[string]bool{
	"id": true, "createdDateTime": true, "lastPasswordChangeDateTime": true,
	"onPremisesSyncEnabled": true, "proxyAddresses": true,
}

var coreProps = map[string]bool{
	"userPrincipalName": true, "displayName": true, "mailNickname": true, "givenName": true,
	"surname": true, "accountEnabled": true, "passwordProfile": true,
}

func knownProp(p string) bool {
	return coreProps[p] || stringAttrs[p] || arrayAttrs[p] || readOnly[p]
}

func parseSelect(v string) ([]string, *fakehttp.Response) {
	if strings.TrimSpace(v) == "" {
		return defaultSelect, nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "*" {
			return allProps(), nil
		}
		if !knownProp(p) {
			return nil, errResp(http.StatusBadRequest, "BadRequest",
				fmt.Sprintf("Parsing OData Select and Expand failed: Could not find a property named '%s' on type 'microsoft.graph.user'.", p))
		}
		out = append(out, p)
	}
	if !contains(out, "id") {
		out = append(out, "id") // Graph always returns the key
	}
	return out, nil
}

func allProps() []string {
	var out []string
	for _, m := range []map[string]bool{coreProps, stringAttrs, arrayAttrs, readOnly} {
		for p := range m {
			out = append(out, p)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

const timeFormat = "2006-01-02T15:04:05Z"

func render(u *user, sel []string) map[string]any {
	out := make(map[string]any, len(sel)+1)
	for _, p := range sel {
		out[p] = prop(u, p)
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func prop(u *user, p string) any {
	switch p {
	case "id":
		return u.ID
	case "userPrincipalName":
		return u.UserPrincipalName
	case "displayName":
		return nilIfEmpty(u.DisplayName)
	case "mailNickname":
		return nilIfEmpty(u.MailNickname)
	case "givenName":
		return nilIfEmpty(u.GivenName)
	case "surname":
		return nilIfEmpty(u.Surname)
	case "accountEnabled":
		return u.AccountEnabled
	case "createdDateTime":
		return u.CreatedDateTime.UTC().Format(timeFormat)
	case "lastPasswordChangeDateTime":
		if u.LastPasswordChangeDateTime.IsZero() {
			return nil
		}
		return u.LastPasswordChangeDateTime.UTC().Format(timeFormat)
	case "onPremisesSyncEnabled":
		if !u.OnPremisesSyncEnabled {
			return nil
		}
		return true
	case "passwordProfile":
		return nil // write-only
	}
	if v, ok := u.Attributes[p]; ok {
		return v
	}
	if arrayAttrs[p] || p == "proxyAddresses" {
		return []string{}
	}
	return nil
}

// ---- writes -------------------------------------------------------------------

type apiErr struct {
	status        int
	code, message string
}

func badValue(p string) *apiErr {
	return &apiErr{http.StatusBadRequest, "Request_BadRequest",
		fmt.Sprintf("Invalid value specified for property '%s' of resource 'User'.", p)}
}

// change is a validated write, applied only when every property passed.
type change struct {
	pw        *string
	forceNext *bool
}

func decodeObject(body []byte) (map[string]json.RawMessage, *apiErr) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, &apiErr{http.StatusBadRequest, "BadRequest",
			"Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."}
	}
	return m, nil
}

// apply validates m and writes it into u (a copy of the stored user).
func (s *Server) apply(u *user, m map[string]json.RawMessage) (*change, *apiErr) {
	ch := &change{}
	for p, raw := range m {
		if strings.HasPrefix(p, "@odata.") {
			continue
		}
		if ae, ok := s.refusal(p); ok {
			return nil, ae
		}
		isNull := string(raw) == "null"
		var str string
		isString := json.Unmarshal(raw, &str) == nil && !isNull
		switch {
		case readOnly[p]:
			return nil, &apiErr{http.StatusBadRequest, "Request_BadRequest",
				fmt.Sprintf("Property '%s' is read-only and cannot be set.", p)}
		case p == "accountEnabled":
			var b bool
			if json.Unmarshal(raw, &b) != nil || isNull {
				return nil, badValue(p)
			}
			u.AccountEnabled = b
		case p == "userPrincipalName":
			if !isString || !validUPN(str) {
				return nil, badValue(p)
			}
			if !s.domainOK(str) {
				return nil, &apiErr{http.StatusBadRequest, "Request_BadRequest",
					"The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization."}
			}
			if id, dup := s.byUPN[strings.ToLower(str)]; dup && id != u.ID {
				return nil, &apiErr{http.StatusBadRequest, "Request_BadRequest", MsgDuplicateUPN}
			}
			u.UserPrincipalName = str
		case p == "displayName":
			if !isString || strings.TrimSpace(str) == "" || utf8.RuneCountInString(str) > 256 {
				return nil, badValue(p)
			}
			u.DisplayName = str
		case p == "mailNickname":
			if !isString || !validNickname(str) {
				return nil, badValue(p)
			}
			u.MailNickname = str
		case p == "givenName" || p == "surname":
			if !isString && !isNull {
				return nil, badValue(p)
			}
			if p == "givenName" {
				u.GivenName = str
			} else {
				u.Surname = str
			}
		case stringAttrs[p]:
			if !isString && !isNull {
				return nil, badValue(p)
			}
			setAttr(u, p, str, isNull || str == "")
		case arrayAttrs[p]:
			var arr []string
			if !isNull && json.Unmarshal(raw, &arr) != nil {
				return nil, badValue(p)
			}
			if p == "businessPhones" && len(arr) > 1 {
				return nil, badValue(p)
			}
			if arr == nil {
				arr = []string{}
			}
			setAttr(u, p, arr, len(arr) == 0)
		case p == "passwordProfile":
			var pp struct {
				Password                      *string `json:"password"`
				ForceChangePasswordNextSignIn *bool   `json:"forceChangePasswordNextSignIn"`
			}
			if isNull || json.Unmarshal(raw, &pp) != nil {
				return nil, badValue(p)
			}
			if pp.Password != nil && !Complex(*pp.Password) {
				return nil, &apiErr{http.StatusBadRequest, "Request_BadRequest", MsgComplexity}
			}
			ch.pw, ch.forceNext = pp.Password, pp.ForceChangePasswordNextSignIn
		default:
			return nil, &apiErr{http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf(MsgInvalidProperty, p)}
		}
	}
	return ch, nil
}

func setAttr(u *user, p string, v any, clearIt bool) {
	if clearIt {
		delete(u.Attributes, p)
		return
	}
	if u.Attributes == nil {
		u.Attributes = map[string]any{}
	}
	u.Attributes[p] = v
}

func (s *Server) createUser(body []byte, now time.Time) *fakehttp.Response {
	m, ae := decodeObject(body)
	if ae != nil {
		return errResp(ae.status, ae.code, ae.message)
	}
	for _, p := range []string{"accountEnabled", "displayName", "mailNickname", "userPrincipalName"} {
		if _, ok := m[p]; !ok {
			return errResp(http.StatusBadRequest, "Request_BadRequest",
				fmt.Sprintf("Invalid value specified for property '%s' of resource 'User'.", p))
		}
	}
	var pp struct {
		Password *string `json:"password"`
	}
	if raw, ok := m["passwordProfile"]; !ok || json.Unmarshal(raw, &pp) != nil || pp.Password == nil {
		return errResp(http.StatusBadRequest, "Request_BadRequest",
			"Property passwordProfile.password value is required but is empty or missing.")
	}
	u := &user{User: User{ID: newUUID(), CreatedDateTime: now}}
	ch, ae := s.apply(u, m)
	if ae != nil {
		return errResp(ae.status, ae.code, ae.message)
	}
	u.CreatedDateTime = now
	u.setPassword([]byte(*ch.pw))
	u.LastPasswordChangeDateTime = now.UTC().Truncate(time.Second)
	if ch.forceNext != nil {
		u.ForceChangePasswordNextSignIn = *ch.forceNext
	}
	s.insert(u)
	out := render(u, defaultSelect)
	out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#users/$entity"
	rs := jsonResp(http.StatusCreated, out)
	rs.Header.Set("Location", s.ts.URL+"/v1.0/directoryObjects/"+u.ID+"/Microsoft.DirectoryServices.User")
	return rs
}

func (s *Server) patchUser(key string, body []byte) *fakehttp.Response {
	stored := s.lookup(key)
	if stored == nil {
		return notFound(key)
	}
	m, ae := decodeObject(body)
	if ae != nil {
		return errResp(ae.status, ae.code, ae.message)
	}
	if stored.OnPremisesSyncEnabled {
		if _, pw := m["passwordProfile"]; pw {
			return errResp(http.StatusForbidden, "Authorization_RequestDenied", MsgOnPrem)
		}
		return errResp(http.StatusBadRequest, "Request_BadRequest", MsgOnPrem)
	}
	u := &user{User: stored.User.clone(), hasPW: stored.hasPW, pwSalt: stored.pwSalt, pwHash: stored.pwHash}
	ch, ae := s.apply(u, m)
	if ae != nil {
		return errResp(ae.status, ae.code, ae.message)
	}
	if ch.pw != nil {
		u.setPassword([]byte(*ch.pw))
		u.LastPasswordChangeDateTime = s.nextPasswordTime(stored)
	}
	if ch.forceNext != nil {
		u.ForceChangePasswordNextSignIn = *ch.forceNext
	}
	if !strings.EqualFold(u.UserPrincipalName, stored.UserPrincipalName) {
		delete(s.byUPN, strings.ToLower(stored.UserPrincipalName))
		s.byUPN[strings.ToLower(u.UserPrincipalName)] = u.ID
	}
	*stored = *u
	return &fakehttp.Response{Status: http.StatusNoContent}
}

func validUPN(upn string) bool {
	local, domain, ok := strings.Cut(upn, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(upn) > 113 {
		return false
	}
	for _, r := range upn {
		if r <= ' ' || r > '~' || strings.ContainsRune(`\"<>()[];:,`, r) {
			return false
		}
	}
	return true
}

func (s *Server) domainOK(upn string) bool {
	if len(s.domains) == 0 {
		return true
	}
	_, domain, _ := strings.Cut(upn, "@")
	return contains(s.domains, strings.ToLower(domain))
}

func validNickname(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if r <= ' ' || r > '~' || strings.ContainsRune(`@()\[]";:<>,`, r) {
			return false
		}
	}
	return true
}

// EntraSymbols are the symbols Entra ID accepts in a password.
const EntraSymbols = "@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> "

// Complex is Entra's password rule for cloud users: 8 to 256
// characters from A–Z, a–z, 0–9 and EntraSymbols, with at least three of
// the four classes.
func Complex(pw string) bool {
	n := utf8.RuneCountInString(pw)
	if n < 8 || n > 256 {
		return false
	}
	var lower, upper, digit, symbol int
	for _, r := range pw {
		switch {
		case 'a' <= r && r <= 'z':
			lower = 1
		case 'A' <= r && r <= 'Z':
			upper = 1
		case '0' <= r && r <= '9':
			digit = 1
		case strings.ContainsRune(EntraSymbols, r):
			symbol = 1
		default:
			return false
		}
	}
	return lower+upper+digit+symbol >= 3
}
