package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Draining (rolling upgrades). A node that is about to stop says so in
// its heartbeats: the others stop sending it new rooms (leases) and count
// it out when they pick an address for <see-other-host/>, and it hands
// rooms it is asked about to a node that stays. Its clients resume their
// sessions on other nodes (hand-over on demand) or are redirected; see
// server.Server.Drain.

// SetDraining marks this node as leaving the cluster, at once for the
// other nodes.
func (n *Node) SetDraining() {
	if n.draining.CompareAndSwap(false, true) {
		n.log.Info("cluster: draining")
		if n.nc != nil {
			n.heartbeat()
		}
	}
}

// Draining reports whether this node is leaving the cluster.
func (n *Node) Draining() bool { return n.draining.Load() }

// OtherAddress returns the client address (cluster.advertise) of a live
// node that is not draining, picked at random so that redirected clients
// spread; "" when none advertises one.
func (n *Node) OtherAddress() string {
	var addrs []string
	for _, p := range n.Peers() {
		if p.Alive && !p.Draining && p.Advertise != "" {
			addrs = append(addrs, p.Advertise)
		}
	}
	if len(addrs) == 0 {
		return ""
	}
	return addrs[rand.IntN(len(addrs))]
}

// OnDrain sets what a drain request from `parley cluster drain` does
// (the server drains and stops).
func (n *Node) OnDrain(f func()) { n.onDrain = f }

func (n *Node) rpcDrain() rpcReply {
	if n.onDrain == nil {
		return rpcReply{Err: "this node cannot drain"}
	}
	if !n.draining.Load() {
		go n.onDrain()
	}
	return rpcReply{}
}

// RequestDrain asks node to drain and stop (`parley cluster drain`). It
// returns once the node has accepted.
func RequestDrain(ctx context.Context, cfg Config, node string) error {
	nc, err := Dial(cfg, "parley cluster drain")
	if err != nil {
		return err
	}
	defer nc.Close()
	b, _ := json.Marshal(rpcRequest{Op: opDrain})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, cfg.Prefix+".rpc."+node, b)
	if err != nil {
		return fmt.Errorf("node %s did not answer (is it running, and is cluster.nats.prefix %q right?): %w", node, cfg.Prefix, err)
	}
	var rep rpcReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return fmt.Errorf("node %s: bad answer: %w", node, err)
	}
	if rep.Err != "" {
		return errors.New(rep.Err)
	}
	return nil
}
