package fakegoogle

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/sha512crypt"
)

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

func TestUserFields(t *testing.T) {
	s := New()
	defer s.Close()
	c := newClient(t, s, DefaultAdmin)
	u := s.AddUser(User{PrimaryEmail: "ann@example.com", GivenName: "A", FamilyName: "B"})
	good := map[string]any{
		"organizations": []any{map[string]any{"title": "Eng", "department": "R&D", "description": "Staff", "primary": true, "type": "work"}},
		"phones":        []any{map[string]any{"type": "work", "value": "+1 555", "primary": true}, map[string]any{"type": "mobile", "value": "+1 556"}},
		"addresses":     []any{map[string]any{"type": "work", "formatted": "1 Main St", "primary": true}},
		"relations":     []any{map[string]any{"type": "manager", "value": "boss@example.com"}},
		"externalIds":   []any{map[string]any{"type": "organization", "value": "E-1"}},
	}
	if st, m, _ := c.do(http.MethodPatch, "users/"+u.ID, good); st != 200 {
		t.Fatalf("patch: %d %v", st, m)
	}
	got, _ := s.User(u.ID)
	if got.Organization()["title"] != "Eng" || got.Phone("work") != "+1 555" || got.Phone("mobile") != "+1 556" ||
		got.Address("work") != "1 Main St" || got.Relation("manager") != "boss@example.com" || got.ExternalID("organization") != "E-1" {
		t.Fatalf("fields %v", got.Fields)
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		msg  string
	}{
		{"unknown field", map[string]any{"loginShell": "/bin/sh"}, `Unknown name "loginShell"`},
		{"not an array", map[string]any{"relations": map[string]any{"type": "manager", "value": "x"}}, "Invalid Input: relations"},
		{"unknown entry key", map[string]any{"organizations": []any{map[string]any{"jobTitle": "x"}}}, `Unknown name "jobTitle"`},
		{"bad type", map[string]any{"phones": []any{map[string]any{"type": "fax", "value": "1"}}}, "Invalid Input: phones[0].type"},
		{"no value", map[string]any{"relations": []any{map[string]any{"type": "manager"}}}, "Invalid Input: relations[0].value"},
	} {
		st, m, _ := c.do(http.MethodPatch, "users/"+u.ID, tc.body)
		if st != 400 || !strings.Contains(errMessage(m), tc.msg) {
			t.Errorf("%s: %d %v", tc.name, st, m)
		}
	}
	if after, _ := s.User(u.ID); after.Relation("manager") != "boss@example.com" {
		t.Fatal("a refused patch changed the user")
	}

	for _, tc := range []struct {
		field string
		named bool
		body  map[string]any
		msg   string
	}{
		{"relations", true, map[string]any{"relations": good["relations"]}, "Invalid Input: relations"},
		{"organizations.description", true, map[string]any{"organizations": good["organizations"]}, "Invalid Input: organizations.description"},
		{"phones.mobile", true, map[string]any{"phones": good["phones"]}, "Invalid Input: phones.mobile"},
		{"phones.mobile", false, map[string]any{"phones": good["phones"]}, "Invalid Input"},
	} {
		s.RefuseField(tc.field, tc.named)
		st, m, _ := c.do(http.MethodPatch, "users/"+u.ID, tc.body)
		if st != 400 || errMessage(m) != tc.msg {
			t.Errorf("refuse %s: %d %v", tc.field, st, m)
		}
		// Insert too.
		body := map[string]any{"primaryEmail": "new@example.com", "name": map[string]any{"givenName": "N", "familyName": "N"},
			"password": goodHash(t), "hashFunction": "crypt"}
		for k, v := range tc.body {
			body[k] = v
		}
		if st, _, _ := c.do(http.MethodPost, "users", body); st != 400 {
			t.Errorf("refuse %s on insert: %d", tc.field, st)
		}
		s.AcceptField(tc.field)
	}
	if _, ok := s.User("new@example.com"); ok {
		t.Fatal("a refused insert created the user")
	}
	// Clearing a field is not refused.
	s.RefuseField("relations", true)
	if st, m, _ := c.do(http.MethodPatch, "users/"+u.ID, map[string]any{"relations": nil}); st != 200 {
		t.Fatalf("clear relations: %d %v", st, m)
	}
}

func goodHash(t *testing.T) string {
	t.Helper()
	h, err := sha512crypt.Hash([]byte("Correct-Horse-42"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
