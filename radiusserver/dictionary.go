package radiusserver

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2868"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/rfc3580"
	"layeh.com/radius/rfc4675"
	"layeh.com/radius/rfc4849"
	"layeh.com/radius/vendors/aruba"
	"layeh.com/radius/vendors/microsoft"
	"layeh.com/radius/vendors/mikrotik"
	"layeh.com/radius/vendors/wispr"
)

// The reply attributes an administrator may attach to a group. The set is
// deliberately curated: attributes a NAS acts on in an Access-Accept
// (VLAN assignment, filters, timeouts, roles). Attribute numbers, vendor
// numbers and value names come from the layeh.com/radius dictionaries
// (rfc2865, rfc2868 + rfc3580, rfc2869, rfc3162, rfc4675, rfc4849 and
// vendors/{aruba,microsoft,mikrotik,wispr}); nothing is typed in twice.
//
// Attributes that the server owns (Message-Authenticator, Proxy-State,
// Reply-Message, State, EAP-Message) or that carry secrets
// (User-Password, Tunnel-Password, MS-MPPE keys) are not in the set.

type attrKind int

const (
	kindString  attrKind = iota // text, 1..253 bytes
	kindOctets                  // text or 0x-prefixed hex
	kindInteger                 // uint32, decimal or a VALUE name
	kindIPAddr                  // IPv4 address
)

// attrDef is one dictionary entry.
type attrDef struct {
	name   string      // the dictionary spelling
	typ    radius.Type // attribute number, or the vendor type when vendor != 0
	vendor uint32
	kind   attrKind
	tagged bool // RFC 2868 tag (Tunnel-* attributes)
	// values maps lower-cased VALUE names to numbers (integer kinds).
	values *enum
	// family groups attributes that describe one thing for the
	// precedence rule: all Tunnel-* attributes with one tag are one tunnel.
	family string
}

// enum is a VALUE table: lower-cased names to numbers, and the names in
// dictionary spelling for error messages.
type enum struct {
	byName map[string]uint32
	names  []string
}

// enumValues copies a layeh VALUE table.
func enumValues[T ~uint32](m map[T]string) *enum {
	e := &enum{byName: make(map[string]uint32, len(m))}
	for v, name := range m {
		e.byName[strings.ToLower(name)] = uint32(v)
		e.names = append(e.names, name)
	}
	sort.Strings(e.names)
	return e
}

// vendorProbe runs one of layeh's generated vendor *_Add functions on a
// scratch packet and reads back the vendor number and vendor type it
// encoded, so that those numbers come from the layeh dictionaries.
func vendorProbe(add func(p *radius.Packet) error) (vendor uint32, typ radius.Type) {
	p := &radius.Packet{}
	if err := add(p); err != nil || len(p.Attributes) != 1 || p.Attributes[0].Type != rfc2865.VendorSpecific_Type {
		panic(fmt.Sprintf("radiusserver: vendor dictionary probe failed: %v", err))
	}
	a := p.Attributes[0].Attribute
	if len(a) < 6 {
		panic("radiusserver: vendor dictionary probe: short VSA")
	}
	return binary.BigEndian.Uint32(a[:4]), radius.Type(a[4])
}

func vendorDef(name string, kind attrKind, values *enum, add func(p *radius.Packet) error) *attrDef {
	v, t := vendorProbe(add)
	return &attrDef{name: name, typ: t, vendor: v, kind: kind, values: values}
}

// replyDictionary is keyed by the lower-cased attribute name.
var replyDictionary = buildReplyDictionary()

