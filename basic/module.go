package basic

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Module implements module.Module.
type Module struct {
	cfg    Config
	vcards storage.VCards
	log    *slog.Logger
	now    func() time.Time

	reg *module.Registry

	// Disco results are built once, at first use, when every module has
	// registered its features (the registry is read-only by then), and
	// again when the contact addresses change (configuration reload).
	once  sync.Once
	disco atomic.Pointer[discoInfo]
	// contact replaces cfg.Contact after SetContact.
	contact atomic.Pointer[map[string][]string]
}

type discoInfo struct {
	serverInfo  *wire.Element // disco#info <query/> of the server, without node
	accountInfo *wire.Element // disco#info <query/> of an account
	ver         string
}

// SetContact replaces the XEP-0157 contact addresses (configuration
// reload); the server's disco#info and caps hash change with them.
func (m *Module) SetContact(contact map[string][]string) {
	m.contact.Store(&contact)
	m.build()
	m.disco.Store(m.buildDisco())
}

func (m *Module) contacts() map[string][]string {
	if c := m.contact.Load(); c != nil {
		return *c
	}
	return m.cfg.Contact
}

func (m *Module) buildDisco() *discoInfo {
	d := &discoInfo{serverInfo: m.buildServerInfo(), accountInfo: m.buildAccountInfo()}
	d.ver = CapsVer(d.serverInfo)
	return d
}

// info returns the disco results, building them at first use.
func (m *Module) info() *discoInfo {
	m.build()
	return m.disco.Load()
}

var _ module.Module = (*Module)(nil)

// New returns the module. vcards may be nil: vcard-temp is then not
// offered.
func New(cfg Config, vcards storage.VCards) *Module {
	if cfg.ServerName == "" {
		cfg.ServerName = "Parley"
	}
	if cfg.Version == "" {
		cfg.Version = "unknown"
	}
	if cfg.MaxVCardBytes <= 0 {
		cfg.MaxVCardBytes = DefaultMaxVCardBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{cfg: cfg, vcards: vcards, log: cfg.Logger, now: time.Now}
}

// Name implements module.Module.
func (m *Module) Name() string { return "basic" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	r.Feature(xep.NSDiscoInfo, xep.NSDiscoItems, xep.NSPing, xep.NSVersion, xep.NSTime)
	r.IQ(xep.NSDiscoInfo, "query", module.TargetServer, m.handleServerInfo)
	r.IQ(xep.NSDiscoItems, "query", module.TargetServer, m.handleServerItems)
	r.IQ(xep.NSDiscoInfo, "query", module.TargetAccount, m.handleAccountInfo)
	r.IQ(xep.NSDiscoItems, "query", module.TargetAccount, m.handleAccountItems)
	r.IQ(xep.NSPing, "ping", module.TargetServer, m.handlePing)
	r.IQ(xep.NSPing, "ping", module.TargetAccount, m.handlePing)
	r.IQ(xep.NSVersion, "query", module.TargetServer, m.handleVersion)
	r.IQ(xep.NSTime, "time", module.TargetServer, m.handleTime)
	if m.vcards != nil {
		r.Feature(xep.NSVCard)
		r.AccountFeature(xep.NSVCard)
		r.IQ(xep.NSVCard, "vCard", module.TargetAccount, m.handleVCard)
	}
	r.StreamFeature(m.capsFeature)
	return nil
}

// Ver returns the server's XEP-0115 verification string. It must not be
// called before every module has registered.
func (m *Module) Ver() string {
	return m.info().ver
}

func (m *Module) build() {
	m.once.Do(func() {
		if m.disco.Load() == nil {
			m.disco.Store(m.buildDisco())
		}
	})
}

func (m *Module) buildServerInfo() *wire.Element {
	ids := []module.Identity{{Category: "server", Type: "im", Name: m.cfg.ServerName}}
	var features []string
	if m.reg != nil {
		ids = append(ids, m.reg.Identities()...)
		features = m.reg.Features()
	}
	q := infoQuery(ids, features)
	if form := m.contactForm(); form != nil {
		q.Add(form)
	}
	return q
}

func (m *Module) buildAccountInfo() *wire.Element {
	var features []string
	ids := []module.Identity{{Category: "account", Type: "registered"}}
	if m.reg != nil {
		features = m.reg.AccountFeatures()
		ids = append(ids, m.reg.AccountIdentities()...)
	}
	return infoQuery(ids, features)
}

// infoQuery builds a disco#info <query/>: identities and features sorted
// and deduplicated; disco#info and disco#items are always included.
func infoQuery(ids []module.Identity, features []string) *wire.Element {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b module.Identity) int {
		return cmp.Or(strings.Compare(a.Category, b.Category), strings.Compare(a.Type, b.Type),
			strings.Compare(a.Name, b.Name))
	})
	ids = slices.Compact(ids)
	features = append([]string{xep.NSDiscoInfo, xep.NSDiscoItems}, features...)
	slices.Sort(features)
	features = slices.Compact(features)

	q := wire.NewElement(xep.NSDiscoInfo, "query")
	for _, id := range ids {
		q.Add(wire.NewElement(xep.NSDiscoInfo, "identity", "category", id.Category, "type", id.Type, "name", id.Name))
	}
	for _, f := range features {
		if f != "" {
			q.Add(wire.NewElement(xep.NSDiscoInfo, "feature", "var", f))
		}
	}
	return q
}

