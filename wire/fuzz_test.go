package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// chunkReader returns at most n bytes per Read, to vary how input is split.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

func readStream(in []byte, chunk int) (out [][]byte, last error) {
	r := NewReader(&chunkReader{b: in, n: chunk}, Limits{MaxStanzaBytes: 4096, MaxDepth: 16, MaxAttrs: 16})
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	for {
		s, err := r.Next()
		if err != nil {
			return out, err
		}
		if msg := kidsMismatch(s); msg != "" {
			panic(msg) // the same for every chunking: an error would compare equal
		}
		out = append(out, s.Raw)
	}
}

// kidsMismatch compares the children the Reader noted (Stanza.kids, with
// their ids) with those of a tree parsed afresh from Raw; "" when they
// agree or none were noted.
func kidsMismatch(s *Stanza) string {
	if !s.kidsKnown {
		return ""
	}
	tree, err := parseTree(s.Raw, contentDefault(s.NS))
	if err != nil {
		return "kids: Raw does not parse: " + err.Error()
	}
	var want []childName
	for _, c := range tree.Children {
		if c.Elem != nil {
			want = append(want, childName{ns: c.Elem.Name.Space, local: c.Elem.Name.Local, id: c.Elem.AttrValue("id"), idKnown: true})
		}
	}
	if len(want) != len(s.kids) {
		return fmt.Sprintf("kids: noted %+v, the tree has %+v in %s", s.kids, want, s.Raw)
	}
	for i := range want {
		if k := s.kids[i]; k.ns != want[i].ns || k.local != want[i].local || k.idKnown && k.id != want[i].id {
			return fmt.Sprintf("kids: noted %+v, the tree has %+v in %s", s.kids, want, s.Raw)
		}
	}
	return ""
}

// FuzzReader: no panics; the same elements and error for every chunking;
// every element's Raw re-parses to an element with the same tree.
func FuzzReader(f *testing.F) {
	seeds := []string{
		hdr + `<message to='a@b'><body>hi</body></message>`,
		hdr + `<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq><presence/>`,
		hdr + `<!DOCTYPE x [<!ENTITY a "b">]>`,
		hdr + `<message><body>&amp;&lt;&#x41;&foo;</body></message>`,
		hdr + "<message><body>\xff</body></message>",
		hdr + `<jc:message xmlns:jc='jabber:client'><jc:body>x</jc:body></jc:message>`,
		hdr + `<message xmlns='jabber:client' to='x'><![CDATA[a]]>b]]&gt;</message>`,
		hdr + `<a><b><c><d><e><f><g><h><i><j><k><l><m><n><o><p><q><r/></q></p></o></n></m></l></k></j></i></h></g></f></e></d></c></b></a>`,
		hdr + `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features></stream:stream>`,
		hdr + `<message to='a' to='b'/>`,
		`<?xml version='1.0' encoding='utf-16'?>` + hdr,
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		whole, errWhole := readStream(in, len(in)+1)
		parts, errParts := readStream(in, int(chunk%16)+1)
		if len(whole) != len(parts) {
			t.Fatalf("chunking changed the element count: %d vs %d", len(whole), len(parts))
		}
		for i := range whole {
			if !bytes.Equal(whole[i], parts[i]) {
				t.Fatalf("chunking changed element %d", i)
			}
		}
		var se1, se2 *StreamError
		if errors.As(errWhole, &se1) != errors.As(errParts, &se2) || (se1 != nil && se1.Condition != se2.Condition) {
			t.Fatalf("chunking changed the error: %v vs %v", errWhole, errParts)
		}
		for _, raw := range whole {
			s, err := Parse(raw, Limits{MaxStanzaBytes: 8192, MaxDepth: 16, MaxAttrs: 16})
			if err != nil {
				t.Fatalf("Raw does not re-parse: %q: %v", raw, err)
			}
			again := FromElement(s.Tree().Copy())
			s2, err := Parse(again.Raw, Limits{MaxStanzaBytes: 16384, MaxDepth: 16, MaxAttrs: 32})
			if err != nil {
				t.Fatalf("serialized tree does not parse: %q: %v", again.Raw, err)
			}
			if !bytes.Equal(FromElement(s2.Tree().Copy()).Raw, again.Raw) {
				t.Fatalf("round trip changed the tree:\n%s\n%s", again.Raw, s2.Raw)
			}
		}
	})
}

