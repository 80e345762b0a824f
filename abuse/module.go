package abuse

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Store is what the module works on.
type Store interface {
	storage.Suspensions
	storage.SpamReports
	storage.AccountSettings
	RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error)
	QueryArchive(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error)
}

// Defaults of Config.
const (
	DefaultCheckInterval     = 10 * time.Second
	DefaultMaxReportsPerUser = 100
)

// Config configures the module.
type Config struct {
	// CheckInterval is how often live sessions are checked against the
	// stored suspensions (a suspension made by another process, the CLI or
	// another node, takes at most this long to end them).
	CheckInterval time.Duration
	// BlockStrangers is the server default for blocking unsolicited
	// messages: messages and IQ requests to an account from JIDs that are
	// not in its roster and that it has not written to (Prosody's
	// mod_block_strangers). Each user can change it for their account.
	BlockStrangers bool
	// StrangersAllowLocal lets users of this server through.
	StrangersAllowLocal bool
	// ReportTo are JIDs that get each XEP-0377 report as a message (an
	// abuse desk, the admins); empty: reports are only stored.
	ReportTo []string
	// MaxReportsPerUser bounds the reports one account can have stored.
	MaxReportsPerUser int
	Logger            *slog.Logger
}

// Module enforces suspensions, blocks strangers and takes spam reports.
type Module struct {
	cfg   Config
	store Store
	log   *slog.Logger
	reg   *module.Registry
	local map[string]bool // local domains and service hosts

	prefs   prefCache
	written contacts

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns the module.
func New(cfg Config, store Store) *Module {
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.MaxReportsPerUser <= 0 {
		cfg.MaxReportsPerUser = DefaultMaxReportsPerUser
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{cfg: cfg, store: store, log: cfg.Logger.With("module", "abuse"), local: map[string]bool{},
		prefs: prefCache{m: map[string]prefEntry{}}, written: contacts{m: map[string]map[string]time.Time{}},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Name implements module.Module.
func (m *Module) Name() string { return "abuse" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	for _, d := range r.Domains() {
		m.local[d] = true
	}
	for _, h := range r.Hosts() {
		m.local[h.Domain] = true
	}
	r.Feature(NSReporting)
	r.Outbound(m.outbound)
	r.Inbound(m.inbound)
	r.Command(m.strangersCommand())
	r.OnDeleteAccount(func(_ context.Context, bare string) error {
		m.prefs.forget(bare)
		m.written.forget(bare)
		return nil
	})
	return nil
}

// Start runs the suspension check.
func (m *Module) Start(ctx context.Context) error {
	go m.checkLoop()
	return nil
}

// Stop ends the suspension check.
func (m *Module) Stop(ctx context.Context) error {
	m.once.Do(func() { close(m.stop) })
	select {
	case <-m.done:
	case <-ctx.Done():
	}
	return nil
}

func (m *Module) checkLoop() {
	defer close(m.done)
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.CheckInterval)
		m.enforceSuspensions(ctx)
		cancel()
	}
}

// enforceSuspensions ends the sessions of suspended accounts and removes
// suspensions that have run out.
func (m *Module) enforceSuspensions(ctx context.Context) {
	list, err := m.store.ListSuspensions(ctx)
	if err != nil {
		m.log.Warn("reading suspensions", "err", err)
		return
	}
	now := time.Now()
	for _, s := range list {
		if !s.Active(now) {
			if err := m.store.UnsuspendAccount(ctx, s.Account); err != nil && !errors.Is(err, storage.ErrNotFound) {
				m.log.Warn("removing an expired suspension", "jid", s.Account, "err", err)
			}
			continue
		}
		if n := EndSessions(m.reg.Sessions(), s); n > 0 {
			m.log.Info("sessions of a suspended account ended", "jid", s.Account, "sessions", n)
		}
	}
}

// outbound notes whom users write to (so their answers are no strangers')
// and takes XEP-0377 reports from block requests.
func (m *Module) outbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	switch st.Name {
	case "message", "presence":
		// What a user sends to their own account (presence broadcast,
		// notes to self) is no contact with anyone: every client's
		// initial presence would otherwise give each online user a
		// table of their own.
		if st.Type != "error" && ev.To.Localpart() != "" && !ev.To.Bare().Equal(ev.From.Bare()) {
			m.written.add(ev.From.Bare().String(), ev.To.Bare().String(), time.Now())
		}
	case "iq":
		if st.Type == "set" && ev.To.Equal(ev.From.Bare()) {
			if block := st.Child(xep.NSBlocking, "block"); block != nil {
				m.takeReports(ctx, ev.From, block)
			}
		}
	}
	return module.Continue
}

// inbound drops what strangers send to users who block them.
func (m *Module) inbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	switch {
	case st.Name == "message" && st.Type != "error" && st.Type != "groupchat":
	case st.Name == "iq" && (st.Type == "get" || st.Type == "set") && ev.To.Resourcepart() != "":
	default:
		return module.Continue
	}
	if ev.Origin.Kind == module.FromLocal || ev.To.Localpart() == "" {
		return module.Continue
	}
	owner, from := ev.To.Bare().String(), ev.From.Bare().String()
	if owner == from || ev.From.Localpart() == "" || m.local[ev.From.Domainpart()] && (m.cfg.StrangersAllowLocal || !m.isUserDomain(ev.From.Domainpart())) {
		return module.Continue
	}
	if !m.blocksStrangers(ctx, owner) || m.written.has(owner, from, time.Now()) {
		return module.Continue
	}
	switch _, err := m.store.RosterItem(ctx, owner, from); {
	case err == nil:
		return module.Continue
	case !errors.Is(err, storage.ErrNotFound):
		m.log.Warn("roster lookup for stranger blocking; letting the stanza through", "user", owner, "err", err)
		return module.Continue
	}
	strangersBlocked.Inc()
	// The same answer as for an account that does not exist or is offline
	// without storage: nothing tells the sender about the recipient.
	if reply := wire.ErrorReply(st, wire.ErrServiceUnavailable, ""); reply != nil {
		m.reg.Sender().Route(ctx, reply)
	}
	return module.Drop
}

