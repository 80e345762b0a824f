package push

import (
	"context"
	"strconv"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// storeTimeout bounds the worker's storage calls.
const storeTimeout = 10 * time.Second

// msgInfo is what a notification tells about the last message.
type msgInfo struct {
	sender string
	body   string // "" unless IncludeBody and the message is not encrypted
}

// window is the coalescing state of one registration: open while timer
// runs; messages arriving meanwhile are counted into the notification
// published when it fires.
type window struct {
	reg   storage.PushRegistration
	count int
	last  msgInfo
	timer *time.Timer
}

func (m *Module) work() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case j := <-m.jobs:
			m.handle(j)
		}
	}
}

func (m *Module) handle(j job) {
	ctx, cancel := context.WithTimeout(m.ctx, storeTimeout)
	defer cancel()
	if j.disable != nil {
		m.disable(ctx, *j.disable, nil, "the push service removed the affiliation")
		return
	}
	info, ok := m.summarize(j.st, j.sess != nil)
	if j.away {
		// Another module decided the user must hear about it (a group
		// chat mention): only what it says is left to describe.
		info, ok = m.describe(j.st)
	}
	if !ok {
		return
	}
	if j.overdue {
		if len(enabledBy(j.sess)) == 0 {
			// A slow client that never enabled push (a desktop, say) is
			// no reason to wake the user's phone.
			return
		}
	}
	regs, err := m.regs.Pushes(ctx, j.owner)
	if err != nil {
		if m.ctx.Err() == nil {
			m.log.Error("push: loading registrations", "user", j.owner, "err", err)
		}
		return
	}
	if j.sess != nil {
		mine := enabledBy(j.sess)
		if len(mine) > 0 {
			var own []storage.PushRegistration
			for _, r := range regs {
				if mine[keyOf(j.owner, r)] {
					own = append(own, r)
				}
			}
			regs = own
		} else if j.overdue {
			regs = nil // disabled meanwhile
		}
	}
	for _, r := range regs {
		m.add(j.owner, r, info)
	}
}

// summarize decides whether st is worth a notification and what it says.
// queued is true for a stanza queued to a hibernated session (delivered on
// resumption), false for an undeliverable one (stored offline or dropped).
func (m *Module) summarize(st *wire.Stanza, queued bool) (msgInfo, bool) {
	if st == nil || st.Name != "message" {
		return msgInfo{}, false
	}
	if queued {
		if st.Child(nsCarbons, "sent") != nil {
			return msgInfo{}, false // the user's own message from another device
		}
		if rc := st.Child(nsCarbons, "received"); rc != nil {
			inner := rc.Child(nsForward, "forwarded").Child(wire.NSClient, "message")
			if inner == nil {
				return msgInfo{}, false
			}
			st = wire.FromElement(inner.Copy())
		}
	} else if !xep.OfflineWorthy(st) {
		return msgInfo{}, false
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return msgInfo{}, false
	}
	return m.describe(st)
}

// describe is the notification's summary of st: its sender, and its text
// only with IncludeBody and never of an encrypted message; nothing to say
// for messages without content.
func (m *Module) describe(st *wire.Stanza) (msgInfo, bool) {
	enc := xep.IsEncrypted(st)
	if !enc && !xep.HasBody(st) && st.Child(nsJingleMessage, "propose") == nil {
		return msgInfo{}, false
	}
	info := msgInfo{sender: st.From}
	if m.cfg.IncludeBody && !enc {
		info.body = truncate(st.Child(wire.NSClient, "body").Text(), maxBodyBytes)
	}
	return info, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return wire.TruncateText(s, n) + "…"
}

// add counts a message for a registration and publishes at once unless a
// coalescing window is open.
func (m *Module) add(owner string, r storage.PushRegistration, info msgInfo) {
	k := keyOf(owner, r)
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	if w := m.windows[k]; w != nil {
		w.count++
		w.last = info
		w.reg = r
		m.mu.Unlock()
		coalesced.Inc()
		return
	}
	if m.cfg.Coalesce > 0 {
		w := &window{reg: r}
		w.timer = time.AfterFunc(m.cfg.Coalesce, func() { m.windowEnd(k, w) })
		m.windows[k] = w
	}
	m.mu.Unlock()
	m.publish(owner, r, 1, info)
}

// windowEnd publishes what was counted during a window and opens the next
// one, or closes the window when nothing came.
func (m *Module) windowEnd(k regKey, w *window) {
	m.mu.Lock()
	if m.windows[k] != w {
		m.mu.Unlock()
		return // disabled or stopped meanwhile
	}
	if w.count == 0 {
		delete(m.windows, k)
		m.mu.Unlock()
		return
	}
	n, info, r := w.count, w.last, w.reg
	w.count = 0
	w.timer = time.AfterFunc(m.cfg.Coalesce, func() { m.windowEnd(k, w) })
	m.mu.Unlock()
	m.publish(k.owner, r, n, info)
}

