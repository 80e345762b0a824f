package c2s

import "github.com/prometheus/client_golang/prometheus"

var (
	connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "connections",
		Help: "Open client connections by transport (tcp, tls, websocket).",
	}, []string{"transport"})
	connectionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "connections_total",
		Help: "Accepted client connections by transport.",
	}, []string{"transport"})
	authentications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "authentications_total",
		Help: "SASL authentications by mechanism and result (success, failure, throttled).",
	}, []string{"mechanism", "result"})
	stanzasIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "stanzas_in_total",
		Help: "Stanzas received from clients by kind.",
	}, []string{"kind"})
	stanzasOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "stanzas_out_total",
		Help: "Stanzas queued to clients by kind.",
	}, []string{"kind"})
	streamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "stream_errors_total",
		Help: "Stream errors sent to clients by condition.",
	}, []string{"condition"})
)

func init() {
	prometheus.MustRegister(connections, connectionsTotal, authentications, stanzasIn, stanzasOut, streamErrors)
}
