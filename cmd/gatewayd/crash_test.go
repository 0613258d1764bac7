package main

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/store"
)

// ackedUser is what the API confirmed for one user; an update still in
// flight at the kill may or may not have landed.
type ackedUser struct {
	id       string
	display  string // last acknowledged display name
	inFlight string // display name of an update sent but not answered
}

type apiUser struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	Email       string `json:"email"`
	DisplayName string `json:"display_name"`
}

// TestCrashSafety: SIGKILL at random points under concurrent admin writes;
// after each restart every acknowledged write is there and the indexes
// agree with the data. On each backend: the embedded journal, and
// PostgreSQL (issue 16), where a write is acknowledged once its
// transaction committed in the database.
func TestCrashSafety(t *testing.T) {
	for _, backend := range []string{store.BackendBolt, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) { testCrashSafety(t, backend) })
	}
}

func testCrashSafety(t *testing.T, backend string) {
	dir := t.TempDir()
	text := testConfig(t, dir, "")
	opts := store.Options{}
	if backend == store.BackendPostgres {
		pg := testutil.StartPostgres(t)
		t.Setenv(pgDSNEnv, pg.DSN())
		text += pgStoreBlock("crash", "")
		opts.Postgres = &store.PostgresOptions{DSN: pg.DSN()}
	}
	cfgPath := writeConfig(t, dir, text)
	rounds := 20
	var mu sync.Mutex
	acked := map[string]*ackedUser{} // by username
	rng := rand.New(rand.NewPCG(1, 2))

	for round := 0; round < rounds; round++ {
		p := startDaemon(t, dir, cfgPath)
		verifyAcked(t, p, acked)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("r%02dw%di%03d", round, w, i)
					var u apiUser
					if _, err := p.api("POST", "/v1/users", map[string]any{"username": name, "email": name + "@Example.test", "display_name": "v0"}, &u); err != nil {
						return // the daemon died under us
					}
					mu.Lock()
					acked[name] = &ackedUser{id: u.ID, display: "v0"}
					mu.Unlock()
					// Update an earlier user of this worker.
					if i > 0 {
						prev := fmt.Sprintf("r%02dw%di%03d", round, w, i-1)
						mu.Lock()
						a := acked[prev]
						v := fmt.Sprintf("v%d", i)
						a.inFlight = v
						mu.Unlock()
						if _, err := p.api("PATCH", "/v1/users/"+a.id, map[string]any{"display_name": v}, nil); err != nil {
							return
						}
						mu.Lock()
						a.display, a.inFlight = v, ""
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(20+rng.IntN(180)) * time.Millisecond)
		p.kill()
		close(stop)
		wg.Wait()
	}
	p := startDaemon(t, dir, cfgPath)
	verifyAcked(t, p, acked)
	p.stop()
	if len(acked) < rounds {
		t.Fatalf("only %d writes were acknowledged over %d rounds: the test did not exercise anything", len(acked), rounds)
	}
	// The journal itself: indexes agree with the data.
	st, err := store.Open(filepath.Join(dir, "data"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d acknowledged users survived %d SIGKILLs", backend, len(acked), rounds)
}

func verifyAcked(t *testing.T, p *proc, acked map[string]*ackedUser) {
	t.Helper()
	var all []apiUser
	after := ""
	for {
		var page struct {
			Users []apiUser `json:"users"`
			Next  string    `json:"next"`
		}
		if _, err := p.api("GET", "/v1/users?limit=1000&after="+after, nil, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Users...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	listed := map[string]apiUser{}
	for _, u := range all {
		listed[u.Username] = u
	}
	for name, a := range acked {
		u, ok := listed[name]
		if !ok {
			t.Fatalf("acknowledged user %s is missing after restart", name)
		}
		if u.ID != a.id {
			t.Fatalf("user %s: id %s, acknowledged %s", name, u.ID, a.id)
		}
		if u.DisplayName != a.display && u.DisplayName != a.inFlight {
			t.Fatalf("user %s: display name %q, acknowledged %q (in flight %q)", name, u.DisplayName, a.display, a.inFlight)
		}
		// Every index finds the same object.
		for _, ref := range []string{a.id, name, strings.ToUpper(name)} {
			var got apiUser
			if _, err := p.api("GET", "/v1/users/"+ref, nil, &got); err != nil || got.ID != a.id {
				t.Fatalf("lookup %s: %+v %v", ref, got, err)
			}
		}
	}
}

// TestDamagedJournal: a truncated or corrupted journal stops the daemon
// with a clear message and is left exactly as it was.
func TestDamagedJournal(t *testing.T) {
	for _, damage := range []string{"truncate", "corrupt"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := writeConfig(t, dir, testConfig(t, dir, ""))
			p := startDaemon(t, dir, cfgPath)
			for i := 0; i < 50; i++ {
				name := fmt.Sprintf("user%d", i)
				if _, err := p.api("POST", "/v1/users", map[string]any{"username": name, "email": name + "@example.test",
					"first_name": strings.Repeat("x", 200)}, nil); err != nil {
					t.Fatal(err)
				}
			}
			p.stop()
			db := filepath.Join(dir, "data", "gatewayd.db")
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "truncate":
				b = b[:len(b)/2]
			case "corrupt":
				// Scribble over every page after the meta pages.
				for i := 4 * 4096; i < len(b); i += 97 {
					b[i] ^= 0xA5
				}
			}
			if err := os.WriteFile(db, b, 0o600); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)

			out, err := runBinary("serve", "-config", cfgPath)
			if err == nil {
				t.Fatalf("gatewayd started on a damaged journal:\n%s", out)
			}
			if !strings.Contains(out, db) {
				t.Fatalf("the error must name the journal file %s:\n%s", db, out)
			}
			after, _ := os.ReadFile(db)
			if sha256.Sum256(after) != sum {
				t.Fatal("the damaged journal was modified: data may have been lost")
			}
			t.Logf("%s: %s", damage, strings.TrimSpace(out))
		})
	}
}
