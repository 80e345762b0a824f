package mam

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces.
const (
	NS         = xep.NSMAM
	NSExtended = xep.NSMAMExtended
	NSForward  = xep.NSForward
	NSRSM      = xep.NSRSM
	NSFulltext = xep.NSFulltext // XEP-0431
	nsCarbons  = xep.NSCarbons
)

// Module implements module.Module, module.Starter and module.Stopper.
type Module struct {
	cfg     Config
	log     *slog.Logger
	archive storage.Archive
	roster  storage.Roster
	now     func() time.Time

	reg   *module.Registry
	quota *archiveQuota
	prefC *prefsCache
	dedup *dedup

	stop chan struct{}
	done sync.WaitGroup
}

var (
	_ module.Module  = (*Module)(nil)
	_ module.Starter = (*Module)(nil)
	_ module.Stopper = (*Module)(nil)
)

// New returns the module. roster is used for the "roster" archiving
// policy; when nil, that policy archives everything. Messages to local
// users whose account does not exist (module.Registry.AccountExists) are
// not archived.
func New(cfg Config, archive storage.Archive, roster storage.Roster) *Module {
	cfg = cfg.withDefaults()
	m := &Module{cfg: cfg, log: cfg.Logger, archive: archive, roster: roster, now: time.Now, prefC: newPrefsCache()}
	m.dedup = newDedup(cfg.DedupWindow, cfg.SharedArchive, time.Now())
	m.quota = newArchiveQuota(cfg.MaxAccountBytes, cfg.Usage, m.log)
	return m
}

// Name implements module.Module.
func (m *Module) Name() string { return "mam" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	r.AccountFeature(NS, NSExtended, xep.NSSID)
	if m.cfg.Fulltext {
		r.AccountFeature(NSFulltext)
	}
	r.Feature(xep.NSSID)
	r.Outbound(m.outbound)
	r.Inbound(m.inbound)
	// The store deletes the preferences with the account; so does the cache.
	r.OnDeleteAccount(func(_ context.Context, bare string) error {
		m.prefC.forget(bare)
		return nil
	})
	r.IQ(NS, "query", module.TargetAccount, m.handleQuery)
	r.IQ(NS, "metadata", module.TargetAccount, m.handleMetadata)
	// XEP-0386 §2.2: a Bind2 session learns the archive's state at the
	// moment it was bound, to know what to catch up on.
	r.OnBind2(func(ctx context.Context, s module.Session) *wire.Element {
		md, err := m.metadata(ctx, s.JID().Bare().String())
		if err != nil {
			m.log.Warn("archive metadata for Bind2", "user", s.JID().Bare().String(), "err", err)
			return nil
		}
		return md
	})
	r.IQ(NS, "prefs", module.TargetAccount, m.handlePrefs)
	return nil
}

// Start implements module.Starter: with a retention period, a background
// loop deletes expired messages.
func (m *Module) Start(ctx context.Context) error {
	if m.cfg.DedupWindow > 0 && !m.cfg.SharedArchive {
		// Without this, every message with an origin-id asked the
		// database during the first window after a start.
		if newest, err := m.archive.NewestArchived(ctx); err != nil {
			m.log.Warn("mam: reading the newest archived message failed; resends are checked in the database for a while", "err", err)
		} else {
			m.dedup.settle(newest)
		}
	}
	if m.cfg.Retention <= 0 || m.stop != nil {
		return nil
	}
	m.stop = make(chan struct{})
	m.done.Add(1)
	go m.purgeLoop(m.stop)
	return nil
}

