package eap

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
		typ  uint8
		data string
	}{
		{"identity", []byte{2, 1, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'}, true, TypeIdentity, "alice"},
		{"padding after Length is legal", []byte{2, 1, 0, 6, 1, 'a', 'x', 'x', 'x'}, true, TypeIdentity, "a"},
		{"Length longer than received", []byte{2, 1, 0, 11, 1, 'a', 'l', 'i', 'c', 'e'}, false, 0, ""},
		{"Length below header", []byte{2, 1, 0, 3, 1}, false, 0, ""},
		{"short", []byte{2, 1, 0}, false, 0, ""},
		{"response without type", []byte{2, 1, 0, 4}, false, 0, ""},
		{"success", []byte{3, 1, 0, 4}, true, 0, ""},
		{"failure with junk", []byte{4, 1, 0, 4, 9, 9}, true, 0, ""},
		{"unknown code", []byte{9, 1, 0, 4}, false, 0, ""},
		{"too large", append([]byte{2, 1, 0x10, 0x01, 1}, make([]byte, 4097)...), false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (p.Type != tc.typ || string(p.Data) != tc.data) {
				t.Fatalf("got %+v", p)
			}
		})
	}
	p := Packet{Code: CodeRequest, ID: 9, Type: TypeTTLS, Data: []byte{flagStart}}
	q, err := Parse(p.Marshal())
	if err != nil || q.Code != p.Code || q.ID != 9 || q.Type != TypeTTLS || !bytes.Equal(q.Data, p.Data) {
		t.Fatalf("round trip: %+v %v", q, err)
	}
	if !bytes.Equal(Failure(5), []byte{4, 5, 0, 4}) || !bytes.Equal(Success(6), []byte{3, 6, 0, 4}) {
		t.Fatal("success/failure encoding")
	}
}

func withLen(flags uint8, total uint32, data []byte) []byte {
	b := []byte{flags}
	b = binary.BigEndian.AppendUint32(b, total)
	return append(b, data...)
}

