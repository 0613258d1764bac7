package sync_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

// TestPauseQueuesAndResumeApplies: while paused nothing reaches the
// directory, changes and a plaintext wait; resume applies them. After a
// restart while paused (the daemon pauses again from the store), resume
// applies what changed before the restart.
func TestPauseQueuesAndResumeApplies(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r := newRig(t, newB(), gwsync.Directory{}, gwsync.Config{})
		u := r.user("pia", nil)
		r.bind(store.BindUser, u.ID)
		r.waitEnabled("pia@corp.test", true)

		if !r.eng.Pause("m365") || !r.eng.Paused("m365") || r.eng.Pause("nope") {
			t.Fatal("Pause")
		}
		r.st.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateSuspended; return nil })
		r.eng.PasswordChanged(u, secret.New([]byte("Paused-Pw1!")))
		time.Sleep(300 * time.Millisecond)
		if !r.b.enabled("pia@corp.test") || r.b.pushes("pia@corp.test") != 0 {
			t.Fatal("work reached the directory while paused")
		}
		if n := r.eng.ParkedJobs("m365"); n != 1 {
			t.Fatalf("parked jobs: %d, want 1 (merged per pair)", n)
		}
		r.eng.Resume("m365")
		r.waitEnabled("pia@corp.test", false)

		// Restart while paused: the parked work is gone with the process,
		// the resume's scan finds the change.
		r.st.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateActive; return nil })
		r.settle(u.ID)
		r.waitEnabled("pia@corp.test", true)
		r.eng.Pause("m365")
		r.st.UpdateUser(u.ID, func(x *store.User) error { x.State = store.StateSuspended; return nil })
		r.stop()
		// A new engine paused before it runs, as newEngine does from the
		// store's record.
		eng := gwsync.New(gwsync.Config{}, r.st, []*gwsync.Directory{{Name: "m365", Connector: r.b.connector(t),
			Policy: gwsync.PasswordPolicy{MinLength: 8, MaxLength: 100}}}, nil, nil)
		eng.Pause("m365")
		r.st.Subscribe(eng.HandleChange)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { eng.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		time.Sleep(300 * time.Millisecond)
		if !r.b.enabled("pia@corp.test") {
			t.Fatal("work reached the directory while paused, after the restart")
		}
		eng.Resume("m365")
		r.waitEnabled("pia@corp.test", false)
	})
}
