package muc

import (
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// handleOccupantIQ handles IQs to room/nick (§7.? private IQ, XEP-0410
// self-ping) and answers to IQs the room forwarded.
func (r *room) handleOccupantIQ(ev *module.Event) {
	st := ev.Stanza
	nick := ev.To.Resourcepart()
	if st.Type == "result" || st.Type == "error" {
		if nick != "" {
			r.forwardAnswer(ev)
		}
		return
	}
	if nick == "" {
		return // IQ get/set to the room itself go through its IQ handlers
	}
	payload := st.Tree().FirstElement()
	isPing := payload != nil && payload.Name.Space == xep.NSPing && payload.Name.Local == "ping"
	if !r.exists {
		if isPing {
			// XEP-0410: whoever self-pings believes they are joined; the
			// room is gone (a temporary room whose node died), so they
			// are not: not-acceptable makes the client join again.
			r.replyError(st, wire.ErrNotAcceptable, "not joined: the room does not exist (any more)")
			return
		}
		r.replyError(st, wire.ErrItemNotFound, "no such room")
		return
	}
	o := r.occupantOf(ev.From)
	target := r.occupants[nick]
	if isPing && o != nil && o == target {
		// XEP-0410: the room answers a ping to the pinger's own nick while
		// it is joined, so the client knows it still is.
		r.m.send(wire.IQResult(st, nil))
		return
	}
	switch {
	case o == nil:
		// Also what a client that fell out of the room gets for its
		// self-ping (XEP-0410 §3.2): it must join again.
		r.replyError(st, wire.ErrNotAcceptable, "only occupants may send requests to occupants")
		return
	case target == nil:
		r.replyError(st, wire.ErrItemNotFound, "no occupant with this nick")
		return
	case len(r.iqs) >= maxPendingIQ:
		r.replyError(st, wire.ErrResourceConstraint, "too many requests in flight in this room")
		return
	}
	dest := target.speaker().full
	if payload != nil && payload.Name.Space == xep.NSVCard {
		// vCards belong to the account: ask its server (as Prosody does),
		// which answers for the bare JID.
		dest = target.bare
	}
	id := randomID(12)
	r.iqs[id] = pendingIQ{from: ev.From, id: st.ID, target: dest.String(), at: r.m.now()}
	r.m.send(st.WithAttr("id", id).WithAttr("from", r.key+"/"+o.nick).WithAttr("to", dest.String()))
}

// forwardAnswer passes an occupant's answer to a forwarded IQ back to the
// requester.
func (r *room) forwardAnswer(ev *module.Event) {
	st := ev.Stanza
	p, ok := r.iqs[st.ID]
	if !ok || (p.target != ev.From.String() && p.target != ev.From.Bare().String()) {
		return
	}
	delete(r.iqs, st.ID)
	from := r.key
	if o := r.occupantOf(ev.From); o != nil {
		from = r.key + "/" + o.nick
	} else if t, err := jid.Parse(p.target); err == nil {
		for _, o := range r.occupants {
			if o.bare.Equal(t.Bare()) {
				from = r.key + "/" + o.nick
			}
		}
	}
	r.m.send(st.WithAttr("id", p.id).WithAttr("from", from).WithAttr("to", p.from.String()))
}

// ping answers a ping to the room's bare JID.
func (r *room) ping(ev *module.Event) (*wire.Element, error) { return nil, nil }
