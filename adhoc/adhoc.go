// Package adhoc runs XEP-0050 Ad-Hoc Commands on the server's JID: it
// lists the commands other modules registered (module.Registry.Command)
// through disco, and drives their execution: a command with a form answers
// "executing" with a session id, the submitted form completes it.
//
// Rules:
//   - Only the server's own users, on their client streams, may list or
//     run commands; remote entities get forbidden. Each command's Allowed
//     is checked when listing, when starting and at every later stage.
//   - A session belongs to the full JID that started it and to one command;
//     anything else naming its id gets bad-sessionid. Sessions expire after
//     SessionTTL and are bounded per user and in total.
package adhoc

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const (
	// SessionTTL is how long a started command waits for its form.
	SessionTTL = 10 * time.Minute
	// MaxSessionsPerUser bounds sessions waiting for a form per account.
	MaxSessionsPerUser = 16
	// MaxSessions bounds all sessions waiting for a form.
	MaxSessions = 10000
)

// Module implements module.Module.
type Module struct {
	log *slog.Logger
	reg *module.Registry
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	perUser  map[string]int
}

type session struct {
	node      string
	requester string // full JID
	owner     string // bare JID, for the per-user bound
	started   time.Time
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(log *slog.Logger) *Module {
	if log == nil {
		log = slog.Default()
	}
	return &Module{log: log, now: time.Now, sessions: map[string]*session{}, perUser: map[string]int{}}
}

// Name implements module.Module.
func (m *Module) Name() string { return "adhoc" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	r.Feature(xep.NSCommands)
	r.IQ(xep.NSCommands, "command", module.TargetServer, m.handle)
	r.ServerDiscoNode(m.disco)
	return nil
}

// local reports whether ev comes from a client stream of a local user.
func local(ev *module.Event) bool {
	return ev.Origin.Kind == module.FromClient && ev.From.Localpart() != "" && ev.From.Domainpart() == ev.To.Domainpart()
}

func (m *Module) command(node string) *module.Command {
	for _, c := range m.reg.Commands() {
		if c.Node == node {
			return &c
		}
	}
	return nil
}

func allowed(ctx context.Context, c *module.Command, requester jid.JID) bool {
	return c.Allowed == nil || c.Allowed(ctx, requester)
}

// disco answers disco#items on the commands node (the commands this
// requester may run) and disco#info on it and on each command node.
func (m *Module) disco(ctx context.Context, ev *module.Event, node string, items bool) (*wire.Element, bool, error) {
	if node == xep.NSCommands {
		if !items {
			return wire.NewElement(xep.NSDiscoInfo, "query", "node", node).Add(
				wire.NewElement(xep.NSDiscoInfo, "identity", "category", "automation", "type", "command-list", "name", "Commands")), true, nil
		}
		q := wire.NewElement(xep.NSDiscoItems, "query", "node", node)
		if local(ev) {
			for _, c := range m.reg.Commands() {
				if allowed(ctx, &c, ev.From) {
					q.Add(wire.NewElement(xep.NSDiscoItems, "item", "jid", ev.To.Domainpart(), "node", c.Node, "name", c.Name))
				}
			}
		}
		return q, true, nil
	}
	c := m.command(node)
	if c == nil {
		return nil, false, nil
	}
	if !local(ev) || !allowed(ctx, c, ev.From) {
		return nil, true, module.Err(wire.ErrItemNotFound)
	}
	if items {
		return wire.NewElement(xep.NSDiscoItems, "query", "node", node), true, nil
	}
	return wire.NewElement(xep.NSDiscoInfo, "query", "node", node).Add(
		wire.NewElement(xep.NSDiscoInfo, "identity", "category", "automation", "type", "command-node", "name", c.Name),
		wire.NewElement(xep.NSDiscoInfo, "feature", "var", xep.NSCommands),
		wire.NewElement(xep.NSDiscoInfo, "feature", "var", xep.NSDataForms)), true, nil
}

// cmdError is a stanza error with an XEP-0050 application condition.
func cmdError(cond, app, text string) *module.StanzaError {
	return &module.StanzaError{Condition: cond, Text: text, App: wire.NewElement(xep.NSCommands, app)}
}

func (m *Module) handle(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "set" {
		return nil, module.Errorf(wire.ErrBadRequest, "ad-hoc commands are run with type='set'")
	}
	req := ev.Stanza.Child(xep.NSCommands, "command")
	node := req.AttrValue("node")
	c := m.command(node)
	if c == nil {
		return nil, module.Errorf(wire.ErrItemNotFound, "no such command")
	}
	if !local(ev) || !allowed(ctx, c, ev.From) {
		m.log.Info("ad-hoc command refused", "node", node, "from", ev.From.Bare().String())
		return nil, module.Errorf(wire.ErrForbidden, "you are not allowed to run this command")
	}
	action := req.AttrValue("action")
	sid := req.AttrValue("sessionid")
	if sid == "" {
		switch action {
		case "", "execute", "complete":
		default:
			return nil, cmdError(wire.ErrBadRequest, "bad-action", "start the command with action='execute'")
		}
		if c.Form == nil {
			return m.run(ctx, c, ev, "", nil)
		}
		form, err := c.Form(ctx, ev.From)
		if err != nil {
			return nil, err
		}
		if sid, err = m.open(node, ev.From); err != nil {
			return nil, err
		}
		return wire.NewElement(xep.NSCommands, "command", "node", node, "sessionid", sid, "status", "executing").Add(
			wire.NewElement(xep.NSCommands, "actions", "execute", "complete").Add(wire.NewElement(xep.NSCommands, "complete")),
			form), nil
	}
	if err := m.take(sid, node, ev.From); err != nil {
		return nil, err
	}
	switch action {
	case "cancel":
		return wire.NewElement(xep.NSCommands, "command", "node", node, "sessionid", sid, "status", "canceled"), nil
	case "", "execute", "complete", "next":
	default:
		return nil, cmdError(wire.ErrBadRequest, "bad-action", "this command has one stage: complete it or cancel it")
	}
	x := req.Child(xep.NSDataForms, "x")
	typ, values := xep.FormValues(x)
	if x == nil || typ != "submit" {
		return nil, cmdError(wire.ErrBadRequest, "bad-payload", "submit the command's form (<x xmlns='jabber:x:data' type='submit'/>)")
	}
	return m.run(ctx, c, ev, sid, values)
}

func (m *Module) run(ctx context.Context, c *module.Command, ev *module.Event, sid string, values module.FormValues) (*wire.Element, error) {
	res, err := c.Run(ctx, ev.From, values)
	if err != nil {
		var se *module.StanzaError
		if !errors.As(err, &se) {
			m.log.Error("ad-hoc command failed", "node", c.Node, "err", err)
		}
		return nil, err
	}
	if sid == "" {
		sid = rand.Text()
	}
	out := wire.NewElement(xep.NSCommands, "command", "node", c.Node, "sessionid", sid, "status", "completed")
	if res != nil {
		if res.Note != "" {
			typ := res.NoteType
			if typ == "" {
				typ = "info"
			}
			out.Add(wire.NewElement(xep.NSCommands, "note", "type", typ).AddText(res.Note))
		}
		if res.Form != nil {
			out.Add(res.Form)
		}
		if res.After != nil {
			m.reg.Sender().Route(ctx, wire.IQResult(ev.Stanza, out))
			res.After()
			return nil, module.ErrReplied
		}
	}
	return out, nil
}

// open starts a session for requester waiting for node's form.
func (m *Module) open(node string, requester jid.JID) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked()
	owner := requester.Bare().String()
	if m.perUser[owner] >= MaxSessionsPerUser || len(m.sessions) >= MaxSessions {
		return "", module.Errorf(wire.ErrResourceConstraint, "too many commands in progress; complete or cancel some first")
	}
	sid := rand.Text()
	m.sessions[sid] = &session{node: node, requester: requester.String(), owner: owner, started: m.now()}
	m.perUser[owner]++
	return sid, nil
}

// take ends the session sid if it is requester's session of node.
func (m *Module) take(sid, node string, requester jid.JID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[sid]
	if s == nil || s.node != node || s.requester != requester.String() {
		return cmdError(wire.ErrBadRequest, "bad-sessionid", "no such command session")
	}
	m.dropLocked(sid, s)
	if m.now().Sub(s.started) > SessionTTL {
		return cmdError(wire.ErrNotAllowed, "session-expired", "the command session expired; start again")
	}
	return nil
}

func (m *Module) dropLocked(sid string, s *session) {
	delete(m.sessions, sid)
	if m.perUser[s.owner]--; m.perUser[s.owner] <= 0 {
		delete(m.perUser, s.owner)
	}
}

// expireLocked drops sessions older than twice the TTL (a session between
// one and two TTLs old still gets session-expired rather than
// bad-sessionid).
func (m *Module) expireLocked() {
	now := m.now()
	for sid, s := range m.sessions {
		if now.Sub(s.started) > 2*SessionTTL {
			m.dropLocked(sid, s)
		}
	}
}
