package s2s

import (
	"context"

	"github.com/parley-xmpp/parley/module"
)

// pending lets a stream's reader go on reading while the stanzas it
// routed wait for their archive commits (their deliveries wait for them,
// module.Deliver), so a busy peer fills group-commit batches instead of
// waiting for one commit per message. It is bounded like the outbound
// queue of a domain pair (Config.QueueStanzas, QueueBytes): one stream
// carries all of a domain pair's traffic, so it must read ahead as far as
// the commit latency times the pair's rate (as many client streams do
// together for local traffic); beyond, it waits for the oldest. Only the
// stream's reader goroutine uses it.
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
