package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Instructions is the text of <instructions/> in the registration form.
const Instructions = "Choose a username and password for use with this service."

// Module implements module.Module.
type Module struct {
	cfg      Config
	accounts storage.Accounts
	log      *slog.Logger
	limit    *limiter
	now      func() time.Time
	domains  []string
	sender   module.Sender
	sessions module.Sessions
	open     atomic.Bool // registration.open, reloadable
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config, accounts storage.Accounts) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxTrackedAddresses <= 0 {
		cfg.MaxTrackedAddresses = DefaultMaxTrackedAddresses
	}
	m := &Module{cfg: cfg, accounts: accounts, log: cfg.Logger, now: time.Now,
		limit: newLimiter(cfg.PerAddressPerHour, cfg.MaxTrackedAddresses), domains: cfg.Domains}
	m.open.Store(cfg.Open)
	return m
}

// SetPolicy changes whether registration is open and how many accounts
// one address may register per hour (configuration reload).
func (m *Module) SetPolicy(open bool, perAddressPerHour int) {
	m.open.Store(open)
	m.limit.setMax(perAddressPerHour)
}

// Name implements module.Module.
func (m *Module) Name() string { return "register" }

// Register implements module.Module. Authenticated users reach the
// account management handlers with no 'to' or their bare JID (the account)
// or their server's domain (as in XEP-0077 §3.3's password change example).
func (m *Module) Register(r *module.Registry) error {
	if m.cfg.Derive == nil {
		return errors.New("register: Config.Derive is required")
	}
	if len(m.domains) == 0 {
		m.domains = r.Domains()
	}
	m.sender, m.sessions = r.Sender(), r.Sessions()
	r.Feature(xep.NSRegister)
	r.IQ(xep.NSRegister, "query", module.TargetAccount, m.handleAccount)
	r.IQ(xep.NSRegister, "query", module.TargetServer, m.handleServer)
	r.StreamFeature(func(authenticated bool) *wire.Element {
		if authenticated || !m.open.Load() {
			return nil
		}
		return wire.NewElement(xep.NSRegisterFeat, "register")
	})
	if m.cfg.Invites != nil {
		r.StreamFeature(func(authenticated bool) *wire.Element {
			if authenticated {
				return nil
			}
			return wire.NewElement(xep.NSIBRToken, "register")
		})
	}
	return nil
}

// PreAuth is PreAuthStream on a stream without earlier state.
func (m *Module) PreAuth(ctx context.Context, iq *wire.Stanza, domain, remoteAddr string, secure bool) *wire.Stanza {
	return m.PreAuthStream(ctx, iq, &module.PreAuthStream{Domain: domain, RemoteAddr: remoteAddr, Secure: secure})
}

// PreAuthStream answers a jabber:iq:register or XEP-0445 preauth request
// received on a stream that is not authenticated yet (st: its domain,
// remote address, TLS, and the token it presented). It returns the reply
// to write to the stream, or nil when nothing is to be sent (a result or
// error from the client).
func (m *Module) PreAuthStream(ctx context.Context, iq *wire.Stanza, st *module.PreAuthStream) *wire.Stanza {
	domain, remoteAddr, secure := st.Domain, st.RemoteAddr, st.Secure
	if iq.Name != "iq" || (iq.Type != "get" && iq.Type != "set") {
		return nil
	}
	// Nothing is routed before authentication: answer from the server,
	// never from whatever the client put in 'from'.
	iq = iq.WithFromTo("", iq.To)
	fail := func(err *module.StanzaError) *wire.Stanza {
		return wire.ErrorReplyApp(iq, err.Condition, err.Text, err.App)
	}
	if iq.To != "" {
		if to, err := jid.Parse(iq.To); err != nil || to.String() != domain {
			return fail(module.Errorf(wire.ErrServiceUnavailable, "registration is only available with %s", domain))
		}
	}
	if len(iq.Tree().Elements()) != 1 {
		return fail(module.Err(wire.ErrBadRequest))
	}
	if !slices.Contains(m.domains, domain) || m.cfg.Derive == nil {
		return fail(module.Err(wire.ErrServiceUnavailable))
	}
	if pa := iq.Child(xep.NSPARS, "preauth"); pa != nil {
		if err := m.preauth(ctx, iq, pa, st); err != nil {
			return fail(err)
		}
		return wire.IQResult(iq, nil)
	}
	query := iq.Child(xep.NSRegister, "query")
	if query == nil {
		return fail(module.Err(wire.ErrBadRequest))
	}
	if t := query.Child(xep.NSPARS, "preauth"); t != nil && iq.Type == "set" {
		// The token inside the registration request itself.
		if err := m.preauth(ctx, iq, t, st); err != nil {
			return fail(err)
		}
	}
	if iq.Type == "get" {
		if !m.open.Load() && st.Token == "" {
			return fail(module.Err(wire.ErrServiceUnavailable))
		}
		if !secure {
			return fail(module.Errorf(wire.ErrNotAuthorized, "registration requires an encrypted connection (STARTTLS)"))
		}
		username := wire.NewElement(xep.NSRegister, "username")
		if st.Token != "" && m.cfg.Invites != nil {
			// An invitation for a given name: offer it.
			if name, err := m.cfg.Invites.ValidInvite(ctx, st.Token, domain); err == nil && name != "" {
				username.AddText(name)
			}
		}
		q := wire.NewElement(xep.NSRegister, "query").Add(
			wire.NewElement(xep.NSRegister, "instructions").AddText(Instructions),
			username,
			wire.NewElement(xep.NSRegister, "password"))
		return wire.IQResult(iq, q)
	}
	if st.Token != "" {
		if err := m.createInvited(ctx, query, st); err != nil {
			return fail(err)
		}
		return wire.IQResult(iq, nil)
	}
	if err := m.create(ctx, query, domain, remoteAddr, secure); err != nil {
		return fail(err)
	}
	return wire.IQResult(iq, nil)
}

