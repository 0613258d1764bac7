package main

// The AD import at a size that matters (SPEC 6.2, 6.4): a group larger
// than AD's MaxValRange, and a daemon killed in the middle of an import,
// against a Samba DC seeded by scripts/samba-ad-seed.sh.

import (
	"bytes"
	"context"
	"fmt"
	"net"
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
	t.Helper()
	script, err := filepath.Abs("../../scripts/samba-ad-seed.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, s.dir, fmt.Sprint(users), fmt.Sprint(groups), prefix)
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

// importDaemon starts gatewayd with an [ad.import] of sd's integration
// group under sd's OU, through a proxy into the DC's namespace. The
// interval is long: the first cycle runs a second after the start, the
// others are asked for.
func importDaemon(t *testing.T, s *sambaDC, sd seeded, dir, extra string) (*proc, string) {
	t.Helper()
	t.Setenv("GW_TEST_AD_BIND_PASSWORD", sambaAdminPass)
	px := newProxy(t, func() (net.Conn, error) { return dialNetns(s.netns, "127.0.0.1:636", 2*time.Second) })
	text := testConfig(t, dir, adBlock(s, s.ca, []string{"ldaps://" + px.addr}, fmt.Sprintf(
		"bind_dn = \"CN=Administrator,CN=Users,%s\"\nbind_password = \"env:GW_TEST_AD_BIND_PASSWORD\"\n"+
			"[ad.import]\nenabled = true\ngroup = %q\nroot = %q\ninterval = \"1h\"\n%s", s.base, sd.group, sd.ou, extra)))
	cfgPath := writeConfig(t, dir, text)
	return startDaemon(t, dir, cfgPath), cfgPath
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

	p, _ := importDaemon(t, s, sd, t.TempDir(), "")
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
