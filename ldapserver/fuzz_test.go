package ldapserver

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// --- raw message builders (also used by the protocol tests) ---

func rawEnvelope(id int64, op *ber.Packet, controls ...*ber.Packet) []byte {
	return refEnvelope(id, op, controls...).Bytes()
}

func rawBind(id int64, name, pw string) []byte {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appBindRequest, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(3), ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, ""))
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, pw, ""))
	return rawEnvelope(id, op)
}

func rawSearch(t testing.TB, id int64, base string, scope int, filter string, attrs []string, controls ...*ber.Packet) []byte {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchRequest, nil, "")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(scope), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(0), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	op.AppendChild(f)
	as := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, a := range attrs {
		as.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, ""))
	}
	op.AppendChild(as)
	return rawEnvelope(id, op, controls...)
}

func rawExtended(id int64, oid string, value []byte) []byte {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appExtendedRequest, nil, "")
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, oid, ""))
	if value != nil {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, string(value), ""))
	}
	return rawEnvelope(id, op)
}

func rawPasswdValue(user, old, nw string) []byte {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	if user != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, user, ""))
	}
	if old != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, old, ""))
	}
	if nw != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, nw, ""))
	}
	return seq.Bytes()
}

func rawAbandon(id, target int64) []byte {
	op := ber.NewInteger(ber.ClassApplication, ber.TypePrimitive, appAbandonRequest, target, "")
	return rawEnvelope(id, op)
}

func rawUnbind(id int64) []byte {
	return rawEnvelope(id, ber.Encode(ber.ClassApplication, ber.TypePrimitive, appUnbindRequest, nil, ""))
}

func pagedRequestControl(size int64, cookie []byte, critical bool) *ber.Packet {
	c := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, oidPagedResults, ""))
	if critical {
		c.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, ""))
	}
	v := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	v.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, size, ""))
	v.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(cookie), ""))
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(v.Bytes()), ""))
	return c
}

// --- fuzz targets ---

var filterSeeds = []string{
	"(uid=alice)", "(objectClass=*)", "(&(objectClass=person)(|(uid=a*)(mail=*@example.test)))",
	"(!(memberOf=cn=staff,ou=groups,dc=example,dc=test))", "(uidNumber>=1000)", "(createTimestamp<=20250101000000Z)",
	"(cn~=alice)", "(uid:caseExactMatch:=alice)", "(ou:dn:=users)", `(cn=a\2ab\28c\29)`, "(&)", "(|)",
	"(uid=*a*b*c*)", "(entryUUID=7f1c2b9e-4d3a-4c2b-9a8e-1f2e3d4c5b6a)", "(memberUid=alice)",
}

// FuzzFilter parses an RFC 4515 string, sends it through BER and our
// decoder, and evaluates it against a user and a group entry: it must
// never panic, and NOT must behave as the three-valued complement.
func FuzzFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	d, _ := newFixture()
	tr, _ := newTree(testBase, 0)
	u, _ := d.UserByUsername("alice")
	g, _ := d.GroupByName("staff")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ldap.CompileFilter(s)
		if err != nil {
			return
		}
		wire, err := parseElement(p.Bytes(), maxBERElements, maxBERDepth)
		if err != nil {
			return
		}
		flt, err := decodeFilter(wire)
		if err != nil {
			return
		}
		not := &filter{op: fNot, children: []*filter{flt}}
		srv := &Server{dir: d, tree: tr}
		for _, k := range []struct {
			e    *entry
			kind phaseKind
		}{{tr.userEntry(u, d), phUsers}, {tr.groupEntry(g, d), phGroups}, {tr.upgEntry(u), phUserGroups}, {tr.baseEntry(), phFixed}} {
			r, nr := flt.eval(k.e), not.eval(k.e)
			if (r == triUndefined) != (nr == triUndefined) || (r != triUndefined && r == nr) {
				t.Fatalf("%q: eval %v, NOT eval %v", s, r, nr)
			}
			// The planner never rules out a kind of entry that matches.
			if k.kind != phFixed && r == triTrue {
				if src := srv.planner(k.kind).plan(flt); src != nil && src.desc == "none" {
					t.Fatalf("%q matches %s but the planner rules its kind out", s, k.e.dn)
				}
			}
		}
	})
}

