package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
	adsync "github.com/gatewayd/gatewayd/sync/ad"
)

// newEngine builds the connectors from [[directory]], records the
// configured directories in the store, refuses to start when the store
// holds bindings or sync state of a directory the file no longer has
// (removing a block must be meant: `gatewayd directory forget NAME`, SPEC
// 4.5), and returns the engine, or nil when no directory is configured.
func (d *daemon) newEngine() (*gwsync.Engine, error) {
	c := d.cfg
	d.importers = map[string]admin.ImportSource{}
	want := map[string]bool{}
	var dirs []*gwsync.Directory
	var paused []string
	for i, dc := range c.directories() {
		common := dc.Common()
		want[common.Name] = true
		if w, ok := dc.(*adsync.DirectoryConfig); ok {
			if a := c.adDomain(w.Domain); a != nil {
				rt := a.Runtime()
				w.SetServer(adsync.Server{Realm: rt.Realm, URLs: rt.URLs, StartTLS: rt.StartTLS, AllowInsecure: rt.AllowInsecure,
					RootCAs: rt.RootCAs, ServerName: rt.ServerName, BaseDN: rt.BaseDN, BindDN: rt.BindDN, BindPassword: rt.BindPassword,
					ConnectTimeout: rt.ConnectTimeout, Timeout: rt.Timeout, Registerer: d.reg})
			}
		}
		conn, err := dc.NewConnector(context.Background(), d.log.With("component", common.Type, "directory", common.Name))
		if err != nil {
			return nil, config.Problems{c.Errorf(fmt.Sprintf("directory[%d]", i), "directory %q: %v", common.Name, err)}
		}
		if lister, ok := conn.(gwsync.Importer); ok {
			d.importers[common.Name] = admin.ImportSource{Lister: lister, State: store.State(common.ImportState)}
		}
		rec := &store.Directory{Name: common.Name, Type: common.Type}
		if cur, err := d.store.DirectoryByName(common.Name); err == nil {
			rec.Paused = cur.Paused // SPEC 6.6: a pause survives a restart
		}
		if _, err := d.store.PutDirectory(rec); err != nil {
			return nil, err
		}
		if rec.Paused {
			paused = append(paused, common.Name)
		}
		dirs = append(dirs, common.Directory(conn))
	}
	if err := d.checkForgotten(want); err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, nil
	}
	// Each pair's job is claimed in the store first, so replicas on one
	// database run it once (issue 16); a copy, so the loaded file's
	// [sync] stays what SIGHUP compares.
	sc := c.Sync
	sc.Claims = d.store
	eng := gwsync.New(sc, d.store, dirs, d.log.With("component", "sync"), d.reg)
	for _, name := range paused {
		eng.Pause(name)
	}
	d.store.Subscribe(eng.HandleChange)
	return eng, nil
}

// checkForgotten stops the start when the store knows a directory the
// file does not configure and still holds its bindings or sync state:
// starting would drop them for good because of a commented-out or renamed
// block. A known directory with nothing left is dropped quietly.
func (d *daemon) checkForgotten(configured map[string]bool) error {
	known, err := d.store.ListDirectories()
	if err != nil {
		return err
	}
	var lost []string
	for _, k := range known {
		if configured[k.Name] {
			continue
		}
		bindings, err := d.store.ListBindings(k.Name)
		if err != nil {
			return err
		}
		states, err := d.store.ListSyncStates(k.Name)
		if err != nil {
			return err
		}
		if len(bindings) == 0 && len(states) == 0 {
			if err := d.store.DeleteDirectory(k.Name); err != nil {
				return err
			}
			continue
		}
		lost = append(lost, fmt.Sprintf("%q (%d bindings, %d sync states)", k.Name, len(bindings), len(states)))
	}
	if len(lost) == 0 {
		return nil
	}
	sort.Strings(lost)
	flag := ""
	if d.path != "" {
		flag = " -config " + d.path
	}
	return fmt.Errorf("%s: the state journal holds bindings of directories no [[directory]] block configures: %s. "+
		"If the block was removed or renamed by mistake, restore it. To forget a directory on purpose (its remote accounts stay as they are), run: gatewayd directory forget NAME%s",
		d.cfg.Path(), strings.Join(lost, ", "), flag)
}
