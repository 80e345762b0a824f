package muc

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// voiceRequest handles §7.13 (a visitor asks for voice) and §8.6 (a
// moderator answers the request form).
func (r *room) voiceRequest(ev *module.Event, o *occupant, form *wire.Element) {
	st := ev.Stanza
	if o == nil {
		r.replyError(st, wire.ErrNotAcceptable, "only occupants may ask for voice")
		return
	}
	vals := formValues(form)
	if o.isModerator() && form.AttrValue("type") == "submit" && len(vals["muc#request_allow"]) > 0 {
		// A moderator's decision.
		if allow, _ := parseBool(first(vals["muc#request_allow"])); !allow {
			return
		}
		target := r.occupants[first(vals["muc#roomnick"])]
		if target == nil || target.role != roleVisitor {
			return
		}
		a := r.actorOf(ev.From)
		if err := r.mayChangeRole(a, target, roleParticipant); err == nil {
			r.setRole(a, target, roleParticipant, "")
		}
		return
	}
	if o.role != roleVisitor || first(vals["muc#role"]) != roleParticipant {
		return
	}
	if !r.allow(o) {
		r.replyError(st, wire.ErrResourceConstraint, "you are sending requests too fast")
		return
	}
	x := wire.NewElement(xep.NSDataForms, "x", "type", "form").Add(
		wire.NewElement(xep.NSDataForms, "title").AddText("Voice request"),
		wire.NewElement(xep.NSDataForms, "instructions").AddText(
			"To approve this request for voice, select the \"Grant voice to this person?\" checkbox and submit the form."),
		formType(nsRequest),
		field("list-single", "muc#role", "Requested role", roleParticipant),
		field("jid-single", "muc#jid", "User ID", o.speaker().full.String()),
		field("text-single", "muc#roomnick", "Room Nickname", o.nick),
		field("boolean", "muc#request_allow", "Grant voice to this person?", "false"),
	)
	m := wire.FromElement(wire.NewElement(wire.NSClient, "message", "from", r.key, "id", randomID(8)).Add(x))
	for _, mod := range r.occupants {
		if !mod.isModerator() {
			continue
		}
		for _, s := range mod.sessions {
			r.m.send(m.WithAttr("to", s.full.String()))
		}
	}
}

// notifyAway asks for push notifications for local affiliated users who
// are not in the room (offline, or online elsewhere without joining):
// for every message or for mentions of their nick, by their setting or
// the room's. Occupants whose session is hibernated are handled when the
// message is queued for them (queuedForAway).
func (r *room) notifyAway(st *wire.Stanza, sender *occupant) {
	if r.cfg.Notify == NotifyNone && !r.anyOwnNotify() {
		return
	}
	present := make(map[string]bool, len(r.occupants))
	for _, o := range r.occupants {
		present[o.bare.String()] = true
	}
	text := strings.ToLower(st.Child(wire.NSClient, "body").Text())
	for key, a := range r.affs {
		if a.Affiliation == affOutcast || present[key] || key == sender.bare.String() {
			continue
		}
		j, err := jid.Parse(key)
		if err != nil || j.Localpart() == "" || !r.m.isLocal(j) {
			continue
		}
		setting := a.Notify
		if setting == "" {
			setting = r.cfg.Notify
		}
		cause := ""
		switch setting {
		case NotifyAll:
			cause = "all"
		case NotifyMentions:
			nick := a.Nick
			if nick == "" {
				nick = a.LastNick
			}
			if r.mentions(st, text, nick, key) {
				cause = "mention"
			}
		}
		if cause != "" {
			notifications.WithLabelValues(cause).Inc()
			r.m.reg.FireNotify(r.ctx(), key, st)
		}
	}
}

// anyOwnNotify reports whether some member chose notifications although
// the room's default is none.
func (r *room) anyOwnNotify() bool {
	for _, a := range r.affs {
		if a.Notify == NotifyAll || a.Notify == NotifyMentions {
			return true
		}
	}
	return false
}

// queuedForAway: a groupchat message from this room was queued for a
// hibernated session of an occupant (its phone went to sleep without
// leaving). A mention (or every message, by setting) asks for a push.
func (r *room) queuedForAway(full jid.JID, st *wire.Stanza) {
	o := r.occupantOf(full)
	if o == nil || st.From == r.key+"/"+o.nick || !r.m.isLocal(full) {
		return
	}
	a := r.affs[o.bare.String()]
	setting := a.Notify
	if setting == "" {
		setting = r.cfg.Notify
	}
	if setting == NotifyAll && affRank(r.affiliation(o.bare)) < affRank(affMember) {
		// Every message only for members: strangers in an open room are
		// woken for mentions at most.
		setting = NotifyMentions
	}
	cause := ""
	switch setting {
	case NotifyAll:
		if xep.HasBody(st) || xep.IsEncrypted(st) {
			cause = "all"
		}
	case NotifyMentions:
		if r.mentions(st, strings.ToLower(st.Child(wire.NSClient, "body").Text()), o.nick, o.bare.String()) {
			cause = "mention"
		}
	}
	if cause != "" {
		notifications.WithLabelValues(cause).Inc()
		r.m.reg.FireNotify(r.ctx(), o.bare.String(), st)
	}
}

// mentions reports whether a message mentions nick (as a word of the
// body, case-insensitively) or references the user (XEP-0372: the
// occupant JID or the user's bare JID). text is the lower-cased body.
func (r *room) mentions(st *wire.Stanza, text, nick, bare string) bool {
	for _, ref := range st.Tree().ChildrenNamed(nsReference, "reference") {
		if ref.AttrValue("type") != "mention" {
			continue
		}
		uri := strings.TrimPrefix(ref.AttrValue("uri"), "xmpp:")
		if uri == bare || (nick != "" && uri == r.key+"/"+nick) {
			return true
		}
	}
	if nick == "" || text == "" {
		return false
	}
	return containsWord(text, strings.ToLower(nick))
}

// containsWord reports whether w occurs in s between non-word characters.
func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		before, _ := utf8.DecodeLastRuneInString(s[:start])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (start == 0 || !isWordRune(before)) && (end == len(s) || !isWordRune(after)) {
			return true
		}
		i = start + 1
	}
	return false
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
