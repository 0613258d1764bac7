package radiusserver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2868"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/aruba"
	"layeh.com/radius/vendors/microsoft"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

const lenientSecret = "lenient-secret-0123456"

func unitConfig() Config {
	return Config{
		Listen: []string{"127.0.0.1:0"},
		Clients: []Client{
			testClient("loopback", testSecret, true, "127.0.0.0/8"),
			testClient("lenient", lenientSecret, false, "127.0.0.2/32"),
			testClient("v6", testSecret, true, "::1/128"),
		},
		ReplyGroups: vlanGroups(),
		Workers:     4,
	}
}

var (
	srcNAS     = netip.MustParseAddrPort("127.0.0.1:40000")
	srcLenient = netip.MustParseAddrPort("127.0.0.2:40000")
	srcV6      = netip.MustParseAddrPort("[::1]:40000")
	srcUnknown = netip.MustParseAddrPort("192.0.2.7:40000")
)

func withProxyState(states ...string) func(p *radius.Packet) {
	return func(p *radius.Packet) {
		for _, s := range states {
			p.Add(rfc2865.ProxyState_Type, radius.Attribute(s))
		}
	}
}

func TestHandlePacket(t *testing.T) {
	type want struct {
		code    radius.Code // 0: no answer
		drop    string
		logins  int64
		reason  authn.Reason // of the recorded event, when one is expected
		noEvent bool
	}
	cases := []struct {
		name string
		src  netip.AddrPort
		req  request
		raw  func(t testing.TB) []byte // overrides req
		want want
	}{
		{"accept", srcNAS, request{user: "alice", password: "alicepass"},
			nil, want{code: radius.CodeAccessAccept, logins: 1, reason: authn.ReasonNone}},
		{"reject bad password", srcNAS, request{user: "alice", password: "wrong"},
			nil, want{code: radius.CodeAccessReject, logins: 1, reason: authn.ReasonBadPassword}},
		{"reject unknown user", srcNAS, request{user: "mallory", password: "x"},
			nil, want{code: radius.CodeAccessReject, logins: 1, reason: authn.ReasonNoSuchUser}},
		{"two-block password", srcNAS, request{user: "dave", password: "a password of exactly thirty-two"},
			nil, want{code: radius.CodeAccessAccept, logins: 1, reason: authn.ReasonNone}},
		{"ipv6 source", srcV6, request{user: "alice", password: "alicepass"},
			nil, want{code: radius.CodeAccessAccept, logins: 1, reason: authn.ReasonNone}},
		{"ipv4-mapped source", netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"), request{user: "alice", password: "alicepass"},
			nil, want{code: radius.CodeAccessAccept, logins: 1, reason: authn.ReasonNone}},
		{"unknown client", srcUnknown, request{user: "alice", password: "alicepass"},
			nil, want{drop: dropUnknownClient, noEvent: true}},
		{"missing MA, required", srcNAS, request{user: "alice", password: "alicepass", noMA: true},
			nil, want{drop: dropMissingMA, noEvent: true}},
		{"missing MA, not required", srcLenient, request{user: "alice", password: "alicepass", noMA: true, secret: lenientSecret},
			nil, want{code: radius.CodeAccessAccept, logins: 1, reason: authn.ReasonNone}},
		{"wrong MA", srcNAS, request{user: "alice", password: "alicepass", badMA: true},
			nil, want{drop: dropBadMA, noEvent: true}},
		{"wrong MA, not required", srcLenient, request{user: "alice", password: "alicepass", badMA: true, secret: lenientSecret},
			nil, want{drop: dropBadMA, noEvent: true}},
		{"wrong shared secret", srcNAS, request{user: "alice", password: "alicepass", secret: "not-the-secret"},
			nil, want{drop: dropBadMA, noEvent: true}},
		{"proxy-state without MA, not required", srcLenient, request{user: "alice", password: "alicepass", noMA: true, secret: lenientSecret, extra: withProxyState("x")},
			nil, want{drop: dropMissingMA, noEvent: true}},
		{"status-server", srcNAS, request{code: radius.CodeStatusServer},
			nil, want{code: radius.CodeAccessAccept, noEvent: true}},
		{"status-server without MA", srcLenient, request{code: radius.CodeStatusServer, noMA: true, secret: lenientSecret},
			nil, want{drop: dropMissingMA, noEvent: true}},
		{"chap", srcNAS, request{user: "alice", extra: func(p *radius.Packet) {
			_ = rfc2865.CHAPPassword_Set(p, bytes.Repeat([]byte{1}, 17))
		}}, nil, want{code: radius.CodeAccessReject, reason: authn.ReasonUnsupportedMethod}},
		{"mschapv2", srcNAS, request{user: "alice", extra: func(p *radius.Packet) {
			_ = microsoft.MSCHAPChallenge_Set(p, bytes.Repeat([]byte{2}, 16))
			_ = microsoft.MSCHAP2Response_Set(p, bytes.Repeat([]byte{3}, 50))
		}}, nil, want{code: radius.CodeAccessReject, reason: authn.ReasonUnsupportedMethod}},
		{"eap", srcNAS, request{user: "alice", extra: func(p *radius.Packet) {
			_ = rfc2869.EAPMessage_Set(p, []byte{2, 0, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'})
		}}, nil, want{code: radius.CodeAccessReject, reason: authn.ReasonUnsupportedMethod}},
		{"pap and chap together", srcNAS, request{user: "alice", password: "alicepass", extra: func(p *radius.Packet) {
			_ = rfc2865.CHAPPassword_Set(p, bytes.Repeat([]byte{1}, 17))
		}}, nil, want{code: radius.CodeAccessReject, reason: authn.ReasonUnsupportedMethod}},
		{"no credentials", srcNAS, request{user: "alice"},
			nil, want{code: radius.CodeAccessReject, reason: authn.ReasonUnsupportedMethod}},
		{"no user name", srcNAS, request{password: "alicepass"},
			nil, want{code: radius.CodeAccessReject, reason: authn.ReasonNoSuchUser}},
		{"accounting request", srcNAS, request{code: radius.CodeAccountingRequest, user: "alice"},
			nil, want{drop: dropUnsupportedCode, noEvent: true}},
		{"short packet", srcNAS, request{}, func(t testing.TB) []byte { return []byte{1, 2, 0, 10, 0, 0} },
			want{drop: dropMalformed, noEvent: true}},
		{"length field past the datagram", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass"}.encode(t)
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)+1))
			return b
		}, want{drop: dropMalformed, noEvent: true}},
		{"length field under 20", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass"}.encode(t)
			binary.BigEndian.PutUint16(b[2:4], 19)
			return b
		}, want{drop: dropMalformed, noEvent: true}},
		{"attribute overruns", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass"}.encode(t)
			b[21] = 250
			return b
		}, want{drop: dropMalformed, noEvent: true}},
		{"zero-length attribute", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass"}.encode(t)
			b[21] = 0
			return b
		}, want{drop: dropMalformed, noEvent: true}},
		{"two message authenticators", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass"}.encode(t)
			b = append(b, 80, 18)
			b = append(b, make([]byte, 16)...)
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
			return b
		}, want{drop: dropMalformed, noEvent: true}},
		{"short message authenticator", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass", noMA: true}.encode(t)
			b = append(b, 80, 6, 1, 2, 3, 4)
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
			return b
		}, want{drop: dropMalformed, noEvent: true}},
		{"oversize datagram", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass"}.encode(t)
			return append(b, make([]byte, 4097-len(b))...)
		}, want{drop: dropOversize, noEvent: true}},
		{"padding after length is ignored", srcNAS, request{}, func(t testing.TB) []byte {
			b, _ := request{user: "alice", password: "alicepass"}.encode(t)
			return append(b, 0xde, 0xad, 0xbe, 0xef)
		}, want{code: radius.CodeAccessAccept, logins: 1, reason: authn.ReasonNone}},
		{"user-password of impossible length", srcNAS, request{user: "alice", extra: func(p *radius.Packet) {
			p.Add(rfc2865.UserPassword_Type, radius.Attribute(bytes.Repeat([]byte{7}, 17)))
		}}, nil, want{code: radius.CodeAccessReject, reason: authn.ReasonBadPassword}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			auth := newFakeAuth()
			s, reg := newTestServer(t, unitConfig(), auth)
			tc.req.id = byte(i)
			var b []byte
			var reqAuth [16]byte
			if tc.raw != nil {
				b = tc.raw(t)
				copy(reqAuth[:], b[4:min(20, len(b))])
			} else {
				b, reqAuth = tc.req.encode(t)
			}
			before := map[string]float64{}
			for _, r := range allDropReasons {
				before[r] = dropped(reg, s, r)
			}
			resp := s.handlePacket(context.Background(), tc.src, b, time.Now())
			for _, r := range allDropReasons {
				d := dropped(reg, s, r) - before[r]
				if r == tc.want.drop && d != 1 {
					t.Errorf("dropped{reason=%q} moved by %v, want 1", r, d)
				} else if r != tc.want.drop && d != 0 {
					t.Errorf("dropped{reason=%q} moved by %v, want 0", r, d)
				}
			}
			if got := auth.logins.Load(); got != tc.want.logins {
				t.Errorf("Login calls = %d, want %d", got, tc.want.logins)
			}
			evs := auth.Events()
			if tc.want.noEvent {
				if len(evs) != 0 {
					t.Errorf("events = %+v, want none", evs)
				}
			} else if len(evs) != 1 {
				t.Errorf("events = %+v, want one", evs)
			} else {
				if evs[0].Reason != tc.want.reason {
					t.Errorf("event reason = %q, want %q", evs[0].Reason, tc.want.reason)
				}
				if evs[0].Protocol != authn.ProtocolRADIUS || evs[0].Client == "" || !evs[0].Source.IsValid() || evs[0].Source.Is4In6() {
					t.Errorf("event lacks protocol/client/source: %+v", evs[0])
				}
			}
			if tc.want.code == 0 {
				if resp != nil {
					t.Fatalf("got a %d-byte answer, want none", len(resp))
				}
				return
			}
			if resp == nil {
				t.Fatalf("no answer, want %v", tc.want.code)
			}
			sec := tc.req.secret
			p := parseResponse(t, resp, reqAuth, sec)
			if p.Code != tc.want.code {
				t.Fatalf("code = %v, want %v", p.Code, tc.want.code)
			}
			if p.Identifier != b[1] {
				t.Errorf("identifier = %d, want %d", p.Identifier, b[1])
			}
			if _, ok := p.Lookup(rfc2865.ReplyMessage_Type); ok {
				t.Errorf("Reply-Message sent although none is configured")
			}
			if p.Code == radius.CodeAccessReject {
				// An EAP request's reject (EAP off) carries an EAP-Failure.
				want := 1
				if _, ok := p.Lookup(rfc2869.EAPMessage_Type); ok {
					want = 2
					if eapMsg := rfc2869.EAPMessage_Get(p); len(eapMsg) != 4 || eapMsg[0] != 4 {
						t.Errorf("EAP-Message in the reject is %x, want an EAP-Failure", eapMsg)
					}
				}
				if len(p.Attributes) != want {
					t.Errorf("reject carries %d attributes, want only the Message-Authenticator (and EAP-Failure)", len(p.Attributes))
				}
			}
		})
	}
}

