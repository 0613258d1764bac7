package delegation

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/internal/promreg"
)

type metrics struct {
	latency     *prometheus.HistogramVec // domain, dc, op
	errors      *prometheus.CounterVec   // domain, dc, kind
	poolOpen    *prometheus.GaugeVec     // domain, dc, pool
	poolIdle    *prometheus.GaugeVec     // domain, dc, pool
	up          *prometheus.GaugeVec     // domain, dc
	failovers   *prometheus.CounterVec   // domain
	validations *prometheus.CounterVec   // domain, result
}

func newMetrics() *metrics {
	return &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gatewayd_ad_request_duration_seconds", Help: "Time of each operation against a domain controller (connect, bind, search, probe).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"domain", "dc", "op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_ad_errors_total", Help: "Failed operations against a domain controller by kind (network, timeout, busy, tls, refused, service_bind); refused credentials are not errors.",
		}, []string{"domain", "dc", "kind"}),
		poolOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatewayd_ad_pool_connections", Help: "Open pooled connections per domain controller and pool (user, service).",
		}, []string{"domain", "dc", "pool"}),
		poolIdle: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatewayd_ad_pool_idle_connections", Help: "Idle pooled connections per domain controller and pool.",
		}, []string{"domain", "dc", "pool"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatewayd_ad_dc_up", Help: "1 while a domain controller is in use, 0 while it is marked down and skipped.",
		}, []string{"domain", "dc"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_ad_failovers_total", Help: "Logins that moved on from a domain controller to the next one.",
		}, []string{"domain"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_ad_validations_total", Help: "Delegated password validations by result (ok, a refusal reason, or ad_unreachable).",
		}, []string{"domain", "result"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var err error
	if m.latency, err = promreg.Register(reg, m.latency); err != nil {
		return err
	}
	if m.errors, err = promreg.Register(reg, m.errors); err != nil {
		return err
	}
	if m.poolOpen, err = promreg.Register(reg, m.poolOpen); err != nil {
		return err
	}
	if m.poolIdle, err = promreg.Register(reg, m.poolIdle); err != nil {
		return err
	}
	if m.up, err = promreg.Register(reg, m.up); err != nil {
		return err
	}
	if m.failovers, err = promreg.Register(reg, m.failovers); err != nil {
		return err
	}
	m.validations, err = promreg.Register(reg, m.validations)
	return err
}
