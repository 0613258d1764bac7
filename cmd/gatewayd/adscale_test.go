package main

// The AD import at a size that matters (SPEC 6.2, 6.4): a group larger
// than AD's MaxValRange, and a daemon killed in the middle of an import,
// against a Samba DC seeded by scripts/samba-ad-seed.sh.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/adimport"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// seeded is what scripts/samba-ad-seed.sh made.
type seeded struct {
	ou, group, prefix string
	users, groups     int
}

// seed runs scripts/samba-ad-seed.sh on the DC: users PREFIX00001...,
// groups PREFIX-g000... (user i in group (i-1) % groups) and the
// integration group PREFIX-all nesting them, all in OU=PREFIX.
func (s *sambaDC) seed(t *testing.T, users, groups int, prefix string) seeded {
	return s.seedPasswords(t, users, groups, prefix, 0)
}

// seedPasswords is seed, with the first `passwords` users given the
// password Seed-Pw-<i>!.
func (s *sambaDC) seedPasswords(t *testing.T, users, groups int, prefix string, passwords int) seeded {
	t.Helper()
	script, err := filepath.Abs("../../scripts/samba-ad-seed.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, s.dir, fmt.Sprint(users), fmt.Sprint(groups), prefix)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PASSWORDS=%d", passwords))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("samba-ad-seed.sh: %v\n%s", err, stderr.String())
	}
	t.Logf("%s", strings.TrimSpace(stderr.String()))
	kv := map[string]string{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return seeded{ou: kv["SEED_OU"], group: kv["SEED_GROUP"], prefix: prefix, users: users, groups: groups}
}

func (sd seeded) user(i int) string      { return fmt.Sprintf("%s%05d", sd.prefix, i) }
func (sd seeded) groupName(j int) string { return fmt.Sprintf("%s-g%03d", sd.prefix, j) }

// importConfig writes a config with an [ad.import] of sd's integration
// group under sd's OU, reaching the DC through px (a proxy into the DC's
// namespace; nil: a new one). The interval is long: the first cycle runs
// a second after the start, the others are asked for.
func importConfig(t *testing.T, s *sambaDC, sd seeded, dir string, px *tcpProxy, extra string) string {
	t.Helper()
	t.Setenv("GW_TEST_AD_BIND_PASSWORD", sambaAdminPass)
	if px == nil {
		px = newProxy(t, func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) })
	}
	text := testConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr}, fmt.Sprintf(
		"bind_dn = \"CN=Administrator,CN=Users,%s\"\nbind_password = \"env:GW_TEST_AD_BIND_PASSWORD\"\n"+
			"[ad.import]\nenabled = true\ngroup = %q\nroot = %q\ninterval = \"1h\"\n%s", s.base, sd.group, sd.ou, extra)))
	return writeConfig(t, dir, text)
}

// waitImport waits for a finished cycle and returns the status.
func waitImport(t *testing.T, p *proc, within time.Duration, what string) adimport.Status {
	t.Helper()
	var st adimport.Status
	testutil.Eventually(t, within, func() bool {
		st = adimport.Status{}
		p.api("GET", "/v1/ad/corp/status", nil, &st)
		return st.LastRun != nil && !st.Running
	}, what)
	return st
}