func TestReassembly(t *testing.T) {
	frag := func(n int) []byte { return bytes.Repeat([]byte{0xab}, n) }
	for _, tc := range []struct {
		name  string
		frags [][]byte
		want  int // reassembled length, -1 error
	}{
		{"single, no L", [][]byte{append([]byte{0}, frag(50)...)}, 50},
		{"single with L", [][]byte{withLen(flagLength, 50, frag(50))}, 50},
		{"three fragments", [][]byte{withLen(flagLength|flagMore, 30, frag(10)), append([]byte{flagMore}, frag(10)...), append([]byte{0}, frag(10)...)}, 30},
		{"L repeated on every fragment", [][]byte{withLen(flagLength|flagMore, 20, frag(10)), withLen(flagLength, 20, frag(10))}, 20},
		{"L changes", [][]byte{withLen(flagLength|flagMore, 20, frag(10)), withLen(flagLength, 21, frag(10))}, -1},
		{"overrun of L", [][]byte{withLen(flagLength|flagMore, 15, frag(10)), append([]byte{0}, frag(10)...)}, -1},
		{"short of L", [][]byte{withLen(flagLength|flagMore, 30, frag(10)), append([]byte{0}, frag(10)...)}, -1},
		{"L over 64 KiB", [][]byte{withLen(flagLength|flagMore, MaxMessage+1, frag(10))}, -1},
		{"L below the fragment", [][]byte{withLen(flagLength, 5, frag(10))}, -1},
		{"L truncated", [][]byte{{flagLength, 0, 0}}, -1},
		{"no flags octet", [][]byte{{}}, -1},
		{"no L, endless M past 64 KiB", func() [][]byte {
			var fs [][]byte
			for range 70 {
				fs = append(fs, append([]byte{flagMore}, frag(1000)...))
			}
			return fs
		}(), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r reassembler
			r.reset()
			got := -1
			for i, f := range tc.frags {
				td, err := parseTLSData(f)
				if err != nil {
					break
				}
				done, err := r.add(td)
				if err != nil {
					break
				}
				if done {
					if i != len(tc.frags)-1 {
						t.Fatalf("done after fragment %d of %d", i+1, len(tc.frags))
					}
					got = len(r.buf)
				}
			}
			if got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestFragmenter(t *testing.T) {
	for _, tc := range []struct{ msg, size, wantFrags int }{
		{100, 1000, 1}, {990, 1000, 1}, {991, 1000, 2}, {4500, 300, 16}, {10, 10, 1}, // size clamps to 64
	} {
		msg := make([]byte, tc.msg)
		for i := range msg {
			msg[i] = byte(i)
		}
		var f fragmenter
		f.load(msg)
		var r reassembler
		r.reset()
		n := 0
		for f.pending() {
			d := f.next(0, tc.size)
			n++
			if 5+len(d) > max(tc.size, minFragment) {
				t.Fatalf("fragment of %d bytes for size %d", 5+len(d), tc.size)
			}
			td, err := parseTLSData(d)
			if err != nil {
				t.Fatal(err)
			}
			if (n == 1 && tc.wantFrags > 1) != (td.flags&flagLength != 0) {
				t.Fatalf("fragment %d: L flag %v", n, td.flags&flagLength != 0)
			}
			done, err := r.add(td)
			if err != nil {
				t.Fatal(err)
			}
			if done != !f.pending() {
				t.Fatalf("fragment %d: done %v, pending %v", n, done, f.pending())
			}
		}
		if n != tc.wantFrags || !bytes.Equal(r.buf, msg) {
			t.Fatalf("%+v: %d fragments, equal %v", tc, n, bytes.Equal(r.buf, msg))
		}
	}
}

func TestAVPs(t *testing.T) {
	var b []byte
	b = AppendAVP(b, avpUserName, 0, true, []byte("alice"))
	b = AppendAVP(b, avpUserPassword, 0, true, []byte("0123456789abcdef"))
	b = AppendAVP(b, 77, 311, false, []byte{1, 2, 3})
	avps, err := ParseAVPs(b)
	if err != nil || len(avps) != 3 {
		t.Fatalf("%v %d", err, len(avps))
	}
	if string(avps[0].Data) != "alice" || !avps[0].Mandatory() || string(avps[1].Data) != "0123456789abcdef" ||
		avps[2].VendorID != 311 || !bytes.Equal(avps[2].Data, []byte{1, 2, 3}) || avps[2].Mandatory() {
		t.Fatalf("%+v", avps)
	}
	unpadded := AppendAVP(nil, avpUserName, 0, true, []byte("bob"))[:11]
	if a, err := ParseAVPs(unpadded); err != nil || string(a[0].Data) != "bob" {
		t.Fatalf("last AVP without padding: %v", err)
	}
	hdr := func(l int, flags byte) []byte { return []byte{0, 0, 0, 1, flags, byte(l >> 16), byte(l >> 8), byte(l)} }
	for name, in := range map[string][]byte{
		"truncated header":      {0, 0, 0, 1, 0x40},
		"length below header":   hdr(7, 0x40),
		"length past the end":   append(hdr(20, 0x40), 1, 2, 3),
		"vendor header cut":     append(hdr(12, 0xc0), 0, 0),
		"vendor length too low": append(hdr(10, 0xc0), 0, 0, 0, 1),
	} {
		if _, err := ParseAVPs(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTTLSLogin(t *testing.T) {
	for _, tc := range []struct {
		name      string
		user, pw  string
		mtu, frag int
		want      Outcome
	}{
		{"accept", "alice", "right", 0, 0, Accept},
		{"wrong password", "alice", "wrong", 0, 0, Reject},
		{"unknown inner user", "mallory", "right", 0, 0, Reject},
		{"small Framed-MTU and small peer fragments", "alice", "right", 200, 120, Accept},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pool := testServer(t, Config{})
			c := newSupplicant(t, s, pool, tc.user, tc.pw)
			c.outer = "alice" // the outer name is never trusted
			c.mtu, c.frag = tc.mtu, tc.frag
			r := c.run()
			if r.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", r.Outcome, r.Reason, tc.want)
			}
			p, err := Parse(r.EAP)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == Accept {
				if p.Code != CodeSuccess || len(r.MSK) != 64 || !bytes.Equal(r.MSK, c.msk) || r.Method != MethodTTLSPAP || r.Identity != tc.user {
					t.Fatalf("accept: code %d, msk match %v, %+v", p.Code, bytes.Equal(r.MSK, c.msk), r)
				}
			} else if p.Code != CodeFailure {
				t.Fatalf("reject without EAP-Failure: %x", r.EAP)
			}
			if ho, run := s.Sessions(); ho != 0 || run != 0 {
				t.Fatalf("sessions left: %d half-open, %d running", ho, run)
			}
		})
	}
}

func TestTLSPolicy(t *testing.T) {
	s, pool := testServer(t, Config{})
	c := newSupplicant(t, s, pool, "alice", "right")
	c.tlsConf.MinVersion, c.tlsConf.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if r := c.run(); r.Outcome != Reject || r.Reason != "tls_failed" {
		t.Fatalf("TLS 1.1 supplicant: %v %s", r.Outcome, r.Reason)
	}
	// Capped at 1.2 by default: a 1.3-capable client gets 1.2.
	c = newSupplicant(t, s, pool, "alice", "right")
	c.tlsConf.MaxVersion = tls.VersionTLS13
	if r := c.run(); r.Outcome != Accept {
		t.Fatalf("TLS 1.3-capable supplicant: %v %s", r.Outcome, r.Reason)
	}
	if _, cs := c.eng.state(); cs.Version != tls.VersionTLS12 {
		t.Fatalf("negotiated %x", cs.Version)
	}
}

func identity(s *Server, id uint8, name string) Response {
	return s.Handle(t0ctx, Request{EAP: Packet{Code: CodeResponse, ID: id, Type: TypeIdentity, Data: []byte(name)}.Marshal()})
}

func TestProtocolErrors(t *testing.T) {
	s, _ := testServer(t, Config{})
	// EAP-Start: an Identity request, no session.
	if r := s.Handle(t0ctx, Request{}); r.Outcome != Challenge || r.State != nil || !bytes.Equal(r.EAP, []byte{1, 0, 0, 5, 1}) {
		t.Fatalf("EAP-Start: %+v", r)
	}
	start := identity(s, 1, "anon")
	p, _ := Parse(start.EAP)
	// The Start's State is a cookie: nothing is stored until TLS data.
	if start.Outcome != Challenge || len(start.State) != cookieHeader+len("anon")+cookieMAC || p.Type != TypeTTLS || p.Data[0] != flagStart || p.ID != 2 {
		t.Fatalf("start: %+v", start)
	}
	if ho, run := s.Sessions(); ho != 0 || run != 0 {
		t.Fatalf("a Start stored a session: half-open %d running %d", ho, run)
	}
	sendAs := func(state []byte, id uint8, typ uint8, data []byte) Response {
		return s.Handle(t0ctx, Request{State: state, EAP: Packet{Code: CodeResponse, ID: id, Type: typ, Data: data}.Marshal()})
	}
	send := func(id uint8, typ uint8, data []byte) Response { return sendAs(start.State, id, typ, data) }
	if r := send(9, TypeTTLS, []byte{0}); r.Outcome != Reject || r.Reason != "unknown_session" {
		t.Fatalf("wrong EAP identifier on a Start: %+v", r)
	}
	tampered := bytes.Clone(start.State)
	tampered[cookieHeader] ^= 1 // the outer identity
	if r := sendAs(tampered, 2, TypeTTLS, []byte{0}); r.Outcome != Reject || r.Reason != "unknown_session" {
		t.Fatalf("tampered cookie: %+v", r)
	}
	// Another session, its ClientHello half received (first fragment).
	other := identity(s, 1, "anon2")
	if r := sendAs(other.State, 2, TypeTTLS, withLen(flagLength|flagMore, 2000, make([]byte, 100))); r.Outcome != Challenge {
		t.Fatalf("first fragment: %+v", r)
	}
	if ho, _ := s.Sessions(); ho != 1 {
		t.Fatalf("half-open sessions %d, want 1", ho)
	}
	// Malformed TLS mid-handshake ends that session only.
	if r := send(2, TypeTTLS, append([]byte{0}, bytes.Repeat([]byte{0x16, 3, 3, 0, 1}, 4)...)); r.Outcome != Reject || r.Reason != "tls_failed" {
		t.Fatalf("garbage TLS: %+v", r)
	}
	if r := send(3, TypeTTLS, []byte{0}); r.Outcome != Reject || r.Reason != "unknown_session" {
		t.Fatalf("session must be gone: %+v", r)
	}
	if r := send(2, TypeTTLS, []byte{0}); r.Outcome == Challenge {
		t.Fatalf("an ended session answered again: %+v", r)
	}
	if ho, _ := s.Sessions(); ho != 1 {
		t.Fatalf("the other session must stay: %d", ho)
	}
	if r := sendAs(other.State, 3, TypeTTLS, append([]byte{flagMore}, make([]byte, 100)...)); r.Outcome != Challenge {
		t.Fatalf("the other session's next fragment: %+v", r)
	}
	// NAK: to an enabled method (a new Start, still stateless), or none
	// in common.
	third := identity(s, 1, "anon3")
	r := sendAs(third.State, 2, TypeNAK, []byte{TypePEAP, TypeTTLS})
	if p, _ := Parse(r.EAP); r.Outcome != Challenge || p.Type != TypeTTLS || p.ID != 3 {
		t.Fatalf("NAK to TTLS: %+v", r)
	}
	r = sendAs(r.State, 3, TypeNAK, []byte{TypeMD5})
	if r.Outcome != Reject || r.Reason != "no_common_method" {
		t.Fatalf("NAK to MD5: %+v", r)
	}
	for name, req := range map[string]Request{
		"malformed":              {EAP: []byte{2, 1, 0, 99, 1}},
		"request not response":   {EAP: Packet{Code: CodeRequest, ID: 1, Type: TypeIdentity}.Marshal()},
		"no state, not identity": {EAP: Packet{Code: CodeResponse, ID: 1, Type: TypeTTLS, Data: []byte{0}}.Marshal()},
		"unknown state":          {State: []byte("gwnope"), EAP: Packet{Code: CodeResponse, ID: 1, Type: TypeTTLS, Data: []byte{0}}.Marshal()},
	} {
		if r := s.Handle(t0ctx, req); r.Outcome != Reject || !strings.HasPrefix(string(r.EAP), "\x04") {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

func TestSessionLimits(t *testing.T) {
	t.Run("idle expiry", func(t *testing.T) {
		s, pool := testServer(t, Config{SessionTimeout: 30 * time.Second})
		now := time.Now()
		s.now = func() time.Time { return now }
		start := identity(s, 1, "a")
		// A running session, idle past the timeout, goes too.
		c := newSupplicant(t, s, pool, "alice", "right")
		c.in.total = -1
		st := c.send(Packet{Code: CodeResponse, ID: 1, Type: TypeIdentity, Data: []byte("x")})
		c.state = st.State
		sp, _ := Parse(st.EAP)
		if r := c.answer(sp); r.Outcome != Challenge {
			t.Fatalf("ClientHello: %+v", r)
		}
		defer c.eng.close()
		if _, run := s.Sessions(); run != 1 {
			t.Fatalf("running %d", run)
		}
		now = now.Add(31 * time.Second)
		r := s.Handle(t0ctx, Request{State: start.State, EAP: Packet{Code: CodeResponse, ID: 2, Type: TypeTTLS, Data: []byte{0}}.Marshal()})
		if r.Outcome != Reject || r.Reason != "unknown_session" {
			t.Fatalf("expired session answered: %+v", r)
		}
		if ho, run := s.Sessions(); ho != 0 || run != 0 {
			t.Fatalf("expired sessions kept: half-open %d running %d", ho, run)
		}
	})
	t.Run("max rounds", func(t *testing.T) {
		s, _ := testServer(t, Config{MaxRounds: 3})
		start := identity(s, 1, "a")
		id := uint8(2)
		var r Response
		for range 4 { // fragments announced as 64 KiB, never ending
			r = s.Handle(t0ctx, Request{State: start.State, EAP: Packet{Code: CodeResponse, ID: id, Type: TypeTTLS, Data: withLen(flagLength|flagMore, 60000, make([]byte, 100))}.Marshal()})
			id++
		}
		if r.Outcome != Reject || r.Reason != "too_many_rounds" {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("half-open pool evicts the oldest, running sessions are refused when full", func(t *testing.T) {
		s, pool := testServer(t, Config{MaxSessions: 2})
		// Half-open: a first TLS message only partly received.
		firstFragment := func(name string) Response {
			st := identity(s, 1, name)
			if r := s.Handle(t0ctx, Request{State: st.State, EAP: Packet{Code: CodeResponse, ID: 2, Type: TypeTTLS, Data: withLen(flagLength|flagMore, 2000, make([]byte, 100))}.Marshal()}); r.Outcome != Challenge {
				t.Fatalf("first fragment of %s: %+v", name, r)
			}
			return st
		}
		a := firstFragment("a")
		firstFragment("b")
		firstFragment("c") // pushes out a
		if ho, _ := s.Sessions(); ho != 2 {
			t.Fatalf("half-open %d", ho)
		}
		r := s.Handle(t0ctx, Request{State: a.State, EAP: Packet{Code: CodeResponse, ID: 3, Type: TypeTTLS, Data: append([]byte{flagMore}, make([]byte, 100)...)}.Marshal()})
		if r.Reason != "unknown_session" {
			t.Fatalf("evicted session answered: %+v", r)
		}
		// Two supplicants start TLS and stop half way; a third is refused.
		for i := range 3 {
			c := newSupplicant(t, s, pool, "alice", "right")
			c.in.total = -1
			st := c.send(Packet{Code: CodeResponse, ID: 1, Type: TypeIdentity, Data: []byte("x")})
			c.state = st.State
			p, _ := Parse(st.EAP)
			r := c.answer(p) // ClientHello
			if i < 2 && r.Outcome != Challenge {
				t.Fatalf("session %d: %+v", i, r)
			}
			if i == 2 && (r.Outcome != Reject || r.Reason != "sessions_full") {
				t.Fatalf("third running session: %+v", r)
			}
			c.eng.close()
		}
		// Floods of Starts and half-open sessions cannot push running
		// sessions out.
		for i := range 100 {
			identity(s, 1, "flood")
			firstFragment(fmt.Sprint("flood", i))
		}
		if ho, run := s.Sessions(); ho != 2 || run != 2 {
			t.Fatalf("half-open %d running %d", ho, run)
		}
	})
}

// TestHalfOpenFlood: 10,000 sessions that never get past Identity store
// nothing (start cookies), so memory stays bounded, and a real login in
// the middle of the flood succeeds whatever the interleaving.
func TestHalfOpenFlood(t *testing.T) {
	s, pool := testServer(t, Config{MaxSessions: 1024})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan Response, 1)
	for i := range 10000 {
		identity(s, uint8(i), "flood")
		if i == 5000 {
			go func() { done <- newSupplicant(t, s, pool, "alice", "right").run() }()
		}
	}
	if r := <-done; r.Outcome != Accept {
		t.Fatalf("login during the flood: %v %s", r.Outcome, r.Reason)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	ho, run := s.Sessions()
	if ho != 0 || run != 0 {
		t.Fatalf("half-open %d running %d", ho, run)
	}
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 8<<20 {
		t.Fatalf("heap grew by %d bytes for %d half-open sessions", grow, ho)
	}
	t.Logf("after 10,000 EAP starts: %d half-open sessions, heap %+d KiB", ho, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 1<<20 {
		t.Fatalf("heap grew by %d bytes: Starts must store nothing", grow)
	}
}

// TestTTLSInnerMethods: "ttls" enables inner PAP and "ttls-mschapv2"
// inner EAP-MSCHAPv2; an inner method that is not enabled ends the
// session (unsupported_inner_method), and inner EAP is named
// eap-ttls/mschapv2. The full MS-CHAPv2 exchange runs against eapol_test
// (cmd/gatewayd TestTTLSEAPMSCHAPv2WithEapolTest).
func TestTTLSInnerMethods(t *testing.T) {
	innerIdentity := AppendAVP(nil, avpEAPMessage, 0, true, Packet{Code: CodeResponse, ID: 0, Type: TypeIdentity, Data: []byte(`CORP\alice`)}.Marshal())
	for _, c := range []struct {
		name    string
		methods []string
		avps    []byte // nil: PAP
		outcome Outcome
		reason  string
		method  string
	}{
		{"pap with ttls", []string{"ttls"}, nil, Accept, "", MethodTTLSPAP},
		{"pap with only ttls-mschapv2", []string{"ttls-mschapv2"}, nil, Reject, "unsupported_inner_method", MethodTTLSPAP},
		{"eap with only ttls", []string{"ttls"}, innerIdentity, Reject, "unsupported_inner_method", MethodTTLSMSCHAPv2},
		{"eap with ttls-mschapv2", []string{"ttls", "ttls-mschapv2"}, innerIdentity, Challenge, "", MethodTTLSMSCHAPv2},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, pool := testServer(t, Config{Methods: c.methods})
			sp := newSupplicant(t, s, pool, "alice", "right")
			sp.avps = c.avps
			var r Response
			if c.outcome == Challenge {
				// Run until the server answers inside the tunnel: the
				// MS-CHAPv2 Challenge, after the inner Identity.
				sp.in.total = -1
				r = sp.send(Packet{Code: CodeResponse, ID: 7, Type: TypeIdentity, Data: []byte("anonymous")})
				for range 20 {
					if r.Outcome != Challenge || r.Method == MethodTTLSMSCHAPv2 {
						break
					}
					sp.state = r.State
					p, _ := Parse(r.EAP)
					r = sp.answer(p)
				}
				sp.eng.close()
				if r.Outcome != Challenge || r.Identity != "alice" {
					t.Fatalf("%+v, want the inner Challenge for alice", r)
				}
				return
			}
			r = sp.run()
			if r.Outcome != c.outcome || r.Reason != c.reason || r.Method != c.method {
				t.Fatalf("%v %q %q, want %v %q %q", r.Outcome, r.Reason, r.Method, c.outcome, c.reason, c.method)
			}
		})
	}
}
