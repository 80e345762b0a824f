package s2s

import (
	"context"

	"github.com/parley-xmpp/parley/module"
)

// maxPending bounds the stanzas one stream has routed whose writes
// (archive rows) are queued but not yet committed.
const maxPending = 256

// pending lets a stream's reader go on reading while the stanzas it
// routed wait for their archive commits (their deliveries wait for them,
// module.Deliver), so a busy peer fills group-commit batches instead of
// waiting for one commit per message; beyond maxPending it waits for the
// oldest. Only the stream's reader goroutine uses it.
type pending struct {
	holds []*module.Hold
}

// routed records the hold of a stanza just routed.
func (p *pending) routed(ctx context.Context, h *module.Hold) {
	for len(p.holds) > 0 && p.holds[0].Barrier().Passed() {
		p.holds[0] = nil
		p.holds = p.holds[1:]
	}
	if h.Empty() {
		return
	}
	p.holds = append(p.holds, h)
	if len(p.holds) >= maxPending {
		// A failed write was answered by the module that made it.
		_ = p.holds[0].Wait(ctx)
		p.holds[0] = nil
		p.holds = p.holds[1:]
	}
	if len(p.holds) == 0 {
		p.holds = nil // give the array back
	}
}