// TestADImportLargeGroup: a group of 1,600 direct members, more than
// MaxValRange (1,500), is mirrored with every member, and a second full
// cycle changes nothing (a ranged group read as empty would revoke them).
func TestADImportLargeGroup(t *testing.T) {
	s := startSamba(t)
	sd := s.seed(t, 1600, 1, "big")
	big := sd.groupName(0)

	// The peer really slices: a bounded window of the group is answered
	// with 1,500 values and a range that does not end in "*", so the
	// import's read below needs the second window.
	l := s.adAdmin(t)
	res, err := l.Search(ldap.NewSearchRequest("CN="+big+","+sd.ou, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=group)", []string{"member;range=0-1499"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("reading %s: %v", big, err)
	}
	if a := res.Entries[0].Attributes; len(a) != 1 || a[0].Name != "member;range=0-1499" || len(a[0].Values) != 1500 {
		t.Fatalf("Samba did not slice the 1,600-member group: %d attributes %v", len(a), a)
	}

	dir := t.TempDir()
	p := startDaemon(t, dir, importConfig(t, s, sd, dir, nil, ""))
	st := waitImport(t, p, 90*time.Second, "the first full import of 1,600 users")
	c := st.LastRun.Counts
	t.Logf("first cycle: %s in %v", c, st.LastRun.Finished.Sub(st.LastRun.Started).Round(time.Millisecond))
	if st.LastRun.Outcome != "success" || c.InScope != 1600 || c.Created != 1600 || c.Failed != 0 {
		t.Fatalf("first cycle: %+v", st.LastRun)
	}
	want := make([]string, 0, sd.users)
	for i := 1; i <= sd.users; i++ {
		want = append(want, sd.user(i))
	}
	for _, g := range []string{big, sd.prefix + "-all"} {
		if got := members(t, p, g); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("mirrored %s has %d members, want all %d", g, len(got), len(want))
		}
	}

	again := runImport(t, p, false, false)
	if c := again.Counts; c.InScope != 1600 || c.Created+c.Updated+c.Removed+c.Disconnect+c.Suspended+c.Groups+c.Failed != 0 {
		t.Fatalf("a second full cycle changed something: %s", c)
	}
	if got := members(t, p, big); len(got) != 1600 {
		t.Fatalf("after the second cycle %s has %d members", big, len(got))
	}
}

// allUsers lists every gateway user through the API.
func allUsers(t *testing.T, p *proc) []adImpUser {
	t.Helper()
	var out []adImpUser
	after := ""
	for {
		var page struct {
			Users []adImpUser `json:"users"`
			Next  string      `json:"next"`
		}
		if _, err := p.api("GET", "/v1/users?limit=1000&after="+after, nil, &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Users...)
		if page.Next == "" {
			return out
		}
		after = page.Next
	}
}

// TestADImportCrash: gatewayd is SIGKILLed while its first import of 600
// users is being applied, once while it creates the users and once while
// it mirrors the groups; after the restart the import finishes, every AD
// account has exactly one gateway user, and every mirrored group exists
// once with its members.
func TestADImportCrash(t *testing.T) {
	s := startSamba(t)
	sd := s.seed(t, 600, 6, "crash")
	px := newProxy(t, func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) })
	for _, phase := range []string{"users", "groups"} {
		t.Run("KilledWhileCreating_"+phase, func(t *testing.T) { testADImportCrash(t, s, sd, px, phase) })
	}
}

func countOf(t *testing.T, p *proc, path string) int {
	t.Helper()
	var page map[string]json.RawMessage
	p.api("GET", path, nil, &page)
	var items []json.RawMessage
	for _, v := range page {
		if json.Unmarshal(v, &items) == nil {
			return len(items)
		}
	}
	return 0
}

