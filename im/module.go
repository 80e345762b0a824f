// Package im implements instant messaging and presence (RFC 6121) as a
// module: the roster (with XEP-0237 versioning), presence broadcast and
// probes, presence subscriptions with pre-approval, offline messages
// (XEP-0160) and the blocking command (XEP-0191).
//
// The user's side of a subscription changes in the Outbound hook (when the
// user's client sends the stanza); the contact's side changes in the Inbound
// hook when the stanza arrives, so the same code serves local and remote
// contacts.
package im

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces of the stream features this module offers.
const (
	NSPreApproval = xep.NSPreApproval
)

// Defaults of the limits (DefaultLimits), also for zero Config fields.
const (
	DefaultMaxRosterItems     = 2000
	DefaultMaxOfflineMessages = 1000
	DefaultMaxBlockItems      = 1000
	// DefaultMaxOfflineBytes bounds the bytes of one user's offline
	// messages: a thousand messages of the largest size would be 256 MiB.
	DefaultMaxOfflineBytes = 16 << 20
	// MaxNameLength and MaxGroupLength bound roster item names and group
	// names in bytes (RFC 6121 §2.3.3 "server-configured limit").
	MaxNameLength  = 1023
	MaxGroupLength = 1023
	// maxBlockCache bounds the number of users whose block list is cached.
	maxBlockCache = 100_000
)

// Limits are this module's keys of the limits section of the
// configuration file (the YAML keys are the mapstructure tags); the
// server's limits section embeds them, so their defaults and checks are
// these and nowhere else.
type Limits struct {
	// MaxOfflineMessages stored per user (XEP-0160).
	MaxOfflineMessages int `mapstructure:"max_offline_messages"`
	// MaxRosterItems per user.
	MaxRosterItems int `mapstructure:"max_roster_items"`
	// MaxBlockItems: blocked JIDs per user (XEP-0191).
	MaxBlockItems int `mapstructure:"max_block_items"`
	// MaxOfflineBytes bounds the bytes of one user's offline messages.
	MaxOfflineBytes int64 `mapstructure:"max_offline_bytes"`
}

// DefaultLimits are the defaults of Limits.
func DefaultLimits() Limits {
	return Limits{MaxOfflineMessages: DefaultMaxOfflineMessages, MaxRosterItems: DefaultMaxRosterItems,
		MaxBlockItems: DefaultMaxBlockItems, MaxOfflineBytes: DefaultMaxOfflineBytes}
}

// Problems returns what is wrong with l, each as "key: problem" with the
// key relative to the limits section.
func (l Limits) Problems() []string {
	var p []string
	for _, k := range []struct {
		key string
		v   int
	}{{"max_offline_messages", l.MaxOfflineMessages}, {"max_roster_items", l.MaxRosterItems}, {"max_block_items", l.MaxBlockItems}} {
		if k.v < 1 {
			p = append(p, fmt.Sprintf("%s: expected a number >= 1, got %d", k.key, k.v))
		}
	}
	if l.MaxOfflineBytes < 1 {
		p = append(p, fmt.Sprintf("max_offline_bytes: expected a number of bytes >= 1, got %d", l.MaxOfflineBytes))
	}
	return p
}

// Config configures the module: the limits from the file and what the
// server wires in. Zero limits take the defaults; a negative limit means
// no limit (for tests and tools: the file cannot ask for it).
type Config struct {
	Limits
	// Usage reads users' stored bytes, for MaxOfflineBytes (nil: no byte
	// limit).
	Usage  storage.UsageReader
	Logger *slog.Logger
}

// Module implements module.Module.
type Module struct {
	cfg Config
	// limits are cfg's Max* values, replaced by SetLimits (reload).
	limits  atomic.Pointer[Limits]
	log     *slog.Logger
	roster  storage.Roster
	offline storage.Offline
	blocks  storage.Blocklist

	reg      *module.Registry
	sender   module.Sender
	sessions module.Sessions

	// locks serialize read-modify-write of one user's roster (striped by
	// user). They are never held while routing, so handlers that trigger
	// each other (both users local) cannot deadlock.
	locks [64]sync.Mutex

	// stateMu serializes read-modify-write of sessions' values (the
	// directed-presence list).
	stateMu sync.Mutex

	blockMu    sync.Mutex
	blockCache map[string]blockSet
	blockGen   uint64
}

