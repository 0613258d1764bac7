package fakegraph

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
)

// Graph's messages for groups and memberships, as the service words them.
const (
	// MsgMemberExists: POST members/$ref of an object already a member
	// (400 Request_BadRequest).
	MsgMemberExists = "One or more added object references already exist for the following modified properties: 'members'."
	// MsgMailEnabledGroup: POST /groups with mailEnabled true for anything
	// but a Microsoft 365 (Unified) group (400 Request_BadRequest); also
	// the answer to membership changes of such groups.
	MsgMailEnabledGroup = "Cannot Create a mail-enabled security groups and or distribution list."
	// MsgMailEnabledUpdate: membership change of a mail-enabled security
	// group or distribution list (400 Request_BadRequest).
	MsgMailEnabledUpdate = "Cannot Update a mail-enabled security groups and or distribution list."
	// MsgReferenceNotReplicated: a member added to a group (or a user)
	// created moments ago, before replication (400 Request_BadRequest).
	MsgReferenceNotReplicated = "The source resource object or one of the objects being referenced do not exist."
)

// Group is one group as the fake holds it. Members are object ids of
// users (or of other groups, which Graph allows in security groups).
type Group struct {
	ID              string
	DisplayName     string
	Description     string
	MailNickname    string
	MailEnabled     bool
	SecurityEnabled bool
	GroupTypes      []string // e.g. ["Unified"]; none for security groups
	Members         []string
	CreatedDateTime time.Time
}

func (g Group) clone() Group {
	g.GroupTypes = append([]string(nil), g.GroupTypes...)
	g.Members = append([]string(nil), g.Members...)
	return g
}

func (g *Group) isMember(id string) bool { return contains(g.Members, id) }

// AddGroup pre-creates a security group (securityEnabled true,
// mailEnabled false) named name with the given members, which must be
// ids of existing users or groups (it panics otherwise). Names need not
// be unique: call it twice for two groups with the same name, as a real
// tenant may have.
func (s *Server) AddGroup(name string, memberIDs ...string) Group {
	return s.InsertGroup(Group{DisplayName: name, SecurityEnabled: true, Members: memberIDs})
}

// InsertGroup pre-creates a group with every field as given (a
// distribution list, a Microsoft 365 group, ...). A missing ID,
// MailNickname or CreatedDateTime is filled in; members must exist.
func (s *Server) InsertGroup(g Group) Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.ID == "" {
		g.ID = newUUID()
	}
	if g.MailNickname == "" {
		g.MailNickname = nicknameOf(g.DisplayName)
	}
	if g.CreatedDateTime.IsZero() {
		g.CreatedDateTime = s.now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	}
	if _, dup := s.groups[g.ID]; dup {
		panic("fakegraph: InsertGroup: duplicate id " + g.ID)
	}
	g = g.clone()
	var members []string
	for _, m := range g.Members {
		if s.users[m] == nil && s.groups[m] == nil {
			panic("fakegraph: InsertGroup: no user or group with id " + m)
		}
		if !contains(members, m) {
			members = append(members, m)
		}
	}
	g.Members = members
	s.groups[g.ID] = &g
	s.groupOrder = append(s.groupOrder, g.ID)
	return g.clone()
}

// nicknameOf is a valid mailNickname made of name's allowed characters.
func nicknameOf(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r > ' ' && r <= '~' && !strings.ContainsRune(`@()\[]";:<>,`, r) && b.Len() < 64 {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "group"
	}
	return b.String()
}

// Groups is a snapshot of every group, in creation order.
func (s *Server) Groups() []Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Group, 0, len(s.groupOrder))
	for _, id := range s.groupOrder {
		out = append(out, s.groups[id].clone())
	}
	return out
}

// Group returns one group by id.
func (s *Server) Group(id string) (Group, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		return Group{}, false
	}
	return g.clone(), true
}

// GroupMembers is the member ids of a group, in the order they were
// added; nil when there is no such group.
func (s *Server) GroupMembers(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		return nil
	}
	return append([]string{}, g.Members...)
}

// MaxPageSize caps every list page (users, groups, members) at n items
// whatever $top asks, as Graph may return fewer items than $top; 0
// removes the cap.
func (s *Server) MaxPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxPage = max(n, 0)
}

