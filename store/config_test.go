package store

import (
	"testing"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

func parseEvents(t *testing.T, text string) (EventsConfig, error) {
	t.Helper()
	var c EventsConfig
	err := testutil.ParseBlock(t, "events", &c, text)
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	if DefaultEventRetention != 100000 {
		t.Errorf("DefaultEventRetention = %d; gatewayd.toml.example documents 100000", DefaultEventRetention)
	}
	for name, text := range map[string]string{
		"no block":              "",
		"empty block":           "[events]\n",
		"gatewayd.toml.example": testutil.ConfigSection(t, gatewayd.ExampleConfig, "events"),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := parseEvents(t, text)
			if err != nil {
				t.Fatal(err)
			}
			if c.Retention != 100000 {
				t.Errorf("retention = %d, want the documented 100000", c.Retention)
			}
		})
	}
}

func TestConfigBounds(t *testing.T) {
	for _, v := range []string{"1", "100000", "9223372036854775807"} {
		if c, err := parseEvents(t, "[events]\nretention = "+v+"\n"); err != nil {
			t.Errorf("retention = %s must be accepted: %v (%+v)", v, err, c)
		}
	}
	for _, tc := range []struct{ v, msg string }{
		{"0", "must be at least 1, got 0"},
		{"-1", "must be at least 1, got -1"},
	} {
		t.Run(tc.v, func(t *testing.T) {
			_, err := parseEvents(t, "[events]\n\nretention = "+tc.v+"\n")
			testutil.WantProblem(t, err, "events.retention", 3, tc.msg)
		})
	}
}

func TestConfigProblems(t *testing.T) {
	_, err := parseEvents(t, "[events]\nretention = 10\nretension = 10\n")
	testutil.WantProblem(t, err, "events.retension", 3, `unknown key "events.retension"`)
	_, err = parseEvents(t, "[events]\nretention = \"all\"\n")
	if ps := testutil.ConfigProblems(t, err); len(ps) != 1 || ps[0].Line != 2 {
		t.Errorf("retention = \"all\": want one problem at line 2, got %v", ps)
	}
}
