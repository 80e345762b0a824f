package router

import (
	"context"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// Cluster connects the router to the other nodes of a cluster (package
// cluster implements it on NATS). Without one the router is a single node
// and its map of local sessions is the whole registry.
//
// Sessions bound on other nodes appear to the router and to modules as
// module.Session values whose Send carries the stanza to the owning node,
// where it is handed to the session as it is: hook chains run once, on
// the node that routed the stanza.
type Cluster interface {
	// Node is this node's name.
	Node() string
	// Claim records s, just bound here, cluster-wide. It returns the
	// session of another node that had the same full JID, which the
	// caller closes with <conflict/>, and ErrTooManySessions when the
	// account has max sessions on all nodes together (decided atomically
	// across nodes).
	Claim(ctx context.Context, s module.Session, max int) (replaced module.Session, err error)
	// Release forgets s (unbound here) unless another session took its
	// full JID meanwhile.
	Release(s module.Session)
	// Changed publishes s's new presence, priority and flags.
	Changed(s module.Session)
	// Remote returns the sessions of bare bound on other live nodes.
	Remote(bare string) []module.Session
	// RemoteSession returns the session bound to full on another live
	// node, or nil.
	RemoteSession(full string) module.Session
	// RemoteCount is the number of bare's sessions on other nodes.
	RemoteCount(bare string) int
	// Superseded reports whether s, bound here, lost its full JID to a
	// newer session (bound on another node).
	Superseded(s module.Session) bool
	// ForwardResponse sends an IQ response to node, which sent the request.
	ForwardResponse(node string, st *wire.Stanza)
}

// Resumable is implemented by sessions that a client can resume
// (XEP-0198); the cluster publishes a digest of the id so that another
// node can find the session when the client comes back there.
type Resumable interface {
	ResumeID() string
}

// Valued is implemented by sessions that keep modules' values
// (module.SessionValues): the cluster publishes them with the session.
type Valued interface {
	Values() map[string][]byte
}

// SetCluster makes the router one node of a cluster. Call it before
// serving.
func (r *Router) SetCluster(c Cluster) { r.cluster = c }

// Cluster returns the cluster the router belongs to, nil for a single node.
func (r *Router) Cluster() Cluster { return r.cluster }

// Changed tells the cluster that s's presence, priority or flags changed.
func (r *Router) Changed(s module.Session) {
	if r.cluster != nil {
		r.cluster.Changed(s)
	}
}

// LocalSession returns the session bound here to full, or nil. A non-empty
// conn must match its connection id.
func (r *Router) LocalSession(full jid.JID, conn string) module.Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.sessions[full.Bare().String()] {
		if s.JID().Resourcepart() == full.Resourcepart() && (conn == "" || s.ConnID() == conn) {
			return s
		}
	}
	return nil
}

// LocalCount is the number of sessions bound on this node.
func (r *Router) LocalCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, l := range r.sessions {
		n += len(l)
	}
	return n
}

// Deliver hands st, routed by another node for the session bound here to
// full with connection id conn, to that session. When the session is gone
// it is treated as a stanza to a resource that is not available (RFC 6121
// §8.5.3.2): a message goes to the account's other resources or offline
// storage, an IQ request is answered with an error, the rest is dropped.
func (r *Router) Deliver(ctx context.Context, full jid.JID, conn string, st *wire.Stanza) {
	if s := r.LocalSession(full, conn); s != nil {
		// The routing node stored it before it let it go.
		r.send(&module.Event{}, s, st)
		return
	}
	stanzasDropped.WithLabelValues("cluster-gone").Inc()
	switch st.Name {
	case "message":
		switch st.Type {
		case "groupchat", "headline", "error":
			return
		}
		ev := &module.Event{Stanza: st, To: full.Bare(), Origin: module.Origin{Kind: module.FromLocal}}
		ev.From, _ = jid.Parse(st.From)
		r.messageToBare(ctx, ev)
	case "iq":
		if st.Type == "get" || st.Type == "set" {
			r.bounce(ctx, st, wire.ErrServiceUnavailable, "")
		}
	}
}

// ResolveResponse resolves an IQ response that another node received for
// a request sent from here.
func (r *Router) ResolveResponse(st *wire.Stanza) { r.resolvePending(st) }

// iqIDPrefix marks the ids of IQ requests a node sends, so that the answer
// reaches it whichever node the responder is on: "n~<node>~".
const iqIDPrefix = "n~"

func (r *Router) requestID(id string) string {
	if r.cluster == nil {
		return id
	}
	return iqIDPrefix + r.cluster.Node() + "~" + id
}

// requestNode returns the node that sent the request id answers, "" for
// none.
func requestNode(id string) string {
	rest, ok := strings.CutPrefix(id, iqIDPrefix)
	if !ok {
		return ""
	}
	node, _, ok := strings.Cut(rest, "~")
	if !ok {
		return ""
	}
	return node
}

// DispatchHost gives st, which another node forwarded because this node
// runs the entity it is addressed to (a chat room, see module.Placement),
// to its service host. The forwarding node ran the hook chains.
func (r *Router) DispatchHost(ctx context.Context, st *wire.Stanza, origin module.Origin, forwards int) {
	ev := &module.Event{Stanza: st, Origin: origin, Forwards: forwards}
	var err error
	if ev.To, err = jid.Parse(st.To); err != nil {
		stanzasDropped.WithLabelValues("cluster-malformed").Inc()
		return
	}
	if st.From != "" {
		if ev.From, err = jid.Parse(st.From); err != nil {
			stanzasDropped.WithLabelValues("cluster-malformed").Inc()
			return
		}
	}
	h, ok := r.hosts[ev.To.Domainpart()]
	if !ok {
		stanzasDropped.WithLabelValues("cluster-malformed").Inc()
		return
	}
	r.toHost(ctx, ev, h)
}
