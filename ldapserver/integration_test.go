package ldapserver

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// Acceptance tests with OpenLDAP's own clients (Debian ldap-utils), run
// against the server in-process on loopback.

func requireTool(t testing.TB, name string) string { return testutil.RequireBinary(t, name) }

// ldapsearch runs ldapsearch with -x -LLL and returns the DNs it printed.
func (ts *testServer) ldapsearch(t testing.TB, url string, args ...string) ([]string, toolResult) {
	t.Helper()
	full := append([]string{"-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10", "-H", url}, args...)
	res := ts.runTool(t, "ldapsearch", full...)
	var dns []string
	for _, l := range strings.Split(res.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "dn: "); ok {
			dns = append(dns, strings.ToLower(v))
		}
	}
	sort.Strings(dns)
	return dns, res
}

func attrValues(ldif, attr string) []string {
	var out []string
	for _, l := range strings.Split(ldif, "\n") {
		if v, ok := strings.CutPrefix(l, attr+": "); ok {
			out = append(out, v)
		}
	}
	return out
}

func wantTool(t testing.TB, res toolResult, code int) {
	t.Helper()
	if res.code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", res.code, code, res.stdout, res.stderr)
	}
}

// wantToolResult: ldappasswd exits 1 on any failure and prints the result.
func wantToolResult(t testing.TB, res toolResult, result string) {
	t.Helper()
	if res.code == 0 || !strings.Contains(res.stdout+res.stderr, result) {
		t.Fatalf("want %q; exit %d\nstdout: %s\nstderr: %s", result, res.code, res.stdout, res.stderr)
	}
}

func TestLDAPSearchBinds(t *testing.T) {
	ts := startServer(t, false, nil)
	for _, tc := range []struct{ name, bindName string }{
		{"user DN", aliceDN},
		{"user DN, other case and spaces", "UID=Alice, OU=users, DC=Example, DC=Test"},
		{"username", "alice"},
		{"email", "alice@example.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A bind test that needs no WhoAmI: read the root DSE as the user.
			_, res := ts.ldapsearch(t, ts.url, "-D", tc.bindName, "-w", alicePW, "-b", "", "-s", "base", "namingContexts")
			wantTool(t, res, 0)
			if v := attrValues(res.stdout, "namingContexts"); len(v) != 1 || v[0] != testBase {
				t.Errorf("namingContexts = %v", v)
			}
			dns, res := ts.ldapsearch(t, ts.url, "-D", tc.bindName, "-w", alicePW, "-b", testBase, "(uid=alice)", "uid", "memberOf")
			wantTool(t, res, 0)
			if len(dns) != 1 || dns[0] != aliceDN {
				t.Errorf("search as %s: %v", tc.bindName, dns)
			}
			if mo := attrValues(res.stdout, "memberOf"); len(mo) != 2 {
				t.Errorf("memberOf = %v", mo)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		_, res := ts.ldapsearch(t, ts.url, "-D", aliceDN, "-w", "wrong", "-b", "", "-s", "base")
		wantTool(t, res, 49)
		if !strings.Contains(res.stderr, "Invalid credentials (49)") {
			t.Errorf("stderr: %s", res.stderr)
		}
	})
	t.Run("anonymous sees only the root DSE", func(t *testing.T) {
		_, res := ts.ldapsearch(t, ts.url, "-b", "", "-s", "base", "+")
		wantTool(t, res, 0)
		if len(attrValues(res.stdout, "supportedExtension")) == 0 {
			t.Errorf("root DSE: %s", res.stdout)
		}
		_, res = ts.ldapsearch(t, ts.url, "-b", testBase, "(uid=*)")
		wantTool(t, res, 50)
	})
}

func TestLDAPSearchFilters(t *testing.T) {
	ts := startServer(t, false, nil)
	bind := []string{"-D", svcDN, "-w", svcPW, "-b", testBase}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"(&(objectClass=inetOrgPerson)(|(uid=alice)(mail=bob@*)))", []string{aliceDN, bobDN}},
		{"(&(objectClass=posixGroup)(memberUid=alice))", []string{adminsDN, staffDN}},
		{"(&(objectClass=groupOfNames)(member=" + bobDN + "))", []string{staffDN}},
		{"(&(objectClass=person)(memberOf=" + staffDN + ")(!(uid=bob)))", []string{aliceDN}},
		{"(memberOf=CN=Admins,OU=Groups,DC=example,DC=test)", []string{aliceDN}},
		{"(&(uidNumber>=10001)(uidNumber<=10002))", []string{aliceDN, bobDN}},
		{"(&(cn=*example*)(givenName=Ali*))", []string{aliceDN}},
		{"(&(objectClass=posixGroup)(!(gidNumber=20003))(cn=*))", append([]string{adminsDN, staffDN}, fixtureUPGs()...)},
		{"(uid~=ALICE)", []string{aliceDN}},
	} {
		dns, res := ts.ldapsearch(t, ts.url, append(bind, tc.filter, "1.1")...)
		wantTool(t, res, 0)
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if strings.Join(dns, "|") != strings.Join(want, "|") {
			t.Errorf("%s: got %v, want %v", tc.filter, dns, want)
		}
	}
	// Groups carry their members as DNs and uids.
	_, res := ts.ldapsearch(t, ts.url, append(bind, "(cn=staff)", "member", "memberUid", "gidNumber")...)
	wantTool(t, res, 0)
	if m := attrValues(res.stdout, "member"); len(m) != 2 {
		t.Errorf("member = %v", m)
	}
	if m := attrValues(res.stdout, "memberUid"); strings.Join(m, ",") != "alice,bob" {
		t.Errorf("memberUid = %v", m)
	}
	if g := attrValues(res.stdout, "gidNumber"); len(g) != 1 || g[0] != "20001" {
		t.Errorf("gidNumber = %v", g)
	}
	// A malformed filter is refused by the client or the server, never crashes.
	_, res = ts.ldapsearch(t, ts.url, append(bind, "(uid=alice")...)
	if res.code == 0 {
		t.Error("unbalanced filter accepted")
	}
}

