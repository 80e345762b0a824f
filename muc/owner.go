package muc

import (
	"strconv"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// ownerQuery answers muc#owner (§10): the configuration form, its
// submission (reserved and instant rooms), cancellation and destruction.
func (r *room) ownerQuery(ev *module.Event) (*wire.Element, error) {
	if r.affiliation(ev.From) != affOwner {
		return nil, module.Errorf(wire.ErrForbidden, "only owners may configure the room")
	}
	q := ev.Stanza.Tree().FirstElement()
	if ev.Stanza.Type == "get" {
		return wire.NewElement(NSOwner, "query").Add(r.configForm()), nil
	}
	if d := q.Child(NSOwner, "destroy"); d != nil {
		r.destroyBy(ev, d)
		return nil, nil
	}
	x := q.Child(xep.NSDataForms, "x")
	if x == nil {
		return nil, module.Errorf(wire.ErrBadRequest, "expected a form or <destroy/>")
	}
	switch x.AttrValue("type") {
	case "cancel":
		// §10.1.3: cancelling the creation destroys the room.
		if r.locked {
			r.destroy(nil, "", "")
		}
		return nil, nil
	case "submit":
	default:
		return nil, module.Errorf(wire.ErrBadRequest, "the form must be of type submit or cancel")
	}
	old := r.cfg
	cfg, chg, err := r.applyConfigForm(old, x)
	if err != nil {
		return nil, err
	}
	if chg.owners != nil && len(chg.owners) == 0 {
		return nil, module.Errorf(wire.ErrConflict, "the room needs at least one owner")
	}
	r.cfg = cfg
	wasLocked := r.locked
	if r.locked {
		r.unlock()
	} else if err := r.save(); err != nil {
		r.cfg = old
		return nil, err
	}
	r.publishListing()
	a := r.actorOf(ev.From)
	r.applyListChange(a, affOwner, chg.owners)
	r.applyListChange(a, affAdmin, chg.admins)
	if !wasLocked {
		r.announceConfigChange(old)
	}
	r.applyConfigEffects(old)
	return nil, nil
}

// applyListChange makes the owners or admins exactly list (the
// muc#roomconfig_roomowners / roomadmins fields); nil leaves them.
func (r *room) applyListChange(a actor, aff string, list []string) {
	if list == nil {
		return
	}
	want := map[string]bool{}
	for _, j := range list {
		want[j] = true
		if r.affs[j].Affiliation != aff {
			if t, err := jid.Parse(j); err == nil {
				r.setAffiliation(a, t, aff, "")
			}
		}
	}
	for _, j := range r.affiliated(aff) {
		if !want[j] {
			if t, err := jid.Parse(j); err == nil {
				r.setAffiliation(a, t, affNone, "")
			}
		}
	}
}

// announceConfigChange tells occupants what changed (§10.2.1): 104 for
// any change, 172/173 when real JIDs become public/private, 170/171 when
// archiving starts/stops.
func (r *room) announceConfigChange(old RoomConfig) {
	codes := []int{104}
	for _, o := range r.sortedOccupants() {
		// Occupants whose role the room now shows, or no longer shows.
		was, is := old.broadcasts(o.role), r.cfg.broadcasts(o.role)
		switch {
		case was && !is:
			r.hidePresence(o)
		case !was && is:
			r.broadcastPresence(o, nil, o.bare)
		}
	}
	if old.NonAnonymous() != r.cfg.NonAnonymous() {
		if r.cfg.NonAnonymous() {
			codes = append(codes, 172)
		} else {
			codes = append(codes, 173)
		}
	}
	if old.Archive != r.cfg.Archive {
		if r.cfg.Archive {
			codes = append(codes, 170)
		} else {
			codes = append(codes, 171)
		}
	}
	r.statusMessage(codes)
}

// statusMessage sends a message from the room with status codes.
func (r *room) statusMessage(codes []int) {
	x := wire.NewElement(NSUser, "x")
	for _, c := range codes {
		x.Add(wire.NewElement(NSUser, "status", "code", strconv.Itoa(c)))
	}
	m := wire.NewElement(wire.NSClient, "message", "type", "groupchat", "from", r.key, "id", randomID(8)).Add(x)
	r.fanOut(nil, wire.FromElement(m), jid.JID{})
}

// applyConfigEffects applies what a new configuration means for present
// occupants: non-members leave a room that became members-only (322),
// roles follow moderation, history follows its length.
func (r *room) applyConfigEffects(old RoomConfig) {
	if r.cfg.MembersOnly && !old.MembersOnly {
		for _, o := range r.sortedOccupants() {
			if affRank(r.affiliation(o.bare)) < affRank(affMember) {
				r.removeOccupant(o, removal{codes: []int{322}})
			}
		}
	}
	if r.cfg.Moderated != old.Moderated {
		for _, o := range r.sortedOccupants() {
			aff := r.affiliation(o.bare)
			if aff != affNone || o.role == roleModerator {
				continue
			}
			want := r.defaultRole(aff)
			if want != o.role {
				o.role = want
				r.broadcastRoleChange(o, actor{}, "")
			}
		}
	}
	if len(r.history) > r.cfg.HistoryLength {
		r.history = append(r.history[:0:0], r.history[len(r.history)-r.cfg.HistoryLength:]...)
	}
	if old.NonAnonymous() != r.cfg.NonAnonymous() {
		// Occupants' views of each other change: send everyone the
		// room's occupants again with or without JIDs.
		for _, o := range r.sortedOccupants() {
			for _, s := range o.sessions {
				r.sendRoster(o, s.full)
			}
		}
	}
}

// destroyBy handles §10.9: an owner destroys the room.
func (r *room) destroyBy(ev *module.Event, d *wire.Element) {
	alt := ""
	if j, err := jid.Parse(d.AttrValue("jid")); err == nil && d.AttrValue("jid") != "" {
		alt = j.Bare().String()
	}
	r.destroy(&alt, d.ChildText(NSOwner, "reason"), d.AttrValue("password"))
}

// destroy removes the room: every occupant gets unavailable presence with
// <destroy/> (and the alternate venue), then the room and its archive go
// from storage. alt nil: no <destroy/> notice (creation cancelled or
// never configured).
func (r *room) destroy(alt *string, reason, password string) {
	var why removal
	if alt != nil {
		d := wire.NewElement(NSUser, "destroy")
		if *alt != "" {
			d.SetAttr("jid", *alt)
		}
		if reason != "" {
			d.Add(wire.NewElement(NSUser, "reason").AddText(reason))
		}
		if password != "" {
			d.Add(wire.NewElement(NSUser, "password").AddText(password))
		}
		why.destroy = d
	} else if reason != "" {
		why.destroy = wire.NewElement(NSUser, "destroy").Add(wire.NewElement(NSUser, "reason").AddText(reason))
	} else {
		why.destroy = wire.NewElement(NSUser, "destroy")
	}
	for _, o := range r.sortedOccupants() {
		r.removeOccupant(o, why)
	}
	r.destroyStorage()
	r.affs = map[string]storage.MUCAffiliation{}
	r.history, r.subject, r.subjectBy, r.avatar = nil, "", "", nil
	r.locked = false
	r.cfg = r.m.cfg.defaults
}
