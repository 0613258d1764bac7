package ldapserver

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// The go-asn1-ber packet-tree encoders that berenc.go replaced, kept as
// the reference the hand-written encoder must match byte for byte.

func refEnvelope(id int64, op *ber.Packet, controls ...*ber.Packet) *ber.Packet {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	env.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
		for _, c := range controls {
			cs.AppendChild(c)
		}
		env.AppendChild(cs)
	}
	return env
}

// refResultOp builds an LDAPResult-shaped protocolOp with the given tag.
func refResultOp(tag ber.Tag, code int, matched, diag string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, matched, ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, ""))
	return op
}

// refExtendedOp builds an ExtendedResponse with optional name and value.
func refExtendedOp(code int, diag, name string, value []byte) *ber.Packet {
	op := refResultOp(appExtendedResponse, code, "", diag)
	if name != "" {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, name, ""))
	}
	if value != nil {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 11, string(value), ""))
	}
	return op
}

// refNotice is the unsolicited notification of RFC 4511 4.4.1.
func refNotice(code int, diag string) []byte {
	return refEnvelope(0, refExtendedOp(code, diag, oidNoticeDisconnect, nil)).Bytes()
}

// refEntryOp builds a SearchResultEntry.
func refEntryOp(dn string, attrs []outAttr, typesOnly bool) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchEntry, nil, "")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, a := range attrs {
		pa := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.name, ""))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		if !typesOnly {
			for _, v := range a.vals {
				set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, ""))
			}
		}
		pa.AppendChild(set)
		list.AppendChild(pa)
	}
	op.AppendChild(list)
	return op
}

// refPagedControl encodes the Simple Paged Results response control.
func refPagedControl(cookie []byte) *ber.Packet {
	c := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, oidPagedResults, ""))
	v := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	v.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	v.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(cookie), ""))
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(v.Bytes()), ""))
	return c
}

// TestEncoderMatchesGoASN1BER encodes every response shape with both
// encoders, at sizes around each length-form boundary.
func TestEncoderMatchesGoASN1BER(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	var cases []struct {
		name      string
		got, want []byte
	}
	add := func(name string, got, want []byte) {
		cases = append(cases, struct {
			name      string
			got, want []byte
		}{name, got, want})
	}
	ids := []int64{0, 1, 127, 128, 255, 256, 32767, 32768, 1<<31 - 1}
	codes := []int{rcSuccess, rcInvalidCredentials, rcSizeLimitExceeded, 80}
	for _, id := range ids {
		for _, code := range codes {
			for _, n := range []int{0, 1, 100, 127, 128, 255, 256, 65535, 65536, 70000} {
				var w berWriter
				w.appendResult(id, appSearchDone, code, "cn=x", long(n))
				add(fmt.Sprintf("result id=%d code=%d diag=%d", id, code, n), w.b,
					refEnvelope(id, refResultOp(appSearchDone, code, "cn=x", long(n))).Bytes())
			}
		}
		for _, cookie := range [][]byte{nil, []byte("c"), []byte(long(200))} {
			var w berWriter
			w.appendResult(id, appSearchDone, rcSuccess, "", "", pagedControl(cookie))
			add(fmt.Sprintf("paged id=%d cookie=%d", id, len(cookie)), w.b,
				refEnvelope(id, refResultOp(appSearchDone, rcSuccess, "", ""), refPagedControl(cookie)).Bytes())
		}
		for _, ext := range []struct {
			name  string
			value []byte
		}{{"", nil}, {oidStartTLS, nil}, {"", []byte{}}, {"", []byte("dn:uid=a,ou=users,dc=x")}, {oidWhoAmI, []byte(long(300))}} {
			var w berWriter
			w.appendExtended(id, rcSuccess, "d", ext.name, ext.value)
			add(fmt.Sprintf("extended id=%d name=%q value=%d", id, ext.name, len(ext.value)), w.b,
				refEnvelope(id, refExtendedOp(rcSuccess, "d", ext.name, ext.value)).Bytes())
		}
	}
	entries := [][]outAttr{
		nil,
		{{name: "cn", vals: []string{"a"}}},
		{{name: "objectClass", vals: []string{"top", "person", "inetOrgPerson"}}, {name: "memberOf"}, {name: "description", vals: []string{long(130)}}},
		{{name: "member", vals: strings.Split(strings.Repeat("uid=u,ou=users,dc=example,dc=org|", 3000), "|")}},
	}
	for i, attrs := range entries {
		for _, typesOnly := range []bool{false, true} {
			var w berWriter
			w.appendEntry(7, "uid=a,ou=users,dc=example,dc=org", attrs, typesOnly)
			add(fmt.Sprintf("entry %d typesOnly=%v", i, typesOnly), w.b,
				refEnvelope(7, refEntryOp("uid=a,ou=users,dc=example,dc=org", attrs, typesOnly)).Bytes())
		}
	}
	add("notice", noticeOfDisconnection(rcUnavailable, "bye"), refNotice(rcUnavailable, "bye"))

	for _, tc := range cases {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: encodings differ\n got %x\nwant %x", tc.name, head(tc.got), head(tc.want))
		}
	}
	// A pooled writer is reused clean.
	w := getWriter()
	w.appendResult(1, appBindResponse, rcSuccess, "", long(1000))
	putWriter(w)
	w = getWriter()
	w.appendResult(2, appBindResponse, rcSuccess, "", "")
	if want := refEnvelope(2, refResultOp(appBindResponse, rcSuccess, "", "")).Bytes(); !bytes.Equal(w.b, want) {
		t.Fatalf("reused writer: %x, want %x", w.b, want)
	}
	putWriter(w)
}

