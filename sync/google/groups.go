package google

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	admin "google.golang.org/api/admin/directory/v1"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// pageSize is the maxResults of group and member listings (Google's
// maximum for both is 200).
const pageSize = 200

// maxPages bounds a listing, should a server keep answering with a next
// page token.
const maxPages = 1000

// FindGroups returns the customer's groups named name (case-insensitive,
// exact), from Groups.List with the query name='...'. Google matches the
// query loosely, so the answer is filtered again here.
func (c *Connector) FindGroups(ctx context.Context, name string) ([]gsync.RemoteGroup, error) {
	name = strings.TrimSpace(name)
	op := fmt.Sprintf("find groups named %q", name)
	if name == "" {
		return nil, c.permanent("find groups", "the group name is empty")
	}
	out := []gsync.RemoteGroup{}
	token := ""
	for range maxPages {
		cctx, cancel := c.call(ctx)
		call := c.svc.Groups.List().Customer(c.customer).Query(groupQuery(name)).MaxResults(pageSize).
			Fields("nextPageToken", "groups(id,name,email)").Context(cctx)
		if token != "" {
			call = call.PageToken(token)
		}
		res, err := call.Do()
		cancel()
		if err != nil {
			return nil, c.classify(ctx, op, err, kindGroup)
		}
		for _, g := range res.Groups {
			if g != nil && g.Id != "" && strings.EqualFold(strings.TrimSpace(g.Name), name) {
				out = append(out, gsync.RemoteGroup{ID: g.Id, Name: g.Name})
			}
		}
		if token = res.NextPageToken; token == "" {
			return out, nil
		}
	}
	return nil, c.permanent(op, "the group listing did not end")
}

// groupQuery is the Directory API search clause for an exact name:
// name='...' with backslashes and single quotes escaped by a backslash.
func groupQuery(name string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "name='" + r.Replace(name) + "'"
}

// maxEmailTries is how many group emails CreateGroup tries: local@,
// local-2@ ... local-9@.
const maxEmailTries = 9

// CreateGroup creates a Google group named g.Name with the email
// <g.MailNickname>@<domain> (SPEC 4.4). Google requires a unique email:
// when it is taken, the existing holder is read. A group with the same
// name and no members is what an earlier attempt of this very call
// created before its answer was lost, so it is returned (a retry must
// neither fail nor create a second group). Anything else holding the
// email (another group, a user, an alias, or a same-named group with
// members — the engine creates a new group beside several same-named
// ones) makes it try <nickname>-2@ up to -9@.
func (c *Connector) CreateGroup(ctx context.Context, g gsync.GroupSpec) (*gsync.RemoteGroup, error) {
	name := strings.TrimSpace(g.Name)
	op := fmt.Sprintf("create group %q", name)
	if name == "" {
		return nil, c.permanent("create group", "the group name is empty")
	}
	local := groupLocalPart(g.MailNickname)
	if local == "" {
		local = groupLocalPart(name)
	}
	if local == "" {
		return nil, c.permanent(op, "cannot derive a group email address from the name: give the group a name with letters or digits")
	}
	desc := truncRunes(strings.TrimSpace(g.Description), 4096)
	var conflict error
	for i := 1; i <= maxEmailTries; i++ {
		l := local
		if i > 1 {
			suffix := "-" + strconv.Itoa(i)
			l = strings.TrimRight(local[:min(len(local), 64-len(suffix))], ".-_") + suffix
		}
		email := l + "@" + c.domain
		cop := op + " (" + email + ")"
		cctx, cancel := c.call(ctx)
		got, err := c.svc.Groups.Insert(&admin.Group{Email: email, Name: name, Description: desc}).Context(cctx).Do()
		cancel()
		if err == nil {
			if got.Id == "" {
				return nil, c.permanent(cop, "Google answered without a group id")
			}
			return &gsync.RemoteGroup{ID: got.Id, Name: got.Name}, nil
		}
		if apiStatus(err) != http.StatusConflict {
			return nil, c.classify(ctx, cop, err, kindGroup)
		}
		conflict = c.classify(ctx, cop, err, kindGroup)
		cctx, cancel = c.call(ctx)
		ex, gerr := c.svc.Groups.Get(email).Context(cctx).Do()
		cancel()
		switch {
		case gerr == nil && ex.Id != "" && strings.EqualFold(strings.TrimSpace(ex.Name), name) && ex.DirectMembersCount == 0:
			c.log.Debug("group already created by an earlier attempt", "op", cop, "id", ex.Id)
			return &gsync.RemoteGroup{ID: ex.Id, Name: ex.Name}, nil
		case gerr == nil, errors.Is(c.classify(ctx, cop, gerr, kindGroup), gsync.ErrNotFound):
			// Held by another group, or (404) by a user or an alias:
			// try the next address.
			c.log.Debug("group email taken; trying another", "op", cop)
		default:
			return nil, c.classify(ctx, cop, gerr, kindGroup)
		}
	}
	return nil, conflict
}

