package c2s

import (
	"testing"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// FuzzSASL2 feeds arbitrary SASL2 elements (XEP-0388 <authenticate/> with
// whatever it may carry: initial response, user-agent, Bind2, FAST and
// upgrade requests, inline resumption; then a second element such as
// <response/>, <next/>, <task-data/> or <abort/>) to a fresh stream of the
// real state machine on the in-memory transport. Besides not panicking,
// the server must answer each with a SASL2 challenge, continue, task-data,
// success or failure, or end the stream with a stream error — never leave
// the client waiting.
func FuzzSASL2(f *testing.F) {
	h := newHarness(f, nil)
	// Fuzzing fails thousands of logins a second: no throttling here (it
	// would delay answers beyond the wait below).
	h.srv.throttle = auth.NewThrottle(auth.ThrottleConfig{})
	const ua = "<user-agent xmlns='urn:xmpp:sasl:2' id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>app</software><device>phone</device></user-agent>"
	f.Add("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>AGFsaWNlAHdyb25n</initial-response>"+ua+"</authenticate>", "")
	f.Add("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>biwsbj1hbGljZSxyPWFiY2RlZmdo</initial-response>"+ua+
		"<bind xmlns='urn:xmpp:bind:0'><tag>app</tag><enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/></bind>"+
		"<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/><upgrade xmlns='urn:xmpp:sasl:upgrade:0'>UPGR-SCRAM-SHA-512</upgrade></authenticate>",
		"<response xmlns='urn:xmpp:sasl:2'>Yz1iaXdzLHI9YWJjZGVmZ2gscD1BQUFB</response>")
	f.Add("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>biwsbj1hbGljZSxyPWFiY2RlZmdo</initial-response>"+
		"<bind xmlns='urn:xmpp:bind:0'/></authenticate>", "<response xmlns='urn:xmpp:sasl:2'>Yz1iaXdzLHI9YWJjZGVmZ2gscD1BQUFB</response>")
	f.Add("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-1'><initial-response>=</initial-response>"+
		"<resume xmlns='urn:xmpp:sm:3' previd='x' h='3'/><fast xmlns='urn:xmpp:fast:0' invalidate='true'/></authenticate>",
		"<abort xmlns='urn:xmpp:sasl:2'/>")
	f.Add("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><user-agent xmlns='urn:xmpp:sasl:2' id='not-a-uuid'/></authenticate>",
		"<next xmlns='urn:xmpp:sasl:2' task='UPGR-SCRAM-SHA-256'/>")
	f.Add("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>YWxpY2UAAAA=</initial-response></authenticate>",
		"<task-data xmlns='urn:xmpp:sasl:2'><salt xmlns='urn:xmpp:scram-upgrade:0' iterations='1'>AAAA</salt></task-data>")
	f.Fuzz(func(t *testing.T, first, second string) {
		st, err := wire.Parse([]byte(first), wire.Limits{})
		if err != nil || st.NS != xep.NSSASL2 {
			return // not SASL2: other tests cover the rest of negotiation
		}
		c, _ := h.connectAs(t)
		defer c.tr.close()
		c.tr.in <- st
		name, ended := sasl2Answer(t, c)
		if ended || name == "success" || name == "failure" {
			return
		}
		st, err = wire.Parse([]byte(second), wire.Limits{})
		if err != nil || st.NS != xep.NSSASL2 {
			return
		}
		c.tr.in <- st
		sasl2Answer(t, c)
	})
}

// sasl2Answer reads the server's answer to a SASL2 element: the answer's
// name, or ended when the stream ended (with a stream error or closed).
func sasl2Answer(t *testing.T, c *client) (name string, ended bool) {
	t.Helper()
	switch v := c.next().(type) {
	case *wire.Stanza:
		if v.NS == wire.NSStream && v.Name == "error" {
			return "", true
		}
		if v.NS == xep.NSSASL2 {
			switch v.Name {
			case "challenge", "continue", "task-data", "success", "failure":
				return v.Name, false
			}
		}
		t.Fatalf("answered a SASL2 element with %s", v.Raw)
	case wire.Header:
		t.Fatal("a stream header in the middle of SASL2")
	}
	return "", true // closed
}