// Stop implements module.Stopper.
func (m *Module) Stop(ctx context.Context) error {
	if m.stop == nil {
		return nil
	}
	close(m.stop)
	m.stop = nil
	ch := make(chan struct{})
	go func() { m.done.Wait(); close(ch) }()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Module) purgeLoop(stop chan struct{}) {
	defer m.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	t := time.NewTicker(m.cfg.PurgeInterval)
	defer t.Stop()
	for {
		m.Purge(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Purge deletes messages older than the retention period, in batches, and
// returns how many it deleted. It does nothing without a retention period.
func (m *Module) Purge(ctx context.Context) int {
	if m.cfg.Retention <= 0 {
		return 0
	}
	cutoff := m.now().Add(-m.cfg.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := m.archive.DeleteArchiveBefore(ctx, cutoff, m.cfg.PurgeBatch)
		total += n
		purged.Add(float64(n))
		if err != nil {
			if ctx.Err() == nil {
				m.log.Error("mam: retention purge failed", "err", err)
			}
			break
		}
		if n < m.cfg.PurgeBatch {
			break
		}
	}
	return total
}

// shouldArchive decides from a message's content whether it belongs in a
// user archive (XEP-0313 §7.1.1, XEP-0334).
//
// Never: errors, headlines, groupchat (MUC archives are the room's job),
// no-store / no-permanent-store hints, chat states without content, MAM
// results and carbon copies.
//
// Always: a <body/>, an OMEMO <encrypted/> payload in either namespace
// (with or without body: we cannot tell what it holds), a <subject/>.
//
// Receipts and markers: we follow Prosody's mod_mam, which archives XEP-0333
// chat markers so that a client catching up through MAM learns what the
// user already read on another device. XEP-0184 receipts without a body are
// not archived (they only matter to the live conversation); a client that
// wants one kept adds the XEP-0334 <store/> hint, which is honoured for any
// message that is not only a chat state.
func shouldArchive(st *wire.Stanza) bool {
	if st.Name != "message" {
		return false
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return false
	}
	if xep.Hint(st, "no-store") || xep.Hint(st, "no-permanent-store") {
		return false
	}
	if st.HasChild(NS, "result") || st.HasChild(nsCarbons, "sent") || st.HasChild(nsCarbons, "received") {
		return false
	}
	if xep.HasBody(st) || xep.IsEncrypted(st) || st.HasChild(wire.NSClient, "subject") {
		return true
	}
	if st.HasChildIn(xep.NSMarkers) {
		return true
	}
	return xep.Hint(st, "store") && !xep.IsChatStateOnly(st)
}

// outbound archives a local user's message into the sender's archive.
func (m *Module) outbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "message" || ev.Origin.Kind != module.FromClient || ev.From.Localpart() == "" {
		return module.Continue
	}
	owner := ev.From.Bare()
	// XEP-0359: the user's own client cannot claim a place in the user's
	// archive (it would show up in sent carbons and the archive).
	if s := stripStanzaID(st, owner.String()); s != st {
		ev.Stanza, st = s, s
	}
	if ev.To.Bare().Equal(owner) {
		// To the user's own account: the inbound hook archives it, once.
		return module.Continue
	}
	if !shouldArchive(st) {
		return module.Continue
	}
	id, err := m.store(ctx, ev, owner, ev.To, ev.From, st, "out")
	if err != nil {
		return m.refuseOnce(ctx, ev, st)
	}
	if id != "" {
		ev.ArchiveID = id
	}
	return module.Continue
}

// inbound archives a message into the local recipient's archive and
// stamps it with the archive id.
func (m *Module) inbound(ctx context.Context, ev *module.Event) module.Verdict {
	// An id from the outbound chain belongs to the sender's archive.
	ev.ArchiveID = ""
	st := ev.Stanza
	if st.Name != "message" || ev.To.Localpart() == "" {
		return module.Continue
	}
	owner := ev.To.Bare()
	if ev.Origin.Kind == module.FromLocal {
		if st.Child(NS, "result") != nil {
			// Our own query result: if the querying session is gone, drop
			// it rather than let RFC 6121 hand it to other resources.
			if ev.To.Resourcepart() != "" && m.reg.Sessions().Session(ev.To) == nil {
				return module.Drop
			}
			return module.Continue
		}
		if hasStanzaID(st, owner.String()) {
			// Generated here and already archived (e.g. redelivery).
			return module.Continue
		}
	} else if s := stripStanzaID(st, owner.String()); s != st {
		// XEP-0359 §4: nobody else may speak for this archive.
		ev.Stanza, st = s, s
	}
	if ev.From.Domainpart() == "" || !shouldArchive(st) || !m.exists(ctx, owner) {
		return module.Continue
	}
	id, err := m.store(ctx, ev, owner, ev.From, ev.From, st, "in")
	if err != nil {
		return m.refuseOnce(ctx, ev, st)
	}
	if id == "" {
		return module.Continue
	}
	ev.Stanza = addStanzaID(st, owner.String(), id)
	ev.ArchiveID = id
	return module.Continue
}

func (m *Module) exists(ctx context.Context, owner jid.JID) bool {
	ok, err := m.reg.AccountExists(ctx, owner)
	if err != nil {
		m.log.Error("mam: account lookup failed", "user", owner.String(), "err", err)
		return false
	}
	return ok
}

// refuse bounces a message that could not be archived to its sender with
// a wait-type resource-constraint error, and stops its routing: a message
// that belongs in an archive is never delivered (or acknowledged as
// handled, see c2s) without being stored. The sender may resend it; a
// resend with the same origin-id is not archived twice (DedupWindow).
func (m *Module) refuse(ctx context.Context, st *wire.Stanza) module.Verdict {
	if e := wire.ErrorReply(st, wire.ErrResourceConstraint, "the message could not be archived: storage is temporarily unavailable; try again later"); e != nil {
		// The sender learns of it even when the ctx that carried the
		// message has ended (e.g. its stream is closing).
		m.reg.Sender().Route(context.WithoutCancel(ctx), e)
	}
	return module.Handled
}

// refuseOnce is refuse for a message whose other archive writes may have
// failed already: its sender is told once.
func (m *Module) refuseOnce(ctx context.Context, ev *module.Event, st *wire.Stanza) module.Verdict {
	if h := ev.Origin.Hold; h != nil && !h.FirstFailure() {
		return module.Handled
	}
	return m.refuse(ctx, st)
}

// store archives st in owner's archive unless the user's preferences say
// otherwise or it is a resend of an archived message (then the earlier
// message's id is returned). It returns "" when nothing was archived, and
// an error when storage failed: the caller must then not deliver the
// message (an AppendArchive error, ctx's end included, means "not known
// to be stored").
//
// When the stanza's origin pipelines (ev.Origin.Hold) and the store can
// queue writes, the row is queued and added to the hold instead of waited
// for: delivery waits for it (module.Deliver), and if it fails the sender
// is told then, as refuse does.
func (m *Module) store(ctx context.Context, ev *module.Event, owner, other, from jid.JID, st *wire.Stanza, direction string) (string, error) {
	ok, err := m.allowed(ctx, owner, other)
	if err != nil {
		storeErrors.Inc()
		m.log.Error("mam: reading preferences failed", "user", owner.String(), "err", err)
		return "", err
	}
	if !ok {
		return "", nil
	}
	now := m.now()
	originID := st.ChildID(xep.NSSID, "origin-id")
	key := ""
	if originID != "" && m.cfg.DedupWindow > 0 {
		key = dedupKey(owner.String(), from.String(), originID)
		w, maybe := m.dedup.check(key, now)
		if w.c != nil {
			// A resend of a message still being written: the same row,
			// and whoever delivers this copy waits for it too.
			if ev.Origin.Hold != nil {
				ev.Origin.Hold.Add(w.c)
				duplicates.Inc()
				return w.id, nil
			}
			if waitDone(ctx, w.c) == nil {
				duplicates.Inc()
				return w.id, nil
			}
		}
		if maybe {
			prev, err := m.archive.FindArchivedByOrigin(ctx, owner.String(), originID, from.String(), now.Add(-m.cfg.DedupWindow))
			if err == nil {
				duplicates.Inc()
				return prev.ID, nil
			}
			if !errors.Is(err, storage.ErrNotFound) {
				m.log.Error("mam: duplicate lookup failed", "user", owner.String(), "err", err)
			}
		}
	}
	msg := storage.ArchivedMessage{
		With:         other.Bare().String(),
		WithResource: other.Resourcepart(),
		Timestamp:    now,
		OriginID:     originID,
		FromFull:     from.String(),
		Raw:          st.Raw,
	}
	if sub, ok := m.archive.(storage.ArchiveSubmitter); ok && ev.Origin.Hold != nil {
		hold := ev.Origin.Hold
		if key != "" {
			m.dedup.starting(key)
		}
		id, c, err := sub.SubmitArchive(ctx, owner.String(), msg, func(err error) {
			if key != "" {
				m.dedup.finished(key, err == nil, m.now())
			}
			if err == nil {
				countArchived(direction)
				m.quota.added(owner.String(), len(msg.Raw))
				return
			}
			storeErrors.Inc()
			m.log.Error("mam: archiving failed; the message is refused", "user", owner.String(), "err", err)
			if hold.FirstFailure() {
				// Not on the store's writer goroutine: routing may block.
				go m.refuse(context.WithoutCancel(ctx), st)
			}
		})
		if err != nil {
			if key != "" {
				m.dedup.finished(key, false, now)
			}
			storeErrors.Inc()
			m.log.Error("mam: archiving failed; the message is refused", "user", owner.String(), "err", err)
			return "", err
		}
		if key != "" {
			m.dedup.queued(key, id, c)
		}
		hold.Add(c)
		return id, nil
	}
	id, err := m.archive.AppendArchive(ctx, owner.String(), msg)
	if err != nil {
		storeErrors.Inc()
		m.log.Error("mam: archiving failed; the message is refused", "user", owner.String(), "err", err)
		return "", err
	}
	countArchived(direction)
	m.quota.added(owner.String(), len(msg.Raw))
	if key != "" {
		m.dedup.add(key, now)
	}
	return id, nil
}

// waitDone waits for c's outcome.
func waitDone(ctx context.Context, c module.Completion) error {
	select {
	case <-c.Done():
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// allowed applies the XEP-0441 preferences of owner to a message with
// other. A JID on the never list wins over the always list.
func (m *Module) allowed(ctx context.Context, owner, other jid.JID) (bool, error) {
	p, err := m.prefs(ctx, owner)
	if err != nil {
		return false, err
	}
	if matchAny(p.Never, other) {
		return false, nil
	}
	if matchAny(p.Always, other) {
		return true, nil
	}
	switch p.Default {
	case storage.ArchiveNever:
		return false, nil
	case storage.ArchiveRoster:
		if m.roster == nil || other.Bare().Equal(owner) {
			return true, nil
		}
		_, err := m.roster.RosterItem(ctx, owner.String(), other.Bare().String())
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	default:
		return true, nil
	}
}

// prefs returns owner's preferences (the configured default when none
// were set), from the cache when it has them.
func (m *Module) prefs(ctx context.Context, owner jid.JID) (storage.ArchivePrefs, error) {
	bare := owner.String()
	now := m.now()
	p, ok, gen := m.prefC.get(bare, now)
	if ok {
		return p, nil
	}
	p, err := m.archive.ArchivePrefs(ctx, bare)
	if errors.Is(err, storage.ErrNotFound) {
		p, err = storage.ArchivePrefs{Default: m.cfg.DefaultPolicy}, nil
	}
	if err != nil {
		return p, err
	}
	m.prefC.put(bare, p, gen, now)
	return p, nil
}

// matchAny implements XEP-0441 §2.4.1: a listed full JID matches the target
// as is, a listed bare JID matches the target's bare JID.
func matchAny(list []string, target jid.JID) bool {
	for _, s := range list {
		j, err := jid.Parse(s)
		if err != nil {
			continue
		}
		if j.Resourcepart() == "" {
			if j.Equal(target.Bare()) {
				return true
			}
		} else if j.Equal(target) {
			return true
		}
	}
	return false
}

// hasStanzaID reports whether st carries a stanza-id by 'by'.
func hasStanzaID(st *wire.Stanza, by string) bool {
	if !st.HasChild(xep.NSSID, "stanza-id") {
		return false
	}
	for _, e := range st.Tree().ChildrenNamed(xep.NSSID, "stanza-id") {
		if sameJID(e.AttrValue("by"), by) {
			return true
		}
	}
	return false
}

// stripStanzaID returns st without stanza-ids by 'by', or st itself when
// it has none.
func stripStanzaID(st *wire.Stanza, by string) *wire.Stanza {
	if st.Name != "message" || !hasStanzaID(st, by) {
		return st
	}
	t := st.Tree().Copy()
	out := t.Children[:0]
	for _, c := range t.Children {
		if c.Elem != nil && c.Elem.Name.Space == xep.NSSID && c.Elem.Name.Local == "stanza-id" && sameJID(c.Elem.AttrValue("by"), by) {
			continue
		}
		out = append(out, c)
	}
	t.Children = out
	return wire.FromElement(t)
}

// addStanzaID returns a copy of st with <stanza-id by= id=/>.
func addStanzaID(st *wire.Stanza, by, id string) *wire.Stanza {
	return st.WithChild(wire.NewElement(xep.NSSID, "stanza-id", "by", by, "id", id))
}

// sameJID compares JIDs after normalization (falling back to the strings
// when one does not parse).
func sameJID(a, b string) bool {
	if a == b {
		return true
	}
	ja, err1 := jid.Parse(a)
	jb, err2 := jid.Parse(b)
	return err1 == nil && err2 == nil && ja.Equal(jb)
}
