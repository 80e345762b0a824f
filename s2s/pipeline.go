package s2s

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

// pending lets a routing goroutine (dispatcher) go on while the stanzas
// it routed wait for their archive commits (their deliveries wait for
// them, module.Deliver), so a busy peer fills group-commit batches instead
// of waiting for one commit per message. It is bounded like the outbound
// queue of a domain pair (Config.QueueStanzas, QueueBytes, split among the
// shards): one stream carries all of a domain pair's traffic, so it must
// read ahead as far as the commit latency times the pair's rate (as many
// client streams do together for local traffic); beyond, it waits for the
// oldest. Only its goroutine uses it.
type pending struct {
	holds []pendingHold
	head  int
	bytes int
}

type pendingHold struct {
	h *module.Hold
	n int // bytes of the stanza
}

// routed records the hold of a stanza of n bytes just routed, and waits
// while more than maxN stanzas or maxBytes are pending.
func (p *pending) routed(ctx context.Context, h *module.Hold, n, maxN, maxBytes int) {
	for p.head < len(p.holds) && p.holds[p.head].h.Barrier().Passed() {
		p.pop()
	}
	if !h.Empty() {
		p.holds = append(p.holds, pendingHold{h: h, n: n})
		p.bytes += n
	}
	for p.head < len(p.holds) && (len(p.holds)-p.head > maxN || p.bytes > maxBytes) {
		// A failed write was answered by the module that made it.
		_ = p.holds[p.head].h.Wait(ctx)
		p.pop()
	}
}

func (p *pending) pop() {
	p.bytes -= p.holds[p.head].n
	p.holds[p.head] = pendingHold{}
	p.head++
	switch {
	case p.head == len(p.holds):
		p.head = 0
		if cap(p.holds) > 64 {
			p.holds = nil // give a large array back
		} else {
			p.holds = p.holds[:0]
		}
	case p.head >= 1024 && p.head*2 >= len(p.holds):
		k := copy(p.holds, p.holds[p.head:])
		clear(p.holds[k:])
		p.holds = p.holds[:k]
		p.head = 0
	}
}

// routeShards is how many goroutines route the stanzas read on one stream.
// One stream carries all of a domain pair's traffic: routed by its reader
// alone (every recipient's delivery, archive queueing, carbons) it was the
// bottleneck of federation, always runnable while the peer's writer waited
// on a full TCP window, where local traffic is routed by as many
// goroutines as there are senders.
const routeShards = 8

// dispatcher hands the stanzas a stream's reader accepted to routing
// goroutines, sharded by conversation (bare from and to): the stanzas of
// one conversation are routed in the order they were read, those of
// different conversations in parallel. Each shard starts when it gets its
// first stanza and ends with the stream (close). The bytes handed over and
// not yet routed are bounded by Config.QueueBytes (the reader waits); the
// stanzas waiting for their archive commits by QueueStanzas and
// QueueBytes, split among the shards (pending).
type dispatcher struct {
	svc    *Service
	ctx    context.Context
	shards [routeShards]chan *wire.Stanza
	wg     sync.WaitGroup

	mu     sync.Mutex
	room   *sync.Cond
	bytes  int // handed over, not yet routed
	closed bool
}

// newDispatcher routes with the service's context, not the reader's: the
// stanzas handed over were read in full and are routed even when the
// reader's context is canceled before they are (serveOwn cancels it once
// its writer gives up, as on a failed write); shutdown still cancels.
func newDispatcher(s *Service) *dispatcher {
	d := &dispatcher{svc: s, ctx: s.ctx}
	d.room = sync.NewCond(&d.mu)
	return d
}

var shardSeed = maphash.MakeSeed()

// shardOf keeps a conversation on one shard: the bare JIDs of both ends
// as routing reads them (router.ParseJID, cached: PRECIS case and width
// mapping, IDNA), since a peer may spell a JID differently from one stanza
// to the next ("ＵＳＥＲ@xn--bcher-kva.example" is user@bücher.example), and
// two spellings on two shards would be routed in parallel, out of order.
func shardOf(st *wire.Stanza) int {
	var h maphash.Hash
	h.SetSeed(shardSeed)
	writeBare(&h, st.From)
	h.WriteByte(0)
	writeBare(&h, st.To)
	return int(h.Sum64() % routeShards)
}

func writeBare(h *maphash.Hash, s string) {
	j, err := router.ParseJID(s)
	if err != nil {
		// acceptStanza let through only addresses that parse.
		h.WriteString(strings.ToLower(bare(s)))
		return
	}
	h.WriteString(j.Localpart())
	h.WriteByte('@')
	h.WriteString(j.Domainpart())
}

func bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// route hands st to its shard; it waits while the bytes handed over and
// not yet routed exceed QueueBytes, or the shard's queue is full.
func (d *dispatcher) route(st *wire.Stanza) {
	n := queuedSize(st)
	d.mu.Lock()
	for d.bytes > 0 && d.bytes+n > d.svc.cfg.QueueBytes {
		d.room.Wait()
	}
	d.bytes += n
	i := shardOf(st)
	ch := d.shards[i]
	if ch == nil {
		ch = make(chan *wire.Stanza, 256)
		d.shards[i] = ch
		d.wg.Add(1)
		go d.run(ch)
	}
	d.mu.Unlock()
	ch <- st
}

// run routes one shard's stanzas, reading on while their archive rows
// commit (module.Hold) up to its share of the read-ahead bounds.
func (d *dispatcher) run(ch <-chan *wire.Stanza) {
	defer d.wg.Done()
	var p pending
	maxN := max(d.svc.cfg.QueueStanzas/routeShards, 1)
	maxBytes := max(d.svc.cfg.QueueBytes/routeShards, 1)
	for st := range ch {
		h := module.NewHold()
		d.svc.router.Route(d.ctx, st, module.Origin{Kind: module.FromServer, Hold: h})
		n := queuedSize(st)
		d.mu.Lock()
		d.bytes -= n
		d.room.Broadcast()
		d.mu.Unlock()
		p.routed(d.ctx, h, n, maxN, maxBytes)
	}
}

// close routes what was handed over and waits for it: call it when the
// stream's reader has ended.
func (d *dispatcher) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for _, ch := range d.shards {
		if ch != nil {
			close(ch)
		}
	}
	d.mu.Unlock()
	d.wg.Wait()
}
