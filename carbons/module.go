// Package carbons implements XEP-0280 Message Carbons (urn:xmpp:carbons:2):
// a user's carbons-enabled resources get <sent/> copies of the messages the
// user's other resources send and <received/> copies of messages delivered
// to the user's other resources.
//
// Copies wrap the stanza as it is delivered, so this module must be
// registered after mam: received copies then carry the recipient archive's
// <stanza-id/>, and sent copies get the sender archive's stanza-id
// (module.Event.ArchiveID, XEP-0313 §3.3) although the original sent to
// the contact does not.
//
// Copies are written straight into the sessions (module.Session.Send) rather
// than routed: a copy for a resource that went away in the meantime is
// dropped instead of being redelivered by RFC 6121 to the bare JID, and
// copies never re-enter the hook chains.
package carbons

import (
	"bytes"
	"context"
	"encoding/xml"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces.
const (
	NS        = xep.NSCarbons
	NSRules   = xep.NSCarbonsRules
	NSForward = xep.NSForward
	nsMAM     = xep.NSMAM
	nsMUCUser = xep.NSMUCUser
	nsInvite  = xep.NSDirectInvite // XEP-0249 direct invitation
)

// Config configures the module.
type Config struct {
	Logger *slog.Logger
}

// Module implements module.Module.
type Module struct {
	log  *slog.Logger
	reg  *module.Registry
	sent sentLog // copied messages, for their error answers
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{log: cfg.Logger}
}

// Name implements module.Module.
func (m *Module) Name() string { return "carbons" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	r.Feature(NS)
	// §6.2: the §6.1 rules, treated as required.
	r.Feature(NSRules)
	r.IQ(NS, "enable", module.TargetAccount, m.handleToggle)
	r.IQ(NS, "disable", module.TargetAccount, m.handleToggle)
	// XEP-0386: <enable/> inside a Bind2 request; it cannot fail, so the
	// answer says nothing.
	r.BindInline(NS, func(_ context.Context, s module.Session, req *wire.Element) *wire.Element {
		if req.Name.Local == "enable" {
			s.SetFlags(module.FlagCarbons, 0)
		}
		return nil
	})
	r.Outbound(m.outbound)
	r.Inbound(m.inbound)
	return nil
}

// handleToggle enables or disables carbons for the requesting session
// (§3, §4). Repeated requests simply succeed (§9.1).
func (m *Module) handleToggle(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	s := ev.Origin.Session
	if ev.Origin.Kind != module.FromClient || s == nil || !ev.From.Bare().Equal(ev.To.Bare()) {
		return nil, module.Errorf(wire.ErrNotAllowed, "carbons are enabled by the user's own sessions")
	}
	if ev.Stanza.Type != "set" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	if ev.Stanza.Tree().FirstElement().Name.Local == "enable" {
		s.SetFlags(module.FlagCarbons, 0)
	} else {
		s.SetFlags(0, module.FlagCarbons)
	}
	return nil, nil
}

// isCarbon reports whether st carries a carbon copy.
func isCarbon(st *wire.Stanza) bool {
	return st.HasChild(NS, "sent") || st.HasChild(NS, "received")
}

// eligible implements §6.1 for the messages this server sees. A
// <private/> element or an XEP-0334 <no-copy/> hint (either one, as
// Prosody does) opts a message out; errors are copied only as bounces of
// messages to a bare JID (isBounce: we do not track which message an
// error answers); groupchat is left to the MUC.
func eligible(st *wire.Stanza) bool {
	if st.Name != "message" || st.HasChild(NS, "private") || xep.Hint(st, "no-copy") ||
		isCarbon(st) || st.HasChild(nsMAM, "result") {
		return false
	}
	switch st.Type {
	case "chat":
		return true
	case "", "normal":
	default: // error, groupchat, headline
		return false
	}
	if xep.HasBody(st) || xep.IsEncrypted(st) || st.HasChild(nsInvite, "x") ||
		st.Child(nsMUCUser, "x").Child(nsMUCUser, "invite") != nil {
		return true
	}
	return st.HasChildIn(xep.NSReceipts) || st.HasChildIn(xep.NSChatStates) || st.HasChildIn(xep.NSMarkers)
}

// answersCopied reports whether an inbound error message answers a message
// the user sent and this module copied (§6.1).
func (m *Module) answersCopied(ev *module.Event) bool {
	st := ev.Stanza
	if st.Name != "message" || st.Type != "error" || st.ID == "" || st.HasChild(NS, "private") || xep.Hint(st, "no-copy") {
		return false
	}
	return m.sent.answered(sentKey{ev.To.Bare().String(), ev.From.String(), st.ID}, time.Now())
}

// outbound sends <sent/> copies of a user's message to the user's other
// carbons-enabled resources (§7).
func (m *Module) outbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if ev.Origin.Kind != module.FromClient || st.Name != "message" || ev.From.Localpart() == "" || !eligible(st) {
		return module.Continue
	}
	user := ev.From.Bare()
	if ev.To.Bare().Equal(user) {
		// To the user's own account: the resources get the message itself,
		// or a <received/> copy from the inbound hook.
		return module.Continue
	}
	var fwd *wire.Stanza
	for _, s := range m.reg.Sessions().Resources(user) {
		if s.JID().Equal(ev.From) || s.Flags()&module.FlagCarbons == 0 {
			continue
		}
		if fwd == nil {
			// Only a copied message's error answer is copied (§6.1), so
			// only copied messages are remembered: a user with one
			// device costs nothing here.
			if st.ID != "" {
				m.sent.add(sentKey{user.String(), ev.To.String(), st.ID}, time.Now())
			}
			fwd = st
			if ev.ArchiveID != "" {
				fwd = st.WithChild(wire.NewElement(xep.NSSID, "stanza-id", "by", user.String(), "id", ev.ArchiveID))
			}
		}
		m.deliver(ev, s, "sent", user, fwd)
	}
	return module.Continue
}

