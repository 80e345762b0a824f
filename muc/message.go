package muc

import (
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// ghostConditions are delivery errors that mean an occupant's session is
// gone (§7.14 note: the service removes such "ghosts").
var ghostConditions = map[string]bool{
	wire.ErrGone: true, wire.ErrItemNotFound: true, wire.ErrRecipientUnavailable: true, wire.ErrRedirect: true,
	wire.ErrRemoteServerNotFound: true, wire.ErrRemoteServerTimeout: true, wire.ErrServiceUnavailable: true,
	wire.ErrJIDMalformed: true,
}

// errorCondition returns the defined condition of an error stanza.
func errorCondition(st *wire.Stanza) string {
	e := st.Child(wire.NSClient, "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Name.Space == wire.NSStanzas && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}

// handleMessage: groupchat, private messages, invitations, declines,
// voice requests.
func (r *room) handleMessage(ev *module.Event) {
	st := ev.Stanza
	from := ev.From
	if q := st.Child(nsQueued, "queued"); q != nil && ev.Origin.Kind == module.FromLocal {
		// Another node queued one of our messages for a hibernated
		// occupant's session.
		if inner := q.Child(wire.NSClient, "message"); inner != nil && r.exists {
			r.queuedForAway(from, wire.FromElement(inner.Copy()))
		}
		return
	}
	if f := st.Child(nsForget, "forget"); f != nil && ev.Origin.Kind == module.FromLocal {
		// An account is being deleted (see Module.ForgetUser).
		if _, ok := r.affs[f.AttrValue("jid")]; ok {
			delete(r.affs, f.AttrValue("jid"))
			r.affiliationChanged(f.AttrValue("jid"))
		}
		return
	}
	if !r.exists {
		if st.Type != "error" {
			r.replyError(st, wire.ErrItemNotFound, "no such room")
		}
		return
	}
	o := r.occupantOf(from)
	if st.Type == "error" {
		if o != nil && ghostConditions[errorCondition(st)] {
			r.removeSession(o, from, removal{codes: []int{333}})
		}
		return
	}
	if nick := ev.To.Resourcepart(); nick != "" {
		r.privateMessage(ev, o, nick)
		return
	}
	if st.Type == "groupchat" {
		r.groupchat(ev, o)
		return
	}
	if x := st.Child(NSUser, "x"); x != nil {
		switch {
		case x.Child(NSUser, "invite") != nil:
			r.invite(ev, o, x)
			return
		case x.Child(NSUser, "decline") != nil:
			r.decline(ev, x)
			return
		}
	}
	if form := st.Child(xep.NSDataForms, "x"); form != nil {
		if v := formValues(form); len(v["FORM_TYPE"]) > 0 && v["FORM_TYPE"][0] == nsRequest {
			r.voiceRequest(ev, o, form)
			return
		}
	}
	if xep.IsChatStateOnly(st) || (!xep.HasBody(st) && !xep.IsEncrypted(st)) {
		return // e.g. a receipt or chat state to the room: nothing to do
	}
	r.replyError(st, wire.ErrNotAcceptable, "send messages to the room as type groupchat")
}

// stripForged removes elements only the room may set: its stanza-ids and
// occupant ids (XEP-0359 §3.1, XEP-0421 §4) and moderation notices.
func (r *room) stripForged(st *wire.Stanza) *wire.Stanza {
	t := st.Tree()
	forged := false
	for _, c := range t.Elements() {
		switch {
		case c.Name.Space == xep.NSSID && c.Name.Local == "stanza-id" && c.AttrValue("by") == r.key,
			c.Name.Space == NSOccupantID,
			c.Name.Space == NSUser && c.Name.Local == "x":
			forged = true
		}
	}
	if !forged {
		return st
	}
	c := t.Copy()
	kept := c.Children[:0]
	for _, n := range c.Children {
		e := n.Elem
		if e != nil && ((e.Name.Space == xep.NSSID && e.Name.Local == "stanza-id" && e.AttrValue("by") == r.key) ||
			e.Name.Space == NSOccupantID || (e.Name.Space == NSUser && e.Name.Local == "x")) {
			continue
		}
		kept = append(kept, n)
	}
	c.Children = kept
	return wire.FromElement(c)
}

// archivable says whether a groupchat message belongs in the room archive
// and history: content, not chat states or bare receipts.
func archivable(st *wire.Stanza) bool {
	if xep.Hint(st, "no-store") || xep.Hint(st, "no-permanent-store") {
		return false
	}
	if xep.HasBody(st) || xep.IsEncrypted(st) || st.Child(NSRetract, "retract") != nil ||
		st.Child(nsFasten, "apply-to") != nil {
		return true
	}
	for _, c := range st.Tree().Elements() {
		if c.Name.Space == xep.NSMarkers || c.Name.Space == xep.NSReactions {
			return true
		}
	}
	return xep.Hint(st, "store") && !xep.IsChatStateOnly(st)
}

// groupchat handles §7.4 (and §8.1 subject changes).
func (r *room) groupchat(ev *module.Event, o *occupant) {
	st := ev.Stanza
	switch {
	case o == nil:
		r.replyError(st, wire.ErrNotAcceptable, "only occupants may send messages to the room")
		return
	case o.role == roleVisitor:
		r.replyError(st, wire.ErrForbidden, "you have no voice in this moderated room")
		return
	case !r.allow(o):
		messagesRefused.WithLabelValues("rate").Inc()
		r.replyError(st, wire.ErrResourceConstraint, "you are sending messages too fast")
		return
	}
	if subj := st.Child(wire.NSClient, "subject"); subj != nil && !xep.HasBody(st) {
		r.changeSubject(ev, o, subj.Text())
		return
	}
	if rt := st.Child(NSRetract, "retract"); rt != nil {
		if err := r.checkSelfRetraction(o, rt.AttrValue("id")); err != nil {
			r.replyStanzaError(st, err)
			return
		}
	}
	base := r.stripForged(st).WithAttr("from", r.key+"/"+o.nick).WithAttr("to", "")
	base = base.WithChild(wire.NewElement(NSOccupantID, "occupant-id", "id", o.id))
	keep := archivable(base)
	now := r.m.now().UTC()
	if keep && r.cfg.Archive {
		id, err := r.archive(base, o, now)
		if err != nil {
			r.m.log.Error("muc: archiving", "room", r.key, "err", err)
			messagesRefused.WithLabelValues("archive").Inc()
			r.replyError(st, wire.ErrResourceConstraint, "the message could not be stored; try again")
			return
		}
		base = base.WithChild(wire.NewElement(xep.NSSID, "stanza-id", "id", id, "by", r.key))
		if rt := st.Child(NSRetract, "retract"); rt != nil {
			r.tombstone(rt.AttrValue("id"), nil, now)
		}
	}
	if keep {
		r.remember(base, now)
	}
	r.fanOut(nil, base, jid.JID{})
	messagesBroadcast.Inc()
	if keep {
		r.notifyAway(base, o)
	}
}

// archive stores a groupchat message (store before forward) and returns
// its id, which is also its stanza-id.
func (r *room) archive(st *wire.Stanza, o *occupant, at time.Time) (string, error) {
	origin := st.ChildID(xep.NSSID, "origin-id")
	return r.m.store.AppendArchive(r.ctx(), r.key, storage.ArchivedMessage{
		With: r.key, WithResource: o.nick, Timestamp: at, OriginID: origin,
		FromFull: o.speaker().full.String(), Raw: st.Raw,
	})
}

// changeSubject handles §8.1.
func (r *room) changeSubject(ev *module.Event, o *occupant, text string) {
	st := ev.Stanza
	if !o.isModerator() && !(r.cfg.ChangeSubject && o.role == roleParticipant) {
		r.replyError(st, wire.ErrForbidden, "you may not change the subject of this room")
		return
	}
	if len(text) > maxDescBytes {
		r.replyError(st, wire.ErrNotAcceptable, "the subject is too long")
		return
	}
	r.subject, r.subjectBy, r.subjectAt = text, o.nick, r.m.now().UTC()
	if err := r.save(); err != nil {
		r.m.log.Error("muc: saving subject", "room", r.key, "err", err)
	}
	m := wire.NewElement(wire.NSClient, "message", "type", "groupchat", "from", r.key+"/"+o.nick, "id", st.ID)
	m.Add(wire.NewElement(wire.NSClient, "subject").AddText(text))
	m.Add(wire.NewElement(NSOccupantID, "occupant-id", "id", o.id))
	r.fanOut(nil, wire.FromElement(m), jid.JID{})
}

// privateMessage handles §7.5: a message to room/nick.
func (r *room) privateMessage(ev *module.Event, o *occupant, nick string) {
	st := ev.Stanza
	if st.Type == "groupchat" {
		r.replyError(st, wire.ErrBadRequest, "groupchat messages go to the room, not to an occupant")
		return
	}
	if o == nil {
		r.replyError(st, wire.ErrNotAcceptable, "only occupants may send private messages")
		return
	}
	switch r.cfg.AllowPM {
	case PMNone:
		r.replyError(st, wire.ErrNotAllowed, "private messages are disabled in this room")
		return
	case PMModerators:
		if !o.isModerator() {
			r.replyError(st, wire.ErrForbidden, "only moderators may send private messages here")
			return
		}
	case PMParticipants:
		if o.role == roleVisitor {
			r.replyError(st, wire.ErrForbidden, "visitors may not send private messages here")
			return
		}
	}
	to := r.occupants[nick]
	if to == nil {
		r.replyError(st, wire.ErrItemNotFound, "no occupant with this nick")
		return
	}
	if !r.allow(o) {
		r.replyError(st, wire.ErrResourceConstraint, "you are sending messages too fast")
		return
	}
	out := r.stripForged(st).WithAttr("from", r.key+"/"+o.nick)
	// XEP-0045 §7.5: mark it, so clients (and carbons) know it is a MUC PM.
	out = out.WithChild(wire.NewElement(NSUser, "x"))
	for _, s := range to.sessions {
		r.m.send(out.WithAttr("to", s.full.String()))
	}
}

// invite handles mediated invitations (§7.8.2): the room passes them on,
// and in members-only rooms makes the invitee a member.
func (r *room) invite(ev *module.Event, o *occupant, x *wire.Element) {
	st := ev.Stanza
	if o == nil {
		r.replyError(st, wire.ErrNotAcceptable, "only occupants may invite")
		return
	}
	aff := r.affiliation(o.bare)
	privileged := affRank(aff) >= affRank(affAdmin)
	// In open rooms anyone may invite; in members-only rooms admins, and
	// members when the room allows it (the invitee becomes a member).
	if r.cfg.MembersOnly && !privileged && !r.cfg.AllowInvites {
		r.replyError(st, wire.ErrForbidden, "only admins may invite to this room")
		return
	}
	if o.role == roleVisitor {
		r.replyError(st, wire.ErrForbidden, "visitors may not invite")
		return
	}
	invites := x.ChildrenNamed(NSUser, "invite")
	if len(invites) > 10 {
		r.replyError(st, wire.ErrPolicyViolation, "at most 10 invitations at once")
		return
	}
	for _, inv := range invites {
		to, err := jid.Parse(inv.AttrValue("to"))
		if err != nil || to.Domainpart() == "" {
			r.replyError(st, wire.ErrJIDMalformed, "the invitation's 'to' is not a valid JID")
			return
		}
		if r.affiliation(to) == affOutcast {
			r.replyError(st, wire.ErrForbidden, "this user is banned from the room")
			return
		}
		if r.cfg.MembersOnly && affRank(r.affiliation(to)) < affRank(affMember) {
			a := storage.MUCAffiliation{JID: to.Bare().String(), Affiliation: affMember, Reason: "invited by " + o.nick}
			r.affs[a.JID] = a
			if err := r.saveAffiliation(a); err != nil {
				r.m.log.Error("muc: saving invitee membership", "room", r.key, "err", err)
			}
			r.affiliationChanged(a.JID)
		}
		inviter := r.key + "/" + o.nick
		if r.cfg.NonAnonymous() {
			inviter = ev.From.String()
		}
		fwd := wire.NewElement(NSUser, "invite", "from", inviter)
		if reason := inv.Child(NSUser, "reason"); reason != nil {
			fwd.Add(reason.Copy())
		}
		ux := wire.NewElement(NSUser, "x").Add(fwd)
		if r.cfg.Password != "" {
			ux.Add(wire.NewElement(NSUser, "password").AddText(r.cfg.Password))
		}
		m := wire.NewElement(wire.NSClient, "message", "from", r.key, "to", to.String(), "id", randomID(8)).Add(ux)
		m.Add(wire.NewElement(wire.NSClient, "body").AddText(inviter + " invites you to the room " + r.key))
		cx := wire.NewElement(NSConference, "x", "jid", r.key)
		if r.cfg.Password != "" {
			cx.SetAttr("password", r.cfg.Password)
		}
		m.Add(cx)
		r.m.send(wire.FromElement(m))
		invitesSent.Inc()
	}
}

// decline passes a declined invitation to the inviter (§7.8.2).
func (r *room) decline(ev *module.Event, x *wire.Element) {
	d := x.Child(NSUser, "decline")
	to, err := jid.Parse(d.AttrValue("to"))
	if err != nil || to.Domainpart() == "" {
		r.replyError(ev.Stanza, wire.ErrJIDMalformed, "the decline's 'to' is not a valid JID")
		return
	}
	fwd := wire.NewElement(NSUser, "decline", "from", ev.From.Bare().String())
	if reason := d.Child(NSUser, "reason"); reason != nil {
		fwd.Add(reason.Copy())
	}
	m := wire.NewElement(wire.NSClient, "message", "from", r.key, "to", to.String(), "id", randomID(8)).
		Add(wire.NewElement(NSUser, "x").Add(fwd))
	r.m.send(wire.FromElement(m))
}

// remember adds a message to the history kept for new occupants.
func (r *room) remember(st *wire.Stanza, at time.Time) {
	n := r.cfg.HistoryLength
	if n <= 0 {
		r.history = nil
		return
	}
	r.history = append(r.history, histEntry{st: st, at: at})
	if len(r.history) > n {
		r.history = append(r.history[:0:0], r.history[len(r.history)-n:]...)
	}
}
