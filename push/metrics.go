package push

import "github.com/prometheus/client_golang/prometheus"

var (
	notificationsSent = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "push", Name: "notifications_sent_total",
		Help: "Push notifications the App Server acknowledged.",
	})
	notificationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "push", Name: "notification_failures_total",
		Help: "Push notifications that failed, by reason (error: the App Server answered with an error; timeout: no answer).",
	}, []string{"reason"})
	registrationsDisabled = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "push", Name: "registrations_disabled_total",
		Help: "Registrations disabled after an App Server error or affiliation change.",
	})
	coalesced = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "push", Name: "coalesced_total",
		Help: "Messages folded into a later notification instead of getting their own.",
	})
	droppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "push", Name: "dropped_total",
		Help: "Push work dropped, by reason (queue: a trigger found the queue full; retries: a notification failed MaxAttempts times).",
	}, []string{"reason"})
	dropped        = droppedTotal.WithLabelValues("queue")
	droppedRetries = droppedTotal.WithLabelValues("retries")
)

func init() {
	prometheus.MustRegister(notificationsSent, notificationFailures, registrationsDisabled, coalesced, droppedTotal)
	// Labels from a fixed set, every series from the start.
	notificationFailures.WithLabelValues("error")
	notificationFailures.WithLabelValues("timeout")
}
