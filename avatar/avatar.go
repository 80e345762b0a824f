// Package avatar converts between PEP avatars (XEP-0084) and vCard
// avatars (XEP-0153) on the user's behalf, as XEP-0398 describes: a
// published avatar becomes the vcard-temp PHOTO, a vCard PHOTO is
// published to the avatar nodes, removing one removes the other, and the
// server puts the avatar's hash into the user's available presence
// (<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>).
//
// The module talks to PEP through the PEP interface (*pep.Module) and
// learns about publications and vCard updates through callbacks wired in
// server/modules.go (pep Config.OnPublish/OnRetract → OnPEPPublish and
// OnPEPRetract; basic Config.OnVCardSet → OnVCardSet). Conversions write
// to the other side with calls that fire no callback (pep PublishItem,
// storage SetVCard), so they cannot loop.
package avatar

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	_ "image/gif" // image.DecodeConfig for avatar dimensions
	_ "image/jpeg"
	_ "image/png"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces and nodes.
const (
	NSConversion = xep.NSPEPVCardConversion // XEP-0398
	NSUpdate     = xep.NSVCardUpdate        // XEP-0153
	NodeData     = xep.NSAvatarData         // XEP-0084
	NodeMetadata = xep.NSAvatarMetadata     // XEP-0084
)

// PEP is what the conversion needs from the PEP service; *pep.Module
// implements it.
type PEP interface {
	PublishItem(ctx context.Context, owner, node, id string, payload []byte) error
	RetractItem(ctx context.Context, owner, node, id string) error
	Items(ctx context.Context, owner, node string) ([]storage.PEPItem, error)
	// AccessModel returns a node's access model, "" when it does not
	// exist.
	AccessModel(ctx context.Context, owner, node string) (string, error)
}

// Config configures the module.
type Config struct {
	// PEP enables the conversion (nil: only the presence hash of vCard
	// avatars is injected).
	PEP    PEP
	Logger *slog.Logger
}

// Module implements module.Module.
type Module struct {
	cfg      Config
	vcards   storage.VCards
	log      *slog.Logger
	sessions module.Sessions

	locks [32]sync.Mutex // conversions of one owner are serialized (striped by owner)

	mu     sync.Mutex
	hashes map[string]string // bare JID with bound sessions → avatar hash ("" none)
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config, vcards storage.VCards) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{cfg: cfg, vcards: vcards, log: cfg.Logger, hashes: map[string]string{}}
}

// Name implements module.Module.
func (m *Module) Name() string { return "avatar" }

// Register implements module.Module. The module must come before im in
// the module list: im's presence hook ends the outbound chain.
func (m *Module) Register(r *module.Registry) error {
	m.sessions = r.Sessions()
	if m.cfg.PEP != nil {
		r.AccountFeature(NSConversion)
	}
	r.Outbound(m.outboundPresence)
	r.OnUnbound(func(_ context.Context, s module.Session) {
		bare := s.JID().Bare()
		if len(m.sessions.Resources(bare)) > 0 {
			return
		}
		m.mu.Lock()
		delete(m.hashes, bare.String())
		m.mu.Unlock()
	})
	return nil
}

func (m *Module) lock(owner string) func() {
	h := fnv.New32a()
	h.Write([]byte(owner))
	l := &m.locks[h.Sum32()%uint32(len(m.locks))]
	l.Lock()
	return l.Unlock
}

// Hash is the XEP-0084 item id and XEP-0153 photo hash of image bytes:
// SHA-1, lower-case hex.
func Hash(img []byte) string {
	sum := sha1.Sum(img)
	return hex.EncodeToString(sum[:])
}

// decodeBase64 decodes base64 text that may be wrapped (vCard BINVAL).
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

func parse(raw []byte) (*wire.Element, error) {
	st, err := wire.Parse(raw, wire.Limits{MaxStanzaBytes: len(raw) + 1})
	if err != nil {
		return nil, err
	}
	return st.Tree(), nil
}

