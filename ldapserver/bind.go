package ldapserver

import (
	"errors"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// handleBind answers a BindRequest (RFC 4511 4.2, RFC 4513 5.1).
func (c *conn) handleBind(m *message, req *bindRequest, frame []byte) {
	start := time.Now()
	// The password sits in the decoded packet and in the frame buffer:
	// wipe both once the bind is answered.
	defer wipe(frame)
	defer wipe(req.password)
	outcome := bindError
	// Metrics are recorded before the answer goes out, so a client that
	// has its answer sees them counted.
	reply := func(code int, diag string) {
		c.s.m.binds.WithLabelValues(outcome).Inc()
		c.s.m.duration.WithLabelValues("bind").Observe(time.Since(start).Seconds())
		c.sendResult(m.id, appBindResponse, code, "", diag, true)
	}

	// Whatever happens next, the connection is anonymous until this bind
	// succeeds (RFC 4511 4.2.1).
	c.setBound(nil)

	if code, diag := c.checkControls(m, false); code != rcSuccess {
		outcome = bindUnsupported
		reply(code, diag)
		return
	}
	switch {
	case req.version != 3:
		outcome = bindUnsupported
		reply(rcProtocolError, "only LDAPv3 is supported")
		return
	case !req.simple:
		outcome = bindUnsupported
		reply(rcAuthMethodNotSupported, "only simple bind is supported")
		return
	case req.name == "" && len(req.password) == 0:
		outcome = bindAnonymous
		reply(rcSuccess, "")
		return
	case len(req.password) == 0:
		// RFC 4513 5.1.2: an unauthenticated bind must not look like a login.
		outcome = bindUnsupported
		reply(rcUnwillingToPerform, "unauthenticated bind (name with no password) is not allowed")
		return
	case req.name == "":
		outcome = bindFailure
		reply(rcInvalidCredentials, "")
		return
	case !c.secureEnough():
		outcome = bindInsecure
		reply(rcConfidentialityRequired, "simple bind requires a protected connection: use LDAPS or StartTLS")
		return
	}

	ident, byUsername, ok := c.s.resolveBindName(req.name)
	if !ok {
		outcome = bindFailure
		reply(rcInvalidCredentials, "")
		return
	}
	pw := secret.New(append([]byte(nil), req.password...))
	defer pw.Wipe()
	res := c.s.auth.Login(c.ctx, authn.Request{
		Identifier: ident,
		ByUsername: byUsername,
		Password:   pw,
		Protocol:   authn.ProtocolLDAP,
		Source:     c.remote.Addr(),
		Client:     c.clientName(),
	})
	if !res.OK || res.User == nil || (!byUsername && !c.s.bindKindAllowed(ident, res.User)) {
		outcome = bindFailure
		if res.Reason == authn.ReasonInternal {
			c.s.log.Warn("ldap bind failed on an internal error", "conn", c.id)
		}
		reply(rcInvalidCredentials, "")
		return
	}
	c.setBound(res.User)
	outcome = bindSuccess
	reply(rcSuccess, "")
}

// resolveBindName turns a bind name into what authn.Login takes: a user DN
// in our tree becomes its username (byUsername), a bare name passes as
// typed. ok is false when the name cannot be one of ours, or its kind is
// not enabled in bind_names.
func (s *Server) resolveBindName(name string) (ident string, byUsername, ok bool) {
	if strings.Contains(name, "=") {
		if d, err := parseDN(name); err == nil && len(d) > 0 {
			p := s.tree.locate(d)
			if p.ok && p.kind == kindUser && p.name != "" {
				return p.name, true, true
			}
			if !strings.Contains(name, "@") {
				return "", false, false
			}
		}
	}
	if strings.Contains(name, "@") {
		return name, false, s.cfg.bindNameAllowed(BindNameEmail) || s.cfg.bindNameAllowed(BindNameUPN)
	}
	return name, false, s.cfg.bindNameAllowed(BindNameUsername)
}

// bindKindAllowed checks, after authn resolved a bare name, that the kind
// of name it matched (username, email or else UPN) is enabled.
func (s *Server) bindKindAllowed(ident string, u *store.User) bool {
	switch {
	case strings.EqualFold(ident, u.Username):
		return s.cfg.bindNameAllowed(BindNameUsername)
	case strings.EqualFold(ident, u.Email):
		return s.cfg.bindNameAllowed(BindNameEmail)
	}
	return s.cfg.bindNameAllowed(BindNameUPN)
}

// handleExtended answers extended operations other than StartTLS.
func (c *conn) handleExtended(m *message, req *extendedRequest, frame []byte) {
	start := time.Now()
	op := "extended"
	defer func() { c.s.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds()) }()
	if code, diag := c.checkControls(m, false); code != rcSuccess {
		c.sendExtended(m.id, code, diag, "", nil)
		return
	}
	switch req.oid {
	case oidPasswordModify:
		op = "passwd"
		defer wipe(frame)
		defer wipe(req.value)
		code, diag := c.passwordModify(req)
		c.sendExtended(m.id, code, diag, "", nil)
	case oidWhoAmI:
		op = "whoami"
		authz := ""
		u, err := c.viewer()
		switch {
		case err == nil:
			authz = "dn:" + c.s.tree.userDN(u.Username)
		case !errors.Is(err, errNotBound):
			c.sendExtended(m.id, rcOperationsError, "directory unavailable", "", nil)
			return
		}
		c.sendExtended(m.id, rcSuccess, "", "", []byte(authz))
	default:
		c.sendExtended(m.id, rcProtocolError, "unsupported extended operation: "+req.oid, "", nil)
	}
}

