package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
)

// Stanza is one top-level element read from a stream: a stanza (message,
// presence, iq) or a nonza (sasl, sm, starttls, ...). It is immutable once
// built, so one *Stanza may be queued to many sessions; WithAttr and
// friends return modified copies.
//
// Raw always holds a complete, self-contained serialization. For stanzas in
// the content namespace (jabber:client / jabber:server) the root carries no
// xmlns, so the bytes are valid in either kind of stream and are written
// out unchanged ("decode once, forward bytes").
type Stanza struct {
	Name string // local name of the root element
	NS   string // namespace of the root element (NSClient for stanzas from any stream)
	Type string
	ID   string
	From string
	To   string
	Lang string
	Raw  []byte

	attrs     []xml.Attr // root attributes, resolved, without xmlns declarations
	bodyStart int        // offset in Raw just after the root start tag
	// rawAttrs, for stanzas whose start tag is the sender's, are its
	// attributes as written: prefixed names and namespace declarations
	// included. Rewriting the start tag (stamping 'from') keeps them, since
	// the payload may use a prefix declared there; nil for stanzas built
	// from a tree, whose children declare their own namespaces.
	rawAttrs []xml.Attr
	// kids names the root's child elements (resolved namespace and local
	// name, in order) when the Reader saw them: whether a child is there
	// is then answered without parsing a tree, which most stanzas never
	// need (a chat message is asked for a dozen children it does not have
	// on its way through the hooks). Valid when kidsKnown; shared by copies.
	kids      []childName
	kidsKnown bool

	once    sync.Once
	tree    *Element
	treeErr error
	// treeDone is set once tree (or treeErr) is final, so that copies
	// made with WithAttr and WithChild can share an already parsed tree
	// instead of parsing their bytes again (a message fanned out to many
	// recipients is parsed once).
	treeDone atomic.Bool
}

// IsStanza reports whether s is a message, presence or iq in the content
// namespace.
func (s *Stanza) IsStanza() bool {
	return s.NS == NSClient && (s.Name == "message" || s.Name == "presence" || s.Name == "iq")
}

// StanzaKinds are the kinds metrics count top-level elements by: the
// three stanzas, and "other" for anything else (a fixed label set).
var StanzaKinds = []string{"message", "presence", "iq", "other"}

// KindIndex is the index of a top-level element name in StanzaKinds.
func KindIndex(name string) int {
	switch name {
	case "message":
		return 0
	case "presence":
		return 1
	case "iq":
		return 2
	}
	return 3
}

