package im

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
)

// FuzzRosterIQ: roster gets and sets (RFC 6121 §2), the blocking command
// (XEP-0191) with any payload are answered exactly once, with a defined
// condition when refused, and never make the server write malformed XML.
func FuzzRosterIQ(f *testing.F) {
	for _, s := range []string{
		"<query xmlns='jabber:iq:roster'/>",
		"<query xmlns='jabber:iq:roster' ver='3'/>",
		"<query xmlns='jabber:iq:roster'><item jid='bob@example.org' name='Bob &amp; co'><group>Friends</group><group>Friends</group></item></query>",
		"<query xmlns='jabber:iq:roster'><item jid='bob@example.org' subscription='remove'/></query>",
		"<query xmlns='jabber:iq:roster'><item jid='not a jid@@' subscription='both' ask='subscribe'/><item jid='x@y'/></query>",
		"<query xmlns='jabber:iq:roster'><item jid='alice@example.org'><group></group></item></query>",
		"<block xmlns='urn:xmpp:blocking'><item jid='spam@evil.example'/></block>",
		"<unblock xmlns='urn:xmpp:blocking'/>",
		"<blocklist xmlns='urn:xmpp:blocking'/>",
	} {
		f.Add("set", []byte(s))
		f.Add("get", []byte(s))
	}
	e := modtest.New(f)
	e.Register(New(Config{Limits: Limits{MaxRosterItems: 50, MaxBlockItems: 50}}, e.Store, e.Store, e.Store))
	s := e.Login("alice@example.org/fuzz")
	f.Fuzz(func(t *testing.T, typ string, payload []byte) {
		if typ != "get" && typ != "set" {
			typ = "set"
		}
		e.CheckIQ(t, s, typ, "", payload)
	})
}
