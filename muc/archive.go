package muc

import (
	"errors"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/mamquery"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// mayReadArchive applies who may query a room archive: never outcasts;
// members (or occupants) of members-only and password-protected rooms;
// anyone who could join an open room.
func (r *room) mayReadArchive(ev *module.Event) error {
	aff := r.affiliation(ev.From)
	switch {
	case aff == affOutcast:
		return module.Errorf(wire.ErrForbidden, "you are banned from this room")
	case r.locked && aff != affOwner:
		return module.Errorf(wire.ErrItemNotFound, "no such room")
	case r.occupantOf(ev.From) != nil || affRank(aff) >= affRank(affMember):
		return nil
	case r.cfg.MembersOnly:
		return module.Errorf(wire.ErrForbidden, "only members may read this room's archive")
	case r.cfg.Password != "":
		return module.Errorf(wire.ErrForbidden, "join the room to read its archive")
	}
	return nil
}

// mamQuery answers XEP-0313 queries on the room JID.
func (r *room) mamQuery(ev *module.Event) (*wire.Element, error) {
	if err := r.mayReadArchive(ev); err != nil {
		return nil, err
	}
	if ev.Stanza.Type == "get" {
		return mamquery.Form(false), nil
	}
	showJIDs := r.cfg.NonAnonymous() || r.occupantOf(ev.From).isModerator() || affRank(r.affiliation(ev.From)) >= affRank(affAdmin)
	return mamquery.Run(r.ctx(), r.m.store, mamquery.Query{
		Owner: r.key, Requester: ev.From.String(), Element: ev.Stanza.Tree().FirstElement(),
		Options: mamquery.Options{DefaultPageSize: r.m.cfg.MAMPageSize, MaxPageSize: r.m.cfg.MAMMaxPageSize},
		Rewrite: func(msg *storage.ArchivedMessage) []byte { return r.archivedForReader(msg, showJIDs) },
		Send:    func(st *wire.Stanza) error { r.m.send(st); return nil },
		Unreadable: func(msg storage.ArchivedMessage, err error) {
			r.m.log.Error("muc: archived message unreadable", "room", r.key, "id", msg.ID, "err", err)
		},
	})
}

// archivedForReader adds the sender's real JID to a stored message
// (<x xmlns='…muc#user'><item jid/></x>, as Prosody does) for readers
// who see real JIDs: OMEMO clients catching up need it to find the
// sender's devices. Stored bytes stay untouched otherwise.
func (r *room) archivedForReader(msg *storage.ArchivedMessage, showJIDs bool) []byte {
	if !showJIDs || msg.FromFull == "" {
		return msg.Raw
	}
	from, err := jid.Parse(msg.FromFull)
	if err != nil {
		return msg.Raw
	}
	st, err := wire.Parse(msg.Raw, wire.Limits{MaxStanzaBytes: len(msg.Raw) + 1})
	if err != nil {
		return msg.Raw
	}
	x := wire.NewElement(NSUser, "x").Add(wire.NewElement(NSUser, "item", "jid", from.Bare().String()))
	return st.WithChild(x).Raw
}

// mamMetadata answers the XEP-0313 metadata query on the room.
func (r *room) mamMetadata(ev *module.Event) (*wire.Element, error) {
	if err := r.mayReadArchive(ev); err != nil {
		return nil, err
	}
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	first, last, err := r.m.store.ArchiveMetadata(r.ctx(), r.key)
	if err != nil {
		return nil, err
	}
	return mamquery.Metadata(first, last), nil
}

// mamPrefs answers XEP-0313 preferences on the room: the default says
// whether the room archives (owners change it; it is the room's
// muc#roomconfig_enablearchiving).
func (r *room) mamPrefs(ev *module.Event) (*wire.Element, error) {
	if err := r.mayReadArchive(ev); err != nil {
		return nil, err
	}
	if ev.Stanza.Type == "set" {
		if r.affiliation(ev.From) != affOwner {
			return nil, module.Errorf(wire.ErrForbidden, "only owners may change the room's archiving")
		}
		old := r.cfg
		switch d := ev.Stanza.Tree().FirstElement().AttrValue("default"); d {
		case storage.ArchiveAlways:
			r.cfg.Archive = true
		case storage.ArchiveNever:
			r.cfg.Archive = false
		default:
			return nil, module.Errorf(wire.ErrNotAcceptable, "a room archives always or never")
		}
		if err := r.save(); err != nil {
			r.cfg = old
			return nil, err
		}
		if old.Archive != r.cfg.Archive {
			r.announceConfigChange(old)
		}
	}
	d := storage.ArchiveNever
	if r.cfg.Archive {
		d = storage.ArchiveAlways
	}
	return wire.NewElement(NSMAM, "prefs", "default", d).Add(
		wire.NewElement(NSMAM, "always"), wire.NewElement(NSMAM, "never")), nil
}

// findArchived returns the archived message with the id.
func (r *room) findArchived(id string) (storage.ArchivedMessage, error) {
	if id == "" {
		return storage.ArchivedMessage{}, module.Errorf(wire.ErrBadRequest, "the message id is missing")
	}
	page, err := r.m.store.QueryArchive(r.ctx(), r.key, storage.ArchiveQuery{IDs: []string{id}, Max: 1})
	if errors.Is(err, storage.ErrNotFound) || (err == nil && len(page.Messages) == 0) {
		return storage.ArchivedMessage{}, module.Errorf(wire.ErrItemNotFound, "no message with this id in the room's archive")
	}
	if err != nil {
		return storage.ArchivedMessage{}, err
	}
	return page.Messages[0], nil
}

// checkSelfRetraction allows an XEP-0424 retraction only of the
// occupant's own message (same occupant id).
func (r *room) checkSelfRetraction(o *occupant, id string) error {
	if !r.cfg.Archive {
		return nil // nothing to check against: pass it on
	}
	msg, err := r.findArchived(id)
	if err != nil {
		return err
	}
	st, err := wire.Parse(msg.Raw, wire.Limits{MaxStanzaBytes: len(msg.Raw) + 1})
	if err != nil || st.Child(NSOccupantID, "occupant-id").AttrValue("id") != o.id {
		return module.Errorf(wire.ErrForbidden, "you may only retract your own messages")
	}
	return nil
}

// tombstone replaces an archived message by a tombstone (XEP-0424 §5,
// XEP-0425 §5): its author's occupant id stays, its content goes. by is
// the moderator (nil for a retraction by the author).
func (r *room) tombstone(id string, by *wire.Element, at time.Time) {
	msg, err := r.findArchived(id)
	if err != nil {
		return
	}
	orig, err := wire.Parse(msg.Raw, wire.Limits{MaxStanzaBytes: len(msg.Raw) + 1})
	if err != nil {
		return
	}
	t := wire.NewElement(wire.NSClient, "message", "type", "groupchat", "from", orig.From)
	if orig.ID != "" {
		t.SetAttr("id", orig.ID)
	}
	if oid := orig.Child(NSOccupantID, "occupant-id"); oid != nil {
		t.Add(oid.Copy())
	}
	retracted := wire.NewElement(NSRetract, "retracted", "stamp", at.UTC().Format(time.RFC3339))
	if by != nil {
		retracted.Add(by)
	}
	t.Add(retracted)
	if err := r.m.store.ReplaceArchived(r.ctx(), r.key, id, wire.FromElement(t).Raw); err != nil {
		r.m.log.Error("muc: writing tombstone", "room", r.key, "id", id, "err", err)
	}
	r.history = dropFromHistory(r.history, r.key, id)
}

func dropFromHistory(h []histEntry, room, id string) []histEntry {
	out := h[:0]
	for _, e := range h {
		if sid := e.st.Child(xep.NSSID, "stanza-id"); sid != nil && sid.AttrValue("by") == room && sid.AttrValue("id") == id {
			continue
		}
		out = append(out, e)
	}
	return out
}

// moderate answers XEP-0425 (urn:xmpp:message-moderate:1): a moderator
// retracts a message for everyone.
func (r *room) moderate(ev *module.Event) (*wire.Element, error) {
	q := ev.Stanza.Tree().FirstElement()
	if q.Child(NSRetract, "retract") == nil {
		return nil, module.Errorf(wire.ErrBadRequest, "only retraction is supported")
	}
	return nil, r.retractFor(ev, q.AttrValue("id"), q.ChildText(NSModerate, "reason"))
}

// moderateLegacy answers XEP-0425 0.2 (apply-to / message-moderate:0),
// which Conversations and Gajim still send.
func (r *room) moderateLegacy(ev *module.Event) (*wire.Element, error) {
	q := ev.Stanza.Tree().FirstElement()
	mod := q.Child(nsModerate0, "moderate")
	if mod == nil || mod.Child(nsRetract0, "retract") == nil {
		return nil, module.Errorf(wire.ErrFeatureNotImplemented, "only moderation by retraction is supported")
	}
	return nil, r.retractFor(ev, q.AttrValue("id"), mod.ChildText(nsModerate0, "reason"))
}

// retractFor checks the moderator, replaces the message by a tombstone
// and announces the retraction in both protocol versions.
func (r *room) retractFor(ev *module.Event, id, reason string) error {
	if ev.Stanza.Type != "set" {
		return module.Err(wire.ErrBadRequest)
	}
	o := r.occupantOf(ev.From)
	if !o.isModerator() && affRank(r.affiliation(ev.From)) < affRank(affAdmin) {
		return module.Errorf(wire.ErrForbidden, "only moderators may moderate messages")
	}
	if !r.cfg.Archive {
		return module.Errorf(wire.ErrItemNotFound, "this room keeps no archive to moderate")
	}
	msg, err := r.findArchived(id)
	if err != nil {
		return err
	}
	if st, err := wire.Parse(msg.Raw, wire.Limits{MaxStanzaBytes: len(msg.Raw) + 1}); err == nil && st.Child(NSRetract, "retracted") != nil {
		return module.Errorf(wire.ErrItemNotFound, "this message was retracted already")
	}
	by := r.key
	var modID *wire.Element
	if o != nil {
		by = r.key + "/" + o.nick
		modID = wire.NewElement(NSOccupantID, "occupant-id", "id", o.id)
	}
	now := r.m.now().UTC()
	moderated := wire.NewElement(NSModerate, "moderated", "by", by)
	if modID != nil {
		moderated.Add(modID)
	}
	tombBy := moderated.Copy()
	if reason != "" {
		tombBy.Add(wire.NewElement(NSModerate, "reason").AddText(reason))
	}
	r.tombstone(id, tombBy, now)

	retract := wire.NewElement(NSRetract, "retract", "id", id).Add(moderated)
	legacy := wire.NewElement(nsModerate0, "moderated", "by", by).Add(wire.NewElement(nsRetract0, "retract"))
	if reason != "" {
		retract.Add(wire.NewElement(NSRetract, "reason").AddText(reason))
		legacy.Add(wire.NewElement(nsModerate0, "reason").AddText(reason))
	}
	m := wire.NewElement(wire.NSClient, "message", "type", "groupchat", "from", r.key, "id", randomID(8)).Add(
		retract, wire.NewElement(nsFasten, "apply-to", "id", id).Add(legacy))
	m.Add(wire.NewElement(xep.NSHints, "store"))
	st := wire.FromElement(m)
	// The announcement is archived too: clients catching up learn of it.
	aid, err := r.m.store.AppendArchive(r.ctx(), r.key, storage.ArchivedMessage{With: r.key, Timestamp: now,
		FromFull: ev.From.String(), Raw: st.Raw})
	if err != nil {
		r.m.log.Error("muc: archiving a moderation", "room", r.key, "err", err)
	} else {
		st = st.WithChild(wire.NewElement(xep.NSSID, "stanza-id", "id", aid, "by", r.key))
	}
	r.fanOut(nil, st, jid.JID{})
	moderations.Inc()
	return nil
}
