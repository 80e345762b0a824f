package cluster

import (
	"context"

	"github.com/nats-io/nats.go"
)

// Dialback (XEP-0220) across nodes. A remote server verifies the key one
// node sent by asking a.test's authoritative server, which is whichever
// node its DNS (or route) names. The nodes share the secret keys are made
// with, but a node confirms a key only while a stream is waiting on it:
// the node asked puts the question "is one of you waiting on this stream?"
// on <prefix>.dialback, and the node that is answers.

// Headers of a dialback question.
const (
	hdrDBLocal  = "L"
	hdrDBRemote = "M"
	hdrDBID     = "I"
)

// SetDialbackPending gives the node the s2s service's own answer (call it
// before Start).
func (n *Node) SetDialbackPending(f func(local, remote, id string) bool) { n.dbPending = f }

func (n *Node) onDialback(m *nats.Msg) {
	if m.Header.Get(hdrFrom) == n.cfg.Node || n.dbPending == nil || m.Reply == "" {
		return
	}
	if n.dbPending(m.Header.Get(hdrDBLocal), m.Header.Get(hdrDBRemote), m.Header.Get(hdrDBID)) {
		_ = m.Respond([]byte("pending"))
	}
}

// DialbackPending asks the other nodes whether one of them is waiting on
// the result of a dialback request it sent on its stream id from local to
// remote. Only a node that is answers, so false comes when ctx ends.
func (n *Node) DialbackPending(ctx context.Context, local, remote, id string) bool {
	m := nats.NewMsg(n.subject("dialback"))
	m.Header.Set(hdrFrom, n.cfg.Node)
	m.Header.Set(hdrDBLocal, local)
	m.Header.Set(hdrDBRemote, remote)
	m.Header.Set(hdrDBID, id)
	_, err := n.nc.RequestMsgWithContext(ctx, m)
	return err == nil
}
