package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/cluster"
	"github.com/parley-xmpp/parley/server"
)

func newClusterCmd(opts *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster this node belongs to (cluster.enabled)",
		Args:  noArgs,
	}
	var listen time.Duration
	status := &cobra.Command{
		Use:   "status",
		Short: "List the nodes of the cluster and their sessions",
		Long: `List the nodes of the cluster: every node heard heart-beating on NATS during
--listen (default: three heartbeats) and every node the session registry names.
SESSIONS counts the registry's entries for the node, REPORTED what the node
says it holds. A node in the registry that does not heart-beat is DEAD (its
sessions are removed by the others after cluster.dead_after).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(opts.configFile)
			if err != nil {
				return err
			}
			if !cfg.Cluster.Enabled {
				return fmt.Errorf("cluster.enabled is false: this is a single node (no cluster to show)")
			}
			if listen <= 0 {
				listen = 3 * cfg.Cluster.Heartbeat
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), listen+30*time.Second)
			defer cancel()
			nodes, err := cluster.Status(ctx, server.ClusterNodeConfig(cfg, nil), listen)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tSTATE\tSESSIONS\tREPORTED\tROOMS\tUP\tVERSION")
			total, alive, rooms := 0, 0, 0
			for _, n := range nodes {
				state, reported, up := "DEAD", "-", "-"
				if n.Alive {
					state, reported, up = "alive", fmt.Sprint(n.Reported), time.Since(n.Started).Round(time.Second).String()
					if n.Draining {
						state = "draining"
					}
					alive++
				}
				total += n.Sessions
				rooms += n.Rooms
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", n.Node, state, n.Sessions, reported, n.Rooms, up, n.Version)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d nodes alive, %d sessions in the registry, %d rooms running\n", alive, total, rooms)
			return nil
		},
	}
	status.Flags().DurationVar(&listen, "listen", 0, "how long to listen for heartbeats (default: three cluster.heartbeat)")
	cmd.AddCommand(status)
	return cmd
}
