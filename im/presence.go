package im

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// outboundPresence handles presence from a local client (RFC 6121 §4).
func (m *Module) outboundPresence(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	switch st.Type {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return m.outboundSubscription(ctx, ev)
	case "", "unavailable":
	case "probe", "error":
		// Probes are answered by the contact's Inbound hook; errors are
		// routed like any directed presence.
		return module.Continue
	default:
		m.replyError(ctx, ev, stanzaErr(wire.ErrBadRequest, "unknown presence type "+st.Type))
		return module.Handled
	}
	s := m.originSession(ev)
	if s == nil {
		return module.Continue
	}
	if st.To == "" {
		if st.Type == "" {
			m.broadcastAvailable(ctx, s, st.WithFromTo(s.JID().String(), ""))
		} else {
			m.broadcastUnavailable(ctx, s, st.WithFromTo(s.JID().String(), ""), true)
		}
		return module.Handled
	}
	// Directed presence (§4.6): remember who must hear about it when the
	// session goes offline, unless a subscription covers them anyway.
	if sameBare(ev.From, ev.To) {
		return module.Continue
	}
	target := ev.To.String()
	if st.Type == "" {
		if !m.subscribedFrom(ctx, ev.From.Bare(), ev.To) {
			m.setDirected(s, target, true)
		}
	} else {
		m.setDirected(s, target, false)
	}
	return module.Continue
}

// subscribedFrom reports whether target's bare JID has a subscription to
// owner's presence (from or both).
func (m *Module) subscribedFrom(ctx context.Context, owner, target jid.JID) bool {
	if target.Localpart() == "" && target.Resourcepart() != "" {
		return false
	}
	it, err := m.roster.RosterItem(ctx, owner.String(), target.Bare().String())
	return err == nil && hasFrom(it.Subscription)
}

// broadcastAvailable processes available presence without 'to' (§4.2,
// §4.4). p has 'from' set to the session's full JID and no 'to'.
func (m *Module) broadcastAvailable(ctx context.Context, s module.Session, p *wire.Stanza) {
	full := s.JID().String()
	owner := s.JID().Bare()
	initial := s.Presence() == nil
	oldPriority := s.Priority()
	s.SetPresence(p)
	s.SetFlags(module.FlagInitialPresenceSent, 0)

	items, _, err := m.roster.RosterItems(ctx, owner.String())
	if err != nil {
		m.log.Error("loading roster for presence broadcast", "user", owner.String(), "err", err)
	}
	bl := m.blockListOrEmpty(ctx, owner.String())
	var out []*wire.Stanza
	for _, it := range items {
		if hasFrom(it.Subscription) && !bl.matchesString(it.JID) {
			out = append(out, p.WithAttr("to", it.JID))
		}
	}
	if initial {
		// §4.2.2: learn the contacts' presence.
		for _, it := range items {
			if hasTo(it.Subscription) && !bl.matchesString(it.JID) {
				out = append(out, presence("probe", owner.String(), it.JID))
			}
		}
	}
	// The user's available resources, including this one, get the
	// presence; a newly available resource gets the others' presence.
	for _, o := range m.sessions.Resources(owner) {
		if o == s {
			_ = s.Send(p.WithAttr("to", full))
			continue
		}
		op := o.Presence()
		if op == nil {
			continue
		}
		_ = o.Send(p.WithAttr("to", o.JID().String()))
		if initial {
			_ = s.Send(op.WithFromTo(o.JID().String(), full))
		}
	}
	m.routeAll(ctx, out)
	if initial {
		m.deliverPendingIn(ctx, s, bl)
	}
	// XEP-0160 §3: offline messages go to the first resource that is
	// available with non-negative priority.
	if s.Priority() >= 0 && (initial || oldPriority < 0) {
		m.deliverOffline(ctx, s)
	}
}

