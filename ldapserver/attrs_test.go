package ldapserver

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatewayd/gatewayd/store"
)

// SPEC 2.1's optional attributes on user entries, and the password's age
// for the shadow password policy of SSSD and nslcd.

// aliceAttrs are the gateway attributes the attribute tests give alice.
var aliceAttrs = map[string]string{
	"title":           "Staff  Engineer",
	"department":      "R&D",
	"company":         "Example Corp",
	"location":        "Berlin",
	"employeeType":    "contractor",
	"telephoneNumber": "+49 30 1234-567",
	"mobile":          "+49 170 000 1111",
	"postalAddress":   "Main Street 1\nfloor $3\n\n10115 Berlin\\Mitte",
	"manager":         "BOB", // the manager's username, any case
	"loginShell":      "/bin/zsh",
	"ad_domain":       "corp",       // gateway-only: never rendered
	"costCenter":      "cc-42",      // free-form: not rendered
	"homeDirectory":   "/srv/alice", // rendered as homeDirectory
}

func TestUserAttributesRendered(t *testing.T) {
	ts := startServer(t, false, nil)
	ts.dir.update("alice", func(u *store.User) { u.Attributes = aliceAttrs })
	ts.dir.update("user01", func(u *store.User) { u.Attributes = map[string]string{"manager": "nobody", "title": "  "} })
	ts.dir.update("user02", func(u *store.User) { u.Attributes = map[string]string{"manager": "carol"} }) // suspended manager
	svc := ts.bind(t, svcDN, svcPW)

	e := readEntry(t, svc, aliceDN)
	for _, tc := range []struct {
		attr string
		want []string
	}{
		{"title", []string{"Staff  Engineer"}},
		{"departmentNumber", []string{"R&D"}},
		{"o", []string{"Example Corp"}},
		{"l", []string{"Berlin"}},
		{"employeeType", []string{"contractor"}},
		{"telephoneNumber", []string{"+49 30 1234-567"}},
		{"mobile", []string{"+49 170 000 1111"}},
		// RFC 4517 Postal Address: '$' between lines, '$' and '\' escaped.
		{"postalAddress", []string{`Main Street 1$floor \243$10115 Berlin\5CMitte`}},
		{"manager", []string{bobDN}},
		{"loginShell", []string{"/bin/zsh"}},
		{"homeDirectory", []string{"/srv/alice"}},
		{"ad_domain", nil},
		{"costCenter", nil},
		{"department", nil}, // rendered as departmentNumber only
		{"company", nil},
		{"location", nil},
	} {
		if got := e.GetAttributeValues(tc.attr); !slices.Equal(got, tc.want) {
			t.Errorf("alice %s = %q, want %q", tc.attr, got, tc.want)
		}
	}
	// A manager who does not exist is left out; so is a blank value.
	e = readEntry(t, svc, userDNOf("user01"))
	for _, a := range []string{"manager", "title"} {
		if v := e.GetAttributeValues(a); len(v) != 0 {
			t.Errorf("user01 %s = %q", a, v)
		}
	}
	// An inactive manager is still the manager (the entry stays).
	if got := readEntry(t, svc, userDNOf("user02"), "manager").GetAttributeValues("manager"); !slices.Equal(got, []string{userDNOf("carol")}) {
		t.Errorf("user02 manager = %q", got)
	}
	// By name and by OID.
	r, err := search(t, svc, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)", "2.5.4.12", "0.9.2342.19200300.100.1.10")
	wantCode(t, err, 0)
	if got := r.Entries[0].Attributes; len(got) != 2 || got[0].Name != "title" || got[1].Name != "manager" {
		t.Errorf("by OID: %+v", got)
	}

	// The filter evaluator, with each attribute's matching rules.
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"(title=staff engineer)", []string{aliceDN}}, // caseIgnore, spaces folded
		{"(title=*ENGINEER)", []string{aliceDN}},
		{"(title=*)", []string{aliceDN}},
		{"(title>=staff)", []string{aliceDN}},
		{"(departmentNumber=r&d)", []string{aliceDN}},
		{"(o=example*)", []string{aliceDN}},
		{"(l=berlin)", []string{aliceDN}},
		{"(localityName=Berlin)", []string{aliceDN}},
		{"(employeeType=Contractor)", []string{aliceDN}},
		// telephoneNumberMatch: spaces and hyphens do not count.
		{"(telephoneNumber=+4930 1234567)", []string{aliceDN}},
		{"(telephoneNumber=*1234567)", []string{aliceDN}},
		{"(mobile=+491700001111)", []string{aliceDN}},
		{"(mobileTelephoneNumber=+49*1111)", []string{aliceDN}},
		{"(telephoneNumber>=+49)", nil}, // no ordering rule: Undefined
		{"(postalAddress=main street 1$FLOOR \\5c243$10115 berlin\\5c5cmitte)", []string{aliceDN}},
		{"(postalAddress=*berlin*)", []string{aliceDN}},
		// manager is a DN: distinguishedNameMatch, whatever the case and spacing.
		{"(manager=" + bobDN + ")", []string{aliceDN}},
		{"(manager=UID=Bob, OU=Users, DC=Example, DC=Test)", []string{aliceDN}},
		{"(manager=uid=bob,ou=users,dc=other)", nil},
		{"(manager=not a dn)", nil},
		{"(manager=*)", []string{aliceDN, userDNOf("user02")}},
		{"(manager=uid=b*)", nil}, // no substrings rule for DNs
		{"(&(objectClass=inetOrgPerson)(manager=" + userDNOf("carol") + "))", []string{userDNOf("user02")}},
		{"(ad_domain=corp)", nil},
		{"(costCenter=*)", nil},
	} {
		got := searchDNs(t, svc, testBase, tc.filter)
		want := make([]string, len(tc.want))
		for i, w := range tc.want {
			want[i] = strings.ToLower(w)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", tc.filter, got, want)
		}
	}

	// With hide_inactive a hidden manager is not referenced.
	ts2 := startServer(t, false, func(c *Config) { c.HideInactive = true })
	ts2.dir.update("user02", func(u *store.User) { u.Attributes = map[string]string{"manager": "carol"} })
	ts2.dir.update("user03", func(u *store.User) { u.Attributes = map[string]string{"manager": "alice"} })
	svc2 := ts2.bind(t, svcDN, svcPW)
	if v := readEntry(t, svc2, userDNOf("user02")).GetAttributeValues("manager"); len(v) != 0 {
		t.Errorf("hide_inactive: user02 manager = %q", v)
	}
	if v := readEntry(t, svc2, userDNOf("user03")).GetAttributeValues("manager"); !slices.Equal(v, []string{aliceDN}) {
		t.Errorf("hide_inactive: user03 manager = %q", v)
	}
}

