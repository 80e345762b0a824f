package muc

import (
	"errors"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// adminQuery answers muc#admin (§8, §9, §10): lists of roles and
// affiliations, and changes to them.
func (r *room) adminQuery(ev *module.Event) (*wire.Element, error) {
	q := ev.Stanza.Tree().FirstElement()
	items := q.ChildrenNamed(NSAdmin, "item")
	if len(items) == 0 {
		return nil, module.Errorf(wire.ErrBadRequest, "an item is required")
	}
	if ev.Stanza.Type == "get" {
		return r.adminList(ev, items[0])
	}
	if len(items) > 100 {
		return nil, module.Errorf(wire.ErrPolicyViolation, "at most 100 items at once")
	}
	actor := r.actorOf(ev.From)
	// Check every item before applying any (the change is all or nothing).
	var changes []func()
	for _, it := range items {
		f, err := r.adminChange(ev, actor, it)
		if err != nil {
			return nil, err
		}
		changes = append(changes, f)
	}
	for _, f := range changes {
		f()
	}
	return nil, nil
}

// actor is who asks for an admin change.
type actor struct {
	jid  jid.JID
	aff  string
	occ  *occupant // nil when not in the room
	role string
}

func (r *room) actorOf(j jid.JID) actor {
	a := actor{jid: j, aff: r.affiliation(j), occ: r.occupantOf(j), role: roleNone}
	if a.occ != nil {
		a.role = a.occ.role
	}
	return a
}

// adminList answers a list request (§9.5 members, §9.8 moderators, §10.5
// owners, ...).
func (r *room) adminList(ev *module.Event, it *wire.Element) (*wire.Element, error) {
	a := r.actorOf(ev.From)
	out := wire.NewElement(NSAdmin, "query")
	if role := it.AttrValue("role"); role != "" {
		switch role {
		case roleModerator, roleParticipant, roleVisitor:
		default:
			return nil, module.Errorf(wire.ErrBadRequest, "unknown role %q", role)
		}
		if a.role != roleModerator && affRank(a.aff) < affRank(affAdmin) {
			return nil, module.Errorf(wire.ErrForbidden, "only moderators may list roles")
		}
		for _, o := range r.sortedOccupants() {
			if o.role == role {
				out.Add(wire.NewElement(NSAdmin, "item", "affiliation", r.affiliation(o.bare), "role", o.role,
					"nick", o.nick, "jid", o.bare.String()))
			}
		}
		return out, nil
	}
	aff := it.AttrValue("affiliation")
	switch aff {
	case affOwner, affAdmin, affMember:
		// Admins and owners always; occupants whose role the room's
		// getmemberlist names; members when real JIDs are public (OMEMO
		// group chats fetch the list to find every device, also before
		// joining).
		if affRank(a.aff) < affRank(affAdmin) &&
			!(a.occ != nil && slices.Contains(r.cfg.memberListRoles(), a.occ.role)) &&
			!(r.cfg.NonAnonymous() && affRank(a.aff) >= affRank(affMember)) {
			return nil, module.Errorf(wire.ErrForbidden, "only admins may list affiliations here")
		}
	case affOutcast:
		if affRank(a.aff) < affRank(affAdmin) {
			return nil, module.Errorf(wire.ErrForbidden, "only admins may list banned users")
		}
	default:
		return nil, module.Errorf(wire.ErrBadRequest, "unknown affiliation %q", aff)
	}
	for _, j := range r.affiliated(aff) {
		x := r.affs[j]
		item := wire.NewElement(NSAdmin, "item", "affiliation", aff, "jid", j)
		if x.Nick != "" {
			item.SetAttr("nick", x.Nick)
		}
		if x.Reason != "" && affRank(a.aff) >= affRank(affAdmin) {
			item.Add(wire.NewElement(NSAdmin, "reason").AddText(x.Reason))
		}
		out.Add(item)
	}
	return out, nil
}

// adminChange checks one item of a change request and returns the change.
func (r *room) adminChange(ev *module.Event, a actor, it *wire.Element) (func(), error) {
	reason := it.ChildText(NSAdmin, "reason")
	if len(reason) > maxDescBytes {
		return nil, module.Errorf(wire.ErrNotAcceptable, "the reason is too long")
	}
	if role := it.AttrValue("role"); role != "" {
		nick := it.AttrValue("nick")
		o := r.occupants[nick]
		if o == nil {
			return nil, module.Errorf(wire.ErrItemNotFound, "no occupant with the nick %q", nick)
		}
		if err := r.mayChangeRole(a, o, role); err != nil {
			return nil, err
		}
		return func() { r.setRole(a, o, role, reason) }, nil
	}
	aff := it.AttrValue("affiliation")
	if aff == "" {
		return nil, module.Errorf(wire.ErrBadRequest, "an item needs a role or an affiliation")
	}
	target, err := jid.Parse(it.AttrValue("jid"))
	if err != nil || target.Domainpart() == "" {
		// §9.? items by nick: resolve to the occupant's real JID.
		if o := r.occupants[it.AttrValue("nick")]; o != nil && it.AttrValue("jid") == "" {
			target = o.bare
		} else {
			return nil, module.Errorf(wire.ErrJIDMalformed, "the item needs a valid 'jid'")
		}
	}
	target = target.Bare()
	if err := r.mayChangeAffiliation(a, target, aff); err != nil {
		return nil, err
	}
	return func() { r.setAffiliation(a, target, aff, reason) }, nil
}

// mayChangeRole applies the tables of §8 and §9 to a role change.
func (r *room) mayChangeRole(a actor, o *occupant, role string) error {
	targetAff := r.affiliation(o.bare)
	switch role {
	case roleNone, roleVisitor, roleParticipant:
		if a.role != roleModerator && affRank(a.aff) < affRank(affAdmin) {
			return module.Errorf(wire.ErrForbidden, "only moderators may change roles")
		}
		// Nobody kicks, mutes or demotes an admin or owner (§8.2, §9.4).
		if affRank(targetAff) >= affRank(affAdmin) {
			return module.Errorf(wire.ErrNotAllowed, "admins and owners keep their role")
		}
		// Revoking moderator status is for admins (§9.7).
		if o.role == roleModerator && affRank(a.aff) < affRank(affAdmin) {
			return module.Errorf(wire.ErrNotAllowed, "only admins may revoke moderator status")
		}
	case roleModerator:
		if affRank(a.aff) < affRank(affAdmin) {
			return module.Errorf(wire.ErrForbidden, "only admins may grant moderator status")
		}
	default:
		return module.Errorf(wire.ErrBadRequest, "unknown role %q", role)
	}
	return nil
}

// mayChangeAffiliation applies the tables of §9 and §10.
func (r *room) mayChangeAffiliation(a actor, target jid.JID, aff string) error {
	switch aff {
	case affOwner, affAdmin, affMember, affOutcast, affNone:
	default:
		return module.Errorf(wire.ErrBadRequest, "unknown affiliation %q", aff)
	}
	current := affNone
	if x, ok := r.affs[target.String()]; ok {
		current = x.Affiliation
	}
	switch {
	case a.aff == affOwner:
		// Owners may do anything but leave the room without an owner
		// (§10.9).
		if current == affOwner && aff != affOwner && len(r.affiliated(affOwner)) == 1 {
			return module.Errorf(wire.ErrConflict, "the room needs at least one owner")
		}
		return nil
	case a.aff == affAdmin:
		if aff == affOwner || aff == affAdmin || current == affOwner || current == affAdmin {
			return module.Errorf(wire.ErrNotAllowed, "only owners may change owners and admins")
		}
		return nil
	}
	return module.Errorf(wire.ErrForbidden, "only admins and owners may change affiliations")
}

// setRole changes an occupant's role and tells the room (§8.2-§9.7).
func (r *room) setRole(a actor, o *occupant, role, reason string) {
	if role == roleNone {
		// Kick (§8.2): status 307.
		r.removeOccupant(o, removal{codes: []int{307}, actor: r.actorElement(a), reason: reason})
		return
	}
	if o.role == role {
		return
	}
	wasShown := r.cfg.broadcasts(o.role)
	o.role = role
	if wasShown && !r.cfg.broadcasts(role) {
		r.hidePresence(o)
	}
	r.broadcastRoleChange(o, a, reason)
}

// broadcastRoleChange sends o's new presence to the room, its own
// sessions included.
func (r *room) broadcastRoleChange(o *occupant, a actor, reason string) {
	r.broadcastPresence(o, nil, o.bare)
	for _, s := range o.sessions {
		r.sendSelfPresence(o, s.full, nil)
	}
}

// actorElement is the <actor/> of a kick or ban: the nick in the room's
// own terms (anonymous rooms show no JIDs).
func (r *room) actorElement(a actor) *wire.Element {
	el := wire.NewElement(NSUser, "actor")
	if a.occ != nil {
		el.SetAttr("nick", a.occ.nick)
	}
	return el
}

// setAffiliation changes an affiliation, stores it, and applies its
// effect on an occupant (§9, §10).
func (r *room) setAffiliation(a actor, target jid.JID, aff, reason string) {
	key := target.String()
	prev := r.affs[key]
	if aff == affNone {
		delete(r.affs, key)
	} else {
		na := storage.MUCAffiliation{JID: key, Affiliation: aff, Reason: reason, Nick: prev.Nick,
			LastNick: prev.LastNick, Notify: prev.Notify}
		if aff == affOutcast {
			na.Nick, na.Notify = "", ""
		}
		r.affs[key] = na
	}
	err := r.saveAffiliation(storage.MUCAffiliation{JID: key, Affiliation: aff, Reason: reason, Nick: r.affs[key].Nick,
		LastNick: r.affs[key].LastNick, Notify: r.affs[key].Notify})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		r.m.log.Error("muc: saving affiliation", "room", r.key, "jid", key, "err", err)
	}
	affiliationChanges.Inc()
	r.affiliationChangedBy(a, key, reason)
}

