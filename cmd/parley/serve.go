package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
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
the store is closed. A node of a cluster drains first (for at most
cluster.drain): its clients resume on other nodes or are sent to another
node's cluster.advertise address. A second signal ends at once.`,
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
			level := new(slog.LevelVar)
			logger, err := newLeveledLogger(cfg.Log, cmd.ErrOrStderr(), level)
			if err != nil {
				return err
			}
			if file == "" {
				logger.Info("no configuration file, using defaults and PARLEY_* environment variables")
			} else {
				logger.Info("configuration loaded", "file", file)
			}
			for _, name := range unknownEnv(os.Environ()) {
				logger.Warn("environment variable ignored: not a configuration key", "variable", name)
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
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go reloadOnHUP(ctx, hup, file, srv, level, logger)
			return srv.Run(ctx)
		},
	}
}

// reloadOnHUP reloads the configuration file (and the certificate files)
// on each SIGHUP until ctx ends. A file that does not load is reported
// and changes nothing.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, file string, srv *server.Server, level *slog.LevelVar, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := loadConfig(file)
		if err != nil {
			log.Error("SIGHUP: the configuration was not reloaded", "err", err)
			continue
		}
		if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
			log.Error("SIGHUP: log.level", "err", err)
		}
		if _, err := srv.Reload(cfg); err != nil {
			log.Error("SIGHUP: the configuration was not reloaded", "err", err)
		}
	}
}

// newLogger builds the slog logger log.level and log.format ask for.
func newLogger(c server.LogConfig, w io.Writer) (*slog.Logger, error) {
	return newLeveledLogger(c, w, new(slog.LevelVar))
}

// newLeveledLogger is newLogger with its level in level (changed on
// reload).
func newLeveledLogger(c server.LogConfig, w io.Writer, level *slog.LevelVar) (*slog.Logger, error) {
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
