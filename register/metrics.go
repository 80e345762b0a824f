package register

import "github.com/prometheus/client_golang/prometheus"

var registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "register", Name: "attempts_total",
	Help: "In-band registration attempts that reached account creation, by outcome (ok, conflict, invalid, invalid-token, rate-limited).",
}, []string{"outcome"})

func init() {
	prometheus.MustRegister(registrations)
	// Labels from a fixed set, every series from the start.
	for _, o := range []string{"ok", "conflict", "invalid", "rate-limited"} {
		registrations.WithLabelValues(o)
	}
}
