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

	"github.com/gatewayd/gatewayd/config"
)

// Config is the [radius] block of gatewayd.toml. The daemon's loader calls
// Defaults, decodes the file over it (each [[radius.client]] starting from
// Client.Defaults) and calls Validate, which runs the checks New runs.
type Config struct {
	// Listen holds UDP addresses to bind, "127.0.0.1:1812", "[::1]:1812".
	// Empty in a Config built in code means ":1812"; in the file, an
	// empty list turns RADIUS off.
	Listen []string `toml:"listen"`
	// Clients are the NASes allowed to talk to us (SPEC 8).
	Clients []Client `toml:"client"`
	// ReplyGroups map a gateway group to attributes sent in Access-Accept.
	ReplyGroups []ReplyGroup `toml:"reply_group"`
	// Workers bounds the requests handled at once. Zero picks
	// DefaultWorkers(). Up to 4*Workers more wait in a queue; beyond that
	// packets are dropped (reason "overload") and the NAS retransmits.
	Workers int `toml:"workers"`
	// ReplyMessage, when set, is sent in every Access-Accept and
	// Access-Reject. By default no Reply-Message is sent.
	ReplyMessage string `toml:"reply_message"`
	// EAP is the [radius.eap] block (EAP-TTLS for WiFi); off without
	// cert_file.
	EAP EAPConfig `toml:"eap"`
}

// Defaults sets the [radius] defaults: no listener, no clients, EAP off.
func (c *Config) Defaults() {
	*c = Config{}
	c.EAP.Defaults()
}

// Enabled reports whether the block names a listener.
func (c *Config) Enabled() bool { return len(c.Listen) > 0 }

// Validate checks what New checks: listeners, clients (names, networks,
// secrets), reply groups against the dictionaries, limits. A block with
// no listener is still checked: its clients are reloaded on SIGHUP.
func (c *Config) Validate() error {
	var errs []error
	for i, l := range c.Listen {
		if err := config.CheckListen(l); err != nil {
			// At "listen": the file's lines are known per key, not per
			// entry of a list ("listen[1]" would land on [radius]).
			errs = append(errs, config.Errorf("listen", "entry %d: %v", i+1, err))
		}
	}
	if t, err := compileClients(c.Clients); err != nil {
		errs = append(errs, err)
	} else {
		t.wipe() // compiled only to check; the copies of the secrets go now
	}
	if _, err := compileReplyGroups(c.ReplyGroups); err != nil {
		errs = append(errs, err)
	}
	if len(c.ReplyMessage) > 1024 {
		errs = append(errs, config.Errorf("reply_message", "is %d bytes; at most 1024", len(c.ReplyMessage)))
	}
	if c.Workers < 0 {
		errs = append(errs, config.Errorf("workers", "must not be negative (0 picks a default), got %d", c.Workers))
	}
	if err := c.EAP.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Client is one RADIUS client (NAS), a [[radius.client]] block: the source
// networks it sends from and the shared secret it signs with.
type Client struct {
	Name string `toml:"name"`
	// Networks the client's packets come from. The most specific network
	// containing a packet's source address picks the client.
	Networks Networks `toml:"networks"`
	// Secret is the shared secret, a reference in the file.
	Secret config.Secret `toml:"secret"`
	// RequireMessageAuthenticator drops Access-Requests that carry no
	// Message-Authenticator (BlastRADIUS, CVE-2024-3596). Defaults sets it
	// true; a zero Client has it false.
	RequireMessageAuthenticator bool `toml:"require_message_authenticator"`
}

// Networks are a client's source networks, written as CIDR strings.
type Networks []netip.Prefix

// UnmarshalTOML reads a list of CIDRs, naming the one that does not parse.
func (n *Networks) UnmarshalTOML(v any) error {
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("networks must be a list of CIDRs, like [\"192.0.2.0/24\", \"2001:db8::/32\"]")
	}
	out := make(Networks, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR (write 192.0.2.0/24 or 2001:db8::/32)", e)
		}
		out = append(out, p)
	}
	*n = out
	return nil
}

// Defaults sets a [[radius.client]] block's defaults.
func (c *Client) Defaults() { *c = Client{RequireMessageAuthenticator: true} }