// isUserDomain reports whether d is one of the virtual hosts (accounts
// live there) rather than a service host (rooms, upload).
func (m *Module) isUserDomain(d string) bool {
	for _, h := range m.reg.Domains() {
		if h == d {
			return true
		}
	}
	return false
}

// SettingBlockStrangers is the account setting of the stranger filter:
// "true" or "false"; unset follows the server default.
const SettingBlockStrangers = "block_strangers"

// prefTTL bounds how long a setting changed elsewhere (another node) goes
// unseen.
const prefTTL = time.Minute

type prefEntry struct {
	on      bool
	fetched time.Time
}

type prefCache struct {
	mu sync.Mutex
	m  map[string]prefEntry
}

func (c *prefCache) get(bare string, now time.Time) (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[bare]
	if !ok || now.Sub(e.fetched) > prefTTL {
		return false, false
	}
	return e.on, true
}

func (c *prefCache) put(bare string, on bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxTracked {
		for k, e := range c.m {
			if now.Sub(e.fetched) > prefTTL {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxTracked {
			clear(c.m)
		}
	}
	c.m[bare] = prefEntry{on: on, fetched: now}
}

func (c *prefCache) forget(bare string) {
	c.mu.Lock()
	delete(c.m, bare)
	c.mu.Unlock()
}

func (m *Module) blocksStrangers(ctx context.Context, owner string) bool {
	now := time.Now()
	if on, ok := m.prefs.get(owner, now); ok {
		return on
	}
	on := m.cfg.BlockStrangers
	switch v, err := m.store.AccountSetting(ctx, owner, SettingBlockStrangers); {
	case err == nil:
		on = v == "true"
	case !errors.Is(err, storage.ErrNotFound):
		m.log.Warn("reading a user's stranger setting", "user", owner, "err", err)
		return on
	}
	m.prefs.put(owner, on, now)
	return on
}

// BlocksStrangers reports the effective setting of an account.
func (m *Module) BlocksStrangers(ctx context.Context, bare string) bool {
	return m.blocksStrangers(ctx, bare)
}

// SetBlockStrangers changes an account's setting.
func (m *Module) SetBlockStrangers(ctx context.Context, bare string, on bool) error {
	v := "false"
	if on {
		v = "true"
	}
	if err := m.store.SetAccountSetting(ctx, bare, SettingBlockStrangers, v); err != nil {
		return err
	}
	m.prefs.put(bare, on, time.Now())
	return nil
}

// Bounds of the in-memory tables.
const (
	maxTracked     = 100_000
	maxPerOwner    = 256
	writtenForTime = 7 * 24 * time.Hour
)

// contacts remembers, per local user, whom they wrote to recently.
type contacts struct {
	mu    sync.Mutex
	m     map[string]map[string]time.Time
	total int
}

func (c *contacts) add(owner, to string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.m[owner]
	if set == nil {
		if c.total >= maxTracked {
			c.prune(now)
		}
		if c.total >= maxTracked {
			return // full of live entries: answers may be blocked, nothing grows
		}
		set = map[string]time.Time{}
		c.m[owner] = set
	}
	if _, ok := set[to]; !ok {
		if len(set) >= maxPerOwner || c.total >= maxTracked {
			oldest, when := "", now
			for k, t := range set {
				if t.Before(when) {
					oldest, when = k, t
				}
			}
			delete(set, oldest)
			c.total--
		}
		c.total++
	}
	set[to] = now
}

func (c *contacts) prune(now time.Time) {
	for o, set := range c.m {
		for k, t := range set {
			if now.Sub(t) > writtenForTime {
				delete(set, k)
				c.total--
			}
		}
		if len(set) == 0 {
			delete(c.m, o)
		}
	}
}

func (c *contacts) has(owner, from string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[owner][from]
	return ok && now.Sub(t) <= writtenForTime
}

func (c *contacts) forget(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total -= len(c.m[owner])
	delete(c.m, owner)
}

func (m *Module) strangersCommand() module.Command {
	const node = "urn:parley:commands:block-strangers"
	return module.Command{
		Node: node,
		Name: "Block messages from strangers",
		Allowed: func(_ context.Context, requester jid.JID) bool {
			return requester.Localpart() != "" && m.isUserDomain(requester.Domainpart())
		},
		Form: func(ctx context.Context, requester jid.JID) (*wire.Element, error) {
			cur := "0"
			if m.blocksStrangers(ctx, requester.Bare().String()) {
				cur = "1"
			}
			x := xep.Form("form", "", "Block messages from strangers")
			x.Add(wire.NewElement(xep.NSDataForms, "instructions").AddText(
				"Messages from people who are not in your contact list and whom you have not written to are refused. " +
					"They can still ask to add you as a contact."))
			return x.Add(xep.FormField("block", "boolean", "Block messages from strangers", cur)), nil
		},
		Run: func(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
			on := strings.TrimSpace(v.Get("block"))
			if on != "1" && on != "true" && on != "0" && on != "false" {
				return nil, module.Errorf(wire.ErrBadRequest, "block: expected true or false")
			}
			yes := on == "1" || on == "true"
			if err := m.SetBlockStrangers(ctx, requester.Bare().String(), yes); err != nil {
				return nil, err
			}
			if yes {
				return &module.CommandResult{Note: "Messages from strangers are now blocked"}, nil
			}
			return &module.CommandResult{Note: "Messages from strangers are now accepted"}, nil
		},
	}
}