// What the module remembers about a session lives in the session's
// values (module.SessionValues), so that in a cluster every node knows it
// (a probe answered on the prober's node, the end of a session of a dead
// node announced by a survivor, a block push to a session on another
// node) and it moves with a session that resumes on another node.
const (
	// valDirected: the JIDs that got directed presence not covered by a
	// subscription (RFC 6121 §4.6), one per line.
	valDirected = "im.directed"
	// valBlockInterest: the session requested the block list (XEP-0191
	// pushes).
	valBlockInterest = "im.blocklist"
)

// directed returns the directed-presence recipients of s.
func directed(s module.Session) []string {
	v := module.Value(s, valDirected)
	if len(v) == 0 {
		return nil
	}
	return strings.Split(string(v), "\n")
}

// sentDirected reports whether session s sent directed presence to j (or
// its bare JID) that is still in force.
func (m *Module) sentDirected(s module.Session, j jid.JID) bool {
	full, bare := j.String(), j.Bare().String()
	for _, t := range directed(s) {
		if t == full || t == bare {
			return true
		}
	}
	return false
}

// setDirected adds (add) or removes target from s's directed-presence
// recipients.
func (m *Module) setDirected(s module.Session, target string, add bool) {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	list := directed(s)
	i := slices.Index(list, target)
	switch {
	case add && i < 0:
		list = append(list, target)
	case !add && i >= 0:
		list = slices.Delete(list, i, i+1)
	default:
		return
	}
	module.SetValue(s, valDirected, []byte(strings.Join(list, "\n")))
}

// takeDirected returns s's directed-presence recipients and forgets them.
func (m *Module) takeDirected(s module.Session) []string {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	list := directed(s)
	if len(list) > 0 {
		module.SetValue(s, valDirected, nil)
	}
	return list
}

var _ module.Module = (*Module)(nil)

// SetLimits replaces the limits (configuration reload); zero values take
// the defaults, negative ones mean no limit.
func (m *Module) SetLimits(l Limits) {
	def := DefaultLimits()
	if l.MaxRosterItems == 0 {
		l.MaxRosterItems = def.MaxRosterItems
	}
	if l.MaxOfflineMessages == 0 {
		l.MaxOfflineMessages = def.MaxOfflineMessages
	}
	if l.MaxBlockItems == 0 {
		l.MaxBlockItems = def.MaxBlockItems
	}
	if l.MaxOfflineBytes == 0 {
		l.MaxOfflineBytes = def.MaxOfflineBytes
	}
	m.limits.Store(&l)
}

func (m *Module) limit() *Limits { return m.limits.Load() }

// New returns the module.
func New(cfg Config, roster storage.Roster, offline storage.Offline, blocks storage.Blocklist) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Module{cfg: cfg, log: cfg.Logger.With("module", "im"), roster: roster, offline: offline, blocks: blocks,
		blockCache: map[string]blockSet{}}
	m.SetLimits(cfg.Limits)
	return m
}

