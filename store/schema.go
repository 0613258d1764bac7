package store

import memdb "github.com/hashicorp/go-memdb"

// Table names. They are also the journal's bucket names and the
// Change.Table values given to subscribers.
const (
	TableUsers       = "users"
	TableGroups      = "groups"
	TableMemberships = "memberships"
	TableEvents      = "events"
	TableDirectories = "directories"
	TableBindings    = "bindings"
	TableSyncState   = "sync_state"
	// TableADImport holds one ADImportState per [[ad]] domain.
	TableADImport = "ad_import"
	// TableInvites holds one Invite (activation link) per user.
	TableInvites = "invites"
)

// tables lists every table; each has a journal bucket of the same name.
// Every table but TableEvents is also a memdb table: events are listed
// straight from the journal (event.go).
var tables = []string{
	TableUsers, TableGroups, TableMemberships, TableEvents,
	TableDirectories, TableBindings, TableSyncState, TableADImport,
	TableInvites,
}

// schema declares every memdb table and index. Unique string indexes on
// names are lowercased so uniqueness and lookups are case-insensitive;
// the objects keep the original case. memdb does not enforce Unique (an
// insert overwrites), so the write paths check uniqueness first.
func schema() *memdb.DBSchema {
	str := func(field string) *memdb.StringFieldIndex { return &memdb.StringFieldIndex{Field: field} }
	lower := func(field string) *memdb.StringFieldIndex {
		return &memdb.StringFieldIndex{Field: field, Lowercase: true}
	}
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TableUsers: {
			Name: TableUsers,
			// The secondary indexes (username, email, uid_number, cn,
			// entry_uuid) are B-trees beside memdb: index.go.
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: str("ID")},
			},
		},
		TableGroups: {
			Name: TableGroups,
			Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: str("ID")},
				"name": {Name: "name", Unique: true, Indexer: lower("Name")},
				// gidNumber lookups (getgrgid over LDAP); not unique, as above.
				"gid_number": {Name: "gid_number", Indexer: &memdb.IntFieldIndex{Field: "GIDNumber"}},
				"cn":         {Name: "cn", Indexer: groupCNIndex},
				"entry_uuid": {Name: "entry_uuid", Indexer: groupUUIDIndex, AllowMissing: true},
			},
		},
		TableMemberships: {
			Name: TableMemberships,
			Indexes: map[string]*memdb.IndexSchema{
				// journal key: groupID + "/" + userID
				"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{
					Indexes: []memdb.Indexer{str("GroupID"), str("UserID")}}},
				"group_id": {Name: "group_id", Indexer: str("GroupID")},
				"user_id":  {Name: "user_id", Indexer: str("UserID")},
			},
		},
		TableDirectories: {
			Name: TableDirectories,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: str("Name")},
			},
		},
		TableBindings: {
			Name: TableBindings,
			Indexes: map[string]*memdb.IndexSchema{
				"id":         {Name: "id", Unique: true, Indexer: str("ID")},
				"directory":  {Name: "directory", Indexer: str("Directory")},
				"subject_id": {Name: "subject_id", Indexer: str("SubjectID")},
			},
		},
		TableADImport: {
			Name: TableADImport,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: str("Domain")},
			},
		},
		TableInvites: {
			Name: TableInvites,
			Indexes: map[string]*memdb.IndexSchema{
				"id":    {Name: "id", Unique: true, Indexer: str("UserID")},
				"token": {Name: "token", Unique: true, Indexer: str("TokenHash")},
			},
		},
		TableSyncState: {
			Name: TableSyncState,
			Indexes: map[string]*memdb.IndexSchema{
				// journal key: directory + "/" + subjectID
				"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{
					Indexes: []memdb.Indexer{str("Directory"), str("SubjectID")}}},
				"directory":  {Name: "directory", Indexer: str("Directory")},
				"subject_id": {Name: "subject_id", Indexer: str("SubjectID")},
			},
		},
	}}
}
