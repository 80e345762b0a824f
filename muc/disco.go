package muc

import (
	"slices"
	"strconv"
	"strings"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const nsRSM = xep.NSRSM

// roomFeatures are the disco#info features of a room for its
// configuration (§6.4, §17.2).
func (r *room) roomFeatures() []string {
	c := r.cfg
	f := []string{NS, xep.NSDiscoInfo, xep.NSDiscoItems, NSOccupantID, nsSelfPing, nsStableID, xep.NSSID,
		NSModerate, nsModerate0, xep.NSVCard, xep.NSRegister, xep.NSPing, NSConference}
	pick := func(b bool, yes, no string) {
		if b {
			f = append(f, yes)
		} else {
			f = append(f, no)
		}
	}
	pick(c.Persistent, "muc_persistent", "muc_temporary")
	pick(c.Public, "muc_public", "muc_hidden")
	pick(c.MembersOnly, "muc_membersonly", "muc_open")
	pick(c.Moderated, "muc_moderated", "muc_unmoderated")
	pick(c.Password != "", "muc_passwordprotected", "muc_unsecured")
	pick(c.NonAnonymous(), "muc_nonanonymous", "muc_semianonymous")
	if c.Archive {
		f = append(f, NSMAM, xep.NSMAMExtended)
	}
	if r.locked {
		f = append(f, "muc_unconfigured")
	}
	slices.Sort(f)
	return f
}

// discoInfo answers disco#info of the room (§6.4) with the muc#roominfo
// form. A hidden members-only room answers only its members (§6.3).
func (r *room) discoInfo(ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	if err := r.mayDiscover(ev); err != nil {
		return nil, err
	}
	q := ev.Stanza.Tree().FirstElement()
	node := q.AttrValue("node")
	out := wire.NewElement(xep.NSDiscoInfo, "query")
	if node != "" {
		if node != nsDiscoInfoNode {
			return nil, module.Err(wire.ErrItemNotFound)
		}
		// §6.? traffic: no special traffic is handled.
		return out.SetAttr("node", node), nil
	}
	name := r.cfg.Name
	if name == "" {
		name = r.jid.Localpart()
	}
	out.Add(wire.NewElement(xep.NSDiscoInfo, "identity", "category", "conference", "type", "text", "name", name))
	for _, f := range r.roomFeatures() {
		out.Add(wire.NewElement(xep.NSDiscoInfo, "feature", "var", f))
	}
	x := wire.NewElement(xep.NSDataForms, "x", "type", "result").Add(
		formType(nsRoomInfo),
		field("", "muc#roominfo_description", "Description", r.cfg.Description),
		field("", "muc#roominfo_subject", "Subject", r.subject),
		field("", "muc#roominfo_occupants", "Number of occupants", strconv.Itoa(len(r.occupants))),
		field("", "muc#roominfo_lang", "Language", r.cfg.Language),
		field("", "muc#roomconfig_roomname", "Name", r.cfg.Name),
		field("", "muc#roomconfig_changesubject", "Occupants may change the subject", boolValue(r.cfg.ChangeSubject)),
		field("", "muc#roomconfig_allowinvites", "Occupants may invite", boolValue(r.cfg.AllowInvites)),
		field("", "muc#roomconfig_allowpm", "Who may send private messages", r.cfg.AllowPM),
		field("", "muc#maxhistoryfetch", "Messages sent to new occupants", strconv.Itoa(r.cfg.HistoryLength)),
	)
	if len(r.avatar) > 0 {
		x.Add(field("text-multi", "muc#roominfo_avatarhash", "Avatar hash", r.avatar...))
	}
	if r.cfg.MembersOnly || r.cfg.NonAnonymous() {
		// Who to ask about membership.
		x.Add(field("jid-multi", "muc#roominfo_contactjid", "Contact addresses", r.contactJIDs()...))
	}
	out.Add(x)
	return out, nil
}

// contactJIDs are the owners' JIDs in rooms where JIDs may be shown.
func (r *room) contactJIDs() []string {
	if !r.cfg.NonAnonymous() {
		return nil
	}
	return r.affiliated(affOwner)
}

// mayDiscover hides rooms from those who may not know about them: a
// hidden room answers only its members and occupants.
func (r *room) mayDiscover(ev *module.Event) error {
	if r.locked && r.affiliation(ev.From) != affOwner {
		return module.Errorf(wire.ErrItemNotFound, "no such room")
	}
	if r.cfg.Public || r.occupantOf(ev.From) != nil || affRank(r.affiliation(ev.From)) >= affRank(affMember) {
		return nil
	}
	if !r.cfg.MembersOnly {
		return nil // a hidden open room: whoever knows its name may join
	}
	return module.Errorf(wire.ErrItemNotFound, "no such room")
}

// discoItems lists occupants (§6.5) to those allowed to see them:
// occupants, or anyone in a public non-anonymous room; others get an
// empty list.
func (r *room) discoItems(ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	if err := r.mayDiscover(ev); err != nil {
		return nil, err
	}
	q := ev.Stanza.Tree().FirstElement()
	if q.AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	out := wire.NewElement(xep.NSDiscoItems, "query")
	if r.occupantOf(ev.From) == nil && !(r.cfg.Public && r.cfg.NonAnonymous()) {
		return out, nil
	}
	for _, o := range r.sortedOccupants() {
		out.Add(wire.NewElement(xep.NSDiscoItems, "item", "jid", r.key+"/"+o.nick))
	}
	return out, nil
}

// rsmPage applies an XEP-0059 <set/> of q to a sorted list (the service's
// room list, §6.3 with RSM).
func rsmPage(keys []string, q *wire.Element) ([]string, *wire.Element, error) {
	set := q.Child(nsRSM, "set")
	if set == nil {
		return keys, nil, nil
	}
	max := len(keys)
	if m := set.Child(nsRSM, "max"); m != nil {
		n, err := strconv.Atoi(strings.TrimSpace(m.Text()))
		if err != nil || n < 0 {
			return nil, nil, module.Errorf(wire.ErrBadRequest, "RSM <max/> must be a non-negative integer")
		}
		max = n
	}
	start, end := 0, len(keys)
	switch {
	case set.Child(nsRSM, "after") != nil:
		after := set.ChildText(nsRSM, "after")
		i, found := slices.BinarySearch(keys, after)
		if found {
			i++
		}
		start = i
		end = min(len(keys), start+max)
	case set.Child(nsRSM, "before") != nil:
		before := set.ChildText(nsRSM, "before")
		if before != "" {
			end, _ = slices.BinarySearch(keys, before)
		}
		start = max0(end - max)
	case set.Child(nsRSM, "index") != nil:
		n, err := strconv.Atoi(strings.TrimSpace(set.ChildText(nsRSM, "index")))
		if err != nil || n < 0 {
			return nil, nil, module.Errorf(wire.ErrBadRequest, "RSM <index/> must be a non-negative integer")
		}
		start = min(n, len(keys))
		end = min(len(keys), start+max)
	default:
		end = min(len(keys), max)
	}
	page := keys[start:end]
	out := wire.NewElement(nsRSM, "set")
	if len(page) > 0 {
		out.Add(wire.NewElement(nsRSM, "first", "index", strconv.Itoa(start)).AddText(page[0]))
		out.Add(wire.NewElement(nsRSM, "last").AddText(page[len(page)-1]))
	}
	out.Add(wire.NewElement(nsRSM, "count").AddText(strconv.Itoa(len(keys))))
	return page, out, nil
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}