func testADImportCrash(t *testing.T, s *sambaDC, sd seeded, px *tcpProxy, phase string) {
	// Be in the middle of the import: kill as soon as the first user (or
	// mirrored group) exists, while the cycle is still running. The
	// restart's first cycle then finds the DC unreachable, so the state
	// the kill left can be read before anything repairs it: no recorded
	// run, and some users (or some groups). If the kill came too late (the
	// cycle had finished), a fresh data directory imports the same
	// accounts again.
	list := map[string]string{"users": "/v1/users?limit=1", "groups": "/v1/groups?limit=1"}[phase]
	var (
		dir     string
		cfgPath string
		partial int
		pgroups int
	)
	for attempt := 1; ; attempt++ {
		if attempt > 5 {
			t.Fatalf("five imports of %d users finished before the test could kill one under way", sd.users)
		}
		px.up()
		dir = t.TempDir()
		cfgPath = importConfig(t, s, sd, dir, px, "")
		p := startDaemon(t, dir, cfgPath)
		testutil.Eventually(t, 60*time.Second, func() bool { return countOf(t, p, list) > 0 }, "the first imported "+phase)
		p.kill()
		killed := time.Now().UTC()

		px.down()
		p = startDaemon(t, dir, cfgPath)
		st := adimport.Status{}
		p.api("GET", "/v1/ad/corp/status", nil, &st)
		partial, pgroups = len(allUsers(t, p)), countOf(t, p, "/v1/groups?limit=1000")
		// A run recorded after the kill is this daemon's own cycle, which
		// found the DC unreachable and changed nothing.
		recorded := st.LastRun != nil && !st.LastRun.Started.After(killed)
		crashed := !recorded && (partial < sd.users || phase == "groups")
		p.stop()
		if crashed {
			t.Logf("attempt %d: killed mid-import with %d of %d users and %d of %d groups, no run recorded",
				attempt, partial, sd.users, pgroups, sd.groups+1)
			break
		}
		t.Logf("attempt %d: the kill came after the cycle (%d users, run recorded %v); again", attempt, partial, recorded)
	}

	px.up()
	restarted := time.Now().UTC()
	p := startDaemon(t, dir, cfgPath)
	// The interval loop's first cycle finishes the import by itself: it
	// creates the users the killed one had not, and matches the others.
	var st adimport.Status
	testutil.Eventually(t, 60*time.Second, func() bool {
		st = adimport.Status{}
		p.api("GET", "/v1/ad/corp/status", nil, &st)
		return st.LastRun != nil && st.LastRun.Started.After(restarted) && !st.Running
	}, "the first cycle after the restart")
	if c := st.LastRun.Counts; st.LastRun.Outcome != "success" || c.Created != sd.users-partial || c.Failed != 0 || c.InScope != sd.users {
		t.Fatalf("the cycle after the restart (%d users were there): %+v", partial, st.LastRun)
	}
	if st.HighUSN == 0 || st.DC == "" {
		t.Fatalf("status after the restart has no high-water mark: %+v", st)
	}
	t.Logf("after the restart: %s", st.LastRun.Counts)
	// And it is complete: another full cycle has nothing to do.
	if c := runImport(t, p, false, false).Counts; c.Created+c.Updated+c.Removed+c.Groups+c.Failed != 0 {
		t.Fatalf("a cycle after the finished import still changed things: %s", c)
	}

	users := allUsers(t, p)
	if len(users) != sd.users {
		t.Fatalf("%d gateway users for %d AD accounts", len(users), sd.users)
	}
	byName, byGUID := map[string]bool{}, map[string]string{}
	for _, u := range users {
		g := u.Attributes[adimport.AttrObjectGUID]
		if g == "" || u.PasswordAuthority != "ad" || u.State != "active" {
			t.Fatalf("%s is not a complete imported user: %+v", u.Username, u)
		}
		if other, dup := byGUID[g]; dup {
			t.Fatalf("objectGUID %s imported twice: %s and %s", g, other, u.Username)
		}
		byGUID[g], byName[u.Username] = u.Username, true
	}
	for i := 1; i <= sd.users; i++ {
		if !byName[sd.user(i)] {
			t.Fatalf("%s was not imported", sd.user(i))
		}
	}

	var gl struct {
		Groups []struct {
			Name string `json:"name"`
		} `json:"groups"`
	}
	if _, err := p.api("GET", "/v1/groups?limit=1000", nil, &gl); err != nil {
		t.Fatal(err)
	}
	if len(gl.Groups) != sd.groups+1 {
		t.Fatalf("%d gateway groups, want the %d mirrored ones once each: %+v", len(gl.Groups), sd.groups+1, gl.Groups)
	}
	for j := 0; j < sd.groups; j++ {
		var want []string
		for i := j + 1; i <= sd.users; i += sd.groups {
			want = append(want, sd.user(i))
		}
		if got := members(t, p, sd.groupName(j)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: %d members, want %d", sd.groupName(j), len(got), len(want))
		}
	}
	if got := members(t, p, sd.prefix+"-all"); len(got) != sd.users {
		t.Fatalf("%s-all: %d members", sd.prefix, len(got))
	}
}

