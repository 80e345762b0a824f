// Package admin is the one implementation of Parley's administrative
// operations: accounts, sessions, announcements, the welcome message,
// invitations (XEP-0401/0445/0379), admin API tokens, statistics and a
// user's data export (XEP-0227). The XEP-0050/XEP-0133 ad-hoc commands
// (commands.go), the HTTP admin API (package adminapi), the invitation
// landing page (package invitepage) and the parley CLI all call these
// functions.
//
// A Service made by New works on the store alone (the CLI); the admin
// Module registered into a running server also gives it the live
// sessions, for the operations on who is online.
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// Store is what the service works on.
type Store interface {
	storage.Accounts
	storage.Roster
	storage.VCards
	storage.Offline
	storage.ArchiveReader
	storage.Invites
	storage.Roles
	storage.Settings
	storage.APITokens
	storage.Suspensions
}

// Config configures the service.
type Config struct {
	// Hosts are the virtual hosts accounts may live on.
	Hosts []string
	// Derive computes the credentials to store for a password; it refuses
	// passwords PRECIS OpaqueString refuses.
	Derive func(password string) ([]storage.SCRAMCredential, error)
	// Accounts deletes accounts when set (a wrapper that also removes the
	// account's files); the store otherwise.
	Accounts storage.Accounts
	// InvitePage returns the URL of an invitation's landing page for a
	// domain and token, "" when there is none.
	InvitePage func(domain, token string) string
	// Policy is the initial policy (admins, who may invite).
	Policy Policy
	Logger *slog.Logger
}

// Policy is the part of the configuration a reload may change.
type Policy struct {
	// Admins are the bare JIDs of the configuration's admins list.
	Admins []string
	// UsersCanInvite lets every user create contact invitations.
	UsersCanInvite bool
	// InviteTTL is how long invitations are valid by default.
	InviteTTL time.Duration
}

// Online is the live side of a running server.
type Online interface {
	module.Sessions
	AllSessions() []module.Session
}

// Service runs the operations.
type Service struct {
	cfg      Config
	store    Store
	accounts storage.Accounts
	log      *slog.Logger
	now      func() time.Time
	policy   atomic.Pointer[policy]
	started  time.Time

	online atomic.Pointer[onlineRef] // nil without a running server
	sender atomic.Pointer[senderRef]
}

type policy struct {
	Policy
	admins map[string]bool
}

type onlineRef struct{ Online }
type senderRef struct{ module.Sender }

// New returns a service on store.
func New(cfg Config, store Store) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, store: store, accounts: cfg.Accounts, log: cfg.Logger, now: time.Now, started: time.Now()}
	if s.accounts == nil {
		s.accounts = store
	}
	s.SetPolicy(cfg.Policy)
	return s
}

// SetPolicy replaces the admins list and invitation policy (configuration
// reload).
func (s *Service) SetPolicy(p Policy) {
	if p.InviteTTL <= 0 {
		p.InviteTTL = DefaultInviteTTL
	}
	np := &policy{Policy: p, admins: map[string]bool{}}
	for _, a := range p.Admins {
		if j, err := jid.Parse(a); err == nil {
			np.admins[j.Bare().String()] = true
		}
	}
	s.policy.Store(np)
}

func (s *Service) pol() *policy { return s.policy.Load() }

// attach connects the service to a running server's sessions.
func (s *Service) attach(o Online, snd module.Sender) {
	if o != nil {
		s.online.Store(&onlineRef{o})
	}
	if snd != nil {
		s.sender.Store(&senderRef{snd})
	}
}

// Errors the operations return; callers map them to protocol errors.
var (
	ErrNoSuchUser  = errors.New("no such user")
	ErrUserExists  = errors.New("the user already exists")
	ErrBadJID      = errors.New("not a user JID on this server")
	ErrBadPassword = errors.New("this password is not allowed")
	ErrNotRunning  = errors.New("the server is not running here")
	// ErrInvalidInvite covers unknown, forged, used, revoked and expired
	// tokens alike: which one it was is nobody's business but the admin's.
	ErrInvalidInvite = errors.New("the invitation is invalid, used up or expired")
	ErrWrongUsername = errors.New("the invitation is for another username")
	ErrForbidden     = errors.New("not allowed")
	// ErrInput is matched (errors.Is) by every error about bad input
	// whose message is meant for the person who gave it.
	ErrInput = errors.New("invalid input")
)

