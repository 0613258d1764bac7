package portal

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/internal/promreg"
)

type metrics struct {
	requests *prometheus.CounterVec
	signins  *prometheus.CounterVec
	changes  *prometheus.CounterVec
	sessions prometheus.Gauge
}

// Sign-in outcomes (gatewayd_portal_signins_total).
const (
	signinSuccess = "success"
	signinFailure = "failure"
	signinExpired = "expired" // sent to the change-password step
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_portal_requests_total", Help: "Self-service page requests by route and HTTP status code.",
		}, []string{"route", "code"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_portal_signins_total", Help: "Self-service page sign-ins by outcome (success, failure, expired).",
		}, []string{"outcome"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_portal_password_changes_total", Help: "Passwords set on the self-service page by kind (change, expired, activation) and outcome (success, failure).",
		}, []string{"kind", "outcome"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatewayd_portal_sessions", Help: "Self-service page sessions held now (in memory).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = promreg.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.signins, err = promreg.Register(reg, m.signins); err != nil {
		return nil, err
	}
	if m.changes, err = promreg.Register(reg, m.changes); err != nil {
		return nil, err
	}
	if m.sessions, err = promreg.Register(reg, m.sessions); err != nil {
		return nil, err
	}
	return m, nil
}
