package adimport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/delegation"
)

// inChain is LDAP_MATCHING_RULE_IN_CHAIN: transitive membership.
const inChain = "1.2.840.113556.1.4.1941"

// opTimeout bounds each search of a cycle: these are bulk reads, not logins.
const opTimeout = 60 * time.Second

// pageSize is AD's MaxPageSize.
const pageSize = 1000

// conn is one bound connection to a DC of the domain.
type conn struct {
	l   *ldap.Conn
	url string
	// dc is the DC's dsServiceName and invocationId: what its USNs
	// belong to.
	dc         string
	highestUSN int64
}

// dial connects to the first DC that answers, in the configured order
// (the delegation block's failover rules: ldaps://, or ldap:// with
// StartTLS, or plain only with allow_insecure), and binds as the service
// account.
func dial(ctx context.Context, d delegation.Domain, dialer func(ctx context.Context, addr string) (net.Conn, error)) (*conn, error) {
	var errs []error
	for _, raw := range d.URLs {
		c, err := dialOne(ctx, d, raw, dialer)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", raw, err))
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials {
			break // every DC would refuse the service account
		}
	}
	return nil, errors.Join(errs...)
}

func dialOne(ctx context.Context, d delegation.Domain, raw string, dialer func(ctx context.Context, addr string) (net.Conn, error)) (*conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"ldaps": "636", "ldap": "389"}[scheme]
	}
	if scheme == "ldap" && !d.StartTLS && !d.AllowInsecure {
		return nil, errors.New("plain ldap:// needs start_tls or allow_insecure")
	}
	name := d.ServerName
	if name == "" {
		name = u.Hostname()
	}
	tc := &tls.Config{RootCAs: d.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}
	ct := d.ConnectTimeout
	if ct <= 0 {
		ct = 5 * time.Second
	}
	if ct < 2*time.Second {
		ct = 2 * time.Second // a bulk import can wait a little longer than a login
	}
	dctx, cancel := context.WithTimeout(ctx, ct)
	defer cancel()
	if dialer == nil {
		var nd net.Dialer
		dialer = func(ctx context.Context, addr string) (net.Conn, error) { return nd.DialContext(ctx, "tcp", addr) }
	}
	rawc, err := dialer(dctx, net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, err
	}
	var nc net.Conn = rawc
	if scheme == "ldaps" {
		t := tls.Client(rawc, tc)
		if err := t.HandshakeContext(dctx); err != nil {
			rawc.Close()
			return nil, err
		}
		nc = t
	}
	l := ldap.NewConn(nc, scheme == "ldaps")
	l.Start()
	l.SetTimeout(opTimeout)
	if scheme == "ldap" && d.StartTLS {
		if err := l.StartTLS(tc); err != nil {
			l.Close()
			return nil, err
		}
	}
	if err := l.Bind(d.BindDN, string(d.BindPassword.Bytes())); err != nil {
		l.Close()
		return nil, fmt.Errorf("the service account (bind_dn) was refused: %w", err)
	}
	c := &conn{l: l, url: raw}
	res, err := l.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"dsServiceName", "highestCommittedUSN"}, nil))
	if err != nil || len(res.Entries) == 0 {
		l.Close()
		return nil, fmt.Errorf("reading the rootDSE: %v", err)
	}
	c.dc = res.Entries[0].GetAttributeValue("dsServiceName")
	c.highestUSN, _ = strconv.ParseInt(res.Entries[0].GetAttributeValue("highestCommittedUSN"), 10, 64)
	// A DC restored from a backup keeps its name but reuses USNs; its
	// invocationId changes, so it is part of the DC's identity and the
	// mark is not reused across a restore.
	if c.dc != "" {
		if nt, err := l.Search(ldap.NewSearchRequest(c.dc, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"invocationId"}, nil)); err == nil && len(nt.Entries) == 1 {
			if id := guidString(nt.Entries[0].GetRawAttributeValue("invocationId")); id != "" {
				c.dc += " (invocationId " + id + ")"
			}
		}
	}
	return c, nil
}