type inputError string

func (e inputError) Error() string        { return string(e) }
func (e inputError) Is(target error) bool { return target == ErrInput }

// badInput is an error about the caller's input.
func badInput(format string, args ...any) error { return inputError(fmt.Sprintf(format, args...)) }

// Export writes a user's data as an XEP-0227 document.
func (s *Service) Export(ctx context.Context, w io.Writer, bare string) error {
	_, err := ExportXEP0227(ctx, w, s.store, bare)
	return err
}

// UserJID normalizes s to a bare JID user@domain on one of the hosts.
func (s *Service) UserJID(str string) (string, error) {
	j, err := jid.Parse(strings.TrimSpace(str))
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return "", fmt.Errorf("%w: %q (expected user@domain)", ErrBadJID, str)
	}
	if !slices.Contains(s.cfg.Hosts, j.Domainpart()) {
		return "", fmt.Errorf("%w: %q (hosts: %s)", ErrBadJID, str, strings.Join(s.cfg.Hosts, ", "))
	}
	return j.Bare().String(), nil
}

// IsAdmin reports whether bare is an administrator: listed in the
// configuration's admins, or granted the admin role (admin invitation).
func (s *Service) IsAdmin(ctx context.Context, bare string) bool {
	if s.pol().admins[bare] {
		return true
	}
	ok, err := s.store.HasRole(ctx, bare, storage.RoleAdmin)
	if err != nil {
		s.log.Warn("admin role lookup failed", "err", err)
	}
	return ok
}

