// Package module is Parley's extension API. Feature modules register typed
// hooks, IQ handlers, disco features and stream features into a Registry;
// the router runs them in the order the modules were registered (the single
// list in server/modules.go), so there are no priority numbers.
package module

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/wire"
)

// Module is one feature. Optional interfaces Starter and Stopper are found by
// type assertion.
type Module interface {
	Name() string
	Register(r *Registry) error
}

// Starter is implemented by modules with background work.
type Starter interface {
	Start(ctx context.Context) error
}

// Stopper is implemented by modules that must flush or release on shutdown.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Drainer is implemented by modules that must speak before the server's
// streams close on shutdown (chat rooms tell their occupants, status
// 332). Drain runs before client and server streams are closed, Stop
// after.
type Drainer interface {
	Drain(ctx context.Context)
}

// Verdict is a hook's decision.
type Verdict int

const (
	// Continue passes the stanza to the next handler and then on.
	Continue Verdict = iota
	// Handled stops processing: the handler took care of the stanza.
	Handled
	// Drop stops processing and discards the stanza silently.
	Drop
)

// OriginKind says where a stanza entered the server.
type OriginKind int

const (
	// FromClient: a local user's c2s session (From is its full JID).
	FromClient OriginKind = iota
	// FromServer: a remote server over s2s.
	FromServer
	// FromLocal: generated inside this server by a module or the router.
	FromLocal
	// FromComponent: an external component (XEP-0114); From is at its
	// domain. Like a remote server, but it may send to remote domains.
	FromComponent
)

// Origin describes where a stanza came from.
type Origin struct {
	Kind    OriginKind
	Session Session // set for FromClient
	// Hold, when set, lets modules queue writes for the stanza instead of
	// waiting for them; see Hold. Transports that read ahead set it.
	Hold *Hold
	// From, when set (FromClient), is the stanza's 'from' as the
	// transport stamped it, already parsed: routing does not parse it
	// again.
	From jid.JID
}

// Event is what hooks see. Handlers may replace Stanza (e.g. to add a
// stanza-id); later handlers and delivery use the replacement.
type Event struct {
	Stanza *wire.Stanza
	From   jid.JID
	To     jid.JID // never empty: a missing 'to' is resolved to the sender's bare JID or the server
	Origin Origin
	// ArchiveID is set by the archive for later handlers (stanza-id).
	ArchiveID string
	// Forwards counts the nodes of a cluster that passed the stanza on to
	// the node running its entity (see Placement).
	Forwards int
	// Rescued marks a message a client never acknowledged, handed to the
	// undeliverable chain when its session ended (XEP-0198): it goes to
	// offline storage even when other resources are available.
	Rescued bool
}

// Handler is a hook on a routing point.
type Handler func(ctx context.Context, ev *Event) Verdict

// Target is what an IQ is addressed to.
type Target int

const (
	// TargetServer: the server domain.
	TargetServer Target = iota
	// TargetAccount: a local user's bare JID (or no 'to': the sender's own account).
	TargetAccount
	// TargetHost: a service host's own domain (upload.example.org,
	// conference.example.org). Registered per host with HostIQ.
	TargetHost
	// TargetHostEntity: a bare JID with a localpart under a service host
	// (a MUC room). Registered per host with HostIQ; IQs to full JIDs
	// under a host go to the host's Handler instead.
	TargetHostEntity
)

// IQHandler answers an IQ request of type get or set. It returns the
// payload of the result (nil for an empty result) or an error; a *StanzaError
// becomes that error reply, any other error internal-server-error.
// A handler may send other stanzas (e.g. query results) before returning.
type IQHandler func(ctx context.Context, ev *Event) (*wire.Element, error)

// StanzaError is an error an IQ handler or hook returns to the sender.
type StanzaError struct {
	Condition string
	Text      string
	App       *wire.Element // application-specific condition
}

func (e *StanzaError) Error() string {
	if e.Text != "" {
		return e.Condition + ": " + e.Text
	}
	return e.Condition
}

// Errorf returns a *StanzaError with a formatted text.
func Errorf(cond, format string, args ...any) *StanzaError {
	return &StanzaError{Condition: cond, Text: fmt.Sprintf(format, args...)}
}

// Err returns a *StanzaError without text.
func Err(cond string) *StanzaError { return &StanzaError{Condition: cond} }

