package sync_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

func groupsNamed(fg *fakegraph.Server, name string) []fakegraph.Group {
	var out []fakegraph.Group
	for _, g := range fg.Groups() {
		if g.DisplayName == name {
			out = append(out, g)
		}
	}
	return out
}

// remoteMembers lists the UPNs of a remote group's members.
func remoteMembers(fg *fakegraph.Server, groupID string) []string {
	var upns []string
	for _, id := range fg.GroupMembers(groupID) {
		if u, ok := fg.User(id); ok {
			upns = append(upns, u.UserPrincipalName)
		}
	}
	slices.Sort(upns)
	return upns
}

func TestGroupsFollowTheGateway(t *testing.T) {
	tests := []struct {
		name     string
		existing int // remote groups already named "staff"
		// takenOver: the engine must adopt the one existing group.
		takenOver bool
		wantTotal int
	}{
		{"none: created", 0, false, 1},
		{"one: taken over", 1, true, 1},
		{"two: a third is created", 2, false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, gwsync.Directory{}, gwsync.Config{})
			var existingID string
			for i := 0; i < tc.existing; i++ {
				existingID = r.fg.AddGroup("staff").ID
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

			var remote fakegraph.Group
			testutil.Eventually(t, 10*time.Second, func() bool {
				gs := groupsNamed(r.fg, "staff")
				if len(gs) != tc.wantTotal {
					return false
				}
				st, err := r.st.SyncStateOf("m365", g.ID)
				if err != nil || !st.Provisioned {
					return false
				}
				for _, x := range gs {
					if x.ID == st.RemoteID {
						remote = x
					}
				}
				return len(remoteMembers(r.fg, st.RemoteID)) == 3
			}, "group provisioned with three members")
			if tc.takenOver && remote.ID != existingID {
				t.Fatalf("the existing group %s was not taken over (engine uses %s)", existingID, remote.ID)
			}
			if !remote.SecurityEnabled || remote.MailEnabled {
				t.Fatalf("not a security group: %+v", remote)
			}
			if got := remoteMembers(r.fg, remote.ID); !slices.Equal(got, []string{"ann@corp.test", "bea@corp.test", "cai@corp.test"}) {
				t.Fatalf("members %v", got)
			}

			// Membership changes reach the directory.
			r.st.RemoveMember(g.ID, users[1].ID)
			dan := r.user("dan", nil)
			r.st.AddMember(g.ID, dan.ID)
			testutil.Eventually(t, 10*time.Second, func() bool {
				return slices.Equal(remoteMembers(r.fg, remote.ID), []string{"ann@corp.test", "cai@corp.test", "dan@corp.test"})
			}, fmt.Sprintf("members follow the gateway (now %v)", remoteMembers(r.fg, remote.ID)))
			// bea lost her only binding: her account is disabled, not deleted.
			r.waitEnabled("bea@corp.test", false)

			// Unbinding the group disables members whose only binding it was.
			r.bind(store.BindUser, users[0].ID) // ann is also bound directly
			r.unbind(store.BindGroup, g.ID)
			r.waitEnabled("cai@corp.test", false)
			r.waitEnabled("dan@corp.test", false)
			r.settle(users[0].ID)
			if u, _ := r.fg.User("ann@corp.test"); !u.AccountEnabled {
				t.Fatal("ann is still bound directly and must stay enabled")
			}
			if n := len(r.events("group_create_provision")); (n == 0) == !tc.takenOver {
				t.Fatalf("group_create_provision events: %d", n)
			}
			if len(r.events("group_update_provision")) == 0 {
				t.Fatal("no group_update_provision event")
			}
		})
	}
}
