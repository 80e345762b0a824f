package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// Bus messages go to "<prefix>.node.<node>": headers say what to do, the
// body is the stanza's bytes as the routing node produced them (its hook
// chains already ran). One NATS connection per node publishes in order and
// one subscription delivers in order, so one sender's stanzas to one
// recipient keep their order.
const (
	hdrKind   = "K" // kind, below
	hdrTo     = "T" // full JID of the local session
	hdrConn   = "C" // its connection id
	hdrRev    = "R" // registry revision the stanza depends on
	hdrTime   = "N" // send time, unix nanoseconds (bus latency)
	hdrFrom   = "F" // sending node
	hdrSet    = "S" // flags to set
	hdrClear  = "X" // flags to clear
	hdrOrigin = "O" // module.OriginKind of a forwarded stanza
	hdrHops   = "H" // times it was forwarded
	hdrKey    = "V" // the key of a session value

	kindDeliver  = "d" // hand the stanza to the session
	kindResponse = "i" // an IQ response for a request this node sent
	kindPresence = "p" // set the session's presence (body empty: unavailable)
	kindFlags    = "f" // change the session's flags
	kindHost     = "h" // a stanza for an entity (room) this node runs
	kindValue    = "v" // set a session value (body: the value)
	kindMarker   = "m" // a node routes a moved session (connection C) to its new place
	kindFinished = "e" // the old node forwards nothing more for connection C
	kindFlush    = "l" // this node's own earlier messages for connection C are in
)

// busLimits bounds stanzas read from the bus: they were checked at the
// edge of the cluster already, so only the size matters (NATS caps
// messages at its max_payload, 1 MiB by default).
var busLimits = wire.Limits{MaxStanzaBytes: 16 << 20, MaxDepth: 64, MaxAttrs: 256}

// maxPeerLabels bounds the peer label of the bus metrics.
const maxPeerLabels = 32

func (n *Node) publish(node, kind, to, conn string, body []byte, extra map[string]string) error {
	m := nats.NewMsg(n.subject("node", node))
	m.Header.Set(hdrKind, kind)
	m.Header.Set(hdrFrom, n.cfg.Node)
	if to != "" {
		m.Header.Set(hdrTo, to)
	}
	if conn != "" {
		m.Header.Set(hdrConn, conn)
	}
	m.Header.Set(hdrRev, strconv.FormatUint(n.horizon(), 10))
	m.Header.Set(hdrTime, strconv.FormatInt(time.Now().UnixNano(), 10))
	for k, v := range extra {
		m.Header.Set(k, v)
	}
	m.Data = body
	if err := n.nc.PublishMsg(m); err != nil {
		busDropped.WithLabelValues("publish").Inc()
		return fmt.Errorf("cluster: to %s: %w", node, err)
	}
	busSent.WithLabelValues(n.peerLabel(node)).Inc()
	return nil
}

// ForwardResponse implements router.Cluster.
func (n *Node) ForwardResponse(node string, st *wire.Stanza) {
	_ = n.publish(node, kindResponse, "", "", st.Raw, nil)
}

// onBus handles a message on this node's subject.
func (n *Node) onBus(m *nats.Msg) {
	from := m.Header.Get(hdrFrom)
	busReceived.WithLabelValues(n.peerLabel(from)).Inc()
	if t, err := strconv.ParseInt(m.Header.Get(hdrTime), 10, 64); err == nil {
		busLatency.Observe(max(0, time.Since(time.Unix(0, t)).Seconds()))
	}
	if rev, err := strconv.ParseUint(m.Header.Get(hdrRev), 10, 64); err == nil && rev > 0 {
		// What the sender knew about the registry (e.g. a new session's
		// presence) is known here before its stanza is handled.
		n.waitApplied(rev, 2*time.Second)
	}
	kind := m.Header.Get(hdrKind)
	if kind == kindValue {
		full, err := jid.Parse(m.Header.Get(hdrTo))
		if err != nil {
			busDropped.WithLabelValues("malformed").Inc()
			return
		}
		if s := n.router.LocalSession(full, m.Header.Get(hdrConn)); s != nil {
			module.SetValue(s, m.Header.Get(hdrKey), m.Data)
		}
		return
	}
	var st *wire.Stanza
	if len(m.Data) > 0 {
		var err error
		if st, err = wire.Parse(m.Data, busLimits); err != nil {
			busDropped.WithLabelValues("malformed").Inc()
			n.log.Warn("cluster: malformed stanza on the bus", "from", from, "err", err)
			return
		}
	}
	switch kind {
	case kindMarker:
		n.onMarker(from, m.Header.Get(hdrConn))
		return
	case kindFinished:
		n.pending.finish(m.Header.Get(hdrConn))
		return
	case kindFlush:
		n.pending.flushed(m.Header.Get(hdrConn))
		return
	case kindResponse:
		if st != nil {
			n.router.ResolveResponse(st)
		}
		return
	case kindHost:
		n.onHost(m, st)
		return
	}
	full, err := jid.Parse(m.Header.Get(hdrTo))
	if err != nil {
		busDropped.WithLabelValues("malformed").Inc()
		return
	}
	conn := m.Header.Get(hdrConn)
	if kind == kindDeliver && st != nil {
		if n.pending.hold(conn, from, st) {
			return
		}
		if to, ok := n.moves.get(conn); ok {
			// The session moved to another node (resumed there): what
			// was on its way here follows it.
			_ = n.publish(to.node, kindDeliver, full.String(), to.conn, m.Data, nil)
			return
		}
		if s := n.router.LocalSession(full, conn); s != nil {
			n.reg.FireRelayed(context.Background(), s, st)
		}
		n.router.Deliver(context.Background(), full, conn, st)
		return
	}
	s := n.router.LocalSession(full, conn)
	if s == nil {
		return
	}
	switch kind {
	case kindPresence:
		s.SetPresence(st)
	case kindFlags:
		set, _ := strconv.ParseUint(m.Header.Get(hdrSet), 10, 32)
		clr, _ := strconv.ParseUint(m.Header.Get(hdrClear), 10, 32)
		s.SetFlags(module.Flags(set), module.Flags(clr))
	}
}