// broadcastUnavailable processes unavailable presence without 'to' (§4.5)
// or the end of a session. u has 'from' set to the session's full JID.
// echo sends it to the session itself too (it is still connected).
func (m *Module) broadcastUnavailable(ctx context.Context, s module.Session, u *wire.Stanza, echo bool) {
	full := s.JID().String()
	owner := s.JID().Bare()
	wasAvailable := s.Presence() != nil
	s.SetPresence(nil)

	directed := m.takeDirected(s)
	if !wasAvailable && len(directed) == 0 {
		return
	}
	sent := map[string]bool{}
	var out []*wire.Stanza
	if wasAvailable {
		items, _, err := m.roster.RosterItems(ctx, owner.String())
		if err != nil {
			m.log.Error("loading roster for presence broadcast", "user", owner.String(), "err", err)
		}
		bl := m.blockListOrEmpty(ctx, owner.String())
		for _, it := range items {
			if hasFrom(it.Subscription) && !bl.matchesString(it.JID) {
				out = append(out, u.WithAttr("to", it.JID))
				sent[it.JID] = true
			}
		}
		for _, o := range m.sessions.Resources(owner) {
			if o != s && o.Presence() != nil {
				_ = o.Send(u.WithAttr("to", o.JID().String()))
			}
		}
		if echo {
			_ = s.Send(u.WithAttr("to", full))
		}
	}
	for _, t := range directed {
		if sent[t] {
			continue
		}
		if tj, err := jid.Parse(t); err == nil && sent[tj.Bare().String()] {
			continue
		}
		out = append(out, u.WithAttr("to", t))
	}
	m.routeAll(ctx, out)
}

// unbound runs when a session has ended (it is no longer bound): contacts
// and directed-presence recipients learn that it is offline.
func (m *Module) unbound(ctx context.Context, s module.Session) {
	m.broadcastUnavailable(ctx, s, presence("unavailable", s.JID().String(), ""), false)
}

// inboundProbe answers a presence probe to a local user (§4.3.2). Probes
// are never delivered to clients.
func (m *Module) inboundProbe(ctx context.Context, ev *module.Event) module.Verdict {
	if ev.From.Domainpart() == "" {
		return module.Handled
	}
	owner, prober := ev.To.Bare(), ev.From
	to := prober.String()
	if sameBare(owner, prober) {
		var out []*wire.Stanza
		for _, s := range m.availableResources(owner) {
			if p := s.Presence(); p != nil && !s.JID().Equal(prober) {
				out = append(out, p.WithFromTo(s.JID().String(), to))
			}
		}
		m.routeAll(ctx, out)
		return module.Handled
	}
	if !m.userExists(ctx, owner) {
		return module.Handled
	}
	it, err := m.roster.RosterItem(ctx, owner.String(), prober.Bare().String())
	if err != nil && !isNotFound(err) {
		m.log.Error("probe: roster lookup", "user", owner.String(), "err", err)
		return module.Handled
	}
	authorized := err == nil && hasFrom(it.Subscription)
	var out []*wire.Stanza
	for _, s := range m.availableResources(owner) {
		p := s.Presence()
		if p == nil {
			continue
		}
		if authorized || m.sentDirected(s, prober) {
			out = append(out, p.WithFromTo(s.JID().String(), to))
		}
	}
	if !authorized && len(out) == 0 && prober.Resourcepart() == "" {
		// The prober's server believes it is subscribed: tell it it is
		// not (§4.3.2). Probes from full JIDs come from clients and are
		// ignored instead, so a pending request is not cancelled.
		out = append(out, presence("unsubscribed", owner.String(), prober.Bare().String()))
	}
	m.routeAll(ctx, out)
	return module.Handled
}

// deliverPendingIn redelivers stored subscription requests (§3.1.3) to a
// session that sent initial presence.
func (m *Module) deliverPendingIn(ctx context.Context, s module.Session, bl blockSet) {
	owner := s.JID().Bare().String()
	ps, err := m.roster.PendingIn(ctx, owner)
	if err != nil {
		m.log.Error("loading pending subscriptions", "user", owner, "err", err)
		return
	}
	for _, p := range ps {
		if bl.matchesString(p.From) {
			continue
		}
		st, err := wire.Parse(p.Raw, wire.Limits{})
		if err != nil {
			m.log.Error("stored subscription request is not well-formed", "user", owner, "from", p.From, "err", err)
			continue
		}
		_ = s.Send(st)
	}
}