func buildReplyDictionary() map[string]*attrDef {
	// rfc3580 adds Tunnel-Type = VLAN (13) to rfc2868's table in its init;
	// naming the constant keeps the import and documents the dependency.
	_ = rfc3580.TunnelType_Value_VLAN
	tunnel := func(name string, typ radius.Type, kind attrKind, values *enum) *attrDef {
		return &attrDef{name: name, typ: typ, kind: kind, tagged: true, values: values, family: "Tunnel"}
	}
	defs := []*attrDef{
		// RFC 2865
		{name: "Service-Type", typ: rfc2865.ServiceType_Type, kind: kindInteger, values: enumValues(rfc2865.ServiceType_Strings)},
		{name: "Framed-Protocol", typ: rfc2865.FramedProtocol_Type, kind: kindInteger, values: enumValues(rfc2865.FramedProtocol_Strings)},
		{name: "Framed-IP-Address", typ: rfc2865.FramedIPAddress_Type, kind: kindIPAddr},
		{name: "Framed-IP-Netmask", typ: rfc2865.FramedIPNetmask_Type, kind: kindIPAddr},
		{name: "Framed-Routing", typ: rfc2865.FramedRouting_Type, kind: kindInteger, values: enumValues(rfc2865.FramedRouting_Strings)},
		{name: "Filter-Id", typ: rfc2865.FilterID_Type, kind: kindString},
		{name: "Framed-MTU", typ: rfc2865.FramedMTU_Type, kind: kindInteger},
		{name: "Framed-Route", typ: rfc2865.FramedRoute_Type, kind: kindString},
		{name: "Class", typ: rfc2865.Class_Type, kind: kindOctets},
		{name: "Session-Timeout", typ: rfc2865.SessionTimeout_Type, kind: kindInteger},
		{name: "Idle-Timeout", typ: rfc2865.IdleTimeout_Type, kind: kindInteger},
		{name: "Termination-Action", typ: rfc2865.TerminationAction_Type, kind: kindInteger, values: enumValues(rfc2865.TerminationAction_Strings)},
		{name: "Port-Limit", typ: rfc2865.PortLimit_Type, kind: kindInteger},
		// RFC 2868 (+ RFC 3580 Tunnel-Type = VLAN)
		tunnel("Tunnel-Type", rfc2868.TunnelType_Type, kindInteger, enumValues(rfc2868.TunnelType_Strings)),
		tunnel("Tunnel-Medium-Type", rfc2868.TunnelMediumType_Type, kindInteger, enumValues(rfc2868.TunnelMediumType_Strings)),
		tunnel("Tunnel-Client-Endpoint", rfc2868.TunnelClientEndpoint_Type, kindString, nil),
		tunnel("Tunnel-Server-Endpoint", rfc2868.TunnelServerEndpoint_Type, kindString, nil),
		tunnel("Tunnel-Private-Group-Id", rfc2868.TunnelPrivateGroupID_Type, kindString, nil),
		tunnel("Tunnel-Assignment-Id", rfc2868.TunnelAssignmentID_Type, kindString, nil),
		tunnel("Tunnel-Preference", rfc2868.TunnelPreference_Type, kindInteger, nil),
		tunnel("Tunnel-Client-Auth-Id", rfc2868.TunnelClientAuthID_Type, kindString, nil),
		tunnel("Tunnel-Server-Auth-Id", rfc2868.TunnelServerAuthID_Type, kindString, nil),
		// RFC 2869
		{name: "Acct-Interim-Interval", typ: rfc2869.AcctInterimInterval_Type, kind: kindInteger},
		{name: "Framed-Pool", typ: rfc2869.FramedPool_Type, kind: kindString},
		// RFC 3162
		{name: "Framed-IPv6-Pool", typ: rfc3162.FramedIPv6Pool_Type, kind: kindString},
		{name: "Framed-IPv6-Route", typ: rfc3162.FramedIPv6Route_Type, kind: kindString},
		// RFC 4675
		{name: "Egress-VLANID", typ: rfc4675.EgressVLANID_Type, kind: kindInteger},
		{name: "Egress-VLAN-Name", typ: rfc4675.EgressVLANName_Type, kind: kindString},
		// RFC 4849
		{name: "NAS-Filter-Rule", typ: rfc4849.NASFilterRule_Type, kind: kindString},
		// Vendors
		vendorDef("Aruba-User-Role", kindString, nil, func(p *radius.Packet) error { return aruba.ArubaUserRole_AddString(p, "x") }),
		vendorDef("Aruba-User-Vlan", kindInteger, nil, func(p *radius.Packet) error { return aruba.ArubaUserVlan_Add(p, 1) }),
		vendorDef("Aruba-Named-User-Vlan", kindString, nil, func(p *radius.Packet) error { return aruba.ArubaNamedUserVlan_AddString(p, "x") }),
		vendorDef("Aruba-User-Group", kindString, nil, func(p *radius.Packet) error { return aruba.ArubaUserGroup_AddString(p, "x") }),
		vendorDef("MS-Primary-DNS-Server", kindIPAddr, nil, func(p *radius.Packet) error {
			return microsoft.MSPrimaryDNSServer_Add(p, []byte{192, 0, 2, 1})
		}),
		vendorDef("MS-Secondary-DNS-Server", kindIPAddr, nil, func(p *radius.Packet) error {
			return microsoft.MSSecondaryDNSServer_Add(p, []byte{192, 0, 2, 1})
		}),
		vendorDef("Mikrotik-Group", kindString, nil, func(p *radius.Packet) error { return mikrotik.MikrotikGroup_AddString(p, "x") }),
		vendorDef("Mikrotik-Rate-Limit", kindString, nil, func(p *radius.Packet) error { return mikrotik.MikrotikRateLimit_AddString(p, "x") }),
		vendorDef("Mikrotik-Address-List", kindString, nil, func(p *radius.Packet) error { return mikrotik.MikrotikAddressList_AddString(p, "x") }),
		vendorDef("Mikrotik-Wireless-VLANID", kindInteger, nil, func(p *radius.Packet) error { return mikrotik.MikrotikWirelessVLANID_Add(p, 1) }),
		vendorDef("Mikrotik-Wireless-VLANIDtype", kindInteger, enumValues(mikrotik.MikrotikWirelessVLANIDtype_Strings),
			func(p *radius.Packet) error { return mikrotik.MikrotikWirelessVLANIDtype_Add(p, 0) }),
		vendorDef("WISPr-Redirection-URL", kindString, nil, func(p *radius.Packet) error { return wispr.WISPrRedirectionURL_AddString(p, "x") }),
		vendorDef("WISPr-Bandwidth-Max-Up", kindInteger, nil, func(p *radius.Packet) error { return wispr.WISPrBandwidthMaxUp_Add(p, 1) }),
		vendorDef("WISPr-Bandwidth-Max-Down", kindInteger, nil, func(p *radius.Packet) error { return wispr.WISPrBandwidthMaxDown_Add(p, 1) }),
		vendorDef("WISPr-Session-Terminate-Time", kindString, nil, func(p *radius.Packet) error {
			return wispr.WISPrSessionTerminateTime_AddString(p, "x")
		}),
	}
	m := make(map[string]*attrDef, len(defs))
	for _, d := range defs {
		if d.family == "" {
			d.family = d.name
		}
		m[strings.ToLower(d.name)] = d
	}
	return m
}

