package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/radiusserver"
	"github.com/gatewayd/gatewayd/store"
)

// validateOnly stands in for authn and the store when check-config builds
// the doors just to run their validation; nothing is served with it.
type validateOnly struct{}

func (validateOnly) Login(context.Context, authn.Request) authn.Result   { return authn.Result{} }
func (validateOnly) Reject(context.Context, authn.Request, authn.Reason) {}
func (validateOnly) GroupNamesOf(string) []string                        { return nil }

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

// buildDoors constructs the front doors without binding anything, so
// check-config can run the doors' own validation too.
func buildDoors(c *config.Config, d *daemon) (radius *radiusserver.Server, err error) {
	if len(c.RADIUS.Listen) > 0 {
		rc, ps := radiusConfig(c)
		if len(ps) > 0 {
			return nil, ps
		}
		var auth radiusserver.Authenticator = validateOnly{}
		var groups radiusserver.GroupResolver = validateOnly{}
		if d != nil {
			auth, groups = d.auth, groupNames{d.store}
		}
		log := d.logger().With("component", "radius")
		radius, err = radiusserver.New(rc, auth, groups, log, d.registerer())
		if err != nil {
			return nil, config.Problems{c.Errorf("radius", "%v", err)}
		}
	}
	return radius, nil
}

// addDoors wires the LDAP and RADIUS front doors from the config.
func (d *daemon) addDoors() error {
	radius, err := buildDoors(d.cfg, d)
	if err != nil {
		return err
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
	if d.radius != nil {
		if err := d.radius.ReloadClients(radiusClients(nc)); err != nil {
			d.log.Error("SIGHUP: RADIUS clients not reloaded, keeping the running set", "err", err)
		} else {
			d.log.Info("SIGHUP: RADIUS clients reloaded", "clients", len(nc.RADIUS.Clients))
		}
	}
}
