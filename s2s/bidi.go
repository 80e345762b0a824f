package s2s

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Bidirectional streams (XEP-0288). The initiating server sends
// <bidi xmlns='urn:xmpp:bidi'/> after TLS when the receiving server
// advertises <bidi xmlns='urn:xmpp:features:bidi'/>; from then on the one
// connection carries stanzas both ways, and each side may only send for
// the domain pairs the other authenticated on it:
//
//   - SASL EXTERNAL: the pair of the stream header (the initiator's 'from'
//     and the receiver's 'to');
//   - dialback: the inverse of every pair verified with <db:result/>,
//     including pairs the receiving side adds later over the same stream
//     (XEP-0288 §2, "the receiving server MAY initiate Server Dialback").
//
// Both sides keep checking that each stanza they read comes from a domain
// authenticated on that stream for its 'to' domain (RFC 6120 §13.9),
// whichever side opened the TCP connection.

const (
	nsBidi     = xep.NSBidi
	nsBidiFeat = xep.NSBidiFeature
)

// link is a bidirectional stream that Send may use for a domain pair
// instead of dialing: an inbound stream, or extra pairs the peer
// authenticated on one of our outbound streams.
type link struct {
	s    *stream
	done <-chan struct{} // closed when the stream has ended
	log  *slog.Logger
}

func (l *link) ended() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (s *Service) bidiEnabled() bool { return !s.cfg.DisableBidi }

// addLink offers l to Send for pair p (our local domain, the peer's
// domain). A pair keeps the first live link it got.
func (s *Service) addLink(p pair, l *link) {
	if !s.bidiEnabled() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.links[p]; old == nil || old.ended() {
		s.links[p] = l
		l.log.Debug("bidirectional stream usable for outbound stanzas", "pair", p.local+" -> "+p.remote)
	}
}

// dropLinks forgets every pair that uses l.
func (s *Service) dropLinks(l *link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, v := range s.links {
		if v == l {
			delete(s.links, p)
		}
	}
}

// authSet is the set of domain pairs a peer is authenticated for on one
// connection: pair{local, remote} lets the peer send from remote to local
// and, on a bidirectional stream, us send from local to remote. It is
// shared between the connection's reader and its dialback verifications.
type authSet struct {
	svc *Service
	dir string // "in": count the domains as inbound connections

	mu      sync.Mutex
	authed  map[pair]bool
	pending map[pair]bool
	domains map[string]int
	link    *link // set once the stream is bidirectional
}

func newAuthSet(s *Service, dir string) *authSet {
	return &authSet{svc: s, dir: dir, authed: map[pair]bool{}, pending: map[pair]bool{}, domains: map[string]int{}}
}

func (a *authSet) has(p pair) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.authed[p]
}

func (a *authSet) any() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.authed) > 0
}

func (a *authSet) isBidi() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.link != nil
}

// mark authenticates p; on a bidirectional stream p becomes usable for
// our outbound stanzas too.
func (a *authSet) mark(p pair) {
	a.mu.Lock()
	a.authed[p] = true
	l := a.link
	if a.domains[p.remote]++; a.domains[p.remote] == 1 && a.dir != "" {
		a.svc.stats.conn(p.remote, a.dir, 1)
	}
	a.mu.Unlock()
	if l != nil {
		a.svc.addLink(p, l)
	}
}

// setBidi makes the stream bidirectional; pairs authenticated so far
// become usable for outbound stanzas.
func (a *authSet) setBidi(l *link) {
	a.mu.Lock()
	if a.link != nil {
		a.mu.Unlock()
		return
	}
	a.link = l
	ps := make([]pair, 0, len(a.authed))
	for p := range a.authed {
		ps = append(ps, p)
	}
	a.mu.Unlock()
	for _, p := range ps {
		a.svc.addLink(p, l)
	}
}

// release undoes the metrics and the links when the connection ends.
func (a *authSet) release() {
	a.mu.Lock()
	l := a.link
	if a.dir != "" {
		for d := range a.domains {
			a.svc.stats.conn(d, a.dir, -1)
		}
	}
	a.domains = map[string]int{}
	a.mu.Unlock()
	if l != nil {
		a.svc.dropLinks(l)
	}
}

// acceptStanza routes a stanza read from a peer, but only for a domain pair
// authenticated on this stream (RFC 6120 §13.9, XEP-0220 §4.3, and
// XEP-0288 §2 for stanzas read on our own outbound streams).
func (s *Service) acceptStanza(ctx context.Context, str *stream, a *authSet, st *wire.Stanza) error {
	if !a.any() {
		return &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "authenticate first"}
	}
	if st.From == "" || st.To == "" {
		return &wire.StreamError{Condition: wire.CondImproperAddressing, Text: "stanzas between servers need from and to"}
	}
	fromDom, ok := domainOf(st.From)
	if !ok {
		return &wire.StreamError{Condition: wire.CondInvalidFrom, Text: "malformed from address"}
	}
	toDom, ok := domainOf(st.To)
	if !ok || !s.local[toDom] {
		return &wire.StreamError{Condition: wire.CondHostUnknown, Text: "this server does not serve " + st.To}
	}
	if !a.has(pair{local: toDom, remote: fromDom}) {
		return &wire.StreamError{Condition: wire.CondInvalidFrom, Text: fromDom + " is not authenticated on this stream"}
	}
	if !s.Permitted(fromDom) {
		// Authenticated before the policy changed, or on an outbound
		// stream of ours: refused all the same.
		policyRefusals.WithLabelValues("in").Inc()
		return nil
	}
	s.stats.in(fromDom)
	// Read on while the stanza is routed and its archive rows commit
	// (store before forward: what it is delivered in waits for them).
	str.route(s, st)
	return nil
}

