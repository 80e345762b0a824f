package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const hdr = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>`

func readAll(t *testing.T, in string, lim Limits) ([]*Stanza, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), lim)
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	var out []*Stanza
	for {
		s, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
}

func TestReaderKeepsRawBytes(t *testing.T) {
	msg := `<message to='b@example.org' type='chat' id='1'><body>hi &amp; &lt;3</body><x xmlns='urn:x'><y a="1"/></x></message>`
	out, err := readAll(t, hdr+msg+"\n "+`<presence/>`+`</stream:stream>`, Limits{})
	if !errors.Is(err, ErrStreamEnd) {
		t.Fatalf("err = %v", err)
	}
	if len(out) != 2 {
		t.Fatalf("got %d stanzas", len(out))
	}
	if string(out[0].Raw) != msg {
		t.Fatalf("raw = %s", out[0].Raw)
	}
	s := out[0]
	if s.Name != "message" || s.NS != NSClient || s.Type != "chat" || s.ID != "1" || s.To != "b@example.org" {
		t.Fatalf("header = %+v", s)
	}
	if got := s.Child(NSClient, "body").Text(); got != "hi & <3" {
		t.Fatalf("body = %q", got)
	}
	if s.Child("urn:x", "x").Child("urn:x", "y").AttrValue("a") != "1" {
		t.Fatal("nested child not found")
	}
	if string(out[1].Raw) != "<presence/>" || !out[1].IsStanza() {
		t.Fatalf("presence raw = %s", out[1].Raw)
	}
	w := s.WithAttr("from", "a@example.org/r")
	if !strings.HasPrefix(string(w.Raw), `<message to='b@example.org' type='chat' id='1' from='a@example.org/r'>`) || w.From != "a@example.org/r" {
		t.Fatalf("WithAttr raw = %s", w.Raw)
	}
	if string(s.Raw) != msg {
		t.Fatal("WithAttr modified the original")
	}
	if w.Child(NSClient, "body").Text() != "hi & <3" {
		t.Fatal("WithAttr lost the body")
	}
}

func TestReaderErrors(t *testing.T) {
	cases := []struct {
		name, in, cond string
	}{
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]>` + hdr, CondRestrictedXML},
		{"doctype-after-header", hdr + `<!DOCTYPE x>`, CondRestrictedXML},
		{"comment", hdr + `<message><!-- hi --></message>`, CondRestrictedXML},
		{"pi", hdr + `<?foo bar?>`, CondRestrictedXML},
		{"entity", hdr + `<message><body>&foo;</body></message>`, CondRestrictedXML},
		{"bad-utf8", hdr + "<message><body>\xff</body></message>", CondNotWellFormed},
		{"nul-ref", hdr + "<message><body>&#0;</body></message>", CondNotWellFormed},
		{"surrogate-ref", hdr + "<message><body>&#xD800;</body></message>", CondNotWellFormed},
		{"mismatch", hdr + "<message><body></message>", CondNotWellFormed},
		{"dup-attr", hdr + "<message to='a' to='b'/>", CondNotWellFormed},
		{"undeclared-prefix", hdr + "<message><x:y/></message>", CondNotWellFormed},
		{"text", hdr + "hello", CondBadFormat},
		{"depth", hdr + strings.Repeat("<a>", 100), CondPolicyViolation},
		{"size", hdr + "<message><body>" + strings.Repeat("x", 300000) + "</body></message>", CondPolicyViolation},
		{"attrs", hdr + "<message" + func() string {
			var b strings.Builder
			for i := 0; i < 100; i++ {
				b.WriteString(" a" + strings.Repeat("x", i) + "='1'")
			}
			return b.String()
		}() + "/>", CondPolicyViolation},
		{"wrong-ns", `<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>`, CondInvalidNamespace},
		{"encoding", `<?xml version='1.0' encoding='ISO-8859-1'?>` + hdr, CondUnsupportedEncoding},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readAll(t, c.in, Limits{})
			se, ok := AsStreamError(err)
			if !ok {
				t.Fatalf("err = %v, want stream error %s", err, c.cond)
			}
			if se.Condition != c.cond {
				t.Fatalf("condition = %s (%s), want %s", se.Condition, se.Text, c.cond)
			}
		})
	}
}

