package im

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// blockSet is a user's block list: normalized JID strings.
type blockSet map[string]bool

// matches applies XEP-0191 §6 (XEP-0016) JID matching: the full JID, the
// bare JID, and the domain (which also covers domain/resource entries
// through the full JID).
func (b blockSet) matches(j jid.JID) bool {
	if len(b) == 0 {
		return false
	}
	return b[j.String()] || b[j.Bare().String()] || b[j.Domainpart()]
}

// matchesString is matches for a JID string (roster items are stored
// normalized).
func (b blockSet) matchesString(s string) bool {
	if len(b) == 0 {
		return false
	}
	if b[s] {
		return true
	}
	j, err := jid.Parse(s)
	return err == nil && b.matches(j)
}

// blockList returns owner's block list from the cache, loading it on first
// use.
func (m *Module) blockList(ctx context.Context, owner string) (blockSet, error) {
	if m.blocks == nil {
		return nil, nil
	}
	m.blockMu.Lock()
	b, ok := m.blockCache[owner]
	gen := m.blockGen
	m.blockMu.Unlock()
	if ok {
		return b, nil
	}
	list, err := m.blocks.BlockList(ctx, owner)
	if err != nil {
		return nil, err
	}
	// Most users block nobody: their cached list is nil (read-only, as
	// every cached list), not an empty map of their own.
	if len(list) > 0 {
		b = make(blockSet, len(list))
		for _, j := range list {
			b[j] = true
		}
	}
	m.blockMu.Lock()
	// A change since the load began invalidated what was read.
	if m.blockGen == gen {
		if len(m.blockCache) >= maxBlockCache {
			for k := range m.blockCache {
				delete(m.blockCache, k)
				break
			}
		}
		m.blockCache[owner] = b
	}
	m.blockMu.Unlock()
	return b, nil
}

// blockListOrEmpty is blockList that logs errors and fails open.
func (m *Module) blockListOrEmpty(ctx context.Context, owner string) blockSet {
	b, err := m.blockList(ctx, owner)
	if err != nil {
		m.log.Error("loading block list", "user", owner, "err", err)
	}
	return b
}

func (m *Module) invalidateBlocks(owner string) {
	m.blockMu.Lock()
	delete(m.blockCache, owner)
	m.blockGen++
	m.blockMu.Unlock()
}

// outboundBlocked stops a local user's stanzas to a JID the user blocked
// (XEP-0191 §3.3).
func (m *Module) outboundBlocked(ctx context.Context, ev *module.Event) module.Verdict {
	if m.blocks == nil || ev.To.Domainpart() == "" || sameBare(ev.From, ev.To) {
		return module.Continue
	}
	if ev.To.Localpart() == "" && ev.To.Resourcepart() == "" && ev.To.Domainpart() == ev.From.Domainpart() {
		return module.Continue // the user's own server
	}
	if !m.blockListOrEmpty(ctx, ev.From.Bare().String()).matches(ev.To) {
		return module.Continue
	}
	if ev.Stanza.Name == "presence" {
		return module.Drop
	}
	m.replyError(ctx, ev, &module.StanzaError{Condition: wire.ErrNotAcceptable, App: wire.NewElement(xep.NSBlockingErr, "blocked")})
	return module.Handled
}

// inboundBlocked stops stanzas from a blocked JID to a local user
// (XEP-0191 §3.3): presence is dropped silently, messages and IQ requests
// are answered with service-unavailable as for an unavailable user.
func (m *Module) inboundBlocked(ctx context.Context, ev *module.Event) module.Verdict {
	if m.blocks == nil || ev.From.Domainpart() == "" || sameBare(ev.From, ev.To) {
		return module.Continue
	}
	if ev.From.Localpart() == "" && ev.From.Resourcepart() == "" && ev.From.Domainpart() == ev.To.Domainpart() {
		return module.Continue // the user's own server
	}
	if !m.blockListOrEmpty(ctx, ev.To.Bare().String()).matches(ev.From) {
		return module.Continue
	}
	st := ev.Stanza
	switch st.Name {
	case "message":
		if st.Type != "error" && st.Type != "groupchat" && st.Type != "headline" {
			m.route(ctx, wire.ErrorReply(st, wire.ErrServiceUnavailable, ""))
		}
	case "iq":
		if st.Type == "get" || st.Type == "set" {
			m.route(ctx, wire.ErrorReply(st, wire.ErrServiceUnavailable, ""))
		}
	}
	return module.Drop
}

// ownAccount fails unless ev comes from the account it addresses.
func ownAccount(ev *module.Event) error {
	if ev.From.Domainpart() == "" || !sameBare(ev.From, ev.To) || ev.Origin.Kind == module.FromServer {
		return stanzaErr(wire.ErrForbidden, "")
	}
	return nil
}

// handleBlocklist returns the block list and subscribes the session to
// block pushes.
func (m *Module) handleBlocklist(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if err := ownAccount(ev); err != nil {
		return nil, err
	}
	if ev.Stanza.Type != "get" {
		return nil, stanzaErr(wire.ErrBadRequest, "")
	}
	if s := m.originSession(ev); s != nil && len(module.Value(s, valBlockInterest)) == 0 {
		module.SetValue(s, valBlockInterest, []byte{'1'})
	}
	list, err := m.blocks.BlockList(ctx, ev.To.Bare().String())
	if err != nil {
		return nil, err
	}
	res := wire.NewElement(xep.NSBlocking, "blocklist")
	for _, j := range list {
		res.Add(wire.NewElement(xep.NSBlocking, "item", "jid", j))
	}
	return res, nil
}