// Attr returns the value of a plain root attribute.
func (s *Stanza) Attr(name string) string {
	for _, a := range s.attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// Tree returns the namespace-resolved element tree, parsed on first use.
// The tree is shared: callers must not modify it (use Tree().Copy()).
func (s *Stanza) Tree() *Element {
	s.once.Do(func() {
		if s.tree != nil {
			return
		}
		s.tree, s.treeErr = parseTree(s.Raw, contentDefault(s.NS))
		s.treeDone.Store(true)
	})
	if s.treeErr != nil {
		// Raw was validated when it was read, so this cannot happen for
		// stanzas from a Reader; return an empty root rather than nil.
		return &Element{Name: xml.Name{Space: s.NS, Local: s.Name}}
	}
	return s.tree
}

// childName is a noted child: its name and, when idKnown, its plain 'id'
// attribute ("" when it has none), which XEP-0359 origin-ids are asked
// for on every archived message.
type childName struct {
	ns, local string
	id        string
	idKnown   bool
}

// Child returns the first child element of the root with ns and local
// (ns "" matches any namespace).
func (s *Stanza) Child(ns, local string) *Element {
	if s.parsedTree() == nil && s.kidsKnown && !s.hasKid(ns, local) {
		return nil
	}
	return s.Tree().Child(ns, local)
}

// ChildID returns the plain 'id' attribute of Child(ns, local) ("" when
// there is no such child or it has no id), without building the tree
// when the Reader noted the children.
func (s *Stanza) ChildID(ns, local string) string {
	if s.parsedTree() == nil && s.kidsKnown {
		i := s.kid(ns, local)
		if i < 0 {
			return ""
		}
		if s.kids[i].idKnown {
			return s.kids[i].id
		}
	}
	if c := s.Tree().Child(ns, local); c != nil {
		return c.AttrValue("id")
	}
	return ""
}

// HasChild reports whether the root has a child element with ns and local
// (ns "" matches any namespace), without building the tree when the
// Reader noted the children.
func (s *Stanza) HasChild(ns, local string) bool {
	if s.parsedTree() == nil && s.kidsKnown {
		return s.hasKid(ns, local)
	}
	return s.Tree().Child(ns, local) != nil
}

// HasChildIn reports whether the root has a child element in namespace
// ns, as HasChild does.
func (s *Stanza) HasChildIn(ns string) bool {
	if s.parsedTree() == nil && s.kidsKnown {
		for _, k := range s.kids {
			if k.ns == ns {
				return true
			}
		}
		return false
	}
	for _, c := range s.Tree().Children {
		if c.Elem != nil && c.Elem.Name.Space == ns {
			return true
		}
	}
	return false
}

func (s *Stanza) hasKid(ns, local string) bool { return s.kid(ns, local) >= 0 }

// kid is the index of the first noted child with ns and local, or -1.
func (s *Stanza) kid(ns, local string) int {
	return slices.IndexFunc(s.kids, func(k childName) bool { return k.local == local && (ns == "" || k.ns == ns) })
}

// WithAttr returns a copy of s with the plain root attribute set (or
// removed when value is ""). Only the start tag is rewritten.
func (s *Stanza) WithAttr(name, value string) *Stanza {
	var raw []xml.Attr
	if s.rawAttrs != nil {
		raw = setPlainAttr(s.rawAttrs, name, value)
	}
	return s.rebuild(setPlainAttr(s.attrs, name, value), raw)
}

// setPlainAttr returns a copy of attrs with the plain attribute name set,
// or removed when value is "".
func setPlainAttr(attrs []xml.Attr, name, value string) []xml.Attr {
	out := make([]xml.Attr, 0, len(attrs)+1)
	found := false
	for _, a := range attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			found = true
			if value == "" {
				continue
			}
			a.Value = value
		}
		out = append(out, a)
	}
	if !found && value != "" {
		out = append(out, xml.Attr{Name: xml.Name{Local: name}, Value: value})
	}
	return out
}

// WithFromTo returns a copy with from and to set (either may be "").
func (s *Stanza) WithFromTo(from, to string) *Stanza {
	if s.From == from && s.To == to {
		return s
	}
	c := s.WithAttr("from", from)
	if c.To != to {
		c = c.WithAttr("to", to)
	}
	return c
}

// parsedTree returns s's tree if it has been built already, without
// building it.
func (s *Stanza) parsedTree() *Element {
	if !s.treeDone.Load() || s.treeErr != nil {
		return nil
	}
	return s.tree
}

// shareTree gives n (a copy of s with other root attributes or one more
// child) a tree built from s's parsed one: trees are immutable, so the
// children are shared.
func (n *Stanza) shareTree(t *Element, children []Node) {
	n.tree = &Element{Name: t.Name, Attr: slices.Clone(n.attrs), Children: children}
	n.once.Do(func() {})
	n.treeDone.Store(true)
}

func (s *Stanza) rebuild(attrs, rawAttrs []xml.Attr) *Stanza {
	selfClosing := s.bodyStart >= len(s.Raw)
	n := &Stanza{Name: s.Name, NS: s.NS, attrs: attrs, rawAttrs: rawAttrs, kids: s.kids, kidsKnown: s.kidsKnown}
	var body []byte
	if !selfClosing {
		body = s.Raw[s.bodyStart:]
	}
	raw := n.appendStartTag(make([]byte, 0, n.startTagSize()+len(body)), selfClosing)
	n.bodyStart = len(raw)
	n.Raw = append(raw, body...)
	n.fillHeader()
	if t := s.parsedTree(); t != nil {
		n.shareTree(t, t.Children)
	}
	return n
}

func (s *Stanza) fillHeader() {
	s.Type, s.ID, s.From, s.To, s.Lang = "", "", "", "", ""
	for _, a := range s.attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "type":
			s.Type = a.Value
		case a.Name.Space == "" && a.Name.Local == "id":
			s.ID = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			s.From = a.Value
		case a.Name.Space == "" && a.Name.Local == "to":
			s.To = a.Value
		case a.Name.Space == NSXML && a.Name.Local == "lang":
			s.Lang = a.Value
		}
	}
}

