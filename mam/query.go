package mam

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const nsXDataValidate = "http://jabber.org/protocol/xdata-validate"

// fulltextField is the XEP-0431 search field of the query form.
const fulltextField = "{" + NSFulltext + "}fulltext"

// maxFulltext bounds the search text of one query (in bytes).
const maxFulltext = 1024

// ownArchive checks that the requester is the archive's owner (XEP-0313
// §9.1: a user's archive is the user's alone).
func ownArchive(ev *module.Event) (jid.JID, error) {
	owner := ev.To.Bare()
	if ev.From.Localpart() == "" || !ev.From.Bare().Equal(owner) {
		return owner, module.Errorf(wire.ErrForbidden, "only the owner may access an archive")
	}
	return owner, nil
}

// handleQuery answers {urn:xmpp:mam:2}query: get returns the search form
// (§4.1.5), set runs a query (§4).
func (m *Module) handleQuery(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	owner, err := ownArchive(ev)
	if err != nil {
		return nil, err
	}
	if ev.Stanza.Type == "get" {
		return queryForm(m.cfg.Fulltext), nil
	}
	q := ev.Stanza.Tree().FirstElement()
	aq, flip, err := m.parseQuery(q)
	if err != nil {
		return nil, err
	}
	page, err := m.archive.QueryArchive(ctx, owner.String(), aq)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, module.Errorf(wire.ErrItemNotFound, "a message id in the query is not in the archive")
	}
	if errors.Is(err, storage.ErrFulltextUnavailable) {
		return nil, module.Errorf(wire.ErrResourceConstraint, "full-text search is not available yet")
	}
	if err != nil {
		return nil, err
	}
	queries.Inc()

	msgs := page.Messages
	if flip {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	queryID := q.AttrValue("queryid")
	sender := m.reg.Sender()
	for _, msg := range msgs {
		res, err := resultMessage(ev.From.String(), owner.String(), queryID, msg)
		if err != nil {
			// A stored row that no longer parses; skip it rather than
			// fail the whole page.
			m.log.Error("mam: archived message unreadable", "user", owner.String(), "id", msg.ID, "err", err)
			continue
		}
		if err := sender.Route(ctx, res); err != nil {
			return nil, err
		}
	}

	fin := wire.NewElement(NS, "fin")
	if page.Complete {
		fin.SetAttr("complete", "true")
	}
	set := wire.NewElement(NSRSM, "set")
	if len(page.Messages) > 0 {
		set.Add(wire.NewElement(NSRSM, "first", "index", strconv.Itoa(page.FirstIndex)).AddText(page.Messages[0].ID))
		set.Add(wire.NewElement(NSRSM, "last").AddText(page.Messages[len(page.Messages)-1].ID))
	}
	set.Add(wire.NewElement(NSRSM, "count").AddText(strconv.Itoa(page.Count)))
	return fin.Add(set), nil
}

