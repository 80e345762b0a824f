package wire

import (
	"encoding/xml"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Element is a namespace-resolved XML element tree, built lazily from a
// stanza's raw bytes or by modules that compose new stanzas.
type Element struct {
	Name     xml.Name   // Space is the resolved namespace URI
	Attr     []xml.Attr // Space is a namespace URI ("" for plain attributes); no xmlns declarations
	Children []Node
}

// Node is one child of an Element: either a nested element or text.
type Node struct {
	Elem *Element
	Text string
}

// NewElement returns an element with the given namespace, name and
// attributes given as name, value pairs.
func NewElement(ns, local string, attrs ...string) *Element {
	e := &Element{Name: xml.Name{Space: ns, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.SetAttr(attrs[i], attrs[i+1])
	}
	return e
}

// Attr returns the value of the plain (un-namespaced) attribute name.
func (e *Element) AttrValue(name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// HasAttr reports whether the plain attribute is present.
func (e *Element) HasAttr(name string) bool {
	for _, a := range e.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return true
		}
	}
	return false
}

// Lang returns xml:lang.
func (e *Element) Lang() string {
	for _, a := range e.Attr {
		if a.Name.Local == "lang" && a.Name.Space == NSXML {
			return a.Value
		}
	}
	return ""
}

// SetAttr sets (or, with value "", removes) a plain attribute.
func (e *Element) SetAttr(name, value string) *Element {
	for i, a := range e.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return e
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: name}, Value: value})
	}
	return e
}

// Child returns the first child element with the namespace and local name;
// ns "" matches any namespace.
func (e *Element) Child(ns, local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Elem != nil && c.Elem.Name.Local == local && (ns == "" || c.Elem.Name.Space == ns) {
			return c.Elem
		}
	}
	return nil
}

// ChildrenNamed returns all child elements with the namespace and name.
func (e *Element) ChildrenNamed(ns, local string) []*Element {
	var out []*Element
	for _, c := range e.Children {
		if c.Elem != nil && c.Elem.Name.Local == local && (ns == "" || c.Elem.Name.Space == ns) {
			out = append(out, c.Elem)
		}
	}
	return out
}

// Elements returns the child elements in order.
func (e *Element) Elements() []*Element {
	var out []*Element
	for _, c := range e.Children {
		if c.Elem != nil {
			out = append(out, c.Elem)
		}
	}
	return out
}

// FirstElement returns the first child element, or nil.
func (e *Element) FirstElement() *Element {
	for _, c := range e.Children {
		if c.Elem != nil {
			return c.Elem
		}
	}
	return nil
}

// Text returns the concatenated direct text content.
func (e *Element) Text() string {
	if e == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range e.Children {
		if c.Elem == nil {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// ChildText returns the text of the first matching child, or "".
func (e *Element) ChildText(ns, local string) string { return e.Child(ns, local).Text() }

// Add appends child elements and returns e.
func (e *Element) Add(children ...*Element) *Element {
	for _, c := range children {
		if c != nil {
			e.Children = append(e.Children, Node{Elem: c})
		}
	}
	return e
}

// AddText appends a text node and returns e.
func (e *Element) AddText(s string) *Element {
	if s != "" {
		e.Children = append(e.Children, Node{Text: s})
	}
	return e
}

// RemoveChildren removes child elements matching ns and local name.
func (e *Element) RemoveChildren(ns, local string) {
	out := e.Children[:0]
	for _, c := range e.Children {
		if c.Elem != nil && c.Elem.Name.Local == local && c.Elem.Name.Space == ns {
			continue
		}
		out = append(out, c)
	}
	e.Children = out
}

// Copy returns a deep copy.
func (e *Element) Copy() *Element {
	if e == nil {
		return nil
	}
	c := &Element{Name: e.Name, Attr: append([]xml.Attr(nil), e.Attr...)}
	c.Children = make([]Node, len(e.Children))
	for i, n := range e.Children {
		if n.Elem != nil {
			c.Children[i] = Node{Elem: n.Elem.Copy()}
		} else {
			c.Children[i] = n
		}
	}
	return c
}

// Bytes serializes e with an xmlns declaration on the root.
func (e *Element) Bytes() []byte { return e.AppendXML(nil, "") }

// String is Bytes as a string.
func (e *Element) String() string { return string(e.Bytes()) }

// AppendXML serializes e into buf. parentNS is the default namespace in
// effect where e is written; xmlns is emitted only when e's differs.
func (e *Element) AppendXML(buf []byte, parentNS string) []byte {
	buf = append(buf, '<')
	buf = append(buf, e.Name.Local...)
	if e.Name.Space != parentNS {
		buf = append(buf, " xmlns='"...)
		buf = appendEscapedAttr(buf, e.Name.Space)
		buf = append(buf, '\'')
	}
	prefixes := 0
	for _, a := range e.Attr {
		buf = append(buf, ' ')
		switch a.Name.Space {
		case "":
		case NSXML, "xml":
			buf = append(buf, "xml:"...)
		default:
			// Rare: a namespaced attribute other than xml:*. Declare a
			// local prefix for it.
			prefixes++
			p := "ns" + strconv.Itoa(prefixes)
			buf = append(buf, "xmlns:"+p+"='"...)
			buf = appendEscapedAttr(buf, a.Name.Space)
			buf = append(buf, "' "+p+":"...)
		}
		buf = append(buf, a.Name.Local...)
		buf = append(buf, "='"...)
		buf = appendEscapedAttr(buf, a.Value)
		buf = append(buf, '\'')
	}
	if len(e.Children) == 0 {
		return append(buf, "/>"...)
	}
	buf = append(buf, '>')
	for _, c := range e.Children {
		if c.Elem != nil {
			buf = c.Elem.AppendXML(buf, e.Name.Space)
		} else {
			buf = appendEscapedText(buf, c.Text)
		}
	}
	buf = append(buf, "</"...)
	buf = append(buf, e.Name.Local...)
	return append(buf, '>')
}

// EscapeText escapes s for use as character data.
func EscapeText(s string) string { return string(appendEscapedText(nil, s)) }

// EscapeAttr escapes s for use in a single- or double-quoted attribute.
func EscapeAttr(s string) string { return string(appendEscapedAttr(nil, s)) }

// TruncateText cuts the text s to at most n bytes without splitting a
// UTF-8 character: text cut in the middle of one is no longer valid XML
// character data (a client's parser stops at it), and PostgreSQL refuses
// it in a text column.
func TruncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func appendEscapedText(buf []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		buf = append(buf, s[last:i]...)
		buf = append(buf, esc...)
		last = i + 1
	}
	return append(buf, s[last:]...)
}

func appendEscapedAttr(buf []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\'':
			esc = "&apos;"
		case '"':
			esc = "&quot;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		buf = append(buf, s[last:i]...)
		buf = append(buf, esc...)
		last = i + 1
	}
	return append(buf, s[last:]...)
}

func xmlLang(v string) xml.Attr {
	return xml.Attr{Name: xml.Name{Space: NSXML, Local: "lang"}, Value: v}
}