func TestResponseAuthenticatorsMatchLayeh(t *testing.T) {
	auth := newFakeAuth()
	s, _ := newTestServer(t, unitConfig(), auth)
	b, _ := request{user: "alice", password: "alicepass"}.encode(t)
	resp := s.handlePacket(context.Background(), srcNAS, b, time.Now())
	if !radius.IsAuthenticResponse(resp, b, []byte(testSecret)) {
		t.Fatal("layeh does not accept our Response Authenticator")
	}
	if radius.IsAuthenticResponse(resp, b, []byte("other")) {
		t.Fatal("response verifies with another secret")
	}
	// The Message-Authenticator is HMAC-MD5 over the response with the
	// request authenticator in place (RFC 3579 §3.2), recomputed here
	// independently of encodeResponse.
	c := append([]byte(nil), resp...)
	copy(c[4:20], b[4:20])
	copy(c[22:38], zero16[:])
	signRequest(c, []byte(testSecret))
	if !bytes.Equal(c[22:38], resp[22:38]) {
		t.Fatal("Message-Authenticator mismatch")
	}
}

func TestProxyStateEchoedInOrder(t *testing.T) {
	auth := newFakeAuth()
	s, _ := newTestServer(t, unitConfig(), auth)
	for _, user := range []string{"alice", "nobody"} {
		b, ra := request{user: user, password: "alicepass", extra: withProxyState("first", "second")}.encode(t)
		p := parseResponse(t, s.handlePacket(context.Background(), srcNAS, b, time.Now()), ra, "")
		got, err := rfc2865.ProxyState_Gets(p)
		if err != nil || len(got) != 2 || string(got[0]) != "first" || string(got[1]) != "second" {
			t.Fatalf("%s: Proxy-State = %q, %v", user, got, err)
		}
	}
}