// Requests between nodes (NATS request/reply on "<prefix>.rpc.<node>").
const (
	opClose    = "close"
	opHandover = "handover"
	opDrain    = "drain"
)

type rpcRequest struct {
	Op   string `json:"op"`
	Full string `json:"full,omitempty"`
	Conn string `json:"conn,omitempty"`
	Rev  uint64 `json:"rev,omitempty"`
	// close
	Cond string `json:"cond,omitempty"`
	Text string `json:"text,omitempty"`
	// handover
	Bare    string `json:"bare,omitempty"`
	PrevID  string `json:"previd,omitempty"`
	NewNode string `json:"new_node,omitempty"`
	NewBoot string `json:"new_boot,omitempty"`
	NewConn string `json:"new_conn,omitempty"`
}

type rpcReply struct {
	Err      string          `json:"err,omitempty"`
	NotFound bool            `json:"not_found,omitempty"`
	Handover json.RawMessage `json:"handover,omitempty"`
	Rev      uint64          `json:"rev,omitempty"` // registry revision of the change the request made
}

var errNotFound = errors.New("cluster: no such session")

func (n *Node) call(ctx context.Context, node string, req rpcRequest) (*rpcReply, error) {
	b, _ := json.Marshal(req)
	m, err := n.nc.RequestWithContext(ctx, n.subject("rpc", node), b)
	if err != nil {
		return nil, err
	}
	var rep rpcReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return nil, fmt.Errorf("cluster: bad reply from %s: %w", node, err)
	}
	if rep.NotFound {
		return &rep, errNotFound
	}
	if rep.Err != "" {
		return &rep, errors.New(rep.Err)
	}
	return &rep, nil
}

func (n *Node) onRPC(m *nats.Msg) {
	var req rpcRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		n.reply(m, rpcReply{Err: "bad request"})
		return
	}
	// Requests may wait (a session's end runs module hooks): each gets its
	// own goroutine so that one slow request does not hold up the others.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if req.Rev > 0 {
			n.waitApplied(req.Rev, 2*time.Second)
		}
		switch req.Op {
		case opClose:
			n.reply(m, n.rpcClose(req))
		case opHandover:
			n.reply(m, n.rpcHandover(req))
		case opDrain:
			n.reply(m, n.rpcDrain())
		default:
			n.reply(m, rpcReply{Err: "unknown request " + req.Op})
		}
	}()
}

func (n *Node) reply(m *nats.Msg, rep rpcReply) {
	b, _ := json.Marshal(rep)
	if err := m.Respond(b); err != nil {
		n.log.Debug("cluster: cannot answer a request", "err", err)
	}
}

func (n *Node) rpcClose(req rpcRequest) rpcReply {
	full, err := jid.Parse(req.Full)
	if err != nil {
		return rpcReply{Err: "bad jid"}
	}
	s := n.router.LocalSession(full, req.Conn)
	if s == nil {
		return rpcReply{NotFound: true}
	}
	var se *wire.StreamError
	if req.Cond != "" {
		se = &wire.StreamError{Condition: req.Cond, Text: req.Text}
	}
	s.Close(se)
	return rpcReply{}
}

func (n *Node) peerLabel(node string) string {
	if node == "" {
		return "unknown"
	}
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	if _, ok := n.peers.labels[node]; ok || len(n.peers.labels) < maxPeerLabels {
		n.peers.labels[node] = struct{}{}
		return node
	}
	return "other"
}
