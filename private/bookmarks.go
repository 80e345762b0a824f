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

// The bookmarks live in three places, kept equal whichever one a client
// writes (XEP-0411, XEP-0402 §5.3):
//   - private XML storage:bookmarks (XEP-0049, old clients),
//   - the PEP node storage:bookmarks, item "current" holding the same
//     <storage/> element (XEP-0048 1.1 over XEP-0223, urn:xmpp:bookmarks:1#compat-pep),
//   - the PEP node urn:xmpp:bookmarks:1, one item per room (XEP-0402).
// Writes the server makes on the owner's behalf (PEP Module.PublishItem)
// notify the owner's and subscribers' clients but do not come back here.

// legacyItem is the item of the storage:bookmarks PEP node (XEP-0048 §3.3).
const legacyItem = "current"

// toLegacyPEP publishes stor as the storage:bookmarks PEP node's item,
// unless it holds that already. m.mu is held.
func (m *Module) toLegacyPEP(ctx context.Context, owner string, stor *wire.Element) error {
	raw := stor.Bytes()
	have, err := m.cfg.PEP.Items(ctx, owner, NSBookmarks)
	if err != nil {
		return err
	}
	for _, it := range have {
		if it.ID == legacyItem && bytes.Equal(it.Payload, raw) {
			return nil
		}
	}
	return m.cfg.PEP.PublishItem(ctx, owner, NSBookmarks, legacyItem, raw)
}

// OnPEPPublish brings the other two copies of the bookmarks up to date
// after a client published to urn:xmpp:bookmarks:1 or storage:bookmarks;
// wire it as pep Config.OnPublish. Other nodes are ignored.
func (m *Module) OnPEPPublish(ctx context.Context, owner, node, id string, payload []byte) {
	if (node != NSBookmarks2 && node != NSBookmarks) || m.cfg.PEP == nil {
		return
	}
	st, err := wire.Parse(payload, wire.Limits{})
	if err != nil {
		m.log.Warn("private: bookmark payload", "owner", owner, "err", err)
		return
	}
	el := st.Tree()
	switch {
	case node == NSBookmarks2 && el.Name.Space == NSBookmarks2 && el.Name.Local == "conference":
		err = m.updateLegacy(ctx, owner, id, FromBookmarks2(id, el))
	case node == NSBookmarks && el.Name.Space == NSBookmarks && el.Name.Local == "storage":
		err = m.fromLegacyPEP(ctx, owner, el)
	default:
		return
	}
	if err != nil {
		m.log.Warn("private: bookmarks from PEP", "owner", owner, "node", node, "err", err)
	}
}

// OnPEPRetract removes a retracted urn:xmpp:bookmarks:1 item from the
// other copies, and takes a retracted storage:bookmarks item as an empty
// list; wire it as pep Config.OnRetract.
func (m *Module) OnPEPRetract(ctx context.Context, owner, node, id string) {
	if m.cfg.PEP == nil {
		return
	}
	var err error
	switch {
	case node == NSBookmarks2:
		err = m.updateLegacy(ctx, owner, id, nil)
	case node == NSBookmarks && id == legacyItem:
		err = m.fromLegacyPEP(ctx, owner, wire.NewElement(NSBookmarks, "storage"))
	default:
		return
	}
	if err != nil {
		m.log.Warn("private: bookmarks from PEP", "owner", owner, "node", node, "err", err)
	}
}

// fromLegacyPEP stores a <storage/> a client published to the
// storage:bookmarks PEP node in private XML and mirrors its rooms into
// urn:xmpp:bookmarks:1.
func (m *Module) fromLegacyPEP(ctx context.Context, owner string, stor *wire.Element) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	raw := stor.Bytes()
	if len(raw) > m.cfg.MaxBytes {
		m.log.Warn("private: bookmarks from PEP too big for private XML", "owner", owner, "bytes", len(raw))
	} else if err := m.checkQuota(ctx, owner, NSBookmarks, len(raw)); err != nil {
		m.log.Warn("private: bookmarks from PEP not copied to private XML", "owner", owner, "err", err)
	} else if err := m.store.SetPrivateXML(ctx, owner, NSBookmarks, raw); err != nil {
		return err
	}
	return m.toPEP(ctx, owner, stor)
}

// updateLegacy replaces (conf != nil) or removes the conference of room in
// the stored storage:bookmarks element, keeping everything else, and
// publishes the result to the storage:bookmarks PEP node.
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
	if err := m.store.SetPrivateXML(ctx, owner, NSBookmarks, stor.Bytes()); err != nil {
		return err
	}
	return m.toLegacyPEP(ctx, owner, stor)
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

// migrate runs when a session is bound: bookmarks stored in private XML
// before they were mirrored (older data, or a store copied in) are
// published to the PEP nodes that lack them, before the client reads
// them (XEP-0411 §5). Each account is looked at once per process.
func (m *Module) migrate(ctx context.Context, owner string) {
	if _, done := m.migrated.LoadOrStore(owner, true); done {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	legacy, err := m.cfg.PEP.Items(ctx, owner, NSBookmarks)
	if err != nil || len(legacy) > 0 {
		return
	}
	raw, err := m.store.PrivateXML(ctx, owner, NSBookmarks)
	if err != nil {
		return
	}
	st, err := wire.Parse(raw, wire.Limits{})
	if err != nil {
		return
	}
	if err := errors.Join(m.toLegacyPEP(ctx, owner, st.Tree()), m.toPEP(ctx, owner, st.Tree())); err != nil {
		m.log.Warn("private: publishing stored bookmarks to PEP", "owner", owner, "err", err)
	}
}
