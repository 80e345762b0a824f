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
		Short: "Inspect the cluster this node belongs to and drain nodes (cluster.enabled)",
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
	drain := &cobra.Command{
		Use:   "drain [node]",
		Short: "Move a node's clients to the other nodes, then stop it (rolling upgrade)",
		Long: `Ask a running node (default: cluster.node of the configuration) to drain and
stop, as SIGTERM does: it stops accepting, its clients resume their sessions on
other nodes (or are sent to another node's cluster.advertise address with
<see-other-host/>), its chat rooms move, and after at most cluster.drain it
exits. The command returns once the node has accepted; watch it leave with
parley cluster status.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(opts.configFile)
			if err != nil {
				return err
			}
			if !cfg.Cluster.Enabled {
				return fmt.Errorf("cluster.enabled is false: this is a single node (stop it with SIGTERM)")
			}
			node := cfg.Cluster.Node
			if len(args) == 1 {
				node = args[0]
			}
			if node == "" {
				return fmt.Errorf("name the node to drain (or set cluster.node)")
			}
			if err := cluster.RequestDrain(cmd.Context(), server.ClusterNodeConfig(cfg, nil), node); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s is draining; it stops within cluster.drain\n", node)
			return nil
		},
	}
	cmd.AddCommand(drain)
	return cmd
}