// preauth checks an XEP-0445 token and keeps it for the stream.
func (m *Module) preauth(ctx context.Context, iq *wire.Stanza, pa *wire.Element, st *module.PreAuthStream) *module.StanzaError {
	if iq.Type != "set" {
		return module.Err(wire.ErrBadRequest)
	}
	if m.cfg.Invites == nil {
		return module.Errorf(wire.ErrServiceUnavailable, "this server has no invitations")
	}
	if !st.Secure {
		return module.Errorf(wire.ErrNotAuthorized, "registration requires an encrypted connection (STARTTLS)")
	}
	token := pa.AttrValue("token")
	if _, err := m.cfg.Invites.ValidInvite(ctx, token, st.Domain); err != nil {
		registrations.WithLabelValues("invalid-token").Inc()
		m.log.Info("invitation token refused", "addr", addressKey(st.RemoteAddr))
		return module.Errorf(wire.ErrItemNotFound, "The provided token is invalid or expired")
	}
	st.Token = token
	return nil
}

// createInvited registers with the stream's invitation token.
func (m *Module) createInvited(ctx context.Context, query *wire.Element, st *module.PreAuthStream) *module.StanzaError {
	if !st.Secure {
		return module.Errorf(wire.ErrNotAuthorized, "registration requires an encrypted connection (STARTTLS)")
	}
	if query.Child(xep.NSRegister, "remove") != nil {
		return module.Errorf(wire.ErrUnexpectedRequest, "authenticate before removing an account")
	}
	username := query.ChildText(xep.NSRegister, "username")
	password := query.ChildText(xep.NSRegister, "password")
	if password == "" {
		return module.Errorf(wire.ErrNotAcceptable, "a username and a password are required")
	}
	bare, err := m.cfg.Invites.RegisterWithInvite(ctx, st.Token, st.Domain, username, password)
	if err != nil {
		var se *module.StanzaError
		if errors.As(err, &se) {
			registrations.WithLabelValues("invalid").Inc()
			return se
		}
		m.log.Error("registration with invitation failed", "err", err)
		return module.Err(wire.ErrInternalServerError)
	}
	registrations.WithLabelValues("ok").Inc()
	m.log.Info("account registered with an invitation", "jid", bare, "addr", addressKey(st.RemoteAddr))
	return nil
}

// create handles a registration set before authentication.
func (m *Module) create(ctx context.Context, query *wire.Element, domain, remoteAddr string, secure bool) *module.StanzaError {
	if !m.open.Load() {
		return module.Errorf(wire.ErrNotAllowed, "registration is closed on this server")
	}
	if !secure {
		return module.Errorf(wire.ErrNotAuthorized, "registration requires an encrypted connection (STARTTLS)")
	}
	if query.Child(xep.NSRegister, "remove") != nil {
		return module.Errorf(wire.ErrUnexpectedRequest, "authenticate before removing an account")
	}
	username := query.ChildText(xep.NSRegister, "username")
	password := query.ChildText(xep.NSRegister, "password")
	if username == "" || password == "" {
		return module.Errorf(wire.ErrNotAcceptable, "a username and a password are required")
	}
	j, err := jid.New(username, domain, "")
	if err != nil || j.Localpart() == "" {
		return module.Errorf(wire.ErrNotAcceptable, "this username is not allowed")
	}
	bare := j.String()

	key := addressKey(remoteAddr)
	ok, release := m.limit.reserve(key, m.now())
	if !ok {
		registrations.WithLabelValues("rate-limited").Inc()
		m.log.Info("registration rate limited", "addr", key)
		return module.Errorf(wire.ErrResourceConstraint, "too many registrations from your address; try again later")
	}
	success := false
	defer func() {
		if !success {
			release()
		}
	}()

	// Check for a conflict before the costly key derivation.
	exists, err := m.accounts.AccountExists(ctx, bare)
	if err != nil {
		m.log.Error("registration: account lookup failed", "err", err)
		return module.Err(wire.ErrInternalServerError)
	}
	if !exists && m.cfg.Invites != nil {
		if exists, err = m.cfg.Invites.UsernameReserved(ctx, bare); err != nil {
			m.log.Error("registration: invitation lookup failed", "err", err)
			return module.Err(wire.ErrInternalServerError)
		}
	}
	if exists {
		registrations.WithLabelValues("conflict").Inc()
		return module.Errorf(wire.ErrConflict, "this username is taken")
	}
	creds, err := m.cfg.Derive(password)
	if err != nil {
		registrations.WithLabelValues("invalid").Inc()
		return module.Errorf(wire.ErrNotAcceptable, "this password is not allowed")
	}
	switch err := m.accounts.CreateAccount(ctx, bare, creds); {
	case errors.Is(err, storage.ErrExists):
		registrations.WithLabelValues("conflict").Inc()
		return module.Errorf(wire.ErrConflict, "this username is taken")
	case err != nil:
		m.log.Error("registration: creating account failed", "err", err)
		return module.Err(wire.ErrInternalServerError)
	}
	success = true
	registrations.WithLabelValues("ok").Inc()
	m.log.Info("account registered", "jid", bare, "addr", key)
	if m.cfg.OnRegistered != nil {
		m.cfg.OnRegistered(ctx, bare)
	}
	return nil
}

