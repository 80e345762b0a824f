package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/upload"
)

func newUploadCmd(opts *globalOptions) *cobra.Command {
	up := &cobra.Command{
		Use:   "upload",
		Short: "Manage HTTP File Upload files (stats, prune)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}

	stats := &cobra.Command{
		Use:   "stats",
		Short: "Show stored files and bytes, in total and per user",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUploads(cmd, opts, func(ctx context.Context, m *upload.Module) error {
				st, err := m.Stats(ctx)
				if err != nil {
					return fmt.Errorf("upload stats: %w", err)
				}
				out := cmd.OutOrStdout()
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tFILES\tBYTES")
				for _, u := range st.Owners {
					fmt.Fprintf(tw, "%s\t%d\t%d\n", u.Owner, u.Files, u.Bytes)
				}
				fmt.Fprintf(tw, "total\t%d\t%d\n", st.Files, st.Bytes)
				return tw.Flush()
			})
		},
	}

	var olderThan time.Duration
	prune := &cobra.Command{
		Use:   "prune --older-than DURATION",
		Short: "Delete files uploaded more than DURATION ago (e.g. 720h)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if olderThan <= 0 {
				return usageError{fmt.Errorf("upload prune: --older-than must be a positive duration such as 720h")}
			}
			return withUploads(cmd, opts, func(ctx context.Context, m *upload.Module) error {
				files, bytes, err := m.Prune(ctx, olderThan)
				fmt.Fprintf(cmd.OutOrStdout(), "pruned %d file(s), %d bytes, uploaded before %s\n",
					files, bytes, time.Now().Add(-olderThan).UTC().Format(time.RFC3339))
				if err != nil {
					return fmt.Errorf("upload prune: %w", err)
				}
				return nil
			})
		},
	}
	prune.Flags().DurationVar(&olderThan, "older-than", 0, "delete files uploaded longer ago than this (e.g. 720h for 30 days)")

	up.AddCommand(stats, prune)
	return up
}

// withUploads opens the store and builds the upload module on it (not
// registered anywhere: only its file management is used).
func withUploads(cmd *cobra.Command, opts *globalOptions, fn func(context.Context, *upload.Module) error) error {
	return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
		blobs, err := server.OpenUploadBlobs(ctx, cfg)
		if err != nil {
			return err
		}
		m := upload.New(upload.Config{Settings: cfg.Upload, Domains: cfg.Hosts}, st, blobs)
		return fn(ctx, m)
	})
}
