package push

import (
	"context"
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
	NS               = xep.NSPush
	NSSummary        = xep.NSPushSummary
	NSPubSub         = xep.NSPubSub
	NSPublishOptions = xep.NSPubSubPublishOptions
	nsCarbons        = xep.NSCarbons
	nsForward        = xep.NSForward
	nsJingleMessage  = xep.NSJingleMessage
)

// Module implements module.Module, module.Starter and module.Stopper.
type Module struct {
	cfg  Config
	log  *slog.Logger
	regs storage.PushRegistrations
	now  func() time.Time
	reg  *module.Registry

	jobs chan job

	// queue, when not nil, makes delivery durable (see durable.go);
	// inflight holds the IDs of jobs being sent, guarded by mu.
	queue    storage.PushJobs
	inflight map[int64]bool

	// ctx is cancelled by Stop; it bounds storage calls and requests.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // worker and in-flight notifications

	mu      sync.Mutex
	started bool
	stopped bool
	windows map[regKey]*window
}

var (
	_ module.Module  = (*Module)(nil)
	_ module.Starter = (*Module)(nil)
	_ module.Stopper = (*Module)(nil)
)

// New returns the module. Notifications are published only between Start
// and Stop; triggers before Start wait in the queue. When regs also
// implements storage.PushJobs, delivery is durable (as with NewDurable).
func New(cfg Config, regs storage.PushRegistrations) *Module {
	q, _ := regs.(storage.PushJobs)
	return NewDurable(cfg, regs, q)
}

// NewDurable returns the module with durable delivery through queue:
// notifications are stored before they are sent and retried with backoff.
// A nil queue gives fire-and-forget delivery.
func NewDurable(cfg Config, regs storage.PushRegistrations, queue storage.PushJobs) *Module {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Module{
		cfg: cfg, log: cfg.Logger, regs: regs, now: time.Now,
		jobs: make(chan job, cfg.QueueSize), ctx: ctx, cancel: cancel,
		queue: queue, inflight: map[int64]bool{},
		windows: map[regKey]*window{},
	}
}

// Name implements module.Module.
func (m *Module) Name() string { return "push" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	r.Feature(NS)
	r.AccountFeature(NS)
	r.IQ(NS, "enable", module.TargetAccount, m.handleEnable)
	r.IQ(NS, "disable", module.TargetAccount, m.handleDisable)
	r.Inbound(m.inbound)
	r.Undeliverable(m.undeliverable)
	r.OnStanzaQueued(m.queued)
	r.OnAckOverdue(m.cfg.AckOverdue, m.ackOverdue)
	r.OnNotify(m.notifyAway)
	// The registrations and queued jobs are the account's rows; what
	// stays in memory is its coalescing windows.
	r.OnDeleteAccount(func(ctx context.Context, bare string) error {
		m.forget(bare, "", "")
		return nil
	})
	return nil
}

// Start implements module.Starter: it starts the background worker and,
// with durable delivery, the loop that sends due jobs.
func (m *Module) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.stopped {
		return nil
	}
	m.started = true
	m.wg.Add(1)
	go m.work()
	if m.queue != nil {
		m.wg.Add(1)
		go m.retryLoop()
	}
	return nil
}

