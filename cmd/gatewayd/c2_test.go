package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// C2 (issue 14): service accounts pipelining large searches and never
// reading the replies grew the daemon by 940 MB. With max_bytes_in_flight
// the daemon stops reading from connections whose replies pile up once
// the budget is spent, so its RSS stays within a bound derived from the
// budget, other clients are still served, and the bytes in flight come
// back to zero once the attackers leave.
func TestLDAPBytesInFlightBoundsRSS(t *testing.T) {
	const (
		budgetMiB = 16
		nConns    = 8
		perConn   = 64
		reqBytes  = 900 << 10 // each search request is about 900 KiB
		nUsers    = 1000      // each answer is about 900 KiB too (size_limit entries)
		base      = "dc=c2,dc=test"
		svcPW     = "c2-service-pass-1"
	)
	dir := t.TempDir()
	port := testutil.FreePort(t)
	text := strings.Replace(testConfig(t, dir, ""), "[ldap]\nlisten = \"\"", fmt.Sprintf(`[ldap]
listen = "127.0.0.1:%d"
base_dn = %q
max_bytes_in_flight = %d
`, port, base, budgetMiB<<20), 1)
	p := startDaemon(t, dir, writeConfig(t, dir, text))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, err := p.api("POST", "/v1/users", map[string]any{"username": "svc", "email": "svc@c2.test", "service_account": true}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.api("PUT", "/v1/users/svc/password", map[string]string{"password": svcPW}, nil); err != nil {
		t.Fatal(err)
	}
	// The users, with long attributes so that an answer is large.
	var wg sync.WaitGroup
	errs := make(chan error, nUsers)
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := p.api("POST", "/v1/users", map[string]any{
					"username": fmt.Sprintf("u%04d", i), "email": fmt.Sprintf("u%04d@c2.test", i),
					"first_name": strings.Repeat("F", 200), "last_name": strings.Repeat("L", 200),
				}, nil)
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range nUsers {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	svcDN := "uid=svc,ou=users," + base

	// Warm up (the store, the encoder pools) so the baseline is fair.
	lc, err := ldap.DialURL("ldap://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	lc.SetTimeout(30 * time.Second)
	if err := lc.Bind(svcDN, svcPW); err != nil {
		t.Fatal(err)
	}
	res, err := lc.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=posixAccount)", nil, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Fatal(err)
	}
	answerBytes := 0
	for _, e := range res.Entries {
		answerBytes += len(e.DN)
		for _, a := range e.Attributes {
			for _, v := range a.Values {
				answerBytes += len(a.Name) + len(v)
			}
		}
	}
	lc.Close()
	t.Logf("one answer: %d entries, about %d KiB", len(res.Entries), answerBytes>>10)
	if answerBytes < 600<<10 {
		t.Fatalf("answers of %d KiB are too small to reproduce C2", answerBytes>>10)
	}
	pid := p.cmd.Process.Pid
	baseline := int64(rssKiB(t, pid)) << 10

	// The attack: bind, then pipeline large searches, never read.
	filter := "(|(objectClass=posixAccount)(description=" + strings.Repeat("x", reqBytes) + "))"
	// Built here, on the test's goroutine (searchPacket may t.Fatal), and
	// shared: message IDs are per connection.
	reqs := make([][]byte, perConn)
	for j := range reqs {
		reqs[j] = searchPacket(t, int64(2+j), base, filter)
	}
	attackers := make([]net.Conn, 0, nConns)
	var wwg sync.WaitGroup
	var written atomic.Int64
	for range nConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		attackers = append(attackers, c)
		rawBind(t, c, svcDN, svcPW)
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for _, binary := range reqs {
				// No deadline: a Write that blocks is the backpressure
				// under test; closing the connection below ends it.
				if _, err := c.Write(binary); err != nil {
					return
				}
				written.Add(1)
			}
		}()
	}
	stopAttack := func() {
		for _, c := range attackers {
			c.Close()
		}
		wwg.Wait()
	}

	// Sample the RSS until the door says it paused reading because the
	// budget was spent: that is the attack pressing on the budget, seen
	// by the daemon itself rather than guessed from how much a writer got
	// through in some time (under -race on a busy machine the door reads
	// slowly, and that says nothing about the budget).
	peak := baseline
	sample := func() {
		if r := int64(rssKiB(t, pid)) << 10; r > peak {
			peak = r
		}
	}
	testutil.Eventually(t, 120*time.Second, func() bool {
		sample()
		return metricValue(t, p, "gatewayd_ldap_read_pauses_total") > 0
	}, "the door pausing reads because the bytes-in-flight budget is spent")
	// Another client is still served while the attack holds.
	oc, err := ldap.DialURL("ldap://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	oc.SetTimeout(60 * time.Second)
	if err := oc.Bind(svcDN, svcPW); err != nil {
		t.Fatalf("another client's bind during the attack: %v", err)
	}
	r, err := oc.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=u0007)", []string{"uid"}, nil))
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("another client's search during the attack: %v %v", r, err)
	}
	oc.Close()
	// Keep sampling while the daemon works through what it read: 20
	// samples, a bound on the observation, not a condition of the test.
	for range 20 {
		sample()
		time.Sleep(100 * time.Millisecond)
	}
	total := written.Load()
	growth := peak - baseline
	// The budget, the message being read on each connection and one
	// answer entry per connection, three times over for the garbage
	// collector's headroom and the decoding of what was read, plus slack
	// for the runtime. (Without the budget: 305 MiB in the same run.)
	bound := int64(3*(budgetMiB<<20+nConns*(1<<20+64<<10))) + 64<<20
	t.Logf("RSS baseline %d MiB, peak %d MiB (growth %d MiB, bound %d MiB); %d of %d requests written so far (%d MiB)",
		baseline>>20, peak>>20, growth>>20, bound>>20, total, nConns*perConn, total*reqBytes>>20)
	if growth > bound {
		t.Errorf("RSS grew by %d MiB under %d connections pipelining large searches; bound %d MiB", growth>>20, nConns, bound>>20)
	}

	stopAttack()
	testutil.Eventually(t, 90*time.Second, func() bool {
		return metricValue(t, p, "gatewayd_ldap_in_flight_bytes") == 0
	}, "bytes in flight back to 0 after the attackers closed")
	if got := metricValue(t, p, "gatewayd_ldap_in_flight_limit_bytes"); got != budgetMiB<<20 {
		t.Errorf("gatewayd_ldap_in_flight_limit_bytes = %v", got)
	}
}

func searchPacket(t *testing.T, id int64, base, filter string) []byte {
	t.Helper()
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "Search Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "Base DN"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, uint64(ldap.ScopeWholeSubtree), "Scope"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, uint64(ldap.NeverDerefAliases), "Deref"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Size Limit"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Time Limit"))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "Types Only"))
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	req.AppendChild(f)
	req.AppendChild(ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes"))
	p.AppendChild(req)
	return p.Bytes()
}

// rawBind sends a simple bind on a raw connection and reads its answer.
func rawBind(t *testing.T, c net.Conn, dn, pw string) {
	t.Helper()
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), "MessageID"))
	b := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "Bind Request")
	b.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "Version"))
	b.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "User Name"))
	b.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, pw, "Password"))
	p.AppendChild(b)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(p.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := ber.ReadPacket(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Children) < 2 || len(resp.Children[1].Children) < 1 || resp.Children[1].Children[0].Value.(int64) != 0 {
		t.Fatalf("raw bind refused: %v", resp)
	}
	_ = c.SetDeadline(time.Time{})
}
