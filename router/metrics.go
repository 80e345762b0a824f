package router

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-xmpp/parley/wire"
)

var (
	stanzasRouted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "router", Name: "stanzas_total",
		Help: "Stanzas routed, by kind (message, presence, iq) and origin (client, server, local, component).",
	}, []string{"kind", "origin"})
	stanzasDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "router", Name: "dropped_total",
		Help: "Stanzas not delivered, by reason.",
	}, []string{"reason"})
	routeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "router", Name: "route_seconds",
		Help:    "Time to route one stanza, from Route to enqueue on the recipient sessions.",
		Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
	})
	sessionsBound = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "router", Name: "sessions",
		Help: "Bound client sessions.",
	})
)

// dropReasons are the reasons besides the stanza error conditions a bounce
// answers with (wire.StanzaConditions, else "other").
var dropReasons = []string{"bad-from", "error-to-bare", "no-resource", "no-to", "offline", "queue", "relay",
	"to-server", "unexpected-iq-response", "cluster-gone", "cluster-malformed", "other"}

// routed holds the stanzas_total children by kind and origin, resolved
// once: the label lookup (hashing both values) is not paid per stanza.
var routed [4][4]prometheus.Counter

func init() {
	prometheus.MustRegister(stanzasRouted, stanzasDropped, routeSeconds, sessionsBound)
	// Every series exists from the start; labels come only from these sets.
	for k, kind := range wire.StanzaKinds {
		for o := range 4 {
			routed[k][o] = stanzasRouted.WithLabelValues(kind, originLabel(o))
		}
	}
	for _, r := range append(dropReasons, wire.StanzaConditions...) {
		stanzasDropped.WithLabelValues(r)
	}
}

func originLabel(k int) string {
	switch k {
	case 0:
		return "client"
	case 1:
		return "server"
	case 3:
		return "component"
	default:
		return "local"
	}
}
