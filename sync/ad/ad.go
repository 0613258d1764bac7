// Package ad writes gateway users and groups back to Active Directory
// (SPEC 6.5): a sync connector over LDAP. Accounts are named by the
// gateway username (sAMAccountName; UPN username@realm), identified by
// their objectGUID, created in the block's root container or taken over
// anywhere under the domain's base DN. Passwords go in unicodePwd over
// LDAPS or StartTLS only; sign-in is userAccountControl ACCOUNTDISABLE.
// Nothing is ever deleted. See README.md.
package ad

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"time"
	"unicode/utf16"

	ldap "github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/secret"
	gsync "github.com/gatewayd/gatewayd/sync"
)

// userAccountControl bits.
const (
	uacDisabled = 0x2
	uacNormal   = 0x200
)

// inChain is LDAP_MATCHING_RULE_IN_CHAIN (transitive membership).
const inChain = "1.2.840.113556.1.4.1941"

// Config is one write-back directory.
type Config struct {
	Name   string // the [[directory]] name
	Root   string // container of new objects; "" = CN=Users,<base>
	Server Server
	Logger *slog.Logger
}

// Connector is the AD write-back; safe for concurrent use.
type Connector struct {
	name   string
	root   string
	srv    Server
	log    *slog.Logger
	writes *prometheus.CounterVec

	mu   gosync.Mutex
	conn *ldap.Conn
	tls  bool // the connection is LDAPS or StartTLS
}

var (
	_ gsync.Connector      = (*Connector)(nil)
	_ gsync.GroupConnector = (*Connector)(nil)
	_ gsync.PrincipalNamer = (*Connector)(nil)
	_ gsync.PasswordFilter = (*Connector)(nil)
)

// New builds the connector; the first call connects.
func New(cfg Config) (*Connector, error) {
	s := cfg.Server
	if len(s.URLs) == 0 {
		return nil, errors.New("the [[ad]] block lists no domain controller URL")
	}
	if s.BindDN == "" || s.BindPassword.IsEmpty() {
		return nil, errors.New("the write-back needs the [[ad]] block's service account (bind_dn, bind_password) with rights to create users and groups in root, reset passwords and write userAccountControl and member")
	}
	if s.BaseDN == "" {
		s.BaseDN = baseDNOf(s.Realm)
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = 5 * time.Second
	}
	root := cfg.Root
	if root == "" {
		root = "CN=Users," + s.BaseDN
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Connector{name: cfg.Name, root: root, srv: s, log: log}
	c.writes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatewayd_sync_ad_writes_total",
		Help: "Writes the AD write-back made, by directory and operation (create_user, update_user, password, enable, disable, create_group, member_add, member_remove).",
	}, []string{"directory", "op"})
	if s.Registerer != nil {
		if err := s.Registerer.Register(c.writes); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			c.writes = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return c, nil
}

// baseDNOf turns EXAMPLE.TEST into DC=EXAMPLE,DC=TEST.
func baseDNOf(realm string) string {
	parts := strings.Split(realm, ".")
	for i, p := range parts {
		parts[i] = "DC=" + p
	}
	return strings.Join(parts, ",")
}

// PrincipalName: the gateway username is the sAMAccountName, the UPN is
// username@realm (lowercase).
func (c *Connector) PrincipalName(username, _ string) (string, error) {
	if err := checkSAM(username); err != nil {
		return "", err
	}
	return username + "@" + lower(c.srv.Realm), nil
}

// checkSAM refuses a username AD cannot hold as a sAMAccountName.
func checkSAM(s string) error {
	switch {
	case s == "":
		return errors.New("no username")
	case len([]rune(s)) > 20:
		return fmt.Errorf("username %q is longer than the 20 characters of a sAMAccountName", s)
	case strings.ContainsAny(s, "\"/\\[]:;|=,+*?<>@"):
		return fmt.Errorf("username %q holds a character a sAMAccountName cannot (\"/\\[]:;|=,+*?<>@)", s)
	case strings.HasSuffix(s, "."):
		return fmt.Errorf("username %q ends in '.', which a sAMAccountName cannot", s)
	}
	return nil
}