// FuzzDecodeMessage feeds bytes through the framing, the pre-scan and every
// request decoder we own.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add(s)
	}
	d, _ := newFixture()
	tr, _ := newTree(testBase, 0)
	u, _ := d.UserByUsername("alice")
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf bytes.Buffer
		frame, err := readFrame(bufio.NewReader(bytes.NewReader(data)), 1<<16, &buf)
		if err != nil {
			return
		}
		m, err := decodeMessage(frame)
		if err != nil {
			return
		}
		// Where go-asn1-ber reads the message too (it also parses the
		// contents of universal types such as times, which LDAP requests
		// do not use), it reads the same envelope.
		if ref, err := ber.DecodePacketErr(frame); err == nil && len(ref.Children) >= 2 {
			if id, _ := ref.Children[0].Value.(int64); id != m.id || ref.Children[1].Tag != m.op {
				t.Fatalf("go-asn1-ber reads id %d op %d, we read id %d op %d", id, ref.Children[1].Tag, m.id, m.op)
			}
		}
		// The reader's aliasing guard must see every search we decode.
		if op, ok := opIdentifier(frame); ok && m.op == appSearchRequest && op&0xdf != identifier(ber.ClassApplication, ber.TypePrimitive, appSearchRequest) {
			t.Fatalf("opIdentifier %#x misses the search we decoded", op)
		}
		for _, c := range m.controls {
			if c.oid == oidPagedResults {
				_, _, _ = decodePagedValue(c.value)
			}
		}
		switch m.op {
		case appBindRequest:
			if r, err := decodeBind(m.body); err == nil {
				_, _ = parseDN(r.name)
			}
		case appSearchRequest:
			if r, err := decodeSearch(m.body); err == nil {
				if d, err := parseDN(r.base); err == nil {
					tr.locate(d)
				}
				r.filter.eval(tr.userEntry(u, d))
				newSelection(r.attrs).pick(tr.userEntry(u, d))
			}
		case appExtendedRequest:
			if r, err := decodeExtended(m.body); err == nil {
				_, _ = decodePasswdModify(r.value, r.hasValue)
			}
		case appAbandonRequest:
			_, _ = decodeAbandon(m.body)
		}
	})
}

