package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/pg"
)

// partitionLine is one line of a partition export: the `archive export`
// JSON Lines object plus the archive's owner and the other party's
// resource (a partition holds every user's messages).
type partitionLine struct {
	Owner string `json:"owner"`
	admin.ExportedMessage
	WithResource string `json:"with_resource"`
}

func newExportPartitionCmd(opts *globalOptions) *cobra.Command {
	var before, outDir, dsn, schema string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "export-partition --before YYYY-MM [--out DIR] [--dsn DSN [--schema SCHEMA]] [--dry-run]",
		Short: "Move old archive months (PostgreSQL partitions) to gzip-compressed JSON Lines files",
		Long: `Move every monthly archive partition of the months before YYYY-MM (UTC) to
cold storage: for each, oldest first, write DIR/archive_pYYYYMM.jsonl.gz, one
JSON object a line as "parley archive export --format jsonl" writes, with
"owner" (the archive's bare JID) and "with_resource" added; fsync it; check
that it holds as many messages as the partition; then detach and drop the
partition. A partition is dropped only once its file is complete on disk.

Safe to re-run: months already moved have no partition left and are skipped;
a partition that an interrupted run detached but did not drop is exported
again and dropped. Rows that changed between the export and the detach are
exported again from the detached table before it is dropped.

PostgreSQL only: the SQLite backend has no partitions (it deletes expired
messages in batches, see mam.retention). Without --dsn the database is the one
the configuration file names.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if before == "" {
				return usageError{errors.New("archive export-partition: --before YYYY-MM is required")}
			}
			month, err := time.Parse("2006-01", before)
			if err != nil {
				return usageError{fmt.Errorf("archive export-partition: --before %q is not a month like 2024-01", before)}
			}
			now := time.Now().UTC()
			if month.After(time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)) {
				return usageError{fmt.Errorf("archive export-partition: --before %s is after the current month; only past months can be moved", before)}
			}
			if dsn == "" {
				cfg, err := loadConfig(opts.configFile)
				if err != nil {
					return err
				}
				if cfg.Storage.Backend != "postgres" {
					return fmt.Errorf("archive export-partition: the %s backend has no archive partitions "+
						"(it deletes expired messages in batches, see mam.retention); this command works on PostgreSQL only", cfg.Storage.Backend)
				}
				dsn, schema = cfg.Storage.Postgres.DSN, cfg.Storage.Postgres.Schema
			}
			if outDir == "" {
				outDir = "."
			}
			st, err := pg.Open(cmd.Context(), pg.Config{DSN: dsn, Schema: schema, MaxConns: 2, PartitionMonthsAhead: -1})
			if err != nil {
				return err
			}
			defer st.Close()
			return exportPartitions(cmd.Context(), cmd.OutOrStdout(), st, month, outDir, dryRun)
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "move the months before this one (YYYY-MM, UTC)")
	cmd.Flags().StringVar(&outDir, "out", ".", "directory for the archive_pYYYYMM.jsonl.gz files")
	cmd.Flags().StringVar(&dsn, "dsn", "", "PostgreSQL connection string (default: storage.postgres.dsn of the configuration)")
	cmd.Flags().StringVar(&schema, "schema", "", "with --dsn: the PostgreSQL schema (default: the DSN's search_path)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only list the partitions that would be moved")
	return cmd
}

// exportPartitions moves the partitions of the months before month.
func exportPartitions(ctx context.Context, out io.Writer, st *pg.Store, month time.Time, dir string, dryRun bool) error {
	parts, err := st.ArchivePartitionsBefore(ctx, month)
	if err != nil {
		return fmt.Errorf("listing archive partitions: %w", err)
	}
	if n, err := st.DefaultPartitionRowsBefore(ctx, month); err != nil {
		return fmt.Errorf("reading the default partition: %w", err)
	} else if n > 0 {
		fmt.Fprintf(out, "note: %d message(s) before %s are in archive_default (their month had no partition); they are not moved\n",
			n, month.Format("2006-01"))
	}
	if len(parts) == 0 {
		fmt.Fprintf(out, "no archive partition before %s: nothing to move\n", month.Format("2006-01"))
		return nil
	}
	if !dryRun {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	for _, p := range parts {
		file := filepath.Join(dir, p.Name+".jsonl.gz")
		if dryRun {
			state := ""
			if !p.Attached {
				state = " (detached by an interrupted run)"
			}
			fmt.Fprintf(out, "would move %s%s to %s\n", p.Name, state, file)
			continue
		}
		n, err := movePartition(ctx, st, p, file)
		if err != nil {
			return fmt.Errorf("%s: %w (the partition is kept; run the command again)", p.Name, err)
		}
		fmt.Fprintf(out, "moved %s: %d message(s) to %s; partition dropped\n", p.Name, n, file)
	}
	return nil
}

// movePartition exports, detaches, checks and drops one partition, and
// returns how many messages its file holds.
func movePartition(ctx context.Context, st *pg.Store, p pg.ArchivePartition, file string) (int64, error) {
	sum, err := exportPartitionFile(ctx, st, p.Name, file)
	if err != nil {
		return 0, err
	}
	if err := st.DetachArchivePartition(ctx, p.Name); err != nil {
		return 0, fmt.Errorf("detaching: %w", err)
	}
	now, err := st.ArchivePartitionSum(ctx, p.Name)
	if err != nil {
		return 0, err
	}
	if now != sum {
		// Written to between the export and the detach: export again,
		// from a table nobody writes to any more.
		if sum, err = exportPartitionFile(ctx, st, p.Name, file); err != nil {
			return 0, err
		}
		if now != sum {
			return 0, fmt.Errorf("the detached table changed during its export (%d rows, then %d)", now.Rows, sum.Rows)
		}
	}
	if err := st.DropArchivePartition(ctx, p.Name); err != nil {
		return 0, fmt.Errorf("dropping: %w", err)
	}
	return sum.Rows, nil
}

// exportPartitionFile writes the partition to file (through a temporary
// file, renamed once complete and synced), and checks that the file on
// disk holds exactly the rows of the snapshot it read.
func exportPartitionFile(ctx context.Context, st *pg.Store, name, file string) (pg.PartitionSum, error) {
	var sum pg.PartitionSum
	var written int64
	_, err := writeExport(ctx, nil, file, func(w io.Writer) (int, error) {
		zw := gzip.NewWriter(w)
		enc := json.NewEncoder(zw)
		enc.SetEscapeHTML(false)
		var err error
		sum, err = st.ReadArchivePartition(ctx, name, func(m storage.ArchivedMessage) error {
			written++
			return enc.Encode(partitionLine{Owner: m.Owner, ExportedMessage: admin.ExportLine(m), WithResource: m.WithResource})
		})
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		if err == nil && written != sum.Rows {
			err = fmt.Errorf("wrote %d message(s) but the partition holds %d", written, sum.Rows)
		}
		return int(written), err
	})
	if err != nil {
		return sum, fmt.Errorf("writing %s: %w", file, err)
	}
	if err := syncDir(filepath.Dir(file)); err != nil {
		return sum, err
	}
	lines, err := countGzipLines(file)
	if err != nil {
		return sum, fmt.Errorf("reading back %s: %w", file, err)
	}
	if lines != sum.Rows {
		return sum, fmt.Errorf("%s holds %d line(s), the partition %d message(s)", file, lines, sum.Rows)
	}
	return sum, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// countGzipLines counts the lines of a gzip-compressed file, checking
// the whole stream (and its checksum) on the way.
func countGzipLines(file string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return 0, err
	}
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, err := zr.Read(buf)
		for _, b := range buf[:k] {
			if b == '\n' {
				n++
			}
		}
		if errors.Is(err, io.EOF) {
			return n, zr.Close()
		}
		if err != nil {
			return n, err
		}
	}
}
