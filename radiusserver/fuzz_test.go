package radiusserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"
)

// FuzzHandlePacket feeds arbitrary datagrams from a known client to the
// packet path. lenient picks the client that does not require a
// Message-Authenticator; fixMA re-signs a packet that carries one, so
// that mutations get past the HMAC check and reach the deeper code.
//
// Invariants: no panic escapes (a recovered one fails the target); an
// answer is a well-formed Access-Accept/Reject of at most 4096 bytes, for
// the request's identifier, with the Message-Authenticator first and both
// authenticators right; and no password work happens for a packet from
// the strict client without a valid Message-Authenticator.
//
// Seeds: testdata/fuzz/FuzzHandlePacket (regenerate with
// RADIUS_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds).
func FuzzHandlePacket(f *testing.F) {
	auth := newFakeAuth()
	s, reg := newTestServer(f, unitConfig(), auth)
	f.Fuzz(func(t *testing.T, data []byte, lenient, fixMA bool) {
		src, sec := srcNAS, testSecret
		if lenient {
			src, sec = srcLenient, lenientSecret
		}
		if fixMA {
			data = append([]byte(nil), data...)
			signRequest(data, []byte(sec))
		}
		s.dedup = newDedupCache(dedupTTL, 64) // each input on its own
		panics := dropped(reg, s, dropPanic)
		logins := auth.logins.Load()
		resp := s.handlePacket(context.Background(), src, data, time.Now())
		if dropped(reg, s, dropPanic) != panics {
			t.Fatal("the packet path panicked")
		}
		if !lenient && auth.logins.Load() != logins {
			fr, err := preparse(data)
			if err != nil || !verifyMA(fr, newMACKey([]byte(sec))) {
				t.Fatal("password work without a valid Message-Authenticator")
			}
		}
		if resp == nil {
			return
		}
		if len(resp) > maxPacketSize {
			t.Fatalf("answer of %d bytes", len(resp))
		}
		if c := radius.Code(resp[0]); c != radius.CodeAccessAccept && c != radius.CodeAccessReject {
			t.Fatalf("answer code %v", c)
		}
		if resp[1] != data[1] {
			t.Fatalf("answer identifier %d for request %d", resp[1], data[1])
		}
		if resp[20] != byte(rfc2869.MessageAuthenticator_Type) {
			t.Fatal("Message-Authenticator is not first")
		}
		var ra [16]byte
		copy(ra[:], data[4:20])
		if !verifyResponse(resp, ra, []byte(sec)) {
			t.Fatal("answer does not verify")
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpus. It only runs
// when RADIUS_WRITE_FUZZ_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("RADIUS_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set RADIUS_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzHandlePacket")
	}
	type seed struct {
		name          string
		data          []byte
		lenient, fixM bool
	}
	enc := func(r request) []byte { b, _ := r.encode(t); return b }
	var seeds []seed
	add := func(name string, b []byte, lenient, fix bool) {
		seeds = append(seeds, seed{name, b, lenient, fix})
	}
	add("pap-accept", enc(request{id: 1, user: "alice", password: "alicepass"}), false, false)
	add("pap-reject", enc(request{id: 2, user: "alice", password: "nope"}), false, false)
	add("pap-long-password", enc(request{id: 3, user: "dave", password: "a password of exactly thirty-two"}), false, false)
	add("pap-lenient-no-ma", enc(request{id: 4, user: "bob", password: "bobpass", noMA: true, secret: lenientSecret}), true, false)
	add("pap-lenient-with-ma", enc(request{id: 5, user: "bob", password: "bobpass", secret: lenientSecret}), true, false)
	add("pap-bad-ma-fixed", enc(request{id: 6, user: "alice", password: "alicepass", badMA: true}), false, true)
	add("status-server", enc(request{id: 7, code: radius.CodeStatusServer}), false, false)
	add("proxy-state", enc(request{id: 8, user: "alice", password: "alicepass", extra: withProxyState("one", "two")}), false, false)
	add("chap", enc(request{id: 9, user: "alice", extra: func(p *radius.Packet) {
		_ = rfc2865.CHAPPassword_Set(p, []byte("0123456789abcdefg"))
	}}), false, false)
	add("mschapv2", enc(request{id: 10, user: "alice", extra: func(p *radius.Packet) {
		_ = microsoft.MSCHAPChallenge_Set(p, []byte("0123456789abcdef"))
		_ = microsoft.MSCHAP2Response_Set(p, make([]byte, 50))
	}}), false, false)
	add("eap", enc(request{id: 11, user: "alice", extra: func(p *radius.Packet) {
		_ = rfc2869.EAPMessage_Set(p, []byte{2, 0, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'})
	}}), false, false)
	add("accounting", enc(request{id: 12, code: radius.CodeAccountingRequest, user: "alice"}), false, false)
	add("bad-password-length", enc(request{id: 13, user: "alice", extra: func(p *radius.Packet) {
		p.Add(rfc2865.UserPassword_Type, radius.Attribute("0123456789abcdefg"))
	}}), false, true)
	add("no-user-name", enc(request{id: 14, password: "alicepass"}), false, false)
	add("short", []byte{1, 0, 0, 20, 1, 2, 3}, false, false)
	add("header-only", append([]byte{1, 15, 0, 20}, make([]byte, 16)...), true, false)
	add("attr-overrun", append(append([]byte{1, 16, 0, 24}, make([]byte, 16)...), 1, 9, 'a', 'b'), true, false)
	add("vendor-specific", enc(request{id: 17, user: "alice", password: "alicepass", extra: func(p *radius.Packet) {
		p.Add(rfc2865.VendorSpecific_Type, radius.Attribute{0, 0, 0x39, 0xe7, 1, 7, 'r', 'o', 'l', 'e', '!'})
	}}), false, false)

	dir := filepath.Join("testdata", "fuzz", "FuzzHandlePacket")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sd := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\nbool(%v)\n", sd.data, sd.lenient, sd.fixM)
		if err := os.WriteFile(filepath.Join(dir, sd.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParsePacket: for every datagram preparse accepts, parsePacket
// yields what layeh's radius.Parse does (code, identifier, authenticator,
// attributes in order), owns its bytes, and one attribute's value cannot
// be grown into the next.
func FuzzParsePacket(f *testing.F) {
	for _, r := range []request{{user: "alice", password: "alicepass"}, {code: radius.CodeStatusServer},
		{user: "bob", password: "x", extra: withProxyState("a", "bc")}} {
		b, _ := r.encode(f)
		f.Add(b)
	}
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := preparse(data)
		if err != nil {
			return
		}
		want, err := radius.Parse(fr.b, []byte(testSecret))
		if err != nil {
			t.Fatalf("preparse accepted what radius.Parse refuses: %v", err)
		}
		for _, sc := range []*packetScratch{nil, dirtyScratch(t)} {
			checkParsed(t, fr, want, sc)
		}
	})
}

// dirtyScratch is a scratch that has held a packet with more attributes
// than most inputs, so a reuse that kept anything of it shows.
func dirtyScratch(t *testing.T) *packetScratch {
	sc := new(packetScratch)
	b, _ := request{user: "carol", password: "carolpass", extra: withProxyState("p", "q", "r")}.encode(t)
	fr, err := preparse(b)
	if err != nil {
		t.Fatal(err)
	}
	parsePacket(fr, []byte(testSecret), sc)
	return sc
}

func checkParsed(t *testing.T, fr frame, want *radius.Packet, sc *packetScratch) {
	t.Helper()
	fr.b = append([]byte(nil), fr.b...) // cleared below; the caller's stays for the next call
	got := parsePacket(fr, []byte(testSecret), sc)
	if got.Code != want.Code || got.Identifier != want.Identifier || got.Authenticator != want.Authenticator ||
		len(got.Attributes) != len(want.Attributes) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i, a := range got.Attributes {
		w := want.Attributes[i]
		if a.Type != w.Type || string(a.Attribute) != string(w.Attribute) {
			t.Fatalf("attribute %d: got %d %x, want %d %x", i, a.Type, a.Attribute, w.Type, w.Attribute)
		}
	}
	clear(fr.b) // the caller reuses its buffer
	for i, a := range got.Attributes {
		if string(a.Attribute) != string(want.Attributes[i].Attribute) {
			t.Fatalf("attribute %d shares the read buffer", i)
		}
		_ = append(a.Attribute, 0xff)
		if i+1 < len(got.Attributes) && string(got.Attributes[i+1].Attribute) != string(want.Attributes[i+1].Attribute) {
			t.Fatalf("growing attribute %d overwrote the next", i)
		}
	}
	if sc != nil && len(got.Attributes) > 0 {
		grown := append(got.Attributes, &radius.AVP{Type: 1})
		if &grown[0] == &sc.attrs[0] {
			t.Fatal("appending to the packet's attributes wrote into the scratch's list")
		}
	}
}
