package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/store"
)

func TestEventsQueryFilters(t *testing.T) {
	e := newEnv(t)
	var g struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if code, body := e.call("POST", "/v1/groups", map[string]any{"name": "staff"}, &g); code != http.StatusCreated {
		t.Fatalf("create group: %d %s", code, body)
	}
	if err := e.st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Seq 1 is the group_create above.
	if err := e.st.AppendEvents(
		store.Event{Type: store.EventLDAPBind, Username: "ann", Outcome: store.OutcomeFailure, Reason: "bad_password"}, // 2
		store.Event{Type: store.EventRADIUSAuth, Username: "ann", Outcome: store.OutcomeSuccess},                       // 3
		store.Event{Type: store.EventUserCreateProvision, Directory: "m365", Outcome: store.OutcomeSuccess},            // 4
		store.Event{Type: store.EventUserCreateProvisionFailed, Directory: "m365", Outcome: store.OutcomeFailure},      // 5
		store.Event{Type: store.EventGroupCreateProvisionFailed, Directory: "gws", GroupID: g.ID, Group: g.Name, // 6
			Outcome: store.OutcomeFailure},
		store.Event{Type: store.EventGroupDelete, GroupID: "gone", Group: "old", Outcome: store.OutcomeSuccess}, // 7
	); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		query string
		want  []uint64
	}{
		{"outcome=failure", []uint64{2, 5, 6}},
		{"outcome=success&type=radius_auth", []uint64{3}},
		{"directory=m365", []uint64{4, 5}},
		{"directory=m365&outcome=failure", []uint64{5}},
		{"reason=bad_password", []uint64{2}},
		{"reason=locked", nil},
		{"group=staff", []uint64{1, 6}},   // by name
		{"group=" + g.ID, []uint64{1, 6}}, // by id
		{"group=gone", []uint64{7}},       // a deleted group, by its id
		{"directory=gws&group=staff&outcome=failure&type=group_create_provision_failed", []uint64{6}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			var page struct {
				Events []store.Event `json:"events"`
			}
			if code, body := e.call("GET", "/v1/events?"+tc.query, nil, &page); code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			var got []uint64
			for _, ev := range page.Events {
				got = append(got, ev.Seq)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	for _, outcome := range []string{"ok", "Failure", "failed"} {
		code, body := e.call("GET", "/v1/events?outcome="+url.QueryEscape(outcome), nil, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, "outcome must be success or failure") {
			t.Errorf("outcome=%s: %d %s, want 400 naming the allowed outcomes", outcome, code, body)
		}
	}
}

func TestGroupEventsCarryTheGroup(t *testing.T) {
	e := newEnv(t)
	var g struct {
		ID string `json:"id"`
	}
	if code, body := e.call("POST", "/v1/groups", map[string]any{"name": "vpn"}, &g); code != http.StatusCreated {
		t.Fatalf("create group: %d %s", code, body)
	}
	if code, body := e.call("DELETE", "/v1/groups/vpn", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete group: %d %s", code, body)
	}
	if err := e.st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs, _, err := e.st.ListEvents(store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var types []store.EventType
	for _, ev := range evs {
		types = append(types, ev.Type)
		if ev.GroupID != g.ID || ev.Group != "vpn" || ev.UserID != "" || ev.Detail != "" {
			t.Errorf("%s event: %+v, want the group in GroupID and Group only", ev.Type, ev)
		}
	}
	if want := []store.EventType{store.EventGroupCreate, store.EventGroupDelete}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
}
