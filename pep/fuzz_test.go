package pep

import (
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
)

// FuzzPEPIQ: publish (with publish-options), retract, items, create,
// configure and delete requests with any payload are answered exactly
// once, with a defined condition when refused, and never make the server
// (its replies, its notifications) write malformed XML.
func FuzzPEPIQ(f *testing.F) {
	for _, s := range []string{
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='abc'>" +
			"<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='12345' id='abc' height='64' type='image/png' width='64'/></metadata></item></publish></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item><x xmlns='y' xmlns:p='urn:p' p:a='1'><p:b/></x></item></publish>" +
			"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
			"<field var='pubsub#access_model'><value>whitelist</value></field><field var='pubsub#max_items'><value>max</value></field></x></publish-options></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n' notify='true'><item id='abc'/></retract></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n' max_items='2'/></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='c'/><configure><x xmlns='jabber:x:data' type='submit'>" +
			"<field var='pubsub#notify_retract'><value>1</value></field></x></configure></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'/></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n'/></pubsub>",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='n'/></pubsub>",
	} {
		f.Add("set", []byte(s))
	}
	f.Add("get", []byte("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'/></pubsub>"))
	e := modtest.New(f)
	e.Register(New(Config{MaxItems: 10, MaxNodes: 10, MaxPayloadBytes: 4096, DiscoTimeout: time.Millisecond}, e.Store, e.Store, e.Store))
	a := e.LoginAvailable("alice@example.org/fuzz", 0)
	f.Fuzz(func(t *testing.T, typ string, payload []byte) {
		if typ != "get" && typ != "set" {
			typ = "set"
		}
		e.CheckIQ(t, a, typ, "", payload)
	})
}
