// Package muc implements XEP-0045 Multi-User Chat: a service host
// (conference.<domain>) per virtual host, with rooms that are created,
// configured and moderated by their occupants, persistent rooms kept in
// storage.MUCRooms, room archives (XEP-0313, owner = room JID), stable
// occupant ids (XEP-0421), self-ping (XEP-0410), moderation (XEP-0425),
// room avatars (vcard-temp on the room), and push notifications for
// members who are away (through the module's Wake event, which the push
// module turns into XEP-0357 notifications).
//
// Every room has one goroutine that owns its state; everything addressed
// to a room reaches it through Module.post (the routing seam a cluster
// uses to decide which node a room lives on). Stanzas a room sends are
// routed like any server-generated stanza, so they reach occupants on
// other nodes and servers the same way.
package muc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces.
const (
	NS              = xep.NSMUC
	NSUser          = NS + "#user"
	NSAdmin         = NS + "#admin"
	NSOwner         = NS + "#owner"
	nsRoomConfig    = NS + "#roomconfig"
	nsRoomInfo      = NS + "#roominfo"
	nsRegister      = NS + "#register"
	nsRequest       = NS + "#request"
	nsUnique        = NS + "#unique"
	nsSelfPing      = NS + "#self-ping-optimization"
	NSOccupantID    = xep.NSOccupantID
	NSMAM           = xep.NSMAM
	NSModerate      = xep.NSModerate
	nsModerate0     = xep.NSModerate0
	NSRetract       = xep.NSRetract
	nsRetract0      = xep.NSRetract0
	nsFasten        = xep.NSFasten
	NSConference    = xep.NSDirectInvite // XEP-0249 direct invitations
	nsVCardUpdate   = xep.NSVCardUpdate
	nsReference     = xep.NSReference
	nsStableID      = xep.NSMUCStableID
	nsDiscoInfoNode = xep.NSMUCTraffic
)

// Store is what the module keeps: rooms, their archives and vCards.
type Store interface {
	storage.MUCRooms
	storage.ArchiveWriter
	storage.ArchiveReader
	storage.ArchiveEditor
	storage.VCards
}

// Module implements module.Module, module.Starter and module.Stopper.
type Module struct {
	cfg   Config
	log   *slog.Logger
	store Store
	now   func() time.Time

	reg      *module.Registry
	services map[string]string // service host → virtual host

	ctx    context.Context // cancelled by Stop: room goroutines end
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	rooms   map[string]*room // bare room JID → loaded room
	stopped bool
	// queuedSlots bounds the queued-message notices in flight to other
	// nodes.
	queuedSlots chan struct{}
	// temporary counts, per creator (bare JID), the rooms in memory that
	// are not stored: with the stored rooms they own, what
	// max_rooms_per_user bounds.
	temporary map[string]int
}

var (
	_ module.Module  = (*Module)(nil)
	_ module.Starter = (*Module)(nil)
	_ module.Stopper = (*Module)(nil)
	_ module.Drainer = (*Module)(nil)
)

// New returns the module.
func New(cfg Config, store Store) *Module {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Module{cfg: cfg, log: cfg.Logger, store: store, now: time.Now, services: map[string]string{},
		rooms: map[string]*room{}, temporary: map[string]int{}, queuedSlots: make(chan struct{}, 64), ctx: ctx, cancel: cancel}
}

// Name implements module.Module.
func (m *Module) Name() string { return "muc" }