func head(b []byte) []byte { return b[:min(len(b), 64)] }

func BenchmarkEncodeEntry(b *testing.B) {
	attrs := []outAttr{{name: "objectClass", vals: []string{"top", "person", "organizationalPerson", "inetOrgPerson", "posixAccount"}},
		{name: "uid", vals: []string{"user1"}}, {name: "cn", vals: []string{"User One"}}, {name: "mail", vals: []string{"user1@example.org"}},
		{name: "memberOf", vals: []string{"cn=staff,ou=groups,dc=example,dc=org"}}, {name: "uidNumber", vals: []string{"10001"}}}
	b.Run("berWriter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := getWriter()
			w.appendEntry(7, "uid=user1,ou=users,dc=example,dc=org", attrs, false)
			putWriter(w)
		}
	})
	b.Run("go-asn1-ber", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = refEnvelope(7, refEntryOp("uid=user1,ou=users,dc=example,dc=org", attrs, false)).Bytes()
		}
	})
}

// TestOpIdentifier: a search must be recognised before decoding however
// its messageID is encoded, or its decoded fields would alias a buffer
// the next read overwrites.
func TestOpIdentifier(t *testing.T) {
	search := identifier(ber.ClassApplication, ber.TypeConstructed, appSearchRequest)
	tests := []struct {
		name  string
		frame []byte
		want  byte
		ok    bool
	}{
		{"short form", []byte{0x30, 0x05, 0x02, 0x01, 0x07, 0x63, 0x00}, search, true},
		{"long-form messageID length", []byte{0x30, 0x06, 0x02, 0x81, 0x01, 0x07, 0x63, 0x00}, search, true},
		{"long-form message length", []byte{0x30, 0x82, 0x00, 0x05, 0x02, 0x01, 0x07, 0x60, 0x00}, identifier(ber.ClassApplication, ber.TypeConstructed, appBindRequest), true},
		{"real search", rawSearch(t, 300, "dc=example,dc=org", 2, "(uid=*)", nil), search, true},
		{"truncated", []byte{0x30, 0x05, 0x02, 0x01}, 0, false},
		{"empty", nil, 0, false},
	}
	// A search op in the long tag form would carry tag 3 behind a
	// 0x7f identifier octet; the decoder refuses that form for tags
	// below 31, so the guard cannot be bypassed.
	if _, err := decodeMessage([]byte{0x30, 0x06, 0x02, 0x01, 0x07, 0x7f, 0x03, 0x00}); err == nil {
		t.Error("a search op in the long tag form was decoded")
	}
	for _, tc := range tests {
		got, ok := opIdentifier(tc.frame)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: got %#x %v, want %#x %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
