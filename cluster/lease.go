package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// Leases place entities that must run on one node at a time (chat rooms)
// — module.Placement. A lease is a key of the "<prefix>_leases" bucket
// naming the node and incarnation that runs the entity. Like the session
// registry, every node keeps a copy fed by a watch, so that finding the
// owner of a room is a map read.
//
//   - Acquire creates the key (compare-and-set on "absent"), or takes over
//     the revision it saw when that lease's holder is dead (the same rule
//     as for reaping sessions: silent for dead_after, said goodbye, or
//     restarted). A lost race re-reads and decides again.
//   - A lease is renewed by its holder's heartbeats, one message for all of
//     a node's leases: no write per lease and period, and a holder that
//     stops heart-beating loses them all at once. Each node checks the
//     leases it holds against the revisions the watch delivers: a change
//     by anyone else means another node took it (it declared this one dead
//     after a network cut), and the module drops the entity (OnLost).
//   - Release deletes the key only at the revision written by this node
//     (compare-and-delete), so a release that races with a new Acquire on
//     this node, or with a takeover, changes nothing that is not its own.
type leaseValue struct {
	Node string `json:"n"`
	Boot string `json:"b"`
}

type leaseState struct {
	v   leaseValue
	rev uint64
}

type leases struct {
	mu   sync.Mutex
	all  map[string]leaseState // key → newest revision seen
	held map[string]uint64     // key → revision this node wrote
}

func (l *leases) init() { l.all, l.held = map[string]leaseState{}, map[string]uint64{} }

func leaseKey(entity string) string {
	return "l." + base64.RawURLEncoding.EncodeToString([]byte(entity))
}

func leaseEntity(k string) string {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(k, "l."))
	if err != nil {
		return ""
	}
	return string(b)
}

func (n *Node) leaseBucket() string { return n.cfg.Prefix + "_leases" }

// Placement is this node's module.Placement.
func (n *Node) Placement() module.Placement { return placement{n} }

type placement struct{ n *Node }

var _ module.Placement = placement{}

func (p placement) Acquire(ctx context.Context, entity string) (string, error) {
	return p.n.acquire(ctx, entity)
}
func (p placement) Holds(entity string) bool { return p.n.holds(entity) }
func (p placement) Release(entity string)    { p.n.release(entity) }
func (p placement) Forward(ctx context.Context, node string, ev *module.Event) error {
	return p.n.forward(ctx, node, ev)
}

// errUnplaced: the entity's holder is unreachable but not yet dead, or the
// lease bucket cannot be written; the module answers "try again".
var errUnplaced = errors.New("cluster: the node running this entity is not reachable")

// acquire implements Placement.Acquire.
func (n *Node) acquire(ctx context.Context, entity string) (string, error) {
	if n.draining.Load() {
		// A node that leaves takes nothing new; it still serves what it
		// holds until it releases it.
		if n.holds(entity) {
			return "", nil
		}
	}
	k := leaseKey(entity)
	val, _ := json.Marshal(leaseValue{Node: n.cfg.Node, Boot: n.boot})
	for range 4 {
		n.leases.mu.Lock()
		_, held := n.leases.held[k]
		cur, exists := n.leases.all[k]
		n.leases.mu.Unlock()
		if held {
			return "", nil
		}
		if exists && (cur.v.Node != n.cfg.Node || cur.v.Boot != n.boot) {
			e := entry{Node: cur.v.Node, Boot: cur.v.Boot}
			// A draining holder still runs it until it releases it.
			switch {
			case n.alive(&e):
				return cur.v.Node, nil
			case !n.deadEntry(&e):
				return "", errUnplaced
			}
		}
		if n.draining.Load() {
			// Send it to a node that stays.
			if p := n.stayingPeer(entity); p != "" {
				return p, nil
			}
		}
		// Free, released by this node, or held by a dead node: take it.
		rev, err := casPut(ctx, n.lkv, k, val, cur.rev) // cur.rev is 0 when it does not exist
		if err == nil {
			n.leases.mu.Lock()
			n.leases.held[k] = rev
			if rev > n.leases.all[k].rev {
				n.leases.all[k] = leaseState{v: leaseValue{Node: n.cfg.Node, Boot: n.boot}, rev: rev}
			}
			n.leases.mu.Unlock()
			leaseOps.WithLabelValues("acquire").Inc()
			if exists && cur.v.Node != n.cfg.Node {
				leaseOps.WithLabelValues("takeover").Inc()
				n.log.Info("cluster: took over an entity of a dead node", "entity", entity, "peer", cur.v.Node)
			}
			return "", nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			registryErrors.Inc()
			return "", fmt.Errorf("%w: %v", errUnplaced, err)
		}
		// Someone wrote it meanwhile: read it and decide again.
		kve, gerr := n.lkv.Get(ctx, k)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted):
			n.applyLease(k, nil, 0)
			n.leases.mu.Lock()
			delete(n.leases.all, k)
			n.leases.mu.Unlock()
		case gerr != nil:
			return "", fmt.Errorf("%w: %v", errUnplaced, gerr)
		default:
			n.onLease(kve)
		}
	}
	return "", errUnplaced
}

