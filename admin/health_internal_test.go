package admin

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestRunChecksBounded: checks run at once, and one that ignores its
// context is reported down when the report stops waiting, without holding
// up the others.
func TestRunChecksBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var started sync.WaitGroup
	started.Add(3)
	both := make(chan struct{})
	go func() { started.Wait(); close(both) }()
	// Each of the quick checks answers only once all three have started:
	// run one after the other, they would never answer.
	quick := func(ctx context.Context) error {
		started.Done()
		select {
		case <-both:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	hung := func(context.Context) error {
		started.Done()
		<-release
		return nil
	}
	panics := func(context.Context) error { panic("boom") }

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rep := runChecks(ctx, map[string]HealthCheck{"a": quick, "b": quick, "hung": hung, "panics": panics})
	if rep.Status != HealthDown {
		t.Errorf("status %q, want down", rep.Status)
	}
	for name, want := range map[string]HealthStatus{"a": HealthOK, "b": HealthOK, "hung": HealthDown, "panics": HealthDown} {
		if got := rep.Checks[name]; got.Status != want {
			t.Errorf("%s: %+v, want %s", name, got, want)
		}
	}
	if m := rep.Checks["hung"].Message; m != "no answer within 2s" {
		t.Errorf("hung: %q", m)
	}
	if m := rep.Checks["panics"].Message; m != "the check panicked: boom" {
		t.Errorf("panics: %q", m)
	}
}