func TestReaderCanonicalizesNamespaces(t *testing.T) {
	in := hdr + `<message xmlns='jabber:client' to='x@y'><body>a</body></message>` +
		`<stream:features/>` + `<jc:message xmlns:jc='jabber:client' to='z@y'><jc:body>b</jc:body></jc:message>`
	out, err := readAll(t, in, Limits{})
	if !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v", err)
	}
	if len(out) != 3 {
		t.Fatalf("got %d", len(out))
	}
	if string(out[0].Raw) != `<message to='x@y'><body>a</body></message>` {
		t.Fatalf("raw0 = %s", out[0].Raw)
	}
	if out[1].NS != NSStream || out[1].Name != "features" {
		t.Fatalf("features = %s %s", out[1].NS, out[1].Name)
	}
	if string(out[2].Raw) != `<message to='z@y'><body>b</body></message>` {
		t.Fatalf("raw2 = %s", out[2].Raw)
	}
}

func TestParseFragment(t *testing.T) {
	s, err := Parse([]byte(`<message xmlns='jabber:client' to='a@b'><body>x</body></message>`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Raw) != `<message to='a@b'><body>x</body></message>` {
		t.Fatalf("raw = %s", s.Raw)
	}
	if _, err := Parse([]byte(`<a/><b/>`), Limits{}); err == nil {
		t.Fatal("two elements accepted")
	}
	if _, err := Parse([]byte(`<a>`), Limits{}); err == nil {
		t.Fatal("incomplete accepted")
	}
	o, err := Parse([]byte(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>`), Limits{})
	if err != nil || o.NS != NSFraming || o.To != "example.org" {
		t.Fatalf("open = %+v %v", o, err)
	}
}

func TestFromElementRoundTrip(t *testing.T) {
	e := NewElement(NSClient, "iq", "type", "result", "id", "x'1").Add(
		NewElement("jabber:iq:roster", "query").Add(NewElement("jabber:iq:roster", "item", "jid", "a@b", "name", "<A&B>")))
	s := FromElement(e)
	p, err := Parse(s.Raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Raw) != string(s.Raw) || p.ID != "x'1" || p.Type != "result" {
		t.Fatalf("round trip %s vs %s", p.Raw, s.Raw)
	}
	if p.Child("jabber:iq:roster", "query").Child("jabber:iq:roster", "item").AttrValue("name") != "<A&B>" {
		t.Fatal("attr lost")
	}
}

func TestWithChildKeepsBytes(t *testing.T) {
	orig := `<message to='a@b' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'><payload>ab&#x2F;cd</payload></encrypted></message>`
	s := MustParse(orig)
	w := s.WithChild(NewElement("urn:xmpp:sid:0", "stanza-id", "by", "a@b", "id", "x1"))
	want := orig[:len(orig)-len("</message>")] + `<stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='x1'/></message>`
	if string(w.Raw) != want {
		t.Fatalf("got  %s\nwant %s", w.Raw, want)
	}
	if w.Child("urn:xmpp:sid:0", "stanza-id").AttrValue("id") != "x1" || w.To != "a@b" {
		t.Fatal("tree or header wrong")
	}
	e := MustParse(`<message to='a@b'/>`).WithChild(NewElement(NSClient, "body").AddText("x"))
	if string(e.Raw) != `<message to='a@b'><body>x</body></message>` {
		t.Fatalf("self-closing: %s", e.Raw)
	}
	if _, err := Parse(e.Raw, Limits{}); err != nil {
		t.Fatal(err)
	}
}

// TestDerivedStanzasShareTree: copies made with WithAttr and WithChild of
// a stanza whose tree is parsed share it (no second parse), and the
// shared tree is the one their own bytes parse to.
func TestDerivedStanzasShareTree(t *testing.T) {
	for _, in := range []string{
		"<message to='a@x' type='groupchat' xml:lang='en'><body>hi &amp; bye</body>\n<x xmlns='urn:x' a='1'><y/></x></message>",
		"<presence/>",
		"<iq type='get' id='1'><query xmlns='jabber:iq:version'/></iq>",
	} {
		st := MustParse(in)
		st.Tree()
		derived := st.WithAttr("to", "b@y/r").WithAttr("from", "room@muc/nick").WithChild(NewElement("urn:sid", "stanza-id", "id", "7")).WithAttr("id", "")
		if !derived.treeDone.Load() {
			t.Fatalf("%s: the copy does not share the parsed tree", in)
		}
		reparsed, err := Parse(derived.Raw, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := derived.Tree().String(), reparsed.Tree().String(); got != want {
			t.Fatalf("shared tree differs from the bytes:\n got %s\nwant %s", got, want)
		}
		if derived.Tree().Lang() != reparsed.Tree().Lang() || derived.Child("urn:sid", "stanza-id") == nil {
			t.Fatalf("%s: shared tree lost a child or xml:lang", in)
		}
		// The original is untouched.
		if st.Child("urn:sid", "stanza-id") != nil || st.To != MustParse(in).To {
			t.Fatalf("%s: the original changed", in)
		}
	}
	// Built from a tree: the same.
	b := FromElement(NewElement(NSClient, "message", "to", "a@x").Add(NewElement(NSClient, "body").AddText("x")))
	d := b.WithAttr("to", "c@z")
	if r, _ := Parse(d.Raw, Limits{}); d.Tree().String() != r.Tree().String() {
		t.Fatalf("copy of a built stanza: %s vs %s", d.Tree().String(), r.Tree().String())
	}
}

// idleSignal is an io.Reader that reports every one-byte read (the idle
// wait) on a channel before serving it from r.
type idleSignal struct {
	r    io.Reader
	idle chan struct{}
}

func (s *idleSignal) Read(p []byte) (int, error) {
	if len(p) == 1 {
		s.idle <- struct{}{}
	}
	return s.r.Read(p)
}

// TestReaderIdleHoldsNoBuffer: between stanzas, with nothing buffered, the
// reader waits for input without a read or record buffer, and a decoder
// that grew on a large element is replaced.
func TestReaderIdleHoldsNoBuffer(t *testing.T) {
	pr, pw := io.Pipe()
	src := &idleSignal{r: pr, idle: make(chan struct{})}
	r := NewReader(src, Limits{})
	big := "<message><body>" + strings.Repeat("x", 20000) + "</body></message>"
	go func() {
		_, _ = io.WriteString(pw, hdr)
		<-src.idle
		_, _ = io.WriteString(pw, big)
		<-src.idle
		_, _ = io.WriteString(pw, "<presence/>")
		<-src.idle
		_ = pw.Close()
	}()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	st, err := r.Next()
	if err != nil || len(st.Raw) != len(big) {
		t.Fatalf("big stanza: %v", err)
	}
	dec := r.dec
	st, err = r.Next()
	if err != nil || string(st.Raw) != "<presence/>" {
		t.Fatalf("presence: %v %v", st, err)
	}
	if r.dec == dec {
		t.Fatal("the decoder that read a 20 kB element was kept while idle")
	}
	// The writer sent the third signal only once Next was waiting again.
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

// TestReaderIdleReleasesBuffers checks the state during the idle wait.
func TestReaderIdleReleasesBuffers(t *testing.T) {
	pr, pw := io.Pipe()
	src := &idleSignal{r: pr, idle: make(chan struct{})}
	r := NewReader(src, Limits{})
	go func() { _, _ = io.WriteString(pw, hdr+"<presence/>") }()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := r.Next()
		done <- err
	}()
	<-src.idle // Next is about to block in the one-byte read
	if r.src.rbuf != nil || r.src.buf != nil || r.dec != nil {
		t.Fatalf("idle reader holds buffers: read %d, record %d, decoder %v", cap(r.src.rbuf), cap(r.src.buf), r.dec != nil)
	}
	_ = pw.Close()
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v", err)
	}
}

// TestReaderOddReads: input arriving a byte at a time, or with the error
// in the same call as the last bytes, parses the same.
func TestReaderOddReads(t *testing.T) {
	in := hdr + "<message to='a@b'><body>hi</body></message> <presence/></stream:stream>"
	for name, rd := range map[string]io.Reader{
		"one-byte": iotest.OneByteReader(strings.NewReader(in)),
		"data-err": iotest.DataErrReader(strings.NewReader(in)),
		"half":     iotest.HalfReader(strings.NewReader(in)),
	} {
		r := NewReader(rd, Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for {
			st, err := r.Next()
			if err != nil {
				if !errors.Is(err, ErrStreamEnd) {
					t.Fatalf("%s: %v", name, err)
				}
				break
			}
			got = append(got, string(st.Raw))
		}
		if strings.Join(got, "|") != "<message to='a@b'><body>hi</body></message>|<presence/>" {
			t.Fatalf("%s: %q", name, got)
		}
	}
}

// TestContentXmlnsKeepsPayloadBytes: a root that declares the content
// namespace itself (every RFC 7395 WebSocket frame does) loses only that
// declaration; the payload stays byte for byte as sent (quotes, spacing,
// namespace prefixes, OMEMO-style base64), and the tree is the one the
// sender meant.
func TestContentXmlnsKeepsPayloadBytes(t *testing.T) {
	payload := `<body>a &amp; b</body>` + "\n  " +
		`<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1"><key rid="2">AAE=</key><iv>BQ==</iv></header><payload>Zm9v</payload></encrypted>` +
		`<x:delay xmlns:x='urn:xmpp:delay' stamp="2024-01-01T00:00:00Z"/>`
	for _, tc := range []struct{ name, in, raw string }{
		{"websocket frame", `<message xmlns='jabber:client' to="b@example.org" id='m1' type="chat">` + payload + `</message>`,
			`<message to='b@example.org' id='m1' type='chat'>` + payload + `</message>`},
		{"jabber:server", `<message xmlns="jabber:server" to='b@example.org'>` + payload + `</message>`,
			`<message to='b@example.org'>` + payload + `</message>`},
		{"self-closing", `<presence xmlns='jabber:client' xmlns:p='urn:p' p:x='1'/>`,
			`<presence xmlns:p='urn:p' p:x='1'/>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.in), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if string(s.Raw) != tc.raw {
				t.Fatalf("raw = %s\nwant  %s", s.Raw, tc.raw)
			}
			if s.NS != NSClient {
				t.Errorf("NS = %s", s.NS)
			}
			// The tree: content children are jabber:client, others keep theirs.
			tree := s.Tree()
			if s.Name == "message" {
				if tree.ChildText(NSClient, "body") != "a & b" || tree.Child("eu.siacs.conversations.axolotl", "encrypted") == nil ||
					tree.Child("urn:xmpp:delay", "delay").AttrValue("stamp") != "2024-01-01T00:00:00Z" {
					t.Errorf("tree = %s", tree.Bytes())
				}
			}
			// Stamping 'from' rewrites the start tag only.
			st := s.WithAttr("from", "a@example.org/r")
			if !bytes.HasSuffix(st.Raw, s.Raw[s.bodyStart:]) || st.From != "a@example.org/r" {
				t.Errorf("stamped = %s", st.Raw)
			}
			// The bytes read again give the same stanza.
			again, err := Parse(s.Raw, Limits{})
			if err != nil || !bytes.Equal(again.Raw, s.Raw) {
				t.Errorf("re-parse: %v %s", err, again.Raw)
			}
		})
	}
}

// BenchmarkParseWebSocketFrame: one RFC 7395 frame (root with
// xmlns='jabber:client') as the WebSocket transport parses it.
func BenchmarkParseWebSocketFrame(b *testing.B) {
	frame := []byte(`<message xmlns='jabber:client' to='bob@example.org' type='chat' id='a1b2c3'><body>Hello, how are you doing today?</body>` +
		`<active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546014'/></message>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(frame, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCompose(t *testing.T) {
	attrs := []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "a'b@example.org"}, {Name: xml.Name{Local: "type"}, Value: "chat"}}
	s := Compose("message", attrs, []byte(`<body>x &amp; y</body><x xmlns="urn:x"/>`), nil)
	if string(s.Raw) != `<message to='a&apos;b@example.org' type='chat'><body>x &amp; y</body><x xmlns="urn:x"/></message>` {
		t.Fatalf("raw = %s", s.Raw)
	}
	if s.To != "a'b@example.org" || s.Type != "chat" || s.Name != "message" || !s.IsStanza() {
		t.Fatalf("header %+v", s)
	}
	if s.Child(NSClient, "body").Text() != "x & y" || s.Child("urn:x", "x") == nil {
		t.Fatalf("tree %s", s.Tree())
	}
	empty := Compose("presence", nil, nil, nil)
	if string(empty.Raw) != `<presence/>` || empty.Tree().Name.Local != "presence" {
		t.Fatalf("empty = %s", empty.Raw)
	}
	// A given tree is used as is, and copies share it.
	tree := NewElement(NSClient, "message", "to", "a@b").Add(NewElement("urn:y", "y"))
	c := Compose("message", []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "a@b"}}, []byte(`<y xmlns='urn:y'/>`), tree)
	if c.Tree() != tree || c.WithAttr("id", "1").Child("urn:y", "y") != tree.Child("urn:y", "y") {
		t.Fatal("the given tree is not used or not shared")
	}
}

// onceErr returns data, then err once, then blocks (like a connection
// whose byte budget ran out and whose peer goes quiet).
type onceErr struct {
	data  []byte
	err   error
	sent  bool
	block chan struct{}
}

func (r *onceErr) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	if !r.sent {
		r.sent = true
		return 0, r.err
	}
	<-r.block
	return 0, io.EOF
}

// TestReaderErrorSurvivesIdle: a read error that ends whitespace between
// stanzas is returned by Next, although the decoder that saw it is
// dropped while the stream is idle.
func TestReaderErrorSurvivesIdle(t *testing.T) {
	errBudget := errors.New("budget")
	src := &onceErr{data: []byte(hdr + "    "), err: errBudget, block: make(chan struct{})}
	defer close(src.block)
	r := NewReader(src, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Next()
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errBudget) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read error was lost: Next waits for input")
	}
}