// passwordModify implements RFC 3062: a user changes their own password
// with the old one; a service account with PasswordResetter resets anyone's.
// The change goes through authn (password version bump, push, event).
func (c *conn) passwordModify(ext *extendedRequest) (int, string) {
	req, err := decodePasswdModify(ext.value, ext.hasValue)
	if err != nil {
		return rcProtocolError, "malformed password modify request"
	}
	defer wipe(req.oldPw)
	defer wipe(req.newPw)
	viewer, err := c.viewer()
	switch {
	case errors.Is(err, errNotBound):
		return c.passwordModifyUnbound(req)
	case err != nil:
		return rcOperationsError, "directory unavailable"
	}
	if !c.secureEnough() {
		return rcConfidentialityRequired, "password modify requires a protected connection: use LDAPS or StartTLS"
	}
	if !req.hasNew || len(req.newPw) == 0 {
		return rcUnwillingToPerform, "a new password is required (password generation is not supported)"
	}
	resetter := viewer.ServiceAccount && viewer.PasswordResetter
	target := viewer
	if req.hasUser && strings.TrimSpace(req.user) != "" {
		name := strings.TrimSpace(req.user)
		if strings.Contains(name, "=") {
			d, err := parseDN(name)
			if err != nil {
				return rcInvalidDNSyntax, "invalid user identity"
			}
			p := c.s.tree.locate(d)
			if !p.ok || p.kind != kindUser {
				if !resetter {
					return rcInsufficientAccessRights, "not allowed to change this password"
				}
				return rcNoSuchObject, "no such user"
			}
			name = p.name
		}
		t, err := c.s.dir.UserByUsername(name)
		switch {
		case err == nil:
			target = t
		case !resetter:
			return rcInsufficientAccessRights, "not allowed to change this password"
		case errors.Is(err, store.ErrNotFound):
			return rcNoSuchObject, "no such user"
		default:
			return rcOperationsError, "directory unavailable"
		}
	}
	self := target.ID == viewer.ID
	switch {
	case !self && !resetter:
		return rcInsufficientAccessRights, "not allowed to change this password"
	case self && req.hasOld:
		old := secret.New(append([]byte(nil), req.oldPw...))
		res := c.s.auth.Login(c.ctx, authn.Request{
			Identifier: viewer.Username, ByUsername: true, Password: old,
			Protocol: authn.ProtocolLDAP, Source: c.remote.Addr(), Client: c.clientName(),
		})
		old.Wipe()
		if !res.OK || res.User == nil || res.User.ID != viewer.ID {
			return rcInvalidCredentials, ""
		}
	case self && !resetter:
		return rcUnwillingToPerform, "the old password is required"
	}
	pw := secret.New(append([]byte(nil), req.newPw...))
	defer pw.Wipe()
	err = c.s.auth.ChangePassword(c.ctx, target.ID, pw, "ldap:"+viewer.Username)
	switch {
	case err == nil:
		c.s.log.Info("ldap password modify", "conn", c.id, "actor", viewer.Username, "user", target.Username)
		return rcSuccess, ""
	case errors.Is(err, authn.ErrAuthorityAD):
		return rcUnwillingToPerform, authn.ErrAuthorityAD.Error()
	case errors.Is(err, authn.ErrWeakPassword):
		return rcConstraintViolation, err.Error()
	case errors.Is(err, authn.ErrBusy):
		return rcBusy, "the server is busy, try again"
	case errors.Is(err, store.ErrNotFound):
		return rcNoSuchObject, "no such user"
	}
	c.s.log.Error("ldap password modify failed", "conn", c.id, "user", target.Username, "err", err)
	return rcOperationsError, "password change failed"
}

