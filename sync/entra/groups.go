package entra

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// Security groups (SPEC 4.4) and user import (SPEC 4.7).

var (
	_ gsync.GroupConnector = (*Connector)(nil)
	_ gsync.Importer       = (*Connector)(nil)
)

const (
	// groupPageSize and memberPageSize are the $top of group and member
	// lists (Graph's maximum for both is 999).
	groupPageSize  = 999
	memberPageSize = 999
	// ImportPageSize is the $top of ListUsers: one page per call.
	ImportPageSize = 100
	// maxPages bounds a walk through @odata.nextLink pages within one
	// call (FindGroups, ListMembers): about a million members, and a
	// guard against a server that links back to an earlier page.
	maxPages = 1000

	// importSelect is what ListUsers reads. accountEnabled is selected
	// although the filter asks for enabled users only, so that a proxy or
	// replica that ignores $filter cannot slip a disabled account in.
	importSelect = "id,userPrincipalName,mail,mailNickname,givenName,surname,displayName,accountEnabled"
)

type graphGroup struct {
	ID              string `json:"id"`
	DisplayName     string `json:"displayName"`
	SecurityEnabled bool   `json:"securityEnabled"`
	MailEnabled     bool   `json:"mailEnabled"`
}

type groupPage struct {
	Value    []graphGroup `json:"value"`
	NextLink string       `json:"@odata.nextLink"`
}

// FindGroups returns every security group (securityEnabled true,
// mailEnabled false: SPEC 4.4) whose displayName is name, compared
// case-insensitively: GET /groups?$filter=displayName eq '<name>' (quotes
// doubled, as OData string literals require), every page. Graph's eq is
// already case-insensitive; the comparison is repeated here so that only
// exact matches come back whatever the server does. None is an empty
// slice. Distribution lists, mail-enabled security groups and Microsoft
// 365 groups of that name are not ours to take over (Graph cannot change
// the members of the first two), so the engine creates a security group
// beside them.
func (c *Connector) FindGroups(ctx context.Context, name string) ([]gsync.RemoteGroup, error) {
	op := "find groups named " + name
	if strings.TrimSpace(name) == "" {
		return nil, c.permanent("find groups", "the group name is empty")
	}
	filter := "displayName eq '" + strings.ReplaceAll(name, "'", "''") + "'"
	path := "/groups?$filter=" + queryEscape(filter) + "&$select=id,displayName,securityEnabled,mailEnabled&$top=" + strconv.Itoa(groupPageSize)
	out := []gsync.RemoteGroup{}
	for pages := 0; ; pages++ {
		if pages == maxPages {
			return nil, c.permanent(op, "Graph returned more pages than expected; giving up")
		}
		var page groupPage
		if _, err := c.do(ctx, op, http.MethodGet, path, nil, &page, nil); err != nil {
			return nil, err
		}
		for _, g := range page.Value {
			if g.ID != "" && strings.EqualFold(g.DisplayName, name) && g.SecurityEnabled && !g.MailEnabled {
				out = append(out, gsync.RemoteGroup{ID: g.ID, Name: g.DisplayName})
			}
		}
		if page.NextLink == "" {
			return out, nil
		}
		next, err := c.followLink(op, page.NextLink)
		if err != nil {
			return nil, err
		}
		path = next
	}
}

// CreateGroup creates a security group: POST /groups with displayName,
// description (when not empty), mailEnabled false, mailNickname (the
// spec's, or else the name's, reduced to the characters Entra accepts)
// and securityEnabled true. Graph has no idempotency key: the engine
// looks the name up (FindGroups) and records the id before any retry.
func (c *Connector) CreateGroup(ctx context.Context, spec gsync.GroupSpec) (*gsync.RemoteGroup, error) {
	op := "create group " + spec.Name
	name := strings.TrimSpace(spec.Name)
	switch {
	case name == "":
		return nil, c.permanent("create group", "the group name is empty")
	case utf8.RuneCountInString(spec.Name) > 256:
		return nil, c.permanent(op, "Entra ID group names are at most 256 characters")
	case !utf8.ValidString(spec.Name) || !utf8.ValidString(spec.Description):
		return nil, c.permanent(op, "the group name or description is not valid UTF-8")
	}
	fields := map[string]any{
		"displayName":     spec.Name,
		"mailEnabled":     false,
		"mailNickname":    groupNickname(spec),
		"securityEnabled": true,
	}
	if spec.Description != "" {
		fields["description"] = spec.Description
	}
	body, err := jsonBody(fields)
	if err != nil {
		return nil, c.permanent(op, err.Error())
	}
	var g graphGroup
	if _, err := c.do(ctx, op, http.MethodPost, "/groups", body, &g, nil); err != nil {
		return nil, err
	}
	if g.ID == "" {
		return nil, c.permanent(op, "Graph answered without an object id")
	}
	if g.DisplayName == "" {
		g.DisplayName = spec.Name
	}
	return &gsync.RemoteGroup{ID: g.ID, Name: g.DisplayName}, nil
}

