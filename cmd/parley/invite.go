package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/server"
)

func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}
}

func newInviteCmd(opts *globalOptions) *cobra.Command {
	invite := groupCmd("invite", "Invite people: links that create an account (create, list, revoke)")

	var domain, username, expires string
	var uses int
	var makeAdmin bool
	create := &cobra.Command{
		Use:   "create [--domain D] [--username NAME] [--admin] [--expires 7d] [--uses N]",
		Short: "Create an invitation and print its link",
		Long: `Create an invitation (XEP-0401/0445): a link that lets one person (or N)
create an account on this server, even with registration closed. Print the
xmpp: URI for XMPP apps and the web page that explains what to install.

--username reserves the account name; without it the invited person
chooses. --admin makes the new account an administrator. --expires takes
e.g. 7d, 36h or 30m (default: invites.ttl).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if uses < 1 {
				return usageError{fmt.Errorf("--uses: the number of uses must be at least 1, not %d", uses)}
			}
			ttl, err := admin.ParseTTL(expires)
			if err != nil {
				return usageError{fmt.Errorf("--expires: %w", err)}
			}
			return withAdmin(cmd, opts, func(ctx context.Context, cfg server.Config, svc *admin.Service) error {
				d := domain
				if d == "" {
					d = cfg.Hosts[0]
				} else if d, err = servedDomain(d, cfg.Hosts); err != nil {
					return err
				}
				inv, err := svc.CreateInvite(ctx, admin.InviteRequest{Domain: d, Username: username, Admin: makeAdmin, TTL: ttl, Uses: uses})
				if err != nil {
					return fmt.Errorf("invite create: %w", err)
				}
				out := cmd.OutOrStdout()
				if inv.Landing != "" {
					fmt.Fprintf(out, "%s\n", inv.Landing)
				}
				fmt.Fprintf(out, "%s\n", inv.URI)
				fmt.Fprintf(cmd.ErrOrStderr(), "invitation %s: %d use(s), valid until %s\n", inv.ID, inv.Uses, inv.Expires.Local().Format(time.RFC1123))
				return nil
			})
		},
	}
	create.Flags().StringVar(&domain, "domain", "", "host the account is created on (default: the first of hosts)")
	create.Flags().StringVar(&username, "username", "", "reserve this account name")
	create.Flags().BoolVar(&makeAdmin, "admin", false, "the new account becomes an administrator")
	create.Flags().StringVar(&expires, "expires", "", "validity, e.g. 7d, 36h (default: invites.ttl)")
	create.Flags().IntVar(&uses, "uses", 1, "how many accounts the invitation may create")

	list := &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List valid invitations",
		Args:  maxArgs(1, "one domain"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, opts, func(ctx context.Context, cfg server.Config, svc *admin.Service) error {
				d := ""
				if len(args) == 1 {
					var err error
					if d, err = servedDomain(args[0], cfg.Hosts); err != nil {
						return err
					}
				}
				invs, err := svc.ListInvites(ctx, d)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tDOMAIN\tUSERNAME\tINVITER\tADMIN\tUSES LEFT\tEXPIRES")
				for _, i := range invs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%s\n", i.ID, i.Domain, dash(i.Username), dash(i.Owner), i.Admin, i.UsesLeft,
						i.Expires.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID|TOKEN",
		Short: "Revoke an invitation (by the ID invite list shows, or its token)",
		Args:  exactArgs(1, "one invitation ID or token"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, opts, func(ctx context.Context, _ server.Config, svc *admin.Service) error {
				if err := svc.RevokeInvite(ctx, args[0]); err != nil {
					return fmt.Errorf("invite revoke: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "invitation revoked")
				return nil
			})
		},
	}
	invite.AddCommand(create, list, revoke)
	return invite
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAdminCmd(opts *globalOptions) *cobra.Command {
	adm := groupCmd("admin", "Administration: HTTP admin API tokens, the welcome message")
	token := groupCmd("token", "Bearer tokens of the HTTP admin API (create, list, revoke)")
	var name string
	create := &cobra.Command{
		Use:   "create [--name NAME]",
		Short: "Create a token and print it (it is shown only this once)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, opts, func(ctx context.Context, _ server.Config, svc *admin.Service) error {
				tok, id, err := svc.CreateAPIToken(ctx, name)
				if err != nil {
					return fmt.Errorf("admin token create: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), tok)
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s created; use it as \"Authorization: Bearer TOKEN\" on the admin listener. It is not shown again.\n", id)
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for (shown in list)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (IDs and names, never the tokens)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, opts, func(ctx context.Context, _ server.Config, svc *admin.Service) error {
				toks, err := svc.ListAPITokens(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tCREATED")
				for _, t := range toks {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, dash(t.Name), t.Created.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token",
		Args:  exactArgs(1, "one token ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, opts, func(ctx context.Context, _ server.Config, svc *admin.Service) error {
				if err := svc.RevokeAPIToken(ctx, args[0]); err != nil {
					return fmt.Errorf("admin token revoke: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "token revoked")
				return nil
			})
		},
	}
	token.AddCommand(create, list, revoke)

	var set string
	var clear bool
	welcome := &cobra.Command{
		Use:   "welcome [--set TEXT | --clear]",
		Short: "Show or change the message new accounts find on first login",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clear && set != "" {
				return usageError{fmt.Errorf("admin welcome: --set and --clear exclude each other")}
			}
			return withAdmin(cmd, opts, func(ctx context.Context, _ server.Config, svc *admin.Service) error {
				if clear || set != "" {
					if err := svc.SetWelcomeMessage(ctx, set); err != nil {
						return fmt.Errorf("admin welcome: %w", err)
					}
				}
				text, err := svc.WelcomeMessage(ctx)
				if err != nil {
					return err
				}
				if text == "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "no welcome message")
					return nil
				}
				fmt.Fprintln(cmd.OutOrStdout(), text)
				return nil
			})
		},
	}
	welcome.Flags().StringVar(&set, "set", "", "the new welcome message")
	welcome.Flags().BoolVar(&clear, "clear", false, "send no welcome message")
	adm.AddCommand(token, welcome)
	return adm
}
