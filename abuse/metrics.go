package abuse

import "github.com/prometheus/client_golang/prometheus"

var (
	strangersBlocked = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "abuse", Name: "strangers_blocked_total",
		Help: "Messages and IQ requests from strangers refused for users who block them.",
	})
	reportsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "abuse", Name: "reports_total",
		Help: "XEP-0377 reports received, by reason (spam, abuse).",
	}, []string{"reason"})
)

func init() {
	prometheus.MustRegister(strangersBlocked, reportsTotal)
	// The only reasons stored; a label from a fixed set, every series from the start.
	reportsTotal.WithLabelValues("spam")
	reportsTotal.WithLabelValues("abuse")
}
