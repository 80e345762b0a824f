package wire

import (
	"bytes"
	"errors"
	"io"
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
		out = append(out, s.Raw)
	}
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
