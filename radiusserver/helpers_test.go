package radiusserver

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/secret"
	"github.com/gatewayd/gatewayd/store"
)

const testSecret = "s3cret-for-tests-0123"

// event is what the fake Authenticator records per call.
type event struct {
	Identifier string
	OK         bool
	Reason     authn.Reason
	Client     string
	Source     netip.Addr
	Station    string
	Protocol   authn.Protocol
}

type fakeUser struct {
	id       string
	password string
	groups   []string
}

// fakeAuth is a counting Authenticator over a map of users.
type fakeAuth struct {
	users map[string]fakeUser

	logins  atomic.Int64 // Login calls: "password work done"
	rejects atomic.Int64 // Reject calls

	mu     sync.Mutex
	events []event
	// kept holds every Password the server handed us, to check the
	// server wiped it after Login returned.
	kept []secret.String

	delay   time.Duration // each Login sleeps this long
	panicOn string        // Login panics for this identifier
}

func newFakeAuth() *fakeAuth {
	return &fakeAuth{users: map[string]fakeUser{
		"alice": {id: "u-alice", password: "alicepass", groups: []string{"staff"}},
		"bob":   {id: "u-bob", password: "bobpass", groups: []string{"Staff", "guests", "voip"}},
		"carol": {id: "u-carol", password: "carolpass"},
		"dave":  {id: "u-dave", password: "a password of exactly thirty-two", groups: []string{"guests"}},
	}}
}

func (f *fakeAuth) Login(ctx context.Context, req authn.Request) authn.Result {
	f.logins.Add(1)
	if f.panicOn != "" && req.Identifier == f.panicOn {
		panic("fake authenticator panic for " + req.Identifier)
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
		}
	}
	res := authn.Result{Reason: authn.ReasonNoSuchUser}
	if u, ok := f.users[req.Identifier]; ok {
		res.User = &store.User{ID: u.id, Username: req.Identifier}
		if req.Password.Equal(secret.FromString(u.password)) {
			res.OK, res.Reason = true, authn.ReasonNone
		} else {
			res.Reason = authn.ReasonBadPassword
		}
	}
	f.record(req, res.OK, res.Reason)
	f.mu.Lock()
	f.kept = append(f.kept, req.Password)
	f.mu.Unlock()
	return res
}

func (f *fakeAuth) Reject(_ context.Context, req authn.Request, reason authn.Reason) {
	f.rejects.Add(1)
	f.record(req, false, reason)
}

func (f *fakeAuth) record(req authn.Request, ok bool, reason authn.Reason) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event{
		Identifier: req.Identifier, OK: ok, Reason: reason,
		Client: req.Client, Source: req.Source, Station: req.Station, Protocol: req.Protocol,
	})
}

func (f *fakeAuth) Events() []event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]event(nil), f.events...)
}

func (f *fakeAuth) GroupNamesOf(userID string) []string {
	for _, u := range f.users {
		if u.id == userID {
			return u.groups
		}
	}
	return nil
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RADIUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testClient(name, sec string, requireMA bool, cidrs ...string) Client {
	var ps []netip.Prefix
	for _, c := range cidrs {
		ps = append(ps, netip.MustParsePrefix(c))
	}
	return Client{Name: name, Networks: ps, Secret: config.Secret{Value: secret.FromString(sec)}, RequireMessageAuthenticator: requireMA}
}

// vlanGroups is the reply configuration most tests use.
func vlanGroups() []ReplyGroup {
	return []ReplyGroup{
		{Group: "staff", Priority: 10, Attributes: []ReplyAttribute{
			{"Tunnel-Type", "VLAN"}, {"Tunnel-Medium-Type", "IEEE-802"}, {"Tunnel-Private-Group-ID", "42"},
			{"Filter-Id", "staff-acl"}, {"Class", "staff"},
		}},
		{Group: "guests", Priority: 20, Attributes: []ReplyAttribute{
			{"Tunnel-Type", "VLAN"}, {"Tunnel-Medium-Type", "IEEE-802"}, {"Tunnel-Private-Group-ID", "99"},
			{"Session-Timeout", "3600"}, {"Filter-Id", "guest-acl"},
		}},
		{Group: "voip", Priority: 30, Attributes: []ReplyAttribute{
			{"Aruba-User-Role", "voice"}, {"Session-Timeout", "86400"},
		}},
	}
}

// newTestServer builds a Server (not serving) with its own registry.
func newTestServer(t testing.TB, cfg Config, auth *fakeAuth) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var groups GroupResolver
	if auth != nil {
		groups = auth
	}
	s, err := New(cfg, auth, groups, testLogger(t), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, reg
}

// startServer runs Serve until the test ends.
func startServer(t testing.TB, cfg Config, auth *fakeAuth) (*Server, *prometheus.Registry) {
	t.Helper()
	s, reg := newTestServer(t, cfg, auth)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("server not ready")
	}
	if len(s.Addrs()) == 0 {
		select {
		case err := <-done:
			t.Fatalf("Serve: %v", err)
		default:
			t.Fatal("server has no addresses")
		}
	}
	return s, reg
}

