package main

import (
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/server"
)

func newServeCmd(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the server until SIGINT or SIGTERM",
		Long: `Run the server. It stops gracefully on SIGINT (Ctrl-C) or SIGTERM:
listeners close, every client stream is closed with <system-shutdown/>, and
the store is closed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := resolveConfigPath(opts.configFile)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(file)
			if err != nil {
				return err
			}
			logger, err := newLogger(cfg.Log, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if file == "" {
				logger.Info("no configuration file, using defaults and PARLEY_* environment variables")
			} else {
				logger.Info("configuration loaded", "file", file)
			}
			srv, err := server.New(cfg, logger)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go func() {
				// After the first signal, restore the default handling so
				// a second one ends a shutdown that hangs.
				<-ctx.Done()
				stop()
			}()
			return srv.Run(ctx)
		},
	}
}

// newLogger builds the slog logger log.level and log.format ask for.
func newLogger(c server.LogConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %q is not a level (expected debug, info, warn or error)", c.Level)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("log.format: %q is not a format (expected text or json)", c.Format)
}
