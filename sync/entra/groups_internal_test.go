package entra

import (
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/secret"
	gsync "github.com/gatewayd/gatewayd/sync"
)

func TestRelLink(t *testing.T) {
	mk := func(graph string) *Connector {
		c, err := New(Config{TenantID: "t", ClientID: "c", ClientSecret: secret.FromString("s"), GraphURL: graph})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	def := mk("")
	proxied := mk("https://proxy.example.com/graph/")
	cases := []struct {
		c    *Connector
		link string
		want string // "" = refused
	}{
		{def, "https://graph.microsoft.com/v1.0/users?$filter=accountEnabled%20eq%20true&$skiptoken=RFNwdAIAAQAAAC", "/users?$filter=accountEnabled%20eq%20true&$skiptoken=RFNwdAIAAQAAAC"},
		{def, "https://GRAPH.microsoft.com:443/v1.0/groups/abc/members?$skiptoken=x", "/groups/abc/members?$skiptoken=x"},
		{def, "https://graph.microsoft.com/v1.0/users", "/users"},
		{def, "https://graph.microsoft.us/v1.0/users", ""},
		{def, "https://graph.microsoft.com.evil.example/v1.0/users", ""},
		{def, "https://evil.example/v1.0/users?x=https://graph.microsoft.com/v1.0/", ""},
		{def, "http://graph.microsoft.com/v1.0/users", ""},
		{def, "https://graph.microsoft.com:8443/v1.0/users", ""},
		{def, "https://graph.microsoft.com/beta/users", ""},
		{def, "https://graph.microsoft.com/v1.0/", ""},
		{def, "https://graph.microsoft.com/v1.0", ""},
		{def, "https://graph.microsoft.com/v1.0/../beta/users", ""},
		{def, "https://graph.microsoft.com/v1.0/users/%2e%2e/x", ""},
		{def, "https://graph.microsoft.com/v1.0//users", ""},
		{def, "https://user:pw@graph.microsoft.com/v1.0/users", ""},
		{def, "https://graph.microsoft.com/v1.0/users#frag", ""},
		{def, "//graph.microsoft.com/v1.0/users", ""},
		{def, "/v1.0/users", ""},
		{def, "https:graph.microsoft.com/v1.0/users", ""},
		{def, "", ""},
		{proxied, "https://proxy.example.com/graph/v1.0/users?$skiptoken=a", "/users?$skiptoken=a"},
		{proxied, "https://proxy.example.com/v1.0/users", ""},
		{proxied, "https://graph.microsoft.com/v1.0/users", ""},
	}
	for _, tc := range cases {
		got, ok := tc.c.relLink(tc.link)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("relLink(%q) on %s = %q %v, want %q", tc.link, tc.c.graph, got, ok, tc.want)
		}
	}
	_, err := def.followLink("op", "https://user:secretpw@evil.example/v1.0/users?$skiptoken=x")
	if !gsync.IsPermanent(err) || strings.Contains(err.Error(), "secretpw") || !strings.Contains(err.Error(), "evil.example") {
		t.Fatalf("followLink: %v", err)
	}
}

func TestQueryEscape(t *testing.T) {
	cases := map[string]string{
		"displayName eq 'O''Brien'": "displayName%20eq%20%27O%27%27Brien%27",
		"a+b&c=d#e":                 "a%2Bb%26c%3Dd%23e",
		"é":                         "%C3%A9",
		"A-Z_a.z~0":                 "A-Z_a.z~0",
	}
	for in, want := range cases {
		if got := queryEscape(in); got != want {
			t.Errorf("queryEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGroupNickname(t *testing.T) {
	cases := []struct {
		spec gsync.GroupSpec
		want string
	}{
		{gsync.GroupSpec{Name: "VPN Users"}, "VPNUsers"},
		{gsync.GroupSpec{Name: "x", MailNickname: "vpn"}, "vpn"},
		{gsync.GroupSpec{Name: "Wifi", MailNickname: "é"}, "Wifi"},
		{gsync.GroupSpec{Name: "日本"}, "group"},
		{gsync.GroupSpec{Name: strings.Repeat("ab", 50)}, strings.Repeat("ab", 32)},
		{gsync.GroupSpec{Name: "del\x7fete"}, "delete"},
	}
	for _, tc := range cases {
		if got := groupNickname(tc.spec); got != tc.want {
			t.Errorf("groupNickname(%+v) = %q, want %q", tc.spec, got, tc.want)
		}
	}
}
