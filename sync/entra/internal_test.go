package entra

import (
	"encoding/json"
	"testing"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
	gsync "github.com/gatewayd/gatewayd/sync"
)

func TestUserPath(t *testing.T) {
	cases := map[string]string{
		"alice@contoso.com":                    "/users/alice@contoso.com",
		"o'neil@contoso.com":                   "/users/o%27neil@contoso.com",
		"jdoe_x.com#EXT#@contoso.com":          "/users/jdoe_x.com%23EXT%23@contoso.com",
		"a+b@c.com":                            "/users/a%2Bb@c.com",
		"50%@c.com":                            "/users/50%25@c.com",
		"q?/x@c.com":                           "/users/q%3F%2Fx@c.com",
		"$svc@c.com":                           "/users('%24svc@c.com')",
		"$o'k@c.com":                           "/users('%24o%27%27k@c.com')",
		"7a1c2f3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b": "/users/7a1c2f3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b",
		"é@c.com":                              "/users/%C3%A9@c.com",
	}
	for in, want := range cases {
		if got := userPath(in); got != want {
			t.Errorf("userPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBodyWithPassword(t *testing.T) {
	for _, pw := range []string{
		"Simple-Pass-1",
		`quote"back\slash`,
		"tab\tnew\nline\r\x01\x1f",
		"ünïcødé-Pässwörd-€-😀",
		"</script>&<>",
	} {
		body, err := bodyWithPassword(map[string]any{"displayName": "X", "accountEnabled": true}, []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		if len(body) != cap(body) {
			t.Errorf("%q: buffer grew (len %d cap %d): a stray copy may remain", pw, len(body), cap(body))
		}
		var got struct {
			DisplayName     string `json:"displayName"`
			AccountEnabled  bool   `json:"accountEnabled"`
			PasswordProfile struct {
				Password string `json:"password"`
				Force    *bool  `json:"forceChangePasswordNextSignIn"`
			} `json:"passwordProfile"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%q: invalid JSON: %v", pw, err)
		}
		if got.PasswordProfile.Password != pw || got.DisplayName != "X" || !got.AccountEnabled ||
			got.PasswordProfile.Force == nil || *got.PasswordProfile.Force {
			t.Fatalf("%q: decoded %+v", pw, got)
		}
		wipe(body)
		for _, b := range body {
			if b != 0 {
				t.Fatal("wipe left bytes")
			}
		}
	}
	body, err := bodyWithPassword(nil, []byte("Only-Pass-1"))
	if err != nil || string(body) != `{"passwordProfile":{"forceChangePasswordNextSignIn":false,"password":"Only-Pass-1"}}` {
		t.Fatalf("%s %v", body, err)
	}
	if _, err := bodyWithPassword(nil, []byte{0xff, 'a'}); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
}

func TestGeneratedPasswordsMeetEntraComplexity(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 300; i++ {
		pw := generatePassword()
		if !fakegraph.Complex(string(pw)) {
			t.Fatalf("generated password fails Entra's rule")
		}
		if seen[string(pw)] {
			t.Fatal("repeated password")
		}
		seen[string(pw)] = true
	}
}

func TestNames(t *testing.T) {
	cases := []struct {
		a             gsync.Account
		display, nick string
	}{
		{gsync.Account{UPN: "a@b.c", DisplayName: "Ann B"}, "Ann B", "a"},
		{gsync.Account{UPN: "a@b.c", GivenName: "Ann", Surname: "Bee"}, "Ann Bee", "a"},
		{gsync.Account{UPN: "ann.bee@b.c"}, "ann.bee", "ann.bee"},
		{gsync.Account{UPN: "x@b.c", MailNickname: "jean (dupont)"}, "x", "jeandupont"},
		{gsync.Account{UPN: "@b.c", MailNickname: "é"}, "", "user"},
	}
	for _, tc := range cases {
		if d, n := displayName(tc.a), mailNickname(tc.a); d != tc.display || n != tc.nick {
			t.Errorf("%+v: got %q %q, want %q %q", tc.a, d, n, tc.display, tc.nick)
		}
	}
}

func TestScrub(t *testing.T) {
	if got := scrub("bad password Hunter2-x here", []byte("Hunter2-x")); got != "bad password [redacted] here" {
		t.Fatal(got)
	}
	if got := scrub("abc", []byte("ab")); got != "abc" {
		t.Fatal("short secrets are not scrubbed (they would mangle text)")
	}
}