// vcardPhoto returns the image bytes and type of a vCard's PHOTO; found
// is false when there is no PHOTO with a BINVAL.
func vcardPhoto(vc *wire.Element) (img []byte, typ string, found bool, err error) {
	p := vc.Child(xep.NSVCard, "PHOTO")
	if p == nil {
		return nil, "", false, nil
	}
	bin := p.Child(xep.NSVCard, "BINVAL")
	if bin == nil || strings.TrimSpace(bin.Text()) == "" {
		return nil, "", false, nil
	}
	img, err = decodeBase64(bin.Text())
	if err != nil {
		return nil, "", false, fmt.Errorf("PHOTO BINVAL: %w", err)
	}
	return img, strings.TrimSpace(p.ChildText(xep.NSVCard, "TYPE")), true, nil
}

// hashOf returns owner's avatar hash as its stored vCard has it ("" for
// none), cached while owner has sessions.
func (m *Module) hashOf(ctx context.Context, owner string) (string, error) {
	m.mu.Lock()
	h, ok := m.hashes[owner]
	m.mu.Unlock()
	if ok {
		return h, nil
	}
	raw, err := m.vcards.VCard(ctx, owner)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return "", err
	default:
		vc, err := parse(raw)
		if err != nil {
			return "", err
		}
		if img, _, found, err := vcardPhoto(vc); err == nil && found {
			h = Hash(img)
		}
	}
	m.setHash(owner, h)
	return h, nil
}

// setHash records owner's current hash while owner has sessions.
func (m *Module) setHash(owner, h string) {
	m.mu.Lock()
	m.hashes[owner] = h
	m.mu.Unlock()
}

func (m *Module) forget(owner string) {
	m.mu.Lock()
	delete(m.hashes, owner)
	m.mu.Unlock()
}

// outboundPresence puts the avatar hash into available presence from the
// user's clients, broadcast or directed (XEP-0398 §4): added when there is
// no vcard-temp:x:update element, and replacing one without a photo or
// with another hash; a client's empty <photo/> is left alone.
func (m *Module) outboundPresence(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "presence" || st.Type != "" || ev.Origin.Kind != module.FromClient || ev.From.Localpart() == "" {
		return module.Continue
	}
	x := st.Child(NSUpdate, "x")
	var photo *wire.Element
	if x != nil {
		photo = x.Child(NSUpdate, "photo")
		if photo != nil && strings.TrimSpace(photo.Text()) == "" {
			return module.Continue
		}
	}
	h, err := m.hashOf(ctx, ev.From.Bare().String())
	if err != nil {
		m.log.Warn("avatar: loading vCard for presence", "user", ev.From.Bare().String(), "err", err)
		return module.Continue
	}
	switch {
	case h == "" && x == nil, h == "" && photo != nil:
		// No avatar known: the client's claim stands (XEP-0398: MAY).
		return module.Continue
	case photo != nil && strings.EqualFold(strings.TrimSpace(photo.Text()), h):
		return module.Continue
	}
	ev.Stanza = withHash(st, h)
	return module.Continue
}

// withHash returns p with its vcard-temp:x:update element replaced by (or
// added as) one carrying hash h ("" for an empty <photo/>).
func withHash(p *wire.Stanza, h string) *wire.Stanza {
	x := wire.NewElement(NSUpdate, "x").Add(wire.NewElement(NSUpdate, "photo").AddText(h))
	if p.Child(NSUpdate, "x") == nil {
		return p.WithChild(x)
	}
	t := p.Tree().Copy()
	t.RemoveChildren(NSUpdate, "x")
	return wire.FromElement(t.Add(x))
}

// OnPEPPublish converts a client's avatar metadata publication to the
// vCard (XEP-0398 §3.1); wire it as pep Config.OnPublish. Other nodes are
// ignored.
func (m *Module) OnPEPPublish(ctx context.Context, owner, node, id string, payload []byte) {
	if node != NodeMetadata || m.cfg.PEP == nil {
		return
	}
	defer m.lock(owner)()
	if err := m.fromPEP(ctx, owner, payload); err != nil {
		m.log.Warn("avatar: PEP avatar to vCard", "owner", owner, "err", err)
	}
}