// Stop implements module.Stopper: it abandons pending coalesced
// notifications and waits for in-flight ones.
func (m *Module) Stop(ctx context.Context) error {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	for k, w := range m.windows {
		w.timer.Stop()
		delete(m.windows, k)
	}
	m.mu.Unlock()
	m.cancel()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// regKey identifies a registration.
type regKey struct{ owner, jid, node string }

func keyOf(owner string, r storage.PushRegistration) regKey { return regKey{owner, r.JID, r.Node} }

// job is work for the background goroutine, so that hooks never block.
type job struct {
	owner string // bare JID
	st    *wire.Stanza
	// sess is set for a stanza queued to a hibernated session or not
	// acknowledged by a session whose ack is overdue (overdue set).
	sess    module.Session
	overdue bool
	// away: another module asks to notify owner about st, which was not
	// sent to them (a chat room's message for a member who is away).
	away bool
	// disable: the service ev.From announced that owner lost its
	// affiliation to node (XEP-0357 §8); st is nil.
	disable *regKey
}

func (m *Module) enqueue(j job) {
	select {
	case m.jobs <- j:
	default:
		dropped.Inc()
	}
}

// undeliverable hooks messages for users without an available resource.
// It only enqueues: im's offline storage comes after it.
func (m *Module) undeliverable(ctx context.Context, ev *module.Event) module.Verdict {
	if ev.Stanza.Name == "message" {
		m.enqueue(job{owner: ev.To.Bare().String(), st: ev.Stanza})
	}
	return module.Continue
}

// queued runs on the session's writer goroutine: enqueue only.
func (m *Module) queued(ctx context.Context, s module.Session, st *wire.Stanza) {
	if st.Name == "message" {
		m.enqueue(job{owner: s.JID().Bare().String(), st: st, sess: s})
	}
}

// notifyAway runs on the goroutine of the module that asks (a chat
// room): enqueue only.
func (m *Module) notifyAway(ctx context.Context, owner string, st *wire.Stanza) {
	if st.Name == "message" {
		m.enqueue(job{owner: owner, st: st, away: true})
	}
}

// ackOverdue runs on c2s goroutines: enqueue only.
func (m *Module) ackOverdue(ctx context.Context, s module.Session, unacked []*wire.Stanza) {
	for _, st := range unacked {
		if st.Name == "message" {
			m.enqueue(job{owner: s.JID().Bare().String(), st: st, sess: s, overdue: true})
		}
	}
}

// The registrations a session enabled are kept in its values
// (module.SessionValues), so that they are known wherever the session is
// (in a cluster: on the node it resumed on) and end with it.
const valEnabled = "push.enabled" // "service\x00node" per line

// enabledBy returns the registrations session s enabled.
func enabledBy(s module.Session) map[regKey]bool {
	v := module.Value(s, valEnabled)
	if len(v) == 0 {
		return nil
	}
	owner := s.JID().Bare().String()
	out := map[regKey]bool{}
	for _, line := range strings.Split(string(v), "\n") {
		if svc, node, ok := strings.Cut(line, "\x00"); ok {
			out[regKey{owner, svc, node}] = true
		}
	}
	return out
}

// setEnabled records that session s enabled (on) or disabled k.
func (m *Module) setEnabled(s module.Session, k regKey, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := enabledBy(s)
	if cur[k] == on {
		return
	}
	if cur == nil {
		cur = map[regKey]bool{}
	}
	if on {
		cur[k] = true
	} else {
		delete(cur, k)
	}
	lines := make([]string, 0, len(cur))
	for r := range cur {
		lines = append(lines, r.jid+"\x00"+r.node)
	}
	slices.Sort(lines)
	module.SetValue(s, valEnabled, []byte(strings.Join(lines, "\n")))
}

// inbound watches for XEP-0357 §8 affiliation changes: a message from the
// push service to the user's bare JID saying the user's affiliation to a
// node is now 'none'.
func (m *Module) inbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "message" || ev.To.Resourcepart() != "" || ev.To.Localpart() == "" || ev.From.String() == "" {
		return module.Continue
	}
	ps := st.Child(NSPubSub, "pubsub")
	if ps == nil || ps.AttrValue("node") == "" {
		return module.Continue
	}
	owner := ev.To.Bare().String()
	for _, a := range ps.ChildrenNamed(NSPubSub, "affiliation") {
		aj, err := jid.Parse(a.AttrValue("jid"))
		if err != nil || aj.Bare().String() != owner {
			continue
		}
		if aff := a.AttrValue("affiliation"); aff == "none" || aff == "outcast" {
			m.enqueue(job{owner: owner, disable: &regKey{owner, ev.From.String(), ps.AttrValue("node")}})
		}
	}
	return module.Continue
}

// own checks that an enable/disable request comes from a session of the
// account it addresses.
func own(ev *module.Event) error {
	if ev.Origin.Kind != module.FromClient || ev.From.Localpart() == "" || ev.From.Bare().String() != ev.To.Bare().String() {
		return module.Errorf(wire.ErrForbidden, "push notifications can only be configured for your own account")
	}
	if ev.Stanza.Type != "set" {
		return module.Errorf(wire.ErrBadRequest, "use an iq of type set")
	}
	return nil
}

