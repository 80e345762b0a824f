package muc

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// maxNickBytes bounds nicks (a JID resourcepart allows 1023).
const maxNickBytes = 128

// handlePresence: joins, presence updates, nick changes, leaving (§7.2,
// §7.6, §7.7, §7.14).
func (r *room) handlePresence(ev *module.Event) {
	st := ev.Stanza
	from := ev.From
	nick := ev.To.Resourcepart()
	switch st.Type {
	case "", "unavailable":
	case "error":
		// The occupant's server says it cannot take our presence: a
		// ghost (§7.14 note); remove it.
		if o := r.occupantOf(from); o != nil {
			r.removeSession(o, from, removal{codes: []int{333}})
		}
		return
	default:
		return // probes and subscriptions mean nothing to a room
	}
	if from.Resourcepart() == "" {
		if st.Type == "" {
			r.replyError(st, wire.ErrBadRequest, "join from a full JID")
		}
		return
	}
	o := r.occupantOf(from)
	if st.Type == "unavailable" {
		if o != nil {
			r.removeSession(o, from, removal{status: st})
		}
		return
	}
	if nick == "" {
		// §7.2.1: a nick is required.
		r.replyError(st, wire.ErrJIDMalformed, "a nick is required: send presence to room@service/nick")
		return
	}
	if len(nick) > maxNickBytes {
		r.presenceError(st, wire.ErrNotAcceptable, "the nick is too long")
		return
	}
	switch {
	case o == nil:
		r.join(ev, nick)
	case o.nick == nick && st.Child(NS, "x") != nil:
		r.resync(o, from, st)
	case o.nick == nick:
		r.updatePresence(o, from, st)
	default:
		r.changeNick(ev, o, nick)
	}
}

// clientPresence keeps what a session's presence says about the user,
// without the MUC elements it addressed to the room or that others could
// forge (occupant-id, muc#user).
func clientPresence(st *wire.Stanza) *wire.Stanza {
	t := st.Tree()
	if t.Child(NS, "x") == nil && t.Child(NSUser, "x") == nil && t.Child(NSOccupantID, "occupant-id") == nil {
		return st
	}
	c := t.Copy()
	c.RemoveChildren(NS, "x")
	c.RemoveChildren(NSUser, "x")
	c.RemoveChildren(NSOccupantID, "occupant-id")
	return wire.FromElement(c)
}

// joinError sends the presence error of a refused join (§7.2.x).
func (r *room) joinError(st *wire.Stanza, cond, text string) {
	joinsRefused.WithLabelValues(cond).Inc()
	r.presenceError(st, cond, text)
}

// presenceError answers a refused join or nick change as XEP-0045's
// examples do (§7.2.6-§7.2.11, §7.6): with an empty <x xmlns='…muc'/>
// (never the password the request carried) and the error 'by' the room.
// Clients tell a failed join by that <x/>: slixmpp's join_muc_wait waited
// until its timeout for an error without it.
func (r *room) presenceError(st *wire.Stanza, cond, text string) {
	if st.Type == "error" {
		return
	}
	e := wire.ErrorElement(cond, text, nil)
	e.SetAttr("by", r.key)
	r.m.send(wire.FromElement(wire.NewElement(wire.NSClient, "presence", "from", st.To, "to", st.From, "type", "error", "id", st.ID).
		Add(wire.NewElement(NS, "x"), e)))
}

