package radiusserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/internal/promreg"
)

// Outcomes of answered requests (label "outcome").
const (
	outcomeAccept    = "accept"
	outcomeReject    = "reject"
	outcomeStatus    = "status"    // Status-Server answered
	outcomeDuplicate = "duplicate" // retransmission answered from the cache
	outcomeChallenge = "challenge" // Access-Challenge (an EAP round)
)

// Reasons a packet got no answer (label "reason").
const (
	dropUnknownClient    = "unknown_client"
	dropMalformed        = "malformed"
	dropOversize         = "oversize"
	dropBadMA            = "bad_message_authenticator"
	dropMissingMA        = "missing_message_authenticator"
	dropUnsupportedCode  = "unsupported_code"
	dropDuplicateRunning = "duplicate_in_flight"
	dropOverload         = "overload"
	dropPanic            = "panic"
	dropInternal         = "internal_error"
	dropEAPSequence      = "eap_out_of_sequence"
)

var allDropReasons = []string{
	dropUnknownClient, dropMalformed, dropOversize, dropBadMA, dropMissingMA,
	dropUnsupportedCode, dropDuplicateRunning, dropOverload, dropPanic, dropInternal, dropEAPSequence,
}

type metrics struct {
	requests *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	drops    map[string]prometheus.Counter // dropped by reason, read-only after newMetrics
	duration *prometheus.HistogramVec
	methods  *prometheus.CounterVec

	// The series every answer touches, cached (promreg.Series).
	reqSeries    *promreg.Series[[2]string, prometheus.Counter] // client, outcome
	durSeries    *promreg.Series[string, prometheus.Observer]   // outcome
	methodSeries *promreg.Series[[2]string, prometheus.Counter] // method, outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_radius_requests_total",
			Help: "RADIUS requests answered, by client and outcome (accept, reject, status, duplicate).",
		}, []string{"client", "outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_radius_dropped_total",
			Help: "RADIUS packets dropped without an answer, by reason.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatewayd_radius_request_duration_seconds",
			Help:    "Time from receiving a RADIUS request to having its answer, queueing included, by outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		methods: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_radius_auth_total",
			Help: "RADIUS logins decided (Accept or Reject), by method (pap, eap-ttls/pap, eap-ttls/mschapv2, peap/mschapv2, eap-tls) and outcome.",
		}, []string{"method", "outcome"}),
	}
	if reg != nil {
		var err error
		if m.requests, err = promreg.Register(reg, m.requests); err != nil {
			return nil, err
		}
		if m.dropped, err = promreg.Register(reg, m.dropped); err != nil {
			return nil, err
		}
		if m.duration, err = promreg.Register(reg, m.duration); err != nil {
			return nil, err
		}
		if m.methods, err = promreg.Register(reg, m.methods); err != nil {
			return nil, err
		}
	}
	// A flood of bad packets is the drop path's busiest time: each reason's
	// counter is looked up once here, not per packet.
	m.drops = make(map[string]prometheus.Counter, len(allDropReasons))
	for _, r := range allDropReasons {
		m.drops[r] = m.dropped.WithLabelValues(r)
	}
	m.reqSeries = promreg.NewSeries(func(k [2]string) prometheus.Counter { return m.requests.WithLabelValues(k[0], k[1]) })
	m.durSeries = promreg.NewSeries(func(o string) prometheus.Observer { return m.duration.WithLabelValues(o) })
	m.methodSeries = promreg.NewSeries(func(k [2]string) prometheus.Counter { return m.methods.WithLabelValues(k[0], k[1]) })
	return m, nil
}

func (m *metrics) drop(reason string) {
	if c, ok := m.drops[reason]; ok {
		c.Inc()
		return
	}
	m.dropped.WithLabelValues(reason).Inc()
}

func (m *metrics) answered(client, outcome string, since time.Time) {
	m.reqSeries.Get([2]string{client, outcome}).Inc()
	m.durSeries.Get(outcome).Observe(time.Since(since).Seconds())
}

func (m *metrics) method(method, outcome string) {
	m.methodSeries.Get([2]string{method, outcome}).Inc()
}
