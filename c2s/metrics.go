package c2s

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/wire"
)

// Every label value comes from a fixed set (below), and every series is
// created at start: what a client sends (a mechanism name, an element name)
// never becomes a label, so no client can grow the registry.
var (
	transportLabels = []string{"tcp", "tls", "websocket"}
	authResults     = []string{"success", "failure", "throttled"}
)

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
		Help: "SASL authentications by mechanism (those the server implements, else other) and result (success, failure, throttled).",
	}, []string{"mechanism", "result"})
	stanzasIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "stanzas_in_total",
		Help: "Stanzas received from clients by kind (message, presence, iq).",
	}, []string{"kind"})
	stanzasOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "stanzas_out_total",
		Help: "Stanzas queued to clients by kind (message, presence, iq, other).",
	}, []string{"kind"})
	stanzasUnstored = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "stanzas_unstored_total",
		Help: "Stanzas not written to a client because a write they wait for (their archive row) failed; the sender got an error instead.",
	})
	bansTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "bans_total",
		Help: "Client addresses banned after repeated abuse (bans.*).",
	})
	bannedRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "banned_connections_total",
		Help: "Client connections refused because their address is banned.",
	})
	streamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "stream_errors_total",
		Help: "Stream errors sent to clients by RFC 6120 condition.",
	}, []string{"condition"})
	drained = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "drained_total",
		Help: "Client connections moved off a draining cluster node, by how (resumable, see-other-host, shutdown).",
	}, []string{"how"})
)

func init() {
	prometheus.MustRegister(connections, connectionsTotal, authentications, stanzasIn, stanzasOut, stanzasUnstored, streamErrors,
		bansTotal, bannedRefused, drained)
	for _, h := range []string{"resumable", "see-other-host", "shutdown"} {
		drained.WithLabelValues(h)
	}
	for _, t := range transportLabels {
		connections.WithLabelValues(t)
		connectionsTotal.WithLabelValues(t)
	}
	for _, m := range auth.MechanismLabels() {
		for _, r := range authResults {
			authentications.WithLabelValues(m, r)
		}
	}
	for i, k := range wire.StanzaKinds {
		kindIn[i] = stanzasIn.WithLabelValues(k)
		kindOut[i] = stanzasOut.WithLabelValues(k)
	}
	for _, c := range append(wire.StreamConditions, "other") {
		streamErrors.WithLabelValues(c)
	}
}

// countAuth counts one SASL outcome for the mechanism the client named.
func countAuth(mech, result string) {
	authentications.WithLabelValues(auth.MechanismLabel(mech), result).Inc()
}

// countStreamError counts a stream error sent to a client.
func countStreamError(cond string) {
	streamErrors.WithLabelValues(wire.StreamConditionLabel(cond)).Inc()
}

// kindIn and kindOut are the stanzas_in/out children by wire.StanzaKinds
// index, resolved once rather than looked up by label per stanza.
var kindIn, kindOut [4]prometheus.Counter