// join handles a presence from a session that is not in the room (§7.2).
func (r *room) join(ev *module.Event, nick string) {
	st := ev.Stanza
	from := ev.From
	mucX := st.Child(NS, "x")
	created := false
	if !r.exists {
		if err := r.mayCreate(ev); err != nil {
			se := err.(*module.StanzaError)
			r.joinError(st, se.Condition, se.Text)
			return
		}
		r.create(from, mucX != nil)
		created = true
	}
	aff := r.affiliation(from)
	owner := aff == affOwner
	switch {
	case r.locked && !owner:
		// §10.1.2: nobody enters before the owner configured the room.
		r.joinError(st, wire.ErrItemNotFound, "the room is being created; try again later")
		return
	case aff == affOutcast:
		r.joinError(st, wire.ErrForbidden, "you are banned from this room")
		return
	}
	if other := r.occupants[nick]; other != nil && !other.bare.Equal(from.Bare()) {
		r.joinError(st, wire.ErrConflict, "this nick is used by another occupant")
		return
	}
	if holder := r.nickHolder(nick); holder != "" && holder != from.Bare().String() {
		r.joinError(st, wire.ErrConflict, "this nick is registered by another user")
		return
	}
	if r.cfg.MembersOnly && affRank(aff) < affRank(affMember) {
		r.joinError(st, wire.ErrRegistrationRequired, "only members may join this room")
		return
	}
	if r.cfg.Password != "" && affRank(aff) < affRank(affAdmin) &&
		mucX.ChildText(NS, "password") != r.cfg.Password {
		r.joinError(st, wire.ErrNotAuthorized, "a password is required to join this room")
		return
	}
	existing := r.occupants[nick]
	if existing == nil && len(r.occupants) >= min(r.cfg.MaxUsers, r.m.cfg.MaxOccupants) && affRank(aff) < affRank(affAdmin) {
		r.joinError(st, wire.ErrServiceUnavailable, "the room is full")
		return
	}
	pres := clientPresence(st)
	if existing != nil {
		// Another session of the same user under its nick: it joins the
		// occupant (multi-session nick, as Prosody does).
		existing.sessions = append(existing.sessions, &presenceSession{full: from, pres: pres})
		r.byFull[from.String()] = existing
		r.sendRoster(existing, from)
		r.sendSelfPresence(existing, from, nil)
		r.broadcastPresence(existing, nil, existing.bare)
		r.sendHistory(from, mucX)
		r.sendSubject(from)
		occupantsJoined.Inc()
		return
	}
	o := &occupant{nick: nick, bare: from.Bare(), role: r.defaultRole(aff), id: r.occupantID(from.Bare()),
		sessions: []*presenceSession{{full: from, pres: pres}}}
	r.occupants[nick] = o
	r.byFull[from.String()] = o
	r.rememberNick(o)
	var codes []int
	if created {
		codes = append(codes, 201)
	}
	if i := strings.IndexByte(st.To, '/'); i >= 0 && st.To[i+1:] != nick {
		// §7.2.? the service changed the nick (normalized it): 210.
		codes = append(codes, 210)
	}
	// Others first (§7.2.3), then the joining session's view.
	r.sendRoster(o, from)
	r.broadcastPresence(o, nil, o.bare)
	r.sendSelfPresence(o, from, codes)
	r.sendAvatarPresence(from, false)
	r.sendHistory(from, mucX)
	r.sendSubject(from)
	occupantsJoined.Inc()
}

// resync answers a join from a session that is already in the room, as a
// client sends when it thinks it lost the room (after a reconnection, a
// failed self-ping, or a library's join call): XEP-0045 §17.3.3 makes it
// a full synchronization request, so the session gets everything a join
// sends (others' presence, its own with 110, history, subject) and the
// others get its presence.
func (r *room) resync(o *occupant, from jid.JID, st *wire.Stanza) {
	r.sendRoster(o, from)
	r.updatePresence(o, from, st)
	r.sendAvatarPresence(from, false)
	r.sendHistory(from, st.Child(NS, "x"))
	r.sendSubject(from)
}

// mayCreate checks that the sender may create a room here.
func (r *room) mayCreate(ev *module.Event) error {
	from := ev.From
	admin := r.isAdmin(from.Bare().String())
	switch {
	case admin:
		return nil
	case r.m.cfg.RoomCreation == CreateAdmins || !r.m.isLocal(from) || ev.Origin.Kind == module.FromServer:
		return module.Errorf(wire.ErrNotAllowed, "room creation is restricted on this service")
	}
	if n := r.m.cfg.MaxRoomsPerUser; n > 0 {
		owned, err := r.m.store.UserRoomAffiliations(r.ctx(), from.Bare().String())
		if err != nil {
			r.m.log.Error("muc: counting rooms", "user", from.Bare().String(), "err", err)
			return module.Errorf(wire.ErrResourceConstraint, "cannot create the room right now")
		}
		r.m.mu.Lock()
		count := r.m.temporary[from.Bare().String()]
		r.m.mu.Unlock()
		for _, a := range owned {
			if a.Affiliation == affOwner {
				count++
			}
		}
		if count >= n {
			return module.Errorf(wire.ErrNotAllowed, "you already own %d rooms, the most this service allows", n)
		}
	}
	return nil
}

