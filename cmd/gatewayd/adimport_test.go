package main

// The AD import (SPEC 6.2-6.4) through the real daemon against the Samba
// AD DC that scripts/samba-ad.sh starts (startSamba in ad_test.go; the
// DC of TestAD is stopped when TestAD ends, so one DC runs at a time).

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	ldap "github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/adimport"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// adObj creates an AD object in CN=Users and removes it when t ends.
func (s *sambaDC) adObj(t *testing.T, l *ldap.Conn, cn string, attrs map[string][]string) string {
	t.Helper()
	dn := fmt.Sprintf("CN=%s,CN=Users,%s", cn, s.base)
	add := ldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		add.Attribute(k, v)
	}
	if err := l.Add(add); err != nil {
		t.Fatalf("creating %s: %v", dn, err)
	}
	t.Cleanup(func() { l.Del(ldap.NewDelRequest(dn, nil)) })
	return dn
}

func (s *sambaDC) importUser(t *testing.T, l *ldap.Conn, sam, given, sn string, extra map[string][]string) string {
	a := map[string][]string{"objectClass": {"top", "person", "organizationalPerson", "user"}, "sAMAccountName": {sam},
		"userPrincipalName": {sam + "@" + strings.ToLower(s.realm)}, "mail": {sam + "@example.test"},
		"unicodePwd": {unicodePwd("Imp-" + sam + "-Pw1!")}, "userAccountControl": {"512"}}
	if given != "" {
		a["givenName"] = []string{given}
	}
	if sn != "" {
		a["sn"] = []string{sn}
	}
	for k, v := range extra {
		a[k] = v
	}
	return s.adObj(t, l, sam, a)
}

func modAD(t *testing.T, l *ldap.Conn, dn string, fn func(m *ldap.ModifyRequest)) {
	t.Helper()
	m := ldap.NewModifyRequest(dn, nil)
	fn(m)
	if err := l.Modify(m); err != nil {
		t.Fatalf("modify %s: %v", dn, err)
	}
}

type adImpUser struct {
	Username           string            `json:"username"`
	State              string            `json:"state"`
	PasswordStatus     string            `json:"password_status"`
	PasswordAuthority  string            `json:"password_authority"`
	DelegatedAuthority string            `json:"delegated_authority"`
	Attributes         map[string]string `json:"attributes"`
}

func getUser(t *testing.T, p *proc, name string) (adImpUser, int) {
	t.Helper()
	var u adImpUser
	code, _ := p.api("GET", "/v1/users/"+name, nil, &u)
	return u, code
}

func runImport(t *testing.T, p *proc, dry, confirm bool) adimport.Result {
	t.Helper()
	var res adimport.Result
	start := time.Now()
	if code, err := p.api("POST", "/v1/ad/corp/import", map[string]bool{"dry_run": dry, "confirm_deletions": confirm}, &res); err != nil {
		t.Fatalf("import: %d %v", code, err)
	}
	t.Logf("import cycle (dry=%v): %s %s in %v: %s", dry, res.Mode, res.Outcome, time.Since(start).Round(time.Millisecond), res.Counts)
	if res.Error != "" {
		t.Fatalf("import error: %s", res.Error)
	}
	return res
}

func members(t *testing.T, p *proc, group string) []string {
	t.Helper()
	var g struct {
		Members []string `json:"members"`
	}
	if _, err := p.api("GET", "/v1/groups/"+group, nil, &g); err != nil {
		t.Fatalf("group %s: %v", group, err)
	}
	sort.Strings(g.Members)
	return g.Members
}

func hasChange(res adimport.Result, action, user string) bool {
	for _, c := range res.Changes {
		if c.Action == action && (c.User == user || c.Group == user) {
			return true
		}
	}
	return false
}

func stateOf(t *testing.T, p *proc) json.RawMessage {
	t.Helper()
	var us, gs json.RawMessage
	p.api("GET", "/v1/users?limit=1000", nil, &us)
	p.api("GET", "/v1/groups?limit=1000", nil, &gs)
	return json.RawMessage(string(us) + string(gs))
}

