package radiusserver

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/gatewayd/gatewayd/secret"
)

// Config is the [radius] block of the daemon's configuration, already
// decoded (the config package maps TOML onto it; secrets resolved).
type Config struct {
	// Listen holds UDP addresses to bind, "127.0.0.1:1812", "[::1]:1812".
	// Empty means ":1812" (every address, IPv4 and IPv6).
	Listen []string
	// Clients are the NASes allowed to talk to us (SPEC 8).
	Clients []Client
	// ReplyGroups map a gateway group to attributes sent in Access-Accept.
	ReplyGroups []ReplyGroup
	// Workers bounds the requests handled at once. Zero picks
	// DefaultWorkers(). Up to 4*Workers more wait in a queue; beyond that
	// packets are dropped (reason "overload") and the NAS retransmits.
	Workers int
	// ReplyMessage, when set, is sent in every Access-Accept and
	// Access-Reject. By default no Reply-Message is sent.
	ReplyMessage string
}

// Client is one RADIUS client (NAS): the source networks it sends from and
// the shared secret it signs with.
type Client struct {
	Name string
	// Networks the client's packets come from. The most specific network
	// containing a packet's source address picks the client.
	Networks []netip.Prefix
	Secret   secret.String
	// RequireMessageAuthenticator drops Access-Requests that carry no
	// Message-Authenticator (BlastRADIUS, CVE-2024-3596). The daemon's
	// configuration defaults it to true; a zero Client has it false.
	RequireMessageAuthenticator bool
}

// ReplyGroup attaches reply attributes to the members of a group.
type ReplyGroup struct {
	// Group is the gateway group's name (case-insensitive).
	Group string
	// Priority orders groups when a user is in several: the lower number
	// wins; equal priorities are ordered by group name. See README.
	Priority int
	// Attributes in the order they are sent. Name may carry an RFC 2868
	// tag: "Tunnel-Private-Group-Id:1".
	Attributes []ReplyAttribute
}

// ReplyAttribute is one attribute as written in the configuration.
type ReplyAttribute struct {
	Name  string
	Value string
}

// DefaultWorkers is the worker count used when Config.Workers is zero:
// 16 per CPU, at least 64. Workers mostly wait (on authn's bounded
// password hashing, or on an AD bind), so they are cheap to have many of;
// the hashing concurrency is bounded by authn, not here.
func DefaultWorkers() int {
	return max(64, 16*runtime.GOMAXPROCS(0))
}

// client is a validated Client, as the packet path uses it.
type client struct {
	name      string
	secret    []byte
	requireMA bool
}

// clientTable finds the client for a source address: longest prefix wins.
type clientTable struct {
	byPrefix map[netip.Prefix]*client
	v4bits   []int // distinct prefix lengths present, longest first
	v6bits   []int
	clients  []*client
}

func (t *clientTable) lookup(a netip.Addr) *client {
	if t == nil {
		return nil
	}
	a = a.Unmap().WithZone("")
	bits := t.v6bits
	if a.Is4() {
		bits = t.v4bits
	}
	for _, b := range bits {
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if c := t.byPrefix[p]; c != nil {
			return c
		}
	}
	return nil
}

// ValidateClients checks a client list: names present and unique,
// secrets present, networks valid, and no network claimed twice (the
// error names both clients).
func ValidateClients(clients []Client) error {
	_, err := compileClients(clients)
	return err
}

