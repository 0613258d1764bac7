package sync

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/secret"
)

func TestPrincipalName(t *testing.T) {
	tests := []struct {
		email   string
		domains []string
		def     string
		want    string
		err     string
	}{
		{"ann@corp.test", nil, "", "ann@corp.test", ""},
		{"ann@corp.test", nil, "ignored.test", "ann@corp.test", ""},
		{"ann@corp.test", []string{"corp.test"}, "", "ann@corp.test", ""},
		{"ann@CORP.test", []string{"corp.test"}, "", "ann@CORP.test", ""},
		{"ann@other.test", []string{"corp.test"}, "", "", "not one of this directory's domains"},
		{"ann@other.test", []string{"corp.test", "corp2.test"}, "corp.test", "ann@corp.test", ""},
		{"ann@corp2.test", []string{"corp.test", "corp2.test"}, "corp.test", "ann@corp2.test", ""},
		{"broken", nil, "", "", "no domain"},
	}
	for _, tc := range tests {
		got, err := PrincipalName(tc.email, tc.domains, tc.def)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %v %q: got %q, %v; want %q, %q", tc.email, tc.domains, tc.def, got, err, tc.want, tc.err)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	p := PasswordPolicy{MinLength: 8, MaxLength: 10}
	for pw, ok := range map[string]bool{"1234567": false, "12345678": true, "123456789é": true, "12345678901": false} {
		if err := p.Check(secret.FromString(pw)); (err == nil) != ok {
			t.Errorf("%q: %v", pw, err)
		}
	}
	// Entra's default: 3 of lowercase, uppercase, digits, symbols.
	p = PasswordPolicy{MinLength: 8, MaxLength: 256, MinCharacterClasses: 3}
	for _, tc := range []struct {
		pw      string
		classes int
	}{
		{"correct horse battery", 2}, {"CorrectHorse", 2}, {"correcthorse42", 2},
		{"Correct horse", 3}, {"Correct-Horse-42", 4}, {"ÉCOLE ça va", 3}, {"12345678!", 2},
	} {
		err := p.Check(secret.FromString(tc.pw))
		if got := characterClasses([]byte(tc.pw)); got != tc.classes {
			t.Errorf("%q: %d classes, want %d", tc.pw, got, tc.classes)
		}
		if (err == nil) != (tc.classes >= 3) {
			t.Errorf("%q (%d classes): %v", tc.pw, tc.classes, err)
		}
		if err != nil && (strings.Contains(err.Error(), tc.pw) || !strings.Contains(err.Error(), "needs 3")) {
			t.Errorf("%q: the message must say what is needed and never the password: %v", tc.pw, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	h := http.Header{}
	if ParseRetryAfter(h) != 0 {
		t.Fatal("empty")
	}
	h.Set("Retry-After", "7")
	if ParseRetryAfter(h) != 7*time.Second {
		t.Fatal("seconds")
	}
	h.Set("Retry-After", "-3")
	if ParseRetryAfter(h) != 0 {
		t.Fatal("negative")
	}
	h.Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
	if d := ParseRetryAfter(h); d < 80*time.Second || d > 91*time.Second {
		t.Fatalf("date: %v", d)
	}
	h.Set("Retry-After", "soon")
	if ParseRetryAfter(h) != 0 {
		t.Fatal("garbage")
	}
}
