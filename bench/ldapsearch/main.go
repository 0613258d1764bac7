// Command ldapsearch-bench measures LDAP search latency per filter kind
// (the lookups of SSSD, nslcd and LDAP-aware applications) against any
// loopback LDAP server, on one bound connection, client included. It also
// writes the corpus both sides are loaded with: an LDIF for slapd
// (-ldif) and the same users and groups through gatewayd's admin API
// (-load). bench/ldapsearch/run.sh runs it against gatewayd and slapd in
// one run and prints the ratio table.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

const base = "dc=example,dc=test"

func userName(i int) string { return fmt.Sprintf("u%06d", i) }
func userCN(i int) string   { return fmt.Sprintf("Name%06d", i) }
func groupName(g int) string {
	return fmt.Sprintf("g%04d", g)
}

// Group g holds users g*per .. g*per+per-1 (the first groups*per users).
func main() {
	var (
		url, bindDN, pass, ldif, load, token, label, client string
		users, groups, per, n, targets                      int
	)
	flag.StringVar(&url, "url", "", "LDAP URL to measure (loopback)")
	flag.StringVar(&bindDN, "D", "", "bind DN (a service account / rootdn)")
	flag.StringVar(&pass, "w", "", "bind password")
	flag.StringVar(&label, "name", "", "label for the server column")
	flag.StringVar(&ldif, "ldif", "", "write the corpus as LDIF to this file and exit")
	flag.StringVar(&load, "load", "", "load the corpus into gatewayd through this admin API URL and exit")
	flag.StringVar(&token, "token", "", "-load: admin token file")
	flag.IntVar(&users, "users", 100000, "users in the corpus")
	flag.IntVar(&groups, "groups", 1000, "groups in the corpus")
	flag.IntVar(&per, "per", 10, "members per group")
	flag.IntVar(&n, "n", 2000, "searches per filter kind")
	flag.IntVar(&targets, "targets", 200, "distinct target users per filter kind")
	flag.StringVar(&client, "client", "go-ldap", "client for the timed searches: go-ldap, or raw (requests encoded before the clock starts, answers read as bare frames)")
	flag.Parse()
	var err error
	switch {
	case ldif != "":
		err = writeLDIF(ldif, users, groups, per)
	case load != "":
		err = loadGatewayd(load, token, users, groups, per)
	case url != "":
		err = measure(url, bindDN, pass, label, client, users, groups*per, n, targets)
	default:
		err = fmt.Errorf("one of -ldif, -load, -url is required")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ldapsearch-bench:", err)
		os.Exit(1)
	}
}

// writeLDIF writes the corpus for slapd. posixGroup and groupOfNames are
// both structural in OpenLDAP's RFC 2307 schema, so groups are posixGroup
// with extensibleObject for member (gatewayd's are groupOfNames too).
func writeLDIF(path string, users, groups, per int) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Bench\ndc: example\n\n", base)
	for _, ou := range []string{"users", "groups"} {
		fmt.Fprintf(&b, "dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, base, ou)
	}
	for i := range users {
		u := userName(i)
		fmt.Fprintf(&b, "dn: uid=%s,ou=users,%s\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.test\nuidNumber: %d\ngidNumber: %d\nhomeDirectory: /home/%s\nloginShell: /bin/bash\n\n",
			u, base, u, userCN(i), u, u, 10000+i, 10000+i, u)
	}
	for g := range groups {
		fmt.Fprintf(&b, "dn: cn=%s,ou=groups,%s\nobjectClass: posixGroup\nobjectClass: extensibleObject\ncn: %s\ngidNumber: %d\n", groupName(g), base, groupName(g), 1000000+g)
		for m := g * per; m < (g+1)*per && m < users; m++ {
			fmt.Fprintf(&b, "member: uid=%s,ou=users,%s\nmemberUid: %s\n", userName(m), base, userName(m))
		}
		b.WriteString("\n")
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// loadGatewayd creates the same users and groups through the admin API,
// eight requests at a time.
func loadGatewayd(api, tokenFile string, users, groups, per int) error {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	auth := "Bearer " + strings.TrimSpace(string(tok))
	call := func(method, path string, body any) error {
		var rd *bytes.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			rd = bytes.NewReader(j)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, api+path, rd)
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return nil
	}
	parallel := func(count int, fn func(i int) error) error {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		work := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					if err := fn(i); err != nil {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
					}
				}
			}()
		}
		for i := range count {
			work <- i
		}
		close(work)
		wg.Wait()
		return first
	}
	start := time.Now()
	if err := parallel(users, func(i int) error {
		u := userName(i)
		if err := call("POST", "/v1/users", map[string]any{"username": u, "email": u + "@example.test", "first_name": userCN(i)}); err != nil {
			return err
		}
		// Delegated to AD: active without a password of their own (a user
		// with no password yet is inactive, and listed in no group).
		return call("PATCH", "/v1/users/"+u, map[string]any{"delegated_authority": "ad"})
	}); err != nil {
		return err
	}
	if err := parallel(groups, func(g int) error { return call("POST", "/v1/groups", map[string]any{"name": groupName(g)}) }); err != nil {
		return err
	}
	if err := parallel(groups*per, func(m int) error {
		if m >= users {
			return nil
		}
		return call("PUT", "/v1/groups/"+groupName(m/per)+"/members/"+userName(m), nil)
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "# loaded %d users, %d groups in %s\n", users, groups, time.Since(start).Round(time.Second))
	return nil
}

