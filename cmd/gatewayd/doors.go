package main

import (
	"context"
	"fmt"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/ldapserver"
	"github.com/gatewayd/gatewayd/radiusserver"
	"github.com/gatewayd/gatewayd/store"
)

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

// addDoors builds the LDAP and RADIUS front doors from their blocks. The
// blocks were validated when the file was loaded, so an error here is one
// of wiring, reported at the block's line.
func (d *daemon) addDoors() error {
	c := d.cfg
	if c.LDAP.Enabled() {
		ldap, err := ldapserver.New(c.LDAP, d.auth, d.store, d.log, d.reg)
		if err != nil {
			return config.Problems{c.Errorf("ldap", "%v", err)}
		}
		d.ldap = ldap
		d.doors = append(d.doors, namedDoor{"ldap.listen", ldap})
	}
	if c.RADIUS.Enabled() {
		radius, err := radiusserver.New(c.RADIUS, d.auth, groupNames{d.store}, d.log, d.reg)
		if err != nil {
			return config.Problems{c.Errorf("radius", "%v", err)}
		}
		d.radius = radius
		d.doors = append(d.doors, namedDoor{"radius.listen", radius})
	}
	return d.addPortal()
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
func (d *daemon) reloadDoors(nc *fileConfig) {
	if d.ldap != nil {
		if nc.LDAP.CertFile != d.cfg.LDAP.CertFile || nc.LDAP.KeyFile != d.cfg.LDAP.KeyFile {
			d.log.Warn("SIGHUP: ldap.cert_file/key_file paths changed; the running door re-reads its original paths, restart to switch files")
		}
		if err := d.ldap.ReloadCertificates(); err != nil {
			d.log.Error("SIGHUP: LDAP certificate not reloaded, keeping the running one", "err", err)
		}
	}
	if d.radius != nil {
		if nc.RADIUS.EAP.CertFile != d.cfg.RADIUS.EAP.CertFile || nc.RADIUS.EAP.KeyFile != d.cfg.RADIUS.EAP.KeyFile ||
			nc.RADIUS.EAP.CAFile != d.cfg.RADIUS.EAP.CAFile || nc.RADIUS.EAP.CRLFile != d.cfg.RADIUS.EAP.CRLFile {
			d.log.Warn("SIGHUP: radius.eap cert_file/key_file/ca_file/crl_file paths changed; the running door re-reads its original paths, restart to switch files")
		}
		if err := d.radius.ReloadEAPCertificate(); err != nil {
			d.log.Error("SIGHUP: RADIUS EAP certificate or client CAs not reloaded, keeping the running ones", "err", err)
		}
		if err := d.radius.ReloadClients(nc.RADIUS.Clients); err != nil {
			d.log.Error("SIGHUP: RADIUS clients not reloaded, keeping the running set", "err", err)
		} else {
			d.log.Info("SIGHUP: RADIUS clients reloaded", "clients", len(nc.RADIUS.Clients))
		}
	}
}
