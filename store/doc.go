// Package store is gatewayd's identity store: go-memdb tables and indexes
// are the read path, and a bbolt journal makes every write durable before
// it is acknowledged. At start the memdb view is rebuilt from the journal.
//
// Contract used by the rest of the daemon (all returned objects are copies):
//
//	Open(dir string, opts Options) (*Store, error)   // journal at dir/gatewayd.db
//	(*Store).Close() error                           // flushes pending events
//
//	CreateUser(u *User) (*User, error)               // assigns ID, UIDNumber, timestamps
//	UpdateUser(id string, fn func(*User) error) (*User, error)
//	DeleteUser(id string) error                      // also removes memberships
//	UserByID / UserByUsername / UserByEmail(string) (*User, error)
//	SharedUserByID / SharedUserByUsername / SharedUserByEmail(string) (*User, error) // the stored user, not a copy: read only
//	EachUserWithPrefix(k UserKey, prefix string, fn func(*User) bool) // ordered index walk, the stored users: fn only reads
//	ListUsers(after string, limit int) (users []*User, next string, err error) // by username
//
//	CreateGroup / UpdateGroup / DeleteGroup / GroupByID / GroupByName / ListGroups
//	AddMember(groupID, userID string) error / RemoveMember(groupID, userID string) error
//	GroupsOfUser(userID string) ([]*Group, error) / MembersOf(groupID string) ([]*User, error)
//	EachMember(groupID string, fn func(*User) bool) error  // the store's own users, not copies: fn only reads
//
//	AppendEvents(evs ...Event) error                 // durable before return
//	Emit(ev Event)                                   // group-committed in the background
//	Flush(ctx) error                                 // everything emitted so far is durable
//	ListEvents(f EventFilter) (evs []Event, next uint64, err error)
//
//	Subscribe(fn func(Change))                       // called after commit, in commit order
//	Snapshot(w io.Writer) error                      // consistent copy of the journal
//	Verify() error                                   // indexes agree with the data
//
// Also available:
//
//	RestoreSnapshot(r io.Reader, dir string) error   // into a data dir without a journal
//	VerifyJournal(dir string) (*JournalReport, error) // a stopped daemon's journal: every damaged record
//	AcceptRollback(dir string, log) (*Rollback, error) // continue past an unreadable newest meta page
//	(*Store).Path() string                           // the journal file
//	(*Store).Health(ctx) error                       // can it take writes (/healthz)
//	(*Store).IsMember(groupID, userID string) bool
//	PutDirectory / DirectoryByName / ListDirectories / DeleteDirectory
//	PutBinding / BindingByID / ListBindings / BindingsOfSubject / DeleteBinding
//	PutSyncState / UpdateSyncState / SyncStateOf / ListSyncStates / SyncStatesOfSubject / DeleteSyncState
//
// Errors wrap ErrNotFound, ErrConflict, ErrInvalid (with a message a
// person can act on), ErrClosed, or ErrDamaged (Open refused a damaged
// journal; it is never rewritten). See README.md for the durability
// guarantees.
package store