// kind is one filter kind: make builds the filter for target user i from
// what the server says about that user (uidNumber, entryUUID, its group).
type kind struct {
	name string
	want int // entries expected
	make func(t target) string
}

type target struct {
	i                   int
	uidNumber, uuid     string
	groupGID, groupUUID string
}

var kinds = []kind{
	{"(uid=x)", 1, func(t target) string { return "(uid=" + userName(t.i) + ")" }},
	{"(mail=x)", 1, func(t target) string { return "(mail=" + userName(t.i) + "@example.test)" }},
	{"(&(objectClass=posixAccount)(uidNumber=N))", 1, func(t target) string {
		return "(&(objectClass=posixAccount)(uidNumber=" + t.uidNumber + "))"
	}},
	{"(&(objectClass=posixGroup)(gidNumber=N)) group", 1, func(t target) string {
		return "(&(objectClass=posixGroup)(gidNumber=" + t.groupGID + "))"
	}},
	{"(&(objectClass=posixGroup)(memberUid=x))", 1, func(t target) string {
		return "(&(objectClass=posixGroup)(memberUid=" + userName(t.i) + "))"
	}},
	{"(member=dn)", 1, func(t target) string { return "(member=uid=" + userName(t.i) + ",ou=users," + base + ")" }},
	{"(cn=ab*) 10 entries", 10, func(t target) string { return "(cn=" + userCN(t.i)[:9] + "*)" }},
	{"(uid=ab*) 10 entries", 10, func(t target) string { return "(uid=" + userName(t.i)[:6] + "*)" }},
	{"(entryUUID=x)", 1, func(t target) string { return "(entryUUID=" + t.uuid + ")" }},
}

func measure(url, bindDN, pass, label, client string, users, grouped, n, ntargets int) error {
	if client != "go-ldap" && client != "raw" {
		return fmt.Errorf("-client %q: go-ldap or raw", client)
	}
	c, err := ldap.DialURL(url)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(time.Minute)
	if err := c.Bind(bindDN, pass); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if label == "" {
		label = url
	}
	// Targets among the users that are in a group, with 10 users per cn
	// and uid prefix (an index not ending in 9..0 would give fewer).
	r := rand.New(rand.NewPCG(14, 1))
	one := func(filter string, attrs ...string) (*ldap.Entry, error) {
		res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
		if err != nil {
			return nil, err
		}
		if len(res.Entries) != 1 {
			return nil, fmt.Errorf("%s: %d entries", filter, len(res.Entries))
		}
		return res.Entries[0], nil
	}
	var ts []target
	for range ntargets {
		i := r.IntN(min(grouped, users)/10) * 10
		u, err := one("(uid="+userName(i)+")", "uidNumber", "entryUUID")
		if err != nil {
			return err
		}
		g, err := one("(member=uid="+userName(i)+",ou=users,"+base+")", "gidNumber", "entryUUID")
		if err != nil {
			return err
		}
		ts = append(ts, target{i: i, uidNumber: u.GetAttributeValue("uidNumber"), uuid: u.GetAttributeValue("entryUUID"),
			groupGID: g.GetAttributeValue("gidNumber"), groupUUID: g.GetAttributeValue("entryUUID")})
	}
	var rc *rawConn
	if client == "raw" {
		if rc, err = dialRaw(url, bindDN, pass); err != nil {
			return err
		}
		defer rc.nc.Close()
	}
	fmt.Printf("server\tkind\tn\tp50_us\tp99_us\tmean_us\n")
	for _, k := range kinds {
		lat := make([]time.Duration, 0, n)
		for j := range n {
			t := ts[j%len(ts)]
			f := k.make(t)
			var got int
			if rc != nil {
				req, err := rc.searchRequest(f, "uid", "cn")
				if err != nil {
					return err
				}
				start := time.Now()
				code, entries, err := rc.roundTrip(req, 5)
				lat = append(lat, time.Since(start))
				if err == nil && code != 0 {
					err = fmt.Errorf("result code %d", code)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				got = entries
			} else {
				start := time.Now()
				res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, f, []string{"uid", "cn"}, nil))
				lat = append(lat, time.Since(start))
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				got = len(res.Entries)
			}
			if got != k.want {
				return fmt.Errorf("%s: %d entries, want %d", f, got, k.want)
			}
		}
		slices.Sort(lat)
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		fmt.Printf("%s\t%s\t%d\t%d\t%d\t%d\n", label, k.name, n, lat[len(lat)/2].Microseconds(),
			lat[len(lat)*99/100].Microseconds(), (sum / time.Duration(len(lat))).Microseconds())
	}
	return nil
}