// blockItems parses the <item/> children of a block or unblock command.
func blockItems(e *wire.Element) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, it := range e.ChildrenNamed(xep.NSBlocking, "item") {
		j, err := jid.Parse(it.AttrValue("jid"))
		if err != nil {
			return nil, stanzaErr(wire.ErrBadRequest, fmt.Sprintf("invalid JID %q", it.AttrValue("jid")))
		}
		if s := j.String(); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func (m *Module) handleBlock(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	jids, err := blockRequest(ev, "block")
	if err != nil {
		return nil, err
	}
	if len(jids) == 0 {
		return nil, stanzaErr(wire.ErrBadRequest, "block needs at least one item")
	}
	return nil, m.changeBlocks(ctx, ev, "block", jids, func(current []string, have blockSet) (blockSet, error) {
		added := blockSet{}
		for _, j := range jids {
			if !have[j] {
				added[j] = true
			}
		}
		if m.limit().MaxBlockItems >= 0 && len(current)+len(added) > m.limit().MaxBlockItems {
			return nil, stanzaErr(wire.ErrNotAllowed, fmt.Sprintf("the block list is limited to %d items", m.limit().MaxBlockItems))
		}
		return added, m.blocks.Block(ctx, ev.To.Bare().String(), jids)
	})
}

func (m *Module) handleUnblock(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	jids, err := blockRequest(ev, "unblock")
	if err != nil {
		return nil, err
	}
	return nil, m.changeBlocks(ctx, ev, "unblock", jids, func(current []string, have blockSet) (blockSet, error) {
		removed := blockSet{}
		if len(jids) == 0 { // unblock everyone
			for _, j := range current {
				removed[j] = true
			}
		}
		for _, j := range jids {
			if have[j] {
				removed[j] = true
			}
		}
		return removed, m.blocks.Unblock(ctx, ev.To.Bare().String(), jids)
	})
}

// blockRequest checks a block or unblock request (op) on the user's own
// account and returns its JIDs.
func blockRequest(ev *module.Event, op string) ([]string, error) {
	if err := ownAccount(ev); err != nil {
		return nil, err
	}
	if ev.Stanza.Type != "set" {
		return nil, stanzaErr(wire.ErrBadRequest, "")
	}
	return blockItems(ev.Stanza.Child(xep.NSBlocking, op))
}

// changeBlocks runs change on the block list of ev's account under the
// account's lock, with the list as it was, then pushes op with jids to
// the sessions that asked for the list. The entities change returns lose
// the user's presence (block) or get it again (unblock), after the lock.
func (m *Module) changeBlocks(ctx context.Context, ev *module.Event, op string, jids []string,
	change func(current []string, have blockSet) (blockSet, error)) error {
	owner := ev.To.Bare()
	bare := owner.String()
	unlock := m.lock(bare)
	current, err := m.blocks.BlockList(ctx, bare)
	if err != nil {
		unlock()
		return err
	}
	have := blockSet{}
	for _, j := range current {
		have[j] = true
	}
	affected, err := change(current, have)
	m.invalidateBlocks(bare)
	if err != nil {
		unlock()
		return err
	}
	m.blockPush(owner, op, jids)
	unlock()
	m.routeAll(ctx, m.presenceToMatching(ctx, owner, affected, op == "block"))
	return nil
}

// blockPush sends a block or unblock push to the sessions of owner that
// requested the block list.
func (m *Module) blockPush(owner jid.JID, op string, jids []string) {
	for _, s := range m.sessions.Resources(owner) {
		if len(module.Value(s, valBlockInterest)) == 0 {
			continue
		}
		e := wire.NewElement(xep.NSBlocking, op)
		for _, j := range jids {
			e.Add(wire.NewElement(xep.NSBlocking, "item", "jid", j))
		}
		iq := wire.NewElement(wire.NSClient, "iq", "type", "set", "id", "block-"+newID(), "to", s.JID().String())
		_ = s.Send(wire.FromElement(iq.Add(e)))
	}
}

// presenceToMatching returns, for the entities in set that may receive
// owner's presence (subscription from/both, or directed presence), an
// unavailable presence (unavailable) or the current presence from each of
// owner's available resources.
func (m *Module) presenceToMatching(ctx context.Context, owner jid.JID, set blockSet, unavailable bool) []*wire.Stanza {
	if len(set) == 0 {
		return nil
	}
	avail := m.availableResources(owner)
	if len(avail) == 0 {
		return nil
	}
	items, _, err := m.roster.RosterItems(ctx, owner.String())
	if err != nil {
		m.log.Error("loading roster", "user", owner.String(), "err", err)
	}
	targets := map[string]bool{}
	var order []string
	add := func(t string) {
		if !targets[t] {
			targets[t] = true
			order = append(order, t)
		}
	}
	subscribed := map[string]bool{}
	for _, it := range items {
		if !hasFrom(it.Subscription) {
			continue
		}
		subscribed[it.JID] = true
		if set.matchesString(it.JID) {
			add(it.JID)
		}
	}
	// A blocked full JID of a subscribed contact.
	for j := range set {
		if pj, err := jid.Parse(j); err == nil && pj.Resourcepart() != "" && subscribed[pj.Bare().String()] {
			add(j)
		}
	}
	var out []*wire.Stanza
	for _, s := range avail {
		p := s.Presence()
		if p == nil {
			continue
		}
		from := s.JID().String()
		send := func(to string) {
			if unavailable {
				out = append(out, presence("unavailable", from, to))
			} else {
				out = append(out, p.WithFromTo(from, to))
			}
		}
		for _, t := range order {
			send(t)
		}
		if unavailable {
			for _, t := range directed(s) {
				if !targets[t] && set.matchesString(t) {
					send(t)
				}
			}
		}
	}
	return out
}
