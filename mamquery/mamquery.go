// Package mamquery is the XEP-0313 query protocol shared by the archives
// that answer it: users' archives (package mam) and room archives
// (package muc). It reads query forms and RSM sets into
// storage.ArchiveQuery, runs them, and writes result messages, the <fin/>
// and the metadata answer; who may query which archive is the caller's
// business.
package mamquery

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

// Namespaces.
const (
	NS         = xep.NSMAM
	NSForward  = xep.NSForward
	NSRSM      = xep.NSRSM
	NSFulltext = xep.NSFulltext // XEP-0431
)

const nsXDataValidate = xep.NSDataValidate

// fulltextField is the XEP-0431 search field of the query form.
const fulltextField = "{" + NSFulltext + "}fulltext"

// maxFulltext bounds the search text of one query (in bytes).
const maxFulltext = 1024

// Options bound and shape queries.
type Options struct {
	// DefaultPageSize is the page size without RSM <max/>; MaxPageSize
	// caps any page and the 'ids' field.
	DefaultPageSize, MaxPageSize int
	// Fulltext offers the XEP-0431 search field.
	Fulltext bool
}

// Parse reads the data form, RSM set and flip-page of a <query/>.
func Parse(q *wire.Element, o Options) (aq storage.ArchiveQuery, flip bool, err error) {
	aq.Max = o.DefaultPageSize
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
				if len(values) > o.MaxPageSize {
					return aq, false, module.Errorf(wire.ErrPolicyViolation, "at most %d ids per query", o.MaxPageSize)
				}
				if len(values) > 0 {
					aq.IDs = values
				}
			case fulltextField:
				if !o.Fulltext {
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
			aq.Max = min(n, o.MaxPageSize)
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

// Form is the answer to a query of type get: the supported fields
// (§4.1.5), with the XEP-0431 search field when fulltext is on.
func Form(fulltext bool) *wire.Element {
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

// Query is one query to run.
type Query struct {
	Owner     string // the archive
	Requester string // full JID the results go to
	Element   *wire.Element
	Options   Options
	// Rewrite, when set, may change an archived message before it is
	// sent (e.g. a room hides real JIDs); it returns the stanza bytes.
	Rewrite func(msg *storage.ArchivedMessage) []byte
	// Send routes one result message.
	Send func(*wire.Stanza) error
	// Unreadable is told about stored rows that do not parse (sent as a
	// stand-in with the stored bytes as text, xep.StandIn).
	Unreadable func(msg storage.ArchivedMessage, err error)
}

// Run runs a query of type set (§4): the result messages go through
// q.Send, and the returned <fin/> is the IQ result.
func Run(ctx context.Context, archive storage.ArchiveReader, q Query) (*wire.Element, error) {
	aq, flip, err := Parse(q.Element, q.Options)
	if err != nil {
		return nil, err
	}
	page, err := archive.QueryArchive(ctx, q.Owner, aq)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, module.Errorf(wire.ErrItemNotFound, "a message id in the query is not in the archive")
	}
	if errors.Is(err, storage.ErrFulltextUnavailable) {
		return nil, module.Errorf(wire.ErrResourceConstraint, "full-text search is not available yet")
	}
	if err != nil {
		return nil, err
	}
	msgs := page.Messages
	if flip {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	queryID := q.Element.AttrValue("queryid")
	for _, msg := range msgs {
		if q.Rewrite != nil {
			msg.Raw = q.Rewrite(&msg)
		}
		res, err := ResultMessage(q.Requester, q.Owner, queryID, msg)
		if err != nil {
			// A stored row that no longer parses: reported, not skipped.
			// The page keeps its place (its id, its time) with a stand-in
			// that carries the stored bytes as text.
			unreadable.Inc()
			if q.Unreadable != nil {
				q.Unreadable(msg, err)
			}
			from := msg.FromFull
			if from == "" {
				from = msg.With
			}
			standIn := msg
			standIn.Raw = wire.FromElement(xep.StandIn(msg.Raw, from, q.Owner)).Raw
			if res, err = ResultMessage(q.Requester, q.Owner, queryID, standIn); err != nil {
				return nil, err
			}
		}
		if err := q.Send(res); err != nil {
			return nil, err
		}
	}
	return Fin(page), nil
}

// Fin is the <fin/> of a page.
func Fin(page storage.ArchivePage) *wire.Element {
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
	return fin.Add(set)
}

// Metadata is the answer to a metadata query (§6).
func Metadata(first, last *storage.ArchivedMessage) *wire.Element {
	md := wire.NewElement(NS, "metadata")
	if first != nil && last != nil {
		md.Add(wire.NewElement(NS, "start", "id", first.ID, "timestamp", Stamp(first.Timestamp)))
		md.Add(wire.NewElement(NS, "end", "id", last.ID, "timestamp", Stamp(last.Timestamp)))
	}
	return md
}

// Stamp formats a XEP-0082 DateTime (xep.DateTime).
func Stamp(t time.Time) string { return xep.DateTime(t) }

// ResultMessage wraps an archived message for a query result (§4.2). The
// archived bytes are embedded unchanged; only the root gets the
// jabber:client declaration it needs inside <forwarded/>.
func ResultMessage(to, from, queryID string, msg storage.ArchivedMessage) (*wire.Stanza, error) {
	var b bytes.Buffer
	b.WriteString("<message to='" + wire.EscapeAttr(to) + "' from='" + wire.EscapeAttr(from) + "' id='" + newID() + "'>")
	b.WriteString("<result xmlns='" + NS + "'")
	if queryID != "" {
		b.WriteString(" queryid='" + wire.EscapeAttr(queryID) + "'")
	}
	b.WriteString(" id='" + wire.EscapeAttr(msg.ID) + "'>")
	b.WriteString("<forwarded xmlns='" + NSForward + "'><delay xmlns='" + xep.NSDelay + "' stamp='" + Stamp(msg.Timestamp) + "'/>")
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
