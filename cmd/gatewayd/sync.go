package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
	"github.com/gatewayd/gatewayd/sync/google"
)

// newEngine builds the connectors from [[directory]], makes the store's
// directory list match the config (SPEC 4.5: a removed directory's
// bindings and state are forgotten, its remote accounts left alone) and
// returns the engine, or nil when no directory is configured.
func (d *daemon) newEngine() (*gwsync.Engine, error) {
	c := d.cfg
	d.importers = map[string]admin.ImportSource{}
	want := map[string]bool{}
	var dirs []*gwsync.Directory
	for i, dc := range c.Directories {
		want[dc.Name] = true
		conn, err := d.connector(dc)
		if err != nil {
			return nil, config.Problems{c.Errorf(fmt.Sprintf("directory[%d]", i), "directory %q: %v", dc.Name, err)}
		}
		if lister, ok := conn.(gwsync.Importer); ok {
			d.importers[dc.Name] = admin.ImportSource{Lister: lister, State: store.State(dc.ImportState)}
		}
		if _, err := d.store.PutDirectory(&store.Directory{Name: dc.Name, Type: dc.Type}); err != nil {
			return nil, err
		}
		dirs = append(dirs, &gwsync.Directory{Name: dc.Name, Connector: conn, Domains: dc.Domains, DefaultDomain: dc.DefaultDomain,
			Policy:                  gwsync.PasswordPolicy{MinLength: dc.PasswordPolicy.MinLength, MaxLength: dc.PasswordPolicy.MaxLength},
			SuspendOnPasswordExpiry: dc.SuspendOnPasswordExpiry, SuspendOnLockout: dc.SuspendOnLockout})
	}
	known, err := d.store.ListDirectories()
	if err != nil {
		return nil, err
	}
	for _, k := range known {
		if !want[k.Name] {
			d.log.Warn("directory removed from the config: forgetting its bindings and sync state; its remote accounts stay as they are", "directory", k.Name)
			if err := d.store.DeleteDirectory(k.Name); err != nil {
				return nil, err
			}
		}
	}
	if len(dirs) == 0 {
		return nil, nil
	}
	s := c.Sync
	eng := gwsync.New(gwsync.Config{Workers: s.Workers, MaxAttempts: s.MaxAttempts, BackoffBase: s.BackoffBase.Duration,
		BackoffMax: s.BackoffMax.Duration, RemoteCheckInterval: s.RemoteCheckInterval.Duration},
		d.store, dirs, d.log.With("component", "sync"), d.reg)
	d.store.Subscribe(eng.HandleChange)
	return eng, nil
}

// connector builds one [[directory]] block's connector.
func (d *daemon) connector(dc config.Directory) (gwsync.Connector, error) {
	log := d.log.With("component", dc.Type, "directory", dc.Name)
	switch dc.Type {
	case "google":
		key, err := os.ReadFile(dc.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("credentials_file: %w", err)
		}
		domain := dc.DefaultDomain
		if domain == "" && len(dc.Domains) > 0 {
			domain = dc.Domains[0]
		}
		return google.New(context.Background(), google.Config{Name: dc.Name, CustomerID: dc.CustomerID, AdminSubject: dc.AdminSubject,
			CredentialsJSON: key, Domain: domain, Endpoint: dc.Endpoint, TokenURL: dc.TokenURL, Logger: log})
	default:
		return entra.New(entra.Config{Name: dc.Name, TenantID: dc.TenantID, ClientID: dc.ClientID,
			ClientSecret: dc.ClientSecret.Value, AuthorityURL: dc.AuthorityURL, GraphURL: dc.GraphURL, Logger: log})
	}
}
