package main

// The AD write-back (SPEC 6.5) and pause/resume (SPEC 6.6) through the real
// daemon against the Samba AD DC of scripts/samba-ad.sh (startSamba in
// ad_test.go; one DC per test, names carry a random suffix).

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/adimport"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// adUserBind binds to the DC as sam@realm over LDAPS: nil or the error.
func (s *sambaDC) adUserBind(sam, pw string) error {
	raw, err := dialNetns(s.netns, "127.0.0.1:636", 5*time.Second)
	if err != nil {
		return err
	}
	l := ldap.NewConn(tls.Client(raw, &tls.Config{RootCAs: s.caPool, ServerName: "127.0.0.1"}), true)
	l.Start()
	defer l.Close()
	l.SetTimeout(5 * time.Second)
	return l.Bind(sam+"@"+s.realm, pw)
}

// adEntries finds objects by filter under the base DN.
func (s *sambaDC) adEntries(t *testing.T, l *ldap.Conn, filter string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := l.Search(ldap.NewSearchRequest(s.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s: %v", filter, err)
	}
	return res.Entries
}

// usn is an object's uSNChanged: it moves with every write to it.
func (s *sambaDC) usn(t *testing.T, l *ldap.Conn, sam string) int64 {
	t.Helper()
	es := s.adEntries(t, l, fmt.Sprintf("(sAMAccountName=%s)", ldap.EscapeFilter(sam)), "uSNChanged")
	if len(es) != 1 {
		t.Fatalf("%d objects named %s in AD", len(es), sam)
	}
	n, _ := strconv.ParseInt(es[0].GetAttributeValue("uSNChanged"), 10, 64)
	return n
}

// adWrites sums gatewayd_sync_ad_writes_total.
func adWrites(t *testing.T, p *proc) int {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^gatewayd_sync_ad_writes_total\{[^}]*\} (\d+)`).FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

type wbSync struct {
	Directories []struct {
		Directory   string `json:"directory"`
		RemoteID    string `json:"remote_id"`
		Provisioned bool   `json:"provisioned"`
		Enabled     bool   `json:"enabled"`
		PushPending bool   `json:"password_push_pending"`
		Failed      bool   `json:"failed"`
		LastError   string `json:"last_error"`
	} `json:"directories"`
}

func syncState(t *testing.T, p *proc, user string) wbSync {
	t.Helper()
	var s wbSync
	p.api("GET", "/v1/users/"+user+"/sync", nil, &s)
	return s
}

func provisioned(t *testing.T, p *proc, user string) bool {
	s := syncState(t, p, user)
	return len(s.Directories) == 1 && s.Directories[0].Provisioned
}

func cliOK(t *testing.T, p *proc, stdin string, args ...string) string {
	t.Helper()
	out, err := p.cli(stdin, args...)
	if err != nil {
		t.Fatalf("gatewayd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func hasEvent(t *testing.T, p *proc, typ, user, dir string) bool {
	t.Helper()
	var evs struct {
		Events []struct {
			Username string `json:"username"`
			Group    string `json:"group"`
		} `json:"events"`
	}
	p.api("GET", "/v1/events?limit=1000&type="+typ+"&directory="+dir, nil, &evs)
	for _, e := range evs.Events {
		if e.Username == user || e.Group == user {
			return true
		}
	}
	return false
}

func TestADWriteBack(t *testing.T) {
	testutil.RequireBinary(t, "radclient")
	s := startSamba(t)
	l := s.adAdmin(t)
	sfx := fmt.Sprintf("%04x", time.Now().UnixNano()&0xffff)
	n := func(x string) string { return x + sfx }

	// AD: integration group wi {nested wn {wa}}: wa is imported.
	wa := s.importUser(t, l, n("wa"), "Wanda", "Import", nil)
	wn := s.adObj(t, l, n("wn"), map[string][]string{"objectClass": {"group"}, "sAMAccountName": {n("wn")}, "member": {wa}})
	wi := s.adObj(t, l, n("wi"), map[string][]string{"objectClass": {"group"}, "sAMAccountName": {n("wi")}, "member": {wn}})

	t.Setenv("GW_TEST_AD_BIND_PASSWORD", sambaAdminPass)
	px := newProxy(t, func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) })
	dir := t.TempDir()
	root := "CN=Users," + s.base
	text, radiusAddr, _ := adDoorsConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr}, fmt.Sprintf(
		"bind_dn = \"CN=Administrator,CN=Users,%s\"\nbind_password = \"env:GW_TEST_AD_BIND_PASSWORD\"\n"+
			"[ad.import]\nenabled = true\ngroup = %q\ninterval = \"1h\"\n"+
			"\n[[directory]]\ntype = \"ad\"\nname = \"ad-corp\"\ndomain = \"corp\"\nroot = %q\n", s.base, n("wi"), root)))
	cfgPath := writeConfig(t, dir, text)
	top := t // restarts belong to the whole test, not to a subtest
	p := startDaemon(t, dir, cfgPath)
	testutil.Eventually(t, 20*time.Second, func() bool {
		var st adimport.Status
		p.api("GET", "/v1/ad/corp/status", nil, &st)
		return st.LastRun != nil && !st.Running
	}, "the first import cycle")
	if u, code := getUser(t, p, n("wa")); code != 200 || u.PasswordAuthority != "ad" {
		t.Fatalf("import: %d %+v", code, u)
	}

	// A local user in a local group bound to the write-back.
	user, group := n("wl"), n("wg")
	l.Del(ldap.NewDelRequest(fmt.Sprintf("CN=%s,%s", user, root), nil))
	t.Cleanup(func() {
		l.Del(ldap.NewDelRequest(fmt.Sprintf("CN=%s,%s", user, root), nil))
		l.Del(ldap.NewDelRequest(fmt.Sprintf("CN=%s,%s", group, root), nil))
	})
	if _, err := p.api("POST", "/v1/users", map[string]any{"username": user, "email": user + "@example.test", "first_name": "Wes", "last_name": "Local"}, nil); err != nil {
		t.Fatal(err)
	}
	cliOK(t, p, "", "group", "create", "-name", group)
	cliOK(t, p, "", "group", "add-member", group, user)
	cliOK(t, p, "", "bind", "ad-corp", "-group", group)
	testutil.Eventually(t, 10*time.Second, func() bool { return provisioned(t, p, user) }, "the account created in AD")

	t.Run("PasswordSuspendUnsuspend", func(t *testing.T) {
		pw := "Wb-Passw0rd-1!"
		start := time.Now()
		cliOK(t, p, pw+"\n", "user", "passwd", user)
		testutil.Eventually(t, 5*time.Second, func() bool { return s.adUserBind(user, pw) == nil }, "a bind to AD with the password set through the CLI")
		t.Logf("password reached AD in %v", time.Since(start).Round(time.Millisecond))

		cliOK(t, p, "", "user", "suspend", user)
		var err error
		testutil.Eventually(t, 5*time.Second, func() bool { err = s.adUserBind(user, pw); return err != nil }, "the bind refused after suspend")
		if !strings.Contains(err.Error(), "data 533") {
			t.Fatalf("suspended: want sub-code 533 (disabled), got %v", err)
		}
		cliOK(t, p, "", "user", "unsuspend", user)
		testutil.Eventually(t, 5*time.Second, func() bool { return s.adUserBind(user, pw) == nil }, "the bind working again after unsuspend")

		for _, typ := range []string{"user_create_provision", "user_password_update_provision", "user_deprovision"} {
			testutil.Eventually(t, 5*time.Second, func() bool { return hasEvent(t, p, typ, user, "ad-corp") }, "a "+typ+" event with directory ad-corp")
		}
	})

	t.Run("GroupMembership", func(t *testing.T) {
		gdn := func() []string {
			es := s.adEntries(t, l, fmt.Sprintf("(&(objectClass=group)(sAMAccountName=%s))", group), "member")
			if len(es) != 1 {
				return nil
			}
			return es[0].GetAttributeValues("member")
		}
		testutil.Eventually(t, 10*time.Second, func() bool { return len(gdn()) == 1 }, "the AD group with its member")
		cliOK(t, p, "", "group", "remove-member", group, user)
		testutil.Eventually(t, 5*time.Second, func() bool { return len(gdn()) == 0 }, "the member removed in AD")
		cliOK(t, p, "", "group", "add-member", group, user)
		testutil.Eventually(t, 5*time.Second, func() bool { return len(gdn()) == 1 }, "the member back in AD")
		testutil.Eventually(t, 5*time.Second, func() bool { return hasEvent(t, p, "group_update_provision", group, "ad-corp") }, "a group_update_provision event")
	})

	t.Run("NoLoopWithImport", func(t *testing.T) {
		// The imported user's mirrored group bound to the write-back: its
		// account and group are taken over, nothing is written back.
		cliOK(t, p, "", "bind", "ad-corp", "-group", n("wn"))
		testutil.Eventually(t, 10*time.Second, func() bool { return provisioned(t, p, n("wa")) }, "the imported account taken over")
		// The written-back account in the import's scope: seen as the
		// gateway's own, not imported.
		modAD(t, l, wi, func(m *ldap.ModifyRequest) { m.Add("member", []string{fmt.Sprintf("CN=%s,%s", user, root)}) })
		time.Sleep(time.Second)
		usns := func() []int64 {
			return []int64{s.usn(t, l, n("wa")), s.usn(t, l, n("wn")), s.usn(t, l, user), s.usn(t, l, group)}
		}
		writes := adWrites(t, p)
		// A login of the imported user (AD password): never pushed back.
		// (The bind itself moves the account's uSNChanged in AD, through
		// lastLogonTimestamp: the AD objects are compared after it.)
		testutil.Eventually(t, 20*time.Second, func() bool {
			_, ok := radclient(t, radiusAddr, n("wa"), "Imp-"+n("wa")+"-Pw1!")
			return ok
		}, "a login of the imported user")
		time.Sleep(time.Second)
		before := usns()
		for i := 0; i < 3; i++ {
			res := runImport(t, p, false, false)
			if res.Counts.Created+res.Counts.TakenOver+res.Counts.Updated+res.Counts.Groups > 0 {
				t.Fatalf("import cycle %d changed something: %s", i, res.Counts)
			}
			if !hasChange(res, "skip", user) {
				t.Fatalf("the written-back account is not skipped: %+v", res.Changes)
			}
			time.Sleep(700 * time.Millisecond)
		}
		if after := usns(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("AD objects were written: uSNChanged %v -> %v", before, after)
		}
		if w := adWrites(t, p); w != writes {
			t.Fatalf("write-back writes moved from %d to %d", writes, w)
		}
		if u, _ := getUser(t, p, user); u.PasswordAuthority != "local" || u.Attributes[adimport.AttrObjectGUID] != "" {
			t.Fatalf("the written-back user was taken over by the import: %+v", u)
		}
		if st := syncState(t, p, n("wa")); st.Directories[0].PushPending || hasEvent(t, p, "user_password_update_provision", n("wa"), "ad-corp") {
			t.Fatalf("an AD-owned password is pending or pushed: %+v", st)
		}
		t.Logf("writes stayed at %d, uSNChanged stayed at %v over 3 import cycles and a login", writes, before)
	})

	t.Run("PauseResume", func(t *testing.T) {
		pw := "Wb-Passw0rd-2!"
		cliOK(t, p, pw+"\n", "user", "passwd", user)
		testutil.Eventually(t, 5*time.Second, func() bool { return s.adUserBind(user, pw) == nil }, "the new password in AD")

		out := cliOK(t, p, "", "directory", "pause", "ad-corp")
		t.Log(strings.TrimSpace(out))
		cliOK(t, p, "", "user", "suspend", user)
		time.Sleep(2 * time.Second)
		if err := s.adUserBind(user, pw); err != nil {
			t.Fatalf("a change reached AD while paused: %v", err)
		}
		cliOK(t, p, "", "directory", "resume", "ad-corp")
		testutil.Eventually(t, 5*time.Second, func() bool { return s.adUserBind(user, pw) != nil }, "the suspend applied after resume")

		// Across a restart: paused, a change, restart, still paused, resume.
		cliOK(t, p, "", "directory", "pause", "ad-corp")
		cliOK(t, p, "", "user", "unsuspend", user)
		p.stop()
		p = startDaemon(top, dir, cfgPath)
		var dirs struct {
			Directories []struct {
				Name   string `json:"name"`
				Paused bool   `json:"paused"`
			} `json:"directories"`
		}
		p.api("GET", "/v1/directories", nil, &dirs)
		if len(dirs.Directories) != 1 || !dirs.Directories[0].Paused {
			t.Fatalf("the pause did not survive the restart: %+v", dirs)
		}
		time.Sleep(2 * time.Second)
		if err := s.adUserBind(user, pw); err == nil {
			t.Fatal("a change reached AD while paused (after the restart)")
		}
		cliOK(t, p, "", "directory", "resume", "ad-corp")
		testutil.Eventually(t, 5*time.Second, func() bool { return s.adUserBind(user, pw) == nil }, "the unsuspend applied after resume")

		// ad pause: the import and the write-back together.
		out = cliOK(t, p, "", "ad", "pause", "corp")
		t.Log(strings.TrimSpace(out))
		if code, _ := p.api("POST", "/v1/ad/corp/import", map[string]bool{}, nil); code != http.StatusConflict {
			t.Fatalf("an import while paused: %d, want 409", code)
		}
		var st adimport.Status
		p.api("GET", "/v1/ad/corp/status", nil, &st)
		if !st.Paused {
			t.Fatalf("status: %+v", st)
		}
		cliOK(t, p, "", "ad", "resume", "corp")
		runImport(t, p, false, false)
	})

	t.Run("SIGKILLMidCreate", func(t *testing.T) {
		kg := n("kg")
		cliOK(t, p, "", "group", "create", "-name", kg)
		var names []string
		for i := 0; i < 20; i++ {
			u := fmt.Sprintf("%sk%d", sfx, i)
			names = append(names, u)
			t.Cleanup(func() { l.Del(ldap.NewDelRequest(fmt.Sprintf("CN=%s,%s", u, root), nil)) })
			if _, err := p.api("POST", "/v1/users", map[string]any{"username": u, "email": u + "@example.test", "first_name": "K", "last_name": "Ill"}, nil); err != nil {
				t.Fatal(err)
			}
			cliOK(t, p, "", "group", "add-member", kg, u)
		}
		t.Cleanup(func() { l.Del(ldap.NewDelRequest(fmt.Sprintf("CN=%s,%s", kg, root), nil)) })
		cliOK(t, p, "", "bind", "ad-corp", "-group", kg)
		time.Sleep(40 * time.Millisecond) // some created, some not
		p.kill()
		made := 0
		for _, u := range names {
			made += len(s.adEntries(t, l, fmt.Sprintf("(sAMAccountName=%s)", u)))
		}
		t.Logf("%d of %d accounts existed in AD at the SIGKILL", made, len(names))
		p = startDaemon(top, dir, cfgPath)
		for _, u := range names {
			testutil.Eventually(t, 15*time.Second, func() bool { return provisioned(t, p, u) }, u+" provisioned after the restart")
			if es := s.adEntries(t, l, fmt.Sprintf("(|(sAMAccountName=%s)(cn=%s))", u, u)); len(es) != 1 {
				t.Fatalf("%d AD objects for %s", len(es), u)
			}
			if st := syncState(t, p, u); st.Directories[0].Failed {
				t.Fatalf("%s failed: %s", u, st.Directories[0].LastError)
			}
		}
	})

	t.Run("PlainLDAPRefused", func(t *testing.T) {
		p.stop()
		plain := newProxy(t, func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:389", 2*time.Second) })
		dir2 := t.TempDir()
		text, _, _ := adDoorsConfig(t, dir2, fmt.Sprintf(`
[[ad]]
name = "corp"
domain = %q
urls = ["ldap://%s"]
allow_insecure = true
bind_dn = "CN=Administrator,CN=Users,%s"
bind_password = "env:GW_TEST_AD_BIND_PASSWORD"

[[directory]]
type = "ad"
name = "ad-corp"
domain = "corp"
root = %q
`, s.realm, plain.addr, s.base, root))
		p2 := startDaemon(t, dir2, writeConfig(t, dir2, text))
		pu := n("wp")
		if _, err := p2.api("POST", "/v1/users", map[string]any{"username": pu, "email": pu + "@example.test", "first_name": "P", "last_name": "Lain"}, nil); err != nil {
			t.Fatal(err)
		}
		cliOK(t, p2, "", "bind", "ad-corp", "-user", pu)
		testutil.Eventually(t, 10*time.Second, func() bool {
			st := syncState(t, p2, pu)
			return len(st.Directories) == 1 && st.Directories[0].Failed
		}, "the create refused over plain LDAP")
		st := syncState(t, p2, pu)
		if !strings.Contains(st.Directories[0].LastError, "LDAPS or StartTLS") {
			t.Fatalf("last error: %s", st.Directories[0].LastError)
		}
		testutil.Eventually(t, 5*time.Second, func() bool { return hasEvent(t, p2, "user_create_provision_failed", pu, "ad-corp") },
			"a user_create_provision_failed event")
		if es := s.adEntries(t, l, fmt.Sprintf("(sAMAccountName=%s)", pu)); len(es) != 0 {
			t.Fatal("an account was created over plain LDAP")
		}
		t.Logf("plain LDAP: %s", st.Directories[0].LastError)
	})
}

// TestADWriteBackConfigErrors: the write-back's domain must name an
// [[ad]] block with a service account.
func TestADWriteBackConfigErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GW_TEST_AD_BIND_PASSWORD", "x")
	ad := "\n[[ad]]\nname = \"corp\"\ndomain = \"EXAMPLE.TEST\"\nurls = [\"ldaps://dc.example.test\"]\n"
	wb := "\n[[directory]]\ntype = \"ad\"\nname = \"ad-corp\"\ndomain = %q\n"
	for _, c := range []struct{ extra, want string }{
		{fmt.Sprintf(wb, "nope") + ad, `no [[ad]] block is named "nope"`},
		{ad + fmt.Sprintf(wb, "corp"), "needs a service account"},
		{fmt.Sprintf(wb, ""), "domain is required"},
	} {
		_, err := loadConfig(writeConfig(t, dir, testConfig(t, dir, c.extra)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, err)
		}
	}
	ok := ad + "bind_dn = \"CN=gw,DC=example,DC=test\"\nbind_password = \"env:GW_TEST_AD_BIND_PASSWORD\"\n" + fmt.Sprintf(wb, "corp")
	if _, err := loadConfig(writeConfig(t, dir, testConfig(t, dir, ok))); err != nil {
		t.Fatal(err)
	}
}