// TestChildWithoutTree: the children the Reader noted answer Child,
// HasChild and HasChildIn for children that are not there, and ChildID,
// without parsing the tree, in any default namespace the root passes on.
func TestChildWithoutTree(t *testing.T) {
	for _, tc := range []struct{ ns, in string }{
		{NSClient, `<message to='b@x' type='chat'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o&amp;1'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>`},
		{NSClient, `<message xmlns='jabber:client' to='b@x'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o&amp;1'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>`},
		{NSServer, `<message xmlns='jabber:server' to='b@x'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o&amp;1'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>`},
	} {
		h := strings.Replace(hdr, "jabber:client", tc.ns, 1)
		r := NewReader(strings.NewReader(h+tc.in), Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		s, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		s = s.WithAttr("from", "a@x/r")
		if s.Child("urn:xmpp:hints", "no-store") != nil || s.HasChild(NSClient, "subject") || s.HasChildIn("urn:xmpp:chat-markers:0") ||
			!s.HasChild(NSClient, "body") || !s.HasChild("", "active") || !s.HasChildIn("http://jabber.org/protocol/chatstates") {
			t.Fatalf("%s: wrong answers from the noted children %+v", tc.in, s.kids)
		}
		if id := s.ChildID("urn:xmpp:sid:0", "origin-id"); id != "o&1" {
			t.Fatalf("%s: origin-id %q, want o&1", tc.in, id)
		}
		if id := s.ChildID(NSClient, "body"); id != "" {
			t.Fatalf("%s: body's id %q, want none", tc.in, id)
		}
		if id := s.ChildID("urn:xmpp:sid:0", "stanza-id"); id != "" {
			t.Fatalf("%s: absent child's id %q", tc.in, id)
		}
		if s.parsedTree() != nil {
			t.Fatalf("%s: the tree was parsed", tc.in)
		}
		if s.Child(NSClient, "body").Text() != "hi" || s.Child("http://jabber.org/protocol/chatstates", "active") == nil {
			t.Fatalf("%s: Child does not find what is there", tc.in)
		}
		if s.Child("urn:xmpp:hints", "no-store") != nil || !s.HasChild(NSClient, "body") {
			t.Fatalf("%s: wrong answers from the tree", tc.in)
		}
	}
}

// idleSource is an idleReader: each ReadIdle first finds nothing (the
// buffer goes back), then serves the next message into a buffer.
type idleSource struct {
	msgs  []string
	lent  bool // a buffer is held
	idles int
}

func (s *idleSource) Read(p []byte) (int, error) {
	panic("Read while the reader could wait in ReadIdle")
}

func (s *idleSource) ReadIdle(buf interface {
	Take() []byte
	Give()
}) (int, bool, error) {
	s.idles++
	buf.Take()
	buf.Give()
	if len(s.msgs) == 0 {
		return 0, true, io.EOF
	}
	n := copy(buf.Take(), s.msgs[0])
	s.msgs = s.msgs[1:]
	return n, true, nil
}

// TestReaderReadIdle: a source that can wait without a buffer is read
// through ReadIdle between elements, one read a message.
func TestReaderReadIdle(t *testing.T) {
	src := &idleSource{msgs: []string{hdr, "<message to='a@b'><body>1</body></message>", "<presence/>"}}
	r := NewReader(src, Limits{})
	r.src.rbuf, r.src.rpos, r.src.rend = nil, 0, 0
	if err := r.src.idle(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<message to='a@b'><body>1</body></message>", "<presence/>"} {
		st, err := r.Next()
		if err != nil || string(st.Raw) != want {
			t.Fatalf("got %v %v, want %s", st, err, want)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if src.idles != 4 {
		t.Fatalf("%d idle reads, want 4", src.idles)
	}
}

// chunks returns one string a Read, then blocks until more are sent.
type chunks struct {
	ch   chan string
	rest string
}

func (c *chunks) Read(p []byte) (int, error) {
	if c.rest == "" {
		s, ok := <-c.ch
		if !ok {
			return 0, io.EOF
		}
		c.rest = s
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// TestReaderPark: Park gives everything back only when no input is held
// (nothing buffered, whitespace skipped, a read that did not fill the
// buffer), and reading goes on after it.
func TestReaderPark(t *testing.T) {
	src := &chunks{ch: make(chan string, 4)}
	r := NewReader(src, Limits{})
	if r.Park() {
		t.Fatal("parked before the header")
	}
	src.ch <- hdr + "<a/><b/>\n "
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Next(); err != nil || st.Name != "a" {
		t.Fatalf("a: %v %v", st, err)
	}
	if r.Park() {
		t.Fatal("parked with <b/> buffered")
	}
	if st, err := r.Next(); err != nil || st.Name != "b" {
		t.Fatalf("b: %v %v", st, err)
	}
	if !r.Park() {
		t.Fatal("not parked with only whitespace left")
	}
	if r.src.rbuf != nil || r.src.buf != nil || r.dec != nil {
		t.Fatal("a parked reader holds buffers")
	}
	src.ch <- "  " // a keepalive: read by Park, which parks again
	if !r.Park() {
		t.Fatal("not parked after a keepalive")
	}
	// A read that fills the buffer may leave more below (TLS).
	src.ch <- "<c/>" + strings.Repeat(" ", readBufSize-len("<c/>"))
	if r.Park() {
		t.Fatal("parked with input")
	}
	if st, err := r.Next(); err != nil || st.Name != "c" {
		t.Fatalf("c: %v %v", st, err)
	}
	if r.Park() {
		t.Fatal("parked after a full read")
	}
	src.ch <- "<d/>"
	if st, err := r.Next(); err != nil || st.Name != "d" {
		t.Fatalf("d: %v %v", st, err)
	}
	close(src.ch)
	if !r.Park() { // the end of input is news to a read
		t.Fatal("not parked after <d/>")
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

// A self-closing stream header leaves the stream's end in the decoder
// (encoding/xml returns it next without reading): that decoder must stay
// with its stream, which then ends, and never serve another stream from
// the pool, which would read an end its peer never sent.
func TestSelfClosingHeaderKeepsDecoder(t *testing.T) {
	selfClosed := strings.Replace(hdr, "'1.0'>", "'1.0'/>", 1)
	for i := range 50 { // the race detector drops pooled items at random
		a := NewReader(strings.NewReader(selfClosed), Limits{})
		if _, err := a.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		if a.Park() {
			t.Fatal("parked holding the stream's end")
		}
		b := NewReader(strings.NewReader(hdr+"<message/>"), Limits{})
		if _, err := b.ReadHeader(); err != nil {
			t.Fatalf("round %d: another stream's header: %v", i, err)
		}
		if s, err := b.Next(); err != nil || s.Name != "message" {
			t.Fatalf("round %d: another stream read %v, %v", i, s, err)
		}
		if _, err := a.Next(); err != ErrStreamEnd {
			t.Fatalf("round %d: the self-closed stream read %v, not its end", i, err)
		}
	}
}