func messageSeeds(t testing.TB) [][]byte {
	return [][]byte{
		rawBind(1, aliceDN, alicePW),
		rawBind(2, "alice@example.test", "x"),
		rawBind(3, "", ""),
		rawSearch(t, 4, testBase, scopeSub, "(&(objectClass=person)(uid=a*))", []string{"cn", "+"}),
		rawSearch(t, 5, "", scopeBase, "(objectClass=*)", nil),
		rawSearch(t, 6, testBase, scopeSub, "(uid=*)", []string{"1.1"}, pagedRequestControl(2, []byte("cookie"), true)),
		rawExtended(7, oidPasswordModify, rawPasswdValue(bobDN, "old", "new-password")),
		rawExtended(8, oidStartTLS, nil),
		rawExtended(9, oidWhoAmI, nil),
		rawAbandon(10, 4),
		rawUnbind(11),
		{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff},
		{0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00},
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/*: GATEWAYD_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("GATEWAYD_WRITE_SEEDS") == "" {
		t.Skip("set GATEWAYD_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(target string, i int, line string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + line + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range filterSeeds {
		write("FuzzFilter", i, fmt.Sprintf("string(%q)", s))
	}
	for i, b := range messageSeeds(t) {
		write("FuzzDecodeMessage", i, fmt.Sprintf("[]byte(%q)", b))
	}
}

// TestFilterRandomized is the short fuzz run inside the suite: random
// filters from a grammar over the schema, evaluated against real entries.
func TestFilterRandomized(t *testing.T) {
	d, _ := newFixture()
	tr, _ := newTree(testBase, 0)
	u, _ := d.UserByUsername("alice")
	g, _ := d.GroupByName("staff")
	entries := []*entry{tr.userEntry(u, d), tr.groupEntry(g, d), tr.baseEntry(), tr.containerEntry(ctrUsers)}
	rng := rand.New(rand.NewSource(1))
	attrs := []string{"uid", "cn", "mail", "objectClass", "memberOf", "member", "memberUid", "uidNumber", "gidNumber",
		"createTimestamp", "entryUUID", "homeDirectory", "nosuch", "UID", "cn;lang-de", "userPassword"}
	vals := []string{"alice", "ALICE", "a", "*", "staff", "cn=staff,ou=groups," + testBase, "10001", "20240101000000Z",
		"person", "posixGroup", "/home/alice", `\2a`, "", " x ", "é"}
	var gen func(depth int) string
	gen = func(depth int) string {
		if depth > 0 && rng.Intn(3) == 0 {
			n := rng.Intn(4)
			var b strings.Builder
			b.WriteString("(" + []string{"&", "|", "!"}[rng.Intn(3)])
			if b.String() == "(!" {
				n = 1
			}
			for i := 0; i < n; i++ {
				b.WriteString(gen(depth - 1))
			}
			if n == 0 && b.String() == "(!" {
				b.WriteString("(uid=a)")
			}
			return b.String() + ")"
		}
		a := attrs[rng.Intn(len(attrs))]
		v := vals[rng.Intn(len(vals))]
		switch rng.Intn(6) {
		case 0:
			return "(" + a + "=*)"
		case 1:
			return "(" + a + ">=" + v + ")"
		case 2:
			return "(" + a + "<=" + v + ")"
		case 3:
			return "(" + a + "~=" + v + ")"
		case 4:
			return "(" + a + "=" + v + "*" + vals[rng.Intn(len(vals))] + ")"
		}
		return "(" + a + "=" + v + ")"
	}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		s := gen(4)
		flt, err := compileFilter(t, s)
		if err != nil {
			continue
		}
		not := &filter{op: fNot, children: []*filter{flt}}
		for _, e := range entries {
			r, nr := flt.eval(e), not.eval(e)
			if (r == triUndefined) != (nr == triUndefined) || (r != triUndefined && r == nr) {
				t.Fatalf("%q: eval %v, NOT eval %v", s, r, nr)
			}
		}
	}
}

func TestScanBER(t *testing.T) {
	good := rawBind(1, aliceDN, "pw")
	if err := scanBER(good, 100, 10); err != nil {
		t.Fatalf("good message: %v", err)
	}
	cases := map[string][]byte{
		"truncated":          good[:len(good)-1],
		"trailing":           append(append([]byte{}, good...), 0),
		"indefinite":         {0x30, 0x80, 0x00, 0x00},
		"child overruns":     {0x30, 0x03, 0x04, 0x05, 0x61},
		"huge length":        {0x30, 0x84, 0xff, 0xff, 0xff, 0xff},
		"length of 5 octets": {0x30, 0x85, 0, 0, 0, 0, 1, 0},
		"empty":              {},
	}
	for name, b := range cases {
		if err := scanBER(b, 100, 10); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	deep := []byte{}
	for i := 0; i < 20; i++ {
		deep = append([]byte{0x30, byte(len(deep))}, deep...)
	}
	if err := scanBER(deep, 100, 10); err == nil {
		t.Error("20 levels accepted with maxDepth 10")
	}
	many := []byte{0x30, 0}
	for i := 0; i < 50; i++ {
		many = append(many, 0x05, 0x00)
	}
	many[1] = byte(len(many) - 2)
	if err := scanBER(many, 20, 10); err == nil {
		t.Error("51 elements accepted with maxElems 20")
	}
}
