package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
)

const passwordFlagHelp = "the password (visible to other local users in the process list; " +
	"without it the password is asked for on a terminal, or read as one line from stdin)"

func newUserCmd(opts *globalOptions) *cobra.Command {
	user := &cobra.Command{
		Use:   "user",
		Short: "Manage user accounts (add, passwd, delete, list, suspend, unsuspend, suspended)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}

	add := &cobra.Command{
		Use:   "add JID",
		Short: "Create an account, e.g. parley user add alice@example.org",
		Args:  exactArgs(1, "one JID such as alice@example.org"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withNewPassword(cmd, opts, args[0], false, func(ctx context.Context, svc *admin.Service, bare, password string) error {
				if _, err := svc.AddUser(ctx, bare, password); err != nil {
					return userError(bare, "creating", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s created\n", bare)
				return nil
			})
		},
	}
	add.Flags().StringP("password", "p", "", passwordFlagHelp)

	passwd := &cobra.Command{
		Use:   "passwd JID",
		Short: "Set the password of an account",
		Args:  exactArgs(1, "one JID such as alice@example.org"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withNewPassword(cmd, opts, args[0], true, func(ctx context.Context, svc *admin.Service, bare, password string) error {
				if _, err := svc.SetPassword(ctx, bare, password); err != nil {
					return userError(bare, "setting the password of", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", bare)
				return nil
			})
		},
	}
	passwd.Flags().StringP("password", "p", "", passwordFlagHelp)

	del := &cobra.Command{
		Use:   "delete JID",
		Short: "Delete an account and everything stored for it (roster, archive, uploaded files, ...)",
		Args:  exactArgs(1, "one JID such as alice@example.org"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, opts, func(ctx context.Context, cfg server.Config, svc *admin.Service) error {
				bare, err := userJID(args[0], cfg.Hosts)
				if err != nil {
					return err
				}
				if _, err := svc.DeleteUser(ctx, bare); err != nil {
					return userError(bare, "deleting", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", bare)
				return nil
			})
		},
	}

	list := &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List accounts, one bare JID a line (all hosts, or one)",
		Args:  maxArgs(1, "one domain"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, opts, func(ctx context.Context, cfg server.Config, svc *admin.Service) error {
				domain := ""
				if len(args) == 1 {
					var err error
					if domain, err = servedDomain(args[0], cfg.Hosts); err != nil {
						return err
					}
				}
				users, err := svc.ListUsers(ctx, domain)
				if err != nil {
					return fmt.Errorf("listing users: %w", err)
				}
				for _, u := range users {
					fmt.Fprintln(cmd.OutOrStdout(), u)
				}
				return nil
			})
		},
	}

	user.AddCommand(add, passwd, del, list)
	user.AddCommand(newSuspendCmds(opts)...)
	return user
}

// withStore loads the configuration, opens the store, runs fn and closes
// the store.
func withStore(cmd *cobra.Command, opts *globalOptions, fn func(context.Context, server.Config, storage.Store) error) error {
	cfg, err := loadConfig(opts.configFile)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	st, err := server.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	err = fn(ctx, cfg, st)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing store: %w", cerr)
	}
	return err
}

// withAdmin opens the store like withStore and runs fn with the admin
// service on it (the functions the ad-hoc commands and the HTTP API call).
func withAdmin(cmd *cobra.Command, opts *globalOptions, fn func(context.Context, server.Config, *admin.Service) error) error {
	return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
		log := slog.New(slog.DiscardHandler)
		return fn(ctx, cfg, server.NewAdmin(cfg, st, cliAccounts{st, cfg, log}, log, server.ConfiguredHTTPSBase(cfg)))
	})
}

// cliAccounts deletes accounts as the server does (server.DeleteAccount:
// every module's OnDeleteAccount hook, so uploaded files go too, then the
// account's rows).
type cliAccounts struct {
	storage.Store
	cfg server.Config
	log *slog.Logger
}

func (a cliAccounts) DeleteAccount(ctx context.Context, bare string) error {
	return server.DeleteAccount(ctx, a.cfg, a.Store, a.log, bare)
}

// userError words an admin service error about bare for the terminal.
func userError(bare, doing string, err error) error {
	switch {
	case errors.Is(err, admin.ErrUserExists):
		return fmt.Errorf("user %s already exists", bare)
	case errors.Is(err, admin.ErrNoSuchUser):
		return fmt.Errorf("no such user %s", bare)
	case errors.Is(err, admin.ErrBadPassword):
		return fmt.Errorf("%s user %s: %w", doing, bare, err)
	}
	return fmt.Errorf("%s user %s: %w", doing, bare, err)
}

// withNewPassword opens the store like withAdmin, normalizes the JID arg,
// checks that the account exists (mustExist) or does not, reads the new
// password and runs fn with it.
func withNewPassword(cmd *cobra.Command, opts *globalOptions, arg string, mustExist bool,
	fn func(ctx context.Context, svc *admin.Service, bare, password string) error) error {
	return withAdmin(cmd, opts, func(ctx context.Context, cfg server.Config, svc *admin.Service) error {
		bare, err := userJID(arg, cfg.Hosts)
		if err != nil {
			return err
		}
		exists, err := svc.AccountExists(ctx, bare)
		if err != nil {
			return err
		}
		if exists && !mustExist {
			return fmt.Errorf("user %s already exists", bare)
		}
		if !exists && mustExist {
			return fmt.Errorf("no such user %s", bare)
		}
		password, err := readPassword(cmd, bare)
		if err != nil {
			return err
		}
		return fn(ctx, svc, bare, password)
	})
}

// userJID normalizes s to a bare JID user@domain on one of hosts.
func userJID(s string, hosts []string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid JID: %v", s, err)
	}
	if j.Localpart() == "" {
		return "", fmt.Errorf("%q is not a user JID: expected user@domain", s)
	}
	if j.Resourcepart() != "" {
		return "", fmt.Errorf("%q has a resource: expected a bare JID user@domain", s)
	}
	if _, err := servedDomain(j.Domainpart(), hosts); err != nil {
		return "", err
	}
	return j.Bare().String(), nil
}

// servedDomain normalizes domain and checks it is one of hosts.
func servedDomain(domain string, hosts []string) (string, error) {
	d, err := jid.Parse(domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return "", fmt.Errorf("%q is not a domain name", domain)
	}
	for _, h := range hosts {
		if hj, err := jid.Parse(h); err == nil && hj.Domainpart() == d.Domainpart() {
			return d.Domainpart(), nil
		}
	}
	return "", fmt.Errorf("domain %s is not served here (hosts: %s)", d.Domainpart(), strings.Join(hosts, ", "))
}