// TakesPasswordOf: only local-authority passwords are pushed; an AD-owned
// password is AD's (no loop with the import).
func (c *Connector) TakesPasswordOf(authority string) bool { return authority != "ad" }

func lower(s string) string { return strings.ToLower(s) }

// ---- connection ----------------------------------------------------------------

// ldapConn returns the shared connection, dialling the DCs in order.
func (c *Connector) ldapConn(ctx context.Context) (*ldap.Conn, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.IsClosing() {
		return c.conn, c.tls, nil
	}
	var errs []error
	for _, raw := range c.srv.URLs {
		l, tlsOn, err := c.dial(ctx, raw)
		if err == nil {
			c.conn, c.tls = l, tlsOn
			return l, tlsOn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", raw, err))
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials {
			return nil, false, &gsync.Error{Permanent: true, Status: 401, Code: "invalidCredentials",
				Message: "the [[ad]] block's service account (bind_dn, bind_password) was refused: " + errors.Join(errs...).Error()}
		}
	}
	return nil, false, &gsync.Error{Status: 503, Message: "no domain controller could be reached: " + errors.Join(errs...).Error()}
}

// drop forgets a connection that failed, so the next call dials again.
func (c *Connector) drop(l *ldap.Conn) {
	c.mu.Lock()
	if c.conn == l {
		c.conn = nil
	}
	c.mu.Unlock()
	l.Close()
}

func (c *Connector) dial(ctx context.Context, raw string) (*ldap.Conn, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false, err
	}
	scheme := lower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"ldaps": "636", "ldap": "389"}[scheme]
	}
	if scheme == "ldap" && !c.srv.StartTLS && !c.srv.AllowInsecure {
		return nil, false, errors.New("plain ldap:// needs start_tls or allow_insecure")
	}
	name := c.srv.ServerName
	if name == "" {
		name = u.Hostname()
	}
	tc := &tls.Config{RootCAs: c.srv.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}
	dctx, cancel := context.WithTimeout(ctx, c.srv.ConnectTimeout)
	defer cancel()
	dialer := c.srv.Dial
	if dialer == nil {
		var nd net.Dialer
		dialer = func(ctx context.Context, addr string) (net.Conn, error) { return nd.DialContext(ctx, "tcp", addr) }
	}
	rawc, err := dialer(dctx, net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, false, err
	}
	var nc net.Conn = rawc
	tlsOn := false
	if scheme == "ldaps" {
		t := tls.Client(rawc, tc)
		if err := t.HandshakeContext(dctx); err != nil {
			rawc.Close()
			return nil, false, err
		}
		nc, tlsOn = t, true
	}
	l := ldap.NewConn(nc, tlsOn)
	l.Start()
	l.SetTimeout(c.srv.Timeout)
	if scheme == "ldap" && c.srv.StartTLS {
		if err := l.StartTLS(tc); err != nil {
			l.Close()
			return nil, false, err
		}
		tlsOn = true
	}
	if err := l.Bind(c.srv.BindDN, string(c.srv.BindPassword.Bytes())); err != nil {
		l.Close()
		return nil, false, err
	}
	return l, tlsOn, nil
}

// classify turns an LDAP failure into the engine's error kinds.
func (c *Connector) classify(l *ldap.Conn, what string, err error) error {
	if err == nil {
		return nil
	}
	var le *ldap.Error
	if !errors.As(err, &le) {
		return err
	}
	code := le.ResultCode
	msg := fmt.Sprintf("%s: %s", what, strings.TrimSpace(le.Error()))
	e := &gsync.Error{Code: fmt.Sprintf("LDAP %d %s", code, ldap.LDAPResultCodeMap[code]), Message: msg, Status: 400, Permanent: true}
	switch code {
	case ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultTimeout, ldap.ErrorUnexpectedResponse:
		c.drop(l)
		e.Permanent, e.Status, e.Code = false, 503, "network"
	case ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultAdminLimitExceeded,
		ldap.LDAPResultOther, ldap.LDAPResultLoopDetect:
		e.Permanent, e.Status = false, 503
	case ldap.LDAPResultEntryAlreadyExists:
		// The engine retries a create that "already exists" as a lookup.
		e.Permanent, e.Status = false, 409
		e.Message = msg + " (already exists)"
	case ldap.LDAPResultNoSuchObject:
		return gsync.ErrNotFound
	case ldap.LDAPResultInsufficientAccessRights:
		e.Status = 403
		e.Message = msg + ": the service account (bind_dn) lacks the right; delegate it create/reset-password/write rights on " + c.root
	case ldap.LDAPResultConstraintViolation, ldap.LDAPResultUnwillingToPerform:
		if strings.Contains(what, "password") {
			e.Message = msg + ": the domain refused the password (its password policy, history or minimum age); align password_policy with it"
		}
	}
	return e
}

