package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const (
	// DefaultInviteTTL is how long an invitation is valid unless told.
	DefaultInviteTTL = 7 * 24 * time.Hour
	// MaxInviteTTL bounds the validity of an invitation (XEP-0379 §5: a
	// token MUST have a limited validity time).
	MaxInviteTTL = 365 * 24 * time.Hour
	// MaxInviteUses bounds the uses of one token.
	MaxInviteUses = 1000
	// MaxTokenBytes bounds a token read from the network before hashing.
	MaxTokenBytes = 128
)

// randText is 26 characters of base32 (130 bits), URI-safe.
func randText() string { return rand.Text() }

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// publicID names a token in lists without revealing it.
func publicID(hash []byte) string { return hex.EncodeToString(hash[:8]) }

// InviteRequest describes an invitation to create.
type InviteRequest struct {
	Domain string
	// Username reserves the account name ("" lets the invitee choose).
	Username string
	// Inviter is the bare JID that becomes the invitee's contact ("": none).
	Inviter string
	// Admin makes the new account an administrator.
	Admin bool
	// TTL is the validity (0: the policy's default).
	TTL time.Duration
	// Uses is how many accounts the token may create (0: one).
	Uses int
}

// Invitation is a created invitation.
type Invitation struct {
	ID      string    `json:"id"`
	Token   string    `json:"token"`
	URI     string    `json:"uri"`                   // xmpp: URI (XEP-0401/0445/0379)
	Landing string    `json:"landing_url,omitempty"` // HTTPS landing page
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"`
}

// CreateInvite creates an invitation.
func (s *Service) CreateInvite(ctx context.Context, r InviteRequest) (Invitation, error) {
	if !slices.Contains(s.cfg.Hosts, r.Domain) {
		return Invitation{}, badInput("domain %q is not served here (hosts: %s)", r.Domain, strings.Join(s.cfg.Hosts, ", "))
	}
	if r.TTL == 0 {
		r.TTL = s.pol().InviteTTL
	}
	if r.TTL < time.Minute || r.TTL > MaxInviteTTL {
		return Invitation{}, badInput("the validity must be between 1m and %s", MaxInviteTTL)
	}
	if r.Uses == 0 {
		r.Uses = 1
	}
	if r.Uses < 1 || r.Uses > MaxInviteUses {
		return Invitation{}, badInput("the number of uses must be between 1 and %d", MaxInviteUses)
	}
	if r.Username != "" {
		bare, err := s.inviteeJID(r.Domain, r.Username)
		if err != nil {
			return Invitation{}, err
		}
		if r.Uses != 1 {
			return Invitation{}, badInput("an invitation for a given username can be used once")
		}
		if ok, err := s.store.AccountExists(ctx, bare); err != nil {
			return Invitation{}, err
		} else if ok {
			return Invitation{}, ErrUserExists
		}
		if reserved, err := s.reserved(ctx, r.Domain, jidLocal(bare)); err != nil {
			return Invitation{}, err
		} else if reserved {
			return Invitation{}, badInput("the username %s is already reserved by another invitation", jidLocal(bare))
		}
		r.Username = jidLocal(bare)
	}
	token := randText()
	hash := tokenHash(token)
	now := s.now().UTC().Truncate(time.Microsecond)
	inv := storage.Invite{ID: publicID(hash), TokenHash: hash, Domain: r.Domain, Username: r.Username, Owner: r.Inviter,
		Admin: r.Admin, Created: now, Expires: now.Add(r.TTL), UsesLeft: r.Uses}
	if err := s.store.CreateInvite(ctx, inv); err != nil {
		return Invitation{}, fmt.Errorf("storing the invitation: %w", err)
	}
	s.log.Info("invitation created", "id", inv.ID, "domain", r.Domain, "inviter", r.Inviter, "uses", r.Uses,
		"expires", inv.Expires.Format(time.RFC3339), "admin", r.Admin)
	return s.describe(inv, token), nil
}

func jidLocal(bare string) string { return bare[:strings.LastIndexByte(bare, '@')] }

