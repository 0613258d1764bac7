package store

import (
	"slices"
	"strings"
	"time"
)

// Directory is one configured external target (SPEC 2.7): an Entra ID
// tenant, a Google Workspace customer or an AD domain. Its settings live
// in the config file; the store keeps what bindings and sync state hang on.
type Directory struct {
	// Name is the directory's key in the config: 1–64 lowercase letters,
	// digits, '.', '_' or '-', starting with a letter or digit.
	Name string `json:"name"`
	// Type is the kind of target, e.g. "entra", "google" or "ad".
	Type string `json:"type"`
	// Paused: the sync engine sends nothing to the directory; its work
	// waits until it is resumed (SPEC 6.6). Kept across restarts.
	Paused    bool      `json:"paused,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Copy returns a copy.
func (d *Directory) Copy() *Directory {
	if d == nil {
		return nil
	}
	c := *d
	return &c
}

func validateDirectory(d *Directory) error {
	if err := checkName("directory name", d.Name, false); err != nil {
		return err
	}
	if strings.ToLower(d.Name) != d.Name {
		return invalidf("directory name %q must be lowercase", d.Name)
	}
	if d.Type == "" {
		return invalidf("directory %q needs a type", d.Name)
	}
	for i := 0; i < len(d.Type); i++ {
		if c := d.Type[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalidf("directory type %q may only contain lowercase letters, digits, '_' and '-'", d.Type)
		}
	}
	return nil
}

// PutDirectory creates or updates a directory (by Name), keeping
// CreatedAt on update. Putting an unchanged directory writes nothing.
func (s *Store) PutDirectory(in *Directory) (*Directory, error) {
	if in == nil {
		return nil, invalidf("directory is required")
	}
	d := in.Copy()
	if err := validateDirectory(d); err != nil {
		return nil, err
	}
	var out *Directory
	err := s.write(func(w *wtxn) error {
		now := w.s.now()
		cur, _ := w.first(TableDirectories, "id", d.Name).(*Directory)
		if cur != nil {
			d.CreatedAt, d.UpdatedAt = cur.CreatedAt, cur.UpdatedAt
			if same(cur, d) {
				out = d
				return nil
			}
		} else {
			d.CreatedAt = now
		}
		d.UpdatedAt = now
		if err := w.put(TableDirectories, d); err != nil {
			return err
		}
		var before any
		if cur != nil {
			before = cur.Copy()
		}
		w.notify(TableDirectories, before, d.Copy())
		out = d.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetDirectoryPaused records whether the directory is paused (SPEC 6.6)
// and returns the directory as it now is.
func (s *Store) SetDirectoryPaused(name string, paused bool) (*Directory, error) {
	var out *Directory
	err := s.write(func(w *wtxn) error {
		cur, ok := w.first(TableDirectories, "id", name).(*Directory)
		if !ok {
			return notFoundf("directory %q not found", name)
		}
		if cur.Paused == paused {
			out = cur.Copy()
			return nil
		}
		d := cur.Copy()
		d.Paused, d.UpdatedAt = paused, w.s.now()
		if err := w.put(TableDirectories, d); err != nil {
			return err
		}
		w.notify(TableDirectories, cur.Copy(), d.Copy())
		out = d.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DirectoryByName returns the directory or an error wrapping ErrNotFound.
func (s *Store) DirectoryByName(name string) (*Directory, error) {
	o, _ := s.rtxn().First(TableDirectories, "id", name)
	if d, ok := o.(*Directory); ok {
		return d.Copy(), nil
	}
	return nil, notFoundf("directory %q not found", name)
}

// ListDirectories returns every directory sorted by name.
func (s *Store) ListDirectories() ([]*Directory, error) {
	var out []*Directory
	for _, o := range all(s.rtxn(), TableDirectories, "id") {
		out = append(out, o.(*Directory).Copy())
	}
	slices.SortFunc(out, func(a, b *Directory) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteDirectory removes the directory and, in the same transaction,
// every binding to it and its sync state (SPEC 4.5: remote accounts stay
// as they are; the gateway forgets them).
func (s *Store) DeleteDirectory(name string) error {
	_, err := s.ForgetDirectory(name)
	return err
}

// Forgotten counts what ForgetDirectory dropped.
type Forgotten struct {
	Bindings   int `json:"bindings"`
	SyncStates int `json:"sync_states"`
}

// ForgetDirectory is DeleteDirectory reporting what it dropped, in one
// transaction.
func (s *Store) ForgetDirectory(name string) (Forgotten, error) {
	var f Forgotten
	err := s.write(func(w *wtxn) error {
		f = Forgotten{}
		d, ok := w.first(TableDirectories, "id", name).(*Directory)
		if !ok {
			return notFoundf("directory %q not found", name)
		}
		for _, o := range all(w.mem, TableBindings, "directory", name) {
			f.Bindings++
			if err := w.del(TableBindings, o); err != nil {
				return err
			}
			w.notify(TableBindings, o.(*Binding).Copy(), nil)
		}
		for _, o := range all(w.mem, TableSyncState, "directory", name) {
			f.SyncStates++
			if err := w.del(TableSyncState, o); err != nil {
				return err
			}
			w.notify(TableSyncState, o.(*SyncState).Copy(), nil)
		}
		if err := w.del(TableDirectories, d); err != nil {
			return err
		}
		w.notify(TableDirectories, d.Copy(), nil)
		return nil
	})
	return f, err
}
