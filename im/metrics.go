package im

import "github.com/prometheus/client_golang/prometheus"

var offlineUnreadable = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "offline", Name: "unreadable_total",
	Help: "Offline messages that no longer parse, delivered as a stand-in carrying the stored bytes as text.",
})

func init() { prometheus.MustRegister(offlineUnreadable) }