// inviteeJID checks a username for domain.
func (s *Service) inviteeJID(domain, username string) (string, error) {
	j, err := jid.New(strings.TrimSpace(username), domain, "")
	if err != nil || j.Localpart() == "" {
		return "", fmt.Errorf("%w: the username %q is not allowed", ErrBadJID, username)
	}
	return j.String(), nil
}

// reserved reports whether a valid invitation reserves username on domain.
func (s *Service) reserved(ctx context.Context, domain, username string) (bool, error) {
	invs, err := s.store.ListInvites(ctx, domain)
	if err != nil {
		return false, err
	}
	now := s.now()
	return slices.ContainsFunc(invs, func(i storage.Invite) bool {
		return i.Username == username && i.UsesLeft > 0 && now.Before(i.Expires)
	}), nil
}

// UsernameReserved reports whether an invitation reserves the username of
// bare: registration without that invitation must refuse it (XEP-0401
// §5: the server MUST reserve the username until the token expires).
func (s *Service) UsernameReserved(ctx context.Context, bare string) (bool, error) {
	at := strings.LastIndexByte(bare, '@')
	return s.reserved(ctx, bare[at+1:], bare[:at])
}

// describe builds the URIs of an invitation.
func (s *Service) describe(inv storage.Invite, token string) Invitation {
	out := Invitation{ID: inv.ID, Token: token, Expires: inv.Expires, Uses: inv.UsesLeft}
	q := "?register;preauth=" + token
	switch {
	case inv.Owner != "":
		// XEP-0401 §3.1: a contact invitation that may also register.
		out.URI = "xmpp:" + uriJID(inv.Owner) + "?roster;preauth=" + token + ";ibr=y"
	case inv.Username != "":
		out.URI = "xmpp:" + uriJID(inv.Username+"@"+inv.Domain) + q
	default:
		out.URI = "xmpp:" + uriJID(inv.Domain) + q
	}
	if s.cfg.InvitePage != nil {
		out.Landing = s.cfg.InvitePage(inv.Domain, token)
	}
	return out
}

// uriJID escapes a JID for an xmpp: URI (RFC 5122 §2.7.1: characters
// outside the allowed set are percent-encoded).
func uriJID(j string) string {
	return strings.NewReplacer("?", "%3F", ";", "%3B", "#", "%23", " ", "%20").Replace((&url.URL{Path: j}).EscapedPath())
}

// InviteInfo is what a valid token tells its holder (landing page).
type InviteInfo struct {
	Domain   string
	Username string // reserved, or ""
	Inviter  string // or ""
	Expires  time.Time
	URI      string
}

// CheckInvite returns what a token is for, or ErrInvalidInvite. The
// token is looked up by hash, so a forged token costs one indexed read.
func (s *Service) CheckInvite(ctx context.Context, token string) (InviteInfo, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return InviteInfo{}, ErrInvalidInvite
	}
	inv, err := s.store.InviteByHash(ctx, tokenHash(token))
	if errors.Is(err, storage.ErrNotFound) {
		return InviteInfo{}, ErrInvalidInvite
	} else if err != nil {
		return InviteInfo{}, err
	}
	if inv.UsesLeft <= 0 || !s.now().Before(inv.Expires) {
		return InviteInfo{}, ErrInvalidInvite
	}
	return InviteInfo{Domain: inv.Domain, Username: inv.Username, Inviter: inv.Owner, Expires: inv.Expires,
		URI: s.describe(inv, token).URI}, nil
}

// ListInvites lists the valid invitations of a domain ("" all), newest
// first; expired ones are removed on the way.
func (s *Service) ListInvites(ctx context.Context, domain string) ([]storage.Invite, error) {
	if _, err := s.store.DeleteExpiredInvites(ctx, s.now()); err != nil {
		return nil, err
	}
	return s.store.ListInvites(ctx, domain)
}

