package pep

import (
	"context"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// NSMDSServerAssist is the account feature of XEP-0490 §5 server-assisted
// displayed updates.
const NSMDSServerAssist = xep.NSMDSServerAssist

// outboundDisplayed implements XEP-0490 server assist: a <displayed/>
// element in a message from the user's client is published to the
// urn:xmpp:mds:displayed:0 node (item id: the message's 'to', verbatim)
// and stripped before the message goes on. pep runs before mam and
// carbons, so neither the archive nor other resources' copies carry it
// (§5.3).
func (m *Module) outboundDisplayed(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "message" || ev.Origin.Kind != module.FromClient || st.Type == "error" {
		return module.Continue
	}
	d := st.Child(NodeMDS, "displayed")
	if d == nil {
		return module.Continue
	}
	if st.To != "" {
		owner := ev.From.Bare().String()
		if err := m.PublishItem(ctx, owner, NodeMDS, st.To, d.Bytes()); err != nil {
			m.log.Warn("pep: server-assisted displayed update", "owner", owner, "err", err)
		}
	}
	t := st.Tree().Copy()
	t.RemoveChildren(NodeMDS, "displayed")
	ev.Stanza = wire.FromElement(t)
	return module.Continue
}