// rawConn is a minimal LDAP client for -client raw: each request is
// encoded before the clock starts and the answers are read as frames
// whose tags alone are looked at, so the time measured is the server's
// and the kernel's more than the client's (go-ldap's client passes every
// request through goroutines and channels, which on a loaded machine
// adds scheduling waits to both servers alike).
type rawConn struct {
	nc  net.Conn
	br  *bufio.Reader
	id  int64
	buf []byte
}

func dialRaw(url, bindDN, pass string) (*rawConn, error) {
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ldap://"), "/")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	b := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 0, nil, "")
	b.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, ""))
	b.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, bindDN, ""))
	b.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, pass, ""))
	code, _, err := rc.roundTrip(rc.envelope(b), 1)
	if err == nil && code != 0 {
		err = fmt.Errorf("result code %d", code)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("raw bind: %w", err)
	}
	return rc, nil
}

// envelope wraps a protocolOp in an LDAPMessage with the next message ID.
func (rc *rawConn) envelope(op *ber.Packet) []byte {
	rc.id++
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, rc.id, ""))
	p.AppendChild(op)
	return p.Bytes()
}

// searchRequest encodes a subtree search from the base.
func (rc *rawConn) searchRequest(filter string, attrs ...string) ([]byte, error) {
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		return nil, err
	}
	s := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 3, nil, "")
	s.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 2, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))
	s.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))
	s.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	s.AppendChild(f)
	as := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, a := range attrs {
		as.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, ""))
	}
	s.AppendChild(as)
	return rc.envelope(s), nil
}

var errFrame = errors.New("malformed answer")

// roundTrip sends req and reads answers up to the one whose protocolOp
// has application tag done, counting SearchResultEntry (4) on the way.
func (rc *rawConn) roundTrip(req []byte, done byte) (code, entries int, err error) {
	if _, err := rc.nc.Write(req); err != nil {
		return 0, 0, err
	}
	for {
		frame, err := rc.readFrame()
		if err != nil {
			return 0, entries, err
		}
		// frame: messageID INTEGER, then the protocolOp.
		_, opAt, ok := header(frame, 0)
		if !ok || frame[0] != 0x02 || opAt >= len(frame) {
			return 0, entries, errFrame
		}
		switch tag := frame[opAt] & 0x1f; tag {
		case 4:
			entries++
		case done:
			// LDAPResult: resultCode ENUMERATED first.
			body, _, ok := header(frame, opAt)
			if !ok || body+3 > len(frame) || frame[body] != 0x0a || frame[body+1] != 1 {
				return 0, entries, errFrame
			}
			return int(frame[body+2]), entries, nil
		}
	}
}

// readFrame reads one LDAPMessage and returns its contents.
func (rc *rawConn) readFrame() ([]byte, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(rc.br, hdr[:2]); err != nil {
		return nil, err
	}
	if hdr[0] != 0x30 {
		return nil, errFrame
	}
	n := int(hdr[1])
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 {
			return nil, errFrame
		}
		if _, err := io.ReadFull(rc.br, hdr[2:2+k]); err != nil {
			return nil, err
		}
		n = 0
		for _, c := range hdr[2 : 2+k] {
			n = n<<8 | int(c)
		}
	}
	if cap(rc.buf) < n {
		rc.buf = make([]byte, n)
	}
	rc.buf = rc.buf[:n]
	if _, err := io.ReadFull(rc.br, rc.buf); err != nil {
		return nil, err
	}
	return rc.buf, nil
}

// header reads the element header at b[at:]: where its contents start
// and where the element ends.
func header(b []byte, at int) (contents, end int, ok bool) {
	if at+2 > len(b) {
		return 0, 0, false
	}
	n, pos := int(b[at+1]), at+2
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 || pos+k > len(b) {
			return 0, 0, false
		}
		n = 0
		for _, c := range b[pos : pos+k] {
			n = n<<8 | int(c)
		}
		pos += k
	}
	if pos+n > len(b) {
		return 0, 0, false
	}
	return pos, pos + n, true
}
