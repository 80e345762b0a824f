package im

import (
	"context"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"

	"mellium.im/xmpp/jid"
)

// Subscription state helpers. A roster item's state is its Subscription
// plus Ask (pending out); pending in lives in the PendingIn store
// (RFC 6121 Appendix A).

func hasTo(sub string) bool   { return sub == storage.SubTo || sub == storage.SubBoth }
func hasFrom(sub string) bool { return sub == storage.SubFrom || sub == storage.SubBoth }

func subState(to, from bool) string {
	switch {
	case to && from:
		return storage.SubBoth
	case to:
		return storage.SubTo
	case from:
		return storage.SubFrom
	}
	return storage.SubNone
}

func addTo(sub string) string   { return subState(true, hasFrom(sub)) }
func dropTo(sub string) string  { return subState(false, hasFrom(sub)) }
func addFrom(sub string) string { return subState(hasTo(sub), true) }
func dropFrom(sub string) string {
	return subState(hasTo(sub), false)
}

// item loads owner's item for contact; exists is false (and the item a
// fresh "none" item) when there is none.
func (m *Module) item(ctx context.Context, owner, contact string) (it storage.RosterItem, exists bool, err error) {
	it, err = m.roster.RosterItem(ctx, owner, contact)
	if isNotFound(err) {
		return storage.RosterItem{JID: contact, Subscription: storage.SubNone}, false, nil
	}
	if err != nil {
		return it, false, err
	}
	if it.Subscription == "" {
		it.Subscription = storage.SubNone
	}
	return it, true, nil
}

// save stores it and pushes it to owner's interested resources. The caller
// holds owner's lock.
func (m *Module) save(ctx context.Context, owner jid.JID, it storage.RosterItem) error {
	ver, err := m.roster.UpsertRosterItem(ctx, owner.String(), it)
	if err != nil {
		return err
	}
	m.push(owner, it, ver)
	return nil
}

// currentPresence returns the last presence of each of owner's available
// resources addressed to to.
func (m *Module) currentPresence(owner jid.JID, to string) []*wire.Stanza {
	var out []*wire.Stanza
	for _, s := range m.availableResources(owner) {
		if p := s.Presence(); p != nil {
			out = append(out, p.WithFromTo(s.JID().String(), to))
		}
	}
	return out
}

// unavailableFrom returns unavailable presence from each of owner's
// available resources to to.
func (m *Module) unavailableFrom(owner jid.JID, to string) []*wire.Stanza {
	var out []*wire.Stanza
	for _, s := range m.availableResources(owner) {
		out = append(out, presence("unavailable", s.JID().String(), to))
	}
	return out
}

// outboundSubscription handles a subscription stanza from a local client
// (RFC 6121 §3, Appendix A.2): it updates the user's side, stamps 'from'
// with the bare JID, normalizes 'to' to a bare JID and routes it. The
// contact's side changes when the stanza arrives (inboundSubscription).
func (m *Module) outboundSubscription(ctx context.Context, ev *module.Event) module.Verdict {
	owner, contact := ev.From.Bare(), ev.To.Bare()
	if sameBare(owner, contact) {
		// Presence to oneself needs no subscription.
		return module.Drop
	}
	bare, cbare := owner.String(), contact.String()
	st := ev.Stanza.WithFromTo(bare, cbare)
	var out []*wire.Stanza

	unlock := m.lock(bare)
	err := func() error {
		it, exists, err := m.item(ctx, bare, cbare)
		if err != nil {
			return err
		}
		switch ev.Stanza.Type {
		case "subscribe":
			if !exists {
				if err := m.checkRosterLimit(ctx, bare); err != nil {
					return err
				}
			}
			if !exists || (!hasTo(it.Subscription) && !it.Ask) {
				it.Ask = !hasTo(it.Subscription)
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
			}
			out = append(out, st)

		case "unsubscribe":
			if exists && (it.Ask || hasTo(it.Subscription)) {
				it.Ask = false
				it.Subscription = dropTo(it.Subscription)
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
			}
			out = append(out, st)

		case "subscribed":
			pending, err := m.hasPendingIn(ctx, bare, cbare)
			if err != nil {
				return err
			}
			switch {
			case hasFrom(it.Subscription):
				// Already approved: nothing to route (A.2.3).
			case pending:
				if !exists {
					if err := m.checkRosterLimit(ctx, bare); err != nil {
						return err
					}
				}
				it.Subscription = addFrom(it.Subscription)
				it.Approved = false
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
				out = append(out, st)
				// RFC 6121 §3.1.5: the contact now gets the user's presence.
				out = append(out, m.currentPresence(owner, cbare)...)
			default:
				// Pre-approval (RFC 6121 §3.4).
				if !exists {
					if err := m.checkRosterLimit(ctx, bare); err != nil {
						return err
					}
				}
				if !it.Approved || !exists {
					it.Approved = true
					if err := m.save(ctx, owner, it); err != nil {
						return err
					}
				}
			}
			if pending {
				if err := m.roster.RemovePendingIn(ctx, bare, cbare); err != nil {
					return err
				}
			}

		case "unsubscribed":
			pending, err := m.hasPendingIn(ctx, bare, cbare)
			if err != nil {
				return err
			}
			hadFrom := hasFrom(it.Subscription)
			onlyPreApproval := it.Approved && !hadFrom && !pending
			if exists && (hadFrom || it.Approved) {
				it.Subscription = dropFrom(it.Subscription)
				it.Approved = false
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
			}
			if pending {
				if err := m.roster.RemovePendingIn(ctx, bare, cbare); err != nil {
					return err
				}
			}
			if !onlyPreApproval {
				out = append(out, st)
			}
			if hadFrom {
				// RFC 6121 §3.2.2: the contact no longer gets presence.
				out = append(out, m.unavailableFrom(owner, cbare)...)
			}
		}
		return nil
	}()
	unlock()
	if err != nil {
		m.replyError(ctx, ev, err)
		return module.Handled
	}
	m.routeAll(ctx, out)
	return module.Handled
}