// Flags are per-session booleans that modules set and the router or other
// modules read.
type Flags uint32

const (
	// FlagInterested: the session requested the roster (gets roster pushes).
	FlagInterested Flags = 1 << iota
	// FlagCarbons: XEP-0280 enabled.
	FlagCarbons
	// FlagInitialPresenceSent: the session has sent initial presence.
	FlagInitialPresenceSent
	// FlagInactive: XEP-0352 client state is inactive.
	FlagInactive
)

// Session is a bound client session as modules and the router see it.
// Methods are safe for concurrent use.
type Session interface {
	JID() jid.JID
	// Send enqueues without blocking; an error means the session is gone or
	// its queue overflowed (it is then closed with policy-violation).
	Send(st *wire.Stanza) error
	// Presence is the last available presence broadcast, nil when unavailable.
	Presence() *wire.Stanza
	SetPresence(st *wire.Stanza)
	// Priority of the current presence (RFC 6121 §4.7.2.3); 0 when unavailable.
	Priority() int
	Flags() Flags
	SetFlags(set, clear Flags)
	// Close ends the stream with a stream error (nil for a plain close).
	Close(err *wire.StreamError)
	// Conn returns the connection id for logs.
	ConnID() string
}

// Sessions gives modules read access to bound sessions.
type Sessions interface {
	// Resources returns the sessions bound for a local bare JID.
	Resources(bare jid.JID) []Session
	// Session returns the session bound to a full JID, or nil.
	Session(full jid.JID) Session
}

// Sender lets modules emit stanzas into normal routing.
type Sender interface {
	// Route routes a stanza generated by the server (origin FromLocal).
	Route(ctx context.Context, st *wire.Stanza)
	// Request sends an IQ get/set and waits for its result or error.
	Request(ctx context.Context, iq *wire.Stanza) (*wire.Stanza, error)
}

// ErrReplied is returned by an IQ handler that has already sent its reply
// through the Sender (e.g. to do more after it); the router sends nothing.
var ErrReplied = errors.New("module: reply already sent")

// ErrNoSession is returned by Session.Send when the session has ended.
var ErrNoSession = errors.New("module: session closed")

// Identity is a disco#info identity.
type Identity struct{ Category, Type, Name string }

// StreamFeatureFunc returns a stream feature element for a session being
// negotiated, or nil. bound reports whether the resource is bound already
// (features offered after authentication).
type StreamFeatureFunc func(authenticated bool) *wire.Element

// Host is a service host (e.g. upload.example.org). IQ requests (get,
// set) to its domain or to a bare JID under it are answered by the
// handlers registered with HostIQ, with the router's IQ rules (one payload
// element, service-unavailable when nothing handles it, a reply from the
// handler's result or error). Every other stanza addressed to the host or
// a JID under it (messages, presence, IQs to full JIDs, IQ results that
// answer nothing the server asked) goes to Handler; a nil Handler answers
// those with service-unavailable.
type Host struct {
	Domain  string
	Parent  string // the virtual host it belongs to
	Name    string // disco name
	Handler Handler
	// AllStanzas: Handler gets every stanza, IQ requests to the domain
	// included (an external component answers them itself), instead of
	// the router dispatching those to the host's IQ handlers.
	AllStanzas bool
}

// Registry collects the hooks of all modules. It is filled during startup
// (Register calls) and read-only afterwards, so reads take no lock.
type Registry struct {
	outbound      []Handler
	inbound       []Handler
	undeliverable []Handler
	iq            map[iqKey]IQHandler

	features        []string
	accountFeatures []string
	accountIDs      []Identity
	accountItems    []AccountItemsFunc
	identities      []Identity
	streamFeatures  []StreamFeatureFunc
	commands        []Command
	discoNodes      []DiscoNodeFunc
	hosts           []Host

	onBound      []func(ctx context.Context, s Session)
	onUnbound    []func(ctx context.Context, s Session)
	onHibernated []func(ctx context.Context, s Session)
	onQueued     []func(ctx context.Context, s Session, st *wire.Stanza)
	onNotify     []func(ctx context.Context, owner string, st *wire.Stanza)
	ackOverdue   []AckOverdueHook
	onRelayed    []func(ctx context.Context, s Session, st *wire.Stanza)
	onDelete     []func(ctx context.Context, bare string) error
	bind2        bind2Hooks
	onLost       []func(entity string)

	placement Placement

	accounts Accounts
	sender   Sender
	sessions Sessions
	domains  []string
	started  time.Time
}