// nextCycle waits for an interval cycle that started after t.
func nextCycle(t *testing.T, p *proc, after time.Time, what string) *adimport.Result {
	t.Helper()
	var st adimport.Status
	testutil.Eventually(t, 30*time.Second, func() bool {
		st = adimport.Status{}
		p.api("GET", "/v1/ad/corp/status", nil, &st)
		return st.LastRun != nil && st.LastRun.Started.After(after) && !st.Running
	}, what)
	t.Logf("%s: %s cycle via %s, high-water mark %d: %s", what, st.LastRun.Mode, st.LastRun.URL, st.LastRun.HighUSN, st.LastRun.Counts)
	if st.LastRun.Outcome != "success" {
		t.Fatalf("%s: %+v", what, st.LastRun)
	}
	return st.LastRun
}

// TestADImportIncremental: the interval cycles between full ones read
// only the accounts whose uSNChanged is above the DC's high-water mark; a
// change in AD arrives with the next of them, a failover to another URL
// of the same DC keeps the mark, and a deletion is found by the next full
// reconcile.
func TestADImportIncremental(t *testing.T) {
	s := startSamba(t)
	sd := s.seed(t, 5, 1, "inc")
	l := s.adAdmin(t)
	dial := func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) }
	pxA, pxB := newProxy(t, dial), newProxy(t, dial)
	dir := t.TempDir()
	cfgPath := importConfig(t, s, sd, dir, pxA,
		"interval = \"5s\"\nfull_every = 3\nadditional_attributes = true\nuser_dissociate_action = \"remove\"\nmax_deletion_share = 0.5\n")
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Two URLs of the same DC: the second is used when the first is down.
	cfg := strings.Replace(string(text), "interval = \"1h\"\n", "", 1)
	cfg = strings.Replace(cfg, fmt.Sprintf("urls = [%q]", "ldaps://"+pxA.addr), fmt.Sprintf("urls = [%q, %q]", "ldaps://"+pxA.addr, "ldaps://"+pxB.addr), 1)
	writeConfig(t, dir, cfg)
	start := time.Now().UTC()
	p := startDaemon(t, dir, cfgPath)

	first := nextCycle(t, p, start, "the first cycle")
	if first.Mode != "full" || first.Counts.Created != 5 {
		t.Fatalf("the first cycle: %+v", first)
	}

	u1 := "CN=" + sd.user(1) + "," + sd.ou
	modAD(t, l, u1, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Changed in AD"}) })
	// A new account under root, in no group of the chain: changed above
	// the mark too, and out of scope.
	outsider := "incout"
	outDN := "CN=" + outsider + "," + sd.ou
	if err := l.Add(&ldap.AddRequest{DN: outDN, Attributes: []ldap.Attribute{
		{Type: "objectClass", Vals: []string{"user"}}, {Type: "sAMAccountName", Vals: []string{outsider}},
		{Type: "givenName", Vals: []string{"Out"}}, {Type: "sn", Vals: []string{"Sider"}},
		{Type: "mail", Vals: []string{outsider + "@example.test"}}, {Type: "userAccountControl", Vals: []string{"544"}}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Del(ldap.NewDelRequest(outDN, nil)) })
	// Taken after both changes: a cycle that began between them would
	// read only the first and still count as "after the change".
	changed := time.Now().UTC()
	inc := nextCycle(t, p, changed, "the cycle after a change in AD")
	if inc.Mode != "incremental" || inc.Counts.InScope != 1 || inc.Counts.Updated != 1 || inc.HighUSN <= first.HighUSN || inc.DC != first.DC {
		t.Fatalf("the change must arrive with an incremental cycle that read only the changed account: %+v", inc)
	}
	if u, _ := getUser(t, p, sd.user(1)); u.Attributes["title"] != "Changed in AD" {
		t.Fatalf("title after the incremental cycle: %+v", u.Attributes)
	}
	if _, code := getUser(t, p, outsider); code != 404 {
		t.Fatalf("an account out of the integration group's scope was imported: %d", code)
	}

	// The first URL fails: the same DC through the second keeps the mark.
	pxA.down()
	if err := l.Del(ldap.NewDelRequest("CN="+sd.user(2)+","+sd.ou, nil)); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now().UTC()
	over := nextCycle(t, p, deleted, "the cycle after the failover and a deletion")
	if over.Mode != "incremental" || over.URL != "ldaps://"+pxB.addr || over.DC != first.DC {
		t.Fatalf("a failover to another URL of the same DC must stay incremental: %+v", over)
	}
	if _, code := getUser(t, p, sd.user(2)); code != 200 {
		t.Fatalf("an incremental cycle removed %s (it cannot see deletions; the full one does): %d", sd.user(2), code)
	}

	// The deletion is found by the next full reconcile (full_every = 3:
	// the fourth cycle).
	var full *adimport.Result
	for after := over.Started; full == nil; {
		r := nextCycle(t, p, after, "the next cycles")
		if r.Mode == "full" {
			full = r
		} else if _, code := getUser(t, p, sd.user(2)); code != 200 {
			t.Fatalf("an incremental cycle removed %s", sd.user(2))
		}
		after = r.Started
	}
	if full.Counts.Removed != 1 {
		t.Fatalf("the full reconcile: %+v", full)
	}
	if _, code := getUser(t, p, sd.user(2)); code != 404 {
		t.Fatalf("%s deleted in AD is still here after the full reconcile: %d", sd.user(2), code)
	}
}

// TestADImportPasswordChangedInAD: with offline logins on, an imported
// user's AD password works from the stored hash while the DC is down;
// once the import sees a new pwdLastSet (the password was reset in AD),
// the old password no longer works offline.
func TestADImportPasswordChangedInAD(t *testing.T) {
	testutil.RequireBinary(t, "radclient")
	s := startSamba(t)
	sd := s.seedPasswords(t, 2, 1, "pls", 2)
	l := s.adAdmin(t)
	px := newProxy(t, func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) })
	dir := t.TempDir()
	t.Setenv("GW_TEST_AD_BIND_PASSWORD", sambaAdminPass)
	text, radiusAddr, _ := adDoorsConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr}, fmt.Sprintf(
		"offline_login = \"1h\"\nbind_dn = \"CN=Administrator,CN=Users,%s\"\nbind_password = \"env:GW_TEST_AD_BIND_PASSWORD\"\n"+
			"[ad.import]\nenabled = true\ngroup = %q\nroot = %q\ninterval = \"1h\"\n", s.base, sd.group, sd.ou)))
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	waitImport(t, p, 30*time.Second, "the first import")
	changed, same := sd.user(1), sd.user(2)
	for _, u := range []string{changed, same} {
		if _, ok := radclient(t, radiusAddr, u, pwOfSeed(sd, u)); !ok {
			t.Fatalf("%s: the imported user cannot log in with the AD password", u)
		}
	}
	px.down()
	for _, u := range []string{changed, same} {
		if _, ok := radclient(t, radiusAddr, u, pwOfSeed(sd, u)); !ok {
			t.Fatalf("%s: no offline login with the DC down (the check below would prove nothing)", u)
		}
	}
	px.up()

	modAD(t, l, "CN="+changed+","+sd.ou, func(m *ldap.ModifyRequest) { m.Replace("unicodePwd", []string{unicodePwd("Reset-In-AD-1!")}) })
	res := runImport(t, p, false, false)
	if !hasChange(res, "update", changed) || hasChange(res, "update", same) {
		t.Fatalf("the reset must update %s only: %+v", changed, res.Changes)
	}

	px.down()
	if _, ok := radclient(t, radiusAddr, changed, pwOfSeed(sd, changed)); ok {
		t.Fatal("the password reset in AD still logs in offline from the stored hash")
	}
	if ev := lastEvent(t, p, changed, "radius_auth", 3); ev.Reason != "ad_unreachable" || !strings.Contains(ev.Detail, "no offline login") {
		t.Fatalf("want ad_unreachable without an offline login: %+v", ev)
	}
	if _, ok := radclient(t, radiusAddr, same, pwOfSeed(sd, same)); !ok {
		t.Fatal("a user whose AD password did not change lost the offline login")
	}
}

func pwOfSeed(sd seeded, user string) string {
	var i int
	fmt.Sscanf(strings.TrimPrefix(user, sd.prefix), "%d", &i)
	return fmt.Sprintf("Seed-Pw-%d!", i)
}