// inboundSubscription handles a subscription stanza addressed to a local
// user (RFC 6121 §3, Appendix A.3). It returns Continue (with the stanza
// normalized to bare JIDs) when the stanza is to be delivered to the
// user's available resources.
func (m *Module) inboundSubscription(ctx context.Context, ev *module.Event) module.Verdict {
	if ev.From.Domainpart() == "" {
		return module.Drop
	}
	owner, contact := ev.To.Bare(), ev.From.Bare()
	if sameBare(owner, contact) || !m.userExists(ctx, owner) {
		return module.Drop
	}
	bare, cbare := owner.String(), contact.String()
	st := ev.Stanza.WithFromTo(cbare, bare)
	var out []*wire.Stanza
	deliver := false

	unlock := m.lock(bare)
	err := func() error {
		it, exists, err := m.item(ctx, bare, cbare)
		if err != nil {
			return err
		}
		switch ev.Stanza.Type {
		case "subscribe":
			switch {
			case hasFrom(it.Subscription):
				// Already subscribed: answer for the user (§3.1.3).
				out = append(out, presence("subscribed", bare, cbare))
			case exists && it.Approved:
				// Pre-approved (§3.4): approve without asking the user.
				it.Subscription = addFrom(it.Subscription)
				it.Approved = false
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
				if err := m.roster.RemovePendingIn(ctx, bare, cbare); err != nil {
					return err
				}
				out = append(out, presence("subscribed", bare, cbare))
				out = append(out, m.currentPresence(owner, cbare)...)
			default:
				// Keep it until the user decides (§3.1.3); it is
				// redelivered on the user's next initial presence.
				if err := m.addPendingIn(ctx, bare, cbare, st); err != nil {
					return err
				}
				deliver = true
			}

		case "unsubscribe":
			pending, err := m.hasPendingIn(ctx, bare, cbare)
			if err != nil {
				return err
			}
			hadFrom := hasFrom(it.Subscription)
			if hadFrom {
				it.Subscription = dropFrom(it.Subscription)
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
				// §3.3.3: the contact no longer gets the user's presence.
				out = append(out, m.unavailableFrom(owner, cbare)...)
			}
			if pending {
				if err := m.roster.RemovePendingIn(ctx, bare, cbare); err != nil {
					return err
				}
			}
			deliver = hadFrom || pending

		case "subscribed":
			// Only an outstanding request can be approved (A.3.3).
			if exists && it.Ask {
				it.Ask = false
				it.Subscription = addTo(it.Subscription)
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
				deliver = true
			}

		case "unsubscribed":
			if exists && (it.Ask || hasTo(it.Subscription)) {
				it.Ask = false
				it.Subscription = dropTo(it.Subscription)
				if err := m.save(ctx, owner, it); err != nil {
					return err
				}
				deliver = true
			}
		}
		return nil
	}()
	unlock()
	if err != nil {
		m.log.Error("inbound subscription", "user", bare, "contact", cbare, "type", ev.Stanza.Type, "err", err)
		return module.Drop
	}
	m.routeAll(ctx, out)
	if !deliver {
		return module.Handled
	}
	ev.Stanza, ev.To = st, owner
	return module.Continue
}

// replyError answers a client's stanza with the error err (a
// *module.StanzaError, else internal-server-error), sent straight to the
// session.
func (m *Module) replyError(ctx context.Context, ev *module.Event, err error) {
	cond, text := wire.ErrInternalServerError, ""
	var app *wire.Element
	if se, ok := err.(*module.StanzaError); ok {
		cond, text, app = se.Condition, se.Text, se.App
	} else {
		m.log.Error("handling stanza", "from", ev.Stanza.From, "name", ev.Stanza.Name, "type", ev.Stanza.Type, "err", err)
	}
	reply := wire.ErrorReplyApp(ev.Stanza, cond, text, app)
	if reply == nil {
		return
	}
	if s := m.originSession(ev); s != nil {
		_ = s.Send(reply)
		return
	}
	m.route(ctx, reply)
}
