package adimport

import (
	"testing"

	"github.com/gatewayd/gatewayd/store"
)

// TestIncrementalSince: which cycles read only the changes, and from where.
func TestIncrementalSince(t *testing.T) {
	const dc1, dc2 = "CN=NTDS Settings,CN=DC1,CN=Servers", "CN=NTDS Settings,CN=DC2,CN=Servers"
	interval := Options{Incremental: true}
	for _, tc := range []struct {
		name  string
		opts  Options
		state store.ADImportState
		dc    string
		want  int64
	}{
		{"first run", interval, store.ADImportState{}, dc1, 0},
		{"same DC, mark kept", interval, store.ADImportState{DC: dc1, HighUSN: 4711, SinceFull: 0}, dc1, 4711},
		{"same DC, last incremental before a full", interval, store.ADImportState{DC: dc1, HighUSN: 4711, SinceFull: 8}, dc1, 4711},
		{"every full_every-th cycle is full", interval, store.ADImportState{DC: dc1, HighUSN: 4711, SinceFull: 9}, dc1, 0},
		{"another DC: its USNs are not comparable", interval, store.ADImportState{DC: dc1, HighUSN: 4711}, dc2, 0},
		{"the same DC restored from a backup (new invocationId)", interval,
			store.ADImportState{DC: dc1 + " (invocationId a)", HighUSN: 4711}, dc1 + " (invocationId b)", 0},
		{"a DC without a name", interval, store.ADImportState{DC: "", HighUSN: 4711}, "", 0},
		{"on demand is full", Options{}, store.ADImportState{DC: dc1, HighUSN: 4711}, dc1, 0},
		{"dry run on demand is full", Options{DryRun: true}, store.ADImportState{DC: dc1, HighUSN: 4711}, dc1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := incrementalSince(tc.opts, &tc.state, tc.dc, 10); got != tc.want {
				t.Fatalf("since = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestKeepChanged: an incremental cycle keeps the changed accounts the
// chain's member lists (or primary groups) put in scope, and no other.
func TestKeepChanged(t *testing.T) {
	g := &adGroup{DN: "CN=G,OU=x,DC=t", RID: 1100, Members: []string{"CN=Direct,OU=x,DC=t", "CN=N,OU=x,DC=t"}}
	n := &adGroup{DN: "CN=N,OU=x,DC=t", RID: 1101, Members: []string{"cn=nested,ou=x,dc=t"}}
	s := &snapshot{group: g, users: map[string]*adUser{}, groups: map[string]*adGroup{"cn=g,ou=x,dc=t": g, "cn=n,ou=x,dc=t": n}}
	s.keepChanged([]adUser{
		{DN: "CN=Direct,OU=x,DC=t", USNChanged: 11},
		{DN: "CN=Nested,OU=x,DC=t", USNChanged: 12},
		{DN: "CN=Primary,OU=x,DC=t", USNChanged: 13, PrimaryGroupID: 1101},
		{DN: "CN=Outsider,OU=x,DC=t", USNChanged: 14, PrimaryGroupID: 513},
		{DN: "CN=Direct,OU=x,DC=t", USNChanged: 10}, // not above the mark
	}, 10)
	want := []string{"cn=direct,ou=x,dc=t", "cn=nested,ou=x,dc=t", "cn=primary,ou=x,dc=t"}
	if len(s.users) != len(want) {
		t.Fatalf("kept %v", s.users)
	}
	for _, k := range want {
		if s.users[k] == nil {
			t.Fatalf("%s not kept: %v", k, s.users)
		}
	}
	if s.users["cn=direct,ou=x,dc=t"].USNChanged != 11 {
		t.Fatal("the entry above the mark must be the one kept")
	}
}