// holds implements Placement.Holds.
func (n *Node) holds(entity string) bool {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	_, ok := n.leases.held[leaseKey(entity)]
	return ok
}

// release implements Placement.Release: from now on Acquire here decides
// anew; the key is deleted in the background at the revision this node
// wrote.
func (n *Node) release(entity string) {
	k := leaseKey(entity)
	n.leases.mu.Lock()
	rev, ok := n.leases.held[k]
	delete(n.leases.held, k)
	n.leases.mu.Unlock()
	if !ok {
		return
	}
	select {
	case n.releases <- leaseRelease{k, rev}:
	default:
		// Left in the bucket: other nodes still see this node as the
		// holder and forward here, where Acquire takes it again.
		n.log.Warn("cluster: too many lease releases queued; one left in place", "entity", entity)
	}
}

type leaseRelease struct {
	k   string
	rev uint64
}

// releaser deletes released leases, in the background: Release is called
// while the module holds its own lock. It finishes the queue when the
// node stops (NATS is closed after it).
func (n *Node) releaser() {
	defer n.wg.Done()
	del := func(r leaseRelease) {
		if _, err := n.casDeleteIn(n.leaseBucket(), r.k, r.rev); err == nil {
			leaseOps.WithLabelValues("release").Inc()
		} else if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			n.log.Debug("cluster: cannot delete a released lease", "entity", leaseEntity(r.k), "err", err)
		}
	}
	for {
		select {
		case r := <-n.releases:
			del(r)
		case <-n.ctx.Done():
			for {
				select {
				case r := <-n.releases:
					del(r)
				default:
					return
				}
			}
		}
	}
}

// forward implements Placement.Forward.
func (n *Node) forward(ctx context.Context, node string, ev *module.Event) error {
	return n.publish(node, kindHost, "", "", ev.Stanza.Raw, map[string]string{
		hdrOrigin: strconv.Itoa(int(ev.Origin.Kind)), hdrHops: strconv.Itoa(ev.Forwards + 1)})
}

// onLease applies a watched (or read) lease entry and notices leases this
// node lost.
func (n *Node) onLease(kve jetstream.KeyValueEntry) {
	if kve.Operation() != jetstream.KeyValuePut {
		n.applyLease(kve.Key(), nil, kve.Revision())
		return
	}
	var v leaseValue
	if err := json.Unmarshal(kve.Value(), &v); err != nil {
		n.applyLease(kve.Key(), nil, kve.Revision())
		return
	}
	n.applyLease(kve.Key(), &v, kve.Revision())
}