func (c *Connector) count(op string) { c.writes.WithLabelValues(c.name, op).Inc() }

// ---- lookups -------------------------------------------------------------------

var userAttrs = []string{"objectGUID", "sAMAccountName", "userPrincipalName", "userAccountControl"}

// search runs one subtree search under the base DN.
func (c *Connector) search(ctx context.Context, base, filter string, attrs []string) (*ldap.Conn, []*ldap.Entry, error) {
	l, _, err := c.ldapConn(ctx)
	if err != nil {
		return nil, nil, err
	}
	res, err := l.SearchWithPaging(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, attrs, nil), 1000)
	if err != nil {
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultNoSuchObject {
			return l, nil, nil
		}
		return nil, nil, c.classify(l, "search "+filter, err)
	}
	return l, res.Entries, nil
}

// entryByID reads an object by its objectGUID.
func (c *Connector) entryByID(ctx context.Context, id string, attrs []string) (*ldap.Conn, *ldap.Entry, error) {
	f, err := guidFilter(id)
	if err != nil {
		return nil, nil, &gsync.Error{Permanent: true, Status: 400, Message: err.Error()}
	}
	l, es, err := c.search(ctx, c.srv.BaseDN, f, attrs)
	if err != nil {
		return nil, nil, err
	}
	if len(es) == 0 {
		return nil, nil, gsync.ErrNotFound
	}
	return l, es[0], nil
}

func remoteUser(e *ldap.Entry) *gsync.RemoteUser {
	uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	return &gsync.RemoteUser{ID: guidString(e.GetRawAttributeValue("objectGUID")), UPN: e.GetAttributeValue("userPrincipalName"),
		Enabled: uac&uacDisabled == 0}
}

// LookupUser finds the account whose sAMAccountName is the UPN's local
// part, anywhere under the base DN (a takeover, SPEC 6.5).
func (c *Connector) LookupUser(ctx context.Context, upn string) (*gsync.RemoteUser, error) {
	sam, _, _ := strings.Cut(upn, "@")
	_, es, err := c.search(ctx, c.srv.BaseDN, fmt.Sprintf("(&(objectClass=user)(!(objectClass=computer))(sAMAccountName=%s))", ldap.EscapeFilter(sam)), userAttrs)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, gsync.ErrNotFound
	}
	return remoteUser(es[0]), nil
}

// GetUser reads an account by objectGUID.
func (c *Connector) GetUser(ctx context.Context, id string) (*gsync.RemoteUser, error) {
	_, e, err := c.entryByID(ctx, id, userAttrs)
	if err != nil {
		return nil, err
	}
	return remoteUser(e), nil
}

// ---- writes --------------------------------------------------------------------

// errPlain refuses a password over a connection without TLS.
func (c *Connector) errPlain() error {
	return &gsync.Error{Permanent: true, Status: 400, Code: "tls_required",
		Message: "unicodePwd is only sent over LDAPS or StartTLS, and the [[ad]] block reaches its DC over plain ldap://: use an ldaps:// URL or start_tls = true"}
}

