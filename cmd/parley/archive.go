package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// exportPage is how many archived messages are read per query.
const exportPage = 500

// XEP-0227 namespaces.
const (
	nsPIE       = "urn:xmpp:pie:0"
	nsPIEMAM    = "urn:xmpp:pie:0#mam"
	nsMAM       = "urn:xmpp:mam:2"
	nsForward   = "urn:xmpp:forward:0"
	nsDelay     = "urn:xmpp:delay"
	nsRosterIQ  = "jabber:iq:roster"
	formatJSONL = "jsonl"
	format0227  = "xep0227"
)

func newArchiveCmd(opts *globalOptions) *cobra.Command {
	archive := &cobra.Command{
		Use:   "archive",
		Short: "Work with message archives (export, export-partition)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}

	var user, format, output string
	export := &cobra.Command{
		Use:   "export --user JID [--format jsonl|xep0227] [--output FILE]",
		Short: "Export a user's whole message archive, oldest first",
		Long: `Export the whole message archive (XEP-0313) of one account, oldest message
first.

--format jsonl (the default) writes one JSON object a line:
  {"id", "timestamp" (RFC 3339, UTC), "with" (bare JID of the other party),
   "from" (full JID of the sender), "origin_id" ("" when none),
   "stanza" (the archived message stanza as an XML string)}

--format xep0227 writes an XEP-0227 (Portable Import/Export) document:
<server-data xmlns='urn:xmpp:pie:0'><host jid=DOMAIN><user name=LOCALPART>
holding the roster (jabber:iq:roster), the vCard (vcard-temp), the offline
messages and the archive (<archive xmlns='urn:xmpp:pie:0#mam'> of XEP-0313
<result/> elements). Credentials are not exported.

Without --output the export goes to stdout. With --output the file is written
next to FILE under a temporary name and renamed when complete.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if user == "" {
				return usageError{errors.New("archive export: --user is required")}
			}
			if format != formatJSONL && format != format0227 {
				return usageError{fmt.Errorf("archive export: --format must be %s or %s, not %q", formatJSONL, format0227, format)}
			}
			return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
				bare, err := userJID(user, cfg.Hosts)
				if err != nil {
					return err
				}
				exists, err := st.AccountExists(ctx, bare)
				if err != nil {
					return err
				}
				if !exists {
					return fmt.Errorf("no such user %s", bare)
				}
				n, err := writeExport(ctx, cmd.OutOrStdout(), output, func(w io.Writer) (int, error) {
					if format == format0227 {
						return exportXEP0227(ctx, w, st, bare)
					}
					return exportJSONL(ctx, w, st, bare)
				})
				if err != nil {
					return fmt.Errorf("exporting archive of %s: %w", bare, err)
				}
				if output != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "exported %d message(s) of %s to %s\n", n, bare, output)
				}
				return nil
			})
		},
	}
	export.Flags().StringVarP(&user, "user", "u", "", "bare JID of the account, e.g. alice@example.org")
	export.Flags().StringVarP(&format, "format", "f", formatJSONL, "output format: jsonl or xep0227")
	export.Flags().StringVarP(&output, "output", "o", "", "file to write (default: stdout)")

	archive.AddCommand(export, newExportPartitionCmd(opts))
	return archive
}

// writeExport runs fn on stdout, or on a temporary file renamed to output
// when fn succeeds (a failed export leaves no partial file behind).
func writeExport(ctx context.Context, stdout io.Writer, output string, fn func(io.Writer) (int, error)) (int, error) {
	if output == "" {
		bw := bufio.NewWriter(stdout)
		n, err := fn(bw)
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		return n, err
	}
	f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*.tmp")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	bw := bufio.NewWriter(f)
	n, err := fn(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, output)
	}
	if err != nil {
		os.Remove(tmp)
		return n, err
	}
	return n, nil
}

// eachArchived calls fn for every message of owner's archive, oldest
// first, reading it page by page.
func eachArchived(ctx context.Context, st storage.ArchiveReader, owner string, fn func(storage.ArchivedMessage) error) (int, error) {
	n := 0
	after := ""
	for {
		page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{PageAfter: after, Max: exportPage})
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

// exportedMessage is one line of the JSON Lines export.
type exportedMessage struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	With      string `json:"with"`
	From      string `json:"from"`
	OriginID  string `json:"origin_id"`
	Stanza    string `json:"stanza"`
}

func exportJSONL(ctx context.Context, w io.Writer, st storage.Store, owner string) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return eachArchived(ctx, st, owner, func(m storage.ArchivedMessage) error {
		return enc.Encode(exportLine(m))
	})
}

// exportLine is the JSON Lines form of an archived message.
func exportLine(m storage.ArchivedMessage) exportedMessage {
	return exportedMessage{
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

func exportXEP0227(ctx context.Context, w io.Writer, st storage.Store, owner string) (int, error) {
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
		ew.str("<delay xmlns='" + nsDelay + "' stamp='" + m.Timestamp.UTC().Format(time.RFC3339Nano) + "'/>")
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
