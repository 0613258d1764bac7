package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// HealthCheck reports one component's health for /healthz:
//
//   - nil: it serves fully;
//   - an error with a Degraded() bool method that returns true (anywhere in
//     its chain, see Degraded): it serves, with less redundancy;
//   - any other error: it cannot serve.
//
// The method convention, like net.Error's Timeout, lets packages report
// degradation without importing admin. A check should return once ctx is
// done; one that does not is reported down when /healthz stops waiting.
type HealthCheck func(ctx context.Context) error

// HealthStatus is a check's or the whole gateway's verdict.
type HealthStatus string

// Health statuses. /healthz answers 503 only for HealthDown.
const (
	HealthOK       HealthStatus = "ok"
	HealthDegraded HealthStatus = "degraded"
	HealthDown     HealthStatus = "down"
)

// HealthReport is the body of /healthz: the worst status of its checks,
// and every check by name.
type HealthReport struct {
	Status HealthStatus           `json:"status"`
	Checks map[string]CheckResult `json:"checks"`
}

// CheckResult is one check in a HealthReport.
type CheckResult struct {
	Status  HealthStatus `json:"status"`
	Message string       `json:"message,omitempty"`
}

// healthTimeout bounds /healthz: load balancers time out health checks
// after a few seconds, and an answer that late is no answer.
const healthTimeout = 2 * time.Second

// Degraded wraps err so that /healthz reports it as degraded (200) rather
// than down (503). A nil err stays nil.
func Degraded(err error) error {
	if err == nil {
		return nil
	}
	return degradedError{err}
}

type degradedError struct{ error }

func (e degradedError) Unwrap() error  { return e.error }
func (e degradedError) Degraded() bool { return true }

// statusOf maps a check's error to its status.
func statusOf(err error) HealthStatus {
	if err == nil {
		return HealthOK
	}
	var d interface{ Degraded() bool }
	if errors.As(err, &d) && d.Degraded() {
		return HealthDegraded
	}
	return HealthDown
}

var healthRank = map[HealthStatus]int{HealthOK: 0, HealthDegraded: 1, HealthDown: 2}

// worse reports whether a is a worse status than b.
func worse(a, b HealthStatus) bool { return healthRank[a] > healthRank[b] }

// runChecks runs every check at once, so one slow check costs the
// report its own time rather than adding to the others', and stops
// waiting when ctx is done: what has not answered by then is down.
func runChecks(ctx context.Context, checks map[string]HealthCheck) HealthReport {
	type answer struct {
		name string
		res  CheckResult
	}
	// Buffered so a check that answers after the deadline does not leak
	// its goroutine.
	answers := make(chan answer, len(checks))
	for name, check := range checks {
		go func() { answers <- answer{name, runCheck(ctx, check)} }()
	}
	rep := HealthReport{Status: HealthOK, Checks: make(map[string]CheckResult, len(checks))}
wait:
	for range len(checks) {
		select {
		case a := <-answers:
			rep.Checks[a.name] = a.res
		case <-ctx.Done():
			break wait
		}
	}
	for name := range checks {
		if _, ok := rep.Checks[name]; !ok {
			rep.Checks[name] = CheckResult{Status: HealthDown, Message: fmt.Sprintf("no answer within %s", healthTimeout)}
		}
	}
	for _, c := range rep.Checks {
		if worse(c.Status, rep.Status) {
			rep.Status = c.Status
		}
	}
	return rep
}

// runCheck runs one check; a panic is reported as down rather than
// taking the daemon with it (it runs on a goroutine of its own).
func runCheck(ctx context.Context, check HealthCheck) (res CheckResult) {
	defer func() {
		if p := recover(); p != nil {
			res = CheckResult{Status: HealthDown, Message: fmt.Sprintf("the check panicked: %v", p)}
		}
	}()
	err := check(ctx)
	res.Status = statusOf(err)
	if err != nil {
		res.Message = err.Error()
	}
	return res
}

// healthLog remembers each check's last status, so a change is logged
// once rather than at every poll of a load balancer.
type healthLog struct {
	mu   sync.Mutex
	last map[string]HealthStatus
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	rep := runChecks(ctx, s.cfg.Checks)
	s.logHealthChanges(rep)
	code := http.StatusOK
	if rep.Status == HealthDown {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, rep)
}

func (s *Server) logHealthChanges(rep HealthReport) {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = make(map[string]HealthStatus, len(rep.Checks))
	}
	for name, c := range rep.Checks {
		prev, seen := h.last[name]
		h.last[name] = c.Status
		switch {
		case c.Status == prev || !seen && c.Status == HealthOK:
		case c.Status == HealthOK:
			s.log.Info("health check recovered", "check", name, "was", string(prev))
		default:
			s.log.Warn("health check "+string(c.Status), "check", name, "message", c.Message)
		}
	}
}