// passwordModifyUnbound is RFC 3062 section 2 on a connection that has
// not bound (or bound anonymously, or whose user may no longer log in):
// userIdentity names the user as a bind name would (DN, username, email
// or UPN) and oldPasswd proves it, through authn.ChangeOwnPassword. That
// is how a user whose password expired sets a new one: the expired
// password is accepted as proof here, never by a bind. Without both, the
// request has nobody to act for.
func (c *conn) passwordModifyUnbound(req *passwdModifyRequest) (int, string) {
	name := strings.TrimSpace(req.user)
	if !req.hasUser || name == "" || !req.hasOld || len(req.oldPw) == 0 {
		return rcInsufficientAccessRights, "bind first, or give the user identity and the old password, to change a password"
	}
	if !c.secureEnough() {
		return rcConfidentialityRequired, "password modify requires a protected connection: use LDAPS or StartTLS"
	}
	if !req.hasNew || len(req.newPw) == 0 {
		return rcUnwillingToPerform, "a new password is required (password generation is not supported)"
	}
	ident, byUsername, ok := c.s.resolveBindName(name)
	if !ok || (!byUsername && !c.s.atNameAllowed(ident)) {
		return rcInvalidCredentials, ""
	}
	old := secret.New(append([]byte(nil), req.oldPw...))
	defer old.Wipe()
	pw := secret.New(append([]byte(nil), req.newPw...))
	defer pw.Wipe()
	u, err := c.s.auth.ChangeOwnPassword(c.ctx, authn.Request{
		Identifier: ident, ByUsername: byUsername, Password: old,
		Protocol: authn.ProtocolLDAP, Source: c.remote.Addr(), Client: c.clientName(),
	}, pw, nil) // the door knows no directory policy; the push records a refusal
	switch {
	case err == nil:
		user := ""
		if u != nil {
			user = u.Username
		}
		c.s.log.Info("ldap password modify", "conn", c.id, "actor", "self (old password)", "user", user)
		return rcSuccess, ""
	case errors.Is(err, authn.ErrNotProven):
		return rcInvalidCredentials, ""
	case errors.Is(err, authn.ErrAuthorityAD):
		return rcUnwillingToPerform, authn.ErrAuthorityAD.Error()
	case errors.Is(err, authn.ErrWeakPassword):
		return rcConstraintViolation, err.Error()
	case errors.Is(err, authn.ErrBusy):
		return rcBusy, "the server is busy, try again"
	}
	c.s.log.Error("ldap password modify failed", "conn", c.id, "err", err)
	return rcOperationsError, "password change failed"
}

// emailIndex is an optional Directory method (the store has it): the user
// with that email, an error wrapping store.ErrNotFound if none.
type emailIndex interface {
	UserByEmail(email string) (*store.User, error)
}

// atNameAllowed decides before authn resolves it whether a bare name with
// '@' is of an enabled kind, where checking after (bindKindAllowed) would
// be too late: a password change has happened by then. authn takes such a
// name as an email first, else as a UPN; so with only one of the two
// enabled the door asks the directory whether it is an email. A name
// without '@' was checked by resolveBindName.
func (s *Server) atNameAllowed(ident string) bool {
	email, upn := s.cfg.bindNameAllowed(BindNameEmail), s.cfg.bindNameAllowed(BindNameUPN)
	if !strings.Contains(ident, "@") || email == upn {
		return true // both enabled; both off was refused by resolveBindName
	}
	ix, ok := s.dir.(emailIndex)
	if !ok {
		return false // cannot tell the kinds apart
	}
	_, err := ix.UserByEmail(ident)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false
	}
	return (err == nil) == email
}
