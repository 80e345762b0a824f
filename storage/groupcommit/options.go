package groupcommit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options is what a backend's configuration says about group commit
// (storage.group_commit, storage.group_commit_max_batch,
// storage.group_commit_max_wait).
type Options struct {
	// Enabled turns group commit on; without it every item is written
	// by its caller in a transaction of its own.
	Enabled bool
	// MaxBatch bounds the items of one transaction; DefaultMaxBatch when
	// zero.
	MaxBatch int
	// MaxWait is how long the writer waits for more items once it has
	// the first of a batch; DefaultMaxWait when zero, no waiting when
	// negative (a batch is then whatever queued up during the previous
	// commit).
	MaxWait time.Duration
}

var (
	batchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "storage", Name: "archive_batch_rows",
		Help:    "Rows per group-commit transaction of archive writes, by backend.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
	}, []string{"backend"})
	batchSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "storage", Name: "archive_batch_seconds",
		Help:    "Time to write and commit one group-commit batch of archive writes, by backend.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
	}, []string{"backend"})
	batchErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "storage", Name: "archive_batch_errors_total",
		Help: "Group-commit batches of archive writes that failed, by backend.",
	}, []string{"backend"})
)

func init() {
	prometheus.MustRegister(batchSize, batchSeconds, batchErrors)
	// The backend label takes these values only (ObserveArchive's callers).
	for _, b := range []string{"sqlite", "postgres"} {
		batchSize.WithLabelValues(b)
		batchSeconds.WithLabelValues(b)
		batchErrors.WithLabelValues(b)
	}
}

// ObserveArchive returns a Config.Observe that feeds the archive batch
// metrics of backend.
func ObserveArchive(backend string) func(items int, took time.Duration, err error) {
	size, secs, errs := batchSize.WithLabelValues(backend), batchSeconds.WithLabelValues(backend), batchErrors.WithLabelValues(backend)
	return func(items int, took time.Duration, err error) {
		size.Observe(float64(items))
		secs.Observe(took.Seconds())
		if err != nil {
			errs.Inc()
		}
	}
}
