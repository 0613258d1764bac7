package store

import (
	"slices"
	"strings"
	"time"
)

// SyncState is what the provisioner knows about one user's or group's
// account in one directory. It is keyed by (Directory, SubjectID) and
// outlives the user or group, so a deleted user's accounts can still be
// disabled by their remote id.
type SyncState struct {
	Directory string `json:"directory"`
	SubjectID string `json:"subject_id"`
	// Kind is BindUser or BindGroup (optional).
	Kind          string    `json:"kind,omitempty"`
	RemoteID      string    `json:"remote_id,omitempty"`
	Provisioned   bool      `json:"provisioned,omitempty"`
	PushedVersion uint64    `json:"pushed_version,omitempty"`
	PushPending   bool      `json:"push_pending,omitempty"`
	LastPushAt    time.Time `json:"last_push_at,omitzero"`
	Attempts      int       `json:"attempts,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"`
	// Enabled is the sign-in state the engine last set on the account.
	Enabled bool `json:"enabled,omitempty"`
	// AppliedHash identifies the attribute set last pushed, so a
	// reconcile with nothing new makes no remote call.
	AppliedHash string `json:"applied_hash,omitempty"`
	// ProvisionedAt starts the replication grace period (a 404 right
	// after a create is not an error).
	ProvisionedAt time.Time `json:"provisioned_at,omitzero"`
	// RemotePasswordChangedAt is the directory's password-change time as
	// of our last push; a later one means the password changed remotely
	// (SPEC 3.3).
	RemotePasswordChangedAt time.Time `json:"remote_password_changed_at,omitzero"`
	// LastCheckAt bounds how often a login makes the engine read the
	// remote password-change time.
	LastCheckAt time.Time `json:"last_check_at,omitzero"`
	// Failed: the last job exhausted its attempts or failed permanently;
	// the next change or login tries again.
	Failed bool `json:"failed,omitempty"`
	// KeepSignIn: the account was bound by an import and is in use in the
	// directory; the engine takes it over without changing its sign-in
	// state until the user's first gateway login or activation. Suspend,
	// delete and unbind still disable it.
	KeepSignIn bool `json:"keep_sign_in,omitempty"`
}

// Copy returns a copy.
func (st *SyncState) Copy() *SyncState {
	if st == nil {
		return nil
	}
	c := *st
	return &c
}

func validateSyncState(st *SyncState) error {
	if st.Directory == "" || st.SubjectID == "" {
		return invalidf("sync state needs a directory and a subject id")
	}
	if err := checkID("sync state subject id", st.SubjectID); err != nil {
		return err
	}
	if st.Kind != "" && st.Kind != BindUser && st.Kind != BindGroup {
		return invalidf("sync state kind %q is not one of user, group", st.Kind)
	}
	return nil
}

// PutSyncState creates or replaces the sync state of (Directory,
// SubjectID); the directory must exist. UpdatedAt is set by the store.
func (s *Store) PutSyncState(in *SyncState) (*SyncState, error) {
	if in == nil {
		return nil, invalidf("sync state is required")
	}
	return s.UpdateSyncState(in.Directory, in.SubjectID, func(st *SyncState) error {
		*st = *in
		return nil
	})
}

// UpdateSyncState applies fn to a copy of the sync state of (directory,
// subjectID) in a write transaction — to a new SyncState with those two
// fields set if there is none yet — and stores the result. Directory and
// SubjectID cannot change. If fn fails nothing is written.
func (s *Store) UpdateSyncState(directory, subjectID string, fn func(*SyncState) error) (*SyncState, error) {
	var out *SyncState
	err := s.write(func(w *wtxn) error {
		if w.first(TableDirectories, "id", directory) == nil {
			return notFoundf("directory %q not found", directory)
		}
		cur, _ := w.first(TableSyncState, "id", directory, subjectID).(*SyncState)
		st := cur.Copy()
		if st == nil {
			st = &SyncState{Directory: directory, SubjectID: subjectID}
		}
		if err := fn(st); err != nil {
			return err
		}
		st.Directory, st.SubjectID = directory, subjectID
		if cur != nil {
			st.UpdatedAt = cur.UpdatedAt
			if same(cur, st) {
				out = st
				return nil
			}
		}
		if err := validateSyncState(st); err != nil {
			return err
		}
		st.UpdatedAt = w.s.now()
		if err := w.put(TableSyncState, st); err != nil {
			return err
		}
		var before any
		if cur != nil {
			before = cur.Copy()
		}
		w.notify(TableSyncState, before, st.Copy())
		out = st.Copy()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SyncStateOf returns the sync state or an error wrapping ErrNotFound.
func (s *Store) SyncStateOf(directory, subjectID string) (*SyncState, error) {
	o, _ := s.rtxn().First(TableSyncState, "id", directory, subjectID)
	if st, ok := o.(*SyncState); ok {
		return st.Copy(), nil
	}
	return nil, notFoundf("no sync state for %q in directory %q", subjectID, directory)
}

// ListSyncStates returns the sync states of a directory ("" for all),
// sorted by directory then subject id.
func (s *Store) ListSyncStates(directory string) ([]*SyncState, error) {
	txn := s.rtxn()
	var objs []any
	if directory == "" {
		objs = all(txn, TableSyncState, "id")
	} else {
		objs = all(txn, TableSyncState, "directory", directory)
	}
	return sortedSyncStates(objs), nil
}

// SyncStatesOfSubject returns a user's or group's sync states, one per directory.
func (s *Store) SyncStatesOfSubject(subjectID string) ([]*SyncState, error) {
	return sortedSyncStates(all(s.rtxn(), TableSyncState, "subject_id", subjectID)), nil
}

func sortedSyncStates(objs []any) []*SyncState {
	out := make([]*SyncState, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*SyncState).Copy())
	}
	slices.SortFunc(out, func(a, b *SyncState) int {
		if c := strings.Compare(a.Directory, b.Directory); c != 0 {
			return c
		}
		return strings.Compare(a.SubjectID, b.SubjectID)
	})
	return out
}

// DeleteSyncState forgets the sync state; ErrNotFound if there is none.
func (s *Store) DeleteSyncState(directory, subjectID string) error {
	return s.write(func(w *wtxn) error {
		st, ok := w.first(TableSyncState, "id", directory, subjectID).(*SyncState)
		if !ok {
			return notFoundf("no sync state for %q in directory %q", subjectID, directory)
		}
		if err := w.del(TableSyncState, st); err != nil {
			return err
		}
		w.notify(TableSyncState, st.Copy(), nil)
		return nil
	})
}
