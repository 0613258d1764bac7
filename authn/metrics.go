package authn

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/internal/promreg"
)

type metrics struct {
	logins    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	hashes    prometheus.Counter
	rehashes  prometheus.Counter
	cache     *prometheus.CounterVec
	queueWait prometheus.Histogram
	// lockoutFallbacks and sharedErrors: the shared lockout count
	// (shared.go) failed, and failures were counted in memory.
	lockoutFallbacks prometheus.Counter
	sharedErrors     *prometheus.CounterVec

	// The series every login touches, cached (promreg.Series): label
	// values are protocols, outcomes, reasons and cache results.
	loginSeries *promreg.Series[loginLabels, prometheus.Counter]
	durSeries   *promreg.Series[Protocol, prometheus.Observer]
	cacheSeries *promreg.Series[string, prometheus.Counter]
}

type loginLabels struct {
	protocol Protocol
	outcome  string
	reason   string
}

func newMetrics() *metrics {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_authn_logins_total", Help: "Logins by protocol, outcome and reason.",
		}, []string{"protocol", "outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gatewayd_authn_login_duration_seconds", Help: "Time spent in the login path.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"protocol"}),
		hashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_authn_password_hashes_total", Help: "argon2id computations (verifies, rehashes and new hashes).",
		}),
		rehashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_authn_rehashes_total", Help: "Hashes replaced because the configured parameters changed.",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_authn_credential_cache_total", Help: "Verified-credential cache lookups by result.",
		}, []string{"result"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gatewayd_authn_hash_queue_wait_seconds", Help: "Time a login waited for a hashing slot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		lockoutFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_authn_lockout_fallbacks_total",
			Help: "Failed passwords counted in this replica's memory because the shared lockout count failed.",
		}),
		sharedErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_authn_lockout_shared_errors_total", Help: "Errors of the shared lockout count, by operation (count, reset).",
		}, []string{"op"}),
	}
	m.loginSeries = promreg.NewSeries(func(k loginLabels) prometheus.Counter {
		return m.logins.WithLabelValues(string(k.protocol), k.outcome, k.reason)
	})
	m.durSeries = promreg.NewSeries(func(p Protocol) prometheus.Observer { return m.duration.WithLabelValues(string(p)) })
	m.cacheSeries = promreg.NewSeries(func(r string) prometheus.Counter { return m.cache.WithLabelValues(r) })
	return m
}

func (m *metrics) register(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.MustRegister(m.logins, m.duration, m.hashes, m.rehashes, m.cache, m.queueWait, m.lockoutFallbacks, m.sharedErrors)
}
