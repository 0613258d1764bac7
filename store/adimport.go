package store

import (
	"maps"
	"slices"
	"time"
)

// ADImportState is what the Active Directory import (SPEC 6.2-6.4)
// keeps between cycles for one [[ad]] domain: the DC it last read and its
// uSNChanged high-water mark, the mirrored groups, and the last cycle's
// outcome. One record per domain, keyed by Domain (the [[ad]] name).
type ADImportState struct {
	Domain string `json:"domain"`
	// DC identifies the domain controller HighUSN belongs to, as
	// "<dsServiceName> (invocationId <guid>)": a DC restored from backup
	// keeps its name but not its invocationId. A different DC means a full cycle, since USNs are
	// per DC.
	DC      string `json:"dc,omitempty"`
	HighUSN int64  `json:"high_usn,omitempty"`
	// SinceFull counts the cycles since the last full reconcile.
	SinceFull int `json:"since_full,omitempty"`
	// Groups maps a mirrored AD group's objectGUID to its gateway group id.
	Groups map[string]string `json:"groups,omitempty"`
	// LastRun is the outcome of the last cycle, as JSON the importer owns.
	LastRun []byte `json:"last_run,omitempty"`
	// Paused: `gatewayd ad pause` stopped the domain's import cycles
	// (SPEC 6.6); kept across restarts.
	Paused    bool      `json:"paused,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Copy returns a deep copy.
func (a *ADImportState) Copy() *ADImportState {
	if a == nil {
		return nil
	}
	c := *a
	c.Groups = maps.Clone(a.Groups)
	c.LastRun = slices.Clone(a.LastRun)
	return &c
}

func adImportKey(a *ADImportState) []byte { return []byte(a.Domain) }

// PutADImportState creates or replaces the import state of in.Domain.
// UpdatedAt is set by the store.
func (s *Store) PutADImportState(in *ADImportState) (*ADImportState, error) {
	if in == nil || in.Domain == "" {
		return nil, invalidf("ad import state needs a domain")
	}
	if err := checkName("ad import domain", in.Domain, false); err != nil {
		return nil, err
	}
	a := in.Copy()
	var out *ADImportState
	err := s.write(func(w *wtxn) error {
		cur, _ := w.first(TableADImport, "id", a.Domain).(*ADImportState)
		a.UpdatedAt = w.s.now()
		if err := w.put(TableADImport, a); err != nil {
			return err
		}
		var before any
		if cur != nil {
			before = cur.Copy()
		}
		w.notify(TableADImport, before, a.Copy())
		out = a.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ADImportStateOf returns a domain's import state or an error wrapping
// ErrNotFound.
func (s *Store) ADImportStateOf(domain string) (*ADImportState, error) {
	o, _ := s.rtxn().First(TableADImport, "id", domain)
	if a, ok := o.(*ADImportState); ok {
		return a.Copy(), nil
	}
	return nil, notFoundf("no ad import state for %q", domain)
}
