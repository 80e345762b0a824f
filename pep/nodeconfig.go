package pep

import (
	"maps"
	"slices"
	"strconv"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Node configuration fields (XEP-0060 §16.4.4) this service knows.
const (
	fAccessModel   = "pubsub#access_model"
	fMaxItems      = "pubsub#max_items"
	fPersistItems  = "pubsub#persist_items"
	fDeliverNotif  = "pubsub#deliver_notifications"
	fDeliverPay    = "pubsub#deliver_payloads"
	fNotifyRetract = "pubsub#notify_retract"
	fNotifyDelete  = "pubsub#notify_delete"
	fSendLast      = "pubsub#send_last_published_item"
	fPublishModel  = "pubsub#publish_model"
	fRosterGroups  = "pubsub#roster_groups_allowed"
	fTitle         = "pubsub#title"
)

// Access models.
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
)

type fieldSpec struct {
	typ     string   // data form field type
	label   string   //
	options []string // list-single choices
}

var fieldSpecs = map[string]fieldSpec{
	fAccessModel:   {"list-single", "Who may subscribe and retrieve items", []string{AccessOpen, AccessPresence, AccessRoster, AccessWhitelist}},
	fMaxItems:      {"text-single", "Maximum number of items to keep (or max)", nil},
	fPersistItems:  {"boolean", "Persist items", nil},
	fDeliverNotif:  {"boolean", "Deliver event notifications", nil},
	fDeliverPay:    {"boolean", "Deliver payloads with event notifications", nil},
	fNotifyRetract: {"boolean", "Notify subscribers when items are removed", nil},
	fNotifyDelete:  {"boolean", "Notify subscribers when the node is deleted", nil},
	fSendLast:      {"list-single", "When to send the last published item", []string{"never", "on_sub", "on_sub_and_presence"}},
	fPublishModel:  {"list-single", "Who may publish", []string{"publishers"}},
	fRosterGroups:  {"list-multi", "Roster groups allowed to subscribe", nil},
	fTitle:         {"text-single", "A friendly name for the node", nil},
}

// fieldOrder is the order of fields in configuration forms.
var fieldOrder = []string{fTitle, fAccessModel, fRosterGroups, fPublishModel, fMaxItems, fPersistItems,
	fDeliverNotif, fDeliverPay, fNotifyRetract, fNotifyDelete, fSendLast}

// baseDefaults are the PEP defaults (XEP-0163 §3.5, §8).
var baseDefaults = map[string][]string{
	fAccessModel:   {AccessPresence},
	fMaxItems:      {"1"},
	fPersistItems:  {"true"},
	fDeliverNotif:  {"true"},
	fDeliverPay:    {"true"},
	fNotifyRetract: {"true"},
	fNotifyDelete:  {"true"},
	fSendLast:      {"on_sub_and_presence"},
	fPublishModel:  {"publishers"},
	fRosterGroups:  {},
	fTitle:         {""},
}

// nodeConfig is a node's configuration: every known field, normalized.
type nodeConfig map[string][]string

func (c nodeConfig) get(f string) string {
	if v := c[f]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c nodeConfig) bool(f string) bool { return c.get(f) == "true" }

