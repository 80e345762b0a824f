// Package pep implements the Personal Eventing Protocol (XEP-0163): every
// account is a publish-subscribe service (XEP-0060 semantics) whose owner
// publishes items to nodes; contacts receive notifications according to
// the node's access model and the interests ("+notify" features) their
// entity capabilities (XEP-0115) express.
package pep

import (
	"github.com/parley-xmpp/parley/xep"

	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// Namespaces.
const (
	NSPubSub         = xep.NSPubSub
	nsOwner          = NSPubSub + "#owner"
	nsEvent          = NSPubSub + "#event"
	nsErrors         = NSPubSub + "#errors"
	nsNodeConfig     = NSPubSub + "#node_config"
	nsPublishOptions = NSPubSub + "#publish-options"
)

// Features advertised on account JIDs.
var Features = []string{
	NSPubSub + "#publish", NSPubSub + "#publish-options", NSPubSub + "#auto-create",
	NSPubSub + "#access-presence", NSPubSub + "#access-open", NSPubSub + "#access-roster",
	NSPubSub + "#access-whitelist", NSPubSub + "#persistent-items", NSPubSub + "#retract",
	NSPubSub + "#purge", NSPubSub + "#delete-nodes", NSPubSub + "#retrieve-items",
	NSPubSub + "#config-node", NSPubSub + "#config-node-max", NSPubSub + "#item-ids", NSPubSub + "#last-published",
	NSPubSub + "#multi-items", NSPubSub + "#create-nodes", NSPubSub + "#create-and-configure",
	NSPubSub + "#auto-subscribe", NSPubSub + "#filtered-notifications", NSPubSub + "#retrieve-default",
	NSPubSub + "#presence-notifications",
}

// Module implements module.Module.
type Module struct {
	cfg    Config
	store  storage.PEP
	roster storage.Roster
	blocks storage.Blocklist
	log    *slog.Logger
	now    func() time.Time

	sender   module.Sender
	sessions module.Sessions

	ctx    context.Context // background work (caps queries); cancelled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	avail    map[string]resources // owner bare → available full JIDs and their caps keys
	nAvail   int
	caps     map[string]map[string]bool // caps key → nodes of interest
	fetching map[string][]waiter        // caps key → who waits for its resolution
	// deferred holds, per caps key being resolved, the notifications
	// published meanwhile for resources with that key: sent once the
	// capabilities say the resource wants them. Without it a publish that
	// came right after a client's presence (before its disco#info answer
	// was handled, on another goroutine) never reached it.
	deferred      map[string][]deferredNote
	deferredBytes int // of the stanzas in deferred (maxDeferredBytes)
}

// deferredNote is a notification waiting for the capabilities of full.
type deferredNote struct {
	owner, full, node string
	c                 nodeConfig
	st                *wire.Stanza
}

// maxDeferred bounds the notifications kept per caps key being resolved,
// maxDeferredBytes the bytes of all those kept (a publish beyond either
// is not held: the resource gets the node's last item when its
// capabilities are known, if the node sends it on presence).
const maxDeferred = 32

var maxDeferredBytes = 4 << 20 // a variable for tests

// resources are an account's available resources with their caps keys:
// a slice, since an account has one or a few (a map of its own cost every
// online user some 300 bytes).
type resources []resource

type resource struct{ full, key string }

func (r resources) get(full string) (string, bool) {
	for _, e := range r {
		if e.full == full {
			return e.key, true
		}
	}
	return "", false
}

// set returns r with full's key set.
func (r resources) set(full, key string) resources {
	for i := range r {
		if r[i].full == full {
			r[i].key = key
			return r
		}
	}
	return append(r, resource{full, key})
}

// del returns r without full.
func (r resources) del(full string) resources {
	return slices.DeleteFunc(r, func(e resource) bool { return e.full == full })
}

// waiter waits for capabilities to be resolved; a quiet one only records
// them (another node sends the last items).
type waiter struct {
	owner, full string
	quiet       bool
}

var (
	_ module.Module  = (*Module)(nil)
	_ module.Stopper = (*Module)(nil)
)

// New returns the module. blocks may be nil (no XEP-0191 filtering of
// notifications).
func New(cfg Config, store storage.PEP, roster storage.Roster, blocks storage.Blocklist) *Module {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Module{cfg: cfg, store: store, roster: roster, blocks: blocks, log: cfg.Logger, now: time.Now,
		ctx: ctx, cancel: cancel,
		avail: map[string]resources{}, caps: map[string]map[string]bool{}, fetching: map[string][]waiter{},
		deferred: map[string][]deferredNote{}}
}

// Name implements module.Module.
func (m *Module) Name() string { return "pep" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.sender, m.sessions = r.Sender(), r.Sessions()
	r.AccountIdentity(module.Identity{Category: "pubsub", Type: "pep"})
	r.AccountFeature(NSPubSub)
	r.AccountFeature(Features...)
	r.AccountItems(m.discoItems)
	r.IQ(NSPubSub, "pubsub", module.TargetAccount, m.handlePubSub)
	r.IQ(nsOwner, "pubsub", module.TargetAccount, m.handleOwner)
	r.AccountFeature(NSMDSServerAssist)
	r.Outbound(m.outboundPresence)
	r.Outbound(m.outboundDisplayed)
	r.Inbound(m.inboundPresence)
	r.OnRelayed(m.relayedPresence)
	r.OnUnbound(func(_ context.Context, s module.Session) { m.unavailable(s.JID().Bare().String(), s.JID().String()) })
	return nil
}

// Stop cancels pending capability queries and waits for them.
func (m *Module) Stop(context.Context) error {
	m.cancel()
	m.wg.Wait()
	return nil
}

func newID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func psErr(cond, app, text string) *module.StanzaError {
	return &module.StanzaError{Condition: cond, Text: text, App: wire.NewElement(nsErrors, app)}
}

func unsupported(feature string) *module.StanzaError {
	return &module.StanzaError{Condition: wire.ErrFeatureNotImplemented,
		App: wire.NewElement(nsErrors, "unsupported", "feature", feature)}
}

func isOwner(ev *module.Event) bool { return ev.From.Bare().Equal(ev.To.Bare()) }

var errNotOwner = module.Errorf(wire.ErrForbidden, "only the account owner may do this")

// node loads a node with its configuration completed by defaults.
func (m *Module) node(ctx context.Context, owner, name string) (nodeConfig, error) {
	n, err := m.store.PEPNode(ctx, owner, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	if err != nil {
		return nil, err
	}
	return m.withDefaults(name, n.Config), nil
}

// handlePubSub serves the {pubsub}pubsub element (XEP-0060 §6, §7).
func (m *Module) handlePubSub(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	ps := ev.Stanza.Tree().FirstElement()
	els := ps.Elements()
	if len(els) == 0 {
		return nil, module.Errorf(wire.ErrBadRequest, "empty pubsub request")
	}
	op := els[0]
	owner := ev.To.Bare().String()
	if ev.Stanza.Type == "get" {
		switch op.Name.Local {
		case "items":
			return m.items(ctx, ev, owner, op)
		case "subscriptions":
			return wire.NewElement(NSPubSub, "pubsub").Add(wire.NewElement(NSPubSub, "subscriptions")), nil
		case "affiliations":
			return m.affiliations(ctx, ev, owner)
		case "options", "default":
			return nil, unsupported("subscription-options")
		}
		return nil, module.Err(wire.ErrFeatureNotImplemented)
	}
	switch op.Name.Local {
	case "publish":
		return m.publish(ctx, ev, owner, op, ps.Child(NSPubSub, "publish-options"))
	case "retract":
		return m.retract(ctx, ev, owner, op)
	case "create":
		return m.create(ctx, ev, owner, op, ps.Child(NSPubSub, "configure"))
	case "subscribe", "unsubscribe":
		// PEP subscriptions are implicit (presence and caps).
		return nil, unsupported("subscribe")
	case "options":
		return nil, unsupported("subscription-options")
	}
	return nil, module.Err(wire.ErrFeatureNotImplemented)
}

// handleOwner serves {pubsub#owner}pubsub (XEP-0060 §8).
func (m *Module) handleOwner(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if !isOwner(ev) {
		return nil, errNotOwner
	}
	ps := ev.Stanza.Tree().FirstElement()
	op := ps.FirstElement()
	if op == nil {
		return nil, module.Errorf(wire.ErrBadRequest, "empty pubsub request")
	}
	owner := ev.To.Bare().String()
	name := op.AttrValue("node")
	get := ev.Stanza.Type == "get"
	switch {
	case op.Name.Local == "default" && get:
		return wire.NewElement(nsOwner, "pubsub").Add(wire.NewElement(nsOwner, "default").
			Add(configForm(m.defaultsFor(name), "form"))), nil
	case op.Name.Local == "configure" && get:
		c, err := m.node(ctx, owner, name)
		if err != nil {
			return nil, err
		}
		return wire.NewElement(nsOwner, "pubsub").Add(wire.NewElement(nsOwner, "configure", "node", name).
			Add(configForm(c, "form"))), nil
	case op.Name.Local == "configure":
		return nil, m.configure(ctx, owner, name, op)
	case op.Name.Local == "delete" && !get:
		return nil, m.deleteNode(ctx, owner, name)
	case op.Name.Local == "purge" && !get:
		return nil, m.purge(ctx, owner, name)
	case op.Name.Local == "subscriptions" || op.Name.Local == "affiliations":
		return nil, unsupported("modify-affiliations")
	}
	return nil, module.Err(wire.ErrFeatureNotImplemented)
}

func (m *Module) configure(ctx context.Context, owner, name string, op *wire.Element) error {
	c, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	x := op.Child(xep.NSDataForms, "x")
	if x == nil {
		return module.Errorf(wire.ErrBadRequest, "configure needs a data form")
	}
	switch x.AttrValue("type") {
	case "cancel":
		return nil
	case "submit":
	default:
		return module.Errorf(wire.ErrBadRequest, "the configuration form must be of type submit or cancel")
	}
	ft, vals := formValues(x)
	if ft != "" && ft != nsNodeConfig {
		return module.Errorf(wire.ErrBadRequest, "FORM_TYPE must be %s", nsNodeConfig)
	}
	if err := m.applyForm(c, vals); err != nil {
		return err
	}
	if err := m.store.SetPEPNodeConfig(ctx, owner, name, c); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return module.Err(wire.ErrItemNotFound)
		}
		return err
	}
	// A lowered max_items takes effect now.
	its, err := m.store.PEPItems(ctx, owner, name, nil, 0)
	if err != nil {
		return err
	}
	for i := 0; i < len(its)-c.maxItems(m.cfg.MaxItems); i++ {
		if err := m.store.RetractPEPItem(ctx, owner, name, its[i].ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// createNode creates a node with defaults overlaid by submitted options.
func (m *Module) createNode(ctx context.Context, owner, name string, opts map[string][]string) (nodeConfig, error) {
	c := m.defaultsFor(name)
	if err := m.applyForm(c, opts); err != nil {
		return nil, err
	}
	nodes, err := m.store.PEPNodes(ctx, owner)
	if err != nil {
		return nil, err
	}
	if len(nodes) >= m.cfg.MaxNodes {
		return nil, module.Errorf(wire.ErrPolicyViolation, "an account may have at most %d nodes", m.cfg.MaxNodes)
	}
	err = m.store.CreatePEPNode(ctx, owner, storage.PEPNode{Name: name, Config: c, Created: m.now()})
	if errors.Is(err, storage.ErrExists) {
		return nil, module.Errorf(wire.ErrConflict, "the node exists")
	}
	return c, err
}

func (m *Module) create(ctx context.Context, ev *module.Event, owner string, op, configure *wire.Element) (*wire.Element, error) {
	if !isOwner(ev) {
		return nil, errNotOwner
	}
	name := op.AttrValue("node")
	if name == "" {
		return nil, psErr(wire.ErrNotAcceptable, "nodeid-required", "PEP nodes need a name")
	}
	var opts map[string][]string
	if x := configure.Child(xep.NSDataForms, "x"); x != nil {
		ft, vals := formValues(x)
		if ft != "" && ft != nsNodeConfig {
			return nil, module.Errorf(wire.ErrBadRequest, "FORM_TYPE must be %s", nsNodeConfig)
		}
		opts = vals
	}
	_, err := m.createNode(ctx, owner, name, opts)
	return nil, err
}

func (m *Module) publish(ctx context.Context, ev *module.Event, owner string, op, options *wire.Element) (*wire.Element, error) {
	if !isOwner(ev) {
		return nil, errNotOwner
	}
	name := op.AttrValue("node")
	if name == "" {
		return nil, psErr(wire.ErrBadRequest, "nodeid-required", "")
	}
	items := op.ChildrenNamed(NSPubSub, "item")
	if len(items) != 1 {
		return nil, psErr(wire.ErrBadRequest, "invalid-payload", "publish exactly one item")
	}
	item := items[0]
	payloads := item.Elements()
	if len(payloads) == 0 {
		return nil, psErr(wire.ErrBadRequest, "payload-required", "")
	}
	if len(payloads) > 1 {
		return nil, psErr(wire.ErrBadRequest, "invalid-payload", "an item carries exactly one payload element")
	}
	raw := payloads[0].Bytes()
	if len(raw) > m.cfg.MaxPayloadBytes {
		return nil, psErr(wire.ErrNotAcceptable, "payload-too-big", "at most "+strconv.Itoa(m.cfg.MaxPayloadBytes)+" bytes")
	}
	var opts map[string][]string
	if x := options.Child(xep.NSDataForms, "x"); x != nil {
		ft, vals := formValues(x)
		if ft != nsPublishOptions {
			return nil, psErr(wire.ErrBadRequest, "invalid-options", "FORM_TYPE must be "+nsPublishOptions)
		}
		opts = vals
	}

	c, err := m.node(ctx, owner, name)
	var se *module.StanzaError
	switch {
	case errors.As(err, &se) && se.Condition == wire.ErrItemNotFound:
		// Auto-create (XEP-0060 §7.1.4) with the publish options.
		c, err = m.createNode(ctx, owner, name, opts)
		if errors.As(err, &se) && se.Condition == wire.ErrConflict {
			// Created concurrently: check the options against it.
			if c, err = m.node(ctx, owner, name); err == nil {
				err = m.preconditions(c, opts)
			}
		}
	case err == nil:
		err = m.preconditions(c, opts)
	}
	if err != nil {
		return nil, err
	}

	id := item.AttrValue("id")
	if id == "" {
		id = newID()
	}
	if err := m.checkQuota(ctx, owner, name, id, len(raw)); err != nil {
		return nil, err
	}
	it := storage.PEPItem{ID: id, Payload: raw, Publisher: ev.From.String(), Stamp: m.now()}
	if _, err := m.store.PublishPEPItem(ctx, owner, name, it, c.maxItems(m.cfg.MaxItems)); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, module.Err(wire.ErrItemNotFound) // deleted meanwhile
		}
		return nil, err
	}
	// Derived state first (the vCard photo of an avatar, XEP-0048
	// bookmarks), so that a contact who reacts to the notification finds
	// it already updated.
	if m.cfg.OnPublish != nil {
		m.cfg.OnPublish(ctx, owner, name, id, raw)
	}
	if c.bool(fDeliverNotif) {
		payload := raw
		if !c.bool(fDeliverPay) {
			payload = nil
		}
		m.notify(ctx, owner, name, c, itemsEvent(name, itemXML(id, payload)))
	}
	return wire.NewElement(NSPubSub, "pubsub").Add(
		wire.NewElement(NSPubSub, "publish", "node", name).Add(wire.NewElement(NSPubSub, "item", "id", id))), nil
}

func (m *Module) retract(ctx context.Context, ev *module.Event, owner string, op *wire.Element) (*wire.Element, error) {
	if !isOwner(ev) {
		return nil, errNotOwner
	}
	name := op.AttrValue("node")
	if name == "" {
		return nil, psErr(wire.ErrBadRequest, "nodeid-required", "")
	}
	items := op.ChildrenNamed(NSPubSub, "item")
	if len(items) == 0 || items[0].AttrValue("id") == "" {
		return nil, psErr(wire.ErrBadRequest, "item-required", "")
	}
	c, err := m.node(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	var retracted []string
	for _, it := range items {
		id := it.AttrValue("id")
		if err := m.store.RetractPEPItem(ctx, owner, name, id); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, module.Err(wire.ErrItemNotFound)
			}
			return nil, err
		}
		retracted = append(retracted, id)
	}
	notify := c.bool(fNotifyRetract)
	switch op.AttrValue("notify") {
	case "1", "true":
		notify = true
	case "0", "false":
		notify = false
	}
	if m.cfg.OnRetract != nil { // derived state first, as in publish
		for _, id := range retracted {
			m.cfg.OnRetract(ctx, owner, name, id)
		}
	}
	if notify && c.bool(fDeliverNotif) {
		var b []byte
		for _, id := range retracted {
			b = append(b, "<retract id='"+wire.EscapeAttr(id)+"'/>"...)
		}
		m.notify(ctx, owner, name, c, itemsEvent(name, b))
	}
	return nil, nil
}

