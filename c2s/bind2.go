package c2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/xep"
)

// XEP-0386 Bind2: the resource is bound inside SASL2 authentication, with
// stream management, carbons and the client state set at the same time.

// bind2Features are the namespaces a Bind2 request can enable inline.
func (c *conn) bind2Features() []string {
	f := []string{sm.NS, nsCSI}
	for _, in := range c.srv.reg.BindInlines() {
		f = append(f, in.NS)
	}
	return f
}

// resourceOK reports whether s is a valid resourcepart.
func resourceOK(s string) bool {
	_, err := jid.New("u", "example.net", s)
	return err == nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// bind2Resource is Bind2Resource for this connection's account.
func (c *conn) bind2Resource(tag, uaID string) string {
	return c.srv.Bind2Resource(c.username+"@"+c.domain, tag, uaID)
}

// Bind2Resource is the resource a Bind2 login of account bare with the
// tag and user-agent id gets from this server (from every node of a
// cluster, which share Config.Secret).
func (srv *Server) Bind2Resource(bare, tag, uaID string) string {
	return Bind2Resource(srv.cfg.Secret, bare, tag, uaID)
}

// Bind2Resource derives the resource of a Bind2 session of account bare:
// the client's tag and an identifier that is stable for one client
// installation (its user-agent id), so a reconnecting client gets its old
// full JID back and replaces a session it left behind. The identifier is
// keyed with secret: it does not expose the user-agent id (XEP-0386
// §2.2.1). Without a user-agent id it is random.
func Bind2Resource(secret []byte, bare, tag, uaID string) string {
	var id string
	if uaID == "" {
		id = strings.ToLower(router.NewID()[:12])
	} else {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("parley bind2 resource\x00" + bare + "\x00" + uaID))
		id = strings.ToLower(idEncoding.EncodeToString(m.Sum(nil)[:10]))
	}
	if tag == "" {
		return id
	}
	return tag + "/" + id
}

// bind2 binds a session for a SASL2 authentication that asked for it and
// enables what the request asks for inline. success writes the SASL2
// <success/> carrying bound (<bound/>) and the features; it runs before
// anything else reaches the session. done is false when no session could
// be bound (the account has too many).
func (c *conn) bind2(a *sasl2Auth, success func(s *session, bound string) error) (done bool, err error) {
	req := a.bind
	full, err := jid.New(c.username, c.domain, c.bind2Resource(strings.TrimSpace(req.ChildText(xep.NSBind2, "tag")), a.ua.ID))
	if err != nil {
		return false, err
	}
	_, err = c.openSession(full, func(s *session) error {
		var inner []byte // the children of <bound/>
		for _, f := range c.srv.reg.Bind2Hooks() {
			if e := f(ctx, s); e != nil {
				inner = e.AppendXML(inner, xep.NSBind2)
			}
		}
		var smAnswer string
		for _, e := range req.Elements() {
			switch ns := e.Name.Space; {
			case ns == sm.NS && e.Name.Local == "enable":
				smAnswer = c.enableSM(s, e.AttrValue("resume"), e.AttrValue("max"))
			case ns == nsCSI && (e.Name.Local == "active" || e.Name.Local == "inactive"):
				// XEP-0386 §2.2: the session begins in that state.
				inactive := e.Name.Local == "inactive"
				s.mu.Lock()
				s.inactive = inactive
				s.mu.Unlock()
				if inactive {
					s.SetFlags(module.FlagInactive, 0)
				}
			default:
				for _, in := range c.srv.reg.BindInlines() {
					if in.NS == ns {
						if out := in.F(ctx, s, e); out != nil {
							inner = out.AppendXML(inner, xep.NSBind2)
						}
					}
				}
			}
		}
		return success(s, "<bound xmlns='"+xep.NSBind2+"'>"+string(inner)+smAnswer+"</bound>")
	})
	var refused *bindRefusedError
	if errors.As(err, &refused) {
		c.logger().Info("Bind2: no session bound", "jid", full.String(), "err", err)
		return false, nil
	}
	return err == nil, err
}

// smEnabled reports whether the connection's session has stream
// management on.
func (c *conn) smEnabled() bool {
	s := c.sess
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.smq != nil
}
