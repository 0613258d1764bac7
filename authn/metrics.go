package authn

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	logins    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	hashes    prometheus.Counter
	rehashes  prometheus.Counter
	cache     *prometheus.CounterVec
	queueWait prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
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
	}
}

func (m *metrics) register(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.MustRegister(m.logins, m.duration, m.hashes, m.rehashes, m.cache, m.queueWait)
}