// maxItems is the number of items kept.
func (c nodeConfig) maxItems(limit int) int {
	if !c.bool(fPersistItems) {
		// Transient node: only the last item is kept, to be sent on
		// presence (XEP-0060 §4.3 item caching).
		return 1
	}
	v := c.get(fMaxItems)
	if v == "max" {
		return limit
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > limit {
		return limit
	}
	return n
}

// normalize checks and normalizes one field's values. Unknown fields
// return ok=false with no error: they are ignored.
func normalize(f string, vals []string, maxItems int) (out []string, known bool, err *module.StanzaError) {
	spec, known := fieldSpecs[f]
	if !known {
		return nil, false, nil
	}
	one := ""
	if len(vals) > 0 {
		one = vals[0]
	}
	bad := func() (_ []string, _ bool, err *module.StanzaError) {
		return nil, true, module.Errorf(wire.ErrNotAcceptable, "invalid value %q for %s", one, f)
	}
	switch spec.typ {
	case "list-multi":
		return slices.Clone(vals), true, nil
	case "boolean":
		switch one {
		case "1", "true":
			return []string{"true"}, true, nil
		case "0", "false":
			return []string{"false"}, true, nil
		}
		return bad()
	case "list-single":
		if !slices.Contains(spec.options, one) {
			return bad()
		}
		return []string{one}, true, nil
	}
	if f == fMaxItems && one != "max" {
		n, err := strconv.Atoi(one)
		if err != nil || n <= 0 {
			return bad()
		}
		if n > maxItems {
			return nil, true, module.Errorf(wire.ErrNotAcceptable, "%s is at most %d (or max)", f, maxItems)
		}
		return []string{strconv.Itoa(n)}, true, nil
	}
	return []string{one}, true, nil
}

// defaultsFor returns the configuration a new node starts with.
func (m *Module) defaultsFor(node string) nodeConfig {
	c := nodeConfig(maps.Clone(baseDefaults))
	for f, v := range BuiltinNodeDefaults(node) {
		c[f] = []string{v}
	}
	if m.cfg.NodeDefaults == nil {
		return c
	}
	for f, v := range m.cfg.NodeDefaults(node) {
		vals, known, err := normalize(f, []string{v}, m.cfg.MaxItems)
		if !known || err != nil {
			m.log.Warn("pep: ignoring node default", "node", node, "field", f, "value", v)
			continue
		}
		c[f] = vals
	}
	return c
}

// withDefaults completes a stored configuration with defaults for fields
// added since it was stored.
func (m *Module) withDefaults(node string, stored map[string][]string) nodeConfig {
	c := m.defaultsFor(node)
	maps.Copy(c, stored)
	return c
}

// formValues reads a submitted data form: field name → values, without
// FORM_TYPE. It returns the FORM_TYPE too.
func formValues(x *wire.Element) (formType string, vals map[string][]string) {
	vals = map[string][]string{}
	for _, f := range x.ChildrenNamed(xep.NSDataForms, "field") {
		var vs []string
		for _, v := range f.ChildrenNamed(xep.NSDataForms, "value") {
			vs = append(vs, v.Text())
		}
		name := f.AttrValue("var")
		if name == "FORM_TYPE" {
			if len(vs) > 0 {
				formType = vs[0]
			}
			continue
		}
		if name != "" {
			vals[name] = vs
		}
	}
	return formType, vals
}

// applyForm validates submitted values and applies the known ones to c.
func (m *Module) applyForm(c nodeConfig, vals map[string][]string) error {
	for f, vs := range vals {
		out, known, err := normalize(f, vs, m.cfg.MaxItems)
		if err != nil {
			return err
		}
		if known {
			c[f] = out
		}
	}
	return nil
}

// preconditions checks publish-options against an existing node
// (XEP-0060 §7.1.5): every known field must match the node's value.
func (m *Module) preconditions(c nodeConfig, vals map[string][]string) error {
	for f, vs := range vals {
		want, known, err := normalize(f, vs, m.cfg.MaxItems)
		if !known {
			continue
		}
		match := err == nil
		if match {
			switch f {
			case fMaxItems:
				match = nodeConfig{fMaxItems: want, fPersistItems: {"true"}}.maxItems(m.cfg.MaxItems) ==
					nodeConfig{fMaxItems: c[fMaxItems], fPersistItems: {"true"}}.maxItems(m.cfg.MaxItems)
			case fRosterGroups:
				a, b := slices.Clone(want), slices.Clone(c[f])
				slices.Sort(a)
				slices.Sort(b)
				match = slices.Equal(a, b)
			default:
				match = slices.Equal(want, c[f])
			}
		}
		if !match {
			return &module.StanzaError{Condition: wire.ErrConflict,
				Text: "the node's " + f + " does not match the publish options",
				App:  wire.NewElement(nsErrors, "precondition-not-met")}
		}
	}
	return nil
}

// configForm renders c as a data form of the given type ("form" for
// configure, "result" elsewhere).
func configForm(c nodeConfig, typ string) *wire.Element {
	x := wire.NewElement(xep.NSDataForms, "x", "type", typ)
	x.Add(wire.NewElement(xep.NSDataForms, "field", "var", "FORM_TYPE", "type", "hidden").
		Add(wire.NewElement(xep.NSDataForms, "value").AddText(nsNodeConfig)))
	for _, f := range fieldOrder {
		spec := fieldSpecs[f]
		fe := wire.NewElement(xep.NSDataForms, "field", "var", f, "type", spec.typ, "label", spec.label)
		for _, o := range spec.options {
			fe.Add(wire.NewElement(xep.NSDataForms, "option").Add(wire.NewElement(xep.NSDataForms, "value").AddText(o)))
		}
		for _, v := range c[f] {
			val := wire.NewElement(xep.NSDataForms, "value")
			if spec.typ == "boolean" {
				v = map[bool]string{true: "1", false: "0"}[v == "true"]
			}
			fe.Add(val.AddText(v))
		}
		x.Add(fe)
	}
	return x
}