// RevokeInvite deletes an invitation by ID or by token.
func (s *Service) RevokeInvite(ctx context.Context, idOrToken string) error {
	id := idOrToken
	err := s.store.DeleteInvite(ctx, id)
	if errors.Is(err, storage.ErrNotFound) && len(idOrToken) <= MaxTokenBytes {
		id = publicID(tokenHash(idOrToken)) // it was the token: never log it
		err = s.store.DeleteInvite(ctx, id)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return badInput("no such invitation")
	}
	if err == nil {
		s.log.Info("invitation revoked", "id", id)
	}
	return err
}

// RegisterWithInvite creates an account with an invitation token: on
// domain, with username (the reserved one when the invitation has one; ""
// takes it) and password. It takes one use of the token only when the
// account was created (XEP-0445 §4), makes the inviter and the invitee
// contacts with a mutual subscription (XEP-0379), grants the admin role
// of admin invitations and sends the welcome message. Both in-band
// registration and the landing page use it.
func (s *Service) RegisterWithInvite(ctx context.Context, token, domain, username, password string) (string, error) {
	info, err := s.CheckInvite(ctx, token)
	if err != nil {
		return "", err
	}
	if info.Domain != domain {
		return "", ErrInvalidInvite
	}
	if username == "" {
		username = info.Username
	}
	bare, err := s.inviteeJID(domain, username)
	if err != nil {
		return "", err
	}
	if info.Username != "" && jidLocal(bare) != info.Username {
		return "", ErrWrongUsername
	}
	if info.Username == "" {
		// Another invitation's reserved name stays reserved.
		if r, err := s.UsernameReserved(ctx, bare); err != nil {
			return "", err
		} else if r {
			return "", ErrUserExists
		}
	}
	if exists, err := s.store.AccountExists(ctx, bare); err != nil {
		return "", err
	} else if exists {
		return "", ErrUserExists
	}
	creds, err := s.derive(password)
	if err != nil {
		return "", err
	}
	// Take the use first, so that two registrations racing on a
	// single-use token cannot both succeed; give it back on failure.
	inv, err := s.store.UseInvite(ctx, tokenHash(token), s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return "", ErrInvalidInvite
	} else if err != nil {
		return "", err
	}
	if err := s.store.CreateAccount(ctx, bare, creds); err != nil {
		if rerr := s.store.ReturnInvite(context.WithoutCancel(ctx), inv); rerr != nil {
			s.log.Error("invitation use not given back", "id", inv.ID, "err", rerr)
		}
		if errors.Is(err, storage.ErrExists) {
			return "", ErrUserExists
		}
		return "", fmt.Errorf("creating %s: %w", bare, err)
	}
	s.log.Info("account registered with an invitation", "jid", bare, "invitation", inv.ID, "inviter", inv.Owner)
	if inv.Admin {
		if err := s.store.GrantRole(ctx, bare, storage.RoleAdmin); err != nil {
			s.log.Error("admin role of invited account not granted", "jid", bare, "err", err)
		}
	}
	if inv.Owner != "" && inv.Owner != bare {
		if err := s.befriend(ctx, inv.Owner, bare); err != nil {
			s.log.Error("roster subscription of invitation failed", "inviter", inv.Owner, "jid", bare, "err", err)
		}
	}
	s.Welcome(ctx, bare)
	return bare, nil
}

// befriend puts a and b in each other's rosters with a mutual
// subscription, and pushes the changes to their interested sessions
// (XEP-0401 §4: the inviter learns of the new contact without
// reconnecting).
func (s *Service) befriend(ctx context.Context, a, b string) error {
	for _, p := range [][2]string{{a, b}, {b, a}} {
		owner, contact := p[0], p[1]
		item, err := s.store.RosterItem(ctx, owner, contact)
		if errors.Is(err, storage.ErrNotFound) {
			item = storage.RosterItem{JID: contact}
		} else if err != nil {
			return err
		}
		item.Subscription, item.Ask, item.Approved = storage.SubBoth, false, false
		ver, err := s.store.UpsertRosterItem(ctx, owner, item)
		if err != nil {
			return err
		}
		s.rosterPush(ctx, owner, item, ver)
	}
	return nil
}

