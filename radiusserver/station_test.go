package radiusserver

import (
	"context"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

// TestCallingStationIDToAuthn (C3): the door hands the request's
// Calling-Station-Id to authn as Request.Station, which keys the failure
// budget per device behind the NAS; without one Station is empty.
func TestCallingStationIDToAuthn(t *testing.T) {
	tests := []struct {
		name, station string
	}{
		{"with station", "AA-BB-CC-DD-EE-FF"},
		{"without station", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			auth := newFakeAuth()
			s, _ := newTestServer(t, unitConfig(), auth)
			b, _ := request{user: "alice", password: "wrong", extra: func(p *radius.Packet) {
				if tc.station != "" {
					_ = rfc2865.CallingStationID_SetString(p, tc.station)
				}
			}}.encode(t)
			s.handlePacket(context.Background(), srcNAS, b, time.Now())
			ev := auth.Events()
			if len(ev) != 1 || ev[0].Station != tc.station {
				t.Fatalf("events %+v, want one with Station %q", ev, tc.station)
			}
		})
	}
}
