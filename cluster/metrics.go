package cluster

import "github.com/prometheus/client_golang/prometheus"

// Labels come from fixed sets; the peer label is a node name from the
// cluster's own configuration, at most maxPeerLabels of them ("other"
// beyond).
var (
	busSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "bus_sent_total",
		Help: "Messages sent to other nodes over the cluster bus, by peer node.",
	}, []string{"peer"})
	busReceived = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "bus_received_total",
		Help: "Messages received from other nodes over the cluster bus, by peer node.",
	}, []string{"peer"})
	busDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "bus_dropped_total",
		Help: "Bus messages lost, by reason (publish, malformed, slow-consumer).",
	}, []string{"reason"})
	busLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "bus_latency_seconds",
		Help:    "Time from publishing a bus message to handling it on the receiving node (includes clock skew between machines).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 2},
	})
	registryGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "registry_sessions",
		Help: "Sessions in the cluster-wide registry as this node sees it.",
	})
	nodesGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "nodes",
		Help: "Nodes heard from, this one included.",
	})
	registryWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "registry_writes_total",
		Help: "Registry writes by this node, by kind (claim, change, release, handover).",
	}, []string{"kind"})
	registryErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "registry_errors_total",
		Help: "Registry writes that failed (NATS unreachable or timing out).",
	})
	registryWaitTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "registry_wait_timeouts_total",
		Help: "Stanzas handled before the registry change they depend on arrived (waited 2s).",
	})
	sessionsReaped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "sessions_reaped_total",
		Help: "Sessions of dead nodes this node removed and announced unavailable.",
	})
	handovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "handovers_total",
		Help: "Stream resumptions across nodes, by role (in: resumed here, out: moved away) and result (ok, not-found, error).",
	}, []string{"role", "result"})
	handoverFinish = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "handover_forwards_finished_total",
		Help: "Moved sessions whose forward stream this node ended, by how (ok: every node confirmed; timeout).",
	}, []string{"how"})
	handoverFinishTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "handover_finish_timeouts_total",
		Help: "Sessions resumed here that stopped waiting for the old node's forward stream.",
	})
	leaseOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "cluster", Name: "leases_total",
		Help: "Entity (chat room) lease operations by this node, by kind (acquire, takeover, release, lost, reaped).",
	}, []string{"kind"})
)

func init() {
	prometheus.MustRegister(busSent, busReceived, busDropped, busLatency, registryGauge, nodesGauge,
		registryWrites, registryErrors, registryWaitTimeouts, sessionsReaped, handovers, leaseOps, handoverFinish, handoverFinishTimeouts)
}