// groupNickname is the group's mailNickname: required by Graph even for
// groups without mail, non-empty, ASCII without @ ( ) \ [ ] " ; : < > ,
// or spaces, at most 64 characters.
func groupNickname(spec gsync.GroupSpec) string {
	if n := sanitizeNickname(spec.MailNickname, ""); n != "" {
		return n
	}
	return sanitizeNickname(spec.Name, "group")
}

// AddMember adds a user to a group: POST /groups/{id}/members/$ref with
// {"@odata.id": "{graph_url}/v1.0/directoryObjects/{userID}"}. Graph
// answers 400 "One or more added object references already exist ..."
// for an existing member; that is success here (idempotent). A missing
// group or user is sync.ErrNotFound; a group or user created moments ago
// may be refused until it replicates, which is a transient error.
func (c *Connector) AddMember(ctx context.Context, groupID, userID string) error {
	op := "add user " + userID + " to group " + groupID
	if strings.TrimSpace(groupID) == "" || strings.TrimSpace(userID) == "" {
		return c.permanent("add group member", "the group or user object id is empty")
	}
	body, err := jsonBody(map[string]any{"@odata.id": c.graph + "/directoryObjects/" + escapeSegment(userID)})
	if err != nil {
		return c.permanent(op, err.Error())
	}
	_, err = c.exec(ctx, op, http.MethodPost, "/groups/"+escapeSegment(groupID)+"/members/$ref", body, nil, nil,
		func(status int, ge *graphError) bool {
			return status == http.StatusBadRequest &&
				strings.Contains(strings.ToLower(ge.Error.Message), "object references already exist")
		})
	return err
}

// RemoveMember removes a user from a group: DELETE
// /groups/{id}/members/{userID}/$ref. Graph answers 404 when the user is
// not a member (or the group or user is gone): that is success here
// (idempotent). A 404 without Graph's error body is not Graph's, and
// stays an error (check graph_url).
func (c *Connector) RemoveMember(ctx context.Context, groupID, userID string) error {
	op := "remove user " + userID + " from group " + groupID
	if strings.TrimSpace(groupID) == "" || strings.TrimSpace(userID) == "" {
		return c.permanent("remove group member", "the group or user object id is empty")
	}
	path := "/groups/" + escapeSegment(groupID) + "/members/" + escapeSegment(userID) + "/$ref"
	_, err := c.exec(ctx, op, http.MethodDelete, path, nil, nil, nil, func(status int, ge *graphError) bool {
		switch status {
		case http.StatusNotFound:
			return ge.Error.Code != ""
		case http.StatusBadRequest:
			return strings.Contains(strings.ToLower(ge.Error.Message), "object references do not exist")
		}
		return false
	})
	return err
}