func TestPostalAddressAndTelephonePrep(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "",
		"One line":                "One line",
		"a\r\nb\n\n  c  ":         "a$b$c",
		`$5 \ off`:                `\245 \5C off`,
		"Main St 1, 10115 Berlin": "Main St 1, 10115 Berlin",
	} {
		if got := postalAddress(in); got != want {
			t.Errorf("postalAddress(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"+1 (555) 010-0199": "+1(555)0100199",
		"EXT 12":            "ext12",
	} {
		if got := prepTel(in); got != want {
			t.Errorf("prepTel(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestShadowPasswordAge: shadowLastChange (days since 1970) on every user
// with a local password whose change time is known, shadowMax when the
// policy expires passwords, both under objectClass shadowAccount;
// pwdChangedTime as an operational attribute.
func TestShadowPasswordAge(t *testing.T) {
	changed := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	day := strconv.FormatInt(changed.Unix()/86400, 10)
	for _, tc := range []struct {
		name    string
		maxAge  time.Duration
		user    string
		mod     func(*store.User)
		last    string // "": no shadow attributes
		max     string
		off     bool // rendered inactive (shadowExpire 1 and the rest)
		canBind bool
	}{
		{name: "no max age", user: "alice", last: day, canBind: true},
		{name: "90 days", maxAge: 90 * 24 * time.Hour, user: "alice", last: day, max: "90", canBind: true},
		{name: "36 hours rounds up", maxAge: 36 * time.Hour, user: "alice", last: day, max: "2", canBind: true},
		{name: "one second", maxAge: time.Second, user: "alice", last: day, max: "1", off: true},
		{name: "aged out", maxAge: time.Minute, user: "alice", last: day, max: "1", off: true},
		{name: "recorded expired", user: "alice", mod: func(u *store.User) { u.PasswordStatus = store.PasswordExpired }, last: day, off: true},
		{name: "suspended keeps its age", maxAge: 90 * 24 * time.Hour, user: "carol", last: day, max: "90", off: true},
		{name: "AD authority", maxAge: time.Hour, user: "dave"},
		{name: "delegated to AD", maxAge: time.Hour, user: "alice", mod: func(u *store.User) { u.DelegatedAuthority = store.AuthorityAD }, canBind: true},
		{name: "change time unknown", maxAge: time.Second, user: "alice", mod: func(u *store.User) { u.PasswordChangedAt = time.Time{} }, canBind: true},
		{name: "no password", user: "alice", mod: func(u *store.User) { u.PasswordHash = ""; u.PasswordStatus = store.PasswordPending }, off: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, false, nil)
			ts.auth.maxAge = tc.maxAge
			ts.dir.update(tc.user, func(u *store.User) {
				u.PasswordChangedAt = changed
				if tc.mod != nil {
					tc.mod(u)
				}
			})
			svc := ts.bind(t, svcDN, svcPW)
			dn := userDNOf(tc.user)
			e := readEntry(t, svc, dn)
			if got := e.GetAttributeValue("shadowLastChange"); got != tc.last {
				t.Errorf("shadowLastChange = %q, want %q", got, tc.last)
			}
			if got := e.GetAttributeValue("shadowMax"); got != tc.max {
				t.Errorf("shadowMax = %q, want %q", got, tc.max)
			}
			wantPCT := ""
			if tc.last != "" {
				wantPCT = changed.UTC().Format("20060102150405Z")
			}
			if got := e.GetAttributeValue("pwdChangedTime"); got != wantPCT {
				t.Errorf("pwdChangedTime = %q, want %q", got, wantPCT)
			}
			wantDisabled(t, e, tc.off) // and shadowAccount iff inactive or an age is shown
			// pwdChangedTime is operational: not in "*".
			if v := readEntry(t, svc, dn, "*").GetAttributeValues("pwdChangedTime"); len(v) != 0 {
				t.Errorf("pwdChangedTime in *: %q", v)
			}
			// The filters SSSD and nslcd use, and the staff group's members.
			lower := strings.ToLower(dn)
			inShadow := slices.Contains(searchDNs(t, svc, testBase, "(&(objectClass=shadowAccount)(uid="+tc.user+"))"), lower)
			if inShadow != (tc.off || tc.last != "") {
				t.Errorf("(objectClass=shadowAccount) finds the user: %v", inShadow)
			}
			if tc.last != "" {
				if got := searchDNs(t, svc, testBase, "(&(shadowLastChange<="+day+")(shadowLastChange>="+day+"))"); !slices.Contains(got, lower) {
					t.Errorf("shadowLastChange range: %v", got)
				}
			}
			if hasMax := slices.Contains(searchDNs(t, svc, testBase, "(shadowMax=*)"), lower); hasMax != (tc.max != "") {
				t.Errorf("(shadowMax=*) finds the user: %v", hasMax)
			}
			if tc.user == "alice" {
				members := readEntry(t, svc, staffDN, "memberUid").GetAttributeValues("memberUid")
				if slices.Contains(members, "alice") == tc.off {
					t.Errorf("staff memberUid %q (alice inactive: %v)", members, tc.off)
				}
				err := ts.dial(t).Bind(aliceDN, alicePW)
				if tc.canBind {
					wantCode(t, err, 0)
				} else {
					wantCode(t, err, ldap.LDAPResultInvalidCredentials)
				}
			}
		})
	}
}

// TestAgedPasswordDropsBoundUser: a bound user whose password ages out
// meanwhile drops to anonymous at their next request.
func TestAgedPasswordDropsBoundUser(t *testing.T) {
	ts := startServer(t, false, nil)
	ts.auth.maxAge = time.Hour
	ts.dir.update("alice", func(u *store.User) { u.PasswordChangedAt = time.Now().Add(-30 * time.Minute) })
	c := ts.bind(t, aliceDN, alicePW)
	readEntry(t, c, aliceDN)
	ts.dir.update("alice", func(u *store.User) { u.PasswordChangedAt = time.Now().Add(-2 * time.Hour) })
	_, err := search(t, c, aliceDN, ldap.ScopeBaseObject, "(objectClass=*)")
	wantCode(t, err, ldap.LDAPResultInsufficientAccessRights)
}
