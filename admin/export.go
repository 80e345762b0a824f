package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// XEP-0227 namespaces.
const (
	nsPIE      = xep.NSPIE
	nsPIEMAM   = xep.NSPIEMAM
	nsMAM      = xep.NSMAM
	nsForward  = xep.NSForward
	nsDelay    = xep.NSDelay
	nsRosterIQ = xep.NSRoster
)

// ExportPage is how many archived messages are read per query.
const ExportPage = 500

// ExportStore is what a user's data export reads.
type ExportStore interface {
	storage.Roster
	storage.VCards
	storage.Offline
	storage.ArchiveReader
}

// eachArchived calls fn for every message of owner's archive, oldest
// first, reading it page by page.
func eachArchived(ctx context.Context, st storage.ArchiveReader, owner string, fn func(storage.ArchivedMessage) error) (int, error) {
	n := 0
	after := ""
	for {
		page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{PageAfter: after, Max: ExportPage})
		if errors.Is(err, storage.ErrNotFound) && after != "" {
			return n, fmt.Errorf("message %s disappeared during the export (archive retention?); run it again: %w", after, err)
		}
		if err != nil {
			return n, err
		}
		for _, m := range page.Messages {
			if err := fn(m); err != nil {
				return n, err
			}
			n++
		}
		if page.Complete || len(page.Messages) == 0 {
			return n, nil
		}
		after = page.Messages[len(page.Messages)-1].ID
	}
}

// ExportedMessage is one line of the JSON Lines export.
type ExportedMessage struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	With      string `json:"with"`
	From      string `json:"from"`
	OriginID  string `json:"origin_id"`
	Stanza    string `json:"stanza"`
}

// ExportJSONL writes owner's archive as JSON Lines, oldest first, and
// returns the number of messages.
func ExportJSONL(ctx context.Context, w io.Writer, st ExportStore, owner string) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return eachArchived(ctx, st, owner, func(m storage.ArchivedMessage) error {
		return enc.Encode(ExportLine(m))
	})
}

// ExportLine is the JSON Lines form of an archived message.
func ExportLine(m storage.ArchivedMessage) ExportedMessage {
	return ExportedMessage{
		ID:        m.ID,
		Timestamp: m.Timestamp.UTC().Format(time.RFC3339Nano),
		With:      m.With,
		From:      m.FromFull,
		OriginID:  m.OriginID,
		Stanza:    string(m.Raw),
	}
}

// stanzaXML re-serializes a stored stanza as a standalone element with its
// namespace declared on the root (jabber:client for stanzas stored without
// one), so it can be embedded under elements of another namespace.
func stanzaXML(raw []byte) ([]byte, error) {
	s, err := wire.Parse(raw, wire.Limits{MaxStanzaBytes: len(raw) + 1,
		MaxDepth: wire.DefaultMaxDepth + 4, MaxAttrs: wire.DefaultMaxAttrs + 2})
	if err != nil {
		return nil, err
	}
	return s.Tree().AppendXML(nil, ""), nil
}

// ExportXEP0227 writes owner's data as an XEP-0227 document: roster,
// vCard, offline messages and archive (never credentials). It returns the
// number of archived messages.
func ExportXEP0227(ctx context.Context, w io.Writer, st ExportStore, owner string) (int, error) {
	local, domain, _ := strings.Cut(owner, "@")
	ew := &errWriter{w: w}
	ew.str("<?xml version='1.0' encoding='UTF-8'?>\n")
	ew.str("<server-data xmlns='" + nsPIE + "'>\n")
	ew.str("  <host jid='" + wire.EscapeAttr(domain) + "'>\n")
	ew.str("    <user name='" + wire.EscapeAttr(local) + "'>\n")

	// Roster.
	items, ver, err := st.RosterItems(ctx, owner)
	if err != nil {
		return 0, fmt.Errorf("roster: %w", err)
	}
	q := wire.NewElement(nsRosterIQ, "query")
	if ver != "" {
		q.SetAttr("ver", ver)
	}
	for _, it := range items {
		item := wire.NewElement(nsRosterIQ, "item", "jid", it.JID)
		if it.Name != "" {
			item.SetAttr("name", it.Name)
		}
		sub := it.Subscription
		if sub == "" {
			sub = storage.SubNone
		}
		item.SetAttr("subscription", sub)
		if it.Ask {
			item.SetAttr("ask", "subscribe")
		}
		if it.Approved {
			item.SetAttr("approved", "true")
		}
		for _, g := range it.Groups {
			item.Add(wire.NewElement(nsRosterIQ, "group").AddText(g))
		}
		q.Add(item)
	}
	ew.str("      ")
	ew.bytes(q.AppendXML(nil, ""))
	ew.str("\n")

	// vCard.
	vc, err := st.VCard(ctx, owner)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("vCard: %w", err)
	default:
		x, err := stanzaXML(vc)
		if err != nil {
			return 0, fmt.Errorf("vCard: stored XML does not parse: %w", err)
		}
		ew.str("      ")
		ew.bytes(x)
		ew.str("\n")
	}

	// Offline messages.
	offline, err := st.OfflineMessages(ctx, owner)
	if err != nil {
		return 0, fmt.Errorf("offline messages: %w", err)
	}
	if len(offline) > 0 {
		ew.str("      <offline-messages>\n")
		for _, m := range offline {
			x, err := stanzaXML(m.Raw)
			if err != nil {
				return 0, fmt.Errorf("offline message %d does not parse: %w", m.ID, err)
			}
			ew.str("        ")
			ew.bytes(x)
			ew.str("\n")
		}
		ew.str("      </offline-messages>\n")
	}

	// Archive (XEP-0227 §"Message Archive"), oldest to newest.
	ew.str("      <archive xmlns='" + nsPIEMAM + "'>\n")
	n, err := eachArchived(ctx, st, owner, func(m storage.ArchivedMessage) error {
		x, err := stanzaXML(m.Raw)
		if err != nil {
			return fmt.Errorf("archived message %s does not parse: %w", m.ID, err)
		}
		ew.str("        <result xmlns='" + nsMAM + "' id='" + wire.EscapeAttr(m.ID) + "'>")
		ew.str("<forwarded xmlns='" + nsForward + "'>")
		ew.str("<delay xmlns='" + nsDelay + "' stamp='" + xep.DateTime(m.Timestamp) + "'/>")
		ew.bytes(x)
		ew.str("</forwarded></result>\n")
		return ew.err
	})
	if err != nil {
		return n, err
	}
	ew.str("      </archive>\n")
	ew.str("    </user>\n  </host>\n</server-data>\n")
	return n, ew.err
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *errWriter) str(s string) { e.bytes([]byte(s)) }