// Register implements module.Module: one service host per virtual host.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	domains := m.cfg.Domains
	if len(domains) == 0 {
		domains = r.Domains()
	}
	for _, d := range domains {
		host := m.cfg.Subdomain + "." + d
		if _, dup := m.services[host]; dup || slices.Contains(r.Domains(), host) {
			return fmt.Errorf("muc: service host %q is used twice", host)
		}
		m.services[host] = d
		r.AddHost(module.Host{Domain: host, Parent: d, Name: "Chatrooms", Handler: m.handle})
		// The service itself.
		r.HostIQ(host, xep.NSDiscoInfo, "query", module.TargetHost, m.serviceDiscoInfo)
		r.HostIQ(host, xep.NSDiscoItems, "query", module.TargetHost, m.serviceDiscoItems)
		r.HostIQ(host, xep.NSPing, "ping", module.TargetHost, pong)
		r.HostIQ(host, nsUnique, "unique", module.TargetHost, m.uniqueName)
		// Rooms.
		for _, h := range []struct {
			ns, local string
			f         func(r *room, ev *module.Event) (*wire.Element, error)
		}{
			{xep.NSDiscoInfo, "query", (*room).discoInfo},
			{xep.NSDiscoItems, "query", (*room).discoItems},
			{NSAdmin, "query", (*room).adminQuery},
			{NSOwner, "query", (*room).ownerQuery},
			{NSMAM, "query", (*room).mamQuery},
			{NSMAM, "metadata", (*room).mamMetadata},
			{NSMAM, "prefs", (*room).mamPrefs},
			{xep.NSVCard, "vCard", (*room).vcard},
			{xep.NSRegister, "query", (*room).register},
			{NSModerate, "moderate", (*room).moderate},
			{nsFasten, "apply-to", (*room).moderateLegacy},
			{xep.NSPing, "ping", (*room).ping},
		} {
			r.HostIQ(host, h.ns, h.local, module.TargetHostEntity, m.roomIQ(h.f))
		}
	}
	r.OnStanzaQueued(m.stanzaQueued)
	r.OnLost(m.lost)
	r.OnDeleteAccount(m.ForgetUser)
	return nil
}

