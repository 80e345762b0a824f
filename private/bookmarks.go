package private

import (
	"bytes"
	"context"
	"errors"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// toPEP mirrors the conferences of a storage:bookmarks element into the
// urn:xmpp:bookmarks:1 PEP node: one item per room JID (XEP-0411 §3 with
// the XEP-0402 format); rooms no longer listed are retracted. m.mu is held.
func (m *Module) toPEP(ctx context.Context, owner string, stor *wire.Element) error {
	want := map[string][]byte{}
	var order []string
	for _, c := range stor.ChildrenNamed(NSBookmarks, "conference") {
		room := c.AttrValue("jid")
		if room == "" {
			continue
		}
		if _, dup := want[room]; !dup {
			order = append(order, room)
		}
		want[room] = ToBookmarks2(c).Bytes()
	}
	have, err := m.cfg.PEP.Items(ctx, owner, NSBookmarks2)
	if err != nil {
		return err
	}
	old := map[string][]byte{}
	for _, it := range have {
		old[it.ID] = it.Payload
	}
	var errs []error
	for _, room := range order {
		if p, ok := old[room]; ok && bytes.Equal(p, want[room]) {
			continue
		}
		errs = append(errs, m.cfg.PEP.PublishItem(ctx, owner, NSBookmarks2, room, want[room]))
	}
	for _, it := range have {
		if _, keep := want[it.ID]; !keep {
			errs = append(errs, m.cfg.PEP.RetractItem(ctx, owner, NSBookmarks2, it.ID))
		}
	}
	return errors.Join(errs...)
}

// OnPEPPublish updates the private XML copy of the bookmarks after a
// client published to urn:xmpp:bookmarks:1; wire it as pep
// Config.OnPublish. Other nodes are ignored.
func (m *Module) OnPEPPublish(ctx context.Context, owner, node, id string, payload []byte) {
	if node != NSBookmarks2 || m.cfg.PEP == nil {
		return
	}
	st, err := wire.Parse(payload, wire.Limits{})
	if err != nil {
		m.log.Warn("private: bookmark payload", "owner", owner, "err", err)
		return
	}
	conf := st.Tree()
	if conf.Name.Space != NSBookmarks2 || conf.Name.Local != "conference" {
		return
	}
	if err := m.updateLegacy(ctx, owner, id, FromBookmarks2(id, conf)); err != nil {
		m.log.Warn("private: bookmarks from PEP", "owner", owner, "err", err)
	}
}

// OnPEPRetract removes a retracted urn:xmpp:bookmarks:1 item from the
// private XML copy; wire it as pep Config.OnRetract.
func (m *Module) OnPEPRetract(ctx context.Context, owner, node, id string) {
	if node != NSBookmarks2 || m.cfg.PEP == nil {
		return
	}
	if err := m.updateLegacy(ctx, owner, id, nil); err != nil {
		m.log.Warn("private: bookmarks from PEP", "owner", owner, "err", err)
	}
}

// updateLegacy replaces (conf != nil) or removes the conference of room in
// the stored storage:bookmarks element, keeping everything else.
func (m *Module) updateLegacy(ctx context.Context, owner, room string, conf *wire.Element) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	stor := wire.NewElement(NSBookmarks, "storage")
	raw, err := m.store.PrivateXML(ctx, owner, NSBookmarks)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if conf == nil {
			return nil
		}
	case err != nil:
		return err
	default:
		st, err := wire.Parse(raw, wire.Limits{})
		if err != nil {
			return err
		}
		stor = st.Tree()
	}
	out := stor.Children[:0:0]
	replaced := false
	for _, n := range stor.Children {
		if n.Elem != nil && n.Elem.Name.Space == NSBookmarks && n.Elem.Name.Local == "conference" && n.Elem.AttrValue("jid") == room {
			if conf != nil && !replaced {
				out = append(out, wire.Node{Elem: conf})
				replaced = true
			}
			continue
		}
		out = append(out, n)
	}
	if conf != nil && !replaced {
		out = append(out, wire.Node{Elem: conf})
	}
	stor.Children = out
	return m.store.SetPrivateXML(ctx, owner, NSBookmarks, stor.Bytes())
}

func isTrue(s string) bool { return s == "true" || s == "1" }

// ToBookmarks2 converts a XEP-0048 conference to the XEP-0402 payload (the
// room JID becomes the item id).
func ToBookmarks2(c *wire.Element) *wire.Element {
	out := wire.NewElement(NSBookmarks2, "conference")
	if n := c.AttrValue("name"); n != "" {
		out.SetAttr("name", n)
	}
	if isTrue(c.AttrValue("autojoin")) {
		out.SetAttr("autojoin", "true")
	}
	if nick := c.Child(NSBookmarks, "nick"); nick != nil {
		out.Add(wire.NewElement(NSBookmarks2, "nick").AddText(nick.Text()))
	}
	if pw := c.Child(NSBookmarks, "password"); pw != nil {
		out.Add(wire.NewElement(NSBookmarks2, "password").AddText(pw.Text()))
	}
	return out
}

// FromBookmarks2 converts a XEP-0402 conference of room to XEP-0048.
func FromBookmarks2(room string, c *wire.Element) *wire.Element {
	out := wire.NewElement(NSBookmarks, "conference", "jid", room)
	if n := c.AttrValue("name"); n != "" {
		out.SetAttr("name", n)
	}
	if isTrue(c.AttrValue("autojoin")) {
		out.SetAttr("autojoin", "true")
	}
	if nick := c.Child(NSBookmarks2, "nick"); nick != nil {
		out.Add(wire.NewElement(NSBookmarks, "nick").AddText(nick.Text()))
	}
	if pw := c.Child(NSBookmarks2, "password"); pw != nil {
		out.Add(wire.NewElement(NSBookmarks, "password").AddText(pw.Text()))
	}
	return out
}