func (m *Module) deleteNode(ctx context.Context, owner, name string) error {
	c, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	if err := m.store.DeletePEPNode(ctx, owner, name); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return module.Err(wire.ErrItemNotFound)
		}
		return err
	}
	if c.bool(fNotifyDelete) && c.bool(fDeliverNotif) {
		m.notify(ctx, owner, name, c, []byte("<delete node='"+wire.EscapeAttr(name)+"'/>"))
	}
	return nil
}

func (m *Module) purge(ctx context.Context, owner, name string) error {
	c, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	if err := m.store.PurgePEPItems(ctx, owner, name); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return module.Err(wire.ErrItemNotFound)
		}
		return err
	}
	if c.bool(fNotifyRetract) && c.bool(fDeliverNotif) {
		m.notify(ctx, owner, name, c, []byte("<purge node='"+wire.EscapeAttr(name)+"'/>"))
	}
	return nil
}

// items serves item retrieval (XEP-0060 §6.5).
func (m *Module) items(ctx context.Context, ev *module.Event, owner string, op *wire.Element) (*wire.Element, error) {
	name := op.AttrValue("node")
	if name == "" {
		return nil, psErr(wire.ErrBadRequest, "nodeid-required", "")
	}
	c, err := m.node(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	if err := m.checkAccess(ctx, jid.MustParse(owner), ev.From, c); err != nil {
		var se *module.StanzaError
		if errors.As(err, &se) {
			// The same answer as for a node that does not exist: the
			// XEP-0060 access errors would tell anyone which private
			// nodes an account has (issue 16 finding 6).
			return nil, module.Err(wire.ErrItemNotFound)
		}
		return nil, err
	}
	var ids []string
	for _, it := range op.ChildrenNamed(NSPubSub, "item") {
		if id := it.AttrValue("id"); id != "" {
			ids = append(ids, id)
		}
	}
	last := 0
	if v := op.AttrValue("max_items"); v != "" && len(ids) == 0 {
		if last, err = strconv.Atoi(v); err != nil || last <= 0 {
			return nil, module.Errorf(wire.ErrBadRequest, "max_items must be a positive number")
		}
	}
	its, err := m.store.PEPItems(ctx, owner, name, ids, last)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 && len(its) == 0 {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	out := wire.NewElement(NSPubSub, "items", "node", name)
	for _, it := range its {
		e := wire.NewElement(NSPubSub, "item", "id", it.ID)
		if p := parsePayload(it.Payload); p != nil {
			e.Add(p)
		}
		out.Add(e)
	}
	return wire.NewElement(NSPubSub, "pubsub").Add(out), nil
}

// parsePayload turns stored payload bytes back into an element.
func parsePayload(raw []byte) *wire.Element {
	if len(raw) == 0 {
		return nil
	}
	st, err := wire.Parse(raw, wire.Limits{MaxStanzaBytes: len(raw) + 1})
	if err != nil {
		return nil
	}
	return st.Tree()
}

// affiliations lists the requester's affiliations: owner of every node on
// its own account, none elsewhere.
func (m *Module) affiliations(ctx context.Context, ev *module.Event, owner string) (*wire.Element, error) {
	affs := wire.NewElement(NSPubSub, "affiliations")
	if isOwner(ev) {
		nodes, err := m.store.PEPNodes(ctx, owner)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			affs.Add(wire.NewElement(NSPubSub, "affiliation", "node", n.Name, "affiliation", "owner"))
		}
	}
	return wire.NewElement(NSPubSub, "pubsub").Add(affs), nil
}

// discoItems lists the nodes requester may access (XEP-0163 §7: only
// those).
func (m *Module) discoItems(ctx context.Context, owner, requester string) ([]module.DiscoItem, error) {
	nodes, err := m.store.PEPNodes(ctx, owner)
	if err != nil || len(nodes) == 0 {
		return nil, err
	}
	oj, err := jid.Parse(owner)
	if err != nil {
		return nil, nil
	}
	rj, err := jid.Parse(requester)
	if err != nil {
		return nil, nil
	}
	var out []module.DiscoItem
	ac := m.newAccessCache(oj)
	for _, n := range nodes {
		c := m.withDefaults(n.Name, n.Config)
		if ac.allowed(ctx, rj, c) {
			out = append(out, module.DiscoItem{JID: owner, Node: n.Name, Name: c.get(fTitle)})
		}
	}
	return out, nil
}

// checkAccess applies the node's access model to a requester (XEP-0060
// §6.5.9 errors).
func (m *Module) checkAccess(ctx context.Context, owner, requester jid.JID, c nodeConfig) error {
	if requester.Bare().Equal(owner.Bare()) {
		return nil
	}
	switch c.get(fAccessModel) {
	case AccessOpen:
		return nil
	case AccessPresence:
		it, err := m.rosterItem(ctx, owner, requester)
		if err != nil {
			return err
		}
		if it != nil && (it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth) {
			return nil
		}
		return psErr(wire.ErrNotAuthorized, "presence-subscription-required", "")
	case AccessRoster:
		it, err := m.rosterItem(ctx, owner, requester)
		if err != nil {
			return err
		}
		if it != nil {
			for _, g := range it.Groups {
				if slices.Contains(c[fRosterGroups], g) {
					return nil
				}
			}
		}
		return psErr(wire.ErrNotAuthorized, "not-in-roster-group", "")
	}
	// whitelist: only the owner (member affiliations are not managed).
	return psErr(wire.ErrNotAllowed, "closed-node", "")
}

func (m *Module) rosterItem(ctx context.Context, owner, contact jid.JID) (*storage.RosterItem, error) {
	it, err := m.roster.RosterItem(ctx, owner.Bare().String(), contact.Bare().String())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &it, nil
}

// accessCache answers access questions for one owner, loading each
// contact's roster item once.
type accessCache struct {
	m     *Module
	owner jid.JID
	items map[string]*storage.RosterItem
}

func (m *Module) newAccessCache(owner jid.JID) *accessCache {
	return &accessCache{m: m, owner: owner, items: map[string]*storage.RosterItem{}}
}

func (a *accessCache) allowed(ctx context.Context, who jid.JID, c nodeConfig) bool {
	bare := who.Bare()
	if bare.Equal(a.owner.Bare()) {
		return true
	}
	model := c.get(fAccessModel)
	if model == AccessOpen {
		return true
	}
	if model != AccessPresence && model != AccessRoster {
		return false
	}
	it, ok := a.items[bare.String()]
	if !ok {
		var err error
		it, err = a.m.rosterItem(ctx, a.owner, bare)
		if err != nil {
			a.m.log.Error("pep: roster lookup", "owner", a.owner.String(), "err", err)
			return false
		}
		a.items[bare.String()] = it
	}
	if it == nil {
		return false
	}
	if model == AccessPresence {
		return it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth
	}
	for _, g := range it.Groups {
		if slices.Contains(c[fRosterGroups], g) {
			return true
		}
	}
	return false
}

// checkQuota refuses an item that would take the account's payloads
// beyond MaxAccountBytes, counting the item with the same id it replaces.
func (m *Module) checkQuota(ctx context.Context, owner, node, id string, size int) error {
	if m.cfg.Usage == nil || m.cfg.MaxAccountBytes < 0 {
		return nil
	}
	u, err := m.cfg.Usage.AccountUsage(ctx, owner)
	if err != nil {
		return err
	}
	if u.PEP+int64(size) <= m.cfg.MaxAccountBytes {
		return nil
	}
	if old, err := m.store.PEPItems(ctx, owner, node, []string{id}, 0); err == nil && len(old) == 1 &&
		u.PEP-int64(len(old[0].Payload))+int64(size) <= m.cfg.MaxAccountBytes {
		return nil
	}
	return module.Errorf(wire.ErrResourceConstraint, "PEP storage is limited to %d bytes per account; retract or delete items first",
		m.cfg.MaxAccountBytes)
}
