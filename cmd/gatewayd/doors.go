package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/ldapserver"
	"github.com/gatewayd/gatewayd/radiusserver"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

// validateOnly stands in for authn and the store when check-config builds
// the doors just to run their validation; nothing is served with it.
type validateOnly struct{}

func (validateOnly) Login(context.Context, authn.Request) authn.Result   { return authn.Result{} }
func (validateOnly) Reject(context.Context, authn.Request, authn.Reason) {}
func (validateOnly) GroupNamesOf(string) []string                        { return nil }

func (validateOnly) ChangePassword(context.Context, string, secret.String, string) error { return nil }
func (validateOnly) UserByID(string) (*store.User, error)                                { return nil, store.ErrNotFound }
func (validateOnly) UserByUsername(string) (*store.User, error)                          { return nil, store.ErrNotFound }
func (validateOnly) GroupByName(string) (*store.Group, error)                            { return nil, store.ErrNotFound }
func (validateOnly) GroupsOfUser(string) ([]*store.Group, error)                         { return nil, nil }
func (validateOnly) MembersOf(string) ([]*store.User, error)                             { return nil, nil }
func (validateOnly) ListUsers(string, int) ([]*store.User, string, error)                { return nil, "", nil }
func (validateOnly) ListGroups(string, int) ([]*store.Group, string, error)              { return nil, "", nil }

// groupNames adapts the store to the RADIUS door's GroupResolver.
type groupNames struct{ st *store.Store }

func (g groupNames) GroupNamesOf(userID string) []string {
	gs, err := g.st.GroupsOfUser(userID)
	if err != nil {
		return nil
	}
	names := make([]string, len(gs))
	for i, x := range gs {
		names[i] = x.Name
	}
	return names
}

func radiusClients(c *config.Config) []radiusserver.Client {
	out := make([]radiusserver.Client, len(c.RADIUS.Clients))
	for i, cl := range c.RADIUS.Clients {
		nets := make([]netip.Prefix, 0, len(cl.Networks))
		for _, n := range cl.Networks {
			if p, err := netip.ParsePrefix(n); err == nil {
				nets = append(nets, p.Masked())
			}
		}
		out[i] = radiusserver.Client{Name: cl.Name, Networks: nets, Secret: cl.Secret.Value,
			RequireMessageAuthenticator: cl.RequireMessageAuthenticator == nil || *cl.RequireMessageAuthenticator}
	}
	return out
}

// radiusConfig maps [radius]; reply attribute syntax problems come back
// with their line.
func radiusConfig(c *config.Config) (radiusserver.Config, config.Problems) {
	rc := radiusserver.Config{Listen: c.RADIUS.Listen, Workers: c.RADIUS.Workers, ReplyMessage: c.RADIUS.ReplyMessage,
		Clients: radiusClients(c)}
	var ps config.Problems
	for i, g := range c.RADIUS.ReplyGroups {
		rg := radiusserver.ReplyGroup{Group: g.Group, Priority: g.Priority}
		for _, a := range g.Attributes {
			ra, err := radiusserver.ParseReplyAttribute(a)
			if err != nil {
				ps = append(ps, c.Errorf(fmt.Sprintf("radius.reply_group[%d].attributes", i), "radius.reply_group %q: %v", g.Group, err))
				continue
			}
			rg.Attributes = append(rg.Attributes, ra)
		}
		rc.ReplyGroups = append(rc.ReplyGroups, rg)
	}
	return rc, ps
}

func ldapConfig(c *config.Config) ldapserver.Config {
	l := c.LDAP
	return ldapserver.Config{Listen: l.Listen, LDAPSListen: l.LDAPSListen, BaseDN: l.BaseDN, CertFile: l.CertFile, KeyFile: l.KeyFile,
		AllowInsecureBind: l.AllowInsecureBind, ExemptLoopback: l.ExemptLoopback == nil || *l.ExemptLoopback,
		BindNames: l.BindNames, UsersSeeAll: l.UsersSeeAll, UserGIDNumber: l.UserGIDNumber,
		MaxConnections: l.MaxConnections, IdleTimeout: l.IdleTimeout.Duration, MaxRequestsPerConn: l.MaxRequestsPerConn,
		MaxMessageBytes: l.MaxMessageBytes, SizeLimit: l.SizeLimit, TimeLimit: l.TimeLimit.Duration}
}

// buildDoors constructs the front doors without binding anything, so
// check-config can run the doors' own validation too.
func buildDoors(c *config.Config, d *daemon) (ldap *ldapserver.Server, radius *radiusserver.Server, err error) {
	if c.LDAP.Listen != "" || c.LDAP.LDAPSListen != "" {
		var auth ldapserver.Authenticator = validateOnly{}
		var dir ldapserver.Directory = validateOnly{}
		if d != nil {
			auth, dir = d.auth, d.store
		}
		ldap, err = ldapserver.New(ldapConfig(c), auth, dir, d.logger(), d.registerer())
		if err != nil {
			return nil, nil, config.Problems{c.Errorf("ldap", "%v", err)}
		}
	}
	if len(c.RADIUS.Listen) > 0 {
		rc, ps := radiusConfig(c)
		if len(ps) > 0 {
			return nil, nil, ps
		}
		var auth radiusserver.Authenticator = validateOnly{}
		var groups radiusserver.GroupResolver = validateOnly{}
		if d != nil {
			auth, groups = d.auth, groupNames{d.store}
		}
		log := d.logger()
		radius, err = radiusserver.New(rc, auth, groups, log, d.registerer())
		if err != nil {
			return nil, nil, config.Problems{c.Errorf("radius", "%v", err)}
		}
	}
	return ldap, radius, nil
}

// addDoors wires the LDAP and RADIUS front doors from the config.
func (d *daemon) addDoors() error {
	ldap, radius, err := buildDoors(d.cfg, d)
	if err != nil {
		return err
	}
	if ldap != nil {
		d.ldap = ldap
		d.doors = append(d.doors, namedDoor{"ldap.listen", ldap})
	}
	if radius != nil {
		d.radius = radius
		d.doors = append(d.doors, namedDoor{"radius.listen", radius})
	}
	return nil
}

// namedDoor ties a door to the config key its listeners come from, so a
// bind failure names the line to fix.
type namedDoor struct {
	key string
	door
}

func (n namedDoor) Serve(ctx context.Context) error {
	if err := n.door.Serve(ctx); err != nil {
		return fmt.Errorf("%s: %w", n.key, err)
	}
	return nil
}

// reloadDoors applies SIGHUP-reloadable door settings (RADIUS clients,
// TLS certificates).
func (d *daemon) reloadDoors(nc *config.Config) {
	if d.ldap != nil {
		if nc.LDAP.CertFile != d.cfg.LDAP.CertFile || nc.LDAP.KeyFile != d.cfg.LDAP.KeyFile {
			d.log.Warn("SIGHUP: ldap.cert_file/key_file paths changed; the running door re-reads its original paths, restart to switch files")
		}
		if err := d.ldap.ReloadCertificates(); err != nil {
			d.log.Error("SIGHUP: LDAP certificate not reloaded, keeping the running one", "err", err)
		}
	}
	if d.radius != nil {
		if err := d.radius.ReloadClients(radiusClients(nc)); err != nil {
			d.log.Error("SIGHUP: RADIUS clients not reloaded, keeping the running set", "err", err)
		} else {
			d.log.Info("SIGHUP: RADIUS clients reloaded", "clients", len(nc.RADIUS.Clients))
		}
	}
}
