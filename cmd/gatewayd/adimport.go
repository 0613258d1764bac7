package main

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/gatewayd/gatewayd/adimport"
	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/store"
)

// adImports are the [[ad]] blocks' imports, by block name.
type adImports map[string]*adimport.Runner

// newADImports builds a runner for every [[ad]] block with an
// [ad.import] table (enabled or not: a disabled one still has a status).
func (d *daemon) newADImports() adImports {
	out := adImports{}
	for i := range d.cfg.AD {
		a := &d.cfg.AD[i]
		if !a.Import.Enabled {
			continue
		}
		r := adimport.New(a.Name, a.Import, a.Runtime(), d.store, d.log.With("component", "ad_import", "domain", a.Name))
		if dirs := d.cfg.adWriteBacks(a.Name); len(dirs) > 0 {
			r.WrittenBack = d.writtenBack(dirs)
		}
		// One replica at a time imports the domain (issue 16); the
		// embedded store is one process, always the leader.
		r.Leases = d.store
		out[a.Name] = r
	}
	return out
}

// writtenBack tells the import which AD account the write-back made or
// took over for a gateway user (its objectGUID, the remote id), so the
// import never takes the gateway's own account for a new AD user.
func (d *daemon) writtenBack(dirs []string) func(userID string) string {
	return func(userID string) string {
		for _, dir := range dirs {
			if st, err := d.store.SyncStateOf(dir, userID); err == nil && st.Provisioned && st.RemoteID != "" {
				return st.RemoteID
			}
		}
		return ""
	}
}

// pauseDirectory is `gatewayd directory pause|resume` (SPEC 6.6): the
// flag is recorded in the store first (it survives a restart), then the
// engine parks or releases the directory's work.
func (d *daemon) pauseDirectory(name string, paused bool) (*admin.DirectoryPause, error) {
	if _, err := d.store.SetDirectoryPaused(name, paused); err != nil {
		return nil, err
	}
	res := &admin.DirectoryPause{Directory: name, Paused: paused}
	if d.engine == nil {
		return res, nil
	}
	if paused {
		d.engine.Pause(name)
		res.Waiting = d.engine.ParkedJobs(name)
	} else {
		res.Waiting = d.engine.ParkedJobs(name)
		d.engine.Resume(name)
	}
	return res, nil
}

// pauseAD is `gatewayd ad pause|resume NAME`: the domain's import and
// every write-back directory into it.
func (d *daemon) pauseAD(imports adImports, name string, paused bool) (*admin.ADPause, error) {
	if d.cfg.adDomain(name) == nil {
		return nil, fmt.Errorf("%w: no [[ad]] block is named %q", store.ErrNotFound, name)
	}
	res := &admin.ADPause{Domain: name, Paused: paused, Directories: []string{}}
	if r, ok := imports[name]; ok {
		if err := r.SetPaused(paused); err != nil {
			return nil, err
		}
		res.Import = true
	}
	for _, dir := range d.cfg.adWriteBacks(name) {
		if _, err := d.pauseDirectory(dir, paused); err != nil {
			return nil, err
		}
		res.Directories = append(res.Directories, dir)
	}
	return res, nil
}

// adImportLoop runs one domain's interval cycles as a door of the daemon.
type adImportLoop struct{ r *adimport.Runner }

func (l adImportLoop) Serve(ctx context.Context) error { l.r.Loop(ctx); return nil }

func (m adImports) doors() []door {
	var out []door
	for _, name := range m.names() {
		out = append(out, adImportLoop{m[name]})
	}
	return out
}

func (m adImports) names() []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (m adImports) runner(name string) (*adimport.Runner, error) {
	r, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%w: no [[ad]] block named %q has an enabled import (configured: %v)", store.ErrNotFound, name, m.names())
	}
	return r, nil
}

// ImportAD implements admin.ADImporter.
func (m adImports) ImportAD(ctx context.Context, name string, req admin.ADImportRequest) (any, error) {
	r, err := m.runner(name)
	if err != nil {
		return nil, err
	}
	res, err := r.Run(ctx, adimport.Options{DryRun: req.DryRun, ConfirmDeletions: req.ConfirmDeletions})
	if errors.Is(err, adimport.ErrPaused) || errors.Is(err, adimport.ErrStandby) {
		return nil, fmt.Errorf("%w: %v", store.ErrConflict, err)
	}
	if errors.Is(err, adimport.ErrDisabled) {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	return res, err
}

// ADStatus implements admin.ADImporter.
func (m adImports) ADStatus(name string) (any, error) {
	if name != "" {
		r, err := m.runner(name)
		if err != nil {
			return nil, err
		}
		return r.Status(), nil
	}
	out := []adimport.Status{}
	for _, n := range m.names() {
		out = append(out, m[n].Status())
	}
	return map[string]any{"domains": out}, nil
}
