package module

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/wire"
)

// Command is an XEP-0050 ad-hoc command offered on the server's JID.
// Modules register commands; the adhoc module runs the protocol (sessions,
// actions, disco) and calls them.
type Command struct {
	Node string // e.g. http://jabber.org/protocol/admin#add-user
	Name string // human-readable, for disco#items
	// Allowed reports whether requester (a full JID) may see and run the
	// command; it is checked at listing, at execution and at each stage.
	Allowed func(ctx context.Context, requester jid.JID) bool
	// Form returns the data form (type form) the requester fills in; nil
	// Form runs the command at once with no values.
	Form func(ctx context.Context, requester jid.JID) (*wire.Element, error)
	// Run executes the command with the submitted values. A *StanzaError
	// is sent as the IQ error (with its text); other errors are internal.
	Run func(ctx context.Context, requester jid.JID, values FormValues) (*CommandResult, error)
}

// CommandResult is what a completed command returns: a note and/or a
// result form.
type CommandResult struct {
	Note     string
	NoteType string // info (default), warn or error
	Form     *wire.Element
	// After runs once the reply is on its way (e.g. to end the
	// requester's own session).
	After func()
}

// FormValues are the submitted values of a data form, by field var.
type FormValues map[string][]string

// Get returns the first value of a field, or "".
func (v FormValues) Get(name string) string {
	if vs := v[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Command registers an ad-hoc command. Registering a node twice is a
// programming error.
func (r *Registry) Command(c Command) {
	for _, o := range r.commands {
		if o.Node == c.Node {
			panic("module: duplicate ad-hoc command " + c.Node)
		}
	}
	r.commands = append(r.commands, c)
}

// Commands returns the registered ad-hoc commands in registration order.
func (r *Registry) Commands() []Command { return r.commands }

// DiscoNodeFunc answers a disco#info (items false) or disco#items (items
// true) request on the server's JID for a node; handled false means the
// node is not this provider's.
type DiscoNodeFunc func(ctx context.Context, ev *Event, node string, items bool) (q *wire.Element, handled bool, err error)

// ServerDiscoNode adds a provider of disco nodes on the server's JID.
func (r *Registry) ServerDiscoNode(f DiscoNodeFunc) { r.discoNodes = append(r.discoNodes, f) }

// ServerDiscoNodes returns the providers of server disco nodes.
func (r *Registry) ServerDiscoNodes() []DiscoNodeFunc { return r.discoNodes }

// PreAuthStream is what a client stream that is not authenticated yet
// carries for in-band registration: where it is, and the invitation token
// the client presented (XEP-0445), kept for the rest of the stream.
type PreAuthStream struct {
	Domain     string
	RemoteAddr string
	Secure     bool // TLS is on
	Token      string
}