// pageSize applies MaxPageSize to a requested page size. mu held.
func (s *Server) pageSize(top int) int {
	if s.maxPage > 0 && top > s.maxPage {
		return s.maxPage
	}
	return top
}

// dropMember removes id from every group (the object was deleted). mu held.
func (s *Server) dropMember(id string) {
	for _, g := range s.groups {
		for i, m := range g.Members {
			if m == id {
				g.Members = append(g.Members[:i], g.Members[i+1:]...)
				break
			}
		}
	}
}

// ---- HTTP ---------------------------------------------------------------------

// groupKind classifies a path under /v1.0/groups (segs still escaped).
func groupKind(segs []string) string {
	seg := func(i int) string {
		v, err := url.PathUnescape(segs[i])
		if err != nil {
			return "\x00"
		}
		return v
	}
	switch {
	case len(segs) == 2:
		return KindGroups
	case len(segs) == 3:
		return KindGroup
	case len(segs) == 4 && seg(3) == "members",
		len(segs) == 5 && seg(3) == "members" && strings.HasPrefix(seg(4), "microsoft.graph."):
		return KindMembers
	case len(segs) == 5 && seg(3) == "members" && seg(4) == "$ref",
		len(segs) == 6 && seg(3) == "members" && seg(5) == "$ref":
		return KindMemberRef
	}
	return KindOther
}

func notAllowed() *fakehttp.Response {
	return errResp(http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not allowed for this resource.")
}

// serveGroups answers the group endpoints. mu held.
func (s *Server) serveGroups(r *http.Request, kind string, segs []string, body []byte, now time.Time) *fakehttp.Response {
	var gid string
	if len(segs) >= 3 {
		var err error
		if gid, err = url.PathUnescape(segs[2]); err != nil {
			return errResp(http.StatusBadRequest, "BadRequest", "Bad request. Please fix the request before retrying.")
		}
	}
	switch kind {
	case KindGroups:
		switch r.Method {
		case http.MethodGet:
			return s.listGroups(r, now)
		case http.MethodPost:
			return s.createGroup(body, now)
		}
	case KindGroup:
		if r.Method == http.MethodGet {
			g := s.groups[gid]
			if g == nil || !s.groupVisible(g, now) {
				return notFound(gid)
			}
			sel, rs := parseGroupSelect(r.URL.Query().Get("$select"))
			if rs != nil {
				return rs
			}
			out := renderGroup(g, sel)
			out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#groups/$entity"
			return jsonResp(http.StatusOK, out)
		}
	case KindMembers:
		if r.Method == http.MethodGet {
			cast := ""
			if len(segs) == 5 {
				cast, _ = url.PathUnescape(segs[4])
			}
			return s.listMembers(r, gid, cast, now)
		}
	case KindMemberRef:
		switch {
		case r.Method == http.MethodPost && len(segs) == 5:
			return s.addMember(gid, body, now)
		case r.Method == http.MethodDelete && len(segs) == 6:
			uid, err := url.PathUnescape(segs[4])
			if err != nil {
				return errResp(http.StatusBadRequest, "BadRequest", "Bad request. Please fix the request before retrying.")
			}
			return s.removeMember(gid, uid)
		}
	}
	return notAllowed()
}

func (s *Server) groupVisible(g *Group, now time.Time) bool {
	return s.replDelay <= 0 || now.Sub(g.CreatedDateTime) >= s.replDelay
}

// page parses $top (default def, 1..999) and $skiptoken, with MaxPageSize.
func (s *Server) page(q url.Values, def int) (top, skip int, rs *fakehttp.Response) {
	top = def
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			return 0, 0, errResp(http.StatusBadRequest, "Request_BadRequest",
				fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", v))
		}
		top = n
	}
	top = s.pageSize(top)
	if v := q.Get("$skiptoken"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "fake-"))
		if err != nil || n < 0 {
			return 0, 0, errResp(http.StatusBadRequest, "Request_BadRequest", "Invalid skip token.")
		}
		skip = n
	}
	return top, skip, nil
}

// nextLink is the absolute @odata.nextLink for the page after skip+top.
func (s *Server) nextLink(path string, q url.Values, next int) string {
	nq := url.Values{}
	for k, v := range q {
		nq[k] = v
	}
	nq.Set("$skiptoken", "fake-"+strconv.Itoa(next))
	return s.ts.URL + path + "?" + nq.Encode()
}

