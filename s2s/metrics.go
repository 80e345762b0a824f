package s2s

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-xmpp/parley/wire"
)

// Label values come from fixed sets: remote domains only when the admin
// named them (s2s.routes, s2s.metrics_domains), every other domain is
// "other", so peers (or local users writing to made-up domains) cannot grow
// the registry.
var (
	directions    = []string{"in", "out"}
	failureLabels = []string{wire.ErrRemoteServerNotFound, wire.ErrRemoteServerTimeout, "write", "other"}
	authMethods   = []string{"external", "dialback"}
)

const otherDomain = "other"

var (
	connGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "connections",
		Help: "Authenticated server-to-server streams by remote domain (those in s2s.routes or s2s.metrics_domains, else other) and direction (in, out).",
	}, []string{"domain", "direction"})
	stanzasIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "stanzas_in_total",
		Help: "Stanzas accepted from remote domains (named ones, else other).",
	}, []string{"domain"})
	stanzasOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "stanzas_out_total",
		Help: "Stanzas written to remote domains (named ones, else other).",
	}, []string{"domain"})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "failures_total",
		Help: "Outbound connection failures by remote domain (named ones, else other) and reason.",
	}, []string{"domain", "reason"})
	authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "auth_failures_total",
		Help: "Inbound authentication failures by method (external, dialback).",
	}, []string{"method"})
	policyRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "policy_refusals_total",
		Help: "Streams and stanzas refused by s2s.blocked_domains / s2s.allowed_domains, by direction (in, out).",
	}, []string{"direction"})
	streamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "s2s", Name: "stream_errors_total",
		Help: "Stream errors sent to peers by RFC 6120 condition.",
	}, []string{"condition"})
)

func init() {
	prometheus.MustRegister(connGauge, stanzasIn, stanzasOut, failures, authFailures, streamErrors, policyRefusals)
	for _, d := range directions {
		policyRefusals.WithLabelValues(d)
	}
	prewarmDomain(otherDomain)
	for _, m := range authMethods {
		authFailures.WithLabelValues(m)
	}
	for _, c := range append(wire.StreamConditions, "other") {
		streamErrors.WithLabelValues(c)
	}
}

// prewarmDomain creates every series of one domain label.
func prewarmDomain(d string) {
	for _, dir := range directions {
		connGauge.WithLabelValues(d, dir)
	}
	stanzasIn.WithLabelValues(d)
	stanzasOut.WithLabelValues(d)
	for _, r := range failureLabels {
		failures.WithLabelValues(d, r)
	}
}

func countStreamError(cond string) {
	streamErrors.WithLabelValues(wire.StreamConditionLabel(cond)).Inc()
}

func failureLabel(reason string) string {
	for _, r := range failureLabels {
		if reason == r {
			return r
		}
	}
	return "other"
}

// maxStatsDomains bounds the per-Service counters kept for Stats; domains
// beyond it are counted under "other".
const maxStatsDomains = 10000

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
	named map[string]bool // domains with their own metric label; set before use

	mu sync.Mutex
	m  map[string]*DomainStats
}

// label is the metric label of a remote domain.
func (s *stats) label(d string) string {
	if s.named[d] {
		return d
	}
	return otherDomain
}

func (s *stats) get(d string) *DomainStats {
	if s.m == nil {
		s.m = map[string]*DomainStats{}
	}
	ds := s.m[d]
	if ds == nil && len(s.m) >= maxStatsDomains {
		d = otherDomain
		ds = s.m[d]
	}
	if ds == nil {
		ds = &DomainStats{}
		s.m[d] = ds
	}
	return ds
}

func (s *stats) conn(d, dir string, delta int) {
	connGauge.WithLabelValues(s.label(d), dir).Add(float64(delta))
	s.mu.Lock()
	defer s.mu.Unlock()
	if dir == "in" {
		s.get(d).ConnectionsIn += delta
	} else {
		s.get(d).ConnectionsOut += delta
	}
}

func (s *stats) in(d string) {
	stanzasIn.WithLabelValues(s.label(d)).Inc()
	s.mu.Lock()
	s.get(d).StanzasIn++
	s.mu.Unlock()
}

func (s *stats) out(d string, n int) {
	stanzasOut.WithLabelValues(s.label(d)).Add(float64(n))
	s.mu.Lock()
	s.get(d).StanzasOut += uint64(n)
	s.mu.Unlock()
}

func (s *stats) failure(d, reason string) {
	failures.WithLabelValues(s.label(d), failureLabel(reason)).Inc()
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
