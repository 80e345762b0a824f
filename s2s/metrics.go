package s2s

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	connGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "connections",
		Help: "Authenticated server-to-server streams by remote domain and direction (in, out).",
	}, []string{"domain", "direction"})
	stanzasIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "stanzas_in_total",
		Help: "Stanzas accepted from remote domains.",
	}, []string{"domain"})
	stanzasOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "stanzas_out_total",
		Help: "Stanzas written to remote domains.",
	}, []string{"domain"})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "failures_total",
		Help: "Outbound connection failures by remote domain and reason.",
	}, []string{"domain", "reason"})
	authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "auth_failures_total",
		Help: "Inbound authentication failures by method (external, dialback).",
	}, []string{"method"})
	streamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "stream_errors_total",
		Help: "Stream errors sent to peers by condition.",
	}, []string{"condition"})
)

func init() {
	prometheus.MustRegister(connGauge, stanzasIn, stanzasOut, failures, authFailures, streamErrors)
}

// DomainStats are the counters of one remote domain for this Service.
type DomainStats struct {
	ConnectionsIn  int
	ConnectionsOut int
	StanzasIn      uint64
	StanzasOut     uint64
	Failures       uint64
}

// stats mirrors the Prometheus metrics per Service (the Prometheus ones
// are process-wide).
type stats struct {
	mu sync.Mutex
	m  map[string]*DomainStats
}

func (s *stats) get(d string) *DomainStats {
	if s.m == nil {
		s.m = map[string]*DomainStats{}
	}
	ds := s.m[d]
	if ds == nil {
		ds = &DomainStats{}
		s.m[d] = ds
	}
	return ds
}

func (s *stats) conn(d, dir string, delta int) {
	connGauge.WithLabelValues(d, dir).Add(float64(delta))
	s.mu.Lock()
	defer s.mu.Unlock()
	if dir == "in" {
		s.get(d).ConnectionsIn += delta
	} else {
		s.get(d).ConnectionsOut += delta
	}
}

func (s *stats) in(d string) {
	stanzasIn.WithLabelValues(d).Inc()
	s.mu.Lock()
	s.get(d).StanzasIn++
	s.mu.Unlock()
}

func (s *stats) out(d string, n int) {
	stanzasOut.WithLabelValues(d).Add(float64(n))
	s.mu.Lock()
	s.get(d).StanzasOut += uint64(n)
	s.mu.Unlock()
}

func (s *stats) failure(d, reason string) {
	failures.WithLabelValues(d, reason).Inc()
	s.mu.Lock()
	s.get(d).Failures++
	s.mu.Unlock()
}

// Stats returns a snapshot of the counters per remote domain.
func (s *Service) Stats() map[string]DomainStats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := make(map[string]DomainStats, len(s.stats.m))
	for d, ds := range s.stats.m {
		out[d] = *ds
	}
	return out
}
