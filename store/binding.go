package store

import (
	"slices"
	"strings"
	"time"
)

// Binding kinds.
const (
	BindUser  = "user"
	BindGroup = "group"
)

// Binding binds a user or a group to a directory (SPEC 2.7). Its ID is
// Directory + "/" + Kind + "/" + SubjectID, so binding twice is a no-op.
type Binding struct {
	ID        string    `json:"id"`
	Directory string    `json:"directory"`
	Kind      string    `json:"kind"` // BindUser or BindGroup
	SubjectID string    `json:"subject_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Copy returns a copy.
func (b *Binding) Copy() *Binding {
	if b == nil {
		return nil
	}
	c := *b
	return &c
}

// BindingID is the ID of the binding of subject (kind "user" or "group")
// to directory.
func BindingID(directory, kind, subjectID string) string {
	return directory + "/" + kind + "/" + subjectID
}

// PutBinding binds a user or group to a directory; both must exist
// (ErrNotFound). Binding again returns the existing binding unchanged.
func (s *Store) PutBinding(in *Binding) (*Binding, error) {
	if in == nil {
		return nil, invalidf("binding is required")
	}
	b := in.Copy()
	if b.Kind != BindUser && b.Kind != BindGroup {
		return nil, invalidf("binding kind %q is not one of user, group", b.Kind)
	}
	if b.Directory == "" || b.SubjectID == "" {
		return nil, invalidf("a binding needs a directory and a subject id")
	}
	id := BindingID(b.Directory, b.Kind, b.SubjectID)
	if b.ID != "" && b.ID != id {
		return nil, invalidf("binding id %q should be %q (directory/kind/subject)", b.ID, id)
	}
	b.ID = id
	var out *Binding
	err := s.write(func(w *wtxn) error {
		if cur, ok := w.first(TableBindings, "id", id).(*Binding); ok {
			out = cur.Copy()
			return nil
		}
		if w.first(TableDirectories, "id", b.Directory) == nil {
			return notFoundf("directory %q not found", b.Directory)
		}
		table := TableUsers
		if b.Kind == BindGroup {
			table = TableGroups
		}
		if w.first(table, "id", b.SubjectID) == nil {
			return notFoundf("%s %q not found", b.Kind, b.SubjectID)
		}
		b.CreatedAt = w.s.now()
		if err := w.put(TableBindings, b); err != nil {
			return err
		}
		w.notify(TableBindings, nil, b.Copy())
		out = b.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BindingByID returns the binding or an error wrapping ErrNotFound.
func (s *Store) BindingByID(id string) (*Binding, error) {
	o, _ := s.rtxn().First(TableBindings, "id", id)
	if b, ok := o.(*Binding); ok {
		return b.Copy(), nil
	}
	return nil, notFoundf("binding %q not found", id)
}

// DeleteBinding removes a binding; ErrNotFound if there is none.
func (s *Store) DeleteBinding(id string) error {
	return s.write(func(w *wtxn) error {
		b, ok := w.first(TableBindings, "id", id).(*Binding)
		if !ok {
			return notFoundf("binding %q not found", id)
		}
		if err := w.del(TableBindings, b); err != nil {
			return err
		}
		w.notify(TableBindings, b.Copy(), nil)
		return nil
	})
}

// ListBindings returns the bindings to directory ("" for all), by ID.
func (s *Store) ListBindings(directory string) ([]*Binding, error) {
	txn := s.rtxn()
	var objs []any
	if directory == "" {
		objs = all(txn, TableBindings, "id")
	} else {
		objs = all(txn, TableBindings, "directory", directory)
	}
	return sortedBindings(objs), nil
}

// BindingsOfSubject returns the direct bindings of a user or group id.
func (s *Store) BindingsOfSubject(subjectID string) ([]*Binding, error) {
	return sortedBindings(all(s.rtxn(), TableBindings, "subject_id", subjectID)), nil
}

func sortedBindings(objs []any) []*Binding {
	out := make([]*Binding, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*Binding).Copy())
	}
	slices.SortFunc(out, func(a, b *Binding) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// deleteBindingsOf removes the bindings of a deleted user or group.
func (w *wtxn) deleteBindingsOf(kind, subjectID string) error {
	for _, o := range all(w.mem, TableBindings, "subject_id", subjectID) {
		b := o.(*Binding)
		if b.Kind != kind {
			continue
		}
		if err := w.del(TableBindings, b); err != nil {
			return err
		}
		w.notify(TableBindings, b.Copy(), nil)
	}
	return nil
}