type iqKey struct {
	ns, local string
	target    Target
	host      string // for TargetHost and TargetHostEntity
}

// NewRegistry returns an empty registry for the given local domains.
func NewRegistry(domains []string, sender Sender, sessions Sessions) *Registry {
	return &Registry{iq: map[iqKey]IQHandler{}, sender: sender, sessions: sessions, domains: domains, started: time.Now()}
}

// Accounts is the store's account directory; storage.Accounts satisfies
// it.
type Accounts interface {
	AccountExists(ctx context.Context, bare string) (bool, error)
	DeleteAccount(ctx context.Context, bare string) error
}

// ErrNoAccount is returned by Registry.DeleteAccount for an account that
// does not exist.
var ErrNoAccount = errors.New("module: no such account")

// SetAccounts installs the account directory. The server calls it before
// modules register.
func (r *Registry) SetAccounts(a Accounts) { r.accounts = a }

// AccountExists is the one way to ask whether a local account exists: an
// account with a bound session does, otherwise the store answers. Without
// an account directory (tests of a single module) every account exists.
func (r *Registry) AccountExists(ctx context.Context, bare jid.JID) (bool, error) {
	if r.sessions != nil && len(r.sessions.Resources(bare.Bare())) > 0 {
		return true, nil
	}
	if r.accounts == nil {
		return true, nil
	}
	return r.accounts.AccountExists(ctx, bare.Bare().String())
}

// OnDeleteAccount subscribes to account deletion. Every module that keeps
// state for an account outside the rows the store's DeleteAccount removes
// (files, caches, live rooms, other nodes) registers here; f gets the bare
// JID. Hooks run in module order before the store deletes the account's
// rows, so they still find the records that name their state. f must be
// idempotent: when a hook fails, the account stays and deletion can be
// run again from the start.
func (r *Registry) OnDeleteAccount(f func(ctx context.Context, bare string) error) {
	r.onDelete = append(r.onDelete, f)
}

// DeleteAccount is the one way to delete an account: the OnDeleteAccount
// hooks, then the store's DeleteAccount (every row the account owns, in
// one transaction). It does not end the account's sessions; callers do,
// with the stream error that fits. ErrNoAccount when there is no such
// account.
func (r *Registry) DeleteAccount(ctx context.Context, bare jid.JID) error {
	if r.accounts == nil {
		return errors.New("module: no account directory")
	}
	b := bare.Bare().String()
	switch ok, err := r.accounts.AccountExists(ctx, b); {
	case err != nil:
		return err
	case !ok:
		return ErrNoAccount
	}
	for _, f := range r.onDelete {
		if err := f(ctx, b); err != nil {
			return err
		}
	}
	return r.accounts.DeleteAccount(ctx, b)
}

// Outbound hooks stanzas from local users before routing (Prosody pre-*).
func (r *Registry) Outbound(h Handler) { r.outbound = append(r.outbound, h) }

// Inbound hooks stanzas to local users before delivery.
func (r *Registry) Inbound(h Handler) { r.inbound = append(r.inbound, h) }

// Undeliverable hooks stanzas to a local user with no eligible resource.
func (r *Registry) Undeliverable(h Handler) { r.undeliverable = append(r.undeliverable, h) }

// IQ registers the handler for requests whose payload is {ns}local sent to
// target. Registering the same key twice is a programming error.
func (r *Registry) IQ(ns, local string, target Target, h IQHandler) {
	if target == TargetHost || target == TargetHostEntity {
		panic("module: IQ handlers of service hosts are registered with HostIQ")
	}
	r.addIQ(iqKey{ns, local, target, ""}, h)
}

// HostIQ registers the handler for requests whose payload is {ns}local
// sent to the service host domain (target TargetHost) or to bare JIDs
// under it (TargetHostEntity). The host must be added with AddHost.
func (r *Registry) HostIQ(domain, ns, local string, target Target, h IQHandler) {
	if target != TargetHost && target != TargetHostEntity {
		panic("module: HostIQ takes TargetHost or TargetHostEntity")
	}
	r.addIQ(iqKey{ns, local, target, domain}, h)
}

