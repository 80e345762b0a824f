package im

import (
	"context"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// handleRoster answers jabber:iq:roster get and set (RFC 6121 §2).
func (m *Module) handleRoster(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	// RFC 6121 §2.1.5/§2.3.3: only the user's own resources may read or
	// change the roster.
	if ev.From.Domainpart() == "" || !sameBare(ev.From, ev.To) || ev.Origin.Kind == module.FromServer {
		return nil, stanzaErr(wire.ErrForbidden, "")
	}
	q := ev.Stanza.Child(xep.NSRoster, "query")
	if q == nil {
		return nil, stanzaErr(wire.ErrBadRequest, "")
	}
	owner := ev.To.Bare()
	switch ev.Stanza.Type {
	case "get":
		return m.rosterGet(ctx, ev, owner, q)
	case "set":
		return nil, m.rosterSet(ctx, ev, owner, q)
	}
	return nil, stanzaErr(wire.ErrBadRequest, "")
}

func (m *Module) rosterGet(ctx context.Context, ev *module.Event, owner jid.JID, q *wire.Element) (*wire.Element, error) {
	if len(q.Elements()) != 0 {
		return nil, stanzaErr(wire.ErrBadRequest, "a roster get must have an empty query")
	}
	if s := m.originSession(ev); s != nil {
		s.SetFlags(module.FlagInterested, 0)
	}
	items, ver, err := m.roster.RosterItems(ctx, owner.String())
	if err != nil {
		return nil, err
	}
	// XEP-0237 exact-match: an unchanged roster is answered with an empty
	// result; later changes arrive as pushes.
	if q.HasAttr("ver") && q.AttrValue("ver") == ver {
		return nil, nil
	}
	res := wire.NewElement(xep.NSRoster, "query", "ver", ver)
	if ver == "" {
		res.Attr = append(res.Attr, wireAttr("ver", ""))
	}
	for _, it := range items {
		res.Add(itemElement(it))
	}
	return res, nil
}

func (m *Module) rosterSet(ctx context.Context, ev *module.Event, owner jid.JID, q *wire.Element) error {
	items := q.Elements()
	if len(items) != 1 || items[0].Name.Space != xep.NSRoster || items[0].Name.Local != "item" {
		return stanzaErr(wire.ErrBadRequest, "a roster set must contain exactly one item")
	}
	el := items[0]
	if !el.HasAttr("jid") {
		return stanzaErr(wire.ErrBadRequest, "the item has no 'jid' attribute")
	}
	contact, err := jid.Parse(el.AttrValue("jid"))
	if err != nil {
		return stanzaErr(wire.ErrJIDMalformed, "the item's 'jid' is not a valid JID")
	}
	if el.AttrValue("subscription") == "remove" {
		return m.rosterRemove(ctx, owner, contact)
	}
	name := el.AttrValue("name")
	if len(name) > MaxNameLength {
		return stanzaErr(wire.ErrNotAcceptable, fmt.Sprintf("the name is longer than %d bytes", MaxNameLength))
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range el.Elements() {
		if g.Name.Space != xep.NSRoster || g.Name.Local != "group" {
			continue
		}
		name := g.Text()
		switch {
		case name == "":
			return stanzaErr(wire.ErrNotAcceptable, "empty group name")
		case len(name) > MaxGroupLength:
			return stanzaErr(wire.ErrNotAcceptable, fmt.Sprintf("a group name is longer than %d bytes", MaxGroupLength))
		case seen[name]:
			return stanzaErr(wire.ErrBadRequest, "duplicate group "+name)
		}
		seen[name] = true
		groups = append(groups, name)
	}

	bare := owner.String()
	unlock := m.lock(bare)
	defer unlock()
	it, err := m.roster.RosterItem(ctx, bare, contact.String())
	switch {
	case isNotFound(err):
		if err := m.checkRosterLimit(ctx, bare); err != nil {
			return err
		}
		it = storage.RosterItem{JID: contact.String(), Subscription: storage.SubNone}
	case err != nil:
		return err
	}
	// RFC 6121 §2.1.2.5: 'subscription' (other than remove) and 'ask' set
	// by the client are ignored; only name and groups change.
	it.Name, it.Groups = name, groups
	ver, err := m.roster.UpsertRosterItem(ctx, bare, it)
	if err != nil {
		return err
	}
	m.push(owner, it, ver)
	return nil
}

// checkRosterLimit fails when owner's roster cannot take one more item.
func (m *Module) checkRosterLimit(ctx context.Context, owner string) error {
	if m.limit().MaxRosterItems < 0 {
		return nil
	}
	items, _, err := m.roster.RosterItems(ctx, owner)
	if err != nil {
		return err
	}
	if len(items) >= m.limit().MaxRosterItems {
		return stanzaErr(wire.ErrNotAllowed, fmt.Sprintf("the roster is limited to %d items", m.limit().MaxRosterItems))
	}
	return nil
}

// rosterRemove deletes a contact (RFC 6121 §2.5): the subscriptions in both
// directions are cancelled and the contact sees the user go offline.
func (m *Module) rosterRemove(ctx context.Context, owner, contact jid.JID) error {
	bare, cbare := owner.String(), contact.String()
	unlock := m.lock(bare)
	it, err := m.roster.RosterItem(ctx, bare, cbare)
	if isNotFound(err) {
		unlock()
		return stanzaErr(wire.ErrItemNotFound, "")
	}
	if err != nil {
		unlock()
		return err
	}
	pending, err := m.hasPendingIn(ctx, bare, cbare)
	if err != nil {
		unlock()
		return err
	}
	ver, err := m.roster.DeleteRosterItem(ctx, bare, cbare)
	if err != nil {
		unlock()
		return err
	}
	if pending {
		if err := m.roster.RemovePendingIn(ctx, bare, cbare); err != nil {
			m.log.Error("removing pending subscription", "user", bare, "err", err)
		}
	}
	m.push(owner, storage.RosterItem{JID: cbare, Subscription: "remove"}, ver)
	unlock()

	if sameBare(owner, contact) {
		return nil
	}
	var out []*wire.Stanza
	hasTo := it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth
	hasFrom := it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth
	if hasTo || it.Ask {
		out = append(out, presence("unsubscribe", bare, cbare))
	}
	if hasFrom || pending || it.Approved {
		out = append(out, presence("unsubscribed", bare, cbare))
	}
	if hasFrom {
		for _, s := range m.availableResources(owner) {
			out = append(out, presence("unavailable", s.JID().String(), cbare))
		}
	}
	m.routeAll(ctx, out)
	return nil
}

// push sends a roster push for it to every interested resource of owner
// (RFC 6121 §2.1.6). The caller holds owner's lock so pushes go out in
// version order.
func (m *Module) push(owner jid.JID, it storage.RosterItem, ver string) {
	var q *wire.Element
	for _, s := range m.sessions.Resources(owner) {
		if s.Flags()&module.FlagInterested == 0 {
			continue
		}
		if q == nil {
			q = wire.NewElement(xep.NSRoster, "query", "ver", ver).Add(itemElement(it))
		}
		iq := wire.NewElement(wire.NSClient, "iq", "type", "set", "id", "push-"+newID(), "to", s.JID().String())
		_ = s.Send(wire.FromElement(iq.Add(q)))
	}
}

// itemElement serializes a roster item (RFC 6121 §2.1.2).
func itemElement(it storage.RosterItem) *wire.Element {
	e := wire.NewElement(xep.NSRoster, "item", "jid", it.JID, "name", it.Name, "subscription", it.Subscription)
	if it.Ask {
		e.SetAttr("ask", "subscribe")
	}
	if it.Approved {
		e.SetAttr("approved", "true")
	}
	for _, g := range it.Groups {
		e.Add(wire.NewElement(xep.NSRoster, "group").AddText(g))
	}
	return e
}

// hasPendingIn reports whether owner has an unanswered subscription
// request from contact.
func (m *Module) hasPendingIn(ctx context.Context, owner, contact string) (bool, error) {
	ps, err := m.roster.PendingIn(ctx, owner)
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		if p.From == contact {
			return true, nil
		}
	}
	return false, nil
}

// addPendingIn stores an inbound subscription request for redelivery.
func (m *Module) addPendingIn(ctx context.Context, owner, contact string, st *wire.Stanza) error {
	return m.roster.AddPendingIn(ctx, owner, storage.PendingSubscription{From: contact, Raw: st.Raw, Stamp: time.Now()})
}
