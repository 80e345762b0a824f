package xep

import "github.com/parley-xmpp/parley/wire"

// Namespaces of ad-hoc commands, service administration and invitations.
const (
	NSCommands   = "http://jabber.org/protocol/commands"
	NSAdmin      = "http://jabber.org/protocol/admin"
	NSInvite     = "urn:xmpp:invite"
	NSPARS       = "urn:xmpp:pars:0"
	NSIBRToken   = "urn:xmpp:ibr-token:0"
	NSInvitation = "urn:xmpp:invite#invitation"
)

// Form builds an XEP-0004 data form of type typ ("form" or "result")
// with an optional FORM_TYPE (hidden field) and title.
func Form(typ, formType, title string) *wire.Element {
	x := wire.NewElement(NSDataForms, "x", "type", typ)
	if title != "" {
		x.Add(wire.NewElement(NSDataForms, "title").AddText(title))
	}
	if formType != "" {
		x.Add(FormField("FORM_TYPE", "hidden", "", formType))
	}
	return x
}

// FormField builds a <field/> with type (may be "") and label (may be "")
// and its values.
func FormField(name, typ, label string, values ...string) *wire.Element {
	f := wire.NewElement(NSDataForms, "field", "var", name)
	if typ != "" {
		f.SetAttr("type", typ)
	}
	if label != "" {
		f.SetAttr("label", label)
	}
	for _, v := range values {
		f.Add(wire.NewElement(NSDataForms, "value").AddText(v))
	}
	return f
}

// Required marks a field as required and returns it.
func Required(f *wire.Element) *wire.Element {
	return f.Add(wire.NewElement(NSDataForms, "required"))
}

// FormValues returns the values of a submitted form by field var, and its
// type ("submit", "cancel", ...). A nil form has no values.
func FormValues(x *wire.Element) (typ string, values map[string][]string) {
	values = map[string][]string{}
	if x == nil {
		return "", values
	}
	for _, f := range x.ChildrenNamed(NSDataForms, "field") {
		name := f.AttrValue("var")
		if name == "" {
			continue
		}
		vs := []string{}
		for _, v := range f.ChildrenNamed(NSDataForms, "value") {
			vs = append(vs, v.Text())
		}
		values[name] = vs
	}
	return x.AttrValue("type"), values
}