func TestLDAPSearchPaging(t *testing.T) {
	ts := startServer(t, false, func(c *Config) { c.SizeLimit = 10 })
	dns, res := ts.ldapsearch(t, ts.url, "-D", svcDN, "-w", svcPW, "-b", "ou=users,"+testBase, "-s", "one",
		"-E", "pr=2/noprompt", "(objectClass=posixAccount)", "uid")
	wantTool(t, res, 0)
	if len(dns) != totalUsers {
		t.Errorf("paged search returned %d entries, want %d", len(dns), totalUsers)
	}
	for i := 1; i < len(dns); i++ {
		if dns[i] == dns[i-1] {
			t.Errorf("%s twice", dns[i])
		}
	}
	// Without paging the server's size limit applies.
	dns, res = ts.ldapsearch(t, ts.url, "-D", svcDN, "-w", svcPW, "-b", "ou=users,"+testBase, "-s", "one", "(objectClass=posixAccount)", "1.1")
	wantTool(t, res, 4)
	if len(dns) != 10 {
		t.Errorf("unpaged search returned %d entries, want the size limit 10", len(dns))
	}
}

func TestLDAPPasswd(t *testing.T) {
	ts := startServer(t, false, nil)
	const newPW = "alice-new-pass-2"
	res := ts.runTool(t, "ldappasswd", "-x", "-H", ts.url, "-D", aliceDN, "-w", alicePW, "-a", alicePW, "-s", newPW)
	wantTool(t, res, 0)
	_, res = ts.ldapsearch(t, ts.url, "-D", aliceDN, "-w", newPW, "-b", "", "-s", "base")
	wantTool(t, res, 0)
	_, res = ts.ldapsearch(t, ts.url, "-D", aliceDN, "-w", alicePW, "-b", "", "-s", "base")
	wantTool(t, res, 49)

	// A wrong old password changes nothing.
	res = ts.runTool(t, "ldappasswd", "-x", "-H", ts.url, "-D", bobDN, "-w", bobPW, "-a", "not-it", "-s", "whatever-1")
	if res.code == 0 {
		t.Error("ldappasswd with a wrong old password succeeded")
	}
	// An ordinary user cannot reset someone else.
	res = ts.runTool(t, "ldappasswd", "-x", "-H", ts.url, "-D", bobDN, "-w", bobPW, "-s", "whatever-1", aliceDN)
	wantToolResult(t, res, "Insufficient access (50)")
	// A password resetter can.
	res = ts.runTool(t, "ldappasswd", "-x", "-H", ts.url, "-D", resetterDN, "-w", resetterPW, "-s", "bob-reset-pass", bobDN)
	wantTool(t, res, 0)
	_, res = ts.ldapsearch(t, ts.url, "-D", "bob", "-w", "bob-reset-pass", "-b", "", "-s", "base")
	wantTool(t, res, 0)
	// Password authority AD: refused with a reason the user can act on.
	res = ts.runTool(t, "ldappasswd", "-x", "-H", ts.url, "-D", "dave", "-w", "dave-pass-12", "-a", "dave-pass-12", "-s", "dave-new-pass")
	wantToolResult(t, res, "Server is unwilling to perform (53)")
	if !strings.Contains(res.stderr+res.stdout, "Active Directory") {
		t.Errorf("ldappasswd output: %s %s", res.stdout, res.stderr)
	}
	ts.auth.mu.Lock()
	n := len(ts.auth.changes)
	ts.auth.mu.Unlock()
	if n != 2 {
		t.Errorf("%d password changes went through authn, want 2", n)
	}
}

