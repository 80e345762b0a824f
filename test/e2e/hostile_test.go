package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const streamOpen = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`

// rawStreamError sends payload on a fresh TCP connection and returns the
// stream error condition the server answers with.
func rawStreamError(t *testing.T, ts *testserver.Server, payload string) string {
	t.Helper()
	c := ts.Dial()
	go func() {
		// Write in chunks so an early error doesn't block us on a full
		// socket buffer.
		b := []byte(payload)
		for len(b) > 0 {
			n := min(len(b), 64<<10)
			c.SetWriteDeadline(time.Now().Add(testserver.Timeout))
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	c.SetReadDeadline(time.Now().Add(testserver.Timeout))
	rd := wire.NewReader(c, wire.Limits{MaxStanzaBytes: 1 << 20})
	if _, err := rd.ReadHeader(); err != nil {
		t.Fatalf("no stream header from server: %v", err)
	}
	for {
		st, err := rd.Next()
		if err != nil {
			t.Fatalf("stream ended without stream error: %v", err)
		}
		if st.Name == "error" && st.NS == wire.NSStream {
			return st.Tree().FirstElement().Name.Local
		}
	}
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(" a")
		b.WriteString(strings.Repeat("b", i%50))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(strings.Repeat("c", i/26))
		b.WriteString("='1'")
	}
	return b.String()
}

// TestHostileInputs covers reliability.md §4.1–4.2: each input gets the
// exact stream error, and a control client keeps being served.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("control", "pw-control")
	ctl := ts.Login("control", "pw-control", "ctl")
	controlPing := func(t *testing.T) {
		t.Helper()
		id := "p" + t.Name()
		res := ctl.IQ(id, "<iq type='get' id='%s' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", wire.EscapeAttr(id))
		if res.Type != "result" {
			t.Fatalf("control ping failed: %s", res.Raw)
		}
	}
	big := strings.Repeat("x", 1<<20)
	laughs := `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>`
	cases := []struct {
		name, payload, cond string
	}{
		{"doctype-before-header", `<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY a "b">]>` + streamOpen, "restricted-xml"},
		{"billion-laughs", laughs + streamOpen + "<message><body>&lol2;</body></message>", "restricted-xml"},
		{"external-entity", `<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + streamOpen, "restricted-xml"},
		{"pi-before-header", `<?evil x?>` + streamOpen, "restricted-xml"},
		{"comment-before-header", `<!-- hi -->` + streamOpen, "restricted-xml"},
		{"wrong-stream-namespace", `<stream:stream xmlns='jabber:client' xmlns:stream='urn:bad' to='localhost' version='1.0'>`, "invalid-namespace"},
		{"server-namespace-on-c2s", `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`, "invalid-namespace"},
		{"version-2", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='2.0'>`, "unsupported-version"},
		{"no-version", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>`, "unsupported-version"},
		{"unknown-host", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0'>`, "host-unknown"},
		{"missing-to", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, "host-unknown"},
		{"latin1-declaration", `<?xml version='1.0' encoding='ISO-8859-1'?>` + streamOpen, "unsupported-encoding"},
		{"not-a-stream", `<html><body>GET / HTTP/1.1</body></html>`, "invalid-namespace"},
		{"http-request", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not-well-formed"},
		{"bad-utf8-in-header", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local\xffhost' version='1.0'>", "not-well-formed"},
		{"doctype-after-header", streamOpen + `<!DOCTYPE x>`, "restricted-xml"},
		{"comment-between-stanzas", streamOpen + `<!-- x -->`, "restricted-xml"},
		{"comment-in-stanza", streamOpen + `<message><!-- x --></message>`, "restricted-xml"},
		{"pi-after-header", streamOpen + `<?foo bar?>`, "restricted-xml"},
		{"undefined-entity", streamOpen + `<message><body>&foo;</body></message>`, "restricted-xml"},
		{"invalid-utf8-ff", streamOpen + "<message><body>\xff</body></message>", "not-well-formed"},
		{"overlong-utf8", streamOpen + "<message><body>\xc0\xaf</body></message>", "not-well-formed"},
		{"utf8-surrogate", streamOpen + "<message><body>\xed\xa0\x80</body></message>", "not-well-formed"},
		{"truncated-multibyte", streamOpen + "<message><body>\xe2\x82</body></message>", "not-well-formed"},
		{"nul-char-ref", streamOpen + `<message><body>&#0;</body></message>`, "not-well-formed"},
		{"surrogate-char-ref", streamOpen + `<message><body>&#xD800;</body></message>`, "not-well-formed"},
		{"raw-control-char", streamOpen + "<message><body>\x01</body></message>", "not-well-formed"},
		{"raw-nul", streamOpen + "<message><body>\x00</body></message>", "not-well-formed"},
		{"mismatched-tag", streamOpen + `<message><body></message>`, "not-well-formed"},
		{"duplicate-attribute", streamOpen + `<message to='a@localhost' to='b@localhost'/>`, "not-well-formed"},
		{"duplicate-xmlns", streamOpen + `<message><x xmlns='a' xmlns='b'/></message>`, "not-well-formed"},
		{"undeclared-prefix", streamOpen + `<message><foo:bar/></message>`, "not-well-formed"},
		{"unquoted-attribute", streamOpen + `<message to=a/>`, "not-well-formed"},
		{"deep-nesting", streamOpen + strings.Repeat("<a>", 10000), "policy-violation"},
		{"huge-text", streamOpen + "<message><body>" + big + "</body></message>", "policy-violation"},
		{"huge-attribute", streamOpen + "<message to='" + big + "'/>", "policy-violation"},
		{"many-attributes", streamOpen + "<message" + manyAttrs(100000) + "/>", "policy-violation"},
		{"huge-element-name", streamOpen + "<" + big + "/>", "policy-violation"},
		{"many-namespace-declarations", streamOpen + "<message" + strings.ReplaceAll(manyAttrs(100000), " a", " xmlns:a") + "/>", "policy-violation"},
		{"whitespace-flood", streamOpen + strings.Repeat(" ", 1<<20), "policy-violation"},
		{"text-between-stanzas", streamOpen + `hello<presence/>`, "bad-format"},
		{"stanza-before-starttls", streamOpen + `<message to='control@localhost'><body>x</body></message>`, "policy-violation"},
		{"unknown-top-level", streamOpen + `<foo xmlns='urn:example'/>`, "unsupported-stanza-type"},
		{"nested-stream-header", streamOpen + streamOpen[len("<?xml version='1.0'?>"):], "unsupported-stanza-type"},
		{"compression-request", streamOpen + `<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>`, "unsupported-stanza-type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := rawStreamError(t, ts, c.payload); got != c.cond {
				t.Errorf("stream error = %s, want %s", got, c.cond)
			}
			controlPing(t)
		})
	}

	// Cases that need a TLS or authenticated stream.
	ts.AddUser("mallory", "pw-mallory")
	t.Run("starttls-twice", func(t *testing.T) {
		c := ts.Connect()
		c.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		assertStreamError(t, c, "policy-violation")
		controlPing(t)
	})
	t.Run("stanza-before-auth", func(t *testing.T) {
		c := ts.Connect()
		c.Send("<message to='control@localhost'><body>spam</body></message>")
		assertStreamError(t, c, "not-authorized")
		controlPing(t)
	})
	t.Run("auth-after-bind", func(t *testing.T) {
		c := ts.Login("mallory", "pw-mallory", "")
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>")
		assertStreamError(t, c, "policy-violation")
		controlPing(t)
	})
	t.Run("oversized-stanza-after-bind", func(t *testing.T) {
		c := ts.Login("mallory", "pw-mallory", "")
		c.Send("<message to='control@localhost'><body>%s</body></message>", strings.Repeat("A", 300000))
		assertStreamError(t, c, "policy-violation")
		ctl.ExpectNone("oversized message", 200*time.Millisecond, testserver.Is("message", "*"))
		controlPing(t)
	})
	t.Run("unknown-nonza-after-bind", func(t *testing.T) {
		c := ts.Login("mallory", "pw-mallory", "")
		c.Send("<bogus xmlns='urn:example:bogus'/>")
		assertStreamError(t, c, "unsupported-stanza-type")
		controlPing(t)
	})
	t.Run("stanza-errors-keep-the-stream", func(t *testing.T) {
		c := ts.Login("mallory", "pw-mallory", "")
		res := c.IQ("j1", "<iq type='get' id='j1' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>")
		assertStanzaError(t, res, "jid-malformed")
		res = c.IQ("j2", "<iq type='get' id='j2' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>")
		assertStanzaError(t, res, "bad-request")
		res = c.IQ("j3", "<iq type='fetch' id='j3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		assertStanzaError(t, res, "bad-request")
		res = c.IQ("j4", "<iq type='get' id='j4' to='localhost'><query xmlns='urn:example:unknown'/></iq>")
		assertStanzaError(t, res, "service-unavailable")
		res = c.IQ("j5", "<iq type='get' id='j5' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if res.Type != "result" {
			t.Fatalf("stream unusable after stanza errors: %s", res.Raw)
		}
	})
}

func assertStreamError(t *testing.T, c *testserver.Client, cond string) {
	t.Helper()
	se := c.StreamError()
	if se == nil || se.Condition != cond {
		t.Fatalf("stream error = %v, want %s", se, cond)
	}
}

func assertStanzaError(t *testing.T, st *wire.Stanza, cond string) {
	t.Helper()
	if st.Type != "error" || st.Tree().Child(wire.NSClient, "error").Child(wire.NSStanzas, cond) == nil {
		t.Fatalf("want %s error, got %s", cond, st.Raw)
	}
}
