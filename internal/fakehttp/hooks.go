package fakehttp

import (
	"context"
	"sync"
	"time"
)

// Fault makes the next Times matching requests fail with Status; Code
// and Message are for the fake to word in its service's error body.
type Fault struct {
	Method     string // "" for any
	Kind       string // "" for any API call (never the token endpoint)
	Times      int    // 0 means 1
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // for a Retry-After header when > 0
}

// Hooks are what a test injects into a fake: queued faults, throttling,
// an outage and added latency. They are safe for concurrent use.
type Hooks struct {
	clock     *Clock
	tokenKind string

	mu            sync.Mutex
	faults        []*Fault
	throttleN     int
	throttleAfter time.Duration
	down          bool
	downUntil     time.Time
	latency       time.Duration
}

// NewHooks returns hooks that time an outage by clock. tokenKind is the
// request kind of the fake's token endpoint, which only a fault naming it
// reaches: a client's token fetch and its API calls fail apart.
func NewHooks(clock *Clock, tokenKind string) *Hooks {
	return &Hooks{clock: clock, tokenKind: tokenKind}
}

// Fail queues a fault; faults are consumed in order, each by the next
// matching request.
func (h *Hooks) Fail(f Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	h.faults = append(h.faults, &f)
}

// TakeFault consumes one use of the first queued fault matching method
// and kind, and returns it.
func (h *Hooks) TakeFault(method, kind string) (Fault, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, f := range h.faults {
		if f.Method != "" && f.Method != method {
			continue
		}
		if f.Kind != kind && (f.Kind != "" || kind == h.tokenKind) {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			h.faults = append(h.faults[:i], h.faults[i+1:]...)
		}
		return *f, true
	}
	return Fault{}, false
}

// Throttle makes the next n API calls throttled, with retryAfter for
// their Retry-After.
func (h *Hooks) Throttle(n int, retryAfter time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.throttleN, h.throttleAfter = n, retryAfter
}

// TakeThrottle consumes one throttled call, if any is left, and returns
// its Retry-After.
func (h *Hooks) TakeThrottle() (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.throttleN <= 0 {
		return 0, false
	}
	h.throttleN--
	return h.throttleAfter, true
}

// SetDown starts an outage of no known end, or ends any outage.
func (h *Hooks) SetDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
	if !down {
		h.downUntil = time.Time{}
	}
}

// Outage starts an outage that ends after d by the clock.
func (h *Hooks) Outage(d time.Duration) {
	until := h.clock.Now().Add(d)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.downUntil = until
}

// Down reports whether an outage is on, and the time left of it: zero
// for one started by SetDown, whose end nobody knows.
func (h *Hooks) Down() (time.Duration, bool) {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.down:
		return 0, true
	case now.Before(h.downUntil):
		return h.downUntil.Sub(now), true
	}
	return 0, false
}

// SetLatency sets the delay Delay adds.
func (h *Hooks) SetLatency(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latency = d
}

// Delay waits out the added latency, and returns ctx's error if the
// client gives up first: then there is no one left to answer.
func (h *Hooks) Delay(ctx context.Context) error {
	h.mu.Lock()
	d := h.latency
	h.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
