package mamquery

import "github.com/prometheus/client_golang/prometheus"

var unreadable = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "mam", Name: "unreadable_total",
	Help: "Archived messages that no longer parse, answered with a stand-in carrying the stored bytes as text.",
})

func init() { prometheus.MustRegister(unreadable) }
