package sync_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

// TestEverySPEC7EventName: each provisioning event SPEC 7 names, and its
// _failed variant, is recorded by the step that should record it, against
// each fake directory. A failed step runs with the directory down and one
// attempt, so its failure is final and recorded once.
func TestEverySPEC7EventName(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{}, gwsync.Config{MaxAttempts: 1})
		var u *store.User
		var g *store.Group
		update := func(fn func(*store.User)) {
			if _, err := r.st.UpdateUser(u.ID, func(x *store.User) error { fn(x); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		bump := func() { update(func(x *store.User) { x.PasswordVersion++ }) }
		steps := []struct {
			typ  store.EventType
			down bool
			do   func()
		}{
			{store.EventUserCreateProvisionFailed, true, func() {
				u = r.user("evan", nil)
				r.bind(store.BindUser, u.ID)
			}},
			{store.EventUserCreateProvision, false, func() { update(func(x *store.User) { x.FirstName = "Ev" }) }},
			{store.EventUserUpdateProvision, false, func() { update(func(x *store.User) { x.LastName = "Ng" }) }},
			{store.EventUserUpdateProvisionFailed, true, func() { update(func(x *store.User) { x.LastName = "Nguyen" }) }},
			{store.EventUserPasswordUpdateProvision, false, func() { bump(); login(r, u, "Evan-Pw-0001") }},
			{store.EventUserPasswordUpdateProvisionFailed, true, func() { bump(); login(r, u, "Evan-Pw-0002") }},
			{store.EventUserDeprovision, false, func() { update(func(x *store.User) { x.State = store.StateSuspended }) }},
			{store.EventUserDeprovisionFailed, true, func() {
				r.b.setDown(false)
				update(func(x *store.User) { x.State = store.StateActive })
				r.waitEnabled("evan@corp.test", true)
				r.b.setDown(true)
				update(func(x *store.User) { x.State = store.StateSuspended })
			}},
			{store.EventGroupCreateProvision, false, func() {
				r.b.setDown(false)
				update(func(x *store.User) { x.State = store.StateActive })
				r.waitEnabled("evan@corp.test", true)
				var err error
				if g, err = r.st.CreateGroup(&store.Group{Name: "crew"}); err != nil {
					t.Fatal(err)
				}
				r.bind(store.BindGroup, g.ID)
			}},
			{store.EventGroupUpdateProvision, false, func() {
				if err := r.st.AddMember(g.ID, u.ID); err != nil {
					t.Fatal(err)
				}
			}},
			{store.EventGroupUpdateProvisionFailed, true, func() {
				if err := r.st.RemoveMember(g.ID, u.ID); err != nil {
					t.Fatal(err)
				}
			}},
			{store.EventGroupCreateProvisionFailed, true, func() {
				g2, err := r.st.CreateGroup(&store.Group{Name: "crew2"})
				if err != nil {
					t.Fatal(err)
				}
				r.bind(store.BindGroup, g2.ID)
			}},
		}
		for _, s := range steps {
			typ := string(s.typ)
			before := len(r.events(typ))
			r.b.setDown(s.down)
			s.do()
			testutil.Eventually(t, 15*time.Second, func() bool { return len(r.events(typ)) > before }, "a "+typ+" event")
			ev := r.events(typ)[before]
			wantOutcome := store.OutcomeSuccess
			if s.typ.IsFailed() {
				wantOutcome = store.OutcomeFailure
				if !strings.Contains(ev.Detail, "503") {
					t.Errorf("%s carries no remote error: %+v", typ, ev)
				}
			}
			if ev.Outcome != wantOutcome || ev.Directory != "m365" {
				t.Errorf("%s: %+v", typ, ev)
			}
			if strings.HasPrefix(typ, "group_") != (ev.GroupID != "") {
				t.Errorf("%s: group events carry the group, user events the user: %+v", typ, ev)
			}
			r.b.setDown(false)
		}
	})
}