func TestADImport(t *testing.T) {
	testutil.RequireBinary(t, "radclient")
	s := startSamba(t)
	l := s.adAdmin(t)
	sfx := fmt.Sprintf("%04x", time.Now().UnixNano()&0xffff)
	n := func(x string) string { return x + sfx }

	// AD: G {a1, d1, nameless, priv, N}, N {a2}.
	a1 := s.importUser(t, l, n("ia"), "Ada", "One", map[string][]string{"title": {"Engineer"}, "l": {"Paris"}})
	a2 := s.importUser(t, l, n("ib"), "Bea", "Two", nil)
	d1 := s.importUser(t, l, n("id"), "Dan", "Three", nil)
	nameless := s.importUser(t, l, n("in"), "Nia", "", nil)
	priv := s.importUser(t, l, n("ip"), "Pat", "Admin", nil)
	modAD(t, l, priv, func(m *ldap.ModifyRequest) { m.Replace("adminCount", []string{"1"}) })
	nested := s.adObj(t, l, n("gn"), map[string][]string{"objectClass": {"group"}, "sAMAccountName": {n("gn")}, "member": {a2}})
	group := s.adObj(t, l, n("gi"), map[string][]string{"objectClass": {"group"}, "sAMAccountName": {n("gi")},
		"member": {a1, d1, nameless, priv, nested}})

	t.Setenv("GW_TEST_AD_BIND_PASSWORD", sambaAdminPass)
	px := newProxy(t, func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) })
	dir := t.TempDir()
	block := func(dissociate, takeover string) string {
		return adBlock(s, s.ca, []string{"ldaps://" + px.addr}, fmt.Sprintf(
			"bind_dn = \"CN=Administrator,CN=Users,%s\"\nbind_password = \"env:GW_TEST_AD_BIND_PASSWORD\"\n"+
				"[ad.import]\nenabled = true\ngroup = %q\ninterval = \"1h\"\nadditional_attributes = true\n"+
				"user_dissociate_action = %q\nuser_takeover_action = %q\nmax_deletion_share = 0.5\n", s.base, n("gi"), dissociate, takeover))
	}
	text, radiusAddr, _ := adDoorsConfig(t, dir, block("remove", "retain"))
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)
	waitFirst := func(p *proc) {
		testutil.Eventually(t, 20*time.Second, func() bool {
			var st adimport.Status
			p.api("GET", "/v1/ad/corp/status", nil, &st)
			return st.LastRun != nil && !st.Running
		}, "the first interval cycle")
	}
	waitFirst(p)

	t.Run("NestedAndSkipped", func(t *testing.T) {
		res := runImport(t, p, true, false) // a dry run lists the skipped with reasons
		for _, u := range []string{n("ia"), n("ib"), n("id")} {
			got, code := getUser(t, p, u)
			if code != 200 || got.PasswordAuthority != "ad" || got.DelegatedAuthority != "ad" || got.State != "active" ||
				got.Attributes["ad_domain"] != "corp" || got.Attributes[adimport.AttrObjectGUID] == "" {
				t.Fatalf("%s: %d %+v", u, code, got)
			}
		}
		if u, _ := getUser(t, p, n("ia")); u.Attributes["title"] != "Engineer" || u.Attributes["location"] != "Paris" {
			t.Fatalf("additional attributes: %+v", u.Attributes)
		}
		for _, u := range []string{n("in"), n("ip")} {
			if _, code := getUser(t, p, u); code != http.StatusNotFound {
				t.Fatalf("%s must not be imported: %d", u, code)
			}
		}
		var why []string
		for _, c := range res.Changes {
			if c.Action == "skip" {
				why = append(why, c.User+": "+c.Detail)
			}
		}
		if j := strings.Join(why, "\n"); !strings.Contains(j, n("in")+": no first name") || !strings.Contains(j, n("ip")+": adminCount=1") {
			t.Fatalf("skip reasons:\n%s", j)
		}
		if m, want := members(t, p, n("gi")), []string{n("ia"), n("ib"), n("id")}; !reflect.DeepEqual(m, want) {
			t.Fatalf("flattened %s: %v", n("gi"), m)
		}
		if m := members(t, p, n("gn")); !reflect.DeepEqual(m, []string{n("ib")}) {
			t.Fatalf("nested %s: %v", n("gn"), m)
		}
		// Logs in with the AD password at once.
		if _, ok := radclient(t, radiusAddr, n("ia"), "Imp-"+n("ia")+"-Pw1!"); !ok {
			t.Fatal("an imported user cannot log in with the AD password")
		}
	})

	t.Run("DisableThenEnable", func(t *testing.T) {
		modAD(t, l, d1, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{"514"}) })
		if res := runImport(t, p, false, false); !hasChange(res, "suspend", n("id")) {
			t.Fatalf("%+v", res.Changes)
		}
		if u, _ := getUser(t, p, n("id")); u.State != "suspended" {
			t.Fatalf("disabled in AD: %+v", u)
		}
		modAD(t, l, d1, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{"512"}) })
		runImport(t, p, false, false)
		if u, _ := getUser(t, p, n("id")); u.State != "active" {
			t.Fatalf("enabled again in AD: %+v", u)
		}
	})

	parent := t
	t.Run("TakeoverRetain", func(t *testing.T) {
		tr := n("it")
		if _, err := p.api("POST", "/v1/users", map[string]any{"username": tr, "email": tr + "@example.test", "first_name": "T", "last_name": "R"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := p.api("PUT", "/v1/users/"+tr+"/password", map[string]string{"password": "Local-Passw0rd-77"}, nil); err != nil {
			t.Fatal(err)
		}
		dn := s.importUser(parent, l, tr, "Tia", "Retain", nil)
		modAD(t, l, group, func(m *ldap.ModifyRequest) { m.Add("member", []string{dn}) })
		if res := runImport(t, p, false, false); !hasChange(res, "takeover", tr) {
			t.Fatalf("%+v", res.Changes)
		}
		u, _ := getUser(t, p, tr)
		if u.PasswordAuthority != "local" || u.PasswordStatus != "active" || u.Attributes[adimport.AttrObjectGUID] == "" {
			t.Fatalf("retain: %+v", u)
		}
		if _, ok := radclient(t, radiusAddr, tr, "Local-Passw0rd-77"); !ok {
			t.Fatal("the retained local password no longer works")
		}
	})

	t.Run("DryRunChangesNothing", func(t *testing.T) {
		modAD(t, l, group, func(m *ldap.ModifyRequest) { m.Delete("member", []string{a1}) })
		time.Sleep(300 * time.Millisecond) // login stamps of the subtests above are group-committed
		before := stateOf(t, p)
		res := runImport(t, p, true, false)
		if !res.DryRun || !hasChange(res, "remove", n("ia")) {
			t.Fatalf("dry run must list the removal: %+v", res.Changes)
		}
		out, err := p.cli("", "ad", "import", "corp", "-dry-run")
		if err != nil || !strings.Contains(out, "remove") || !strings.Contains(out, n("ia")) || !strings.Contains(out, "dry run") {
			t.Fatalf("CLI dry run: %v\n%s", err, out)
		}
		t.Logf("CLI dry run:\n%s", out)
		if after := stateOf(t, p); string(before) != string(after) {
			t.Fatalf("a dry run changed the store:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("RemoveAction", func(t *testing.T) {
		runImport(t, p, false, false)
		if _, code := getUser(t, p, n("ia")); code != http.StatusNotFound {
			t.Fatalf("removed from the group with remove: %d", code)
		}
	})

	// Same data, now disconnect + deactivate.
	p.stop()
	text = strings.Replace(strings.Replace(text, `user_dissociate_action = "remove"`, `user_dissociate_action = "disconnect"`, 1),
		`user_takeover_action = "retain"`, `user_takeover_action = "deactivate"`, 1)
	writeConfig(t, dir, text)
	p = startDaemon(t, dir, cfgPath)
	waitFirst(p)

	t.Run("DisconnectAction", func(t *testing.T) {
		modAD(t, l, nested, func(m *ldap.ModifyRequest) { m.Delete("member", []string{a2}) })
		if res := runImport(t, p, false, false); !hasChange(res, "disconnect", n("ib")) {
			t.Fatalf("%+v", res.Changes)
		}
		u, code := getUser(t, p, n("ib"))
		if code != 200 || u.PasswordAuthority != "local" || u.DelegatedAuthority != "none" || u.PasswordStatus != "pending" || u.Attributes[adimport.AttrObjectGUID] != "" {
			t.Fatalf("disconnect: %d %+v", code, u)
		}
	})

	t.Run("TakeoverDeactivate", func(t *testing.T) {
		td := n("iv")
		if _, err := p.api("POST", "/v1/users", map[string]any{"username": td, "email": td + "@example.test", "first_name": "T", "last_name": "D"}, nil); err != nil {
			t.Fatal(err)
		}
		p.api("PUT", "/v1/users/"+td+"/password", map[string]string{"password": "Local-Passw0rd-78"}, nil)
		dn := s.importUser(parent, l, td, "Tom", "Deact", nil)
		modAD(t, l, group, func(m *ldap.ModifyRequest) { m.Add("member", []string{dn}) })
		runImport(t, p, false, false)
		u, _ := getUser(t, p, td)
		if u.PasswordAuthority != "ad" || u.DelegatedAuthority != "ad" || u.PasswordStatus != "pending" {
			t.Fatalf("deactivate: %+v", u)
		}
		if _, ok := radclient(t, radiusAddr, td, "Imp-"+td+"-Pw1!"); !ok {
			t.Fatal("after deactivate the AD password must work")
		}
	})

	t.Run("SafetyStopOnEmptyGroup", func(t *testing.T) {
		var g struct{}
		_ = g
		e, err := l.Search(ldap.NewSearchRequest(group, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"member"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		modAD(t, l, group, func(m *ldap.ModifyRequest) { m.Delete("member", e.Entries[0].GetAttributeValues("member")) })
		res := runImport(t, p, false, false)
		if res.Outcome != "stopped" || !strings.Contains(res.SafetyStop, "no user in scope") {
			t.Fatalf("emptying the group must be stopped: %+v", res)
		}
		for _, u := range []string{n("id"), n("it"), n("iv")} {
			if got, code := getUser(t, p, u); code != 200 || got.Attributes[adimport.AttrObjectGUID] == "" {
				t.Fatalf("%s changed by a stopped cycle: %d %+v", u, code, got)
			}
		}
		var evs []event
		p.api("GET", "/v1/events?type=ad_import&outcome=failure", nil, &struct {
			Events *[]event `json:"events"`
		}{&evs})
		if len(evs) == 0 || evs[len(evs)-1].Reason != "safety_stop" {
			t.Fatalf("no ad_import safety_stop event: %+v", evs)
		}
		out, err := p.cli("", "ad", "status")
		if err != nil || !strings.Contains(out, "safety stop") || !strings.Contains(out, "high-water mark") {
			t.Fatalf("status must explain the stop: %v\n%s", err, out)
		}
		t.Logf("ad status:\n%s", out)
		out, err = p.cli("", "ad", "import", "corp", "-confirm-deletions")
		if err != nil || !strings.Contains(out, "disconnect") {
			t.Fatalf("confirm: %v\n%s", err, out)
		}
		if u, _ := getUser(t, p, n("id")); u.Attributes[adimport.AttrObjectGUID] != "" || u.PasswordAuthority != "local" {
			t.Fatalf("confirmed cycle not applied: %+v", u)
		}
	})
}
