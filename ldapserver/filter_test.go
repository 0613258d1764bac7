package ldapserver

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/store"
)

// compileFilter turns an RFC 4515 string into our filter the way a search
// would: through its BER wire form.
func compileFilter(t testing.TB, s string) (*filter, error) {
	t.Helper()
	p, err := ldap.CompileFilter(s)
	if err != nil {
		return nil, err
	}
	wire, err := parseElement(p.Bytes(), maxBERElements, maxBERDepth)
	if err != nil {
		return nil, err
	}
	return decodeFilter(wire)
}

func aliceEntry(t testing.TB) *entry {
	t.Helper()
	d, _ := newFixture()
	tr, err := newTree(testBase, 0)
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.UserByUsername("alice")
	if err != nil {
		t.Fatal(err)
	}
	return tr.userEntry(u, d)
}

func TestFilterEvaluation(t *testing.T) {
	e := aliceEntry(t)
	tests := []struct {
		filter string
		want   tri
	}{
		// presence
		{"(objectClass=*)", triTrue},
		{"(uid=*)", triTrue},
		{"(description=*)", triFalse},
		{"(userPassword=*)", triFalse}, // the hash is never an attribute
		{"(nosuchattr=*)", triFalse},
		// equality, case rules
		{"(uid=alice)", triTrue},
		{"(uid=ALICE)", triTrue},
		{"(uid= alice )", triTrue}, // insignificant spaces
		{"(uid=bob)", triFalse},
		{"(cn=alice   example)", triTrue},
		{"(mail=Alice@Example.TEST)", triTrue},
		{"(objectClass=InetOrgPerson)", triTrue},
		{"(objectClass=posixAccount)", triTrue},
		{"(objectClass=groupOfNames)", triFalse},
		{"(homeDirectory=/home/alice)", triTrue},
		{"(homeDirectory=/HOME/alice)", triFalse}, // caseExactIA5Match
		{"(loginShell=/bin/bash)", triTrue},
		{"(uidNumber=10001)", triTrue},
		{"(uidNumber=010001)", triTrue},
		{"(uidNumber=abc)", triUndefined},
		{"(gidNumber=10001)", triTrue}, // user private group
		{"(memberOf=cn=staff,ou=groups,dc=example,dc=test)", triTrue},
		{"(memberOf=CN=Staff, OU=Groups, DC=Example, DC=Test)", triTrue},
		{"(memberOf=cn=empty,ou=groups,dc=example,dc=test)", triFalse},
		{"(memberOf=not a dn)", triUndefined},
		{"(entryUUID=7F1C2B9E-4D3A-4C2B-9A8E-1F2E3D4C5B6A)", triTrue},
		{"(entryDN=uid=Alice,ou=Users,dc=example,dc=test)", triTrue},
		{"(nosuchattr=x)", triUndefined},
		{"(uid;lang-en=alice)", triFalse},
		// approx is equality
		{"(uid~=Alice)", triTrue},
		// ordering
		{"(uidNumber>=10000)", triTrue},
		{"(uidNumber>=10002)", triFalse},
		{"(uidNumber<=10001)", triTrue},
		{"(uidNumber<=9)", triFalse},
		{"(createTimestamp>=20240101000000Z)", triTrue},
		{"(createTimestamp<=20240101000000Z)", triFalse},
		{"(modifyTimestamp>=20240501130000Z)", triTrue},
		{"(modifyTimestamp>=202405011300Z)", triTrue},
		{"(createTimestamp>=yesterday)", triUndefined},
		{"(sn>=E)", triTrue},
		{"(sn<=D)", triFalse},
		{"(memberOf>=cn=a)", triUndefined}, // no ordering on DNs
		// substrings
		{"(uid=al*)", triTrue},
		{"(uid=AL*)", triTrue},
		{"(uid=*ice)", triTrue},
		{"(uid=*lic*)", triTrue},
		{"(uid=a*i*e)", triTrue},
		{"(uid=a*x*e)", triFalse},
		{"(uid=b*)", triFalse},
		{"(cn=*example)", triTrue},
		{"(mail=*@example.test)", triTrue},
		{"(homeDirectory=/HOME*)", triFalse},
		{"(uid=ali*ice)", triFalse}, // initial and final may not overlap
		{"(uidNumber=100*)", triUndefined},
		{"(memberOf=cn=staff*)", triUndefined},
		// boolean combinations
		{"(&(uid=alice)(objectClass=person))", triTrue},
		{"(&(uid=alice)(objectClass=groupOfNames))", triFalse},
		{"(|(uid=bob)(mail=alice@example.test))", triTrue},
		{"(|(uid=bob)(uid=carol))", triFalse},
		{"(!(uid=bob))", triTrue},
		{"(!(uid=alice))", triFalse},
		{"(&(objectClass=inetOrgPerson)(memberOf=cn=admins,ou=groups,dc=example,dc=test)(!(uid=bob)))", triTrue},
		{"(&)", triTrue},
		{"(|)", triFalse},
		// three-valued logic
		{"(!(nosuchattr=x))", triUndefined},
		{"(&(uid=alice)(nosuchattr=x))", triUndefined},
		{"(&(uid=bob)(nosuchattr=x))", triFalse},
		{"(|(uid=alice)(nosuchattr=x))", triTrue},
		{"(|(uid=bob)(nosuchattr=x))", triUndefined},
		// escapes
		{`(cn=Alice\20Example)`, triTrue},
		{`(uid=\61lice)`, triTrue},
		// extensible match
		{"(uid:caseExactMatch:=alice)", triTrue},
		{"(uid:caseExactMatch:=Alice)", triFalse},
		{"(uid:=ALICE)", triTrue},
		{"(ou:dn:=users)", triTrue},
		{"(ou:=users)", triFalse},
		{"(uid:1.2.3.4:=alice)", triUndefined},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := compileFilter(t, tc.filter)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if got := f.eval(e); got != tc.want {
				t.Errorf("eval = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterGroupEntry(t *testing.T) {
	d, _ := newFixture()
	tr, _ := newTree(testBase, 0)
	g, _ := d.GroupByName("staff")
	e := tr.groupEntry(g, d)
	for _, tc := range []struct {
		filter string
		want   tri
	}{
		{"(member=uid=alice,ou=users,dc=example,dc=test)", triTrue},
		{"(member=UID=BOB,OU=users,DC=example,DC=test)", triTrue},
		{"(member=uid=carol,ou=users,dc=example,dc=test)", triFalse},
		{"(memberUid=alice)", triTrue},
		{"(memberUid=ALICE)", triFalse}, // caseExactIA5Match, as in RFC 2307
		{"(&(objectClass=posixGroup)(gidNumber=20001))", triTrue},
		{"(objectClass=groupOfNames)", triTrue},
		{"(cn=STAFF)", triTrue},
	} {
		f, err := compileFilter(t, tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.eval(e); got != tc.want {
			t.Errorf("%s: eval = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

// TestFilterLimits: deep or wide filters are refused, not recursed into.
func TestFilterLimits(t *testing.T) {
	deep := strings.Repeat("(!", maxFilterDepth+2) + "(uid=a)" + strings.Repeat(")", maxFilterDepth+2)
	if _, err := compileFilter(t, deep); !errors.Is(err, errFilterTooBig) {
		t.Errorf("deep filter: err = %v, want errFilterTooBig", err)
	}
	wide := "(|" + strings.Repeat("(uid=a)", maxFilterNodes+1) + ")"
	if _, err := compileFilter(t, wide); !errors.Is(err, errFilterTooBig) {
		t.Errorf("wide filter: err = %v, want errFilterTooBig", err)
	}
	ok := "(|" + strings.Repeat("(uid=a)", 100) + ")"
	if _, err := compileFilter(t, ok); err != nil {
		t.Errorf("100-way OR: %v", err)
	}
}

func TestFilterMalformedBER(t *testing.T) {
	for name, p := range map[string]*ber.Packet{
		"universal class":   ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "x", ""),
		"not without child": ber.Encode(ber.ClassContext, ber.TypeConstructed, tagFilterNot, nil, ""),
		"equality one child": func() *ber.Packet {
			p := ber.Encode(ber.ClassContext, ber.TypeConstructed, tagFilterEqual, nil, "")
			p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "uid", ""))
			return p
		}(),
		"empty substrings": func() *ber.Packet {
			p := ber.Encode(ber.ClassContext, ber.TypeConstructed, tagFilterSubstrings, nil, "")
			p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "uid", ""))
			p.AppendChild(ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, ""))
			return p
		}(),
		"present constructed": ber.Encode(ber.ClassContext, ber.TypeConstructed, tagFilterPresent, nil, ""),
		"unknown tag":         ber.Encode(ber.ClassContext, ber.TypeConstructed, 12, nil, ""),
	} {
		wire, err := parseElement(p.Bytes(), maxBERElements, maxBERDepth)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := decodeFilter(wire); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// TestDNNormShortcut: the normalized form dnNorm gives a member or
// memberOf value without parsing it is the one normalizeDN gives, for
// random names over the characters it accepts (and "" for any other),
// under base DNs written in several ways.
func TestDNNormShortcut(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 14))
	const alphabet = "aZ09._-@ Éé,+\\\"#;<>=*()\x00"
	for _, base := range []string{testBase, "DC=Example, DC=Test", "o=Big Corp,c=US", "ou=A  B,dc=x"} {
		tr, err := newTree(base, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 5000 {
			var b strings.Builder
			for range 1 + r.IntN(12) {
				if r.IntN(3) == 0 {
					b.WriteString(string([]rune(alphabet)[r.IntN(len([]rune(alphabet)))]))
				} else {
					b.WriteByte(alphabet[r.IntN(9)])
				}
			}
			name := b.String()
			for _, tc := range []struct{ typ, dn, ctr string }{
				{"uid", tr.userDN(name), tr.usersNDN},
				{"cn", tr.groupDN(name), tr.groupsNDN},
			} {
				got := dnNorm(tc.typ, name, tc.ctr)
				want, err := normalizeDN(tc.dn)
				safe := strings.Trim(name, "aZ09._-@ ") == ""
				switch {
				case safe && (err != nil || got != want):
					t.Fatalf("%q under %q: dnNorm %q, normalizeDN %q (%v)", name, base, got, want, err)
				case !safe && got != "":
					t.Fatalf("%q: dnNorm %q, want \"\" for a name it does not vouch for", name, got)
				}
			}
		}
	}
}

// TestMatchShortcuts: the matching shortcuts (member and memberUid
// answered by looking one member up, member and memberOf compared by
// their known normalized DN) give what reading and normalizing every
// value gives (tree.reference), on the real store: active, suspended
// and non-members, other case, stray spaces, DNs under other containers,
// unknown users, inside AND, OR and NOT.
func TestMatchShortcuts(t *testing.T) {
	st := openTestStore(t)
	mk := func(name string, state store.State) *store.User {
		u, err := st.CreateUser(&store.User{Username: name, Email: name + "@example.test", State: state, DelegatedAuthority: store.AuthorityAD})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	alice, bob, carol := mk("alice", store.StateActive), mk("Bob.B", store.StateActive), mk("carol", store.StateSuspended)
	mk("dave", store.StateActive)
	var groups []*store.Group
	for _, name := range []string{"staff", "Domain Users", "empty"} {
		g, err := st.CreateGroup(&store.Group{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	for _, m := range []struct {
		g int
		u *store.User
	}{{0, alice}, {0, bob}, {0, carol}, {1, bob}, {1, carol}} {
		if err := st.AddMember(groups[m.g].ID, m.u.ID); err != nil {
			t.Fatal(err)
		}
	}
	fast, _ := newTree(testBase, 0)
	ref, _ := newTree(testBase, 0)
	ref.reference = true
	users, _, err := st.ListUsers("", 100)
	if err != nil {
		t.Fatal(err)
	}
	var filters []string
	for _, v := range []string{"alice", "ALICE", " alice ", "Bob.B", "bob.b", "carol", "dave", "nobody", "al*ce", "a b", ""} {
		filters = append(filters, "(memberUid="+ldap.EscapeFilter(v)+")",
			"(member=uid="+ldap.EscapeFilter(v)+",ou=users,"+testBase+")")
	}
	filters = append(filters,
		"(member=UID=Alice, OU=Users, DC=Example, DC=Test)",
		"(member=uid=alice,ou=groups,"+testBase+")",
		"(member=uid=alice+cn=x,ou=users,"+testBase+")",
		"(member=cn=alice,ou=users,"+testBase+")",
		"(member=uid=alice,"+testBase+")",
		"(member=not a dn)",
		"(memberOf=cn=staff,ou=groups,"+testBase+")",
		"(memberOf=CN=Domain  Users , OU=Groups,DC=example,DC=test)",
		"(memberOf=cn=empty,ou=groups,"+testBase+")",
		"(memberOf=cn=staff,ou=users,"+testBase+")",
		"(|(memberUid=alice)(memberUid=carol))",
		"(&(objectClass=posixGroup)(!(memberUid=bob.b)))",
		"(memberUid~=alice)",
	)
	for _, fs := range filters {
		f, err := compileFilter(t, fs)
		if err != nil {
			t.Fatalf("%s: %v", fs, err)
		}
		need := f.attrs()
		for _, g := range groups {
			got, want := f.eval(fast.renderGroup(g, st, need)), f.eval(ref.renderGroup(g, st, allAttrs))
			if got != want {
				t.Errorf("%s on group %s: %v, reading every value %v", fs, g.Name, got, want)
			}
		}
		for _, u := range users {
			got, want := f.eval(fast.renderUser(u, st, need)), f.eval(ref.renderUser(u, st, allAttrs))
			if got != want {
				t.Errorf("%s on user %s: %v, reading every value %v", fs, u.Username, got, want)
			}
		}
	}
}