// Services returns the service hosts (for tests and the admin CLI).
func (m *Module) Services() []string {
	var out []string
	for h := range m.services {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// Start implements module.Starter.
func (m *Module) Start(ctx context.Context) error { return nil }

// Drain implements module.Drainer: before the server's streams close,
// every occupant learns that the service is going down (status 332) and
// leaves; clients join again when it is back (or, in a cluster, on the
// node that takes the room over).
func (m *Module) Drain(ctx context.Context) {
	m.mu.Lock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		r.posters++ // keeps it loaded until the request is in its inbox
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rooms {
		done := make(chan struct{})
		f := func(r *room) {
			defer close(done)
			for _, o := range r.sortedOccupants() {
				r.removeOccupant(o, removal{codes: []int{332}})
			}
			if r.m.reg.Placement() != nil {
				// In a cluster the room moves on: its lease is released
				// now, and the node its occupants join again on runs it.
				r.m.mu.Lock()
				r.m.unloadLocked(r)
				r.m.mu.Unlock()
				r.gone = true
			}
		}
		var queued bool
		select {
		case r.inbox <- f:
			queued = true
		case <-ctx.Done():
		}
		m.mu.Lock()
		r.posters--
		m.mu.Unlock()
		if !queued {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
}

// Stop implements module.Stopper: room state is saved, goroutines end.
func (m *Module) Stop(ctx context.Context) error {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	for _, r := range rooms {
		r.postStop()
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		m.cancel()
		return ctx.Err()
	}
	m.cancel()
	return nil
}

// isAdmin reports whether bare is a service admin.
func (m *Module) isAdmin(ctx context.Context, bare string) bool {
	return m.cfg.IsAdmin != nil && m.cfg.IsAdmin(ctx, bare)
}

// isLocal reports whether a JID belongs to one of this server's hosts.
func (m *Module) isLocal(j jid.JID) bool {
	return slices.Contains(m.reg.Domains(), j.Domainpart())
}

// send routes a stanza generated by the service.
func (m *Module) send(st *wire.Stanza) {
	if st == nil {
		return
	}
	m.reg.Sender().Route(m.ctx, st)
}

// errPostTimeout is returned when a room's inbox stays full.
var errPostTimeout = errors.New("muc: room busy")

// postWait bounds how long a request waits for room in a full inbox.
const postWait = 2 * time.Second

// post runs f on the goroutine of room roomJID, loading the room first if
// needed. It is the only way to reach a room. In a cluster a room runs on
// one node at a time (module.Placement): a room that runs elsewhere is
// not loaded here, and post returns *module.ErrElsewhere naming the node
// to forward to. It waits while the room's inbox is full, up to postWait.
func (m *Module) post(ctx context.Context, roomJID jid.JID, f func(r *room)) error {
	key := roomJID.String()
	place := m.reg.Placement()
	var r *room
	for try := 0; ; try++ {
		m.mu.Lock()
		if m.stopped {
			m.mu.Unlock()
			return errStopped
		}
		r = m.rooms[key]
		// A loaded room is held by this node; a room is loaded only
		// while its lease is held (checked under m.mu, which unloading
		// holds while it releases).
		if r == nil && place != nil && !place.Holds(key) {
			m.mu.Unlock()
			if try == 3 {
				roomsBusy.Inc()
				return errPostTimeout
			}
			node, err := place.Acquire(ctx, key)
			if err != nil {
				m.log.Warn("muc: cannot place room", "room", key, "err", err)
				return errPostTimeout
			}
			if node != "" {
				return &module.ErrElsewhere{Node: node}
			}
			continue
		}
		if r == nil {
			r = newRoom(m, roomJID)
			m.rooms[key] = r
			m.wg.Add(1)
			go r.run()
		}
		r.posters++
		m.mu.Unlock()
		break
	}
	defer func() {
		m.mu.Lock()
		r.posters--
		m.mu.Unlock()
	}()
	select {
	case r.inbox <- f:
		return nil
	default:
	}
	t := time.NewTimer(postWait)
	defer t.Stop()
	select {
	case r.inbox <- f:
		return nil
	case <-t.C:
		roomsBusy.Inc()
		return errPostTimeout
	case <-ctx.Done():
		return ctx.Err()
	case <-m.ctx.Done():
		return errStopped
	}
}

// unloadLocked takes r out of the loaded rooms and, in a cluster, gives
// up its lease. Caller holds m.mu.
func (m *Module) unloadLocked(r *room) {
	if m.rooms[r.key] != r {
		return // evicted (another node runs it now) or already replaced
	}
	delete(m.rooms, r.key)
	if place := m.reg.Placement(); place != nil {
		place.Release(r.key)
	}
}

// forward passes ev, whose room runs on another node, to that node; the
// room answers from there.
func (m *Module) forward(ctx context.Context, node string, ev *module.Event) error {
	if ev.Forwards >= module.MaxForwards {
		// The nodes disagree about who runs the room (a hand-over in
		// progress): let the client try again.
		roomsBusy.Inc()
		return errPostTimeout
	}
	if err := m.reg.Placement().Forward(ctx, node, ev); err != nil {
		m.log.Warn("muc: cannot forward to the node running the room", "room", ev.To.Bare().String(), "node", node, "err", err)
		return errPostTimeout
	}
	roomsForwarded.Inc()
	return nil
}

// lost drops a room another node took over (it declared this one dead):
// nothing is saved or announced, that node runs the room now.
func (m *Module) lost(entity string) {
	m.mu.Lock()
	r := m.rooms[entity]
	if r != nil {
		delete(m.rooms, entity)
	}
	m.mu.Unlock()
	if r == nil {
		return
	}
	m.log.Warn("muc: room taken over by another node", "room", entity)
	select {
	case r.inbox <- func(r *room) { r.evicted = true; r.uncount() }:
	case <-time.After(postWait):
	case <-m.ctx.Done():
	}
}

var errStopped = errors.New("muc: service stopped")

// roomIQ adapts a room IQ handler: it runs on the room's goroutine and the
// caller waits for its answer.
func (m *Module) roomIQ(f func(r *room, ev *module.Event) (*wire.Element, error)) module.IQHandler {
	return func(ctx context.Context, ev *module.Event) (*wire.Element, error) {
		type answer struct {
			el  *wire.Element
			err error
		}
		ch := make(chan answer, 1)
		err := m.post(ctx, ev.To.Bare(), func(r *room) {
			if !r.exists {
				ch <- answer{nil, module.Errorf(wire.ErrItemNotFound, "no such room")}
				return
			}
			el, err := f(r, ev)
			ch <- answer{el, err}
		})
		var away *module.ErrElsewhere
		if errors.As(err, &away) {
			if err = m.forward(ctx, away.Node, ev); err == nil {
				return nil, module.ErrReplied
			}
		}
		if err != nil {
			return nil, busyError(err)
		}
		select {
		case a := <-ch:
			return a.el, a.err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.ctx.Done():
			return nil, module.Err(wire.ErrServiceUnavailable)
		}
	}
}

func busyError(err error) error {
	if errors.Is(err, errStopped) {
		return module.Errorf(wire.ErrServiceUnavailable, "the chat service is shutting down")
	}
	return module.Errorf(wire.ErrResourceConstraint, "the room is busy; try again")
}

// handle is the service host's handler: messages, presence, IQs to
// occupants and IQ responses.
func (m *Module) handle(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if ev.To.Localpart() == "" {
		// The service itself takes no messages or presence.
		if st.Name == "message" && st.Type != "error" {
			m.send(wire.ErrorReply(st, wire.ErrServiceUnavailable, ""))
		}
		return module.Handled
	}
	if ev.From.String() == "" || ev.From.Domainpart() == "" {
		return module.Handled
	}
	err := m.post(ctx, ev.To.Bare(), func(r *room) { r.handle(ev) })
	var away *module.ErrElsewhere
	if errors.As(err, &away) {
		err = m.forward(ctx, away.Node, ev)
	}
	// Errors, results and unavailable presence are not answered.
	if err != nil && st.Type != "error" && st.Type != "result" && st.Type != "unavailable" {
		se := busyError(err).(*module.StanzaError)
		m.send(wire.ErrorReply(st, se.Condition, se.Text))
	}
	return module.Handled
}

// stanzaQueued runs on a hibernated session's writer: a groupchat
// message from one of our rooms queued for it may be worth a push
// notification (a mention). It only posts; the room decides.
func (m *Module) stanzaQueued(ctx context.Context, s module.Session, st *wire.Stanza) {
	if st.Name != "message" || st.Type != "groupchat" {
		return
	}
	from, err := jid.Parse(st.From)
	if err != nil || from.Localpart() == "" || m.services[from.Domainpart()] == "" {
		return
	}
	full := s.JID()
	m.mu.Lock()
	r := m.rooms[from.Bare().String()]
	m.mu.Unlock()
	if r == nil {
		if m.reg.Placement() != nil {
			// In a cluster the room may run on another node (the session
			// is here): tell it there.
			m.queuedElsewhere(from.Bare(), full, st)
		}
		return
	}
	// Never wait on a writer goroutine: a full inbox drops the check.
	select {
	case r.inbox <- func(r *room) { r.queuedForAway(full, st) }:
	default:
	}
}

// nsQueued names the notice that a room's message was queued for a
// hibernated session on another node of a cluster. Only notices this
// server generated (origin FromLocal) count.
const nsQueued = "urn:parley:muc:queued:0"

// queuedElsewhere sends the room a notice that st was queued for full, in
// the background (never on the writer goroutine), through the normal way
// to a room: post here or forward to the node running it. At most
// cap(queuedSlots) notices are in flight; more are dropped.
func (m *Module) queuedElsewhere(room, full jid.JID, st *wire.Stanza) {
	select {
	case m.queuedSlots <- struct{}{}:
	default:
		return
	}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		<-m.queuedSlots
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() { <-m.queuedSlots }()
		ctx, cancel := context.WithTimeout(m.ctx, postWait)
		defer cancel()
		notice := wire.NewElement(wire.NSClient, "message", "type", "headline", "from", full.String(), "to", room.String(),
			"id", randomID(8)).Add(wire.NewElement(nsQueued, "queued").Add(st.Tree()))
		m.handle(ctx, &module.Event{Stanza: wire.FromElement(notice), From: full, To: room,
			Origin: module.Origin{Kind: module.FromLocal}})
	}()
}

// pong answers a ping to the service.
func pong(ctx context.Context, ev *module.Event) (*wire.Element, error) { return nil, nil }

// serviceDiscoInfo answers disco#info of the service host.
func (m *Module) serviceDiscoInfo(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	if ev.Stanza.Tree().FirstElement().AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	q := wire.NewElement(xep.NSDiscoInfo, "query")
	q.Add(wire.NewElement(xep.NSDiscoInfo, "identity", "category", "conference", "type", "text", "name", "Chatrooms"))
	for _, f := range []string{xep.NSDiscoInfo, xep.NSDiscoItems, NS, nsUnique, xep.NSPing, NSOccupantID,
		NSMAM, NSModerate, xep.NSVCard, xep.NSRegister, nsSelfPing, xep.NSSID} {
		q.Add(wire.NewElement(xep.NSDiscoInfo, "feature", "var", f))
	}
	return q, nil
}

// serviceDiscoItems lists public rooms: persistent ones from storage and
// loaded ones that are public (§6.3). A request from outside the room's
// ACL still sees public rooms (members-only rooms are listed too when
// public: their existence is not secret, joining is).
func (m *Module) serviceDiscoItems(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	q := ev.Stanza.Tree().FirstElement()
	if q.AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	service := ev.To.Domainpart()
	listed := map[string]string{}
	stored, err := m.store.Rooms(ctx, service)
	if err != nil {
		return nil, err
	}
	for _, r := range stored {
		if r.Public {
			listed[r.JID] = r.Name
		}
	}
	// Rooms in memory may be newer than storage (or not persistent).
	m.mu.Lock()
	loaded := make([]*room, 0, len(m.rooms))
	for k, r := range m.rooms {
		if strings.HasSuffix(k, "@"+service) {
			loaded = append(loaded, r)
		}
	}
	m.mu.Unlock()
	for _, r := range loaded {
		l := r.listing.Load()
		switch {
		case l == nil:
		case l.public:
			listed[r.jid.String()] = l.name
		default:
			delete(listed, r.jid.String())
		}
	}
	keys := make([]string, 0, len(listed))
	for k := range listed {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := wire.NewElement(xep.NSDiscoItems, "query")
	items, set, err := rsmPage(keys, q)
	if err != nil {
		return nil, err
	}
	for _, k := range items {
		it := wire.NewElement(xep.NSDiscoItems, "item", "jid", k)
		if listed[k] != "" {
			it.SetAttr("name", listed[k])
		}
		out.Add(it)
	}
	if set != nil {
		out.Add(set)
	}
	return out, nil
}

// uniqueName answers XEP-0045 §10.1.4 (a room name nobody uses).
func (m *Module) uniqueName(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	return wire.NewElement(nsUnique, "unique").AddText(randomID(10)), nil
}

// ForgetUser tells every room an account being deleted is affiliated
// with (the store removes those affiliations, registered nicks included,
// with the account) to forget it too, wherever the room runs: a room in
// memory must not let a new account of the same name inherit them. It
// runs before the store deletes the rows, so it still finds them.
func (m *Module) ForgetUser(ctx context.Context, bare string) error {
	affs, err := m.store.UserRoomAffiliations(ctx, bare)
	if err != nil {
		return err
	}
	for _, a := range affs {
		room, err := jid.Parse(a.Room)
		if err != nil || m.services[room.Domainpart()] == "" {
			continue
		}
		notice := wire.NewElement(wire.NSClient, "message", "type", "headline", "from", room.Domainpart(),
			"to", room.String(), "id", randomID(8)).Add(wire.NewElement(nsForget, "forget", "jid", bare))
		m.handle(ctx, &module.Event{Stanza: wire.FromElement(notice), From: jid.MustParse(room.Domainpart()), To: room,
			Origin: module.Origin{Kind: module.FromLocal}})
	}
	return nil
}

// nsForget names the notice that tells a room to forget a deleted
// account (only notices this server generated count).
const nsForget = "urn:parley:muc:forget:0"