// CreateUser creates the account in root with the password (a random
// strong one when pw is empty), enabled or not.
func (c *Connector) CreateUser(ctx context.Context, a gsync.Account, pw secret.String) (*gsync.RemoteUser, error) {
	sam, _, _ := strings.Cut(a.UPN, "@")
	l, tlsOn, err := c.ldapConn(ctx)
	if err != nil {
		return nil, err
	}
	if !tlsOn {
		return nil, c.errPlain()
	}
	var pwv string
	if pw.IsEmpty() {
		pwv = randomPassword()
	} else {
		pwv = string(pw.Bytes())
	}
	dn := fmt.Sprintf("CN=%s,%s", ldap.EscapeDN(sam), c.root)
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{sam})
	add.Attribute("userPrincipalName", []string{a.UPN})
	for k, v := range map[string]string{"givenName": a.GivenName, "sn": a.Surname, "displayName": a.DisplayName} {
		if v != "" {
			add.Attribute(k, []string{v})
		}
	}
	for k, v := range a.Attributes {
		if v != "" && k != ManagerProperty {
			add.Attribute(k, []string{v})
		}
	}
	add.Attribute("unicodePwd", []string{encodePassword(pwv)})
	uac := uacNormal
	if !a.Enabled {
		uac |= uacDisabled
	}
	add.Attribute("userAccountControl", []string{strconv.Itoa(uac)})
	if err := l.Add(add); err != nil {
		return nil, c.classify(l, "creating "+dn, err)
	}
	c.count("create_user")
	ru, err := c.LookupUser(ctx, a.UPN)
	if err != nil {
		return nil, err
	}
	// The manager needs the account to exist first; an update sets it.
	if a.ManagerID != "" {
		a.Attributes = nil
		if err := c.UpdateUser(ctx, ru.ID, a); err != nil {
			return ru, &gsync.AttributesRefused{Refused: []gsync.AttributeError{{Name: ManagerProperty, Message: err.Error()}}}
		}
	}
	return ru, nil
}