func BenchmarkReadMessage(b *testing.B) {
	msg := []byte(`<message to='bob@example.org' from='alice@example.org/phone' type='chat' id='a1b2c3'><body>Hello, how are you doing today?</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546014'/></message>`)
	in := bytes.Repeat(msg, 1000)
	full := append([]byte(hdr), in...)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		r := NewReader(bytes.NewReader(full), Limits{})
		if _, err := r.ReadHeader(); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 1000 && n < b.N; i++ {
			if _, err := r.Next(); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
}

func BenchmarkStampFrom(b *testing.B) {
	s := MustParse(`<message to='bob@example.org' type='chat' id='a1b2c3'><body>Hello, how are you doing today?</body></message>`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = s.WithAttr("from", "alice@example.org/phone")
	}
}

func BenchmarkTree(b *testing.B) {
	raw := []byte(`<message to='bob@example.org' type='chat' id='a1b2c3'><body>Hello, how are you doing today?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, _ := Parse(raw, Limits{})
		_ = s.Child(NSClient, "body")
	}
}

// infoset renders a tree canonically for comparison: names resolved,
// attributes sorted, adjacent text merged. skip names an attribute to leave
// out ("" for none).
func infoset(e *Element, skip string) string {
	var b strings.Builder
	var walk func(e *Element)
	walk = func(e *Element) {
		b.WriteString("<{" + e.Name.Space + "}" + e.Name.Local)
		var attrs []string
		for _, a := range e.Attr {
			if a.Name.Space == "" && a.Name.Local == skip {
				continue
			}
			attrs = append(attrs, "{"+a.Name.Space+"}"+a.Name.Local+"="+strconv.Quote(a.Value))
		}
		sort.Strings(attrs)
		for _, a := range attrs {
			b.WriteString(" " + a)
		}
		b.WriteString(">")
		text := ""
		for _, c := range e.Children {
			if c.Elem == nil {
				text += c.Text
				continue
			}
			if text != "" {
				b.WriteString(strconv.Quote(text))
				text = ""
			}
			walk(c.Elem)
		}
		if text != "" {
			b.WriteString(strconv.Quote(text))
		}
		b.WriteString("</>")
	}
	walk(e)
	return b.String()
}

// reread reads raw as the one element of a fresh stream, as the recipient
// of a stanza does (c2s: jabber:client; s2s: jabber:server).
func reread(raw []byte, ns string) (*Stanza, error) {
	h := strings.Replace(hdr, "jabber:client", ns, 1)
	r := NewReader(bytes.NewReader(append([]byte(h), raw...)), Limits{MaxStanzaBytes: 1 << 20, MaxDepth: 64, MaxAttrs: 128})
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}

// FuzzStampFrom is finding 2 of issue 16: parse → stamp 'from' → re-parse
// gives the same infoset plus 'from', on c2s and s2s streams alike, for
// every element the reader accepts (namespace declarations and prefixed
// attributes on the start tag included); so does adding a child after.
func FuzzStampFrom(f *testing.F) {
	for _, s := range []string{
		`<message xmlns:x='urn:a' to='b@x'><x:payload/></message>`,
		`<message xmlns:a='urn:a' a:type='t' type='chat' to='b@x'><body>x</body></message>`,
		`<message xmlns='jabber:client' xmlns:a='urn:a' a:type='t' type='chat'><a:x a:y='1'/></message>`,
		`<presence from='spoof@evil' xml:lang='fr'><status>salut</status></presence>`,
		`<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@b' name='&lt;&amp;&quot;&apos;'/></query></iq>`,
		`<message xmlns:x='urn:a' xmlns:y='urn:a' x:k='1' to='b'><y:p x:k='2'/></message>`,
		`<message to='a&#x9;b' type='chat'/>`,
		`<r xmlns='urn:xmpp:sm:3'/>`,
		`<jc:message xmlns:jc='jabber:client' xmlns:p='urn:p' p:z='1'><jc:body>x</jc:body><p:q/></jc:message>`,
		`<message xmlns:stream='urn:other' to='x'><stream:features/></message>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(append([]byte(hdr), in...)), Limits{MaxStanzaBytes: 8192, MaxDepth: 16, MaxAttrs: 16})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < 4; n++ {
			s, err := r.Next()
			if err != nil {
				return
			}
			if msg := kidsMismatch(s); msg != "" {
				t.Fatal(msg)
			}
			stamped := s.WithAttr("from", "alice@example.org/ph'o<ne")
			if msg := kidsMismatch(stamped); msg != "" {
				t.Fatal("stamped: " + msg)
			}
			if msg := kidsMismatch(stamped.WithChild(NewElement("urn:x", "added"))); msg != "" {
				t.Fatal("with a child: " + msg)
			}
			want := infoset(s.Tree(), "from")
			for _, ns := range []string{NSClient, NSServer} {
				got, err := reread(stamped.Raw, ns)
				if err != nil {
					t.Fatalf("stamped stanza does not parse on a %s stream: %v\n in: %s\nout: %s", ns, err, s.Raw, stamped.Raw)
				}
				if g := infoset(got.Tree(), "from"); g != want {
					t.Fatalf("stamping changed the infoset on a %s stream:\n in: %s\nout: %s\nwant %s\n got %s", ns, s.Raw, stamped.Raw, want, g)
				}
				if got.Tree().AttrValue("from") != "alice@example.org/ph'o<ne" || got.From != "alice@example.org/ph'o<ne" {
					t.Fatalf("from not stamped: %s", stamped.Raw)
				}
			}
			// Stamping again, removing, and adding a child keep it too.
			again := stamped.WithAttr("from", "bob@example.org").WithAttr("to", "").WithChild(NewElement("urn:x", "added", "k", "v"))
			got, err := reread(again.Raw, NSClient)
			if err != nil {
				t.Fatalf("restamped stanza does not parse: %v\n in: %s\nout: %s", err, s.Raw, again.Raw)
			}
			tree := s.Tree().Copy()
			tree.SetAttr("to", "")
			tree.Add(NewElement("urn:x", "added", "k", "v"))
			if g, w := infoset(got.Tree(), "from"), infoset(tree, "from"); g != w {
				t.Fatalf("restamping changed the infoset:\n in: %s\nout: %s\nwant %s\n got %s", s.Raw, again.Raw, w, g)
			}
		}
	})
}

// msgReader hands out one message per Read, as a socket does when the
// peer writes one stanza at a time: the Reader goes idle between them.
type msgReader struct {
	msg  []byte
	rest []byte
}

func (m *msgReader) Read(p []byte) (int, error) {
	if len(m.rest) == 0 {
		m.rest = m.msg
	}
	n := copy(p, m.rest)
	m.rest = m.rest[n:]
	return n, nil
}

// BenchmarkReadMessageIdle is BenchmarkReadMessage with the stream going
// idle before every message (the Reader gives its buffers back and waits),
// which is how a server reads a client that sends less than a stanza per
// round trip.
func BenchmarkReadMessageIdle(b *testing.B) {
	msg := []byte(`<message to='bob@example.org' type='chat' id='a1b2c3'><body>Hello, how are you doing today?</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546014'/></message>`)
	r := NewReader(strings.NewReader(hdr), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	r.Reset(&msgReader{msg: msg})
	r.started = true
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r.Park() {
			if err := r.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