// ReplyGroup attaches reply attributes to the members of a group, a
// [[radius.reply_group]] block.
type ReplyGroup struct {
	// Group is the gateway group's name (case-insensitive).
	Group string `toml:"group"`
	// Priority orders groups when a user is in several: the lower number
	// wins; equal priorities are ordered by group name. See README.
	Priority int `toml:"priority"`
	// Attributes in the order they are sent, written FreeRADIUS style
	// ("Name = Value"). Name may carry an RFC 2868 tag:
	// "Tunnel-Private-Group-Id:1".
	Attributes []ReplyAttribute `toml:"attributes"`
}

// ReplyAttribute is one attribute as written in the configuration.
type ReplyAttribute struct {
	Name  string
	Value string
}

// UnmarshalText reads the "Name = Value" form (see ParseReplyAttribute).
func (a *ReplyAttribute) UnmarshalText(b []byte) error {
	v, err := ParseReplyAttribute(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
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
	mac       *macKey // the secret's HMAC-MD5 key schedule
	requireMA bool
}

// clientTable finds the client for a source address: longest prefix wins.
type clientTable struct {
	byPrefix map[netip.Prefix]*client
	v4bits   []int // distinct prefix lengths present, longest first
	v6bits   []int
	clients  []*client
}

// wipe zeroes the table's copies of the shared secrets.
func (t *clientTable) wipe() {
	for _, c := range t.clients {
		clear(c.secret)
		c.mac.wipe()
	}
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
		at := func(key string) string { return fmt.Sprintf("client[%d].%s", i, key) }
		if name == "" {
			errs = append(errs, config.Errorf(at("name"), "radius client #%d: name is empty", i+1))
			name = fmt.Sprintf("#%d", i+1)
		} else if names[strings.ToLower(name)] {
			errs = append(errs, config.Errorf(at("name"), "radius client %q: the name is used twice", name))
		}
		names[strings.ToLower(name)] = true
		// A reference that did not resolve was reported by the loader.
		if c.Secret.Value.IsEmpty() && !c.Secret.IsSet() {
			errs = append(errs, config.Errorf(at("secret"), "radius client %q: secret is empty (%s)", name, config.ErrSecretRequired))
		}
		if len(c.Networks) == 0 {
			errs = append(errs, config.Errorf(at("networks"), "radius client %q: no networks (list the CIDRs its packets come from)", name))
		}
		cl := &client{name: name, secret: c.Secret.Value.Clone().Bytes(), requireMA: c.RequireMessageAuthenticator}
		cl.mac = newMACKey(cl.secret)
		t.clients = append(t.clients, cl)
		for _, p := range c.Networks {
			if !p.IsValid() {
				errs = append(errs, config.Errorf(at("networks"), "radius client %q: invalid network", name))
				continue
			}
			if p.Addr().Is4In6() {
				errs = append(errs, config.Errorf(at("networks"), "radius client %q: network %s: write IPv4 networks in IPv4 form", name, p))
				continue
			}
			p = p.Masked()
			if prev, dup := owner[p]; dup {
				if prev == name {
					errs = append(errs, config.Errorf(at("networks"), "radius client %q: network %s is listed twice", name, p))
				} else {
					errs = append(errs, config.Errorf(at("networks"), "radius clients %q and %q both claim network %s", prev, name, p))
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
		at := func(key string) string { return fmt.Sprintf("reply_group[%d].%s", i, key) }
		name := strings.TrimSpace(g.Group)
		if name == "" {
			errs = append(errs, config.Errorf(at("group"), "radius reply group #%d: group is empty", i+1))
			continue
		}
		if seen[strings.ToLower(name)] {
			errs = append(errs, config.Errorf(at("group"), "radius reply group %q is configured twice", name))
			continue
		}
		seen[strings.ToLower(name)] = true
		if len(g.Attributes) == 0 {
			errs = append(errs, config.Errorf(at("attributes"), "radius reply group %q: no attributes", name))
		}
		rg := &replyGroup{name: name, priority: g.Priority}
		keys := make(map[string]bool)
		size := 0
		for _, a := range g.Attributes {
			ca, err := compileAttribute(a.Name, a.Value)
			if err != nil {
				errs = append(errs, config.Errorf(at("attributes"), "radius reply group %q: %v", name, err))
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
			errs = append(errs, config.Errorf(at("attributes"), "radius reply group %q: attributes take %d bytes; at most 2048", name, size))
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
