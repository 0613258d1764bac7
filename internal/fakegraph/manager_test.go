package fakegraph

import (
	"net/http"
	"testing"
)

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

func TestUnknownAndRefusedProperties(t *testing.T) {
	c := newClient(t)
	u := c.s.AddUser(User{UserPrincipalName: "ann@contoso.com", AccountEnabled: true})
	cases := []struct {
		name, body string
		refuse     string
		named      bool
		status     int
		msg        string
	}{
		{"unknown property", `{"loginShell":"/bin/sh"}`, "", false, 400, "Invalid property 'loginShell'."},
		{"businessPhones must be an array", `{"businessPhones":"+1 555"}`, "", false, 400, "Invalid value specified for property 'businessPhones' of resource 'User'."},
		{"businessPhones array", `{"businessPhones":["+1 555"]}`, "", false, 204, ""},
		{"refused, named", `{"employeeType":"x"}`, "employeeType", true, 400, "Invalid property 'employeeType'."},
		{"refused, unnamed", `{"employeeType":"x","jobTitle":"y"}`, "employeeType", false, 400, MsgInvalidValues},
		{"accepted again", `{"employeeType":"x"}`, "", false, 204, ""},
	}
	for _, tc := range cases {
		c.s.AcceptProperty("employeeType")
		if tc.refuse != "" {
			c.s.RefuseProperty(tc.refuse, tc.named)
		}
		st, m, _ := c.graph(http.MethodPatch, "/users/"+u.ID, tc.body)
		if st != tc.status || (tc.msg != "" && (errMessage(m) != tc.msg || errCode(m) != "Request_BadRequest")) {
			t.Errorf("%s: %d %v", tc.name, st, m)
		}
	}
	// A refused POST creates nothing.
	c.s.RefuseProperty("jobTitle", true)
	st, _, _ := c.graph(http.MethodPost, "/users", `{"accountEnabled":true,"displayName":"B","mailNickname":"b",`+
		`"userPrincipalName":"b@contoso.com","jobTitle":"x","passwordProfile":{"password":"Correct-Horse-42"}}`)
	if _, ok := c.s.User("b@contoso.com"); st != 400 || ok {
		t.Fatalf("refused POST: %d, created %v", st, ok)
	}
}

func TestManagerEndpoints(t *testing.T) {
	c := newClient(t)
	u := c.s.AddUser(User{UserPrincipalName: "ann@contoso.com", AccountEnabled: true})
	boss := c.s.AddUser(User{UserPrincipalName: "boss@contoso.com", AccountEnabled: true})
	ref := "/users/" + u.ID + "/manager/$ref"

	if st, m, _ := c.graph(http.MethodGet, "/users/"+u.ID+"/manager", ""); st != 404 || errCode(m) != "Request_ResourceNotFound" {
		t.Fatalf("no manager: %d %v", st, m)
	}
	if st, _, _ := c.graph(http.MethodDelete, ref, ""); st != 404 {
		t.Fatalf("DELETE without a manager: %d", st)
	}
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{}`, 400},
		{`{"@odata.id":"not a url"}`, 400},
		{`{"@odata.id":"https://graph.microsoft.com/v1.0/users/` + u.ID + `"}`, 400}, // self
		{`{"@odata.id":"https://graph.microsoft.com/v1.0/users/99999999-9999-4999-8999-999999999999"}`, 404},
		{`{"@odata.id":"` + c.s.URL() + `/v1.0/users/` + boss.ID + `"}`, 204},
		{`{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/` + boss.ID + `"}`, 204},
	} {
		if st, m, _ := c.graph(http.MethodPut, ref, tc.body); st != tc.status {
			t.Errorf("PUT %s: %d %v", tc.body, st, m)
		}
	}
	if id, _ := c.s.Manager(u.ID); id != boss.ID {
		t.Fatalf("manager %q", id)
	}
	st, m, _ := c.graph(http.MethodGet, "/users/"+u.ID+"/manager", "")
	if st != 200 || m["id"] != boss.ID || m["userPrincipalName"] != "boss@contoso.com" || m["@odata.type"] != "#microsoft.graph.user" {
		t.Fatalf("GET manager: %d %v", st, m)
	}
	if n := c.s.Count(http.MethodPut, KindManager); n != 6 {
		t.Fatalf("%d PUTs counted as %s", n, KindManager)
	}
	if st, _, _ := c.graph(http.MethodDelete, ref, ""); st != 204 {
		t.Fatalf("DELETE: %d", st)
	}
	if id, _ := c.s.Manager(u.ID); id != "" {
		t.Fatalf("manager after DELETE %q", id)
	}

	// A refused manager, and a deleted manager dropping the reference.
	c.s.RefuseProperty("manager", true)
	if st, _, _ := c.graph(http.MethodPut, ref, `{"@odata.id":"https://graph.microsoft.com/v1.0/users/`+boss.ID+`"}`); st != 400 {
		t.Fatalf("refused manager: %d", st)
	}
	c.s.AcceptProperty("manager")
	c.graph(http.MethodPut, ref, `{"@odata.id":"https://graph.microsoft.com/v1.0/users/`+boss.ID+`"}`)
	if st, _, _ := c.graph(http.MethodDelete, "/users/"+boss.ID, ""); st != 204 {
		t.Fatal("delete boss")
	}
	if id, _ := c.s.Manager(u.ID); id != "" {
		t.Fatalf("reference to a deleted manager kept: %q", id)
	}
}