// dialbackRequest handles an authorization request (XEP-0220 §2.2.1,
// <db:result/> without type): the peer claims to be 'from' and wants to
// send to 'to'. We ask the authoritative server of 'from' on a separate
// connection whether the key is valid for streamID, the id the receiving
// side of this connection gave it.
func (s *Service) dialbackRequest(ctx context.Context, str *stream, streamID string, a *authSet, st *wire.Stanza, log *slog.Logger) error {
	from, okFrom := domainOnly(st.From)
	to, okTo := domainOnly(st.To)
	if !okFrom || !okTo {
		return &wire.StreamError{Condition: wire.CondImproperAddressing, Text: "dialback needs from and to domains"}
	}
	if !s.local[to] {
		return str.send(dbError("result", st.To, st.From, "", "cancel", "item-not-found"))
	}
	if s.local[from] {
		authFailures.WithLabelValues("dialback").Inc()
		return &wire.StreamError{Condition: wire.CondInvalidFrom, Text: "a peer cannot authenticate as a local domain"}
	}
	if !s.Permitted(from) {
		policyRefusals.WithLabelValues("in").Inc()
		return str.send(dbError("result", to, from, "", "cancel", "not-allowed"))
	}
	p := pair{local: to, remote: from}
	key := strings.TrimSpace(st.Tree().Text())
	a.mu.Lock()
	if a.authed[p] {
		a.mu.Unlock()
		return str.send([]byte("<db:result from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) + "' type='valid'/>"))
	}
	if a.pending[p] || len(a.pending) >= maxPendingVerifications {
		a.mu.Unlock()
		return str.send(dbError("result", to, from, "", "wait", "policy-violation"))
	}
	release := func() {}
	if s.dialbacks != nil {
		var ok bool
		if release, ok = s.dialbackSlot(); !ok {
			// Each verification opens a connection to a domain the peer
			// names: only so many at once, whoever asks.
			a.mu.Unlock()
			return str.send(dbError("result", to, from, "", "wait", "resource-constraint"))
		}
	}
	a.pending[p] = true
	a.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.verifyKey(ctx, to, from, streamID, key)
		release()
		a.mu.Lock()
		delete(a.pending, p)
		a.mu.Unlock()
		var resp []byte
		switch {
		case err == nil:
			a.mark(p)
			log.Info("peer authenticated", "mechanism", "dialback", "remote", from, "local", to)
			resp = []byte("<db:result from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) + "' type='valid'/>")
		case errors.Is(err, errDialbackInvalid):
			authFailures.WithLabelValues("dialback").Inc()
			log.Info("dialback key rejected by authoritative server", "remote", from)
			resp = []byte("<db:result from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) + "' type='invalid'/>")
		default:
			authFailures.WithLabelValues("dialback").Inc()
			log.Info("dialback verification failed", "remote", from, "err", err)
			resp = dbError("result", to, from, "", "cancel", "remote-server-not-found")
		}
		_ = str.send(resp)
	}()
	return nil
}

// dialbackVerify answers a verification request as the authoritative
// server (XEP-0220 §2.2.2). The key must match and we must really be
// waiting for a dialback result on a stream with that id.
func (s *Service) dialbackVerify(str *stream, st *wire.Stanza) error {
	if st.Type != "" {
		authFailures.WithLabelValues("dialback").Inc()
		return &wire.StreamError{Condition: condInvalidID, Text: "unsolicited dialback verification"}
	}
	// Answering needs no TLS: the answer only says whether an HMAC over
	// public values matches (XEP-0220 allows bare verification streams).
	from, okFrom := domainOnly(st.From)
	to, okTo := domainOnly(st.To)
	if !okFrom || !okTo || st.ID == "" {
		return &wire.StreamError{Condition: wire.CondImproperAddressing, Text: "dialback needs from, to and id"}
	}
	if !s.local[to] {
		return str.send(dbError("verify", st.To, st.From, st.ID, "cancel", "item-not-found"))
	}
	key := strings.TrimSpace(st.Tree().Text())
	typ := "invalid"
	if s.checkKey(from, to, st.ID, key) && s.pendingAnywhere(to, from, st.ID) {
		typ = "valid"
	}
	return str.send([]byte("<db:verify from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) +
		"' id='" + wire.EscapeAttr(st.ID) + "' type='" + typ + "'/>"))
}
