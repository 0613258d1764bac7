package sync_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

func TestGroupsFollowTheGateway(t *testing.T) {
	tests := []struct {
		name      string
		existing  int  // remote groups already named "staff"
		takenOver bool // the engine must adopt the one existing group
		wantTotal int
	}{
		{"none: created", 0, false, 1},
		{"one: taken over", 1, true, 1},
		{"two: a third is created", 2, false, 3},
	}
	eachBackend(t, func(t *testing.T, newB func() backend) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := newRig(t, newB(), gwsync.Directory{}, gwsync.Config{})
				var existingID string
				for i := 0; i < tc.existing; i++ {
					existingID = r.b.addGroup("staff")
				}
				g, err := r.st.CreateGroup(&store.Group{Name: "staff", Description: "All staff"})
				if err != nil {
					t.Fatal(err)
				}
				var users []*store.User
				for _, n := range []string{"ann", "bea", "cai"} {
					u := r.user(n, nil)
					users = append(users, u)
					r.st.AddMember(g.ID, u.ID)
				}
				r.bind(store.BindGroup, g.ID)

				var remoteID string
				testutil.Eventually(t, 10*time.Second, func() bool {
					st, err := r.st.SyncStateOf("m365", g.ID)
					if err != nil || !st.Provisioned || len(r.b.groupsNamed("staff")) != tc.wantTotal {
						return false
					}
					remoteID = st.RemoteID
					return len(r.b.groupMembers(remoteID)) == 3
				}, "group provisioned with three members")
				if tc.takenOver && remoteID != existingID {
					t.Fatalf("the existing group %s was not taken over (engine uses %s)", existingID, remoteID)
				}
				if got := r.b.groupMembers(remoteID); !slices.Equal(got, []string{"ann@corp.test", "bea@corp.test", "cai@corp.test"}) {
					t.Fatalf("members %v", got)
				}

				// Membership changes reach the directory.
				r.st.RemoveMember(g.ID, users[1].ID)
				dan := r.user("dan", nil)
				r.st.AddMember(g.ID, dan.ID)
				testutil.Eventually(t, 10*time.Second, func() bool {
					return slices.Equal(r.b.groupMembers(remoteID), []string{"ann@corp.test", "cai@corp.test", "dan@corp.test"})
				}, fmt.Sprintf("members follow the gateway (now %v)", r.b.groupMembers(remoteID)))
				r.waitEnabled("bea@corp.test", false) // lost her only binding

				// Unbinding the group disables members whose only binding it was.
				r.bind(store.BindUser, users[0].ID) // ann is also bound directly
				r.unbind(store.BindGroup, g.ID)
				r.waitEnabled("cai@corp.test", false)
				r.waitEnabled("dan@corp.test", false)
				r.settle(users[0].ID)
				if !r.b.enabled("ann@corp.test") {
					t.Fatal("ann is still bound directly and must stay enabled")
				}
				if n := len(r.events("group_create_provision")); (n == 0) == !tc.takenOver {
					t.Fatalf("group_create_provision events: %d", n)
				}
				testutil.Eventually(t, 10*time.Second, func() bool { return len(r.events("group_update_provision")) > 0 },
					"a group_update_provision event")
			})
		}
	})
}
