package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// Several gatewayd replicas on one PostgreSQL (issue 16), as real
// processes: each has its own data_dir (the admin token lives there) and
// its own doors, and they share the database through [store] dsn.

// pgDSNEnv holds the test database's URL; the replicas read it through
// the secret reference dsn = "env:GW_TEST_PG_DSN".
const pgDSNEnv = "GW_TEST_PG_DSN"

// pgStoreBlock is the [store] block of a replica named name. extra adds
// keys to the block.
func pgStoreBlock(name, extra string) string {
	return fmt.Sprintf("\n[store]\nbackend = \"postgres\"\ndsn = \"env:%s\"\nreplica = %q\n%s", pgDSNEnv, name, extra)
}

const replicaBaseDN = "dc=example,dc=test"

// replica is one gatewayd of a set sharing a database.
type replica struct {
	*proc
	name   string
	radius string // RADIUS address
	ldap   string // ldap:// URL
}

// replicaOpts shapes a set of replicas.
type replicaOpts struct {
	fg         *fakegraph.Server // non-nil: an Entra directory at the fake Graph
	extra      string            // appended to each config (more sections)
	storeExtra string            // more [store] keys
	syncExtra  string            // more [sync] keys (with fg)
}

// startReplicas starts n replicas on dsn with RADIUS and LDAP doors.
func startReplicas(t *testing.T, dsn string, n int, o replicaOpts) []*replica {
	t.Helper()
	t.Setenv(pgDSNEnv, dsn)
	var rs []*replica
	for i := 1; i <= n; i++ {
		dir := t.TempDir()
		r := &replica{name: fmt.Sprintf("r%d", i)}
		var text string
		if o.fg != nil {
			text, r.radius, r.ldap = takeoverConfig(t, dir, o.fg)
			if !strings.Contains(text, "\n[sync]\n") {
				t.Fatal("takeoverConfig changed: no [sync] block to add to")
			}
			text = strings.Replace(text, "\n[sync]\n", "\n[sync]\n"+o.syncExtra, 1)
		} else {
			text, r.radius = doorsConfig(t, dir)
			ldapAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
			const ldapBlock = "[ldap]\nlisten = \"\"\n"
			if !strings.Contains(text, ldapBlock) {
				t.Fatal("testConfig changed: no [ldap] block to replace")
			}
			text = strings.Replace(text, ldapBlock, fmt.Sprintf("[ldap]\nlisten = %q\nbase_dn = %q\n", ldapAddr, replicaBaseDN), 1)
			r.ldap = "ldap://" + ldapAddr
		}
		text += o.extra + pgStoreBlock(r.name, o.storeExtra)
		r.proc = startDaemon(t, dir, writeConfig(t, dir, text))
		rs = append(rs, r)
	}
	return rs
}