// startTag writes the root start tag: the sender's attributes as written
// when s has them, else from the resolved attributes.
func (s *Stanza) startTag(selfClosing bool) []byte {
	return s.appendStartTag(nil, selfClosing)
}

// startTagSize is about what startTag writes (exact unless values need
// escaping), for sizing a buffer once.
func (s *Stanza) startTagSize() int {
	n := len(s.Name) + 3
	attrs := s.rawAttrs
	if attrs == nil {
		attrs = s.attrs
		n += len(s.NS) + 9
	}
	for _, a := range attrs {
		n += len(a.Name.Space) + len(a.Name.Local) + len(a.Value) + 5
	}
	return n
}

func (s *Stanza) appendStartTag(buf []byte, selfClosing bool) []byte {
	if s.rawAttrs == nil {
		return appendStartTag(buf, s.Name, s.NS, s.attrs, selfClosing)
	}
	buf = append(buf, '<')
	buf = append(buf, s.Name...)
	for _, a := range s.rawAttrs {
		buf = append(buf, ' ')
		if a.Name.Space != "" {
			buf = append(buf, a.Name.Space...)
			buf = append(buf, ':')
		}
		buf = append(buf, a.Name.Local...)
		buf = append(buf, "='"...)
		buf = appendEscapedAttr(buf, a.Value)
		buf = append(buf, '\'')
	}
	if selfClosing {
		return append(buf, "/>"...)
	}
	return append(buf, '>')
}

// appendStartTag writes a root start tag. Content-namespace roots get no
// xmlns so the bytes fit both c2s and s2s streams.
func appendStartTag(buf []byte, name, ns string, attrs []xml.Attr, selfClosing bool) []byte {
	e := Element{Name: xml.Name{Space: ns, Local: name}, Attr: attrs}
	b := e.AppendXML(buf, rootParent(ns)) // no children: ends with "/>"
	if !selfClosing {
		b = append(b[:len(b)-2], '>')
	}
	return b
}

// rootParent is the namespace a root is written against: content roots
// get no xmlns (they take the stream's), others their own, and a root in
// no namespace an explicit empty xmlns (else a stream would give it its
// default).
func rootParent(ns string) string {
	switch ns {
	case NSClient:
		return NSClient
	case "":
		return "\x00"
	}
	return ""
}

// Compose builds a stanza in the content namespace from a root name and
// attributes and the bytes of its content, without parsing them: content
// must be well-formed, self-contained XML (children that declare their own
// namespaces, bytes the server produced or took from a parsed stanza). A
// stanza that wraps another one (a carbon copy, a forwarded message) is
// built this way without reading the wrapped bytes again. tree, when not
// nil, is the parsed equivalent (it may share elements of other trees);
// else the tree is parsed from the bytes when first asked for.
func Compose(name string, attrs []xml.Attr, content []byte, tree *Element) *Stanza {
	selfClosing := len(content) == 0
	raw := appendStartTag(nil, name, NSClient, attrs, selfClosing)
	s := &Stanza{Name: name, NS: NSClient, attrs: attrs, bodyStart: len(raw)}
	if !selfClosing {
		raw = append(raw, content...)
		raw = append(raw, "</"...)
		raw = append(raw, name...)
		raw = append(raw, '>')
	}
	s.Raw = raw
	s.fillHeader()
	if tree != nil {
		s.tree = tree
		s.once.Do(func() {})
		s.treeDone.Store(true)
	}
	return s
}

// ComposeOne is Compose for content that is exactly one child element,
// in namespace ns with name local, and no tree: Child and HasChild answer
// from that name, and the tree is parsed from the bytes only if asked
// for (a carbon copy is written out without anyone asking).
func ComposeOne(name string, attrs []xml.Attr, content []byte, ns, local string) *Stanza {
	s := Compose(name, attrs, content, nil)
	s.kids, s.kidsKnown = []childName{{ns: ns, local: local}}, true
	return s
}

