package sync_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

// A failed group job is recorded against the group, not as if the group
// were a user.
func TestGroupFailureEventCarriesTheGroup(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{}, gwsync.Config{MaxAttempts: 1})
		r.b.setDown(true)
		g, err := r.st.CreateGroup(&store.Group{Name: "staff"})
		if err != nil {
			t.Fatal(err)
		}
		r.bind(store.BindGroup, g.ID)
		typ := string(store.EventGroupCreateProvision.Failed())
		testutil.Eventually(t, 15*time.Second, func() bool { return len(r.events(typ)) > 0 }, "a "+typ+" event")
		ev := r.events(typ)[0]
		if ev.GroupID != g.ID || ev.Group != "staff" || ev.UserID != "" || ev.Username != "" {
			t.Errorf("subject of %+v: want group %s (staff) and no user", ev, g.ID)
		}
		if ev.Directory != "m365" || ev.Outcome != store.OutcomeFailure || !strings.Contains(ev.Detail, "503") {
			t.Errorf("event %+v: want a failure in m365 carrying the remote error", ev)
		}
		if evs, _, _ := r.st.ListEvents(store.EventFilter{GroupID: g.ID}); len(evs) != 1 || evs[0].Seq != ev.Seq {
			t.Errorf("events of the group: %+v", evs)
		}
	})
}