func (c *conn) Close() { c.l.Close() }

// adUser is one user object as read from AD.
type adUser struct {
	DN, GUID                 string
	Sam, UPN, Mail           string
	GivenName, SN, Display   string
	UAC                      int64
	AccountExpires           int64
	AdminCount               int
	PrimaryGroupID           int
	USNChanged               int64
	PwdLastSet               string            // raw: 100 ns ticks since 1601; "0" = must change at next logon
	Extra                    map[string]string // gateway attribute name -> value (additional attributes)
	ManagerDN                string
	objectClassGroup, isUser bool
}

// extraAttrs maps AD attributes to the gateway's attribute names.
var extraAttrs = []struct{ ad, gw string }{
	{"description", "description"},
	{"title", "title"},
	{"department", "department"},
	{"company", "company"},
	{"l", "location"},
	{"employeeType", "employeeType"},
	{"telephoneNumber", "telephoneNumber"},
	{"mobile", "mobile"},
	{"postalAddress", "postalAddress"},
	{"streetAddress", "streetAddress"}, // folded into postalAddress
}

func userAttributes() []string {
	a := []string{"objectGUID", "objectClass", "sAMAccountName", "userPrincipalName", "mail", "givenName", "sn", "displayName",
		"userAccountControl", "accountExpires", "adminCount", "primaryGroupID", "uSNChanged", "manager", "pwdLastSet"}
	for _, x := range extraAttrs {
		a = append(a, x.ad)
	}
	return a
}

func parseUser(e *ldap.Entry) adUser {
	num := func(a string) int64 { n, _ := strconv.ParseInt(e.GetAttributeValue(a), 10, 64); return n }
	u := adUser{DN: e.DN, GUID: guidString(e.GetRawAttributeValue("objectGUID")),
		Sam: e.GetAttributeValue("sAMAccountName"), UPN: e.GetAttributeValue("userPrincipalName"),
		Mail: e.GetAttributeValue("mail"), GivenName: e.GetAttributeValue("givenName"), SN: e.GetAttributeValue("sn"),
		Display: e.GetAttributeValue("displayName"), UAC: num("userAccountControl"), AccountExpires: num("accountExpires"),
		AdminCount: int(num("adminCount")), PrimaryGroupID: int(num("primaryGroupID")), USNChanged: num("uSNChanged"),
		ManagerDN: e.GetAttributeValue("manager"), PwdLastSet: e.GetAttributeValue("pwdLastSet"), Extra: map[string]string{}}
	for _, oc := range e.GetAttributeValues("objectClass") {
		switch strings.ToLower(oc) {
		case "group":
			u.objectClassGroup = true
		case "user":
			u.isUser = true
		}
	}
	for _, x := range extraAttrs {
		if v := strings.TrimSpace(e.GetAttributeValue(x.ad)); v != "" {
			u.Extra[x.gw] = v
		}
	}
	if u.Extra["postalAddress"] == "" && u.Extra["streetAddress"] != "" {
		u.Extra["postalAddress"] = u.Extra["streetAddress"]
	}
	delete(u.Extra, "streetAddress")
	return u
}

// adGroup is one group object with its complete direct member list.
type adGroup struct {
	DN, GUID, Name string
	RID            int
	Members        []string // DNs
}

// guidString renders a 16-byte objectGUID in its usual text form.
func guidString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// ridOf is the last sub-authority of an objectSid (primaryGroupID refers to it).
func ridOf(sid []byte) int {
	if len(sid) < 12 {
		return 0
	}
	return int(binary.LittleEndian.Uint32(sid[len(sid)-4:]))
}

// rangeStep is the width of each member window asked for: AD's default
// MaxValRange. A DC with a smaller limit answers a shorter slice, and the
// next window starts after the slice it sent.
const rangeStep = 1500

// rangeAttr names the member window that starts at lo.
func rangeAttr(lo int) string { return fmt.Sprintf("member;range=%d-%d", lo, lo+rangeStep-1) }