func (m *Module) handleAccount(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Origin.Kind != module.FromClient || !ev.From.Bare().Equal(ev.To.Bare()) {
		return nil, module.Errorf(wire.ErrForbidden, "you can only manage your own account")
	}
	return m.manage(ctx, ev, ev.To.Bare())
}

func (m *Module) handleServer(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	// Only the server's own users manage their account here; entities of
	// other servers cannot register over federation.
	if ev.Origin.Kind != module.FromClient || ev.From.Domainpart() != ev.To.Domainpart() || ev.From.Localpart() == "" {
		return nil, module.Err(wire.ErrServiceUnavailable)
	}
	return m.manage(ctx, ev, ev.From.Bare())
}

// manage handles requests of the authenticated user owning account.
func (m *Module) manage(ctx context.Context, ev *module.Event, account jid.JID) (*wire.Element, error) {
	query := ev.Stanza.Child(xep.NSRegister, "query")
	bare := account.String()
	if ev.Stanza.Type == "get" {
		return wire.NewElement(xep.NSRegister, "query").Add(
			wire.NewElement(xep.NSRegister, "registered"),
			wire.NewElement(xep.NSRegister, "username").AddText(account.Localpart())), nil
	}
	if query.Child(xep.NSRegister, "remove") != nil {
		if len(query.Elements()) != 1 {
			return nil, module.Errorf(wire.ErrBadRequest, "<remove/> must be the only child of <query/>")
		}
		switch err := m.accounts.DeleteAccount(ctx, bare); {
		case errors.Is(err, storage.ErrNotFound):
			return nil, module.Err(wire.ErrItemNotFound)
		case err != nil:
			return nil, fmt.Errorf("register: deleting %s: %w", bare, err)
		}
		m.log.Info("account removed in-band", "jid", bare)
		if m.sender == nil || m.sessions == nil {
			return nil, nil
		}
		// XEP-0077 §3.2: answer, then end every session of the account.
		// The reply is queued before the close on the requester's stream.
		m.sender.Route(ctx, wire.IQResult(ev.Stanza, nil))
		for _, s := range m.sessions.Resources(account) {
			s.Close(&wire.StreamError{Condition: wire.CondNotAuthorized, Text: "the account has been removed"})
		}
		return nil, module.ErrReplied
	}
	username := query.Child(xep.NSRegister, "username")
	passwordEl := query.Child(xep.NSRegister, "password")
	if username == nil || passwordEl == nil {
		return nil, module.Errorf(wire.ErrBadRequest, "a password change needs <username/> and <password/>")
	}
	if j, err := jid.New(username.Text(), account.Domainpart(), ""); err != nil || !j.Equal(account) {
		return nil, module.Errorf(wire.ErrForbidden, "you can only change your own password")
	}
	password := passwordEl.Text()
	if password == "" {
		// XEP-0077 §3.3: never change to an empty password.
		return nil, module.Errorf(wire.ErrBadRequest, "the new password must not be empty")
	}
	creds, err := m.cfg.Derive(password)
	if err != nil {
		return nil, module.Errorf(wire.ErrNotAcceptable, "this password is not allowed")
	}
	switch err := m.accounts.SetCredentials(ctx, bare, creds); {
	case errors.Is(err, storage.ErrNotFound):
		return nil, module.Err(wire.ErrItemNotFound)
	case err != nil:
		return nil, fmt.Errorf("register: setting credentials of %s: %w", bare, err)
	}
	m.log.Info("password changed in-band", "jid", bare)
	return nil, nil
}
