package upload

import "github.com/prometheus/client_golang/prometheus"

var (
	slotsIssued = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upload", Name: "slots_total",
		Help: "Upload slots handed out.",
	})
	uploadsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upload", Name: "uploads_total",
		Help: "Files uploaded completely.",
	})
	uploadBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upload", Name: "bytes_total",
		Help: "Bytes of files uploaded completely.",
	})
	rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upload", Name: "rejections_total",
		Help: "Slot requests and PUTs refused, by reason.",
	}, []string{"reason"})
	filesDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upload", Name: "files_deleted_total",
		Help: "Files deleted by expiry, pruning or account deletion.",
	})
	diskUsage = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "upload", Name: "disk_usage_bytes",
		Help: "Bytes used by stored files (measured at each sweep, adjusted in between); with the s3 backend, the objects under the bucket prefix.",
	})
	blobErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "upload", Name: "backend_errors_total",
		Help: "Failed calls to the file store (s3 backend), by operation: put, open, get, delete, usage.",
	}, []string{"op"})
)

// Rejection reasons.
const (
	reasonTooLarge       = "too-large"
	reasonQuota          = "quota"
	reasonBadRequest     = "bad-request"
	reasonNotAllowed     = "not-allowed"
	reasonBadSignature   = "bad-signature"
	reasonExpired        = "expired"
	reasonReused         = "reused"
	reasonLength         = "length-mismatch"
	reasonContentType    = "content-type"
	reasonNotFound       = "not-found"
	reasonIncompleteBody = "incomplete-body"
)

func init() {
	prometheus.MustRegister(slotsIssued, uploadsTotal, uploadBytes, rejections, filesDeleted, diskUsage, blobErrors)
	// Labels from fixed sets, every series from the start.
	for _, r := range []string{reasonTooLarge, reasonQuota, reasonBadRequest, reasonNotAllowed, reasonBadSignature,
		reasonExpired, reasonReused, reasonLength, reasonContentType, reasonNotFound, reasonIncompleteBody} {
		rejections.WithLabelValues(r)
	}
	for _, op := range []string{"put", "open", "get", "delete", "usage"} {
		blobErrors.WithLabelValues(op)
	}
}

func reject(reason string) { rejections.WithLabelValues(reason).Inc() }