func dropped(reg *prometheus.Registry, s *Server, reason string) float64 {
	return promtest.ToFloat64(s.m.dropped.WithLabelValues(reason))
}

func requests(s *Server, client, outcome string) float64 {
	return promtest.ToFloat64(s.m.requests.WithLabelValues(client, outcome))
}

// request describes a test Access-Request.
type request struct {
	code     radius.Code
	id       byte
	user     string
	password string
	noMA     bool
	badMA    bool
	extra    func(p *radius.Packet)
	secret   string // for encoding; default testSecret
}

// encode builds the request bytes (with a correct Message-Authenticator
// unless noMA/badMA) and returns them with the request authenticator.
func (r request) encode(t testing.TB) ([]byte, [16]byte) {
	t.Helper()
	sec := []byte(r.secret)
	if r.secret == "" {
		sec = []byte(testSecret)
	}
	code := r.code
	if code == 0 {
		code = radius.CodeAccessRequest
	}
	p := radius.New(code, sec)
	p.Identifier = r.id
	if r.user != "" {
		if err := rfc2865.UserName_SetString(p, r.user); err != nil {
			t.Fatal(err)
		}
	}
	if r.password != "" {
		if err := rfc2865.UserPassword_SetString(p, r.password); err != nil {
			t.Fatal(err)
		}
	}
	if r.extra != nil {
		r.extra(p)
	}
	if !r.noMA {
		p.Add(rfc2869.MessageAuthenticator_Type, make([]byte, 16))
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !r.noMA {
		signRequest(b, sec)
		if r.badMA {
			f, _ := preparse(b)
			b[f.maOff] ^= 0xff
		}
	}
	return b, p.Authenticator
}

// signRequest fills in the Message-Authenticator of an encoded request.
func signRequest(b, sec []byte) {
	f, err := preparse(b)
	if err != nil || f.maOff == 0 {
		return
	}
	copy(b[f.maOff:f.maOff+16], zero16[:])
	mac := hmac.New(md5.New, sec)
	mac.Write(f.b)
	copy(b[f.maOff:], mac.Sum(nil))
}

// parseResponse checks a response's authenticators and decodes it.
func parseResponse(t testing.TB, resp []byte, reqAuth [16]byte, sec string) *radius.Packet {
	t.Helper()
	if sec == "" {
		sec = testSecret
	}
	if !verifyResponse(resp, reqAuth, []byte(sec)) {
		t.Fatalf("response does not verify (Response Authenticator or Message-Authenticator)")
	}
	if len(resp) < 22 || resp[20] != byte(rfc2869.MessageAuthenticator_Type) || resp[21] != 18 {
		t.Fatalf("Message-Authenticator is not the first attribute: % x", resp[20:min(len(resp), 24)])
	}
	p, err := radius.Parse(resp, []byte(sec))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