// affiliationChanged applies an affiliation change to occupants of that
// bare JID (or domain) without an actor.
func (r *room) affiliationChanged(key string) { r.affiliationChangedBy(actor{}, key, "") }

func (r *room) affiliationChangedBy(a actor, key, reason string) {
	for _, o := range r.sortedOccupants() {
		if o.bare.String() != key && o.bare.Domainpart() != key {
			continue
		}
		aff := r.affiliation(o.bare)
		switch {
		case aff == affOutcast:
			// Ban (§9.1): status 301.
			r.removeOccupant(o, removal{codes: []int{301}, actor: r.actorElement(a), reason: reason})
		case r.cfg.MembersOnly && affRank(aff) < affRank(affMember):
			// Membership revoked in a members-only room (§9.4): 321.
			r.removeOccupant(o, removal{codes: []int{321}, actor: r.actorElement(a), reason: reason})
		default:
			o.role = r.defaultRoleKeeping(o, aff)
			r.broadcastRoleChange(o, a, reason)
		}
	}
}

// defaultRoleKeeping is the role after an affiliation change: the
// default role of the new affiliation, but a participant or moderator
// granted by a moderator keeps it when the new default is lower.
func (r *room) defaultRoleKeeping(o *occupant, aff string) string {
	def := r.defaultRole(aff)
	if roleRank(o.role) > roleRank(def) && affRank(aff) < affRank(affAdmin) && o.role != roleModerator {
		return o.role
	}
	return def
}

func roleRank(role string) int {
	switch role {
	case roleModerator:
		return 3
	case roleParticipant:
		return 2
	case roleVisitor:
		return 1
	}
	return 0
}