func (r *Registry) addIQ(k iqKey, h IQHandler) {
	if _, dup := r.iq[k]; dup {
		panic("module: duplicate IQ handler for {" + k.ns + "}" + k.local + " " + k.host)
	}
	r.iq[k] = h
}

// Feature adds a server disco#info feature.
func (r *Registry) Feature(ns ...string) { r.features = append(r.features, ns...) }

// AccountFeature adds a feature to disco#info on users' bare JIDs.
func (r *Registry) AccountFeature(ns ...string) { r.accountFeatures = append(r.accountFeatures, ns...) }

// AccountIdentity adds a disco#info identity on users' bare JIDs (e.g.
// pubsub/pep).
func (r *Registry) AccountIdentity(id Identity) { r.accountIDs = append(r.accountIDs, id) }

// AccountIdentities returns the bare-JID identities.
func (r *Registry) AccountIdentities() []Identity { return r.accountIDs }

// DiscoItem is one disco#items entry.
type DiscoItem struct{ JID, Node, Name string }

// AccountItemsFunc lists disco#items of owner's bare JID as visible to
// requester (e.g. PEP nodes the requester may access).
type AccountItemsFunc func(ctx context.Context, owner, requester string) ([]DiscoItem, error)

// AccountItems adds a provider of disco#items on users' bare JIDs.
func (r *Registry) AccountItems(f AccountItemsFunc) { r.accountItems = append(r.accountItems, f) }

// AccountItemsProviders returns the bare-JID disco#items providers.
func (r *Registry) AccountItemsProviders() []AccountItemsFunc { return r.accountItems }

// Identity adds a server disco#info identity.
func (r *Registry) Identity(id Identity) { r.identities = append(r.identities, id) }

// StreamFeature adds a stream feature.
func (r *Registry) StreamFeature(f StreamFeatureFunc) { r.streamFeatures = append(r.streamFeatures, f) }

// AddHost registers a service host.
func (r *Registry) AddHost(h Host) { r.hosts = append(r.hosts, h) }

// OnBound subscribes to resource binding.
func (r *Registry) OnBound(f func(ctx context.Context, s Session)) { r.onBound = append(r.onBound, f) }

// OnUnbound subscribes to session end (after the session left the registry).
func (r *Registry) OnUnbound(f func(ctx context.Context, s Session)) {
	r.onUnbound = append(r.onUnbound, f)
}

// OnHibernated subscribes to sessions whose connection dropped while
// stream management keeps them resumable (XEP-0198); stanzas for them are
// queued, so push notifications are the way to reach the device.
func (r *Registry) OnHibernated(f func(ctx context.Context, s Session)) {
	r.onHibernated = append(r.onHibernated, f)
}

// FireHibernated runs OnHibernated subscribers.
func (r *Registry) FireHibernated(ctx context.Context, s Session) {
	for _, f := range r.onHibernated {
		f(ctx, s)
	}
}

// OnStanzaQueued subscribes to stanzas queued for a hibernated session
// (nothing can deliver them until the client resumes).
func (r *Registry) OnStanzaQueued(f func(ctx context.Context, s Session, st *wire.Stanza)) {
	r.onQueued = append(r.onQueued, f)
}

// FireStanzaQueued runs OnStanzaQueued subscribers.
func (r *Registry) FireStanzaQueued(ctx context.Context, s Session, st *wire.Stanza) {
	for _, f := range r.onQueued {
		f(ctx, s, st)
	}
}

// OnNotify subscribes to requests to notify a local user who is away
// about a stanza they were not sent and will fetch later: a mention in a
// chat room they have left, or whose messages are queued for their
// hibernated session (they catch up through the room's archive). push
// turns them into XEP-0357 notifications. f must not block.
func (r *Registry) OnNotify(f func(ctx context.Context, owner string, st *wire.Stanza)) {
	r.onNotify = append(r.onNotify, f)
}

// FireNotify runs OnNotify subscribers; owner is a bare JID.
func (r *Registry) FireNotify(ctx context.Context, owner string, st *wire.Stanza) {
	for _, f := range r.onNotify {
		f(ctx, owner, st)
	}
}

