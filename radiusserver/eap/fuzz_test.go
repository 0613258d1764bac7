package eap

import (
	"bytes"
	"context"
	"testing"
)

var t0ctx = context.Background()

// FuzzParse: the EAP codec never panics, and what it accepts re-encodes
// to the same octets (up to Length).
func FuzzParse(f *testing.F) {
	f.Add([]byte{2, 1, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'})
	f.Add([]byte{2, 1, 0, 6, 21, 0x80, 0, 0})
	f.Add([]byte{3, 1, 0, 4})
	f.Add([]byte{2, 1, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.Code == CodeRequest || p.Code == CodeResponse {
			out := p.Marshal()
			if string(out) != string(b[:len(out)]) {
				t.Fatalf("re-encoding differs: %x vs %x", out, b)
			}
			_, _ = ParseAVPs(p.Data)
			if td, err := parseTLSData(p.Data); err == nil && td.total > MaxMessage {
				t.Fatal("total over the bound")
			}
		}
	})
}

// FuzzReassembly: fragments split from the input at the given sizes (each
// prefixed with flags and maybe a length) never reassemble past 64 KiB,
// and a complete message matches its announced length.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0xc0, 0, 0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x00}, uint8(16))
	f.Add([]byte{0x80, 0, 1, 0, 1, 9}, uint8(6))
	f.Add([]byte{0x40, 1, 0x40, 2, 0, 3}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		n := int(step%64) + 1
		var r reassembler
		r.reset()
		for len(b) > 0 {
			k := min(n, len(b))
			td, err := parseTLSData(b[:k])
			b = b[k:]
			if err != nil {
				return
			}
			done, err := r.add(td)
			if len(r.buf) > MaxMessage {
				t.Fatalf("reassembled %d bytes", len(r.buf))
			}
			if err != nil {
				return
			}
			if done && r.total >= 0 && len(r.buf) != r.total {
				t.Fatalf("complete message of %d bytes, announced %d", len(r.buf), r.total)
			}
		}
	})
}

// FuzzHandle: a session fed arbitrary EAP responses never panics and
// always answers with a well-formed EAP packet (or nothing).
func FuzzHandle(f *testing.F) {
	f.Add([]byte{2, 2, 0, 6, 21, 0})
	f.Add([]byte{2, 2, 0, 11, 21, 0x80, 0, 0, 0, 1, 0x16})
	f.Add([]byte{2, 2, 0, 7, 3, 25, 21})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _ := testServer(t, Config{})
		start := identity(s, 1, "fuzz")
		r := s.Handle(t0ctx, Request{State: start.State, EAP: b})
		if r.Outcome == Drop {
			return
		}
		if _, err := Parse(r.EAP); err != nil {
			t.Fatalf("answer %x: %v", r.EAP, err)
		}
	})
}

// FuzzPEAPInner: the PEAPv0 inner decoders (headerless or full-header
// packets, the Result TLV, the MS-CHAPv2 Response) never panic and stay
// inside their input.
func FuzzPEAPInner(f *testing.F) {
	f.Add(append([]byte{TypeIdentity}, "alice"...))
	f.Add(Packet{Code: CodeResponse, ID: 7, Type: TypeTLV, Data: []byte{0x80, 0x03, 0x00, 0x02, 0x00, 0x01}}.Marshal())
	f.Add([]byte{TypeTLV, 0x00, 0x07, 0x00, 0x01, 0xff, 0x80, 0x03, 0x00, 0x02, 0x00, 0x02})
	resp := []byte{TypeMSCHAPv2, msResponse, 9, 0, 0, 49}
	resp = append(resp, make([]byte, 49)...)
	f.Add(append(resp, `CORP\alice`...))
	f.Add([]byte{2, 1, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, data, ok := parseInner(b)
		if !ok {
			if len(b) != 0 {
				t.Fatalf("non-empty input %x refused", b)
			}
			return
		}
		if len(data) >= len(b) {
			t.Fatalf("data %d bytes from %d", len(data), len(b))
		}
		switch typ {
		case TypeTLV:
			_ = resultTLV(data)
		case TypeMSCHAPv2:
			if peer, nt, name, ok := parseMSCHAPv2Response(data); ok {
				if len(peer) != 16 || len(nt) != 24 || !bytes.HasSuffix(data, []byte(name)) {
					t.Fatalf("response fields: %d %d %q", len(peer), len(nt), name)
				}
			}
		}
	})
}

// FuzzCertUPN: the SubjectAltName UPN reader never panics and returns
// at most 16 names, each from the input.
func FuzzCertUPN(f *testing.F) {
	f.Add(upnSAN(f, "alice@corp.example.test").Value)
	f.Add([]byte{0x30, 0x03, 0xa0, 0x01, 0x00})
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		names := ParseUPNs(b)
		if len(names) > 16 {
			t.Fatalf("%d names", len(names))
		}
		for _, n := range names {
			if !bytes.Contains(b, []byte(n)) {
				t.Fatalf("name %q not in the input", n)
			}
		}
	})
}