// OnPEPRetract clears the vCard photo when a client retracts the metadata
// item of the current avatar; wire it as pep Config.OnRetract.
func (m *Module) OnPEPRetract(ctx context.Context, owner, node, id string) {
	if node != NodeMetadata || m.cfg.PEP == nil {
		return
	}
	defer m.lock(owner)()
	h, err := m.hashOf(ctx, owner)
	if err != nil || !strings.EqualFold(h, id) {
		return
	}
	if err := m.setVCardPhoto(ctx, owner, "", nil); err != nil {
		m.log.Warn("avatar: clearing vCard photo", "owner", owner, "err", err)
	}
}

func (m *Module) fromPEP(ctx context.Context, owner string, payload []byte) error {
	md, err := parse(payload)
	if err != nil {
		return err
	}
	if md.Name.Space != NodeMetadata || md.Name.Local != "metadata" {
		return nil
	}
	infos := md.ChildrenNamed(NodeMetadata, "info")
	if len(infos) == 0 {
		// Avatar publishing disabled (XEP-0084 §4.2.2).
		return m.setVCardPhoto(ctx, owner, "", nil)
	}
	var info *wire.Element
	for _, in := range infos {
		if in.AttrValue("url") == "" && in.AttrValue("id") != "" {
			info = in
			break
		}
	}
	if info == nil {
		return nil // only external images: nothing to copy
	}
	// XEP-0398 §6: copy only avatars that are public anyway.
	am, err := m.cfg.PEP.AccessModel(ctx, owner, NodeData)
	if err != nil {
		return err
	}
	if am != "open" {
		m.log.Debug("avatar: data node is not open; vCard left alone", "owner", owner, "access_model", am)
		return nil
	}
	id := info.AttrValue("id")
	its, err := m.cfg.PEP.Items(ctx, owner, NodeData)
	if err != nil {
		return err
	}
	var img []byte
	for _, it := range its {
		if it.ID != id {
			continue
		}
		d, err := parse(it.Payload)
		if err != nil {
			return err
		}
		if img, err = decodeBase64(d.Text()); err != nil {
			return fmt.Errorf("avatar data %s: %w", id, err)
		}
	}
	if img == nil {
		return fmt.Errorf("metadata names item %s, not in %s", id, NodeData)
	}
	if !strings.EqualFold(Hash(img), id) {
		return fmt.Errorf("avatar data %s has SHA-1 %s", id, Hash(img))
	}
	typ := info.AttrValue("type")
	if typ == "" {
		typ = sniff(img)
	}
	return m.setVCardPhoto(ctx, owner, typ, img)
}

// setVCardPhoto replaces the PHOTO of owner's vCard (removes it when img
// is nil) unless it already holds that image, and records the new hash.
func (m *Module) setVCardPhoto(ctx context.Context, owner, typ string, img []byte) error {
	raw, err := m.vcards.VCard(ctx, owner)
	var vc *wire.Element
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if img == nil {
			m.setHashIfOnline(owner, "")
			return nil
		}
		vc = wire.NewElement(xep.NSVCard, "vCard")
	case err != nil:
		return err
	default:
		if vc, err = parse(raw); err != nil {
			return err
		}
	}
	old, oldTyp, found, _ := vcardPhoto(vc)
	switch {
	case img == nil && vc.Child(xep.NSVCard, "PHOTO") == nil:
		m.setHashIfOnline(owner, "")
		return nil
	case img != nil && found && bytes.Equal(old, img) && (typ == "" || typ == oldTyp):
		m.setHashIfOnline(owner, Hash(img))
		return nil
	}
	vc.RemoveChildren(xep.NSVCard, "PHOTO")
	h := ""
	if img != nil {
		p := wire.NewElement(xep.NSVCard, "PHOTO")
		if typ != "" {
			p.Add(wire.NewElement(xep.NSVCard, "TYPE").AddText(typ))
		}
		p.Add(wire.NewElement(xep.NSVCard, "BINVAL").AddText(base64.StdEncoding.EncodeToString(img)))
		vc.Add(p)
		h = Hash(img)
	}
	if err := m.vcards.SetVCard(ctx, owner, vc.Bytes()); err != nil {
		m.forget(owner)
		return err
	}
	m.setHashIfOnline(owner, h)
	return nil
}

