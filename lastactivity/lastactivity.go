// Package lastactivity implements XEP-0012 Last Activity (jabber:iq:last):
// the server's uptime, and for a user how long ago they went offline and
// the status they left with — told only to those allowed to see the
// user's presence (a subscription from the user, or the user's own
// clients); anyone else gets forbidden, also when asking a full JID.
//
// A user counts as online while one of their sessions is available (has
// sent presence); a connected but invisible session stays invisible here
// too (XEP-0012 §3 allows local policy).
package lastactivity

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// NS is the XEP-0012 namespace.
const NS = xep.NSLastActivity

// maxStatus bounds the status text kept from an unavailable presence.
const maxStatus = 1024

// Config configures the module.
type Config struct {
	Logger *slog.Logger
}

// Module implements module.Module.
type Module struct {
	log      *slog.Logger
	store    storage.LastActivity
	roster   storage.Roster
	sessions module.Sessions
	sender   module.Sender
	started  time.Time
	now      func() time.Time
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config, store storage.LastActivity, roster storage.Roster) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{log: cfg.Logger, store: store, roster: roster, now: time.Now}
}

// Name implements module.Module.
func (m *Module) Name() string { return "lastactivity" }

// Register implements module.Module. It must come before im, whose
// presence handling ends the outbound chain and clears presence at unbind.
func (m *Module) Register(r *module.Registry) error {
	m.sessions = r.Sessions()
	m.sender = r.Sender()
	m.started = r.Started()
	r.Feature(NS)
	r.AccountFeature(NS)
	r.IQ(NS, "query", module.TargetServer, m.uptime)
	r.IQ(NS, "query", module.TargetAccount, m.offline)
	r.Inbound(m.fullJIDQuery)
	r.Outbound(m.unavailable)
	r.OnUnbound(m.unbound)
	return nil
}

func query(seconds int64, text string) *wire.Element {
	q := wire.NewElement(NS, "query", "seconds", strconv.FormatInt(max(seconds, 0), 10))
	if text != "" {
		q.AddText(text)
	}
	return q
}

// uptime answers a query to the server (§5): seconds since it started.
func (m *Module) uptime(_ context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	return query(int64(m.now().Sub(m.started)/time.Second), ""), nil
}

// allowed reports whether from may see owner's presence: owner's own
// JIDs, and contacts owner's presence goes to (subscription from/both).
func (m *Module) allowed(ctx context.Context, owner, from jid.JID) (bool, error) {
	if from.Bare().Equal(owner.Bare()) {
		return true, nil
	}
	it, err := m.roster.RosterItem(ctx, owner.Bare().String(), from.Bare().String())
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth, nil
}

// available reports whether one of bare's sessions other than except is
// available.
func (m *Module) available(bare jid.JID, except module.Session) bool {
	for _, s := range m.sessions.Resources(bare) {
		if s != except && s.Presence() != nil {
			return true
		}
	}
	return false
}

// offline answers a query to a user's bare JID (§3).
func (m *Module) offline(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	ok, err := m.allowed(ctx, ev.To, ev.From)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, module.Errorf(wire.ErrForbidden, "only contacts who see the user's presence may ask")
	}
	if m.available(ev.To.Bare(), nil) {
		return query(0, ""), nil
	}
	at, status, err := m.store.LastActivity(ctx, ev.To.Bare().String())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, module.Errorf(wire.ErrItemNotFound, "the user has not been online yet")
	}
	if err != nil {
		return nil, err
	}
	return query(int64(m.now().Sub(at)/time.Second), status), nil
}

// fullJIDQuery refuses a query to a user's full JID from someone not
// allowed to see the user's presence (§4), instead of delivering it.
func (m *Module) fullJIDQuery(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "iq" || st.Type != "get" || ev.To.Resourcepart() == "" || st.Child(NS, "query") == nil {
		return module.Continue
	}
	ok, err := m.allowed(ctx, ev.To, ev.From)
	if err != nil {
		m.log.Warn("last activity: roster lookup", "err", err)
	}
	if ok {
		return module.Continue
	}
	m.sender.Route(ctx, wire.ErrorReply(st, wire.ErrForbidden, "only contacts who see the user's presence may ask"))
	return module.Handled
}

// unavailable records the logout of a user whose last available session
// sends unavailable presence, with its status text.
func (m *Module) unavailable(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "presence" || st.Type != "unavailable" || st.To != "" || ev.Origin.Session == nil {
		return module.Continue
	}
	s := ev.Origin.Session
	if s.Presence() == nil || m.available(s.JID().Bare(), s) {
		return module.Continue // not available before, or others still are
	}
	status := wire.TruncateText(st.Child(wire.NSClient, "status").Text(), maxStatus)
	m.record(ctx, s.JID().Bare(), status)
	return module.Continue
}

// unbound records the logout of a user whose last available session ended
// without unavailable presence (the connection dropped or was closed).
func (m *Module) unbound(ctx context.Context, s module.Session) {
	if s.Presence() == nil || m.available(s.JID().Bare(), s) {
		return
	}
	m.record(ctx, s.JID().Bare(), "")
}

func (m *Module) record(ctx context.Context, bare jid.JID, status string) {
	err := m.store.SetLastActivity(ctx, bare.String(), m.now(), status)
	if err != nil && !errors.Is(err, storage.ErrNotFound) { // deleted meanwhile
		m.log.Warn("last activity not recorded", "user", bare.String(), "err", err)
	}
}