func compileClients(clients []Client) (*clientTable, error) {
	var errs []error
	t := &clientTable{byPrefix: make(map[netip.Prefix]*client)}
	owner := make(map[netip.Prefix]string)
	names := make(map[string]bool)
	v4, v6 := map[int]bool{}, map[int]bool{}
	for i, c := range clients {
		name := strings.TrimSpace(c.Name)
		if name == "" {
			errs = append(errs, fmt.Errorf("radius client #%d: name is empty", i+1))
			name = fmt.Sprintf("#%d", i+1)
		} else if names[strings.ToLower(name)] {
			errs = append(errs, fmt.Errorf("radius client %q: the name is used twice", name))
		}
		names[strings.ToLower(name)] = true
		if c.Secret.IsEmpty() {
			errs = append(errs, fmt.Errorf("radius client %q: secret is empty", name))
		}
		if len(c.Networks) == 0 {
			errs = append(errs, fmt.Errorf("radius client %q: no networks", name))
		}
		cl := &client{name: name, secret: c.Secret.Clone().Bytes(), requireMA: c.RequireMessageAuthenticator}
		t.clients = append(t.clients, cl)
		for _, p := range c.Networks {
			if !p.IsValid() {
				errs = append(errs, fmt.Errorf("radius client %q: invalid network", name))
				continue
			}
			if p.Addr().Is4In6() {
				errs = append(errs, fmt.Errorf("radius client %q: network %s: write IPv4 networks in IPv4 form", name, p))
				continue
			}
			p = p.Masked()
			if prev, dup := owner[p]; dup {
				if prev == name {
					errs = append(errs, fmt.Errorf("radius client %q: network %s is listed twice", name, p))
				} else {
					errs = append(errs, fmt.Errorf("radius clients %q and %q both claim network %s", prev, name, p))
				}
				continue
			}
			owner[p] = name
			t.byPrefix[p] = cl
			if p.Addr().Is4() {
				v4[p.Bits()] = true
			} else {
				v6[p.Bits()] = true
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t.v4bits, t.v6bits = sortedDesc(v4), sortedDesc(v6)
	return t, nil
}

func sortedDesc(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for b := range m {
		out = append(out, b)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

// replyGroup is a compiled ReplyGroup.
type replyGroup struct {
	name     string // as configured
	priority int
	attrs    []compiledAttr
	keys     []string // distinct precedence keys this group sets
}

// replyPlan holds the reply groups in precedence order.
type replyPlan struct {
	ordered []*replyGroup
	byName  map[string]int // lower-cased name -> index in ordered
}

func compileReplyGroups(groups []ReplyGroup) (*replyPlan, error) {
	var errs []error
	plan := &replyPlan{byName: make(map[string]int)}
	seen := make(map[string]bool)
	for i, g := range groups {
		name := strings.TrimSpace(g.Group)
		if name == "" {
			errs = append(errs, fmt.Errorf("radius reply group #%d: group is empty", i+1))
			continue
		}
		if seen[strings.ToLower(name)] {
			errs = append(errs, fmt.Errorf("radius reply group %q is configured twice", name))
			continue
		}
		seen[strings.ToLower(name)] = true
		if len(g.Attributes) == 0 {
			errs = append(errs, fmt.Errorf("radius reply group %q: no attributes", name))
		}
		rg := &replyGroup{name: name, priority: g.Priority}
		keys := make(map[string]bool)
		size := 0
		for _, a := range g.Attributes {
			ca, err := compileAttribute(a.Name, a.Value)
			if err != nil {
				errs = append(errs, fmt.Errorf("radius reply group %q: %w", name, err))
				continue
			}
			size += 2 + len(ca.avp.Attribute)
			rg.attrs = append(rg.attrs, ca)
			if !keys[ca.key] {
				keys[ca.key] = true
				rg.keys = append(rg.keys, ca.key)
			}
		}
		if size > 2048 {
			errs = append(errs, fmt.Errorf("radius reply group %q: attributes take %d bytes; at most 2048", name, size))
		}
		plan.ordered = append(plan.ordered, rg)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(plan.ordered, func(i, j int) bool {
		a, b := plan.ordered[i], plan.ordered[j]
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		return strings.ToLower(a.name) < strings.ToLower(b.name)
	})
	for i, g := range plan.ordered {
		plan.byName[strings.ToLower(g.name)] = i
	}
	return plan, nil
}

// attributesFor returns the reply attributes for a member of groups.
// Groups are taken in precedence order (priority, then name); for each
// precedence key (an attribute, or a whole tunnel tag for Tunnel-*), the
// first group that sets it supplies all of its values and later groups'
// values for that key are ignored.
func (p *replyPlan) attributesFor(groups []string) []*radius.AVP {
	if p == nil || len(p.ordered) == 0 || len(groups) == 0 {
		return nil
	}
	var idx []int
	for _, g := range groups {
		if i, ok := p.byName[strings.ToLower(g)]; ok {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	sort.Ints(idx)
	var out []*radius.AVP
	taken := make(map[string]bool)
	last := -1
	for _, i := range idx {
		if i == last { // group listed twice
			continue
		}
		last = i
		g := p.ordered[i]
		for _, a := range g.attrs {
			if !taken[a.key] {
				out = append(out, a.avp)
			}
		}
		for _, k := range g.keys {
			taken[k] = true
		}
	}
	return out
}

// replyMessageAttrs splits a Reply-Message over as many attributes as it
// needs (RFC 2865 §5.18: the NAS concatenates them).
func replyMessageAttrs(msg string) []*radius.AVP {
	var out []*radius.AVP
	b := []byte(msg)
	for len(b) > 0 {
		n := min(len(b), 253)
		out = append(out, &radius.AVP{Type: rfc2865.ReplyMessage_Type, Attribute: radius.Attribute(append([]byte(nil), b[:n]...))})
		b = b[n:]
	}
	return out
}

// ParseReplyAttribute reads one entry of a reply group's attribute list
// as written in the configuration, FreeRADIUS style: `Name = Value`, the
// name optionally tagged (`Tunnel-Private-Group-Id:1 = 42`), the value
// optionally in double quotes (`Filter-Id = "guest acl"`). Only the form
// is checked here; New checks names and values against the dictionaries.
func ParseReplyAttribute(s string) (ReplyAttribute, error) {
	name, value, ok := strings.Cut(s, "=")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" {
		return ReplyAttribute{}, fmt.Errorf("reply attribute %q: want \"Name = Value\"", s)
	}
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	if value == "" {
		return ReplyAttribute{}, fmt.Errorf("reply attribute %q: empty value", s)
	}
	return ReplyAttribute{Name: name, Value: value}, nil
}