func mustAPI(t *testing.T, p *proc, method, path string, body, out any) {
	t.Helper()
	if _, err := p.api(method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// addUser creates username with password through p.
func addUser(t *testing.T, p *proc, username, password string) {
	t.Helper()
	mustAPI(t, p, "POST", "/v1/users", map[string]any{"username": username, "email": username + "@example.test"}, nil)
	mustAPI(t, p, "PUT", "/v1/users/"+username+"/password", map[string]string{"password": password}, nil)
}

type userState struct {
	State           string `json:"state"`
	PasswordStatus  string `json:"password_status"`
	PasswordVersion uint64 `json:"password_version"`
}

func userOn(t *testing.T, p *proc, username string) (userState, bool) {
	t.Helper()
	var u userState
	code, err := p.api("GET", "/v1/users/"+username, nil, &u)
	if code == 404 {
		return u, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return u, true
}

// replicationBound is how long a test waits for a write to reach another
// replica. Issue 16 asks for 1 s; tests never fail on timing, so the
// bound is generous, the tests log the delay they saw, and
// bench/pgstore measures its distribution (p99 under 2 ms here).
const replicationBound = 10 * time.Second

// TestReplicasReplicate: a user created on replica 1 logs in over LDAP
// on replica 2 and over RADIUS on replica 3 (issue 16 asks within 1 s of
// the admin API acknowledging the write; the delay is logged, see
// replicationBound).
func TestReplicasReplicate(t *testing.T) {
	testutil.RequireBinary(t, "ldapsearch")
	pg := testutil.StartPostgres(t)
	rs := startReplicas(t, pg.DSN(), 3, replicaOpts{})
	for i, name := range []string{"rita", "rob", "ruth"} {
		pw := "Replica-Pass-" + name
		addUser(t, rs[0].proc, name, pw)
		acked := time.Now()
		// Poll the admin API (a failed bind would count towards the
		// lockout), then log in: the login itself must succeed at once.
		testutil.Eventually(t, replicationBound, func() bool {
			u, ok := userOn(t, rs[1].proc, name)
			return ok && u.PasswordVersion >= 1
		}, name+" visible on replica 2")
		if !ldapBind(t, rs[1].ldap, "uid="+name+",ou=users,"+replicaBaseDN, pw) {
			t.Fatalf("%s: LDAP bind on replica 2 refused", name)
		}
		ldapDelay := time.Since(acked)
		testutil.Eventually(t, replicationBound, func() bool {
			u, ok := userOn(t, rs[2].proc, name)
			return ok && u.PasswordVersion >= 1
		}, name+" visible on replica 3")
		if _, ok := radclient(t, rs[2].radius, name, pw); !ok {
			t.Fatalf("%s: RADIUS login on replica 3 refused", name)
		}
		radiusDelay := time.Since(acked)
		t.Logf("user %d (%s): LDAP login on replica 2 done %v after the write was acknowledged on replica 1, RADIUS on replica 3 %v",
			i+1, name, ldapDelay.Round(time.Millisecond), radiusDelay.Round(time.Millisecond))
	}
	// Both logins are in the one audit log, listed by the first replica.
	rs[0].loginEvents(t, "rita", "ldap_bind", 1)
	rs[0].loginEvents(t, "rita", "radius_auth", 1)

	// Behind a load balancer the next write may reach another replica at
	// once: an admin write catches up first, so it finds the user created
	// a moment ago elsewhere.
	mustAPI(t, rs[1].proc, "POST", "/v1/groups", map[string]any{"name": "lb-staff"}, nil)
	for i := range 5 {
		name := fmt.Sprintf("lb%d", i)
		mustAPI(t, rs[0].proc, "POST", "/v1/users", map[string]any{"username": name, "email": name + "@example.test"}, nil)
		mustAPI(t, rs[1+i%2].proc, "PUT", "/v1/groups/lb-staff/members/"+name, nil, nil)
	}
}

// TestReplicasCredentialCache: a login on replica 1 warms its credential
// cache; a suspend on replica 3 refuses the next login on replica 1 once
// it has replicated (the delay is logged; issue 16 asks within 1 s).
func TestReplicasCredentialCache(t *testing.T) {
	testutil.RequireBinary(t, "ldapsearch")
	pg := testutil.StartPostgres(t)
	rs := startReplicas(t, pg.DSN(), 3, replicaOpts{})
	const pw = "Cached-Pass-1"
	addUser(t, rs[0].proc, "carl", pw)
	dn := "uid=carl,ou=users," + replicaBaseDN
	// Twice over each door: the second login is served from the cache.
	for i := 0; i < 2; i++ {
		if _, ok := radclient(t, rs[0].radius, "carl", pw); !ok {
			t.Fatal("RADIUS login on replica 1 refused")
		}
		if !ldapBind(t, rs[0].ldap, dn, pw) {
			t.Fatal("LDAP login on replica 1 refused")
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { _, ok := userOn(t, rs[2].proc, "carl"); return ok }, "carl on replica 3")
	mustAPI(t, rs[2].proc, "POST", "/v1/users/carl/suspend", nil, nil)
	suspended := time.Now()
	// The refusal is the property; a login still accepted in the first
	// moments is the asynchronous replication, bounded by the deadline.
	accepted := 0
	testutil.Eventually(t, replicationBound, func() bool {
		if _, ok := radclient(t, rs[0].radius, "carl", pw); ok {
			accepted++
			return false
		}
		return true
	}, "a suspend on replica 3 refuses the cached RADIUS login on replica 1")
	delay := time.Since(suspended)
	if ldapBind(t, rs[0].ldap, dn, pw) {
		t.Fatal("the cached LDAP login on replica 1 is still accepted after the suspend reached it")
	}
	t.Logf("suspend on replica 3 refused the cached login on replica 1 after %v (%d logins accepted meanwhile)", delay.Round(time.Millisecond), accepted)
}

// TestReplicasLockout: N wrong passwords spread over three replicas lock
// the account at N in total (N = max_failures), as every replica sees.
func TestReplicasLockout(t *testing.T) {
	testutil.RequireBinary(t, "ldapsearch")
	pg := testutil.StartPostgres(t)
	const maxFailures = 6
	rs := startReplicas(t, pg.DSN(), 3, replicaOpts{
		extra: fmt.Sprintf("\n[authn.lockout]\nmax_failures = %d\nwindow = \"10m\"\nduration = \"10m\"\n", maxFailures),
	})
	const pw = "Lockout-Pass-1"
	addUser(t, rs[0].proc, "lou", pw)
	for _, r := range rs {
		testutil.Eventually(t, 5*time.Second, func() bool { _, ok := userOn(t, r.proc, "lou"); return ok }, "lou on "+r.name)
	}
	statuses := func() []string {
		var s []string
		for _, r := range rs {
			u, _ := userOn(t, r.proc, "lou")
			s = append(s, u.PasswordStatus)
		}
		return s
	}
	for i := 1; i <= maxFailures; i++ {
		r := rs[(i-1)%len(rs)]
		// RADIUS and LDAP alternate, so both doors count.
		if i%2 == 1 {
			if _, ok := radclient(t, r.radius, "lou", "wrong-password"); ok {
				t.Fatal("a wrong password was accepted")
			}
		} else if ldapBind(t, r.ldap, "uid=lou,ou=users,"+replicaBaseDN, "wrong-password") {
			t.Fatal("a wrong password was accepted")
		}
		if i < maxFailures {
			for j, s := range statuses() {
				if s == "locked" {
					t.Fatalf("locked on replica %d after %d failures in total (max_failures %d)", j+1, i, maxFailures)
				}
			}
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, s := range statuses() {
			if s != "locked" {
				return false
			}
		}
		return true
	}, fmt.Sprintf("locked on every replica after %d failures spread over three", maxFailures))
	for _, r := range rs {
		if _, ok := radclient(t, r.radius, "lou", pw); ok {
			t.Fatalf("the right password is accepted on %s while the account is locked", r.name)
		}
	}
}

// fakeUPNs counts the fake's accounts by principal name.
func fakeUPNs(fg *fakegraph.Server) map[string]int {
	seen := map[string]int{}
	for _, u := range fg.Users() {
		seen[strings.ToLower(u.UserPrincipalName)]++
	}
	return seen
}

type dirSync struct {
	PushedVersion uint64 `json:"pushed_password_version"`
	PushPending   bool   `json:"password_push_pending"`
	Provisioned   bool   `json:"provisioned"`
}

func userSync(t *testing.T, p *proc, user string) dirSync {
	t.Helper()
	var v struct {
		Directories []dirSync `json:"directories"`
	}
	mustAPI(t, p, "GET", "/v1/users/"+user+"/sync", nil, &v)
	if len(v.Directories) != 1 {
		t.Fatalf("%s: %d directories in its sync state, want 1", user, len(v.Directories))
	}
	return v.Directories[0]
}

// TestReplicasSync: three replicas with the fake Graph. 200 bound users
// each log in once, spread over the replicas: exactly 200 creates and
// 200 password pushes. Then the replica holding jobs is SIGKILLed
// mid-run: no create or push is duplicated, every user ends up with its
// account (the others take the dead replica's claims over once its
// leases run out), and exactly the users whose login plaintext died with
// it are left "password push pending" (SPEC 3.7).
func TestReplicasSync(t *testing.T) {
	testutil.RequireBinary(t, "radclient")
	fg := fakegraph.New()
	defer fg.Close()
	pg := testutil.StartPostgres(t)
	// The shortest lease allowed (more than the 30 s remote call timeout):
	// the dead replica's claims free their pairs after it.
	rs := startReplicas(t, pg.DSN(), 3, replicaOpts{fg: fg, syncExtra: "claim_lease = \"31s\"\n"})

	// s* log in in the first part, k* in the second (the kill); c* join
	// the bound group at the kill. Every user and membership is written
	// before the group is bound, so no admin-set plaintext is still queued
	// when the accounts are created: each is created with a random
	// password, push pending, and only a login brings the plaintext.
	const n, nk, nc = 200, 45, 30
	pw := func(name string) string { return "Sync-Pass-" + name }
	mustAPI(t, rs[0].proc, "POST", "/v1/groups", map[string]any{"name": "staff"}, nil)
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("s%03d", i))
	}
	for i := 0; i < nk; i++ {
		names = append(names, fmt.Sprintf("k%02d", i))
	}
	for i, name := range names {
		// Spread the admin writes over the replicas too; the membership
		// goes to the replica that created the user, since another one's
		// admin API may not see the user yet (its lookup reads its own
		// view, which follows the database asynchronously).
		p := rs[i%3].proc
		addUser(t, p, name, pw(name))
		mustAPI(t, p, "PUT", "/v1/groups/staff/members/"+name, nil, nil)
	}
	for i := 0; i < nc; i++ {
		name := fmt.Sprintf("c%02d", i)
		addUser(t, rs[1+i%2].proc, name, pw(name))
	}
	mustAPI(t, rs[1].proc, "PUT", "/v1/directories/m365/groups/staff", nil, nil)
	testutil.Eventually(t, 60*time.Second, func() bool { return len(fg.Users()) == n+nk }, fmt.Sprintf("%d accounts created", n+nk))
	for i := 0; i < nk; i++ {
		u := fmt.Sprintf("k%02d", i)
		testutil.Eventually(t, 10*time.Second, func() bool { return userSync(t, rs[0].proc, u).PushPending }, u+" provisioned, push pending")
		if c := passwordPatches(fg, u+"@example.test"); c != 0 {
			t.Fatalf("%s: %d password pushes before any login", u, c)
		}
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var loginErrs []string
	login := func(r *replica, users []string) {
		defer wg.Done()
		var reqs []radRequest
		for _, u := range users {
			reqs = append(reqs, radRequest{user: u, pass: pw(u)})
		}
		acc, rej, out := radBatch(r.radius, reqs)
		if acc != len(reqs) {
			mu.Lock()
			loginErrs = append(loginErrs, fmt.Sprintf("%s: %d of %d accepted, %d rejected:\n%s", r.name, acc, len(reqs), rej, out))
			mu.Unlock()
		}
	}
	byReplica := make([][]string, 3)
	for i := 0; i < n; i++ {
		byReplica[i%3] = append(byReplica[i%3], fmt.Sprintf("s%03d", i))
	}
	for i, r := range rs {
		wg.Add(1)
		go login(r, byReplica[i])
	}
	wg.Wait()
	if len(loginErrs) > 0 {
		t.Fatal(strings.Join(loginErrs, "\n"))
	}
	var all []string
	for i := 0; i < n; i++ {
		all = append(all, fmt.Sprintf("s%03d", i))
	}
	waitFakePushes(t, fg, rs, all, 60*time.Second)
	for i, r := range rs {
		testutil.Eventually(t, 10*time.Second, func() bool {
			for j := 0; j < n; j++ {
				if st := userSync(t, r.proc, fmt.Sprintf("s%03d", j)); st.PushPending || st.PushedVersion != 1 {
					return false
				}
			}
			return true
		}, fmt.Sprintf("every push recorded, as replica %d sees", i+1))
	}
	if c := fg.Count("POST", fakegraph.KindUsers); c != n+nk {
		t.Fatalf("%d POST /users for %d users", c, n+nk)
	}
	for upn, c := range fakeUPNs(fg) {
		if c != 1 {
			t.Fatalf("%s exists %d times", upn, c)
		}
	}
	for i := 0; i < n; i++ {
		upn := fmt.Sprintf("s%03d@example.test", i)
		if c := passwordPatches(fg, upn); c != 1 {
			t.Fatalf("%s: %d password pushes, want exactly 1", upn, c)
		}
		if !fg.PasswordMatches(upn, pw(fmt.Sprintf("s%03d", i))) {
			t.Fatalf("%s: the pushed password is not the login's", upn)
		}
	}
	t.Logf("%d users, %d logins over 3 replicas: %d creates, %d pushes", n+nk, n, fg.Count("POST", fakegraph.KindUsers), n)

	// The kill. k* users are provisioned and log in spread over the three
	// replicas while the fake is slow, so replica 1 holds push jobs with
	// plaintexts when it dies; c* users join the bound group at the same
	// time, so account creations are in flight on every replica too.
	fg.Latency(150 * time.Millisecond)
	byReplica = make([][]string, 3)
	for i := 0; i < nk; i++ {
		byReplica[i%3] = append(byReplica[i%3], fmt.Sprintf("k%02d", i))
	}
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		for i := 0; i < nc; i++ {
			if _, err := rs[1+i%2].api("PUT", fmt.Sprintf("/v1/groups/staff/members/c%02d", i), nil, nil); err != nil {
				mu.Lock()
				loginErrs = append(loginErrs, err.Error())
				mu.Unlock()
			}
		}
	}()
	wg.Add(3)
	go login(rs[1], byReplica[1])
	go login(rs[2], byReplica[2])
	login(rs[0], byReplica[0]) // replica 1's logins answered: its pushes are queued
	<-joined
	rs[0].kill()
	killedAt := time.Now()
	pushedBefore := 0
	for _, u := range byReplica[0] {
		if passwordPatches(fg, u+"@example.test") > 0 {
			pushedBefore++
		}
	}
	createdBefore := len(fg.Users()) - n - nk
	wg.Wait()
	if len(loginErrs) > 0 {
		t.Fatal(strings.Join(loginErrs, "\n"))
	}
	fg.Latency(0)
	t.Logf("replica 1 killed with %d of its %d logins pushed and %d of %d new accounts created", pushedBefore, len(byReplica[0]), createdBefore, nc)

	// 0 lost: every account exists, after the dead replica's leases.
	testutil.Eventually(t, 60*time.Second, func() bool { return len(fg.Users()) == n+nk+nc }, "every c* account created by the surviving replicas")
	t.Logf("the last account was created %v after the kill", time.Since(killedAt).Round(100*time.Millisecond))
	// The surviving replicas' logins are pushed.
	waitFakePushes(t, fg, rs[1:], append(append([]string(nil), byReplica[1]...), byReplica[2]...), 20*time.Second)
	survivor := rs[1].proc
	var lastBad string // which user is not there yet, for the failure message
	t.Cleanup(func() {
		if t.Failed() && lastBad != "" {
			t.Logf("last sync state that did not hold yet: %s", lastBad)
		}
	})
	// 60 s like the waits above: this once ran out at 20 s under the full
	// suite's load on two cores, with every account already created.
	testutil.Eventually(t, 60*time.Second, func() bool {
		for _, users := range byReplica[1:] {
			for _, u := range users {
				if st := userSync(t, survivor, u); st.PushPending || st.PushedVersion != 1 {
					lastBad = fmt.Sprintf("%s: %+v", u, st)
					return false
				}
			}
		}
		for i := 0; i < nc; i++ {
			if st := userSync(t, survivor, fmt.Sprintf("c%02d", i)); !st.Provisioned || !st.PushPending {
				lastBad = fmt.Sprintf("c%02d: %+v", i, st)
				return false
			}
		}
		return true
	}, "the surviving replicas' pushes recorded; c* provisioned with their push pending (see the state logged below)")

	// 0 duplicated.
	for upn, c := range fakeUPNs(fg) {
		if c != 1 {
			t.Fatalf("%s exists %d times", upn, c)
		}
	}
	// Every create took effect once. A POST the killed replica had in
	// flight is cut off with it (the fake's added latency ends when the
	// client goes: status 0, nothing created) and is made again by the
	// replica that takes the claim over; that is a retry of a call that
	// did nothing, not a duplicate.
	created, aborted := 0, 0
	posts := map[string][]string{}
	for _, q := range fg.Requests() {
		if q.Method != "POST" || q.Kind != fakegraph.KindUsers {
			continue
		}
		var b struct {
			UPN string `json:"userPrincipalName"`
		}
		_ = json.Unmarshal([]byte(q.Body), &b)
		posts[b.UPN] = append(posts[b.UPN], fmt.Sprintf("%s status %d", q.Time.Sub(killedAt).Round(time.Millisecond), q.Status))
		switch {
		case q.Status >= 200 && q.Status < 300:
			created++
		case q.Status == 0: // the client went before the answer: nothing done
			aborted++
		}
	}
	if created != n+nk+nc || created+aborted != fg.Count("POST", fakegraph.KindUsers) {
		for upn, p := range posts {
			if len(p) > 1 {
				t.Logf("POST /users of %s (times from the kill): %v", upn, p)
			}
		}
		t.Fatalf("%d POST /users created accounts (%d cut off by the kill, %d in all) for %d users: a create was duplicated or failed",
			created, aborted, fg.Count("POST", fakegraph.KindUsers), n+nk+nc)
	}
	t.Logf("%d accounts created by one POST each; %d POSTs cut off by the kill and made again by a survivor", created, aborted)
	for i := 0; i < nc; i++ {
		if c := passwordPatches(fg, fmt.Sprintf("c%02d@example.test", i)); c != 0 {
			t.Fatalf("c%02d: %d password pushes without a login", i, c)
		}
	}
	// The partition of replica 1's logins: pushed once and recorded, or
	// pending because the plaintext died with it (a push answered just as
	// it died is done at the fake but not recorded: pending, and the next
	// login pushes again, which is SPEC 3.7's rule).
	var pushed, pending, unrecorded int
	for _, u := range byReplica[0] {
		st := userSync(t, survivor, u)
		c := passwordPatches(fg, u+"@example.test")
		switch {
		case c > 1:
			t.Fatalf("%s: %d password pushes", u, c)
		case !st.PushPending && c == 1 && st.PushedVersion == 1:
			pushed++
		case st.PushPending && c == 0:
			pending++
		case st.PushPending && c == 1:
			unrecorded++
		default:
			t.Fatalf("%s: %d pushes at the fake, sync state %+v: neither pushed nor pending", u, c, st)
		}
	}
	if pending+unrecorded == 0 {
		t.Logf("every push of replica 1 completed before the kill: the partition is trivial this run")
	}
	t.Logf("replica 1's %d logins: %d pushed, %d pending (plaintext gone with it), %d pushed at the kill but not recorded (pending)",
		len(byReplica[0]), pushed, pending, unrecorded)
}

// waitFakePushes waits until each of users has had a password push at the
// fake, and says where the missing ones stand when they do not.
func waitFakePushes(t *testing.T, fg *fakegraph.Server, rs []*replica, users []string, within time.Duration) {
	t.Helper()
	unpushed := func() []string {
		var missing []string
		for _, u := range users {
			if passwordPatches(fg, u+"@example.test") < 1 {
				missing = append(missing, u)
			}
		}
		return missing
	}
	for deadline := time.Now().Add(within); len(unpushed()) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			missing := unpushed()
			for _, u := range missing[:min(len(missing), 5)] {
				acct, _ := fg.User(u + "@example.test")
				var us struct {
					ID string `json:"id"`
				}
				mustAPI(t, rs[0].proc, "GET", "/v1/users/"+u, nil, &us)
				for _, r := range rs {
					t.Logf("%s (id %s, remote %s) on %s: %+v", u, us.ID, acct.ID, r.name, userSync(t, r.proc, u))
				}
			}
			t.Fatalf("%d of %d logins not pushed within %v: %v", len(missing), len(users), within, missing)
		}
	}
}

