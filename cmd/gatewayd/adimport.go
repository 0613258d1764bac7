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
		out[a.Name] = adimport.New(a.Name, a.Import, a.Runtime(), d.store, d.log.With("component", "ad_import", "domain", a.Name))
	}
	return out
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