// UpdateUser sets the names and mapped attributes that differ from what
// the account holds (a read first, so an unchanged account gets no
// write: the import would read it back as a change otherwise).
func (c *Connector) UpdateUser(ctx context.Context, id string, a gsync.Account) error {
	want := map[string]string{"givenName": a.GivenName, "sn": a.Surname, "displayName": a.DisplayName}
	for k, v := range a.Attributes {
		if k != ManagerProperty {
			want[k] = v
		}
	}
	clear := map[string]bool{}
	for _, k := range a.Clear {
		if _, set := want[k]; !set && k != ManagerProperty {
			clear[k] = true
		}
	}
	attrs := []string{ManagerProperty}
	for k := range want {
		attrs = append(attrs, k)
	}
	for k := range clear {
		attrs = append(attrs, k)
	}
	l, e, err := c.entryByID(ctx, id, attrs)
	if err != nil {
		return err
	}
	mgrDN := ""
	if a.ManagerID != "" {
		_, me, err := c.entryByID(ctx, a.ManagerID, []string{"objectGUID"})
		if err != nil && !errors.Is(err, gsync.ErrNotFound) {
			return err
		}
		if me != nil {
			mgrDN = me.DN
		}
	}
	type change struct {
		attr string
		val  string // "" deletes
	}
	var names, mapped []change
	for _, k := range slices.Sorted(maps.Keys(want)) {
		v, cur := want[k], e.GetAttributeValue(k)
		if v == cur {
			continue
		}
		ch := change{k, v}
		if k == "givenName" || k == "sn" || k == "displayName" {
			names = append(names, ch)
		} else {
			mapped = append(mapped, ch)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(clear)) {
		if e.GetAttributeValue(k) != "" {
			mapped = append(mapped, change{k, ""})
		}
	}
	curMgr := e.GetAttributeValue(ManagerProperty)
	switch {
	case mgrDN != "" && !strings.EqualFold(mgrDN, curMgr):
		mapped = append(mapped, change{ManagerProperty, mgrDN})
	case a.ClearManager && curMgr != "":
		mapped = append(mapped, change{ManagerProperty, ""})
	}
	modify := func(chs []change) error {
		if len(chs) == 0 {
			return nil
		}
		m := ldap.NewModifyRequest(e.DN, nil)
		for _, ch := range chs {
			if ch.val == "" {
				if e.GetAttributeValue(ch.attr) != "" {
					m.Delete(ch.attr, nil)
				}
			} else {
				m.Replace(ch.attr, []string{ch.val})
			}
		}
		if len(m.Changes) == 0 {
			return nil
		}
		if err := l.Modify(m); err != nil {
			return c.classify(l, "updating "+e.DN, err)
		}
		c.count("update_user")
		return nil
	}
	err = modify(append(slices.Clone(names), mapped...))
	if err == nil || len(mapped) == 0 || !gsync.IsPermanent(err) {
		return err
	}
	// Refused: the names alone, then each attribute on its own; a refused
	// attribute fails only itself.
	if err := modify(names); err != nil {
		return err
	}
	var refused []gsync.AttributeError
	for _, ch := range mapped {
		if err := modify([]change{ch}); err != nil {
			if !gsync.IsPermanent(err) {
				return err
			}
			refused = append(refused, gsync.AttributeError{Name: ch.attr, Message: err.Error()})
		}
	}
	if len(refused) > 0 {
		return &gsync.AttributesRefused{Refused: refused}
	}
	return nil
}

// SetEnabled clears or sets ACCOUNTDISABLE, keeping the other bits; an
// account already so is not written.
func (c *Connector) SetEnabled(ctx context.Context, id string, enabled bool) error {
	l, e, err := c.entryByID(ctx, id, []string{"userAccountControl"})
	if err != nil {
		return err
	}
	uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	next := uac | uacDisabled
	op := "disable"
	if enabled {
		next, op = uac&^uacDisabled, "enable"
	}
	if next == uac {
		return nil
	}
	m := ldap.NewModifyRequest(e.DN, nil)
	m.Replace("userAccountControl", []string{strconv.FormatInt(next, 10)})
	if err := l.Modify(m); err != nil {
		return c.classify(l, op+" "+e.DN, err)
	}
	c.count(op)
	return nil
}

// SetPassword replaces unicodePwd (an administrator's reset), over TLS
// only.
func (c *Connector) SetPassword(ctx context.Context, id string, pw secret.String) (time.Time, error) {
	_, tlsOn, err := c.ldapConn(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if !tlsOn {
		return time.Time{}, c.errPlain()
	}
	l, e, err := c.entryByID(ctx, id, []string{"objectGUID"})
	if err != nil {
		return time.Time{}, err
	}
	m := ldap.NewModifyRequest(e.DN, nil)
	m.Replace("unicodePwd", []string{encodePassword(string(pw.Bytes()))})
	if err := l.Modify(m); err != nil {
		return time.Time{}, c.classify(l, "setting the password of "+e.DN, err)
	}
	c.count("password")
	return time.Time{}, nil
}

// ---- groups --------------------------------------------------------------------

// FindGroups finds groups named name (sAMAccountName or cn) under the
// base DN.
func (c *Connector) FindGroups(ctx context.Context, name string) ([]gsync.RemoteGroup, error) {
	n := ldap.EscapeFilter(name)
	_, es, err := c.search(ctx, c.srv.BaseDN, fmt.Sprintf("(&(objectClass=group)(|(sAMAccountName=%s)(cn=%s)))", n, n), []string{"objectGUID", "sAMAccountName"})
	if err != nil {
		return nil, err
	}
	out := []gsync.RemoteGroup{}
	for _, e := range es {
		out = append(out, gsync.RemoteGroup{ID: guidString(e.GetRawAttributeValue("objectGUID")), Name: e.GetAttributeValue("sAMAccountName")})
	}
	return out, nil
}

// CreateGroup creates a global security group in root.
func (c *Connector) CreateGroup(ctx context.Context, g gsync.GroupSpec) (*gsync.RemoteGroup, error) {
	l, _, err := c.ldapConn(ctx)
	if err != nil {
		return nil, err
	}
	dn := fmt.Sprintf("CN=%s,%s", ldap.EscapeDN(g.Name), c.root)
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "group"})
	add.Attribute("sAMAccountName", []string{g.Name})
	if g.Description != "" {
		add.Attribute("description", []string{g.Description})
	}
	if err := l.Add(add); err != nil {
		return nil, c.classify(l, "creating group "+dn, err)
	}
	c.count("create_group")
	found, err := c.FindGroups(ctx, g.Name)
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		return &f, nil
	}
	return nil, &gsync.Error{Status: 404, Message: "group " + dn + " not visible after its creation"}
}