// inbound drops forged carbons and sends <received/> copies to the user's
// carbons-enabled resources that do not get the message itself (§6).
func (m *Module) inbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "message" || ev.To.Localpart() == "" {
		return module.Continue
	}
	if isCarbon(st) {
		if ev.Origin.Kind != module.FromLocal {
			// Only this server makes carbons for its users (§11,
			// CVE-2017-5589): anything else is an impersonation attempt.
			return module.Drop
		}
		return module.Continue
	}
	if !eligible(st) && !m.answersCopied(ev) {
		return module.Continue
	}
	if st.Type == "chat" && st.Child(nsMUCUser, "x") != nil && ev.From.Resourcepart() != "" &&
		st.Child(nsMUCUser, "x").Child(nsMUCUser, "invite") == nil {
		// A private message from a MUC occupant: the room already sends it
		// to every joined client (§6.1).
		return module.Continue
	}
	user := ev.To.Bare()
	sessions := m.reg.Sessions()
	// Who gets the message itself, by the router's RFC 6121 §8.5 rules.
	var target module.Session
	if ev.To.Resourcepart() != "" {
		target = sessions.Session(ev.To)
	}
	for _, s := range sessions.Resources(user) {
		if s.Flags()&module.FlagCarbons == 0 || s.JID().Equal(ev.From) {
			continue
		}
		if target != nil {
			if s == target {
				continue
			}
		} else if s.Presence() != nil && s.Priority() >= 0 {
			continue
		}
		m.deliver(ev, s, "received", user, st)
	}
	return module.Continue
}

// deliver writes one copy into a session once the message is stored
// (module.Deliver); a closed session just misses it.
func (m *Module) deliver(ev *module.Event, s module.Session, kind string, user jid.JID, st *wire.Stanza) {
	c := wrap(kind, user.String(), s.JID().String(), st)
	_ = module.Deliver(ev, s, c)
}

// wrap builds <message from=user to=resource><sent|received><forwarded>
// st </forwarded></…></message>, keeping st's bytes and without parsing
// them: the copy's tree is parsed from its bytes only if something asks
// for it (nothing on the way to the client does).
func wrap(kind, from, to string, st *wire.Stanza) *wire.Stanza {
	attrs := []xml.Attr{{Name: xml.Name{Local: "from"}, Value: from}, {Name: xml.Name{Local: "to"}, Value: to}}
	if st.Type != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: st.Type})
	}
	var b bytes.Buffer
	b.WriteString("<" + kind + " xmlns='" + NS + "'><forwarded xmlns='" + NSForward + "'>")
	const root = "<message"
	raw := st.Raw
	if bytes.HasPrefix(raw, []byte(root)) && len(raw) > len(root) && bytes.IndexByte([]byte(" \t\r\n/>"), raw[len(root)]) >= 0 {
		b.WriteString(root + " xmlns='" + wire.NSClient + "'")
		b.Write(raw[len(root):])
		b.WriteString("</forwarded></" + kind + ">")
		return wire.ComposeOne("message", attrs, b.Bytes(), NS, kind)
	}
	b.Write(st.Tree().AppendXML(nil, NSForward))
	b.WriteString("</forwarded></" + kind + ">")
	tree := &wire.Element{Name: xml.Name{Space: wire.NSClient, Local: "message"}, Attr: attrs}
	tree.Add(wire.NewElement(NS, kind).Add(wire.NewElement(NSForward, "forwarded").Add(st.Tree())))
	return wire.Compose("message", attrs, b.Bytes(), tree)
}
