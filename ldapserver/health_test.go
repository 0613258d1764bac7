package ldapserver

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// switchListener fails Accept, like a process out of descriptors, while
// failing is set.
type switchListener struct {
	net.Listener
	failing atomic.Bool
}

func (l *switchListener) Accept() (net.Conn, error) {
	if l.failing.Load() {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// waitHealth polls Health until ok accepts its answer.
func waitHealth(t *testing.T, s *Server, ok func(error) bool) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Health()
		if ok(err) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("Health stays at %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isNil(err error) bool  { return err == nil }
func notNil(err error) bool { return err != nil }

// TestHealth: Health is nil while the door accepts, and says why when it
// does not: before Serve, after shutdown, a listener gone, accept failing
// (and nil again once accepting works).
func TestHealth(t *testing.T) {
	tests := []struct {
		name string
		// breakIt does something to the serving door; nil Health after
		// it, unless want is set.
		breakIt func(t *testing.T, s *Server, ln *switchListener, stop func())
		want    string
		// mend, when set, undoes breakIt; Health must be nil again.
		mend func(t *testing.T, s *Server, ln *switchListener)
	}{
		{name: "serving", breakIt: func(*testing.T, *Server, *switchListener, func()) {}},
		{name: "shut down", breakIt: func(_ *testing.T, _ *Server, _ *switchListener, stop func()) { stop() },
			want: "ldap: shut down"},
		{name: "listener closed under it", breakIt: func(_ *testing.T, _ *Server, ln *switchListener, _ func()) { ln.Listener.Close() },
			want: "stopped"},
		{name: "accept failing", breakIt: func(t *testing.T, _ *Server, ln *switchListener, _ func()) {
			ln.failing.Store(true)
			// Accept is blocked in the kernel: a connection wakes it.
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				defer c.Close()
			}
		}, want: "accepting connections fails", mend: func(t *testing.T, s *Server, ln *switchListener) {
			ln.failing.Store(false)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			waitHealth(t, s, isNil)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, auth := newFixture()
			s, err := New(Config{Listen: "127.0.0.1:0", BaseDN: testBase, ExemptLoopback: true}, auth, dir, newTestLogger(newSyncBuffer()), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Health(); err == nil || !strings.Contains(err.Error(), "not listening") {
				t.Errorf("before Serve: %v", err)
			}
			var ln *switchListener
			s.wrapListener = func(l net.Listener) net.Listener { ln = &switchListener{Listener: l}; return ln }
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			stop := sync.OnceFunc(func() { cancel(); <-done })
			defer stop()
			<-s.Ready()
			if err := s.Health(); err != nil {
				t.Fatalf("serving: %v", err)
			}
			tc.breakIt(t, s, ln, stop)
			if tc.want == "" {
				if err := s.Health(); err != nil {
					t.Fatalf("Health: %v", err)
				}
				return
			}
			if err := waitHealth(t, s, notNil); !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Health: %v, want %q", err, tc.want)
			}
			if tc.mend != nil {
				tc.mend(t, s, ln)
			}
		})
	}
}
