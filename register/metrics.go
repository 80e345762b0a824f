package register

import "github.com/prometheus/client_golang/prometheus"

var registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "register", Name: "attempts_total",
	Help: "In-band registration attempts that reached account creation, by outcome (ok, conflict, invalid, rate-limited).",
}, []string{"outcome"})

func init() { prometheus.MustRegister(registrations) }
