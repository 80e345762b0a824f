package pep

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Bounds on the presence and capabilities state kept in memory.
const (
	maxTracked    = 200000 // available (owner, contact resource) pairs
	maxCapsCached = 20000  // distinct capabilities
)

// outboundPresence learns the capabilities of the owner's own resources
// from their broadcast presence (it must run before im, which handles
// broadcasts and stops the chain).
func (m *Module) outboundPresence(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "presence" || st.To != "" || ev.From.Resourcepart() == "" {
		return module.Continue
	}
	switch st.Type {
	case "":
		m.observe(ctx, ev.From.Bare().String(), ev.From.String(), st, true)
	case "unavailable":
		m.unavailable(ev.From.Bare().String(), ev.From.String())
	}
	return module.Continue
}

// inboundPresence learns which resources of other entities are available
// to a local user, with their capabilities (XEP-0163 §4.3: presence
// determines where notifications go).
func (m *Module) inboundPresence(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "presence" || ev.To.Localpart() == "" || ev.From.Resourcepart() == "" ||
		ev.From.Bare().Equal(ev.To.Bare()) {
		return module.Continue
	}
	owner := ev.To.Bare().String()
	switch st.Type {
	case "":
		m.observe(ctx, owner, ev.From.String(), st, true)
	case "unavailable", "error":
		m.unavailable(owner, ev.From.String())
	}
	return module.Continue
}

// capsKey identifies the capabilities a presence advertises, "" for none.
// Hashed capabilities (XEP-0115 v1.5) are shared by every entity with the
// same hash and ver once verified; legacy ones are per JID.
func capsKey(p *wire.Stanza, full string) (string, *wire.Element) {
	c := p.Child(xep.NSCaps, "c")
	if c == nil || c.AttrValue("ver") == "" {
		return "", nil
	}
	if capsHash(c.AttrValue("hash")) != nil {
		return c.AttrValue("hash") + " " + c.AttrValue("ver"), c
	}
	return "legacy " + full + " " + c.AttrValue("node") + "#" + c.AttrValue("ver"), c
}

func jidKey(full, key string) string { return "jid " + full + " " + key }

// observe records available presence p of full (a resource of the owner
// or of a contact) as seen by owner, resolves its capabilities if they are
// unknown, and — when sendLast is set and the resource is newly available
// or newly interested — sends it the last items of the nodes it wants.
func (m *Module) observe(ctx context.Context, owner, full string, p *wire.Stanza, sendLast bool) {
	m.observeAs(ctx, owner, full, p, sendLast, false)
}

// relayedPresence learns, on a node of a cluster, the presence another node
// routed to a local resource of the owner: notifications the owner
// publishes from this node then reach that contact. The routing node sent
// the last items already, so nothing is sent here.
func (m *Module) relayedPresence(ctx context.Context, s module.Session, st *wire.Stanza) {
	if st.Name != "presence" {
		return
	}
	from, err := jid.Parse(st.From)
	if err != nil || from.Resourcepart() == "" {
		return
	}
	owner := s.JID().Bare()
	if from.Bare().Equal(owner) && from.Equal(s.JID()) {
		return
	}
	switch st.Type {
	case "":
		m.observeAs(ctx, owner.String(), from.String(), st, false, true)
	case "unavailable", "error":
		m.unavailable(owner.String(), from.String())
	}
}

func (m *Module) observeAs(ctx context.Context, owner, full string, p *wire.Stanza, sendLast, quiet bool) {
	key, c := capsKey(p, full)
	m.mu.Lock()
	prev, had := m.avail[owner].get(full)
	if !had {
		if m.nAvail >= maxTracked {
			m.mu.Unlock()
			return
		}
		m.nAvail++
	}
	if had && prev == jidKey(full, key) {
		key = prev // capabilities resolved for this JID only
	}
	m.avail[owner] = m.avail[owner].set(full, key)
	var prevInterests map[string]bool
	if had {
		prevInterests = m.caps[prev]
	}
	interests, known := m.caps[key]
	start := false
	if key != "" && !known {
		_, inflight := m.fetching[key]
		m.fetching[key] = append(m.fetching[key], waiter{owner, full, quiet})
		start = !inflight
	}
	if start {
		m.wg.Add(1)
	}
	m.mu.Unlock()

	if start {
		go m.resolveCaps(owner, full, key, c)
	}
	if !known || !sendLast || (had && prev == key) {
		return
	}
	nodes := interests
	if had {
		// Caps changed: only nodes it was not interested in before.
		nodes = map[string]bool{}
		for n := range interests {
			if !prevInterests[n] {
				nodes[n] = true
			}
		}
	}
	m.sendLast(ctx, owner, full, nodes)
}

// unavailable forgets a resource.
func (m *Module) unavailable(owner, full string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key, ok := m.avail[owner].get(full)
	if !ok {
		return
	}
	m.nAvail--
	if rest := m.avail[owner].del(full); len(rest) > 0 {
		m.avail[owner] = rest
	} else {
		delete(m.avail, owner)
	}
	if strings.HasPrefix(key, jidKey(full, "")) {
		delete(m.caps, key)
	}
}

