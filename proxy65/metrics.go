package proxy65

import "github.com/prometheus/client_golang/prometheus"

var (
	streamsActive = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "proxy65", Name: "streams",
		Help: "SOCKS5 bytestreams (XEP-0065) being relayed.",
	})
	bytesRelayed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "proxy65", Name: "bytes_total",
		Help: "Bytes relayed by the SOCKS5 bytestreams proxy.",
	})
	connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "proxy65", Name: "refused_total",
		Help: "SOCKS5 connections dropped before relaying, by reason (protocol, full, timeout).",
	}, []string{"reason"})
)

func init() {
	prometheus.MustRegister(streamsActive, bytesRelayed, connsRefused)
	for _, r := range []string{"protocol", "full", "timeout"} {
		connsRefused.WithLabelValues(r)
	}
}