func (n *Node) applyLease(k string, v *leaseValue, rev uint64) {
	n.leases.mu.Lock()
	if cur, ok := n.leases.all[k]; ok && rev != 0 && rev <= cur.rev {
		n.leases.mu.Unlock()
		return
	}
	if v == nil {
		delete(n.leases.all, k)
	} else {
		n.leases.all[k] = leaseState{v: *v, rev: rev}
	}
	mine, held := n.leases.held[k]
	lost := held && rev > mine && (v == nil || v.Node != n.cfg.Node || v.Boot != n.boot)
	if lost {
		delete(n.leases.held, k)
	}
	n.leases.mu.Unlock()
	if lost {
		leaseOps.WithLabelValues("lost").Inc()
		e := leaseEntity(k)
		n.log.Warn("cluster: another node took over an entity this node ran; dropping it", "entity", e)
		go n.reg.FireLost(e)
	}
}

// reapLeases deletes the leases of dead nodes (a lease is taken over when
// its entity is next addressed anyway; this keeps the bucket clean).
func (n *Node) reapLeases() {
	type cand struct {
		k   string
		rev uint64
	}
	var cands []cand
	n.leases.mu.Lock()
	for k, l := range n.leases.all {
		e := entry{Node: l.v.Node, Boot: l.v.Boot}
		if n.deadEntry(&e) {
			cands = append(cands, cand{k, l.rev})
		}
	}
	n.leases.mu.Unlock()
	for _, c := range cands {
		if n.ctx.Err() != nil {
			return
		}
		rev, err := n.casDeleteIn(n.leaseBucket(), c.k, c.rev)
		if err == nil {
			n.applyLease(c.k, nil, rev)
			leaseOps.WithLabelValues("reaped").Inc()
		}
	}
}

// HeldEntities lists the entities this node holds (status, tests).
func (n *Node) HeldEntities() []string {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	out := make([]string, 0, len(n.leases.held))
	for k := range n.leases.held {
		out = append(out, leaseEntity(k))
	}
	return out
}

// LeaseHolder returns the node holding entity as this node sees it, ""
// when none.
func (n *Node) LeaseHolder(entity string) string {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	return n.leases.all[leaseKey(entity)].v.Node
}

// Stanzas forwarded to the node running their entity are handled in
// order per sender, off the bus goroutine (a room's answer to an IQ may
// wait for storage).
const hostShards = 16

type hostWork struct {
	st     *wire.Stanza
	origin module.OriginKind
	hops   int
}

func (n *Node) startHostWorkers() {
	n.wg.Add(1)
	go n.releaser()
	n.hostq = make([]chan hostWork, hostShards)
	for i := range n.hostq {
		ch := make(chan hostWork, 1024)
		n.hostq[i] = ch
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for {
				select {
				case <-n.ctx.Done():
					return
				case w := <-ch:
					n.router.DispatchHost(n.ctx, w.st, module.Origin{Kind: w.origin}, w.hops)
				}
			}
		}()
	}
}

// onHost queues a forwarded stanza for its entity's service host.
func (n *Node) onHost(m *nats.Msg, st *wire.Stanza) {
	if st == nil {
		return
	}
	origin, _ := strconv.Atoi(m.Header.Get(hdrOrigin))
	hops, _ := strconv.Atoi(m.Header.Get(hdrHops))
	switch module.OriginKind(origin) {
	case module.FromClient, module.FromServer, module.FromLocal:
	default:
		busDropped.WithLabelValues("malformed").Inc()
		return
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(st.From))
	w := hostWork{st: st, origin: module.OriginKind(origin), hops: hops}
	select {
	case n.hostq[h.Sum32()%hostShards] <- w:
	case <-n.ctx.Done():
	}
}

// stayingPeer picks a live node that is not draining for entity (spread by
// hash), "" when there is none.
func (n *Node) stayingPeer(entity string) string {
	var nodes []string
	for _, p := range n.Peers() {
		if p.Alive && !p.Draining {
			nodes = append(nodes, p.Node)
		}
	}
	if len(nodes) == 0 {
		return ""
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(entity))
	return nodes[h.Sum32()%uint32(len(nodes))]
}