// resolveCaps asks full for the disco#info behind its capabilities, checks
// the verification string and sends last items to the resources that were
// waiting for the answer.
func (m *Module) resolveCaps(owner, full, key string, c *wire.Element) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.DiscoTimeout)
	defer cancel()
	iq := wire.NewElement(wire.NSClient, "iq", "type", "get", "id", newID(), "from", owner, "to", full).
		Add(wire.NewElement(xep.NSDiscoInfo, "query", "node", c.AttrValue("node")+"#"+c.AttrValue("ver")))
	var (
		interests map[string]bool
		verified  bool
	)
	res, err := m.sender.Request(ctx, wire.FromElement(iq))
	var notes []deferredNote
	defer func() { m.sendDeferred(notes) }()
	if err == nil && res.Type == "result" {
		if q := res.Child(xep.NSDiscoInfo, "query"); q != nil {
			interests = notifyInterests(q)
			verified = verifyCaps(c.AttrValue("hash"), c.AttrValue("ver"), q)
		}
	} else if err != nil && ctx.Err() == nil {
		m.log.Debug("pep: caps query failed", "to", full, "err", err)
	}

	m.mu.Lock()
	waiters := m.fetching[key]
	delete(m.fetching, key)
	pending := m.deferred[key]
	delete(m.deferred, key)
	for _, n := range pending {
		m.deferredBytes -= len(n.st.Raw)
	}
	if len(m.caps) >= maxCapsCached {
		clear(m.caps)
	}
	var ready []waiter
	switch {
	case interests == nil:
	case verified:
		m.caps[key] = interests
		for _, w := range waiters {
			if k, _ := m.avail[w.owner].get(w.full); k == key && !w.quiet {
				ready = append(ready, w)
			}
		}
	default:
		// Unverifiable (legacy or wrong hash): trust it for the JID that
		// answered only. Others waiting on the same key ask again with
		// their next presence.
		jk := jidKey(full, key)
		m.caps[jk] = interests
		if k, ok := m.avail[owner].get(full); ok && k == key {
			m.avail[owner] = m.avail[owner].set(full, jk)
			if !slices.ContainsFunc(waiters, func(w waiter) bool { return w.owner == owner && w.full == full && w.quiet }) {
				ready = append(ready, waiter{owner: owner, full: full})
			}
		}
	}
	// Notifications published while the answer was awaited go to the
	// resources the answer now covers, unless the last item sent to
	// them on presence (sendLast) already carries the node's news.
	for _, n := range pending {
		k, _ := m.avail[n.owner].get(n.full)
		if !m.caps[k][n.node] || k != key && k != jidKey(n.full, key) {
			continue
		}
		if n.c.get(fSendLast) == "on_sub_and_presence" && slices.ContainsFunc(ready, func(w waiter) bool { return w.owner == n.owner && w.full == n.full }) {
			continue
		}
		notes = append(notes, n)
	}
	m.mu.Unlock()
	for _, w := range ready {
		m.sendLast(m.ctx, w.owner, w.full, interests)
	}
}

// sendDeferred sends notifications held back while capabilities were
// resolved (see Module.deferred), checking access as notify does.
func (m *Module) sendDeferred(notes []deferredNote) {
	for _, n := range notes {
		oj, err := jid.Parse(n.owner)
		if err != nil {
			continue
		}
		to, err := jid.Parse(n.full)
		if err != nil || !m.newAccessCache(oj).allowed(m.ctx, to, n.c) || m.blocked(m.ctx, n.owner)(to) {
			continue
		}
		m.sender.Route(m.ctx, n.st.WithAttr("to", n.full))
	}
}

// interested returns the nodes of interest of an available resource.
func (m *Module) interestsOf(owner, full string) (map[string]bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key, ok := m.avail[owner].get(full)
	if !ok {
		return nil, false
	}
	return m.caps[key], true
}

// sendLast sends full the last item of each of owner's nodes in nodes that
// it may access (send_last_published_item on presence, XEP-0163 §4.3.2).
func (m *Module) sendLast(ctx context.Context, owner, full string, nodes map[string]bool) {
	if len(nodes) == 0 {
		return
	}
	oj, err := jid.Parse(owner)
	if err != nil {
		return
	}
	to, err := jid.Parse(full)
	if err != nil {
		return
	}
	if m.blocked(ctx, owner)(to) {
		return
	}
	all, err := m.store.PEPNodes(ctx, owner)
	if err != nil {
		m.log.Error("pep: loading nodes", "owner", owner, "err", err)
		return
	}
	ac := m.newAccessCache(oj)
	for _, n := range all {
		if !nodes[n.Name] {
			continue
		}
		c := m.withDefaults(n.Name, n.Config)
		if c.get(fSendLast) != "on_sub_and_presence" || !c.bool(fDeliverNotif) || !ac.allowed(ctx, to, c) {
			continue
		}
		its, err := m.store.PEPItems(ctx, owner, n.Name, nil, 1)
		if err != nil || len(its) == 0 {
			continue
		}
		it := its[0]
		payload := it.Payload
		if !c.bool(fDeliverPay) {
			payload = nil
		}
		st := eventMessage(owner, itemsEvent(n.Name, itemXML(it.ID, payload)), it.Stamp)
		if st != nil {
			m.sender.Route(ctx, st.WithAttr("to", full))
		}
	}
}

