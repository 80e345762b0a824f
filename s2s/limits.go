package s2s

import (
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/wire"
)

// Values of the limit label of parley_s2s_limit_hits_total (a fixed set).
const (
	limitQueue          = "queue"           // bytes queued for a remote domain
	limitPreAuthBytes   = "preauth_bytes"   // input before a peer authenticated
	limitPreAuthStanzas = "preauth_stanzas" // elements before a peer authenticated
	limitAuthTimeout    = "auth_timeout"    // no domain authenticated in time
	limitWriteTimeout   = "write_timeout"   // a write did not progress in time
	limitPerAddress     = "per_address"     // inbound streams from one address
	limitInbound        = "max_inbound"     // inbound streams in total
	limitDialbacks      = "dialbacks"       // concurrent dialback verifications
)

var limitHits = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "s2s", Name: "limit_hits_total",
	Help: "Server-to-server streams and stanzas refused or closed by a limit: queue, preauth_bytes, preauth_stanzas, auth_timeout, write_timeout, per_address, max_inbound, dialbacks.",
}, []string{"limit"})

func init() {
	prometheus.MustRegister(limitHits)
	for _, l := range []string{limitQueue, limitPreAuthBytes, limitPreAuthStanzas, limitAuthTimeout, limitWriteTimeout,
		limitPerAddress, limitInbound, limitDialbacks} {
		limitHits.WithLabelValues(l)
	}
}

// wrapConn puts the write deadline and the pre-authentication byte budget
// on a new connection.
func (s *Service) wrapConn(c net.Conn) *netlimit.Conn {
	return netlimit.NewConn(c, s.cfg.WriteTimeout, func() { limitHits.WithLabelValues(limitWriteTimeout).Inc() })
}

// admitInbound applies the inbound connection limits; when it admits c
// the caller must call release when the stream ends.
func (s *Service) admitInbound(c net.Conn) (release func(), se *wire.StreamError) {
	rel, ok := s.perAddr.Acquire(c.RemoteAddr().String())
	if !ok {
		limitHits.WithLabelValues(limitPerAddress).Inc()
		return nil, &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many connections from your address"}
	}
	if s.cfg.MaxInbound > 0 && len(s.in) >= s.cfg.MaxInbound { // caller holds mu
		rel()
		limitHits.WithLabelValues(limitInbound).Inc()
		return nil, &wire.StreamError{Condition: wire.CondResourceConstraint, Text: "too many server connections; try again later"}
	}
	return rel, nil
}

// refuse tells a refused peer why (on a plain connection; a TLS handshake
// would cost more than the refusal saves) and closes the connection. At
// most a few refusals are told at a time; the rest are closed at once.
func (s *Service) refuse(c net.Conn, directTLS bool, se *wire.StreamError) {
	if directTLS {
		_ = c.Close()
		return
	}
	s.rejects.Refuse(c, func(f func()) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f()
		}()
	}, func(c net.Conn) {
		st := newStream(netlimit.NewConn(c, time.Second, nil), s.cfg.Limits)
		st.headerThenError(s.firstDomain(), se)
	})
}

// dialbackSlot takes one of the concurrent outbound dialback
// verifications; ok is false when all are in use.
func (s *Service) dialbackSlot() (release func(), ok bool) {
	select {
	case s.dialbacks <- struct{}{}:
		return func() { <-s.dialbacks }, true
	default:
		limitHits.WithLabelValues(limitDialbacks).Inc()
		return nil, false
	}
}