// publish sends one notification in its own goroutine.
func (m *Module) publish(owner string, r storage.PushRegistration, n int, info msgInfo) {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		m.send(owner, r, n, info)
	}()
}

func (m *Module) send(owner string, r storage.PushRegistration, n int, info msgInfo) {
	iq := m.notification(owner, r, n, info)
	if m.queue != nil {
		m.sendDurable(owner, r, iq)
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.Timeout)
	defer cancel()
	res, err := m.reg.Sender().Request(ctx, iq)
	if err != nil {
		if m.ctx.Err() != nil {
			return // shutting down
		}
		notificationFailures.WithLabelValues("timeout").Inc()
		m.log.Warn("push: no answer from the app server", "user", owner, "service", r.JID, "node", r.Node, "err", err)
		return
	}
	if res.Type != "error" {
		notificationsSent.Inc()
		return
	}
	notificationFailures.WithLabelValues("error").Inc()
	cond, typ := stanzaError(res)
	if typ == "wait" || cond == wire.ErrRemoteServerNotFound || cond == wire.ErrRemoteServerTimeout {
		m.log.Warn("push: transient app server error, registration kept", "user", owner, "service", r.JID, "node", r.Node, "condition", cond)
		return
	}
	dctx, dcancel := context.WithTimeout(m.ctx, storeTimeout)
	defer dcancel()
	m.disable(dctx, keyOf(owner, r), &r, "app server error "+cond)
}

// disable removes a registration. When seen is set, it is removed only if
// it was not re-enabled since (its creation time is unchanged).
func (m *Module) disable(ctx context.Context, k regKey, seen *storage.PushRegistration, why string) {
	regs, err := m.regs.Pushes(ctx, k.owner)
	if err != nil {
		m.log.Error("push: loading registrations", "user", k.owner, "err", err)
		return
	}
	found := false
	for _, r := range regs {
		if r.JID == k.jid && r.Node == k.node && (seen == nil || r.Created.Equal(seen.Created)) {
			found = true
		}
	}
	if !found {
		return
	}
	if err := m.regs.RemovePush(ctx, k.owner, k.jid, k.node); err != nil {
		m.log.Error("push: disabling registration", "user", k.owner, "service", k.jid, "node", k.node, "err", err)
		return
	}
	m.forget(k.owner, k.jid, k.node)
	registrationsDisabled.Inc()
	m.log.Info("push: registration disabled", "user", k.owner, "service", k.jid, "node", k.node, "reason", why)
}

// stanzaError returns the defined condition and type of an error stanza.
func stanzaError(st *wire.Stanza) (cond, typ string) {
	e := st.Child(wire.NSClient, "error")
	if e == nil {
		return wire.ErrUndefinedCondition, ""
	}
	cond = wire.ErrUndefinedCondition
	for _, c := range e.Elements() {
		if c.Name.Space == wire.NSStanzas && c.Name.Local != "text" {
			cond = c.Name.Local
			break
		}
	}
	return cond, e.AttrValue("type")
}

// notification builds the XEP-0357 publish from the user's bare JID.
func (m *Module) notification(owner string, r storage.PushRegistration, n int, info msgInfo) *wire.Stanza {
	field := func(name, value string) *wire.Element {
		return wire.NewElement(xep.NSDataForms, "field", "var", name).
			Add(wire.NewElement(xep.NSDataForms, "value").AddText(value))
	}
	form := wire.NewElement(xep.NSDataForms, "x", "type", "form").Add(
		field("FORM_TYPE", NSSummary).SetAttr("type", "hidden"),
		field("message-count", strconv.Itoa(n)),
	)
	if info.sender != "" {
		form.Add(field("last-message-sender", info.sender))
	}
	if info.body != "" {
		form.Add(field("last-message-body", info.body))
	}
	pubsub := wire.NewElement(NSPubSub, "pubsub").Add(
		wire.NewElement(NSPubSub, "publish", "node", r.Node).Add(
			wire.NewElement(NSPubSub, "item").Add(
				wire.NewElement(NS, "notification").Add(form))))
	if len(r.Form) > 0 {
		if opts, err := wire.Parse(r.Form, wire.Limits{}); err != nil {
			m.log.Error("push: stored publish options are not well-formed; sent without", "user", owner, "service", r.JID, "err", err)
		} else {
			pubsub.Add(wire.NewElement(NSPubSub, "publish-options").Add(opts.Tree().Copy()))
		}
	}
	iq := wire.NewElement(wire.NSClient, "iq", "type", "set", "from", owner, "to", r.JID).Add(pubsub)
	return wire.FromElement(iq)
}
