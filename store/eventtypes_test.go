package store

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestListEventsBySubjectDirectoryOutcomeReason(t *testing.T) {
	s := newStore(t, Options{})
	evs := []Event{
		{Type: EventLDAPBind, UserID: "u1", Outcome: OutcomeSuccess, Login: true},                                            // 1
		{Type: EventLDAPBind, UserID: "u1", Outcome: OutcomeFailure, Reason: "bad_password", Login: true},                    // 2
		{Type: EventRADIUSAuth, UserID: "u2", Outcome: OutcomeFailure, Reason: "locked", Login: true},                        // 3
		{Type: EventUserCreateProvision, UserID: "u1", Directory: "m365", Outcome: OutcomeSuccess},                           // 4
		{Type: EventUserCreateProvisionFailed, UserID: "u2", Directory: "m365", Outcome: OutcomeFailure},                     // 5
		{Type: EventGroupUpdateProvisionFailed, GroupID: "g1", Group: "staff", Directory: "gws", Outcome: OutcomeFailure},    // 6
		{Type: EventGroupBind, GroupID: "g1", Group: "staff", Directory: "m365", Outcome: OutcomeSuccess},                    // 7
		{Type: EventPasswordChange, UserID: "u1", Directory: "corp.example", Outcome: OutcomeSuccess},                        // 8
		{Type: EventGroupMemberAdd, UserID: "u2", GroupID: "g2", Group: "ops", Outcome: OutcomeSuccess, Reason: "unrelated"}, // 9
	}
	if err := s.AppendEvents(evs...); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    EventFilter
		want []uint64
	}{
		{"directory", EventFilter{Directory: "m365"}, []uint64{4, 5, 7}},
		{"directory is exact", EventFilter{Directory: "M365"}, nil},
		{"failures", EventFilter{Outcome: OutcomeFailure}, []uint64{2, 3, 5, 6}},
		{"successes of a user", EventFilter{Outcome: OutcomeSuccess, UserID: "u1"}, []uint64{1, 4, 8}},
		{"reason", EventFilter{Reason: "bad_password"}, []uint64{2}},
		{"reason is exact", EventFilter{Reason: "Bad_Password"}, nil},
		{"group", EventFilter{GroupID: "g1"}, []uint64{6, 7}},
		{"group and user", EventFilter{GroupID: "g2", UserID: "u2"}, []uint64{9}},
		{"directory and outcome", EventFilter{Directory: "m365", Outcome: OutcomeFailure}, []uint64{5}},
		{"type and directory", EventFilter{Type: EventGroupBind, Directory: "gws"}, nil},
		{"failed variant", EventFilter{Type: EventGroupUpdateProvision.Failed()}, []uint64{6}},
		{"all", EventFilter{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, next, err := s.ListEvents(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, e := range res {
				got = append(got, e.Seq)
			}
			if !slices.Equal(got, tc.want) || next != 0 {
				t.Errorf("got %v (next %d), want %v", got, next, tc.want)
			}
		})
	}
}

func TestGroupEventsOutliveAReopen(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	want := Event{Type: EventGroupCreateProvisionFailed, GroupID: "g1", Group: "staff", Directory: "m365",
		Outcome: OutcomeFailure, Source: "sync", Detail: "503"}
	if err := s.AppendEvents(want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, Options{})
	defer s.Close()
	res, _, err := s.ListEvents(EventFilter{GroupID: "g1"})
	if err != nil || len(res) != 1 {
		t.Fatalf("after reopen: %v, %v", res, err)
	}
	got := res[0]
	want.Seq, want.Time = got.Seq, got.Time
	if got != want {
		t.Errorf("after reopen\n got %+v\nwant %+v", got, want)
	}
}

// The API serves events as they are stored; the type must stay a plain
// string there and a non-group event must not grow group fields.
func TestEventJSON(t *testing.T) {
	b, err := json.Marshal(Event{Seq: 1, Type: EventLDAPBind, UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "ldap_bind" {
		t.Errorf("type encodes as %#v", m["type"])
	}
	for _, k := range []string{"group_id", "group"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s present in %s", k, b)
		}
	}
}

func TestEventTypeFailed(t *testing.T) {
	tests := []struct {
		t, want EventType
	}{
		{EventUserCreateProvision, EventUserCreateProvisionFailed},
		{EventUserUpdateProvision, EventUserUpdateProvisionFailed},
		{EventUserPasswordUpdateProvision, EventUserPasswordUpdateProvisionFailed},
		{EventUserDeprovision, EventUserDeprovisionFailed},
		{EventGroupCreateProvision, EventGroupCreateProvisionFailed},
		{EventGroupUpdateProvision, EventGroupUpdateProvisionFailed},
		{EventGroupUpdateProvisionFailed, EventGroupUpdateProvisionFailed},
	}
	for _, tc := range tests {
		if got := tc.t.Failed(); got != tc.want {
			t.Errorf("%s.Failed() = %s, want %s", tc.t, got, tc.want)
		}
	}
	if got := string(EventUserCreateProvisionFailed); got != "user_create_provision_failed" {
		t.Errorf("EventUserCreateProvisionFailed = %q", got)
	}
}