// SupportedReplyAttributes lists the attribute names accepted in a reply
// group, in dictionary spelling (names are matched case-insensitively).
func SupportedReplyAttributes() []string {
	out := make([]string, 0, len(replyDictionary))
	for _, d := range replyDictionary {
		out = append(out, d.name)
	}
	sort.Strings(out)
	return out
}

// compiledAttr is one configured reply attribute, encoded once at New.
type compiledAttr struct {
	avp *radius.AVP
	// key is the precedence unit: family plus tag.
	key string
}

// compileAttribute validates name/value against the dictionary and returns
// the wire attribute. name may carry a tag suffix, "Tunnel-Type:1".
func compileAttribute(name, value string) (compiledAttr, error) {
	base, tag, hasTag := name, 0, false
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		n, err := strconv.Atoi(name[i+1:])
		if err != nil || n < 0 || n > 0x1f {
			return compiledAttr{}, fmt.Errorf("attribute %q: the tag after ':' must be a number from 0 to 31", name)
		}
		base, tag, hasTag = name[:i], n, true
	}
	d := replyDictionary[strings.ToLower(strings.TrimSpace(base))]
	if d == nil {
		return compiledAttr{}, fmt.Errorf("attribute %q is not a supported reply attribute (supported: %s)",
			base, strings.Join(SupportedReplyAttributes(), ", "))
	}
	if hasTag && !d.tagged {
		return compiledAttr{}, fmt.Errorf("attribute %q takes no tag", d.name)
	}
	v, err := d.encodeValue(byte(tag), value)
	if err != nil {
		return compiledAttr{}, fmt.Errorf("attribute %s: %w", d.name, err)
	}
	avp := &radius.AVP{Type: d.typ, Attribute: v}
	if d.vendor != 0 {
		if len(v) > 247 {
			return compiledAttr{}, fmt.Errorf("attribute %s: value too long (%d bytes; at most 247 in a vendor attribute)", d.name, len(v))
		}
		sub := make(radius.Attribute, 0, 2+len(v))
		sub = append(sub, byte(d.typ), byte(2+len(v)))
		sub = append(sub, v...)
		vsa, err := radius.NewVendorSpecific(d.vendor, sub)
		if err != nil {
			return compiledAttr{}, fmt.Errorf("attribute %s: %w", d.name, err)
		}
		avp = &radius.AVP{Type: rfc2865.VendorSpecific_Type, Attribute: vsa}
	}
	if len(avp.Attribute) > 253 {
		return compiledAttr{}, fmt.Errorf("attribute %s: value too long (%d bytes; at most 253)", d.name, len(avp.Attribute))
	}
	return compiledAttr{avp: avp, key: d.family + ":" + strconv.Itoa(tag)}, nil
}