// Admins lists the administrators (configuration and role), sorted.
func (s *Service) Admins(ctx context.Context) ([]string, error) {
	out := slices.Clone(s.pol().Admins)
	more, err := s.store.RoleMembers(ctx, storage.RoleAdmin)
	if err != nil {
		return nil, err
	}
	out = append(out, more...)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (s *Service) derive(password string) ([]storage.SCRAMCredential, error) {
	if password == "" {
		return nil, ErrBadPassword
	}
	creds, err := s.cfg.Derive(password)
	if err != nil {
		return nil, ErrBadPassword
	}
	return creds, nil
}

// AccountExists reports whether the account exists: the store's answer
// (module.Registry.AccountExists is the same question in a running server,
// which also knows the accounts with a bound session).
func (s *Service) AccountExists(ctx context.Context, bare string) (bool, error) {
	return s.store.AccountExists(ctx, bare)
}

// AddUser creates an account and sends it the welcome message.
func (s *Service) AddUser(ctx context.Context, user, password string) (string, error) {
	bare, err := s.UserJID(user)
	if err != nil {
		return "", err
	}
	if err := s.createAccount(ctx, bare, password); err != nil {
		return "", err
	}
	s.log.Info("account created by an administrator", "jid", bare)
	s.Welcome(ctx, bare)
	return bare, nil
}

// createAccount derives the credentials and creates bare.
func (s *Service) createAccount(ctx context.Context, bare, password string) error {
	if exists, err := s.store.AccountExists(ctx, bare); err != nil {
		return err
	} else if exists {
		return ErrUserExists
	}
	creds, err := s.derive(password)
	if err != nil {
		return err
	}
	switch err := s.store.CreateAccount(ctx, bare, creds); {
	case errors.Is(err, storage.ErrExists):
		return ErrUserExists
	case err != nil:
		return fmt.Errorf("creating %s: %w", bare, err)
	}
	return nil
}

// SetPassword replaces a user's password.
func (s *Service) SetPassword(ctx context.Context, user, password string) (string, error) {
	bare, err := s.UserJID(user)
	if err != nil {
		return "", err
	}
	creds, err := s.derive(password)
	if err != nil {
		return "", err
	}
	switch err := s.store.SetCredentials(ctx, bare, creds); {
	case errors.Is(err, storage.ErrNotFound):
		return "", ErrNoSuchUser
	case err != nil:
		return "", fmt.Errorf("setting the password of %s: %w", bare, err)
	}
	s.log.Info("password changed", "jid", bare)
	return bare, nil
}

// DeleteUser deletes an account with everything it owns and ends its
// sessions.
func (s *Service) DeleteUser(ctx context.Context, user string) (string, error) {
	bare, err := s.UserJID(user)
	if err != nil {
		return "", err
	}
	if err := s.deleteAccount(ctx, bare); err != nil {
		return "", err
	}
	s.endSessions(bare, "the account has been removed")
	return bare, nil
}

// deleteAccount deletes bare and everything it owns.
func (s *Service) deleteAccount(ctx context.Context, bare string) error {
	switch err := s.accounts.DeleteAccount(ctx, bare); {
	case errors.Is(err, storage.ErrNotFound):
		return ErrNoSuchUser
	case err != nil:
		return fmt.Errorf("deleting %s: %w", bare, err)
	}
	s.log.Info("account deleted", "jid", bare)
	return nil
}

// ListUsers lists the accounts of a domain ("" all hosts), sorted.
func (s *Service) ListUsers(ctx context.Context, domain string) ([]string, error) {
	if domain != "" && !slices.Contains(s.cfg.Hosts, domain) {
		return nil, badInput("domain %s is not served here (hosts: %s)", domain, strings.Join(s.cfg.Hosts, ", "))
	}
	return s.store.ListAccounts(ctx, domain)
}

func (s *Service) sessions() (Online, error) {
	o := s.online.Load()
	if o == nil {
		return nil, ErrNotRunning
	}
	return o.Online, nil
}

// OnlineUsers lists the full JIDs of bound sessions on domain ("" all),
// sorted.
func (s *Service) OnlineUsers(domain string) ([]string, error) {
	o, err := s.sessions()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sess := range o.AllSessions() {
		if j := sess.JID(); domain == "" || j.Domainpart() == domain {
			out = append(out, j.String())
		}
	}
	sort.Strings(out)
	return out, nil
}

// UserSessions lists the full JIDs of one account's sessions.
func (s *Service) UserSessions(bare string) ([]string, error) {
	o, err := s.sessions()
	if err != nil {
		return nil, err
	}
	j, err := jid.Parse(bare)
	if err != nil {
		return nil, ErrBadJID
	}
	var out []string
	for _, sess := range o.Resources(j.Bare()) {
		out = append(out, sess.JID().String())
	}
	sort.Strings(out)
	return out, nil
}

// EndSessions closes every session of a user; it returns how many.
func (s *Service) EndSessions(user string) (int, error) {
	bare, err := s.UserJID(user)
	if err != nil {
		return 0, err
	}
	if _, err := s.sessions(); err != nil {
		return 0, err
	}
	n := s.endSessions(bare, "an administrator ended this session")
	s.log.Info("sessions ended by an administrator", "jid", bare, "sessions", n)
	return n, nil
}

func (s *Service) endSessions(bare, why string) int {
	o := s.online.Load()
	if o == nil {
		return 0
	}
	j, err := jid.Parse(bare)
	if err != nil {
		return 0
	}
	sessions := o.Resources(j.Bare())
	for _, sess := range sessions {
		sess.Close(&wire.StreamError{Condition: wire.CondNotAuthorized, Text: why})
	}
	return len(sessions)
}

// UserStats are XEP-0133 §4.17-style statistics of one account.
type UserStats struct {
	JID             string   `json:"jid"`
	RosterItems     int      `json:"roster_items"`
	OfflineMessages int      `json:"offline_messages"`
	Sessions        []string `json:"sessions"`
	Admin           bool     `json:"admin"`
}

// Stats returns statistics of a user.
func (s *Service) Stats(ctx context.Context, user string) (UserStats, error) {
	bare, err := s.UserJID(user)
	if err != nil {
		return UserStats{}, err
	}
	if ok, err := s.store.AccountExists(ctx, bare); err != nil {
		return UserStats{}, err
	} else if !ok {
		return UserStats{}, ErrNoSuchUser
	}
	items, _, err := s.store.RosterItems(ctx, bare)
	if err != nil {
		return UserStats{}, err
	}
	off, err := s.store.CountOffline(ctx, bare)
	if err != nil {
		return UserStats{}, err
	}
	st := UserStats{JID: bare, RosterItems: len(items), OfflineMessages: off, Admin: s.IsAdmin(ctx, bare), Sessions: []string{}}
	if sess, err := s.UserSessions(bare); err == nil {
		st.Sessions = sess
	}
	return st, nil
}

// ServerStats are figures about the whole server.
type ServerStats struct {
	Version        string         `json:"version,omitempty"`
	UptimeSeconds  int64          `json:"uptime_seconds"`
	Users          map[string]int `json:"users"`           // per host
	OnlineSessions map[string]int `json:"online_sessions"` // per host; absent when not running
	Invitations    int            `json:"invitations"`
}

// Stats of the server.
func (s *Service) ServerStats(ctx context.Context) (ServerStats, error) {
	st := ServerStats{UptimeSeconds: int64(s.now().Sub(s.started).Seconds()), Users: map[string]int{}}
	for _, h := range s.cfg.Hosts {
		users, err := s.store.ListAccounts(ctx, h)
		if err != nil {
			return st, err
		}
		st.Users[h] = len(users)
	}
	if o := s.online.Load(); o != nil {
		st.OnlineSessions = map[string]int{}
		for _, h := range s.cfg.Hosts {
			st.OnlineSessions[h] = 0
		}
		for _, sess := range o.AllSessions() {
			st.OnlineSessions[sess.JID().Domainpart()]++
		}
	}
	invs, err := s.store.ListInvites(ctx, "")
	if err != nil {
		return st, err
	}
	st.Invitations = len(invs)
	return st, nil
}

// MaxAnnouncementBytes bounds an announcement's text.
const MaxAnnouncementBytes = 16 << 10

// Announce sends a message from the server to every online user of
// domain; it returns how many sessions it reached.
func (s *Service) Announce(ctx context.Context, domain, subject, body string) (int, error) {
	if !slices.Contains(s.cfg.Hosts, domain) {
		return 0, badInput("domain %s is not served here", domain)
	}
	if strings.TrimSpace(body) == "" {
		return 0, badInput("the announcement is empty")
	}
	if len(body)+len(subject) > MaxAnnouncementBytes {
		return 0, badInput("the announcement is longer than %d bytes", MaxAnnouncementBytes)
	}
	o, err := s.sessions()
	if err != nil {
		return 0, err
	}
	snd := s.sender.Load()
	n := 0
	for _, sess := range o.AllSessions() {
		j := sess.JID()
		if j.Domainpart() != domain {
			continue
		}
		snd.Route(ctx, serverMessage(domain, j.String(), "headline", subject, body))
		n++
	}
	s.log.Info("announcement sent", "domain", domain, "sessions", n)
	return n, nil
}

func serverMessage(from, to, typ, subject, body string) *wire.Stanza {
	m := wire.NewElement(wire.NSClient, "message", "from", from, "to", to, "type", typ, "id", "parley-"+strings.ToLower(randText()[:12]))
	if subject != "" {
		m.Add(wire.NewElement(wire.NSClient, "subject").AddText(subject))
	}
	m.Add(wire.NewElement(wire.NSClient, "body").AddText(body))
	return wire.FromElement(m)
}

// settingWelcome is the settings key of the welcome message.
const settingWelcome = "welcome_message"

// WelcomeMessage returns the message new accounts get ("" none).
func (s *Service) WelcomeMessage(ctx context.Context) (string, error) {
	v, err := s.store.Setting(ctx, settingWelcome)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// SetWelcomeMessage changes it ("" disables it).
func (s *Service) SetWelcomeMessage(ctx context.Context, text string) error {
	if len(text) > MaxAnnouncementBytes {
		return badInput("the welcome message is longer than %d bytes", MaxAnnouncementBytes)
	}
	if err := s.store.SetSetting(ctx, settingWelcome, text); err != nil {
		return err
	}
	s.log.Info("welcome message changed", "bytes", len(text))
	return nil
}

// Welcome sends the welcome message, if any, to a new account: it waits
// in the offline store until the user first logs in. Without a running
// server (the CLI) it is stored there directly.
func (s *Service) Welcome(ctx context.Context, bare string) {
	text, err := s.WelcomeMessage(ctx)
	if err != nil || text == "" {
		return
	}
	domain := bare[strings.LastIndexByte(bare, '@')+1:]
	msg := serverMessage(domain, bare, "normal", "", text)
	if snd := s.sender.Load(); snd != nil {
		snd.Route(ctx, msg)
	} else {
		now := s.now().UTC()
		stored := msg.WithChild(wire.NewElement(nsDelay, "delay", "from", domain, "stamp", now.Format(time.RFC3339)))
		_, err = s.store.StoreOffline(ctx, bare, stored.Raw, now, 0)
	}
	if err != nil {
		s.log.Warn("welcome message not sent", "jid", bare, "err", err)
	}
}

// SetClock replaces the clock (tests: expiry).
func (s *Service) SetClock(now func() time.Time) { s.now = now }