// create makes the room exist with its creator as owner. A creator that
// speaks MUC gets a locked room to configure (or accept as instant room,
// §10.1); one that does not gets an instant room at once.
func (r *room) create(creator jid.JID, speaksMUC bool) {
	r.exists = true
	r.locked = speaksMUC
	r.created = r.m.now().UTC()
	r.cfg = r.m.cfg.defaults
	r.affs = map[string]storage.MUCAffiliation{creator.Bare().String(): {JID: creator.Bare().String(), Affiliation: affOwner}}
	r.creator = creator.Bare().String()
	r.m.mu.Lock()
	r.m.temporary[r.creator]++
	r.m.mu.Unlock()
	roomsCreated.Inc()
	if !r.locked {
		r.unlock()
	}
}

// unlock ends the creation phase: the room opens (and is stored when
// persistent).
func (r *room) unlock() {
	r.locked = false
	if err := r.save(); err != nil {
		r.m.log.Error("muc: storing room", "room", r.key, "err", err)
	}
	r.publishListing()
}

// nickHolder returns the bare JID that registered nick, or "".
func (r *room) nickHolder(nick string) string {
	for j, a := range r.affs {
		if a.Nick != "" && strings.EqualFold(a.Nick, nick) {
			return j
		}
	}
	return ""
}

// rememberNick records the nick an affiliated local user joined with, for
// mentions while they are away.
func (r *room) rememberNick(o *occupant) {
	a, ok := r.affs[o.bare.String()]
	if !ok || a.Affiliation == affOutcast || a.LastNick == o.nick {
		return
	}
	a.LastNick = o.nick
	r.affs[o.bare.String()] = a
	if err := r.saveAffiliation(a); err != nil {
		r.m.log.Warn("muc: saving nick", "room", r.key, "err", err)
	}
}

// sees reports whether viewer sees real JIDs (§7.2.3, §7.2.4).
func (r *room) seesJIDs(viewer *occupant) bool {
	return r.cfg.NonAnonymous() || viewer.isModerator()
}

// item is the <item/> describing an occupant.
func (r *room) item(o *occupant, withJID bool) *wire.Element {
	it := wire.NewElement(NSUser, "item", "affiliation", r.affiliation(o.bare), "role", o.role)
	if withJID {
		it.SetAttr("jid", o.speaker().full.String())
	}
	return it
}

// presenceElement builds the presence of occupant o (nil pres:
// unavailable) with item, status codes and occupant-id.
func (r *room) presenceElement(o *occupant, pres *wire.Stanza, item *wire.Element, codes []int, extra ...*wire.Element) *wire.Element {
	var p *wire.Element
	if pres != nil {
		p = pres.Tree().Copy()
		p.Attr = slices.DeleteFunc(p.Attr, func(a xmlAttr) bool {
			return a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "to" || a.Name.Local == "id" || a.Name.Local == "type")
		})
	} else {
		p = wire.NewElement(wire.NSClient, "presence", "type", "unavailable")
	}
	p.SetAttr("from", r.key+"/"+o.nick)
	x := wire.NewElement(NSUser, "x").Add(item)
	for _, e := range extra {
		x.Add(e)
	}
	for _, c := range codes {
		x.Add(wire.NewElement(NSUser, "status", "code", strconv.Itoa(c)))
	}
	p.Add(x)
	p.Add(wire.NewElement(NSOccupantID, "occupant-id", "id", o.id))
	return p
}

// selfCodes are the status codes of an occupant's own presence.
func (r *room) selfCodes(extra []int) []int {
	codes := []int{110}
	if r.cfg.NonAnonymous() {
		codes = append(codes, 100)
	}
	if r.cfg.Archive {
		codes = append(codes, 170)
	}
	return append(codes, extra...)
}

// sendSelfPresence sends o's presence to one of its sessions with 110.
func (r *room) sendSelfPresence(o *occupant, to jid.JID, extra []int) {
	p := r.presenceElement(o, o.speaker().pres, r.item(o, true), r.selfCodes(extra))
	p.SetAttr("to", to.String())
	r.m.send(wire.FromElement(p))
}

