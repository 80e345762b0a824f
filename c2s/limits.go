package c2s

import "github.com/prometheus/client_golang/prometheus"

// Values of the limit label of parley_c2s_limit_hits_total (a fixed set).
const (
	limitSendQueue      = "send_queue"      // bytes queued for a client that does not read
	limitUnacked        = "sm_unacked"      // bytes a client has not acknowledged (XEP-0198)
	limitCSIHold        = "csi_hold"        // bytes held for an inactive client (XEP-0352)
	limitPreAuthBytes   = "preauth_bytes"   // input before authentication
	limitPreAuthStanzas = "preauth_stanzas" // elements before authentication
	limitAuthTimeout    = "auth_timeout"    // no session bound in time
	limitWriteTimeout   = "write_timeout"   // a write did not progress in time
	limitPerAddress     = "per_address"     // connections from one address
	limitUnauth         = "unauthenticated" // unauthenticated connections in total
)

var (
	limitHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "limit_hits_total",
		Help: "Client connections slowed, refused or closed by a limit: send_queue, sm_unacked, csi_hold, preauth_bytes, preauth_stanzas, auth_timeout, write_timeout, per_address, unauthenticated.",
	}, []string{"limit"})
	unauthenticated = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "c2s", Name: "unauthenticated_connections",
		Help: "Client connections that have not authenticated yet.",
	})
)

func init() {
	for _, l := range []string{limitSendQueue, limitUnacked, limitCSIHold, limitPreAuthBytes, limitPreAuthStanzas,
		limitAuthTimeout, limitWriteTimeout, limitPerAddress, limitUnauth} {
		limitHits.WithLabelValues(l)
	}
	prometheus.MustRegister(limitHits, unauthenticated)
}