func TestReplyMessageOnlyWhenConfigured(t *testing.T) {
	cfg := unitConfig()
	cfg.ReplyMessage = "Welcome to the network"
	s, _ := newTestServer(t, cfg, newFakeAuth())
	for _, pw := range []string{"alicepass", "wrong"} {
		b, ra := request{user: "alice", password: pw}.encode(t)
		p := parseResponse(t, s.handlePacket(context.Background(), srcNAS, b, time.Now()), ra, "")
		if got := rfc2865.ReplyMessage_GetString(p); got != cfg.ReplyMessage {
			t.Errorf("password %q: Reply-Message = %q", pw, got)
		}
	}
	long := strings.Repeat("x", 600)
	attrs := replyMessageAttrs(long)
	if len(attrs) != 3 || len(attrs[0].Attribute) != 253 {
		t.Fatalf("a 600-byte Reply-Message should take 3 attributes, got %d", len(attrs))
	}
}

func TestReplyGroupPrecedence(t *testing.T) {
	auth := newFakeAuth()
	s, _ := newTestServer(t, unitConfig(), auth)
	get := func(user, pw string) *radius.Packet {
		b, ra := request{user: user, password: pw}.encode(t)
		p := parseResponse(t, s.handlePacket(context.Background(), srcNAS, b, time.Now()), ra, "")
		if p.Code != radius.CodeAccessAccept {
			t.Fatalf("%s: %v", user, p.Code)
		}
		return p
	}
	// alice: staff only.
	p := get("alice", "alicepass")
	if tag, v := rfc2868.TunnelPrivateGroupID_GetString(p); v != "42" || tag != 0 {
		t.Errorf("alice VLAN = %q (tag %d)", v, tag)
	}
	if _, v := rfc2868.TunnelType_Get(p); v != rfc2868.TunnelType(13) {
		t.Errorf("alice Tunnel-Type = %v", v)
	}
	if _, v := rfc2868.TunnelMediumType_Get(p); v != rfc2868.TunnelMediumType_Value_IEEE802 {
		t.Errorf("alice Tunnel-Medium-Type = %v", v)
	}
	// bob: Staff (10), guests (20), voip (30). Staff wins the tunnel,
	// Filter-Id and Class; guests adds Session-Timeout (voip's 86400
	// loses to it); voip adds the Aruba role.
	p = get("bob", "bobpass")
	if _, vs, _ := rfc2868.TunnelPrivateGroupID_GetStrings(p); len(vs) != 1 || vs[0] != "42" {
		t.Errorf("bob VLANs = %q, want [42]", vs)
	}
	if _, vs, _ := rfc2868.TunnelType_Gets(p); len(vs) != 1 {
		t.Errorf("bob Tunnel-Type count = %d, want 1", len(vs))
	}
	if vs, _ := rfc2865.FilterID_GetStrings(p); len(vs) != 1 || vs[0] != "staff-acl" {
		t.Errorf("bob Filter-Id = %q", vs)
	}
	if v := rfc2865.Class_GetString(p); v != "staff" {
		t.Errorf("bob Class = %q", v)
	}
	if vs, _ := rfc2865.SessionTimeout_Gets(p); len(vs) != 1 || vs[0] != 3600 {
		t.Errorf("bob Session-Timeout = %v, want [3600]", vs)
	}
	if v := aruba.ArubaUserRole_GetString(p); v != "voice" {
		t.Errorf("bob Aruba-User-Role = %q", v)
	}
	// carol: in no reply group: a bare Accept.
	p = get("carol", "carolpass")
	if len(p.Attributes) != 1 {
		t.Errorf("carol got %d attributes, want only the Message-Authenticator", len(p.Attributes))
	}
}

