package mam

import "github.com/prometheus/client_golang/prometheus"

var (
	archived = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mam", Name: "archived_total",
		Help: "Messages stored in archives, by direction (in, out).",
	}, []string{"direction"})
	duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mam", Name: "duplicates_total",
		Help: "Resent messages (same origin-id and sender) not archived again.",
	})
	storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mam", Name: "store_errors_total",
		Help: "Messages that could not be archived (refused to the sender with resource-constraint).",
	})
	queries = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mam", Name: "queries_total",
		Help: "Archive queries answered.",
	})
	trimmed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mam", Name: "quota_trimmed_total",
		Help: "Oldest messages deleted from archives over limits.max_archive_bytes.",
	})
	purged = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mam", Name: "purged_total",
		Help: "Messages deleted by the retention policy.",
	})
)

// archivedIn and archivedOut are archived's children, resolved once.
var archivedIn, archivedOut prometheus.Counter

// countArchived counts one archived row by direction ("in" or "out").
func countArchived(direction string) {
	if direction == "in" {
		archivedIn.Inc()
	} else {
		archivedOut.Inc()
	}
}

func init() {
	prometheus.MustRegister(archived, duplicates, storeErrors, queries, purged, trimmed)
	// Labels from a fixed set, every series from the start.
	archivedIn = archived.WithLabelValues("in")
	archivedOut = archived.WithLabelValues("out")
}