// rosterPush sends a roster push (RFC 6121 §2.1.6) to owner's sessions
// that requested the roster.
func (s *Service) rosterPush(ctx context.Context, owner string, item storage.RosterItem, ver string) {
	o := s.online.Load()
	if o == nil {
		return
	}
	j, err := jid.Parse(owner)
	if err != nil {
		return
	}
	el := wire.NewElement(xep.NSRoster, "item", "jid", item.JID, "subscription", item.Subscription)
	if item.Name != "" {
		el.SetAttr("name", item.Name)
	}
	if item.Ask {
		el.SetAttr("ask", "subscribe")
	}
	if item.Approved {
		el.SetAttr("approved", "true")
	}
	for _, g := range item.Groups {
		el.Add(wire.NewElement(xep.NSRoster, "group").AddText(g))
	}
	for _, sess := range o.Resources(j.Bare()) {
		if sess.Flags()&module.FlagInterested == 0 {
			continue
		}
		q := wire.NewElement(xep.NSRoster, "query").Add(el.Copy())
		if ver != "" {
			q.SetAttr("ver", ver)
		}
		iq := wire.NewElement(wire.NSClient, "iq", "type", "set", "id", "push-"+strings.ToLower(randText()[:10]), "to", sess.JID().String()).Add(q)
		_ = sess.Send(wire.FromElement(iq))
	}
}

// PreauthModule is the server side of XEP-0379 for contact invitations:
// a subscription request that carries a valid token of the recipient's
// invitation (<preauth xmlns='urn:xmpp:pars:0'/>, sent by the invitee's
// client when the invitee already has an account, here or elsewhere) is
// approved at once and answered with a subscription request of the
// inviter, so the two become mutual contacts without the inviter's
// clients knowing the token. The token's use is taken. It must run
// before im (it pre-approves in the roster; im then approves).
type PreauthModule struct {
	svc    *Service
	sender module.Sender
}

// NewPreauthModule returns the module of svc.
func NewPreauthModule(svc *Service) *PreauthModule { return &PreauthModule{svc: svc} }

// Name implements module.Module.
func (m *PreauthModule) Name() string { return "invites-preauth" }

// Register implements module.Module.
func (m *PreauthModule) Register(r *module.Registry) error {
	m.sender = r.Sender()
	r.Inbound(m.inbound)
	return nil
}

func (m *PreauthModule) inbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "presence" || st.Type != "subscribe" || ev.To.Localpart() == "" {
		return module.Continue
	}
	pa := st.Child(xep.NSPARS, "preauth")
	if pa == nil {
		return module.Continue
	}
	token := pa.AttrValue("token")
	info, err := m.svc.CheckInvite(ctx, token)
	inviter, contact := ev.To.Bare().String(), ev.From.Bare().String()
	// An unknown token is ignored (XEP-0379 §5: graceful degradation to
	// manual approval).
	if err != nil || info.Inviter != inviter || contact == inviter || ev.From.Localpart() == "" {
		return module.Continue
	}
	if _, err := m.svc.store.UseInvite(ctx, tokenHash(token), m.svc.now()); err != nil {
		return module.Continue
	}
	item, err := m.svc.store.RosterItem(ctx, inviter, contact)
	if errors.Is(err, storage.ErrNotFound) {
		item = storage.RosterItem{JID: contact, Subscription: storage.SubNone}
	} else if err != nil {
		m.svc.log.Error("invitation pre-approval: roster", "err", err)
		return module.Continue
	}
	item.Approved = true
	askBack := item.Subscription != storage.SubTo && item.Subscription != storage.SubBoth
	if askBack {
		item.Ask = true
	}
	ver, err := m.svc.store.UpsertRosterItem(ctx, inviter, item)
	if err != nil {
		m.svc.log.Error("invitation pre-approval: roster", "err", err)
		return module.Continue
	}
	m.svc.rosterPush(ctx, inviter, item, ver)
	m.svc.log.Info("contact invitation redeemed", "inviter", inviter, "contact", contact)
	if askBack {
		sub := wire.NewElement(wire.NSClient, "presence", "type", "subscribe", "from", inviter, "to", contact)
		m.sender.Route(ctx, wire.FromElement(sub))
	}
	return module.Continue
}