// contactForm is the XEP-0157 form, or nil when no address is configured.
func (m *Module) contactForm() *wire.Element {
	var vars []string
	contact := m.contacts()
	for v, uris := range contact {
		if v != "FORM_TYPE" && len(uris) > 0 {
			vars = append(vars, v)
		}
	}
	if len(vars) == 0 {
		return nil
	}
	slices.Sort(vars)
	x := wire.NewElement(xep.NSDataForms, "x", "type", "result")
	x.Add(wire.NewElement(xep.NSDataForms, "field", "var", "FORM_TYPE", "type", "hidden").
		Add(wire.NewElement(xep.NSDataForms, "value").AddText(xep.NSServerInfo)))
	for _, v := range vars {
		f := wire.NewElement(xep.NSDataForms, "field", "var", v)
		for _, uri := range contact[v] {
			f.Add(wire.NewElement(xep.NSDataForms, "value").AddText(uri))
		}
		x.Add(f)
	}
	return x
}

// capsFeature offers <c/> on every stream (RFC 6120 allows any feature
// element; XEP-0115 §6.3 covers server caps in stream features).
func (m *Module) capsFeature(bool) *wire.Element {
	return wire.NewElement(xep.NSCaps, "c", "hash", "sha-1", "node", CapsNode, "ver", m.Ver())
}

// getOnly rejects type='set' for query-only protocols, as a server without
// a handler would (RFC 6120 §8.4).
func getOnly(ev *module.Event) error {
	if ev.Stanza.Type != "get" {
		return module.Err(wire.ErrServiceUnavailable)
	}
	return nil
}

func payload(ev *module.Event) *wire.Element { return ev.Stanza.Tree().FirstElement() }

func (m *Module) handleServerInfo(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if err := getOnly(ev); err != nil {
		return nil, err
	}
	d := m.info()
	q := d.serverInfo.Copy()
	switch node := payload(ev).AttrValue("node"); node {
	case "":
	case CapsNode + "#" + d.ver:
		q.SetAttr("node", node)
	default:
		return m.serverNode(ctx, ev, node, false)
	}
	return q, nil
}

// serverNode asks the modules' disco node providers (e.g. ad-hoc
// commands) about a node of the server's JID.
func (m *Module) serverNode(ctx context.Context, ev *module.Event, node string, items bool) (*wire.Element, error) {
	if m.reg != nil {
		for _, f := range m.reg.ServerDiscoNodes() {
			if q, ok, err := f(ctx, ev, node, items); ok || err != nil {
				return q, err
			}
		}
	}
	return nil, module.Err(wire.ErrItemNotFound)
}