func TestLDAPToolsTLS(t *testing.T) {
	ts := startServer(t, true, func(c *Config) { c.ExemptLoopback = false })
	base := []string{"-D", aliceDN, "-w", alicePW, "-b", testBase, "(uid=alice)", "uid"}

	// Cleartext simple bind: refused.
	_, res := ts.ldapsearch(t, ts.url, base...)
	wantTool(t, res, 13)
	if !strings.Contains(res.stderr, "Confidentiality required") {
		t.Errorf("stderr: %s", res.stderr)
	}
	// StartTLS, certificate checked against the test CA.
	dns, res := ts.ldapsearch(t, ts.url, append([]string{"-ZZ"}, base...)...)
	wantTool(t, res, 0)
	if len(dns) != 1 || dns[0] != aliceDN {
		t.Errorf("StartTLS search: %v", dns)
	}
	// LDAPS.
	dns, res = ts.ldapsearch(t, ts.surl, base...)
	wantTool(t, res, 0)
	if len(dns) != 1 {
		t.Errorf("LDAPS search: %v", dns)
	}
	// ldappasswd over StartTLS.
	res = ts.runTool(t, "ldappasswd", "-x", "-ZZ", "-H", ts.url, "-D", aliceDN, "-w", alicePW, "-a", alicePW, "-s", "alice-tls-pass")
	wantTool(t, res, 0)
	_, res = ts.ldapsearch(t, ts.surl, "-D", "alice@example.test", "-w", "alice-tls-pass", "-b", "", "-s", "base")
	wantTool(t, res, 0)

	// A client that does not trust the CA refuses the server.
	other := newTestPKI(t)
	ts.pki, other = other, ts.pki
	_, res = ts.ldapsearch(t, ts.surl, base...)
	ts.pki = other
	if res.code == 0 || !regexp.MustCompile(`(?i)can't contact|certificate`).MatchString(res.stderr) {
		t.Errorf("untrusted CA: exit %d, stderr %s", res.code, res.stderr)
	}
}

// TestLDAPWhoAmI: the extended operation gldap could not answer.
func TestLDAPWhoAmI(t *testing.T) {
	ts := startServer(t, false, nil)
	res := ts.runTool(t, "ldapwhoami", "-x", "-H", ts.url, "-D", "alice@example.test", "-w", alicePW)
	wantTool(t, res, 0)
	if got := strings.TrimSpace(res.stdout); got != "dn:"+aliceDN {
		t.Errorf("ldapwhoami = %q", got)
	}
	res = ts.runTool(t, "ldapwhoami", "-x", "-H", ts.url)
	wantTool(t, res, 0)
	if got := strings.TrimSpace(res.stdout); got != "anonymous" {
		t.Errorf("anonymous ldapwhoami = %q", got)
	}
}
