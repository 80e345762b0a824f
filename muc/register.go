package muc

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// register answers §7.10: registering with a room reserves a nick, makes
// the user a member, and holds the user's notification choice for when
// they are away.
func (r *room) register(ev *module.Event) (*wire.Element, error) {
	from := ev.From.Bare()
	key := from.String()
	aff := r.affiliation(ev.From)
	if aff == affOutcast {
		return nil, module.Errorf(wire.ErrForbidden, "you are banned from this room")
	}
	if r.locked {
		return nil, module.Errorf(wire.ErrItemNotFound, "no such room")
	}
	a, has := r.affs[key]
	q := ev.Stanza.Tree().FirstElement()
	if ev.Stanza.Type == "get" {
		out := wire.NewElement(xep.NSRegister, "query")
		if has && a.Nick != "" {
			out.Add(wire.NewElement(xep.NSRegister, "registered"), wire.NewElement(xep.NSRegister, "username").AddText(a.Nick))
		}
		if r.cfg.MembersOnly && affRank(aff) < affRank(affMember) {
			return nil, module.Errorf(wire.ErrRegistrationRequired, "only members may register with this room")
		}
		out.Add(wire.NewElement(xep.NSRegister, "instructions").AddText(
			"Reserve your nick in this room; choose when you are notified while away."))
		out.Add(r.registerForm(a))
		return out, nil
	}
	if q.Child(xep.NSRegister, "remove") != nil {
		if !has {
			return nil, module.Errorf(wire.ErrItemNotFound, "you are not registered with this room")
		}
		if aff == affMember {
			if err := r.mayChangeAffiliation(actor{aff: affOwner}, from, affNone); err != nil {
				return nil, err
			}
			r.setAffiliation(actor{}, from, affNone, "")
			return nil, nil
		}
		a.Nick, a.Notify = "", ""
		r.affs[key] = a
		return nil, r.saveAffiliation(a)
	}
	if r.cfg.MembersOnly && affRank(aff) < affRank(affMember) {
		return nil, module.Errorf(wire.ErrRegistrationRequired, "only members may register with this room")
	}
	x := q.Child(xep.NSDataForms, "x")
	if x == nil || x.AttrValue("type") != "submit" {
		return nil, module.Errorf(wire.ErrBadRequest, "submit the registration form")
	}
	vals := formValues(x)
	nick := strings.TrimSpace(first(vals["muc#register_roomnick"]))
	if nick == "" {
		return nil, module.Errorf(wire.ErrNotAcceptable, "a nick is required")
	}
	if j, err := jid.New("x", "example", nick); err != nil || len(nick) > maxNickBytes || j.Resourcepart() != nick {
		return nil, module.Errorf(wire.ErrJIDMalformed, "this nick is not allowed")
	}
	if holder := r.nickHolder(nick); holder != "" && holder != key {
		return nil, module.Errorf(wire.ErrConflict, "this nick is registered by another user")
	}
	if o := r.occupants[nick]; o != nil && !o.bare.Equal(from) {
		return nil, module.Errorf(wire.ErrConflict, "this nick is used by another occupant")
	}
	notify := a.Notify
	if v, ok := vals[fieldNotify]; ok {
		switch n := first(v); n {
		case "", NotifyMentions, NotifyAll, NotifyNone:
			notify = n
		default:
			return nil, module.Errorf(wire.ErrNotAcceptable, "%s: expected mentions, all or none", fieldNotify)
		}
	} else if v, ok := vals[fieldTigaseOffline]; ok {
		if b, _ := parseBool(first(v)); b {
			notify = NotifyAll
		} else if notify == NotifyAll {
			notify = ""
		}
	}
	if !has || a.Affiliation == "" {
		a = storage.MUCAffiliation{JID: key, Affiliation: affMember, LastNick: a.LastNick}
	}
	a.Nick, a.Notify = nick, notify
	if !r.stored && r.cfg.Persistent {
		_ = r.save()
	}
	r.affs[key] = a
	if err := r.saveAffiliation(a); err != nil {
		return nil, err
	}
	if !has {
		affiliationChanges.Inc()
		r.affiliationChanged(key)
	}
	return nil, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// registerForm is the muc#register form (§7.10.2) with the notification
// choices.
func (r *room) registerForm(a storage.MUCAffiliation) *wire.Element {
	x := wire.NewElement(xep.NSDataForms, "x", "type", "form")
	x.Add(wire.NewElement(xep.NSDataForms, "title").AddText("Registration with " + r.key))
	nick := field("text-single", "muc#register_roomnick", "Nick", a.Nick)
	nick.Add(wire.NewElement(xep.NSDataForms, "required"))
	x.Add(formType(nsRegister), nick,
		options(field("list-single", fieldNotify, "Notify me while I am away", a.Notify),
			"", "As the room decides ("+r.cfg.Notify+")", NotifyMentions, "When my nick is mentioned",
			NotifyAll, "For every message", NotifyNone, "Never"),
		field("boolean", fieldTigaseOffline, "Notify me of every message while I am offline", boolValue(a.Notify == NotifyAll)),
	)
	return x
}

// vcard answers vcard-temp on the room (XEP-0054, XEP-0486): anyone who
// may see the room reads it, owners set it.
func (r *room) vcard(ev *module.Event) (*wire.Element, error) {
	if err := r.mayDiscover(ev); err != nil {
		return nil, err
	}
	if ev.Stanza.Type == "get" {
		raw, err := r.m.store.VCard(r.ctx(), r.key)
		if err != nil || len(raw) == 0 {
			return wire.NewElement(xep.NSVCard, "vCard"), nil
		}
		st, err := wire.Parse(raw, wire.Limits{MaxStanzaBytes: len(raw) + 1})
		if err != nil {
			return wire.NewElement(xep.NSVCard, "vCard"), nil
		}
		return st.Tree(), nil
	}
	if r.affiliation(ev.From) != affOwner {
		return nil, module.Errorf(wire.ErrForbidden, "only owners may set the room's avatar")
	}
	v := ev.Stanza.Tree().FirstElement()
	raw := v.AppendXML(nil, "")
	if err := r.m.store.SetVCard(r.ctx(), r.key, raw); err != nil {
		return nil, err
	}
	old := strings.Join(r.avatar, ",")
	r.avatar = photoHashes(v)
	if strings.Join(r.avatar, ",") != old {
		r.statusMessage([]int{104})
		for _, o := range r.occupants {
			for _, s := range o.sessions {
				r.sendAvatarPresence(s.full, len(r.avatar) == 0)
			}
		}
	}
	return nil, nil
}

// loadAvatar computes the avatar hashes of a stored room vCard.
func (r *room) loadAvatar(ctx context.Context) {
	raw, err := r.m.store.VCard(ctx, r.key)
	if err != nil || len(raw) == 0 {
		return
	}
	if st, err := wire.Parse(raw, wire.Limits{MaxStanzaBytes: len(raw) + 1}); err == nil {
		r.avatar = photoHashes(st.Tree())
	}
}

// photoHashes are the SHA-1 hashes (XEP-0153) of a vCard's photos.
func photoHashes(v *wire.Element) []string {
	var out []string
	for _, p := range v.ChildrenNamed(xep.NSVCard, "PHOTO") {
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.ChildText(xep.NSVCard, "BINVAL")), ""))
		if err != nil || len(data) == 0 {
			continue
		}
		sum := sha1.Sum(data)
		out = append(out, hex.EncodeToString(sum[:]))
	}
	return out
}

// sendAvatarPresence sends the room's avatar hash as presence from the
// room's bare JID (XEP-0486 §3.5, what Conversations and Prosody use).
// removed: the avatar was just removed (an empty photo says so).
func (r *room) sendAvatarPresence(to jid.JID, removed bool) {
	if len(r.avatar) == 0 && !removed {
		return
	}
	photo := wire.NewElement(nsVCardUpdate, "photo")
	if len(r.avatar) > 0 {
		photo.AddText(r.avatar[0])
	}
	p := wire.NewElement(wire.NSClient, "presence", "from", r.key, "to", to.String()).Add(
		wire.NewElement(nsVCardUpdate, "x").Add(photo))
	r.m.send(wire.FromElement(p))
}
