package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
)

// Export formats.
const (
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
						return admin.ExportXEP0227(ctx, w, st, bare)
					}
					return admin.ExportJSONL(ctx, w, st, bare)
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