// notify sends an event to every available resource that is interested in
// the node and allowed to see it: the owner's own resources and contacts
// whose presence the owner receives (XEP-0163 §4.3).
func (m *Module) notify(ctx context.Context, owner, node string, c nodeConfig, inner []byte) {
	st := eventMessage(owner, inner, time.Time{})
	if st == nil {
		return
	}
	oj, err := jid.Parse(owner)
	if err != nil {
		return
	}
	// Own resources: also those whose presence this module did not see
	// (when it runs after im in the outbound chain).
	for _, s := range m.sessions.Resources(oj) {
		if p := s.Presence(); p != nil {
			if _, ok := m.interestsOf(owner, s.JID().String()); !ok {
				m.observe(ctx, owner, s.JID().String(), p, false)
			}
		}
	}
	m.mu.Lock()
	targets := map[string]map[string]bool{}
	for _, r := range m.avail[owner] {
		full, key := r.full, r.key
		if m.caps[key][node] {
			targets[full] = m.caps[key]
			continue
		}
		if _, known := m.caps[key]; !known && key != "" && len(m.deferred[key]) < maxDeferred &&
			m.deferredBytes+len(st.Raw) <= maxDeferredBytes {
			if _, inflight := m.fetching[key]; inflight {
				m.deferred[key] = append(m.deferred[key], deferredNote{owner, full, node, c, st})
				m.deferredBytes += len(st.Raw)
			}
		}
	}
	m.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	ac := m.newAccessCache(oj)
	blocked := m.blocked(ctx, owner)
	for _, full := range sortedKeys(targets) {
		to, err := jid.Parse(full)
		if err != nil || !ac.allowed(ctx, to, c) || blocked(to) {
			continue
		}
		m.sender.Route(ctx, st.WithAttr("to", full))
	}
}

func sortedKeys(mp map[string]map[string]bool) []string { return slices.Sorted(maps.Keys(mp)) }

// blocked returns a predicate for JIDs the owner blocked (XEP-0191):
// notifications must not reach them (XEP-0163 §4.3.1).
func (m *Module) blocked(ctx context.Context, owner string) func(jid.JID) bool {
	if m.blocks == nil {
		return func(jid.JID) bool { return false }
	}
	list, err := m.blocks.BlockList(ctx, owner)
	if err != nil {
		m.log.Error("pep: loading block list", "owner", owner, "err", err)
		return func(jid.JID) bool { return true }
	}
	set := map[string]bool{}
	for _, b := range list {
		set[b] = true
	}
	return func(j jid.JID) bool {
		if j.Bare().String() == owner {
			return false
		}
		return set[j.String()] || set[j.Bare().String()] || set[j.Domainpart()] ||
			(j.Resourcepart() != "" && set[j.Domainpart()+"/"+j.Resourcepart()])
	}
}

// itemXML renders <item id=…>payload</item> in the event namespace.
func itemXML(id string, payload []byte) []byte {
	b := []byte("<item id='" + wire.EscapeAttr(id) + "'")
	if len(payload) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = append(b, payload...)
	return append(b, "</item>"...)
}

func itemsEvent(node string, inner []byte) []byte {
	b := []byte("<items node='" + wire.EscapeAttr(node) + "'>")
	b = append(b, inner...)
	return append(b, "</items>"...)
}

// eventMessage builds the headline notification from the owner's bare JID
// (XEP-0163 §4.3.1); stamp, when set, adds a XEP-0203 delay (for items
// sent on presence). Payload bytes are embedded as stored.
func eventMessage(owner string, inner []byte, stamp time.Time) *wire.Stanza {
	b := []byte("<message from='" + wire.EscapeAttr(owner) + "' type='headline' id='" + newID() + "'><event xmlns='" + nsEvent + "'>")
	b = append(b, inner...)
	b = append(b, "</event>"...)
	if !stamp.IsZero() {
		b = append(b, "<delay xmlns='"+xep.NSDelay+"' from='"+wire.EscapeAttr(owner)+"' stamp='"+stamp.UTC().Format("2006-01-02T15:04:05.000000Z")+"'/>"...)
	}
	b = append(b, "</message>"...)
	st, err := wire.Parse(b, wire.Limits{MaxStanzaBytes: len(b) + 1})
	if err != nil {
		return nil
	}
	return st
}