// parseQuery reads the data form, RSM set and flip-page of a query.
func (m *Module) parseQuery(q *wire.Element) (aq storage.ArchiveQuery, flip bool, err error) {
	aq.Max = m.cfg.DefaultPageSize
	if x := q.Child(xep.NSDataForms, "x"); x != nil {
		for _, f := range x.ChildrenNamed(xep.NSDataForms, "field") {
			var values []string
			for _, v := range f.ChildrenNamed(xep.NSDataForms, "value") {
				values = append(values, v.Text())
			}
			single := ""
			if len(values) > 0 {
				single = values[0]
			}
			switch name := f.AttrValue("var"); name {
			case "FORM_TYPE":
				if single != NS {
					return aq, false, module.Errorf(wire.ErrBadRequest, "FORM_TYPE must be %s", NS)
				}
			case "with":
				if single == "" {
					continue
				}
				j, err := jid.Parse(single)
				if err != nil {
					return aq, false, module.Errorf(wire.ErrJIDMalformed, "'with' is not a valid JID")
				}
				aq.With, aq.WithResource = j.Bare().String(), j.Resourcepart()
			case "start", "end":
				if single == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, single)
				if err != nil {
					return aq, false, module.Errorf(wire.ErrBadRequest, "'%s' is not a XEP-0082 date and time", name)
				}
				if name == "start" {
					aq.Start = t
				} else {
					aq.End = t
				}
			case "after-id":
				aq.AfterID = single
			case "before-id":
				aq.BeforeID = single
			case "ids":
				if len(values) > m.cfg.MaxPageSize {
					return aq, false, module.Errorf(wire.ErrPolicyViolation, "at most %d ids per query", m.cfg.MaxPageSize)
				}
				if len(values) > 0 {
					aq.IDs = values
				}
			case fulltextField:
				if !m.cfg.Fulltext {
					return aq, false, module.Errorf(wire.ErrFeatureNotImplemented, "full-text search is not enabled on this server")
				}
				if len(single) > maxFulltext {
					return aq, false, module.Errorf(wire.ErrPolicyViolation, "the search text is longer than %d bytes", maxFulltext)
				}
				aq.Fulltext = strings.TrimSpace(single)
			default:
				return aq, false, module.Errorf(wire.ErrFeatureNotImplemented, "unsupported field %q", name)
			}
		}
	}
	if set := q.Child(NSRSM, "set"); set != nil {
		if mx := set.Child(NSRSM, "max"); mx != nil {
			n, err := strconv.Atoi(mx.Text())
			if err != nil || n < 0 {
				return aq, false, module.Errorf(wire.ErrBadRequest, "RSM <max/> must be a non-negative integer")
			}
			aq.Max = min(n, m.cfg.MaxPageSize)
		}
		if ix := set.Child(NSRSM, "index"); ix != nil {
			n, err := strconv.Atoi(strings.TrimSpace(ix.Text()))
			if err != nil || n < 0 {
				return aq, false, module.Errorf(wire.ErrBadRequest, "RSM <index/> must be a non-negative integer")
			}
			if set.Child(NSRSM, "after") != nil || set.Child(NSRSM, "before") != nil {
				return aq, false, module.Errorf(wire.ErrBadRequest, "RSM <index/> cannot be combined with <after/> or <before/>")
			}
			// XEP-0059 §2.5: the page that starts at this position of the
			// result set (an OFFSET: cost grows with the index).
			aq.Index = n
		}
		if a := set.Child(NSRSM, "after"); a != nil {
			if a.Text() == "" {
				return aq, false, module.Errorf(wire.ErrBadRequest, "RSM <after/> needs an id")
			}
			aq.PageAfter = a.Text()
		}
		if b := set.Child(NSRSM, "before"); b != nil {
			if b.Text() == "" {
				aq.Last = true
			} else {
				aq.PageBefore = b.Text()
			}
		}
	}
	return aq, q.Child(NS, "flip-page") != nil, nil
}

// queryForm is the form of supported fields (§4.1.5), with the XEP-0431
// search field when fulltext is enabled.
func queryForm(fulltext bool) *wire.Element {
	x := wire.NewElement(xep.NSDataForms, "x", "type", "form")
	x.Add(wire.NewElement(xep.NSDataForms, "field", "type", "hidden", "var", "FORM_TYPE").
		Add(wire.NewElement(xep.NSDataForms, "value").AddText(NS)))
	x.Add(wire.NewElement(xep.NSDataForms, "field", "type", "jid-single", "var", "with"))
	for _, v := range []string{"start", "end", "before-id", "after-id"} {
		x.Add(wire.NewElement(xep.NSDataForms, "field", "type", "text-single", "var", v))
	}
	x.Add(wire.NewElement(xep.NSDataForms, "field", "type", "list-multi", "var", "ids").
		Add(wire.NewElement(nsXDataValidate, "validate", "datatype", "xs:string").
			Add(wire.NewElement(nsXDataValidate, "open"))))
	if fulltext {
		x.Add(wire.NewElement(xep.NSDataForms, "field", "type", "text-single", "var", fulltextField, "label", "Search text"))
	}
	return wire.NewElement(NS, "query").Add(x)
}