type memberPage struct {
	Value []struct {
		Type string `json:"@odata.type"`
		ID   string `json:"id"`
	} `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// ListMembers returns the object ids of the group's direct members that
// are users: GET /groups/{id}/members?$select=id, every page, keeping
// the items whose @odata.type is #microsoft.graph.user (nested groups,
// devices and service principals are left out; an item without a type is
// left out too, rather than taken for a user). The plain members list
// needs no advanced-query headers. A missing group is sync.ErrNotFound.
func (c *Connector) ListMembers(ctx context.Context, groupID string) ([]string, error) {
	op := "list members of group " + groupID
	if strings.TrimSpace(groupID) == "" {
		return nil, c.permanent("list group members", "the group object id is empty")
	}
	path := "/groups/" + escapeSegment(groupID) + "/members?$select=id&$top=" + strconv.Itoa(memberPageSize)
	out := []string{}
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages == maxPages {
			return nil, c.permanent(op, "Graph returned more pages than expected; giving up")
		}
		var page memberPage
		if _, err := c.do(ctx, op, http.MethodGet, path, nil, &page, nil); err != nil {
			return nil, err
		}
		for _, m := range page.Value {
			if m.ID != "" && strings.EqualFold(m.Type, "#microsoft.graph.user") && !seen[m.ID] {
				seen[m.ID] = true
				out = append(out, m.ID)
			}
		}
		if page.NextLink == "" {
			return out, nil
		}
		next, err := c.followLink(op, page.NextLink)
		if err != nil {
			return nil, err
		}
		path = next
	}
}

type importUser struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	Mail              string `json:"mail"`
	MailNickname      string `json:"mailNickname"`
	GivenName         string `json:"givenName"`
	Surname           string `json:"surname"`
	DisplayName       string `json:"displayName"`
	AccountEnabled    *bool  `json:"accountEnabled"`
}

type userPage struct {
	Value    []importUser `json:"value"`
	NextLink string       `json:"@odata.nextLink"`
}

// ListUsers returns one page of the tenant's enabled users (SPEC 4.7)
// and the token of the next page, "" after the last.
//
// The first page ("" token) is GET /users?$filter=accountEnabled eq
// true&$select=...&$top=100. eq on accountEnabled is one of the filters
// Graph serves by default, so no ConsistencyLevel header or $count is
// sent (only ne/not on it would need those advanced-query parameters).
// The next-page token is Graph's @odata.nextLink, an absolute URL; it is
// followed only when it points at the configured graph_url (see
// followLink), both when Graph returns it and when a caller hands it
// back, so a stored or forged token can never send the bearer token to
// another host.
func (c *Connector) ListUsers(ctx context.Context, pageToken string) ([]gsync.ImportUser, string, error) {
	const op = "list users for import"
	path := "/users?$filter=" + queryEscape("accountEnabled eq true") + "&$select=" + importSelect +
		"&$top=" + strconv.Itoa(ImportPageSize)
	if pageToken != "" {
		p, err := c.followLink(op, pageToken)
		if err != nil {
			return nil, "", err
		}
		path = p
	}
	var page userPage
	if _, err := c.do(ctx, op, http.MethodGet, path, nil, &page, nil); err != nil {
		return nil, "", err
	}
	out := make([]gsync.ImportUser, 0, len(page.Value))
	for _, u := range page.Value {
		if u.ID == "" || (u.AccountEnabled != nil && !*u.AccountEnabled) {
			continue
		}
		out = append(out, gsync.ImportUser{
			ID:           u.ID,
			UPN:          u.UserPrincipalName,
			Mail:         u.Mail,
			MailNickname: u.MailNickname,
			GivenName:    u.GivenName,
			Surname:      u.Surname,
			DisplayName:  u.DisplayName,
		})
	}
	if page.NextLink != "" {
		if _, err := c.followLink(op, page.NextLink); err != nil {
			return nil, "", err
		}
	}
	return out, page.NextLink, nil
}

// followLink turns an @odata.nextLink (or a page token made of one) into
// a path under the configured Graph endpoint, for do. Following a link
// sends our bearer token with it, so a link is followed only when it has
// graph_url's scheme, host and port, lies under its /v1.0 path, and has
// no credentials, fragment or dot segments. Anything else — another host
// (a compromised proxy, a tampered stored token), plain http, another
// API version — is refused with a permanent error and never requested.
func (c *Connector) followLink(op, link string) (string, error) {
	if rel, ok := c.relLink(link); ok {
		return rel, nil
	}
	shown := link
	if u, err := url.Parse(link); err == nil {
		shown = u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	if len(shown) > 200 {
		shown = shown[:200] + "..."
	}
	return "", c.permanent(op, "refusing to follow a next-page link that does not point at this directory's graph_url "+
		c.graph+": "+shown)
}

func (c *Connector) relLink(link string) (string, bool) {
	base, err := url.Parse(c.graph)
	if err != nil {
		return "", false
	}
	u, err := url.Parse(link)
	if err != nil || u.Opaque != "" || u.User != nil || u.Fragment != "" ||
		!strings.EqualFold(u.Scheme, base.Scheme) ||
		!strings.EqualFold(u.Hostname(), base.Hostname()) || effectivePort(u) != effectivePort(base) {
		return "", false
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), base.EscapedPath()+"/")
	if !ok || rest == "" {
		return "", false
	}
	for _, seg := range strings.Split(rest, "/") {
		if s, err := url.PathUnescape(seg); err != nil || s == "" || s == "." || s == ".." {
			return "", false
		}
	}
	rel := "/" + rest
	if u.RawQuery != "" {
		rel += "?" + u.RawQuery
	}
	return rel, true
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// queryEscape percent-encodes a query value: everything but RFC 3986
// unreserved characters, so spaces are %20 (never '+', which OData may
// read as a literal plus) and quotes %27.
func queryEscape(s string) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~':
			b.WriteByte(ch)
		default:
			b.WriteByte('%')
			b.WriteByte(hexdig[ch>>4])
			b.WriteByte(hexdig[ch&15])
		}
	}
	return b.String()
}
