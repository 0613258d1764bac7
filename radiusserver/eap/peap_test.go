package eap

import (
	"bytes"
	"testing"
)

func TestPEAPInnerCodec(t *testing.T) {
	// Headerless Identity response.
	typ, data, ok := parseInner(append([]byte{TypeIdentity}, "alice"...))
	if !ok || typ != TypeIdentity || string(data) != "alice" {
		t.Fatalf("headerless: %d %q %v", typ, data, ok)
	}
	// A full EAP-TLV response with a Result TLV (success).
	tlv := Packet{Code: CodeResponse, ID: 7, Type: TypeTLV, Data: []byte{0x80, 0x03, 0x00, 0x02, 0x00, 0x01}}.Marshal()
	typ, data, ok = parseInner(tlv)
	if !ok || typ != TypeTLV || resultTLV(data) != tlvResultSuccess {
		t.Fatalf("TLV: %d %x %v", typ, data, ok)
	}
	// A full header whose Length does not match is read as headerless.
	bad := append([]byte(nil), tlv...)
	bad[3]++
	if typ, _, _ := parseInner(bad); typ != CodeResponse {
		t.Fatalf("length mismatch parsed as full header: type %d", typ)
	}
	if _, _, ok := parseInner(nil); ok {
		t.Fatal("empty inner packet accepted")
	}
	// Result TLV: truncated and absent.
	for _, b := range [][]byte{{0x80, 0x03, 0x00, 0x02, 0x00}, {0x00, 0x07, 0x00, 0x00}, nil} {
		if r := resultTLV(b); r != 0 {
			t.Fatalf("resultTLV(%x) = %d", b, r)
		}
	}
	// Another TLV before the Result.
	if r := resultTLV([]byte{0x00, 0x07, 0x00, 0x01, 0xff, 0x80, 0x03, 0x00, 0x02, 0x00, 0x02}); r != tlvResultFailure {
		t.Fatalf("skipping a TLV: %d", r)
	}
	if got := stripDomain(`CORP\alice`); got != "alice" {
		t.Fatal(got)
	}
	ps := &peapState{}
	if b := ps.innerRequest(TypeIdentity, nil); !bytes.Equal(b, []byte{TypeIdentity}) {
		t.Fatalf("inner Identity request %x: PEAPv0 omits the header", b)
	}
	if b := ps.innerRequest(TypeTLV, []byte{1}); b[0] != CodeRequest || b[4] != TypeTLV || len(b) != 6 {
		t.Fatalf("TLV request %x: must carry the full header", b)
	}
	if m := msPacket(msSuccess, 9, "S=AB"); !bytes.Equal(m, []byte{msSuccess, 9, 0, 8, 'S', '=', 'A', 'B'}) {
		t.Fatalf("msPacket %x", m)
	}
}