// stamp formats a XEP-0082 DateTime.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// resultMessage wraps an archived message for a query result (§4.2). The
// archived bytes are embedded unchanged; only the root gets the
// jabber:client declaration it needs inside <forwarded/>.
func resultMessage(to, from, queryID string, msg storage.ArchivedMessage) (*wire.Stanza, error) {
	var b bytes.Buffer
	b.WriteString("<message to='" + wire.EscapeAttr(to) + "' from='" + wire.EscapeAttr(from) + "' id='" + newID() + "'>")
	b.WriteString("<result xmlns='" + NS + "'")
	if queryID != "" {
		b.WriteString(" queryid='" + wire.EscapeAttr(queryID) + "'")
	}
	b.WriteString(" id='" + wire.EscapeAttr(msg.ID) + "'>")
	b.WriteString("<forwarded xmlns='" + NSForward + "'><delay xmlns='" + xep.NSDelay + "' stamp='" + stamp(msg.Timestamp) + "'/>")
	head := b.Len()
	if embedRaw(&b, msg.Raw) {
		b.WriteString("</forwarded></result></message>")
		if st, err := wire.Parse(b.Bytes(), parseLimits(b.Len())); err == nil {
			return st, nil
		}
	}
	// Bytes that cannot be embedded as they are (e.g. a root with its own
	// xmlns): go through the tree.
	orig, err := wire.Parse(msg.Raw, parseLimits(len(msg.Raw)))
	if err != nil {
		return nil, err
	}
	b.Truncate(head)
	b.Write(orig.Tree().AppendXML(nil, NSForward))
	b.WriteString("</forwarded></result></message>")
	return wire.Parse(b.Bytes(), parseLimits(b.Len()))
}

// embedRaw writes a stored stanza whose root relies on the stream's
// default namespace, declaring jabber:client on the root.
func embedRaw(b *bytes.Buffer, raw []byte) bool {
	const root = "<message"
	if !bytes.HasPrefix(raw, []byte(root)) || len(raw) <= len(root) {
		return false
	}
	switch raw[len(root)] {
	case ' ', '\t', '\r', '\n', '>', '/':
	default:
		return false
	}
	b.WriteString(root + " xmlns='" + wire.NSClient + "'")
	b.Write(raw[len(root):])
	return true
}

// parseLimits allow what was accepted once plus the wrapping.
func parseLimits(n int) wire.Limits {
	return wire.Limits{MaxStanzaBytes: n + 1, MaxDepth: wire.DefaultMaxDepth + 4, MaxAttrs: wire.DefaultMaxAttrs + 2}
}

func newID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handleMetadata answers the archive metadata query (§6).
func (m *Module) handleMetadata(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	owner, err := ownArchive(ev)
	if err != nil {
		return nil, err
	}
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	first, last, err := m.archive.ArchiveMetadata(ctx, owner.String())
	if err != nil {
		return nil, err
	}
	md := wire.NewElement(NS, "metadata")
	if first != nil && last != nil {
		md.Add(wire.NewElement(NS, "start", "id", first.ID, "timestamp", stamp(first.Timestamp)))
		md.Add(wire.NewElement(NS, "end", "id", last.ID, "timestamp", stamp(last.Timestamp)))
	}
	return md, nil
}

// handlePrefs gets and sets XEP-0441 preferences.
func (m *Module) handlePrefs(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	owner, err := ownArchive(ev)
	if err != nil {
		return nil, err
	}
	if ev.Stanza.Type == "set" {
		el := ev.Stanza.Tree().FirstElement()
		p := storage.ArchivePrefs{Default: el.AttrValue("default")}
		switch p.Default {
		case storage.ArchiveAlways, storage.ArchiveNever, storage.ArchiveRoster:
		default:
			return nil, module.Errorf(wire.ErrBadRequest, "'default' must be always, never or roster")
		}
		for _, list := range []struct {
			name string
			dst  *[]string
		}{{"always", &p.Always}, {"never", &p.Never}} {
			l := el.Child(NS, list.name)
			if l == nil {
				continue
			}
			for _, j := range l.ChildrenNamed(NS, "jid") {
				parsed, err := jid.Parse(j.Text())
				if err != nil {
					return nil, module.Errorf(wire.ErrJIDMalformed, "%q is not a valid JID", j.Text())
				}
				if s := parsed.String(); !slices.Contains(*list.dst, s) {
					*list.dst = append(*list.dst, s)
				}
			}
		}
		if len(p.Always)+len(p.Never) > 1000 {
			return nil, module.Errorf(wire.ErrPolicyViolation, "at most 1000 JIDs in the preferences")
		}
		if err := m.archive.SetArchivePrefs(ctx, owner.String(), p); err != nil {
			return nil, err
		}
	}
	p, err := m.prefs(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := wire.NewElement(NS, "prefs", "default", p.Default)
	for _, list := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		l := wire.NewElement(NS, list.name)
		for _, j := range list.jids {
			l.Add(wire.NewElement(NS, "jid").AddText(j))
		}
		out.Add(l)
	}
	return out, nil
}