// setHashIfOnline updates the cached hash; without sessions nothing is
// cached (the next presence loads it).
func (m *Module) setHashIfOnline(owner, h string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.hashes[owner]; ok {
		m.hashes[owner] = h
	}
}

// OnVCardSet publishes the PHOTO of a vCard the user set to the PEP avatar
// nodes (XEP-0398 §3.2), or disables the PEP avatar when the vCard has no
// PHOTO; wire it as basic Config.OnVCardSet.
func (m *Module) OnVCardSet(ctx context.Context, owner string, raw []byte) {
	defer m.lock(owner)()
	m.forget(owner)
	if m.cfg.PEP == nil {
		return
	}
	if err := m.fromVCard(ctx, owner, raw); err != nil {
		m.log.Warn("avatar: vCard photo to PEP", "owner", owner, "err", err)
	}
}

func (m *Module) fromVCard(ctx context.Context, owner string, raw []byte) error {
	vc, err := parse(raw)
	if err != nil {
		return err
	}
	img, typ, found, err := vcardPhoto(vc)
	if err != nil {
		return err
	}
	cur, err := m.currentPEP(ctx, owner)
	if err != nil {
		return err
	}
	if !found {
		if vc.Child(xep.NSVCard, "PHOTO") != nil {
			return nil // EXTVAL or empty: not an image we can publish
		}
		if cur == "" {
			return nil
		}
		// The vCard lost its photo: disable the PEP avatar too.
		if err := m.cfg.PEP.PublishItem(ctx, owner, NodeMetadata, "", wire.NewElement(NodeMetadata, "metadata").Bytes()); err != nil {
			return err
		}
		return m.cfg.PEP.RetractItem(ctx, owner, NodeData, cur)
	}
	h := Hash(img)
	if strings.EqualFold(cur, h) {
		return nil // the PEP avatar is this image already
	}
	if typ == "" {
		typ = sniff(img)
	}
	data := wire.NewElement(NodeData, "data").AddText(base64.StdEncoding.EncodeToString(img))
	if err := m.cfg.PEP.PublishItem(ctx, owner, NodeData, h, data.Bytes()); err != nil {
		return err
	}
	info := wire.NewElement(NodeMetadata, "info", "bytes", strconv.Itoa(len(img)), "id", h, "type", typ)
	if c, _, err := image.DecodeConfig(bytes.NewReader(img)); err == nil && c.Width > 0 && c.Height > 0 {
		info.SetAttr("width", strconv.Itoa(c.Width))
		info.SetAttr("height", strconv.Itoa(c.Height))
	}
	return m.cfg.PEP.PublishItem(ctx, owner, NodeMetadata, h, wire.NewElement(NodeMetadata, "metadata").Add(info).Bytes())
}

// currentPEP returns the id of the avatar the metadata node announces
// (the first info without url), "" when there is none.
func (m *Module) currentPEP(ctx context.Context, owner string) (string, error) {
	its, err := m.cfg.PEP.Items(ctx, owner, NodeMetadata)
	if err != nil || len(its) == 0 {
		return "", err
	}
	md, err := parse(its[len(its)-1].Payload)
	if err != nil {
		return "", nil
	}
	for _, in := range md.ChildrenNamed(NodeMetadata, "info") {
		if in.AttrValue("url") == "" {
			return in.AttrValue("id"), nil
		}
	}
	return "", nil
}

// sniff guesses an image's media type from its first bytes.
func sniff(img []byte) string {
	if t := http.DetectContentType(img); strings.HasPrefix(t, "image/") {
		return t
	}
	return "image/png"
}