// sendRoster sends every other occupant's presence to a joining session.
func (r *room) sendRoster(self *occupant, to jid.JID) {
	withJID := r.seesJIDs(self)
	for _, o := range r.sortedOccupants() {
		if o == self || !r.cfg.broadcasts(o.role) {
			continue
		}
		p := r.presenceElement(o, o.speaker().pres, r.item(o, withJID), nil)
		p.SetAttr("to", to.String())
		r.m.send(wire.FromElement(p))
	}
}

// sortedOccupants returns occupants in nick order (stable output).
func (r *room) sortedOccupants() []*occupant {
	out := make([]*occupant, 0, len(r.occupants))
	for _, o := range r.occupants {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *occupant) int { return strings.Compare(a.nick, b.nick) })
	return out
}

// fanOut sends variants of one stanza to every session of every occupant
// except those of skip (a bare JID; the empty JID skips nobody): the
// version with real JIDs to those who see them, the other to the rest.
// Each variant is serialised once; per recipient only 'to' changes.
func (r *room) fanOut(withJID, withoutJID *wire.Stanza, skip jid.JID) {
	// Parsed once here, the tree is shared by every recipient's copy
	// (hooks on the way read it).
	withoutJID.Tree()
	if withJID != nil {
		withJID.Tree()
	}
	for _, o := range r.occupants {
		if !skip.Equal(jid.JID{}) && o.bare.Equal(skip) {
			continue
		}
		st := withoutJID
		if withJID != nil && r.seesJIDs(o) {
			st = withJID
		}
		for _, s := range o.sessions {
			r.m.send(st.WithAttr("to", s.full.String()))
		}
	}
}

// broadcastPresence sends o's current presence (or unavailable with
// status codes) to everyone but o's own sessions, when the room shows
// the presence of o's role.
func (r *room) broadcastPresence(o *occupant, codes []int, skip jid.JID, extra ...*wire.Element) {
	if !r.cfg.broadcasts(o.role) {
		return
	}
	pres := o.speaker().pres
	with := wire.FromElement(r.presenceElement(o, pres, r.item(o, true), codes, extra...))
	without := wire.FromElement(r.presenceElement(o, pres, r.item(o, false), codes, extra...))
	r.fanOut(with, without, skip)
}

// updatePresence: a session changes its presence (status, show, caps).
func (r *room) updatePresence(o *occupant, from jid.JID, st *wire.Stanza) {
	pres := clientPresence(st)
	i := slices.IndexFunc(o.sessions, func(s *presenceSession) bool { return s.full.Equal(from) })
	s := o.sessions[i]
	s.pres = pres
	// The updating session speaks for the occupant from now on.
	o.sessions = append(slices.Delete(o.sessions, i, i+1), s)
	r.broadcastPresence(o, nil, o.bare)
	for _, s := range o.sessions {
		r.sendSelfPresence(o, s.full, nil)
	}
}

// changeNick handles §7.6: a joined session asks for another nick.
func (r *room) changeNick(ev *module.Event, o *occupant, nick string) {
	st := ev.Stanza
	if other := r.occupants[nick]; other != nil {
		r.presenceError(st, wire.ErrConflict, "this nick is used by another occupant")
		return
	}
	if holder := r.nickHolder(nick); holder != "" && holder != o.bare.String() {
		r.presenceError(st, wire.ErrConflict, "this nick is registered by another user")
		return
	}
	if len(o.sessions) > 1 {
		r.presenceError(st, wire.ErrNotAcceptable, "leave from your other devices before changing the nick")
		return
	}
	old := o.nick
	// Unavailable under the old nick with 303 and the new nick.
	itemWith, itemWithout := r.item(o, true), r.item(o, false)
	itemWith.SetAttr("nick", nick)
	itemWithout.SetAttr("nick", nick)
	if r.cfg.broadcasts(o.role) {
		with := wire.FromElement(r.presenceElement(o, nil, itemWith, []int{303}))
		without := wire.FromElement(r.presenceElement(o, nil, itemWithout, []int{303}))
		r.fanOut(with, without, o.bare)
	}
	self := r.presenceElement(o, nil, itemWith.Copy(), append(r.selfCodes(nil), 303))
	self.SetAttr("to", o.sessions[0].full.String())
	r.m.send(wire.FromElement(self))

	delete(r.occupants, old)
	o.nick = nick
	o.sessions[0].pres = clientPresence(st)
	r.occupants[nick] = o
	r.rememberNick(o)
	r.broadcastPresence(o, nil, o.bare)
	r.sendSelfPresence(o, o.sessions[0].full, nil)
}