// AckOverdueHook is a subscriber to overdue stream management
// acknowledgements (see OnAckOverdue).
type AckOverdueHook struct {
	// After is how long an ack request may stay unanswered.
	After time.Duration
	// F gets the stanzas the client has not acknowledged.
	F func(ctx context.Context, s Session, unacked []*wire.Stanza)
}

// OnAckOverdue subscribes to sessions whose client has not answered a
// XEP-0198 ack request (<r/>) within after while stanzas it was sent are
// unacknowledged: the connection looks alive but the device may be asleep
// or gone, so push notifications are the way to reach it. f runs once with
// every unacknowledged stanza when the request becomes overdue, then with
// each further stanza sent to the session while it stays overdue; an
// answer (<a/>), hibernation or the end of the session stops it. f must
// not block: it runs on c2s goroutines. after <= 0 subscribes nothing.
func (r *Registry) OnAckOverdue(after time.Duration, f func(ctx context.Context, s Session, unacked []*wire.Stanza)) {
	if after > 0 {
		r.ackOverdue = append(r.ackOverdue, AckOverdueHook{After: after, F: f})
	}
}

// OnRelayed subscribes to stanzas that another node of a cluster routed
// (its hook chains ran there) as they are handed to a session bound on
// this node. Modules that learn from what reaches a user (pep: the
// capabilities in contacts' presence) learn it here too; they must not
// act on it a second time (the routing node did). Never fired on a
// single node.
func (r *Registry) OnRelayed(f func(ctx context.Context, s Session, st *wire.Stanza)) {
	r.onRelayed = append(r.onRelayed, f)
}

// FireRelayed runs OnRelayed subscribers.
func (r *Registry) FireRelayed(ctx context.Context, s Session, st *wire.Stanza) {
	for _, f := range r.onRelayed {
		f(ctx, s, st)
	}
}

// AckOverdueHooks returns the OnAckOverdue subscribers, for c2s.
func (r *Registry) AckOverdueHooks() []AckOverdueHook { return r.ackOverdue }

// Sender returns the stanza sender.
func (r *Registry) Sender() Sender { return r.sender }

// Sessions returns the session directory.
func (r *Registry) Sessions() Sessions { return r.sessions }

// Domains returns the local virtual hosts.
func (r *Registry) Domains() []string { return r.domains }

// Started is when the server started.
func (r *Registry) Started() time.Time { return r.started }

// Read side, used by the router, c2s and the disco module.

// OutboundHooks returns the outbound chain.
func (r *Registry) OutboundHooks() []Handler { return r.outbound }

// InboundHooks returns the inbound chain.
func (r *Registry) InboundHooks() []Handler { return r.inbound }

// UndeliverableHooks returns the undeliverable chain.
func (r *Registry) UndeliverableHooks() []Handler { return r.undeliverable }

// IQHandler looks up an IQ handler.
func (r *Registry) IQHandler(ns, local string, t Target) IQHandler {
	return r.iq[iqKey{ns, local, t, ""}]
}

// HostIQHandler looks up an IQ handler of a service host.
func (r *Registry) HostIQHandler(domain, ns, local string, t Target) IQHandler {
	return r.iq[iqKey{ns, local, t, domain}]
}

// Features returns the server features.
func (r *Registry) Features() []string { return r.features }

// AccountFeatures returns bare-JID features.
func (r *Registry) AccountFeatures() []string { return r.accountFeatures }

// Identities returns the server identities.
func (r *Registry) Identities() []Identity { return r.identities }

// StreamFeatures returns the stream feature functions.
func (r *Registry) StreamFeatures() []StreamFeatureFunc { return r.streamFeatures }

// Hosts returns the service hosts.
func (r *Registry) Hosts() []Host { return r.hosts }

// FireBound runs OnBound subscribers.
func (r *Registry) FireBound(ctx context.Context, s Session) {
	for _, f := range r.onBound {
		f(ctx, s)
	}
}

// FireUnbound runs OnUnbound subscribers.
func (r *Registry) FireUnbound(ctx context.Context, s Session) {
	for _, f := range r.onUnbound {
		f(ctx, s)
	}
}

// RunChain runs handlers in order until one stops the chain.
func RunChain(ctx context.Context, hs []Handler, ev *Event) Verdict {
	for _, h := range hs {
		if v := h(ctx, ev); v != Continue {
			return v
		}
	}
	return Continue
}