// radBatch is radclientBatch without t: for goroutines. It returns the
// counts and radclient's output.
func radBatch(addr string, reqs []radRequest) (accepted, rejected int, out string) {
	bin, err := exec.LookPath("radclient")
	if err != nil {
		return 0, 0, err.Error()
	}
	dir, err := os.MkdirTemp("", "gatewayd-radbatch")
	if err != nil {
		return 0, 0, err.Error()
	}
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "dictionary"), []byte("# empty user dictionary\n"), 0o644)
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "User-Name = %q\nUser-Password = %q\nMessage-Authenticator = 0x00\n\n", r.user, r.pass)
	}
	file := filepath.Join(dir, "requests")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return 0, 0, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o, _ := exec.CommandContext(ctx, bin, "-d", dir, "-D", "/usr/share/freeradius", "-p", "1", "-r", "2", "-t", "3",
		"-f", file, addr, "auth", radiusSecret).Output()
	out = string(o)
	return strings.Count(out, "Received Access-Accept"), strings.Count(out, "Received Access-Reject"), out
}

// TestReplicasDatabaseRestart: PostgreSQL stops during a RADIUS login
// load on replica 1. Logins keep succeeding, admin writes get 503 on both
// replicas, and once it is back the login events of the outage are in
// the one audit log, as both replicas list it.
func TestReplicasDatabaseRestart(t *testing.T) {
	testutil.RequireBinary(t, "radclient")
	pg := testutil.StartPostgres(t)
	rs := startReplicas(t, pg.DSN(), 2, replicaOpts{storeExtra: "write_timeout = \"1s\"\n"})
	const users = 5
	var reqs []radRequest
	for i := 0; i < users; i++ {
		name := fmt.Sprintf("d%d", i)
		addUser(t, rs[0].proc, name, "Restart-Pass-"+name)
		reqs = append(reqs, radRequest{user: name, pass: "Restart-Pass-" + name})
	}

	// The load: batches of logins, one after another, until told to stop
	// (bounded: at most maxBatches).
	const maxBatches = 60
	var batches, accepted atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 0; i < maxBatches; i++ {
			select {
			case <-stop:
				return
			default:
			}
			acc, rej, out := radBatch(rs[0].radius, reqs)
			accepted.Add(int64(acc))
			if acc != len(reqs) {
				failMu.Lock()
				failures = append(failures, fmt.Sprintf("batch %d: %d of %d accepted, %d rejected:\n%s", i, acc, len(reqs), rej, out))
				failMu.Unlock()
			}
			batches.Add(1)
		}
	}()
	waitBatches := func(k int64, what string) {
		t.Helper()
		from := batches.Load()
		testutil.Eventually(t, 60*time.Second, func() bool {
			select {
			case <-loadDone:
				t.Fatalf("the login load ended (%d batches) before %s", batches.Load(), what)
			default:
			}
			return batches.Load() >= from+k
		}, what)
	}
	waitBatches(2, "logins before the outage")
	pg.Stop(t)
	stopped := accepted.Load()
	waitBatches(3, "logins during the outage")
	for _, r := range rs {
		code, err := r.api("POST", "/v1/users", map[string]any{"username": "during-outage", "email": "during@example.test"}, nil)
		if code != 503 {
			t.Fatalf("%s: an admin write while PostgreSQL is down: %d %v, want 503", r.name, code, err)
		}
		if !strings.Contains(err.Error(), "unavailable") {
			t.Logf("%s: the 503 says: %v", r.name, err)
		}
	}
	duringOutage := accepted.Load() - stopped
	pg.Start(t)
	waitBatches(2, "logins after the outage")
	close(stop)
	<-loadDone
	if len(failures) > 0 {
		t.Fatal(strings.Join(failures, "\n"))
	}
	total := accepted.Load()
	// Admin writes work again (the pool reconnects).
	testutil.Eventually(t, 20*time.Second, func() bool {
		code, _ := rs[1].api("POST", "/v1/users", map[string]any{"username": "after-outage", "email": "after@example.test"}, nil)
		return code == 201 || code == 200
	}, "admin writes succeed once PostgreSQL is back")

	// Every login is in the audit log, seen from either replica.
	loginEventsOn := func(p *proc) int64 {
		var n int64
		for i := 0; i < users; i++ {
			var page struct {
				Events []event `json:"events"`
			}
			mustAPI(t, p, "GET", fmt.Sprintf("/v1/events?limit=1000&type=radius_auth&user=d%d", i), nil, &page)
			for _, e := range page.Events {
				if e.Outcome == "success" {
					n++
				}
			}
		}
		return n
	}
	for _, r := range rs {
		var got int64
		testutil.Eventually(t, 30*time.Second, func() bool { got = loginEventsOn(r.proc); return got >= total }, fmt.Sprintf("%d login events listed on %s", total, r.name))
		if got != total {
			t.Fatalf("%s lists %d login events for %d logins", r.name, got, total)
		}
	}
	t.Logf("%d logins accepted, %d while PostgreSQL was down; all %d events listed on both replicas", total, duringOutage, total)
}

