package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
)

// newRoomCmd reads the stored (persistent) multi-user chat rooms. It
// only reads: rooms are changed by their owners and the server admins
// from their clients, while the server runs them.
func newRoomCmd(opts *globalOptions) *cobra.Command {
	room := &cobra.Command{
		Use:   "room",
		Short: "Show the persistent chat rooms (list, show)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the persistent rooms of every chat service",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ROOM\tNAME\tPUBLIC\tOWNERS\tMEMBERS\tCREATED")
				for _, h := range cfg.Hosts {
					rooms, err := st.Rooms(ctx, cfg.MUC.Subdomain+"."+h)
					if err != nil {
						return fmt.Errorf("room list: %w", err)
					}
					for _, r := range rooms {
						affs, err := st.RoomAffiliations(ctx, r.JID)
						if err != nil {
							return fmt.Errorf("room list: %s: %w", r.JID, err)
						}
						var owners []string
						members := 0
						for _, a := range affs {
							switch a.Affiliation {
							case storage.AffOwner:
								owners = append(owners, a.JID)
							case storage.AffAdmin, storage.AffMember:
								members++
							}
						}
						fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%s\n", r.JID, r.Name, r.Public, strings.Join(owners, ","),
							members, r.Created.UTC().Format(time.RFC3339))
					}
				}
				return tw.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:   "show ROOM",
		Short: "Show a persistent room: subject, configuration, affiliations",
		Args:  exactArgs(1, "a room JID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := jid.Parse(args[0])
			if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
				return usageError{fmt.Errorf("room show: %q is not a room JID such as lobby@conference.example.org", args[0])}
			}
			return withStore(cmd, opts, func(ctx context.Context, cfg server.Config, st storage.Store) error {
				r, err := st.Room(ctx, j.String())
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("room show: no persistent room %s", j)
				}
				if err != nil {
					return fmt.Errorf("room show: %w", err)
				}
				affs, err := st.RoomAffiliations(ctx, r.JID)
				if err != nil {
					return fmt.Errorf("room show: %w", err)
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "room:          %s\nname:          %s\npublic:        %v\ncreated:       %s\n",
					r.JID, r.Name, r.Public, r.Created.UTC().Format(time.RFC3339))
				if r.Subject != "" {
					fmt.Fprintf(out, "subject:       %s (by %s, %s)\n", r.Subject, r.SubjectBy, r.SubjectAt.UTC().Format(time.RFC3339))
				}
				fmt.Fprintf(out, "configuration: %s\n", shownConfig(r.Config))
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JID\tAFFILIATION\tNICK\tREASON")
				for _, a := range affs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.JID, a.Affiliation, a.Nick, a.Reason)
				}
				return tw.Flush()
			})
		},
	}
	room.AddCommand(list, show)
	return room
}

// shownConfig is a stored room configuration with its password masked.
func shownConfig(raw []byte) string {
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	if p, _ := c["password"].(string); p != "" {
		c["password"] = "(set)"
	}
	b, _ := json.Marshal(c)
	return string(b)
}
