package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Heartbeats go to "<prefix>.hb" every cluster.heartbeat. A node not heard
// for three heartbeats is unreachable: its sessions are skipped by routing
// (messages go to offline storage instead of into a dead node). A node not
// heard for cluster.dead_after is dead: the survivors remove its registry
// entries with compare-and-delete, and the one whose delete succeeds
// announces that session's end (unavailable presence) — once per session.
type heartbeat struct {
	Node     string `json:"n"`
	Boot     string `json:"b"`
	Sessions int    `json:"s"`
	Started  int64  `json:"t"`
	Version  string `json:"v,omitempty"`
	Bye      bool   `json:"bye,omitempty"`
	// Draining: the node is leaving (rolling upgrade); it takes no new
	// clients or rooms.
	Draining bool `json:"d,omitempty"`
	// Advertise is where clients can reach the node (cluster.advertise),
	// for <see-other-host/> from a draining node.
	Advertise string `json:"a,omitempty"`
}

type peer struct {
	hb   heartbeat
	last time.Time
}

type peers struct {
	mu     sync.Mutex
	m      map[string]*peer
	labels map[string]struct{}
}

func (p *peers) init() { p.m, p.labels = map[string]*peer{}, map[string]struct{}{} }

// reachable reports whether node, in incarnation boot, is heart-beating.
func (p *peers) reachable(node, boot string, hb time.Duration, started time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.m[node]
	if pr == nil {
		// Not heard yet: give it the time of a few heartbeats after our
		// own start before treating its sessions as unreachable.
		return time.Since(started) < 3*hb
	}
	return pr.hb.Boot == boot && !pr.hb.Bye && time.Since(pr.last) < 3*hb
}

func (n *Node) heartbeat() {
	n.sendHeartbeat(false)
}

func (n *Node) goodbye() {
	n.sendHeartbeat(true)
}

func (n *Node) sendHeartbeat(bye bool) {
	hb := heartbeat{Node: n.cfg.Node, Boot: n.boot, Started: n.started.Unix(), Version: n.cfg.Version, Bye: bye,
		Draining: n.draining.Load(), Advertise: n.cfg.Advertise}
	if n.router != nil {
		hb.Sessions = n.router.LocalCount()
	}
	b, _ := json.Marshal(hb)
	_ = n.nc.Publish(n.subject("hb"), b)
}

func (n *Node) onHeartbeat(m *nats.Msg) {
	var hb heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Node == "" || hb.Node == n.cfg.Node {
		return
	}
	n.peers.mu.Lock()
	pr := n.peers.m[hb.Node]
	if pr == nil {
		pr = &peer{}
		n.peers.m[hb.Node] = pr
		if !hb.Bye {
			n.log.Info("cluster: node joined", "peer", hb.Node)
		}
	} else if pr.hb.Boot != hb.Boot && !hb.Bye {
		n.log.Info("cluster: node restarted", "peer", hb.Node)
	}
	pr.hb, pr.last = hb, time.Now()
	n.peers.mu.Unlock()
}

// liveness heart-beats and reaps the entries of dead nodes. Heartbeats
// have a goroutine of their own: reaping waits for the bucket (up to 5 s a
// delete), and a heartbeat behind it would be late enough for the others
// to take this node for unreachable (three heartbeats) and send its
// sessions' messages to offline storage.
func (n *Node) liveness() {
	defer n.wg.Done()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.every(n.cfg.Heartbeat, n.heartbeat)
	}()
	n.every(n.cfg.Heartbeat, func() {
		n.reap()
		n.reapLeases()
		n.moves.expire()
		nodesGauge.Set(float64(len(n.Peers()) + 1))
		registryGauge.Set(float64(n.registry.size()))
	})
}

// every runs f each period until the node stops.
func (n *Node) every(period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// deadEntry reports whether e belongs to a node (or incarnation) that is
// gone for good.
func (n *Node) deadEntry(e *entry) bool {
	if e.Node == n.cfg.Node {
		return e.Boot != n.boot // our previous life (killed, restarted)
	}
	n.peers.mu.Lock()
	var pr peer
	p, known := n.peers.m[e.Node]
	if known {
		pr = *p // onHeartbeat updates it in place
	}
	n.peers.mu.Unlock()
	if !known {
		return time.Since(n.started) > n.cfg.DeadAfter
	}
	if pr.hb.Boot != e.Boot && !pr.hb.Bye && time.Since(pr.last) < 3*n.cfg.Heartbeat {
		return true // the node restarted: this session died with it
	}
	return pr.hb.Bye && time.Since(pr.last) > n.cfg.Heartbeat || time.Since(pr.last) > n.cfg.DeadAfter
}

// reap removes the entries of dead nodes; for each entry this node
// removes it announces the session's end.
func (n *Node) reap() {
	type cand struct {
		k   string
		r   *remote
		rev uint64
	}
	var cands []cand
	n.registry.mu.RLock()
	for k, r := range n.registry.byKey {
		st := r.state()
		if n.deadEntry(&st.e) {
			cands = append(cands, cand{k, r, st.rev})
		}
	}
	n.registry.mu.RUnlock()
	if len(cands) == 0 {
		return
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].rev < cands[j].rev })
	for _, c := range cands {
		if n.ctx.Err() != nil {
			return
		}
		rev, err := n.casDelete(c.k, c.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another survivor was first, or the session moved
		}
		if err != nil {
			registryErrors.Inc()
			n.log.Warn("cluster: cannot remove a dead node's session", "jid", c.r.full.String(), "err", err)
			return
		}
		e := c.r.state().e
		n.apply(c.k, nil, rev, false)
		n.unreserve(c.r.full.Bare().String(), c.r.full.Resourcepart(), e.Conn)
		sessionsReaped.Inc()
		n.log.Info("cluster: session of a dead node removed", "jid", c.r.full.String(), "peer", e.Node)
		// Modules see the end of the session as on its own node: im tells
		// the contacts it is unavailable, pep and push forget it.
		n.reg.FireUnbound(context.Background(), c.r)
	}
}

// PeerInfo describes a node heard from.
type PeerInfo struct {
	Node     string
	Sessions int
	Started  time.Time
	LastSeen time.Time
	Version  string
	Alive    bool
	Draining bool
	// Advertise is the node's client address (cluster.advertise), "" when
	// not configured.
	Advertise string
}

// Peers returns the other nodes heard from and not gone.
func (n *Node) Peers() []PeerInfo {
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	var out []PeerInfo
	for name, p := range n.peers.m {
		if p.hb.Bye || time.Since(p.last) > n.cfg.DeadAfter {
			continue
		}
		out = append(out, PeerInfo{Node: name, Sessions: p.hb.Sessions, Started: time.Unix(p.hb.Started, 0),
			LastSeen: p.last, Version: p.hb.Version, Alive: time.Since(p.last) < 3*n.cfg.Heartbeat,
			Draining: p.hb.Draining, Advertise: p.hb.Advertise})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