// TestStoreMigrate: users and groups written through a daemon on the
// embedded journal are copied into PostgreSQL by `gatewayd store migrate
// -config FILE` (same data_dir, [store] backend = "postgres"), `gatewayd
// store verify -config FILE` passes on the database, and daemons on
// PostgreSQL serve them: the migrated one, and a replica with an empty
// data_dir of its own, over the admin API, RADIUS and LDAP.
func TestStoreMigrate(t *testing.T) {
	testutil.RequireBinary(t, "ldapsearch")
	pg := testutil.StartPostgres(t)
	t.Setenv(pgDSNEnv, pg.DSN())
	dir := t.TempDir()
	text, radiusAddr := doorsConfig(t, dir)
	ldapAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	text = strings.Replace(text, "[ldap]\nlisten = \"\"\n", fmt.Sprintf("[ldap]\nlisten = %q\nbase_dn = %q\n", ldapAddr, replicaBaseDN), 1)
	bolt := startDaemon(t, dir, writeConfig(t, dir, text))
	const users = 20
	groups := []string{"staff", "admins", "contractors"}
	for _, g := range groups {
		mustAPI(t, bolt, "POST", "/v1/groups", map[string]any{"name": g}, nil)
	}
	wantMembers := map[string]int{}
	for i := 0; i < users; i++ {
		name := fmt.Sprintf("m%02d", i)
		wantMembers[groups[i%len(groups)]]++
		addUser(t, bolt, name, "Migrate-Pass-"+name)
		mustAPI(t, bolt, "PUT", fmt.Sprintf("/v1/groups/%s/members/%s", groups[i%len(groups)], name), nil, nil)
	}
	mustAPI(t, bolt, "POST", "/v1/users/m03/suspend", nil, nil)
	bolt.stop()

	// The same file, now naming the database; data_dir still holds the
	// bbolt journal that migrate copies.
	cfgPath := writeConfig(t, dir, text+pgStoreBlock("migrated", ""))
	out, err := runBinary("store", "migrate", "-config", cfgPath)
	if err != nil {
		t.Fatalf("store migrate: %v\n%s", err, out)
	}
	t.Logf("store migrate:\n%s", out)
	if out, err := runBinary("store", "verify", "-config", cfgPath); err != nil {
		t.Fatalf("store verify on PostgreSQL after the migration: %v\n%s", err, out)
	}
	// A second migrate must not copy over a database that has data.
	if out, err := runBinary("store", "migrate", "-config", cfgPath); err == nil {
		t.Fatalf("store migrate into a database that already holds a store succeeded:\n%s", out)
	}

	migrated := startDaemon(t, dir, cfgPath)
	other := startReplicas(t, pg.DSN(), 1, replicaOpts{})[0]
	for _, c := range []struct {
		name   string
		p      *proc
		radius string
		ldap   string
	}{{"migrated daemon", migrated, radiusAddr, "ldap://" + ldapAddr}, {"fresh replica", other.proc, other.radius, other.ldap}} {
		var page struct {
			Users []apiUser `json:"users"`
		}
		mustAPI(t, c.p, "GET", "/v1/users?limit=1000", nil, &page)
		if len(page.Users) != users {
			t.Fatalf("%s: %d users listed, %d migrated", c.name, len(page.Users), users)
		}
		for _, g := range groups {
			if got := len(members(t, c.p, g)); got != wantMembers[g] {
				t.Fatalf("%s: group %s has %d members", c.name, g, got)
			}
		}
		for _, name := range []string{"m00", "m07", "m19"} {
			if _, ok := radclient(t, c.radius, name, "Migrate-Pass-"+name); !ok {
				t.Fatalf("%s: RADIUS login of migrated user %s refused", c.name, name)
			}
			if !ldapBind(t, c.ldap, "uid="+name+",ou=users,"+replicaBaseDN, "Migrate-Pass-"+name) {
				t.Fatalf("%s: LDAP bind of migrated user %s refused", c.name, name)
			}
		}
		if _, ok := radclient(t, c.radius, "m03", "Migrate-Pass-m03"); ok {
			t.Fatalf("%s: the suspended user m03 logs in after the migration", c.name)
		}
	}
}