func (s *Server) listGroups(r *http.Request, now time.Time) *fakehttp.Response {
	q := r.URL.Query()
	sel, rs := parseGroupSelect(q.Get("$select"))
	if rs != nil {
		return rs
	}
	match, rs := parseGroupFilter(q.Get("$filter"))
	if rs != nil {
		return rs
	}
	top, skip, rs := s.page(q, 100)
	if rs != nil {
		return rs
	}
	var all []*Group
	for _, id := range s.groupOrder {
		if g := s.groups[id]; s.groupVisible(g, now) && match(g) {
			all = append(all, g)
		}
	}
	value := []map[string]any{}
	for i := skip; i < len(all) && i < skip+top; i++ {
		value = append(value, renderGroup(all[i], sel))
	}
	out := map[string]any{"@odata.context": s.ts.URL + "/v1.0/$metadata#groups", "value": value}
	if skip+top < len(all) {
		out["@odata.nextLink"] = s.nextLink("/v1.0/groups", q, skip+top)
	}
	return jsonResp(http.StatusOK, out)
}

// parseGroupFilter supports the one filter a connector needs:
// displayName eq '<literal>' (quotes doubled inside), compared
// case-insensitively as Graph does.
func parseGroupFilter(f string) (func(*Group) bool, *fakehttp.Response) {
	f = strings.TrimSpace(f)
	if f == "" {
		return func(*Group) bool { return true }, nil
	}
	bad := errResp(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
	parts := strings.SplitN(f, " ", 3)
	if len(parts) != 3 || parts[0] != "displayName" || !strings.EqualFold(parts[1], "eq") {
		return nil, bad
	}
	val := strings.TrimSpace(parts[2])
	if len(val) < 2 || val[0] != '\'' || val[len(val)-1] != '\'' {
		return nil, bad
	}
	inner := val[1 : len(val)-1]
	// Every quote inside the literal must be doubled.
	if strings.Count(strings.ReplaceAll(inner, "''", ""), "'") != 0 {
		return nil, errResp(http.StatusBadRequest, "BadRequest",
			"Invalid filter clause: syntax error at position "+strconv.Itoa(strings.Index(f, "'")+1)+".")
	}
	lit := strings.ReplaceAll(inner, "''", "'")
	return func(g *Group) bool { return strings.EqualFold(g.DisplayName, lit) }, nil
}

var groupProps = []string{"id", "displayName", "description", "mailNickname", "mailEnabled",
	"securityEnabled", "groupTypes", "createdDateTime", "mail"}

func parseGroupSelect(v string) ([]string, *fakehttp.Response) {
	if strings.TrimSpace(v) == "" {
		return groupProps, nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "*" {
			return groupProps, nil
		}
		if !contains(groupProps, p) {
			return nil, errResp(http.StatusBadRequest, "BadRequest",
				fmt.Sprintf("Parsing OData Select and Expand failed: Could not find a property named '%s' on type 'microsoft.graph.group'.", p))
		}
		out = append(out, p)
	}
	if !contains(out, "id") {
		out = append(out, "id")
	}
	return out, nil
}

func renderGroup(g *Group, sel []string) map[string]any {
	out := make(map[string]any, len(sel)+1)
	for _, p := range sel {
		switch p {
		case "id":
			out[p] = g.ID
		case "displayName":
			out[p] = g.DisplayName
		case "description":
			out[p] = nilIfEmpty(g.Description)
		case "mailNickname":
			out[p] = g.MailNickname
		case "mailEnabled":
			out[p] = g.MailEnabled
		case "securityEnabled":
			out[p] = g.SecurityEnabled
		case "groupTypes":
			out[p] = append([]string{}, g.GroupTypes...)
		case "createdDateTime":
			out[p] = g.CreatedDateTime.UTC().Format(timeFormat)
		case "mail":
			out[p] = nil
		}
	}
	return out
}

func badGroupValue(p string) *fakehttp.Response {
	return errResp(http.StatusBadRequest, "Request_BadRequest",
		fmt.Sprintf("Invalid value specified for property '%s' of resource 'Group'.", p))
}

// createGroup is POST /groups: displayName, mailEnabled, mailNickname and
// securityEnabled are required; description and groupTypes optional.
// Graph creates only security groups and Microsoft 365 (Unified) groups:
// mailEnabled true without Unified (a mail-enabled security group or a
// distribution list) is refused.
func (s *Server) createGroup(body []byte, now time.Time) *fakehttp.Response {
	m, ae := decodeObject(body)
	if ae != nil {
		return errResp(ae.status, ae.code, ae.message)
	}
	for _, p := range []string{"displayName", "mailEnabled", "mailNickname", "securityEnabled"} {
		if raw, ok := m[p]; !ok || string(raw) == "null" {
			return badGroupValue(p)
		}
	}
	g := &Group{ID: newUUID(), CreatedDateTime: now}
	for p, raw := range m {
		var err error
		switch p {
		case "displayName":
			err = json.Unmarshal(raw, &g.DisplayName)
			if err == nil && (strings.TrimSpace(g.DisplayName) == "" || utf8.RuneCountInString(g.DisplayName) > 256) {
				err = fmt.Errorf("bad")
			}
		case "description":
			if string(raw) != "null" {
				err = json.Unmarshal(raw, &g.Description)
			}
			if err == nil && utf8.RuneCountInString(g.Description) > 1024 {
				err = fmt.Errorf("bad")
			}
		case "mailNickname":
			err = json.Unmarshal(raw, &g.MailNickname)
			if err == nil && !validNickname(g.MailNickname) {
				err = fmt.Errorf("bad")
			}
		case "mailEnabled":
			err = json.Unmarshal(raw, &g.MailEnabled)
		case "securityEnabled":
			err = json.Unmarshal(raw, &g.SecurityEnabled)
		case "groupTypes":
			err = json.Unmarshal(raw, &g.GroupTypes)
			for _, t := range g.GroupTypes {
				if t != "Unified" && t != "DynamicMembership" {
					err = fmt.Errorf("bad")
				}
			}
		default:
			if strings.HasPrefix(p, "@odata.") {
				continue
			}
			return errResp(http.StatusBadRequest, "Request_BadRequest",
				fmt.Sprintf("Property '%s' does not exist as a declared property or extension property.", p))
		}
		if err != nil {
			return badGroupValue(p)
		}
	}
	if g.MailEnabled && !contains(g.GroupTypes, "Unified") {
		return errResp(http.StatusBadRequest, "Request_BadRequest", MsgMailEnabledGroup)
	}
	s.groups[g.ID] = g
	s.groupOrder = append(s.groupOrder, g.ID)
	out := renderGroup(g, groupProps)
	out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#groups/$entity"
	rs := jsonResp(http.StatusCreated, out)
	rs.Header.Set("Location", s.ts.URL+"/v1.0/directoryObjects/"+g.ID+"/Microsoft.DirectoryServices.Group")
	return rs
}

// listMembers is GET /groups/{id}/members, optionally cast to one type
// (microsoft.graph.user or microsoft.graph.group). Every item carries
// @odata.type, as Graph's directoryObject collections do.
func (s *Server) listMembers(r *http.Request, gid, cast string, now time.Time) *fakehttp.Response {
	g := s.groups[gid]
	if g == nil || !s.groupVisible(g, now) {
		return notFound(gid)
	}
	if cast != "" && cast != "microsoft.graph.user" && cast != "microsoft.graph.group" {
		return errResp(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
	}
	q := r.URL.Query()
	if strings.TrimSpace(q.Get("$filter")) != "" {
		return errResp(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
	}
	var sel []string
	if v := strings.TrimSpace(q.Get("$select")); v != "" {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if !knownProp(p) && !contains(groupProps, p) {
				return errResp(http.StatusBadRequest, "BadRequest",
					fmt.Sprintf("Parsing OData Select and Expand failed: Could not find a property named '%s' on type 'microsoft.graph.directoryObject'.", p))
			}
			sel = append(sel, p)
		}
		if !contains(sel, "id") {
			sel = append(sel, "id")
		}
	}
	top, skip, rs := s.page(q, 100)
	if rs != nil {
		return rs
	}
	var items []map[string]any
	for _, id := range g.Members {
		if u := s.users[id]; u != nil && (cast == "" || cast == "microsoft.graph.user") {
			usel := sel
			if usel == nil {
				usel = defaultSelect
			}
			m := map[string]any{}
			for _, p := range usel {
				if knownProp(p) {
					m[p] = prop(u, p)
				} else {
					m[p] = nil
				}
			}
			m["@odata.type"] = "#microsoft.graph.user"
			items = append(items, m)
		} else if sg := s.groups[id]; sg != nil && (cast == "" || cast == "microsoft.graph.group") {
			gsel := sel
			if gsel == nil {
				gsel = groupProps
			}
			var known []string
			for _, p := range gsel {
				if contains(groupProps, p) {
					known = append(known, p)
				}
			}
			m := renderGroup(sg, known)
			for _, p := range gsel {
				if _, ok := m[p]; !ok {
					m[p] = nil
				}
			}
			m["@odata.type"] = "#microsoft.graph.group"
			items = append(items, m)
		}
	}
	value := []map[string]any{}
	for i := skip; i < len(items) && i < skip+top; i++ {
		value = append(value, items[i])
	}
	ctx := s.ts.URL + "/v1.0/$metadata#directoryObjects"
	path := "/v1.0/groups/" + url.PathEscape(gid) + "/members"
	if cast != "" {
		ctx = s.ts.URL + "/v1.0/$metadata#" + strings.TrimPrefix(cast, "microsoft.graph.") + "s"
		path += "/" + cast
	}
	out := map[string]any{"@odata.context": ctx, "value": value}
	if skip+top < len(items) {
		out["@odata.nextLink"] = s.nextLink(path, q, skip+top)
	}
	return jsonResp(http.StatusOK, out)
}

// refID extracts the object id from an @odata.id reference:
// {graph}/v1.0/directoryObjects/{id} (or /users/{id}, /groups/{id}), on
// this fake's host or graph.microsoft.com.
func (s *Server) refID(ref string) (string, bool) {
	u, err := url.Parse(ref)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	self, _ := url.Parse(s.ts.URL)
	if !(u.Scheme == "https" && strings.EqualFold(u.Host, "graph.microsoft.com")) &&
		!(u.Scheme == self.Scheme && u.Host == self.Host) {
		return "", false
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(segs) != 3 || segs[0] != "v1.0" || segs[2] == "" ||
		(segs[1] != "directoryObjects" && segs[1] != "users" && segs[1] != "groups") {
		return "", false
	}
	return segs[2], true
}

func (s *Server) addMember(gid string, body []byte, now time.Time) *fakehttp.Response {
	g := s.groups[gid]
	if g == nil {
		return notFound(gid)
	}
	m, ae := decodeObject(body)
	if ae != nil {
		return errResp(ae.status, ae.code, ae.message)
	}
	var ref string
	raw, ok := m["@odata.id"]
	if !ok || json.Unmarshal(raw, &ref) != nil || len(m) != 1 {
		return errResp(http.StatusBadRequest, "BadRequest",
			"The request body must contain exactly one '@odata.id' reference to a directory object.")
	}
	id, ok := s.refID(ref)
	if !ok {
		return errResp(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid object identifier '%s'.", ref))
	}
	u, sg := s.users[id], s.groups[id]
	if u == nil && (sg == nil || sg == g) {
		return notFound(id)
	}
	if !s.groupVisible(g, now) || (u != nil && !s.visible(u, now)) || (sg != nil && !s.groupVisible(sg, now)) {
		return errResp(http.StatusBadRequest, "Request_BadRequest", MsgReferenceNotReplicated)
	}
	if g.MailEnabled && !contains(g.GroupTypes, "Unified") {
		return errResp(http.StatusBadRequest, "Request_BadRequest", MsgMailEnabledUpdate)
	}
	if g.isMember(id) {
		return errResp(http.StatusBadRequest, "Request_BadRequest", MsgMemberExists)
	}
	g.Members = append(g.Members, id)
	return &fakehttp.Response{Status: http.StatusNoContent}
}

func (s *Server) removeMember(gid, uid string) *fakehttp.Response {
	g := s.groups[gid]
	if g == nil {
		return notFound(gid)
	}
	if g.MailEnabled && !contains(g.GroupTypes, "Unified") {
		return errResp(http.StatusBadRequest, "Request_BadRequest", MsgMailEnabledUpdate)
	}
	for i, m := range g.Members {
		if m == uid {
			g.Members = append(g.Members[:i], g.Members[i+1:]...)
			return &fakehttp.Response{Status: http.StatusNoContent}
		}
	}
	return notFound(uid)
}