// serviceOf parses the 'jid' attribute of enable/disable.
func serviceOf(el *wire.Element) (jid.JID, error) {
	s := el.AttrValue("jid")
	if s == "" {
		return jid.JID{}, module.Errorf(wire.ErrBadRequest, "the 'jid' attribute is required")
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, module.Errorf(wire.ErrBadRequest, "the 'jid' attribute is not a valid JID")
	}
	return j, nil
}

func (m *Module) handleEnable(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if err := own(ev); err != nil {
		return nil, err
	}
	el := ev.Stanza.Tree().FirstElement()
	service, err := serviceOf(el)
	if err != nil {
		return nil, err
	}
	node := el.AttrValue("node")
	if node == "" {
		return nil, module.Errorf(wire.ErrBadRequest, "the 'node' attribute is required")
	}
	if len(node) > maxNodeBytes {
		return nil, module.Errorf(wire.ErrNotAcceptable, "the node name is too long")
	}
	var form []byte
	switch forms := el.ChildrenNamed(xep.NSDataForms, "x"); len(forms) {
	case 0:
	case 1:
		form = forms[0].Bytes()
		if len(form) > m.cfg.MaxFormBytes {
			return nil, module.Errorf(wire.ErrNotAcceptable, "the publish options form is too large")
		}
	default:
		return nil, module.Errorf(wire.ErrBadRequest, "at most one publish options form is allowed")
	}
	owner := ev.To.Bare().String()
	r := storage.PushRegistration{JID: service.String(), Node: node, Form: form, Created: m.now().UTC()}
	existing, err := m.regs.Pushes(ctx, owner)
	if err != nil {
		return nil, err
	}
	replaces := false
	for _, e := range existing {
		replaces = replaces || (e.JID == r.JID && e.Node == r.Node)
	}
	if !replaces && len(existing) >= m.cfg.MaxRegistrations {
		return nil, module.Errorf(wire.ErrPolicyViolation, "at most %d push services can be enabled", m.cfg.MaxRegistrations)
	}
	if err := m.regs.AddPush(ctx, owner, r); err != nil {
		return nil, err
	}
	k := keyOf(owner, r)
	m.mu.Lock()
	if w := m.windows[k]; w != nil {
		w.reg = r // a pending notification uses the new publish options
	}
	m.mu.Unlock()
	if s := ev.Origin.Session; s != nil {
		m.setEnabled(s, k, true)
	}
	m.log.Debug("push enabled", "user", owner, "service", r.JID, "node", node)
	return nil, nil
}

func (m *Module) handleDisable(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if err := own(ev); err != nil {
		return nil, err
	}
	el := ev.Stanza.Tree().FirstElement()
	service, err := serviceOf(el)
	if err != nil {
		return nil, err
	}
	owner := ev.To.Bare().String()
	node := el.AttrValue("node")
	if err := m.regs.RemovePush(ctx, owner, service.String(), node); err != nil {
		return nil, err
	}
	m.forget(owner, service.String(), node)
	m.log.Debug("push disabled", "user", owner, "service", service.String(), "node", node)
	return nil, nil
}

// forget drops in-memory state of disabled registrations (every node of
// service when node is "", every service when service is "").
func (m *Module) forget(owner, service, node string) {
	match := func(k regKey) bool {
		return k.owner == owner && (service == "" || k.jid == service) && (node == "" || k.node == node)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, w := range m.windows {
		if match(k) {
			w.timer.Stop()
			delete(m.windows, k)
		}
	}
	m.mu.Unlock()
	// The sessions that enabled them (on any node) forget them too.
	if owner == "" || m.reg == nil || m.reg.Sessions() == nil {
		return
	}
	oj, err := jid.Parse(owner)
	if err != nil {
		return
	}
	for _, sess := range m.reg.Sessions().Resources(oj) {
		for k := range enabledBy(sess) {
			if match(k) {
				m.setEnabled(sess, k, false)
			}
		}
	}
	m.mu.Lock()
}