// removal says why an occupant leaves.
type removal struct {
	codes  []int
	status *wire.Stanza  // the leaving session's unavailable presence (status text)
	actor  *wire.Element // <actor/> of a kick or ban
	reason string
	// destroy is the <destroy/> element of a destroyed room.
	destroy *wire.Element
}

// removeSession removes one session; the occupant leaves with its last.
func (r *room) removeSession(o *occupant, full jid.JID, why removal) {
	i := slices.IndexFunc(o.sessions, func(s *presenceSession) bool { return s.full.Equal(full) })
	if i < 0 {
		return
	}
	if len(o.sessions) == 1 {
		r.removeOccupant(o, why)
		return
	}
	s := o.sessions[i]
	o.sessions = slices.Delete(o.sessions, i, i+1)
	delete(r.byFull, full.String())
	// Only the leaving session hears that it left; the others stay.
	p := r.presenceElement(o, nil, r.item(o, true), r.selfCodes(why.codes), why.extra()...)
	p.SetAttr("to", s.full.String())
	r.m.send(wire.FromElement(p))
	occupantsLeft.Inc()
}

func (why removal) extra() []*wire.Element {
	var out []*wire.Element
	if why.destroy != nil {
		out = append(out, why.destroy)
	}
	return out
}

// removeOccupant ends o's presence in the room: everyone, o included,
// gets its unavailable presence with the status codes (§7.14, §8.2,
// §9.1).
func (r *room) removeOccupant(o *occupant, why removal) {
	delete(r.occupants, o.nick)
	for _, s := range o.sessions {
		delete(r.byFull, s.full.String())
	}
	shown := r.cfg.broadcasts(o.role)
	o.role = roleNone
	build := func(withJID bool, self bool) *wire.Element {
		it := r.item(o, withJID)
		if why.destroy != nil {
			it.SetAttr("affiliation", affNone)
		}
		if why.actor != nil {
			it.Add(why.actor.Copy())
		}
		if why.reason != "" {
			it.Add(wire.NewElement(NSUser, "reason").AddText(why.reason))
		}
		codes := why.codes
		if self {
			codes = r.selfCodes(why.codes)
		}
		p := r.presenceElement(o, nil, it, codes, why.extra()...)
		if why.status != nil {
			if s := why.status.Child(wire.NSClient, "status"); s != nil {
				p.Add(s.Copy())
			}
		}
		return p
	}
	if why.destroy == nil && shown {
		r.fanOut(wire.FromElement(build(true, false)), wire.FromElement(build(false, false)), o.bare)
	}
	self := wire.FromElement(build(true, true))
	for _, s := range o.sessions {
		r.m.send(self.WithAttr("to", s.full.String()))
	}
	occupantsLeft.Inc()
}

// sendSubject sends the subject (§7.2.15): always, empty when none.
func (r *room) sendSubject(to jid.JID) {
	from := r.key
	if r.subjectBy != "" {
		from = r.key + "/" + r.subjectBy
	}
	m := wire.NewElement(wire.NSClient, "message", "type", "groupchat", "from", from, "to", to.String(), "id", randomID(8))
	m.Add(wire.NewElement(wire.NSClient, "subject").AddText(r.subject))
	if !r.subjectAt.IsZero() {
		m.Add(wire.NewElement(xep.NSDelay, "delay", "from", r.key, "stamp", r.subjectAt.UTC().Format(time.RFC3339)))
	}
	r.m.send(wire.FromElement(m))
}

// hidePresence tells everyone but o that o is gone from their view: its
// role is no longer one whose presence the room shows.
func (r *room) hidePresence(o *occupant) {
	with := wire.FromElement(r.presenceElement(o, nil, r.item(o, true), nil).SetAttr("type", "unavailable"))
	without := wire.FromElement(r.presenceElement(o, nil, r.item(o, false), nil).SetAttr("type", "unavailable"))
	r.fanOut(with, without, o.bare)
}