// Name implements module.Module.
func (m *Module) Name() string { return "im" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	m.sender = r.Sender()
	m.sessions = r.Sessions()
	if m.sender == nil || m.sessions == nil {
		return errors.New("im: registry has no sender or session directory")
	}
	r.IQ(xep.NSRoster, "query", module.TargetAccount, m.handleRoster)
	// Roster, offline queue and block list are the account's rows; the
	// cached block list must not outlive them (an account created again
	// under the same name would inherit it).
	r.OnDeleteAccount(func(ctx context.Context, bare string) error {
		m.invalidateBlocks(bare)
		return nil
	})
	r.StreamFeature(func(authenticated bool) *wire.Element {
		if !authenticated {
			return nil
		}
		return wire.NewElement(xep.NSRosterVer, "ver")
	})
	r.StreamFeature(func(authenticated bool) *wire.Element {
		if !authenticated {
			return nil
		}
		return wire.NewElement(NSPreApproval, "sub")
	})
	if m.blocks != nil {
		r.Feature(xep.NSBlocking)
		r.IQ(xep.NSBlocking, "blocklist", module.TargetAccount, m.handleBlocklist)
		r.IQ(xep.NSBlocking, "block", module.TargetAccount, m.handleBlock)
		r.IQ(xep.NSBlocking, "unblock", module.TargetAccount, m.handleUnblock)
	}
	if m.offline != nil {
		r.Feature(xep.NSOffline)
		r.Undeliverable(m.undeliverable)
	}
	r.Outbound(m.outbound)
	r.Inbound(m.inbound)
	r.OnUnbound(m.unbound)
	return nil
}

// outbound hooks stanzas from local clients.
func (m *Module) outbound(ctx context.Context, ev *module.Event) module.Verdict {
	if v := m.outboundBlocked(ctx, ev); v != module.Continue {
		return v
	}
	if ev.Stanza.Name != "presence" {
		return module.Continue
	}
	return m.outboundPresence(ctx, ev)
}

// inbound hooks stanzas to local entities.
func (m *Module) inbound(ctx context.Context, ev *module.Event) module.Verdict {
	if ev.To.Localpart() == "" {
		return module.Continue
	}
	if v := m.inboundBlocked(ctx, ev); v != module.Continue {
		return v
	}
	if ev.Stanza.Name != "presence" {
		return module.Continue
	}
	switch ev.Stanza.Type {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return m.inboundSubscription(ctx, ev)
	case "probe":
		return m.inboundProbe(ctx, ev)
	}
	return module.Continue
}

// lock locks the roster of bare and returns the unlock function.
func (m *Module) lock(bare string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(bare))
	mu := &m.locks[h.Sum32()%uint32(len(m.locks))]
	mu.Lock()
	return mu.Unlock
}

// originSession returns the client session that sent ev.
func (m *Module) originSession(ev *module.Event) module.Session {
	if ev.Origin.Session != nil {
		return ev.Origin.Session
	}
	if ev.Origin.Kind == module.FromClient && ev.From.Resourcepart() != "" {
		return m.sessions.Session(ev.From)
	}
	return nil
}

// userExists reports whether the local account bare exists.
func (m *Module) userExists(ctx context.Context, bare jid.JID) bool {
	ok, err := m.reg.AccountExists(ctx, bare)
	if err != nil {
		m.log.Error("account lookup failed", "user", bare.String(), "err", err)
		return false
	}
	return ok
}

// route sends a server-generated stanza into normal routing.
func (m *Module) route(ctx context.Context, st *wire.Stanza) {
	if st == nil {
		return
	}
	m.sender.Route(ctx, st)
}

// routeAll routes stanzas in order.
func (m *Module) routeAll(ctx context.Context, sts []*wire.Stanza) {
	for _, st := range sts {
		m.route(ctx, st)
	}
}

// availableResources returns the sessions of bare with available presence.
func (m *Module) availableResources(bare jid.JID) []module.Session {
	var out []module.Session
	for _, s := range m.sessions.Resources(bare) {
		if s.Presence() != nil {
			out = append(out, s)
		}
	}
	return out
}

// sameBare reports whether a and b have the same bare JID.
func sameBare(a, b jid.JID) bool {
	return a.Localpart() == b.Localpart() && a.Domainpart() == b.Domainpart()
}

// newID returns a random stanza id.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// presence builds a presence stanza without payload.
func presence(typ, from, to string) *wire.Stanza {
	return wire.FromElement(wire.NewElement(wire.NSClient, "presence", "type", typ, "from", from, "to", to))
}

// stanzaErr is a helper for IQ handler errors.
func stanzaErr(cond, text string) error { return &module.StanzaError{Condition: cond, Text: text} }

// isNotFound reports storage.ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// wireAttr is a plain attribute, for values that may be empty.
func wireAttr(name, value string) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: name}, Value: value}
}
