package ldapserver

import (
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// TestPerSourceConnectionCap (C1): one address cannot hold more than
// max_connections_per_source connections; the one over is refused with a
// Notice of Disconnection, counted and logged, and a slot freed is
// usable again. Loopback is not counted unless the test says so.
func TestPerSourceConnectionCap(t *testing.T) {
	tests := []struct {
		name        string
		capLoopback bool
		open        int
		refused     int
	}{
		{"loopback exempt", false, 6, 0},
		{"at the cap", true, 3, 0},
		{"over the cap", true, 5, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, false, func(c *Config) { c.MaxConnectionsPerSource = 3 })
			ts.s.capLoopback.Store(tc.capLoopback)
			var ok []*ldap.Conn
			refused := 0
			for range tc.open {
				c := ts.dial(t)
				if err := anonBind(c); err != nil {
					refused++
					c.Close()
					continue
				}
				ok = append(ok, c)
			}
			if refused != tc.refused {
				t.Fatalf("refused %d of %d, want %d", refused, tc.open, tc.refused)
			}
			if got := ts.metric(t, "gatewayd_ldap_connections_refused_total", map[string]string{"reason": "max_connections_per_source"}); int(got) != tc.refused {
				t.Errorf("refused metric %v, want %d", got, tc.refused)
			}
			if tc.refused > 0 {
				if !strings.Contains(ts.logs.String(), "max_connections_per_source") {
					t.Errorf("refusal not logged:\n%s", ts.logs.String())
				}
				// Freeing a slot lets the address in again.
				ok[0].Close()
				deadline := time.Now().Add(5 * time.Second)
				for {
					c := ts.dial(t)
					err := c.Bind(aliceDN, alicePW)
					c.Close()
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("slot not freed: %v", err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
}

// TestUnboundIdleTimeout (C1): anonymous traffic does not keep an unbound
// connection open past unbound_idle_timeout, while a bound one lives on
// through the same traffic and silence.
func TestUnboundIdleTimeout(t *testing.T) {
	tests := []struct {
		name       string
		dn, pw     string
		wantClosed bool
	}{
		{"anonymous binds", "", "", true},
		{"failed binds", aliceDN, "wrong", true},
		{"bound user", aliceDN, alicePW, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, false, func(c *Config) { c.UnboundIdleTimeout = 500 * time.Millisecond })
			c := ts.dial(t)
			c.SetTimeout(2 * time.Second)
			start := time.Now()
			var closedAfter time.Duration
			for time.Since(start) < 2*time.Second {
				err := anonBind(c)
				if tc.dn != "" {
					err = c.Bind(tc.dn, tc.pw)
				}
				if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
					closedAfter = time.Since(start)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if tc.wantClosed {
				if closedAfter == 0 || closedAfter < 400*time.Millisecond {
					t.Fatalf("closed after %v, want about 500ms", closedAfter)
				}
				if ts.metric(t, "gatewayd_ldap_unbound_closed_total", nil) < 1 {
					t.Errorf("unbound close not counted")
				}
				return
			}
			if closedAfter != 0 {
				t.Fatalf("bound connection closed after %v", closedAfter)
			}
			// Silence longer than the unbound limit: still open.
			time.Sleep(700 * time.Millisecond)
			if _, err := c.Search(ldap.NewSearchRequest(aliceDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil)); err != nil {
				t.Fatalf("bound connection after silence: %v", err)
			}
		})
	}
}

// anonBind sends an anonymous simple bind (empty name and password).
func anonBind(c *ldap.Conn) error {
	_, err := c.SimpleBind(&ldap.SimpleBindRequest{AllowEmptyPassword: true})
	return err
}