// fetchFunc reads one attribute (a member;range=... request) of one object.
type fetchFunc func(dn, attr string) (*ldap.Entry, error)

// parseRange reads "member;range=LO-HI" (HI "*": the last slice).
func parseRange(name string) (lo, hi int, last, ok bool) {
	_, r, found := strings.Cut(strings.ToLower(name), ";range=")
	if !found || !strings.HasPrefix(strings.ToLower(name), "member;") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false, false
	}
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false, false
	}
	if b == "*" {
		return lo, 0, true, true
	}
	hi, err = strconv.Atoi(b)
	if err != nil || hi < lo {
		return 0, 0, false, false
	}
	return lo, hi, false, true
}

// completeMembers returns every member of the group in e. A plain
// "member" with no "member;range=" attribute is complete. With one (AD
// sends an empty "member" plus "member;range=0-1499" for a big group,
// whether asked or not), the next slices are fetched until the one that
// ends in "*" (or a window past the end, which has no member values at
// all): an empty "member" then never means "no members". A slice
// that cannot be read fails the whole read, so a group is never mirrored
// with part of its members.
func completeMembers(e *ldap.Entry, fetch fetchFunc) ([]string, error) {
	var out []string
	var ranged *ldap.EntryAttribute
	for _, a := range e.Attributes {
		if _, _, _, ok := parseRange(a.Name); ok {
			ranged = a
		} else if strings.EqualFold(a.Name, "member") {
			out = append(out, a.Values...)
		}
	}
	if ranged == nil {
		return out, nil
	}
	out = append(out, ranged.Values...)
	_, hi, last, _ := parseRange(ranged.Name)
	for guard := 0; !last; guard++ {
		if guard > 100000 {
			return nil, fmt.Errorf("group %s: ranged retrieval does not end", e.DN)
		}
		next := hi + 1
		ne, err := fetch(e.DN, rangeAttr(next))
		if err != nil {
			return nil, fmt.Errorf("group %s: reading members from %d: %w", e.DN, next, err)
		}
		var got *ldap.EntryAttribute
		plain := false
		for _, a := range ne.Attributes {
			if _, _, _, ok := parseRange(a.Name); ok {
				got = a
			} else if strings.EqualFold(a.Name, "member") {
				plain = true
			}
		}
		if got == nil && !plain {
			// Nothing at that offset: the list ended with the previous
			// slice (its length was a multiple of the window, or members
			// were removed between reads). Samba answers a window past
			// the end this way.
			break
		}
		if got == nil {
			return nil, fmt.Errorf("group %s: the DC answered the member range from %d with a plain member attribute (it does not do ranged retrieval)", e.DN, next)
		}
		lo, h, l, _ := parseRange(got.Name)
		if lo != next {
			return nil, fmt.Errorf("group %s: asked for members from %d, got %s", e.DN, next, got.Name)
		}
		out = append(out, got.Values...)
		hi, last = h, l
	}
	return out, nil
}

// fetch reads one attribute of one object (base search).
func (c *conn) fetch(dn, attr string) (*ldap.Entry, error) {
	res, err := c.l.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{attr}, nil))
	if err != nil {
		return nil, err
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("%s: %d entries", dn, len(res.Entries))
	}
	return res.Entries[0], nil
}

// search runs a paged subtree search and drops referrals.
func (c *conn) search(base, filter string, attrs []string) ([]*ldap.Entry, error) {
	res, err := c.l.SearchWithPaging(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, attrs, nil), pageSize)
	if err != nil {
		return nil, err
	}
	out := res.Entries[:0]
	for _, e := range res.Entries {
		if e.DN != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

// inChainUnsupported says whether err means the DC lacks IN_CHAIN.
func inChainUnsupported(err error) bool {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.ResultCode {
	case ldap.LDAPResultInappropriateMatching, ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultProtocolError, ldap.LDAPResultUnavailableCriticalExtension:
		return true
	}
	return false
}
