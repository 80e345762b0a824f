package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/abuse"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
)

// newSuspendCmds are `parley user suspend|unsuspend|suspended`.
func newSuspendCmds(opts *globalOptions) []*cobra.Command {
	suspend := &cobra.Command{
		Use:   "suspend JID",
		Short: "Disable login for an account without deleting anything (--reason, --for)",
		Long: "Disable login for an account without deleting anything: its contacts, archive and files stay.\n" +
			"Logging in is refused with account-disabled (and the reason) after a correct password, and a\n" +
			"running server ends the account's sessions within abuse.suspension_check.",
		Args: exactArgs(1, "one JID such as alice@example.org"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reason, _ := cmd.Flags().GetString("reason")
			d, _ := cmd.Flags().GetDuration("for")
			if d < 0 {
				return usageError{fmt.Errorf("--for: expected a positive duration such as 72h, got %s", d)}
			}
			return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
				bare, err := userJID(args[0], cfg.Hosts)
				if err != nil {
					return err
				}
				s := storage.Suspension{Account: bare, Reason: reason, By: "cli", Since: time.Now()}
				if d > 0 {
					s.Until = s.Since.Add(d)
				}
				if err := abuse.Suspend(ctx, st, nil, s); errors.Is(err, abuse.ErrNoSuchAccount) {
					return fmt.Errorf("no such user %s", bare)
				} else if err != nil {
					return err
				}
				until := "until lifted with parley user unsuspend"
				if d > 0 {
					until = "until " + s.Until.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s suspended %s\n", bare, until)
				return nil
			})
		},
	}
	suspend.Flags().String("reason", "", "why, shown to the user when a login is refused")
	suspend.Flags().Duration("for", 0, "how long, e.g. 72h (default: until unsuspended)")

	unsuspend := &cobra.Command{
		Use:   "unsuspend JID",
		Short: "Let a suspended account log in again",
		Args:  exactArgs(1, "one JID such as alice@example.org"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
				bare, err := userJID(args[0], cfg.Hosts)
				if err != nil {
					return err
				}
				if err := abuse.Unsuspend(ctx, st, bare); errors.Is(err, abuse.ErrNotSuspended) {
					return fmt.Errorf("user %s is not suspended", bare)
				} else if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s can log in again\n", bare)
				return nil
			})
		},
	}

	suspended := &cobra.Command{
		Use:   "suspended",
		Short: "List suspended accounts, with reason and end",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
				list, err := st.ListSuspensions(ctx)
				if err != nil {
					return fmt.Errorf("listing suspensions: %w", err)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JID\tSINCE\tUNTIL\tBY\tREASON")
				now := time.Now()
				for _, s := range list {
					until := "-"
					if !s.Until.IsZero() {
						until = s.Until.UTC().Format(time.RFC3339)
						if !s.Active(now) {
							until += " (over)"
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Account, s.Since.UTC().Format(time.RFC3339), until, s.By, s.Reason)
				}
				return tw.Flush()
			})
		},
	}
	return []*cobra.Command{suspend, unsuspend, suspended}
}

// newAbuseCmd is `parley abuse`: the XEP-0377 reports users sent.
func newAbuseCmd(opts *globalOptions) *cobra.Command {
	ab := &cobra.Command{
		Use:   "abuse",
		Short: "Spam reports users sent with block requests (XEP-0377)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}
	top := &cobra.Command{
		Use:   "top",
		Short: "The most reported JIDs, by distinct reporters",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, _ := cmd.Flags().GetInt("limit")
			return withStore(cmd, opts, func(ctx context.Context, _ server.Config, st storage.Store) error {
				counts, err := st.SpamReportCounts(ctx, n)
				if err != nil {
					return fmt.Errorf("counting reports: %w", err)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JID\tREPORTERS\tREPORTS\tLAST")
				for _, c := range counts {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", c.Reported, c.Reporters, c.Reports, c.Last.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	top.Flags().Int("limit", 50, "how many JIDs")
	reports := &cobra.Command{
		Use:   "reports [JID]",
		Short: "The reports, newest first (all, or those about one JID)",
		Args:  maxArgs(1, "one JID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, _ := cmd.Flags().GetInt("limit")
			return withStore(cmd, opts, func(ctx context.Context, _ server.Config, st storage.Store) error {
				about := ""
				if len(args) == 1 {
					about = args[0]
				}
				list, err := st.SpamReports(ctx, about, n)
				if err != nil {
					return fmt.Errorf("listing reports: %w", err)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tREPORTED\tREASON\tBY\tMESSAGES\tTEXT")
				for _, r := range list {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%q\n", r.ID, r.Created.UTC().Format(time.RFC3339), r.Reported, r.Reason,
						r.Reporter, len(r.StanzaIDs), r.Text)
				}
				return tw.Flush()
			})
		},
	}
	reports.Flags().Int("limit", 100, "how many reports")
	dismiss := &cobra.Command{
		Use:   "dismiss JID",
		Short: "Delete the reports about a JID (once dealt with)",
		Args:  exactArgs(1, "one JID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, opts, func(ctx context.Context, _ server.Config, st storage.Store) error {
				n, err := st.DeleteSpamReports(ctx, args[0])
				if err != nil {
					return fmt.Errorf("deleting reports: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d report(s) about %s deleted\n", n, args[0])
				return nil
			})
		},
	}
	ab.AddCommand(top, reports, dismiss)
	return ab
}
