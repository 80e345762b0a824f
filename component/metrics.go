package component

import "github.com/prometheus/client_golang/prometheus"

var (
	componentsConnected = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "component", Name: "connected",
		Help: "External components (XEP-0114) connected to this node.",
	})
	componentAuth = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "component", Name: "handshakes_total",
		Help: "Component handshakes, by result (success, failure, unknown-domain, conflict).",
	}, []string{"result"})
	componentStanzas = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "component", Name: "stanzas_total",
		Help: "Stanzas from (in) and to (out) components, and bounced because the component was not connected.",
	}, []string{"direction"})
)

func init() {
	prometheus.MustRegister(componentsConnected, componentAuth, componentStanzas)
	// Every series exists from the start; labels come only from these sets.
	for _, r := range []string{"success", "failure", "unknown-domain", "conflict"} {
		componentAuth.WithLabelValues(r)
	}
	for _, d := range []string{"in", "out", "bounced"} {
		componentStanzas.WithLabelValues(d)
	}
}