func (c *Connector) member(ctx context.Context, groupID, userID string, add bool) error {
	l, g, err := c.entryByID(ctx, groupID, []string{"objectGUID"})
	if err != nil {
		return err
	}
	_, u, err := c.entryByID(ctx, userID, []string{"objectGUID"})
	if err != nil {
		return err
	}
	m := ldap.NewModifyRequest(g.DN, nil)
	op := "member_remove"
	if add {
		m.Add("member", []string{u.DN})
		op = "member_add"
	} else {
		m.Delete("member", []string{u.DN})
	}
	if err := l.Modify(m); err != nil {
		var le *ldap.Error
		if errors.As(err, &le) {
			switch le.ResultCode {
			case ldap.LDAPResultAttributeOrValueExists, ldap.LDAPResultEntryAlreadyExists:
				if add {
					return nil
				}
			case ldap.LDAPResultNoSuchAttribute, ldap.LDAPResultUnwillingToPerform:
				if !add {
					return nil // not a direct member (a nested one, or none)
				}
			}
		}
		return c.classify(l, op+" "+u.DN+" in "+g.DN, err)
	}
	c.count(op)
	return nil
}

// AddMember adds the account to the group's member.
func (c *Connector) AddMember(ctx context.Context, groupID, userID string) error {
	return c.member(ctx, groupID, userID, true)
}

// RemoveMember removes the account from the group's member.
func (c *Connector) RemoveMember(ctx context.Context, groupID, userID string) error {
	return c.member(ctx, groupID, userID, false)
}

// ListMembers lists the group's user members, direct or nested (IN_CHAIN),
// so an AD group the import mirrors, flattened, gets no member added back.
func (c *Connector) ListMembers(ctx context.Context, groupID string) ([]string, error) {
	_, g, err := c.entryByID(ctx, groupID, []string{"objectGUID"})
	if err != nil {
		return nil, err
	}
	_, es, err := c.search(ctx, c.srv.BaseDN, fmt.Sprintf("(&(objectClass=user)(!(objectClass=computer))(memberOf:%s:=%s))", inChain, ldap.EscapeFilter(g.DN)), []string{"objectGUID"})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, guidString(e.GetRawAttributeValue("objectGUID")))
	}
	return out, nil
}

// ---- encodings -----------------------------------------------------------------

// encodePassword is unicodePwd's value: the password in double quotes,
// UTF-16LE.
func encodePassword(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}

// guidString renders an objectGUID as the import does (adimport), so both
// name one account alike.
func guidString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// guidBytes is the inverse of guidString.
func guidBytes(s string) ([]byte, error) {
	p := strings.Split(s, "-")
	if len(p) != 5 || len(p[0]) != 8 || len(p[1]) != 4 || len(p[2]) != 4 || len(p[3]) != 4 || len(p[4]) != 12 {
		return nil, fmt.Errorf("%q is not an objectGUID", s)
	}
	raw, err := hex.DecodeString(strings.Join(p, ""))
	if err != nil {
		return nil, fmt.Errorf("%q is not an objectGUID", s)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(b[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(b[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(b[8:], raw[8:])
	return b, nil
}

func guidFilter(id string) (string, error) {
	b, err := guidBytes(id)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.WriteString("(objectGUID=")
	for _, x := range b {
		fmt.Fprintf(&sb, `\%02x`, x)
	}
	sb.WriteString(")")
	return sb.String(), nil
}

// randomPassword is a new account's password: 24 characters with each
// class present, so it meets AD complexity (no user ever sees it).
func randomPassword() string {
	const (
		lowers  = "abcdefghijkmnopqrstuvwxyz"
		uppers  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		digits  = "23456789"
		symbols = "!#%+-.:=?@^_~"
	)
	all := lowers + uppers + digits + symbols
	pick := func(set string) byte {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			panic(err)
		}
		return set[n.Int64()]
	}
	b := []byte{pick(lowers), pick(uppers), pick(digits), pick(symbols)}
	for len(b) < 24 {
		b = append(b, pick(all))
	}
	for i := len(b) - 1; i > 0; i-- { // shuffle
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		j := int(n.Int64())
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}
