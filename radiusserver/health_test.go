package radiusserver

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// TestHealth: Health is nil while the door reads, and says why when it
// does not: before Serve, after shutdown, a socket gone, reads failing
// (and nil again once reading works).
func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, s *Server, stop func())
		want    string
		// mend, when set, undoes breakIt; Health must be nil again.
		mend func(t *testing.T, s *Server)
	}{
		{name: "serving", breakIt: func(*testing.T, *Server, func()) {}},
		{name: "shut down", breakIt: func(_ *testing.T, _ *Server, stop func()) { stop() }, want: "radius: shut down"},
		{name: "socket closed under it", breakIt: func(_ *testing.T, s *Server, _ func()) { s.conns[0].Close() }, want: "stopped"},
		{name: "reads failing", breakIt: func(_ *testing.T, s *Server, _ func()) {
			_ = s.conns[0].SetReadDeadline(time.Unix(1, 0))
		}, want: "reading requests fails", mend: func(t *testing.T, s *Server) {
			_ = s.conns[0].SetReadDeadline(time.Time{})
			c, err := net.Dial("udp", s.Addrs()[0].String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Any datagram is a successful read (this one is then dropped);
			// the loop may still be sleeping after its last failure, so
			// keep sending until it reads one.
			testutil.Eventually(t, 5*time.Second, func() bool {
				_, _ = c.Write([]byte("x"))
				return s.Health() == nil
			}, "health after reads work again")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, unitConfig(), newFakeAuth())
			if err := s.Health(); err == nil || !strings.Contains(err.Error(), "not listening") {
				t.Errorf("before Serve: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			stop := sync.OnceFunc(func() { cancel(); <-done })
			defer stop()
			<-s.Ready()
			if err := s.Health(); err != nil {
				t.Fatalf("serving: %v", err)
			}
			tc.breakIt(t, s, stop)
			if tc.want == "" {
				if err := s.Health(); err != nil {
					t.Fatalf("Health: %v", err)
				}
				return
			}
			var err error
			testutil.Eventually(t, 5*time.Second, func() bool { err = s.Health(); return err != nil }, "Health fails")
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Health: %v, want %q", err, tc.want)
			}
			if tc.mend != nil {
				tc.mend(t, s)
			}
		})
	}
}