func (m *Module) handleServerItems(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if err := getOnly(ev); err != nil {
		return nil, err
	}
	if node := payload(ev).AttrValue("node"); node != "" {
		return m.serverNode(ctx, ev, node, true)
	}
	var hosts []module.Host
	if m.reg != nil {
		for _, h := range m.reg.Hosts() {
			if h.Parent == ev.To.Domainpart() {
				hosts = append(hosts, h)
			}
		}
	}
	slices.SortFunc(hosts, func(a, b module.Host) int { return strings.Compare(a.Domain, b.Domain) })
	q := wire.NewElement(xep.NSDiscoItems, "query")
	for _, h := range hosts {
		q.Add(wire.NewElement(xep.NSDiscoItems, "item", "jid", h.Domain, "name", h.Name))
	}
	return q, nil
}

// handleAccountInfo answers for a user's bare JID (XEP-0030 §3.1: the
// server answers on behalf of the account). The answer is the same for
// every JID, so it reveals nothing about whether the account exists.
func (m *Module) handleAccountInfo(_ context.Context, ev *module.Event) (*wire.Element, error) {
	if err := getOnly(ev); err != nil {
		return nil, err
	}
	if payload(ev).AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	return m.info().accountInfo.Copy(), nil
}

func (m *Module) handleAccountItems(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if err := getOnly(ev); err != nil {
		return nil, err
	}
	if payload(ev).AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	q := wire.NewElement(xep.NSDiscoItems, "query")
	if m.reg == nil {
		return q, nil
	}
	owner, requester := ev.To.Bare().String(), ev.From.Bare().String()
	for _, f := range m.reg.AccountItemsProviders() {
		items, err := f(ctx, owner, requester)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			e := wire.NewElement(xep.NSDiscoItems, "item", "jid", it.JID, "node", it.Node, "name", it.Name)
			q.Add(e)
		}
	}
	return q, nil
}

func (m *Module) handlePing(_ context.Context, ev *module.Event) (*wire.Element, error) {
	return nil, getOnly(ev)
}

func (m *Module) handleVersion(_ context.Context, ev *module.Event) (*wire.Element, error) {
	if err := getOnly(ev); err != nil {
		return nil, err
	}
	q := wire.NewElement(xep.NSVersion, "query")
	q.Add(wire.NewElement(xep.NSVersion, "name").AddText(m.cfg.ServerName))
	q.Add(wire.NewElement(xep.NSVersion, "version").AddText(m.cfg.Version))
	if m.cfg.OS != "" {
		q.Add(wire.NewElement(xep.NSVersion, "os").AddText(m.cfg.OS))
	}
	return q, nil
}

func (m *Module) handleTime(_ context.Context, ev *module.Event) (*wire.Element, error) {
	if err := getOnly(ev); err != nil {
		return nil, err
	}
	now := m.now()
	t := wire.NewElement(xep.NSTime, "time")
	t.Add(wire.NewElement(xep.NSTime, "tzo").AddText(now.Format("-07:00")))
	t.Add(wire.NewElement(xep.NSTime, "utc").AddText(now.UTC().Format("2006-01-02T15:04:05Z")))
	return t, nil
}

// handleVCard serves vcard-temp on a bare JID: anyone may read a vCard
// (XEP-0054 §3.1, they are public); only the owner may set it.
func (m *Module) handleVCard(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	owner := ev.To.Bare().String()
	if ev.Stanza.Type == "get" {
		raw, err := m.vcards.VCard(ctx, owner)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.NewElement(xep.NSVCard, "vCard"), nil
		}
		if err != nil {
			return nil, err
		}
		st, err := wire.Parse(raw, wire.Limits{})
		if err != nil {
			return nil, fmt.Errorf("basic: stored vCard of %s: %w", owner, err)
		}
		return st.Tree(), nil
	}
	if ev.Origin.Kind != module.FromClient || !ev.From.Bare().Equal(ev.To.Bare()) {
		return nil, module.Errorf(wire.ErrForbidden, "you can only change your own vCard")
	}
	raw := payload(ev).Bytes()
	if len(raw) > m.cfg.MaxVCardBytes {
		return nil, module.Errorf(wire.ErrNotAcceptable, "the vCard is larger than %d bytes", m.cfg.MaxVCardBytes)
	}
	if err := m.vcards.SetVCard(ctx, owner, raw); err != nil {
		return nil, err
	}
	if m.cfg.OnVCardSet != nil {
		m.cfg.OnVCardSet(ctx, owner, raw)
	}
	return nil, nil
}
