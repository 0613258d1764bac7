package sync

import "github.com/prometheus/client_golang/prometheus"

type engineMetrics struct {
	jobs     *prometheus.CounterVec
	pushes   *prometheus.CounterVec
	creates  *prometheus.CounterVec
	events   *prometheus.CounterVec
	duration prometheus.Histogram
	// claimsRefused and claimErrors: Config.Claims said another replica
	// runs the pair, or failed to answer.
	claimsRefused *prometheus.CounterVec
	claimErrors   *prometheus.CounterVec
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatewayd_sync_jobs_total",
			Help: "Reconcile outcomes that were not plain successes (retry, failed)."}, []string{"directory", "result"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatewayd_sync_password_pushes_total",
			Help: "Passwords pushed to a directory."}, []string{"directory"}),
		creates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatewayd_sync_accounts_created_total",
			Help: "Accounts created in a directory."}, []string{"directory"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatewayd_sync_events_total",
			Help: "Provisioning events by type."}, []string{"directory", "type"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatewayd_sync_reconcile_duration_seconds",
			Help: "Time to reconcile one (directory, user) pair.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}),
		claimsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatewayd_sync_claims_refused_total",
			Help: "Jobs put back because another replica held the pair's claim."}, []string{"directory"}),
		claimErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatewayd_sync_claim_errors_total",
			Help: "Jobs put back because the claim could not be asked for (database unreachable)."}, []string{"directory"}),
	}
	if reg != nil {
		reg.MustRegister(m.jobs, m.pushes, m.creates, m.events, m.duration, m.claimsRefused, m.claimErrors)
	}
	return m
}