func TestReplyGroupTieBrokenByName(t *testing.T) {
	plan, err := compileReplyGroups([]ReplyGroup{
		{Group: "zeta", Priority: 5, Attributes: []ReplyAttribute{{"Filter-Id", "z"}}},
		{Group: "Alpha", Priority: 5, Attributes: []ReplyAttribute{{"Filter-Id", "a"}}},
		{Group: "low", Priority: -1, Attributes: []ReplyAttribute{{"Class", "c1"}, {"Class", "c2"}}},
		{Group: "tunnels", Priority: 7, Attributes: []ReplyAttribute{
			{"Tunnel-Private-Group-Id:1", "10"}, {"Tunnel-Private-Group-Id:2", "20"}}},
		{Group: "tunnels2", Priority: 8, Attributes: []ReplyAttribute{
			{"Tunnel-Type:2", "VLAN"}, {"Tunnel-Private-Group-Id:3", "30"}}},
		{Group: "classy", Priority: 9, Attributes: []ReplyAttribute{{"Class", "c3"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := plan.attributesFor([]string{"ZETA", "alpha", "low", "tunnels", "tunnels2", "classy", "not-configured", "alpha"})
	var desc []string
	for _, a := range got {
		v := string(a.Attribute)
		if a.Type == rfc2868.TunnelPrivateGroupID_Type || a.Type == rfc2868.TunnelType_Type {
			v = fmt.Sprintf("%d:%x", a.Attribute[0], a.Attribute[1:])
		}
		desc = append(desc, fmt.Sprintf("%d=%s", a.Type, v))
	}
	// low (-1): both Class values; Alpha beats zeta on the tie; tunnel
	// tags 1 and 2 from "tunnels"; tunnels2's tag 2 loses, tag 3 is new;
	// classy's Class loses to low's.
	want := []string{"25=c1", "25=c2", "11=a", "81=1:3130", "81=2:3230", "81=3:3330"}
	if strings.Join(desc, " ") != strings.Join(want, " ") {
		t.Fatalf("attributes = %v\nwant         %v", desc, want)
	}
}

func TestCompileAttribute(t *testing.T) {
	cases := []struct {
		name, value string
		wantErr     string // substring; "" = valid
		wantWire    []byte // the AVP value, when checked
		wantType    radius.Type
	}{
		{"Tunnel-Type", "VLAN", "", []byte{0, 0, 0, 13}, 64},
		{"tunnel-type:1", "vlan", "", []byte{1, 0, 0, 13}, 64},
		{"Tunnel-Medium-Type", "IEEE-802", "", []byte{0, 0, 0, 6}, 65},
		{"Tunnel-Private-Group-ID", "42", "", []byte("42"), 81},
		{"Tunnel-Private-Group-Id:5", "42", "", []byte("\x0542"), 81},
		{"Tunnel-Private-Group-Id", "\x01x", "", []byte("\x00\x01x"), 81},
		{"Filter-Id", "acl", "", []byte("acl"), 11},
		{"Class", "0x0102ff", "", []byte{1, 2, 0xff}, 25},
		{"Class", "plain", "", []byte("plain"), 25},
		{"Session-Timeout", "3600", "", []byte{0, 0, 0x0e, 0x10}, 27},
		{"Service-Type", "Framed-User", "", []byte{0, 0, 0, 2}, 6},
		{"Framed-IP-Address", "192.0.2.10", "", []byte{192, 0, 2, 10}, 8},
		{"Aruba-User-Vlan", "100", "", []byte{0, 0, 0x39, 0xe7, 2, 6, 0, 0, 0, 100}, 26},
		{"Mikrotik-Wireless-VLANIDtype", "802.1ad", "", nil, 26},
		{"WISPr-Bandwidth-Max-Down", "1000000", "", nil, 26},
		{"Reply-Message", "hi", "not a supported reply attribute", nil, 0},
		{"Message-Authenticator", "x", "not a supported reply attribute", nil, 0},
		{"Tunnel-Password", "x", "not a supported reply attribute", nil, 0},
		{"No-Such-Thing", "x", "supported: ", nil, 0},
		{"Session-Timeout", "one hour", "not a number", nil, 0},
		{"Session-Timeout", "4294967296", "not a number", nil, 0},
		{"Tunnel-Type", "VLAM", "VLAN", nil, 0},
		{"Tunnel-Preference:1", "16777216", "too large", nil, 0},
		{"Filter-Id:1", "x", "takes no tag", nil, 0},
		{"Tunnel-Type:32", "VLAN", "0 to 31", nil, 0},
		{"Tunnel-Type:x", "VLAN", "0 to 31", nil, 0},
		{"Filter-Id", "", "empty", nil, 0},
		{"Filter-Id", strings.Repeat("a", 254), "too long", nil, 0},
		{"Aruba-User-Role", strings.Repeat("a", 248), "too long", nil, 0},
		{"Class", "0xzz", "bad hex", nil, 0},
		{"Framed-IP-Address", "2001:db8::1", "not an IPv4", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value[:min(len(tc.value), 12)], func(t *testing.T) {
			a, err := compileAttribute(tc.name, tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.avp.Type != tc.wantType {
				t.Errorf("type = %d, want %d", a.avp.Type, tc.wantType)
			}
			if tc.wantWire != nil && !bytes.Equal(a.avp.Attribute, tc.wantWire) {
				t.Errorf("wire = % x, want % x", a.avp.Attribute, tc.wantWire)
			}
		})
	}
	// Vendor attributes decode with layeh's generated accessors.
	p := &radius.Packet{}
	for _, kv := range [][2]string{{"Aruba-User-Role", "guest"}, {"Aruba-User-Vlan", "100"}, {"MS-Primary-DNS-Server", "192.0.2.53"}} {
		a, err := compileAttribute(kv[0], kv[1])
		if err != nil {
			t.Fatal(err)
		}
		p.Attributes = append(p.Attributes, a.avp)
	}
	if aruba.ArubaUserRole_GetString(p) != "guest" || aruba.ArubaUserVlan_Get(p) != 100 ||
		microsoft.MSPrimaryDNSServer_Get(p).String() != "192.0.2.53" {
		t.Fatalf("vendor attributes do not decode with layeh: %v %v %v",
			aruba.ArubaUserRole_GetString(p), aruba.ArubaUserVlan_Get(p), microsoft.MSPrimaryDNSServer_Get(p))
	}
}

func TestValidateClients(t *testing.T) {
	cases := []struct {
		name    string
		clients []Client
		wantErr []string
	}{
		{"ok", []Client{testClient("a", "x", true, "10.0.0.0/8"), testClient("b", "y", true, "10.1.0.0/16", "2001:db8::/32")}, nil},
		{"duplicate network names both", []Client{testClient("wifi", "x", true, "10.0.0.0/8"), testClient("vpn", "y", true, "10.0.0.0/8")},
			[]string{`"wifi"`, `"vpn"`, "10.0.0.0/8"}},
		{"duplicate after masking", []Client{testClient("wifi", "x", true, "10.0.0.0/8"), testClient("vpn", "y", true, "10.9.9.9/8")},
			[]string{`"wifi"`, `"vpn"`}},
		{"same network twice in one client", []Client{testClient("wifi", "x", true, "10.0.0.0/8", "10.0.0.0/8")}, []string{"listed twice"}},
		{"empty secret", []Client{testClient("a", "", true, "10.0.0.0/8")}, []string{"secret is empty"}},
		{"empty name", []Client{testClient(" ", "x", true, "10.0.0.0/8")}, []string{"name is empty"}},
		{"duplicate name", []Client{testClient("a", "x", true, "10.0.0.0/8"), testClient("A", "x", true, "10.1.0.0/16")}, []string{"used twice"}},
		{"no networks", []Client{testClient("a", "x", true)}, []string{"no networks"}},
		{"mapped v4", []Client{testClient("a", "x", true, "::ffff:10.0.0.0/104")}, []string{"IPv4 form"}},
		{"invalid prefix", []Client{{Name: "a", Secret: testClient("", "x", true).Secret, Networks: []netip.Prefix{{}}}}, []string{"invalid network"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateClients(tc.clients)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestClientLookupMostSpecific(t *testing.T) {
	tbl, err := compileClients([]Client{
		testClient("campus", "a", true, "10.0.0.0/8", "2001:db8::/32"),
		testClient("building", "b", true, "10.1.0.0/16"),
		testClient("ap", "c", true, "10.1.2.3/32", "2001:db8:1::/48"),
		testClient("everyone-v6", "d", true, "::/0"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"10.9.9.9": "campus", "10.1.9.9": "building", "10.1.2.3": "ap", "::ffff:10.1.2.3": "ap",
		"2001:db8::1": "campus", "2001:db8:1::5": "ap", "fe80::1%eth0": "everyone-v6", "192.0.2.1": "",
	} {
		c := tbl.lookup(netip.MustParseAddr(addr))
		got := ""
		if c != nil {
			got = c.name
		}
		if got != want {
			t.Errorf("%s -> %q, want %q", addr, got, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(c *Config)
		nilRes  bool
		wantErr string
	}{
		{"bad attribute", func(c *Config) { c.ReplyGroups[0].Attributes[0].Name = "Tunnel-Typo" }, false, `radius reply group "staff": attribute "Tunnel-Typo"`},
		{"bad value", func(c *Config) { c.ReplyGroups[1].Attributes[0].Value = "VLANN" }, false, `"guests"`},
		{"duplicate group", func(c *Config) { c.ReplyGroups[1].Group = "STAFF" }, false, "configured twice"},
		{"no resolver", func(c *Config) {}, true, "no GroupResolver"},
		{"negative workers", func(c *Config) { c.Workers = -1 }, false, "workers"},
		{"bad listen", func(c *Config) { c.Listen = []string{"127.0.0.1"} }, false, "listen"},
		{"long reply message", func(c *Config) { c.ReplyMessage = strings.Repeat("x", 2000) }, false, "reply_message"},
		{"duplicate network", func(c *Config) { c.Clients = append(c.Clients, testClient("again", "x", true, "127.0.0.0/8")) }, false, `"loopback" and "again"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := unitConfig()
			tc.mutate(&cfg)
			var g GroupResolver = newFakeAuth()
			if tc.nilRes {
				g = nil
			}
			_, err := New(cfg, newFakeAuth(), g, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
	if _, err := New(unitConfig(), nil, nil, nil, nil); err == nil {
		t.Fatal("New without Authenticator succeeded")
	}
}

func TestRetransmitGetsCachedResponse(t *testing.T) {
	auth := newFakeAuth()
	s, _ := newTestServer(t, unitConfig(), auth)
	b, _ := request{user: "alice", password: "alicepass"}.encode(t)
	now := time.Now()
	first := s.handlePacket(context.Background(), srcNAS, b, now)
	second := s.handlePacket(context.Background(), srcNAS, b, now.Add(2*time.Second))
	if first == nil || !bytes.Equal(first, second) {
		t.Fatalf("retransmit answer differs:\n% x\n% x", first, second)
	}
	if n := auth.logins.Load(); n != 1 {
		t.Fatalf("Login calls = %d, want 1", n)
	}
	if got := requests(s, "loopback", outcomeDuplicate); got != 1 {
		t.Fatalf("requests{outcome=duplicate} = %v", got)
	}
	// Another source port is another request (RFC 5080 key).
	other := netip.AddrPortFrom(srcNAS.Addr(), srcNAS.Port()+1)
	if s.handlePacket(context.Background(), other, b, now) == nil || auth.logins.Load() != 2 {
		t.Fatal("same packet from another port was not authenticated afresh")
	}
	// After the window the request is new again.
	s.handlePacket(context.Background(), srcNAS, b, now.Add(dedupTTL+time.Second))
	if n := auth.logins.Load(); n != 3 {
		t.Fatalf("Login calls after the window = %d, want 3", n)
	}
}

func TestRetransmitWhileInFlight(t *testing.T) {
	auth := newFakeAuth()
	auth.delay = 300 * time.Millisecond
	s, reg := newTestServer(t, unitConfig(), auth)
	b, _ := request{user: "alice", password: "alicepass"}.encode(t)
	var first []byte
	var wg sync.WaitGroup
	wg.Go(func() { first = s.handlePacket(context.Background(), srcNAS, b, time.Now()) })
	testutil.Eventually(t, 2*time.Second, func() bool { return auth.logins.Load() == 1 }, "first login started")
	if resp := s.handlePacket(context.Background(), srcNAS, b, time.Now()); resp != nil {
		t.Fatal("a retransmit during the first login was answered")
	}
	if got := dropped(reg, s, dropDuplicateRunning); got != 1 {
		t.Fatalf("dropped{duplicate_in_flight} = %v", got)
	}
	wg.Wait()
	third := s.handlePacket(context.Background(), srcNAS, b, time.Now())
	if !bytes.Equal(first, third) || auth.logins.Load() != 1 {
		t.Fatalf("after the first finished: same=%v logins=%d", bytes.Equal(first, third), auth.logins.Load())
	}
}

func TestDedupCacheBounded(t *testing.T) {
	c := newDedupCache(time.Minute, 3)
	now := time.Now()
	key := func(i int) dedupKey { return dedupKey{client: "c", id: byte(i)} }
	for i := range 5 {
		e, st, _ := c.begin(key(i), now)
		if st != dedupNew {
			t.Fatalf("%d: state %v", i, st)
		}
		c.finish(e, []byte{byte(i)})
	}
	if c.len() != 3 {
		t.Fatalf("len = %d, want 3", c.len())
	}
	if _, st, _ := c.begin(key(4), now); st != dedupCached {
		t.Fatalf("newest entry evicted")
	}
	if e, st, _ := c.begin(key(0), now); st != dedupNew {
		t.Fatalf("oldest entry kept past the bound")
	} else {
		c.finish(e, nil) // dropped: forgotten
	}
	if e, st, _ := c.begin(key(0), now); st != dedupNew {
		t.Fatalf("a dropped request stayed cached")
	} else {
		c.finish(e, []byte{9})
	}
	if _, st, _ := c.begin(key(0), now.Add(2*time.Minute)); st != dedupNew {
		t.Fatalf("entry outlived its TTL")
	}

	// Many entries, then expiry: the map and the queue shrink.
	c = newDedupCache(time.Minute, 100000)
	for i := range 5000 {
		e, _, _ := c.begin(dedupKey{client: "c", id: byte(i), auth: [16]byte{byte(i >> 8)}}, now)
		c.finish(e, []byte{1})
	}
	c.begin(key(1), now.Add(time.Hour))
	if c.len() != 1 || c.head-c.tail != 1 {
		t.Fatalf("after expiry: map %d, ring %d", c.len(), c.head-c.tail)
	}
	for i := range c.ring {
		if e := &c.ring[i]; e.resp != nil && e.seq != c.tail {
			t.Fatalf("an expired entry still holds its answer: %+v", e)
		}
	}
}

func TestPanicIsRecovered(t *testing.T) {
	auth := newFakeAuth()
	auth.panicOn = "alice"
	s, reg := newTestServer(t, unitConfig(), auth)
	b, _ := request{user: "alice", password: "alicepass"}.encode(t)
	if resp := s.handlePacket(context.Background(), srcNAS, b, time.Now()); resp != nil {
		t.Fatal("answered after a panic")
	}
	if got := dropped(reg, s, dropPanic); got != 1 {
		t.Fatalf("dropped{panic} = %v", got)
	}
	// The retransmit is handled again (not stuck as in flight).
	auth.panicOn = ""
	if resp := s.handlePacket(context.Background(), srcNAS, b, time.Now()); resp == nil {
		t.Fatal("retransmit after a panic got no answer")
	}
}

func TestPasswordWipedAfterLogin(t *testing.T) {
	auth := newFakeAuth()
	s, _ := newTestServer(t, unitConfig(), auth)
	for _, pw := range []string{"alicepass", "wrong", "a password of exactly thirty-two"} {
		b, _ := request{user: "alice", password: pw}.encode(t)
		s.handlePacket(context.Background(), srcNAS, b, time.Now())
	}
	auth.mu.Lock()
	defer auth.mu.Unlock()
	if len(auth.kept) != 3 {
		t.Fatalf("kept %d passwords", len(auth.kept))
	}
	for i, p := range auth.kept {
		if !bytes.Equal(p.Bytes(), make([]byte, p.Len())) {
			t.Errorf("password %d not wiped", i)
		}
		if fmt.Sprint(p) != "[redacted]" {
			t.Errorf("password %d prints as %q", i, fmt.Sprint(p))
		}
	}
}

func TestReloadClients(t *testing.T) {
	auth := newFakeAuth()
	s, reg := newTestServer(t, unitConfig(), auth)
	b, _ := request{user: "alice", password: "alicepass", secret: "rotated-secret-0123456"}.encode(t)
	if s.handlePacket(context.Background(), srcNAS, b, time.Now()) != nil {
		t.Fatal("answered with the new secret before the reload")
	}
	bad := []Client{testClient("a", "x", true, "127.0.0.0/8"), testClient("b", "x", true, "127.0.0.0/8")}
	if err := s.ReloadClients(bad); err == nil {
		t.Fatal("invalid reload accepted")
	}
	if err := s.ReloadClients([]Client{testClient("loopback", "rotated-secret-0123456", true, "127.0.0.0/8")}); err != nil {
		t.Fatal(err)
	}
	b[1]++ // a new request
	signRequest(b, []byte("rotated-secret-0123456"))
	if s.handlePacket(context.Background(), srcNAS, b, time.Now()) == nil {
		t.Fatal("no answer with the new secret after the reload")
	}
	// ::1 is no longer a client.
	b6, _ := request{user: "alice", password: "alicepass"}.encode(t)
	before := dropped(reg, s, dropUnknownClient)
	if s.handlePacket(context.Background(), srcV6, b6, time.Now()) != nil || dropped(reg, s, dropUnknownClient) != before+1 {
		t.Fatal("removed client still answered")
	}
}

func TestUnknownClientLogIsRateLimited(t *testing.T) {
	l := newLogLimiter(time.Minute)
	now := time.Now()
	if !l.allow("unknown:192.0.2.1", now) || l.allow("unknown:192.0.2.1", now.Add(time.Second)) {
		t.Fatal("per-source limit")
	}
	if !l.allow("unknown:192.0.2.1", now.Add(61*time.Second)) {
		t.Fatal("source not logged again after a minute")
	}
	n := 0
	for i := range 1000 {
		if l.allow(fmt.Sprintf("unknown:198.51.100.%d", i), now) {
			n++
		}
	}
	if n > 25 {
		t.Fatalf("%d distinct spoofed sources logged in one instant", n)
	}
}

func TestMetricsRegistered(t *testing.T) {
	auth := newFakeAuth()
	s, reg := newTestServer(t, unitConfig(), auth)
	b, _ := request{user: "alice", password: "alicepass"}.encode(t)
	s.handlePacket(context.Background(), srcNAS, b, time.Now())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"gatewayd_radius_requests_total", "gatewayd_radius_dropped_total", "gatewayd_radius_request_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	if requests(s, "loopback", outcomeAccept) != 1 {
		t.Error("accept not counted")
	}
	// A second server on the same registry reuses the collectors.
	if _, err := New(unitConfig(), auth, auth, nil, reg); err != nil {
		t.Fatalf("second New on one registry: %v", err)
	}
}

func TestParseReplyAttribute(t *testing.T) {
	for in, want := range map[string]ReplyAttribute{
		"Tunnel-Type = VLAN":               {"Tunnel-Type", "VLAN"},
		"Tunnel-Private-Group-Id:1=42":     {"Tunnel-Private-Group-Id:1", "42"},
		` Filter-Id = "guest acl" `:        {"Filter-Id", "guest acl"},
		`Class = "a=b"`:                    {"Class", "a=b"},
		"Aruba-User-Role = employee-role ": {"Aruba-User-Role", "employee-role"},
	} {
		got, err := ParseReplyAttribute(in)
		if err != nil || got != want {
			t.Errorf("%q -> %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"Tunnel-Type", "= VLAN", "Filter-Id = ", `Filter-Id = ""`} {
		if _, err := ParseReplyAttribute(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMissingMessageAuthenticatorLogSaysHowToFix: the drop's log line
// names the client and the setting, since an old pam_radius (Debian 12
// ships 2.0) never sends one and otherwise just times out.
func TestMissingMessageAuthenticatorLogSaysHowToFix(t *testing.T) {
	var buf bytes.Buffer
	auth := newFakeAuth()
	s, err := New(unitConfig(), auth, auth, slog.New(slog.NewTextHandler(&buf, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := request{user: "alice", password: "alicepass", noMA: true}.encode(t)
	if resp := s.handlePacket(context.Background(), srcNAS, b, time.Now()); resp != nil {
		t.Fatal("answered a request without Message-Authenticator")
	}
	name := s.clients.Load().lookup(srcNAS.Addr()).name
	for _, want := range []string{"require_message_authenticator = false", "pam_radius_auth below 3.0", "block (\\\"" + name, "client=" + name} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestMACKeyMatchesHMAC: the precomputed key schedule gives crypto/hmac's
// HMAC-MD5, for secrets shorter than, as long as, and longer than the MD5
// block (hashed first, RFC 2104), with and without the zeroed
// Message-Authenticator octets, and leaves no state behind between uses.
func TestMACKeyMatchesHMAC(t *testing.T) {
	msg := make([]byte, 150)
	for i := range msg {
		msg[i] = byte(i*7 + 1)
	}
	for _, keyLen := range []int{1, 16, 63, 64, 65, 200} {
		key := bytes.Repeat([]byte{byte(keyLen)}, keyLen)
		m := newMACKey(key)
		for _, zeroAt := range []int{0, 22, 120} {
			want := append([]byte(nil), msg...)
			if zeroAt > 0 {
				clear(want[zeroAt : zeroAt+16])
			}
			h := hmac.New(md5.New, key)
			h.Write(want)
			for range 2 { // twice: a pooled hash carries nothing over
				if got := m.sum(msg, zeroAt); !bytes.Equal(got[:], h.Sum(nil)) {
					t.Fatalf("key of %d bytes, zeroAt %d: got %x, want %x", keyLen, zeroAt, got, h.Sum(nil))
				}
			}
		}
		m.wipe()
		if !bytes.Equal(m.inner, make([]byte, len(m.inner))) || !bytes.Equal(m.outer, make([]byte, len(m.outer))) {
			t.Fatalf("key of %d bytes: wipe left the key states", keyLen)
		}
	}
	sum := md5.Sum(append(append([]byte(nil), msg...), "secret"...))
	if got := md5With(msg, []byte("secret")); got != sum {
		t.Fatalf("md5With: got %x, want %x", got, sum)
	}
}

// TestDedupIdentifierReused: a NAS reuses an Identifier only for a new
// request (RFC 5080 §2.2.2). The new one takes the old one's index slot,
// so the index holds one entry per (source, Identifier), and
// retransmissions of the new one are still answered from the cache.
func TestDedupIdentifierReused(t *testing.T) {
	c := newDedupCache(time.Minute, 1000)
	now := time.Now()
	src := netip.MustParseAddrPort("192.0.2.1:4000")
	for round := range 10 {
		for id := range 256 {
			k := dedupKey{client: "c", src: src, id: byte(id), auth: [16]byte{byte(round)}}
			e, st, _ := c.begin(k, now)
			if st != dedupNew {
				t.Fatalf("round %d id %d: a new authenticator was state %v", round, id, st)
			}
			c.finish(e, []byte{byte(round), byte(id)})
			if _, st, resp := c.begin(k, now); st != dedupCached || !bytes.Equal(resp, []byte{byte(round), byte(id)}) {
				t.Fatalf("round %d id %d: retransmission got state %v, answer %v", round, id, st, resp)
			}
		}
	}
	if n := c.len(); n != 256 {
		t.Fatalf("index holds %d entries for one port's 256 Identifiers, want 256", n)
	}
	// The index keeps half the authenticator: a request that differs
	// from the cached one only in the other half is still new.
	k := dedupKey{client: "c", src: src, id: 7, auth: [16]byte{9: 1}}
	e, st, _ := c.begin(k, now)
	if st != dedupNew {
		t.Fatalf("authenticator %x: state %v, want new", k.auth, st)
	}
	c.finish(e, []byte{1})
	k.auth[9] = 2
	if _, st, _ := c.begin(k, now); st != dedupNew {
		t.Fatalf("authenticator %x, same first half as the cached one: state %v, want new", k.auth, st)
	}
}
