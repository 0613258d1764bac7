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