// groupLocalPart keeps what Google allows in a group email's local part:
// lower-case letters, digits, '-', '_' and single dots; spaces become
// '-'; at most 64 characters; no leading or trailing separator.
func groupLocalPart(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), "-"))
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == '.':
			if b.Len() > 0 && !strings.HasSuffix(b.String(), ".") {
				b.WriteByte('.')
			}
		}
	}
	return strings.Trim(b.String(), ".-_")
}

// AddMember adds the user (by id) to the group as a MEMBER; an existing
// membership (409) is not an error.
func (c *Connector) AddMember(ctx context.Context, groupID, userID string) error {
	groupID, userID = strings.TrimSpace(groupID), strings.TrimSpace(userID)
	op := fmt.Sprintf("add user %s to group %s", userID, groupID)
	if groupID == "" || userID == "" {
		return c.permanent("add member", "the group id or the user id is empty")
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.svc.Members.Insert(groupID, &admin.Member{Id: userID, Role: "MEMBER"}).Context(cctx).Do()
	if err == nil || apiStatus(err) == http.StatusConflict {
		return nil
	}
	return c.classify(ctx, op, err, kindGroup)
}

// RemoveMember removes the user (by id) from the group; a missing
// membership (404) is not an error.
func (c *Connector) RemoveMember(ctx context.Context, groupID, userID string) error {
	groupID, userID = strings.TrimSpace(groupID), strings.TrimSpace(userID)
	op := fmt.Sprintf("remove user %s from group %s", userID, groupID)
	if groupID == "" || userID == "" {
		return c.permanent("remove member", "the group id or the user id is empty")
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	err := c.svc.Members.Delete(groupID, userID).Context(cctx).Do()
	if err == nil {
		return nil
	}
	if err := c.classify(ctx, op, err, kindGroup); !errors.Is(err, gsync.ErrNotFound) {
		return err
	}
	return nil
}

// ListMembers returns the ids of the group's direct members of type
// USER (groups and customers nested in it are left out).
func (c *Connector) ListMembers(ctx context.Context, groupID string) ([]string, error) {
	groupID = strings.TrimSpace(groupID)
	op := "list members of group " + groupID
	if groupID == "" {
		return nil, c.permanent("list members", "the group id is empty")
	}
	out := []string{}
	token := ""
	for range maxPages {
		cctx, cancel := c.call(ctx)
		call := c.svc.Members.List(groupID).MaxResults(pageSize).
			Fields("nextPageToken", "members(id,type)").Context(cctx)
		if token != "" {
			call = call.PageToken(token)
		}
		res, err := call.Do()
		cancel()
		if err != nil {
			return nil, c.classify(ctx, op, err, kindGroup)
		}
		for _, m := range res.Members {
			if m != nil && m.Id != "" && (m.Type == "" || m.Type == "USER") {
				out = append(out, m.Id)
			}
		}
		if token = res.NextPageToken; token == "" {
			return out, nil
		}
	}
	return nil, c.permanent(op, "the member listing did not end")
}
