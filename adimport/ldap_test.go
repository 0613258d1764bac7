package adimport

import (
	"errors"
	"fmt"
	"testing"

	ldap "github.com/go-ldap/ldap/v3"
)

func dns(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("CN=u%d,CN=Users,DC=example,DC=test", i))
	}
	return out
}

// fakeRanges answers bounded member;range=LO-HI requests for a group of n
// members the way a DC does: at most maxVal values, the last slice named
// LO-*, and a window past the end answered with no member attribute.
func fakeRanges(t *testing.T, n, maxVal int, calls *int) fetchFunc {
	return func(dn, attr string) (*ldap.Entry, error) {
		*calls++
		var lo, hi int
		if _, err := fmt.Sscanf(attr, "member;range=%d-%d", &lo, &hi); err != nil || hi < lo {
			t.Fatalf("unexpected request %q (want a bounded window)", attr)
		}
		if lo >= n {
			return ldap.NewEntry(dn, nil), nil
		}
		hi = min(hi, lo+maxVal-1)
		name := fmt.Sprintf("member;range=%d-%d", lo, hi)
		if hi >= n-1 {
			hi, name = n-1, fmt.Sprintf("member;range=%d-*", lo)
		}
		return ldap.NewEntry(dn, map[string][]string{name: dns(lo, hi)}), nil
	}
}

// TestRangedMembersADShape: AD's answer for a big group is an empty
// "member" plus "member;range=0-1499"; that means "fetch more", never "no
// members".
func TestRangedMembersADShape(t *testing.T) {
	for _, tc := range []struct {
		name          string
		n, maxVal     int
		first         int // values in the first slice (member;range=0-<first-1>)
		wantExtraRead int
	}{
		{"1601 members, one more slice", 1601, 1500, 1500, 1},
		{"4000 members, two more slices", 4000, 1500, 1500, 2},
		// A multiple of the window: the DC may name the first slice 0-1499
		// and answer the next window with nothing.
		{"exactly 1500, then an empty window", 1500, 1500, 1500, 1},
		// A DC whose MaxValRange is below the window asked for.
		{"MaxValRange 1000", 2500, 1000, 1000, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &ldap.Entry{DN: "CN=big,DC=example,DC=test", Attributes: []*ldap.EntryAttribute{
				{Name: "member", Values: nil},
				{Name: fmt.Sprintf("member;range=0-%d", tc.first-1), Values: dns(0, tc.first-1)},
			}}
			calls := 0
			got, err := completeMembers(e, fakeRanges(t, tc.n, tc.maxVal, &calls))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n || calls != tc.wantExtraRead || got[tc.n-1] != dns(tc.n-1, tc.n-1)[0] {
				t.Fatalf("got %d members in %d extra reads, want %d in %d", len(got), calls, tc.n, tc.wantExtraRead)
			}
			seen := map[string]bool{}
			for _, m := range got {
				if seen[m] {
					t.Fatalf("duplicate %s", m)
				}
				seen[m] = true
			}
		})
	}
}

func TestRangedMembersSmallAndLastSlice(t *testing.T) {
	never := func(dn, attr string) (*ldap.Entry, error) {
		t.Fatalf("no further read expected, got %s", attr)
		return nil, nil
	}
	// A small group: plain member, complete.
	e := ldap.NewEntry("CN=g", map[string][]string{"member": dns(0, 2)})
	if got, err := completeMembers(e, never); err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	// Samba's answer to member;range=0-*: one slice ending in *.
	e = ldap.NewEntry("CN=g", map[string][]string{"member;range=0-*": dns(0, 9)})
	if got, err := completeMembers(e, never); err != nil || len(got) != 10 {
		t.Fatalf("%v %v", got, err)
	}
	// A genuinely empty group.
	if got, err := completeMembers(ldap.NewEntry("CN=g", nil), never); err != nil || len(got) != 0 {
		t.Fatalf("%v %v", got, err)
	}
}

// A slice that cannot be read fails the read: a group is never mirrored
// with part of its members.
func TestRangedMembersFailureIsAnError(t *testing.T) {
	e := &ldap.Entry{DN: "CN=big", Attributes: []*ldap.EntryAttribute{{Name: "member"}, {Name: "member;range=0-1499", Values: dns(0, 1499)}}}
	boom := func(dn, attr string) (*ldap.Entry, error) { return nil, errors.New("busy") }
	if _, err := completeMembers(e, boom); err == nil {
		t.Fatal("a failed slice must fail the read")
	}
	noRange := func(dn, attr string) (*ldap.Entry, error) {
		return ldap.NewEntry(dn, map[string][]string{"member": dns(0, 9)}), nil
	}
	if _, err := completeMembers(e, noRange); err == nil {
		t.Fatal("an answer with a plain member attribute instead of a range must fail the read")
	}
	jump := func(dn, attr string) (*ldap.Entry, error) {
		return ldap.NewEntry(dn, map[string][]string{"member;range=3000-*": dns(3000, 3001)}), nil
	}
	if _, err := completeMembers(e, jump); err == nil {
		t.Fatal("a slice that does not start where asked must fail the read")
	}
}

func TestParseRangeAndExpiry(t *testing.T) {
	for _, tc := range []struct {
		in       string
		lo, hi   int
		last, ok bool
	}{{"member;range=0-1499", 0, 1499, false, true}, {"Member;Range=1500-*", 1500, 0, true, true}, {"member", 0, 0, false, false}, {"member;range=x-1", 0, 0, false, false}} {
		lo, hi, last, ok := parseRange(tc.in)
		if lo != tc.lo || hi != tc.hi || last != tc.last || ok != tc.ok {
			t.Errorf("%s: %d %d %v %v", tc.in, lo, hi, last, ok)
		}
	}
	if guidString([]byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 1, 2, 3, 4, 5, 6, 7, 8}) != "12345678-1234-5678-0102-030405060708" {
		t.Error("guid")
	}
}

// FuzzCompleteMembers: whatever range names a DC sends, the read ends,
// never panics, and a ranged attribute with values is never "no members".
func FuzzCompleteMembers(f *testing.F) {
	f.Add("member;range=0-1499", "member;range=1500-*")
	f.Add("member;range=0-*", "")
	f.Add("member;range=5-2", "member;range=0-0")
	f.Add("member;range=0-9223372036854775807", "member;range=-9223372036854775808-*")
	f.Fuzz(func(t *testing.T, first, next string) {
		if lo, hi, last, ok := parseRange(first); ok && !last && hi < lo {
			t.Fatalf("%q parsed as %d-%d", first, lo, hi)
		}
		e := &ldap.Entry{DN: "CN=g", Attributes: []*ldap.EntryAttribute{{Name: "member"}, {Name: first, Values: []string{"CN=a"}}}}
		// The fake always answers with the same range name, so the read
		// must end within two fetches: the second cannot start where the
		// first ended (or the first ended the list, or was plain, or
		// empty). No cutoff in the fake: a loop that does not end fails.
		calls := 0
		got, err := completeMembers(e, func(dn, attr string) (*ldap.Entry, error) {
			calls++
			if calls > 2 {
				t.Fatalf("%q then %q: fetch %d, the read does not end", first, next, calls)
			}
			return &ldap.Entry{DN: dn, Attributes: []*ldap.EntryAttribute{{Name: next, Values: []string{fmt.Sprintf("CN=m%d", calls)}}}}, nil
		})
		if _, _, _, ok := parseRange(first); ok && err == nil && len(got) == 0 {
			t.Fatalf("%q with a value read as no members", first)
		}
	})
}
