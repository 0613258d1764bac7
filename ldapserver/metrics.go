package ldapserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/internal/promreg"
)

type metrics struct {
	binds    *prometheus.CounterVec
	searches *prometheus.CounterVec
	duration *prometheus.HistogramVec
	open     prometheus.Gauge
	refused  *prometheus.CounterVec
	panics   prometheus.Counter
	// unboundClosed counts connections closed by unbound_idle_timeout.
	unboundClosed prometheus.Counter
	// inFlight, inFlightLimit and readPauses are max_bytes_in_flight's.
	inFlight      prometheus.Gauge
	inFlightLimit prometheus.Gauge
	readPauses    prometheus.Counter
}

// Bind outcomes (label values of gatewayd_ldap_binds_total).
const (
	bindSuccess     = "success"
	bindFailure     = "failure"     // invalidCredentials: authn said no
	bindAnonymous   = "anonymous"   // empty name and password
	bindInsecure    = "insecure"    // confidentialityRequired: cleartext over an open line
	bindUnsupported = "unsupported" // SASL, LDAPv2, unauthenticated bind
	bindError       = "error"       // panic or internal failure
)

func newMetrics() *metrics {
	return &metrics{
		binds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_ldap_binds_total", Help: "LDAP bind requests by outcome (success, failure, anonymous, insecure, unsupported, error).",
		}, []string{"outcome"}),
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_ldap_searches_total", Help: "LDAP search requests by outcome (success, size_limit, time_limit, no_such_object, denied, invalid, busy, abandoned, error).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gatewayd_ldap_request_duration_seconds", Help: "Time to answer an LDAP request, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatewayd_ldap_open_connections", Help: "LDAP connections open now.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_ldap_connections_refused_total", Help: "LDAP connections closed at accept, by reason (max_connections, max_connections_per_source, tls_handshake).",
		}, []string{"reason"}),
		unboundClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_ldap_unbound_closed_total", Help: "LDAP connections closed because they stayed unbound for unbound_idle_timeout.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_ldap_handler_panics_total", Help: "LDAP handlers that panicked (answered operationsError).",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatewayd_ldap_in_flight_bytes", Help: "LDAP request bytes read and not yet answered plus answer bytes not yet written out (max_bytes_in_flight counts these).",
		}),
		inFlightLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatewayd_ldap_in_flight_limit_bytes", Help: "The max_bytes_in_flight budget.",
		}),
		readPauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_ldap_read_pauses_total", Help: "Times the LDAP door stopped reading from a connection because max_bytes_in_flight was spent.",
		}),
	}
}

// register registers the collectors, adopting identical ones already
// registered (a second Server on the same registry after a full reload).
func (m *metrics) register(reg prometheus.Registerer) error {
	var err error
	if m.binds, err = promreg.Register(reg, m.binds); err != nil {
		return err
	}
	if m.searches, err = promreg.Register(reg, m.searches); err != nil {
		return err
	}
	if m.duration, err = promreg.Register(reg, m.duration); err != nil {
		return err
	}
	if m.open, err = promreg.Register(reg, m.open); err != nil {
		return err
	}
	if m.refused, err = promreg.Register(reg, m.refused); err != nil {
		return err
	}
	if m.unboundClosed, err = promreg.Register(reg, m.unboundClosed); err != nil {
		return err
	}
	if m.inFlight, err = promreg.Register(reg, m.inFlight); err != nil {
		return err
	}
	if m.inFlightLimit, err = promreg.Register(reg, m.inFlightLimit); err != nil {
		return err
	}
	if m.readPauses, err = promreg.Register(reg, m.readPauses); err != nil {
		return err
	}
	m.panics, err = promreg.Register(reg, m.panics)
	return err
}

func searchOutcome(code int) string {
	switch code {
	case rcSuccess:
		return "success"
	case rcSizeLimitExceeded:
		return "size_limit"
	case rcTimeLimitExceeded:
		return "time_limit"
	case rcNoSuchObject:
		return "no_such_object"
	case rcInsufficientAccessRights:
		return "denied"
	case rcProtocolError, rcUnwillingToPerform, rcUnavailableCriticalExt:
		return "invalid"
	case rcBusy:
		return "busy"
	}
	return "error"
}