func (d *attrDef) encodeValue(tag byte, value string) (radius.Attribute, error) {
	switch d.kind {
	case kindString, kindOctets:
		b := []byte(value)
		if d.kind == kindOctets && len(value) > 2 && (strings.HasPrefix(value, "0x") || strings.HasPrefix(value, "0X")) {
			var err error
			if b, err = hex.DecodeString(value[2:]); err != nil {
				return nil, fmt.Errorf("value %q: bad hex after 0x: %v", value, err)
			}
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("value must not be empty")
		}
		if d.tagged {
			// RFC 2868 §3: a string's tag octet is optional when it is
			// 0 and the first byte cannot be read as a tag (> 0x1f).
			if tag != 0 || b[0] <= 0x1f {
				b = append([]byte{tag}, b...)
			}
		}
		if len(b) > 253 {
			return nil, fmt.Errorf("value too long (%d bytes; at most 253)", len(b))
		}
		return radius.Attribute(b), nil
	case kindInteger:
		n, err := d.parseInteger(value)
		if err != nil {
			return nil, err
		}
		a := radius.NewInteger(n)
		if d.tagged {
			if n > 0xffffff {
				return nil, fmt.Errorf("value %d too large for a tagged integer (at most 16777215)", n)
			}
			a[0] = tag
		}
		return a, nil
	case kindIPAddr:
		ip, err := netip.ParseAddr(strings.TrimSpace(value))
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("value %q is not an IPv4 address", value)
		}
		b := ip.As4()
		return radius.Attribute(b[:]), nil
	}
	return nil, fmt.Errorf("unsupported attribute type")
}

func (d *attrDef) parseInteger(value string) (uint32, error) {
	s := strings.TrimSpace(value)
	if d.values != nil {
		if n, ok := d.values.byName[strings.ToLower(s)]; ok {
			return n, nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		if d.values != nil && len(d.values.names) > 0 {
			return 0, fmt.Errorf("value %q is neither a number nor one of: %s", value, strings.Join(d.values.names, ", "))
		}
		return 0, fmt.Errorf("value %q is not a number from 0 to 4294967295", value)
	}
	return uint32(n), nil
}