// FromElement builds a stanza from a tree. Stanza roots must use NSClient.
func FromElement(e *Element) *Stanza {
	raw := e.AppendXML(nil, rootParent(e.Name.Space))
	s := &Stanza{Name: e.Name.Local, NS: e.Name.Space, Raw: raw}
	for _, a := range e.Attr {
		if a.Name.Space == "xml" {
			a.Name.Space = NSXML
		}
		s.attrs = append(s.attrs, a)
	}
	s.bodyStart = len(appendStartTag(nil, s.Name, s.NS, s.attrs, len(e.Children) == 0))
	s.tree = e
	s.once.Do(func() {})
	// Copies (WithAttr, WithChild) share the tree unless it names
	// xml:lang with the bare "xml" prefix, which parsing would resolve.
	if !slices.ContainsFunc(e.Attr, func(a xml.Attr) bool { return a.Name.Space == "xml" }) {
		s.treeDone.Store(true)
	}
	s.fillHeader()
	return s
}

// Parse parses one complete element (for example a WebSocket frame or a
// stored stanza) with the default namespace NSClient.
func Parse(b []byte, lim Limits) (*Stanza, error) {
	r := NewReader(bytes.NewReader(b), lim)
	r.fragment(NSClient)
	s, err := r.Next()
	if err != nil {
		if errors.Is(err, ErrStreamEnd) || errors.Is(err, io.EOF) {
			return nil, streamErr(CondNotWellFormed, "incomplete element")
		}
		return nil, err
	}
	// Anything but whitespace after the element is an error.
	if _, err := r.Next(); !errors.Is(err, io.EOF) && !errors.Is(err, ErrStreamEnd) {
		if err == nil {
			return nil, streamErr(CondNotWellFormed, "more than one element")
		}
		return nil, err
	}
	return s, nil
}

// MustParse is Parse for literals in code and tests; it panics on error.
func MustParse(s string) *Stanza {
	st, err := Parse([]byte(s), Limits{})
	if err != nil {
		panic("wire.MustParse: " + err.Error() + ": " + s)
	}
	return st
}

func contentDefault(ns string) string {
	if ns == NSClient {
		return NSClient
	}
	return ""
}

// parseTree builds a resolved tree from self-contained bytes.
func parseTree(raw []byte, defaultNS string) (*Element, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	d.DefaultSpace = defaultNS
	var stack []*Element
	var root *Element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if root == nil {
				return nil, io.ErrUnexpectedEOF
			}
			return root, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e := &Element{Name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				e.Attr = append(e.Attr, a)
			}
			if len(stack) == 0 {
				root = e
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, Node{Elem: e})
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 || len(t) == 0 {
				// An empty CDATA section adds no text: a text node of
				// nothing would serialize differently from none.
				continue
			}
			p := stack[len(stack)-1]
			if n := len(p.Children); n > 0 && p.Children[n-1].Elem == nil {
				p.Children[n-1].Text += string(t)
			} else {
				p.Children = append(p.Children, Node{Text: string(t)})
			}
		}
	}
}

// WithChild returns a copy of s with e appended as the last child. The
// original bytes are kept and e is spliced in before the end tag, so
// payloads (e.g. OMEMO ciphertext) stay byte for byte what the sender sent.
func (s *Stanza) WithChild(e *Element) *Stanza {
	child := e.AppendXML(nil, s.NS)
	var raw []byte
	var bodyStart int
	if s.bodyStart >= len(s.Raw) {
		hdr := s.startTag(false)
		bodyStart = len(hdr)
		raw = append(hdr, child...)
		raw = append(raw, "</"+s.Name+">"...)
	} else {
		end := bytes.LastIndex(s.Raw, []byte("</"))
		if end < s.bodyStart {
			// Cannot happen for a stanza that was parsed; fall back to the tree.
			t := s.Tree().Copy()
			return FromElement(t.Add(e))
		}
		raw = make([]byte, 0, len(s.Raw)+len(child))
		raw = append(raw, s.Raw[:end]...)
		raw = append(raw, child...)
		raw = append(raw, s.Raw[end:]...)
		bodyStart = s.bodyStart
	}
	n := &Stanza{Name: s.Name, NS: s.NS, Raw: raw, attrs: s.attrs, rawAttrs: s.rawAttrs, bodyStart: bodyStart}
	if s.kidsKnown {
		n.kids, n.kidsKnown = append(slices.Clip(s.kids), childName{ns: e.Name.Space, local: e.Name.Local, id: e.AttrValue("id"), idKnown: true}), true
	}
	n.fillHeader()
	if t := s.parsedTree(); t != nil {
		n.shareTree(t, append(slices.Clip(t.Children), Node{Elem: e.Copy()}))
	}
	return n
}
