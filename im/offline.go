package im

import (
	"context"
	"errors"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// undeliverable stores messages for users with no available resource
// (XEP-0160). Messages not worth storing are left to the router (dropped).
func (m *Module) undeliverable(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "message" || !xep.OfflineWorthy(st) {
		return module.Continue
	}
	if refusal := m.storeOffline(ctx, ev); refusal != "" {
		// Routed without the owner's lock: the error may come back here.
		m.route(ctx, wire.ErrorReply(st, wire.ErrResourceConstraint, refusal))
	}
	return module.Handled
}

// storeOffline stores ev's message for its recipient, or delivers it to
// the recipient's resources that became available since the router found
// none; it returns why the message is refused, or "". It holds the
// owner's lock, which deliverOffline holds too: a session that becomes
// available after the check below sends the offline messages only once
// this one is stored. Without it a message the router found no resource
// for (and then waited for its archive commit) could be stored just after
// the recipient's initial presence had sent the offline messages, and
// stay stored while he was online.
func (m *Module) storeOffline(ctx context.Context, ev *module.Event) (refusal string) {
	owner := ev.To.Bare().String()
	unlock := m.lock(owner)
	defer unlock()
	// A rescued message (XEP-0198, its session ended) goes to storage
	// even with other resources available, as it always has.
	if !ev.Rescued && m.deliverAvailable(ev) {
		return ""
	}
	stamp := time.Now().UTC()
	stored := withDelay(ev.Stanza, ev.To.Domainpart(), stamp)
	max := m.limit().MaxOfflineMessages
	if max < 0 {
		max = 0
	}
	if full, err := m.offlineFull(ctx, owner, len(stored.Raw)); err != nil || full {
		if err != nil {
			m.log.Error("reading offline usage", "user", owner, "err", err)
		}
		return "offline storage for " + owner + " is full"
	}
	if _, err := m.offline.StoreOffline(ctx, owner, stored.Raw, stamp, max); err != nil {
		if errors.Is(err, storage.ErrQuotaExceeded) {
			return "offline storage for " + owner + " is full"
		}
		m.log.Error("storing offline message", "user", owner, "err", err)
		// Storage is down or slow: tell the sender to retry rather than
		// pretend the message was kept.
		return "the recipient is offline and storage is temporarily unavailable; try again later"
	}
	return ""
}

// deliverAvailable delivers ev's message as the router does to a bare JID
// (RFC 6121 §8.5.2.1): to every available resource with non-negative
// priority. It reports whether there was one.
func (m *Module) deliverAvailable(ev *module.Event) bool {
	delivered := false
	for _, s := range m.availableResources(ev.To.Bare()) {
		if s.Priority() >= 0 && module.Deliver(ev, s, ev.Stanza) == nil {
			delivered = true
		}
	}
	return delivered
}

// withDelay returns a copy of st with an XEP-0203 <delay/> from domain.
func withDelay(st *wire.Stanza, domain string, stamp time.Time) *wire.Stanza {
	return st.WithChild(wire.NewElement(xep.NSDelay, "delay", "from", domain, "stamp", stamp.UTC().Format(time.RFC3339)).
		AddText("Offline Storage"))
}

// deliverOffline sends the stored messages to a session that has just
// become available with non-negative priority, then deletes them.
func (m *Module) deliverOffline(ctx context.Context, s module.Session) {
	if m.offline == nil {
		return
	}
	owner := s.JID().Bare().String()
	// Two resources coming online at once must not both get the queue.
	unlock := m.lock(owner)
	defer unlock()
	msgs, err := m.offline.OfflineMessages(ctx, owner)
	if err != nil {
		m.log.Error("loading offline messages", "user", owner, "err", err)
		return
	}
	var upTo int64
	for _, msg := range msgs {
		st, err := wire.Parse(msg.Raw, wire.Limits{})
		if err != nil {
			// Reported, not skipped: the user gets the stored bytes as
			// text in a stand-in, the admin a log line and a metric.
			offlineUnreadable.Inc()
			m.log.Error("stored offline message is not well-formed; delivered as text", "user", owner, "id", msg.ID, "err", err)
			st = withDelay(wire.FromElement(xep.StandIn(msg.Raw, s.JID().Domainpart(), owner)), s.JID().Domainpart(), msg.Stamp)
		}
		if err := s.Send(st); err != nil {
			break
		}
		upTo = msg.ID
	}
	if upTo > 0 {
		if err := m.offline.DeleteOffline(ctx, owner, upTo); err != nil {
			m.log.Error("deleting delivered offline messages", "user", owner, "err", err)
		}
	}
}

// offlineFull reports whether n more bytes would take owner's offline
// messages beyond MaxOfflineBytes.
func (m *Module) offlineFull(ctx context.Context, owner string, n int) (bool, error) {
	max := m.limit().MaxOfflineBytes
	if m.cfg.Usage == nil || max < 0 {
		return false, nil
	}
	u, err := m.cfg.Usage.AccountUsage(ctx, owner)
	if err != nil {
		return false, err
	}
	return u.Offline+int64(n) > max, nil
}
