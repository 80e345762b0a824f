// Command parley runs and administers the Parley XMPP server.
//
//	parley serve [--config FILE]        run the server
//	parley user add|passwd|delete JID   manage accounts
//	parley user list [DOMAIN]           list accounts
//	parley check [--config FILE]        check configuration, certificate, listeners, DNS
//	parley db migrate|status            apply / show database migrations
//	parley db copy --from DIR --to DSN  copy a SQLite database to PostgreSQL
//	parley upload stats|prune           show / prune HTTP upload files
//	parley archive export --user JID    export a user's message archive
//	parley invite create|list|revoke    invitation links (XEP-0401)
//	parley admin token create|list|revoke  HTTP admin API tokens
//	parley version                      print version information
//
// Configuration: --config FILE, else ./parley.yaml, else
// /etc/parley/parley.yaml, else the built-in defaults; every key can be
// overridden by a PARLEY_<KEY_PATH> environment variable (see config.go and
// configs/parley.example.yaml).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line (as opposed to a runtime
// failure): it is followed by a pointer to --help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// execute runs the command line args and returns the process exit code.
// Tests call it in-process.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "parley: %v\n", err)
	var ue usageError
	if (errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command")) && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 1
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	configFile string
}

func newRootCmd() *cobra.Command {
	opts := &globalOptions{}
	root := &cobra.Command{
		Use:   "parley",
		Short: "Parley, a federated XMPP server",
		Long: `Parley is a federated XMPP server.

Configuration is read from --config FILE, else ./parley.yaml, else
/etc/parley/parley.yaml, else the built-in defaults are used. Every key can be
overridden with an environment variable PARLEY_<KEY_PATH>, for example
PARLEY_LISTEN_C2S=":6222" or PARLEY_HOSTS="a.example b.example".
See configs/parley.example.yaml for every key.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// No RunE: "parley" alone prints help.
	}
	root.PersistentFlags().StringVarP(&opts.configFile, "config", "c", "",
		"configuration file (default: ./parley.yaml, else /etc/parley/parley.yaml, else built-in defaults)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.HiddenDefaultCmd = true

	root.AddCommand(
		newServeCmd(opts),
		newUserCmd(opts),
		newCheckCmd(opts),
		newDBCmd(opts),
		newUploadCmd(opts),
		newRoomCmd(opts),
		newArchiveCmd(opts),
		newInviteCmd(opts),
		newAdminCmd(opts),
		newClusterCmd(opts),
		newAbuseCmd(opts),
		newVersionCmd(),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s: expected %s, got %d arguments", cmd.CommandPath(), what, len(args))}
		}
		return nil
	}
}

// maxArgs is cobra.MaximumNArgs with a usage error.
func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError{fmt.Errorf("%s: expected at most %s, got %d arguments", cmd.CommandPath(), what, len(args))}
		}
		return nil
	}
}

// noArgs rejects positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q", cmd.CommandPath(), args[0])}
	}
	return nil
}
