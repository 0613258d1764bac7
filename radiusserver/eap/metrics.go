package eap

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/internal/promreg"
)

type metrics struct {
	results  *prometheus.CounterVec
	sessions *prometheus.GaugeVec
	evicted  prometheus.Counter
	expired  prometheus.Counter
	refused  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_radius_eap_results_total",
			Help: "EAP sessions ended, by method, outcome (accept, reject) and reason (empty when the inner login decided).",
		}, []string{"method", "outcome", "reason"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatewayd_radius_eap_sessions",
			Help: "EAP sessions held, by state (half_open: first TLS message partly received; running: TLS started; an EAP Start holds none).",
		}, []string{"state"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_radius_eap_half_open_evicted_total",
			Help: "Half-open EAP sessions pushed out by newer ones because the half-open pool was full.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_radius_eap_sessions_expired_total",
			Help: "EAP sessions dropped after session_timeout without a packet.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_radius_eap_sessions_refused_total",
			Help: "EAP sessions refused TLS because max_sessions were running.",
		}),
	}
	if reg != nil {
		var err error
		if m.results, err = promreg.Register(reg, m.results); err != nil {
			return nil, err
		}
		if m.sessions, err = promreg.Register(reg, m.sessions); err != nil {
			return nil, err
		}
		if m.evicted, err = promreg.Register(reg, m.evicted); err != nil {
			return nil, err
		}
		if m.expired, err = promreg.Register(reg, m.expired); err != nil {
			return nil, err
		}
		if m.refused, err = promreg.Register(reg, m.refused); err != nil {
			return nil, err
		}
	}
	m.sessions.WithLabelValues("half_open")
	m.sessions.WithLabelValues("running")
	return m, nil
}

func (m *metrics) result(r Response) {
	switch r.Outcome {
	case Accept:
		m.results.WithLabelValues(r.Method, "accept", r.Reason).Inc()
	case Reject:
		m.results.WithLabelValues(r.Method, "reject", r.Reason).Inc()
	}
}
