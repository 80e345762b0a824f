package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/pg"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

func newDBCmd(opts *globalOptions) *cobra.Command {
	db := &cobra.Command{
		Use:   "db",
		Short: "Manage the database (migrate, status, copy)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return cmd.Help()
		},
	}

	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations (PostgreSQL; SQLite migrates itself at open)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(opts.configFile)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch cfg.Storage.Backend {
			case "postgres":
				pgc := cfg.Storage.Postgres
				applied, err := pg.MigrateSchema(cmd.Context(), pgc.DSN, pgc.Schema)
				for _, name := range applied {
					fmt.Fprintf(out, "applied %s\n", name)
				}
				if err != nil {
					return fmt.Errorf("migrating %s: %w", describePG(pgc.DSN, pgc.Schema), err)
				}
				if len(applied) == 0 {
					fmt.Fprintf(out, "%s: schema is up to date, nothing to apply\n", describePG(pgc.DSN, pgc.Schema))
				} else {
					fmt.Fprintf(out, "%s: %d migration(s) applied\n", describePG(pgc.DSN, pgc.Schema), len(applied))
				}
				return nil
			default:
				return sqliteVersion(cmd.Context(), out, cfg.DataDir)
			}
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show applied and pending database migrations",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(opts.configFile)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch cfg.Storage.Backend {
			case "postgres":
				pgc := cfg.Storage.Postgres
				st, err := pg.StatusSchema(cmd.Context(), pgc.DSN, pgc.Schema)
				if err != nil {
					return fmt.Errorf("reading migration status of %s: %w", describePG(pgc.DSN, pgc.Schema), err)
				}
				printStatus(out, describePG(pgc.DSN, pgc.Schema), st)
				return nil
			default:
				return sqliteVersion(cmd.Context(), out, cfg.DataDir)
			}
		},
	}

	var from, to, schema string
	cp := &cobra.Command{
		Use:   "copy --from DATA_DIR --to DSN [--schema SCHEMA]",
		Short: "Copy everything from a SQLite data directory to PostgreSQL (safe to re-run)",
		Long: `Copy every record of the SQLite database in DATA_DIR (parley.db, and the
archived messages still in parley-archive-log.db) to the PostgreSQL database
DSN: accounts with their SCRAM credentials, rosters with their versions,
pending subscriptions, offline messages, vCards, block lists, the message
archive (IDs and timestamps kept) and preferences, push
registrations and queued push notifications, PEP nodes and items, private
XML storage (legacy bookmarks among it), and upload records. The PostgreSQL schema
is migrated first. Records that already exist are left alone, so the copy can
be re-run. Afterwards the row counts of both databases are compared.

Uploaded files themselves stay in DATA_DIR/upload.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return usageError{errors.New("db copy: --from and --to are required")}
			}
			return runCopy(cmd.Context(), cmd.OutOrStdout(), from, to, schema)
		},
	}
	cp.Flags().StringVar(&from, "from", "", "SQLite data directory (holding parley.db and parley-archive-log.db)")
	cp.Flags().StringVar(&to, "to", "", "PostgreSQL connection string")
	cp.Flags().StringVar(&schema, "schema", "", "PostgreSQL schema (default: the DSN's search_path)")

	db.AddCommand(migrate, status, cp)
	return db
}

// describePG names the database without its password.
func describePG(dsn, schema string) string {
	s := "PostgreSQL " + pg.RedactDSN(dsn)
	if schema != "" {
		s += " (schema " + schema + ")"
	}
	return s
}

func printStatus(out io.Writer, target string, st []pg.MigrationStatus) {
	fmt.Fprintf(out, "%s\n", target)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATUS")
	pending, unknown := 0, 0
	for _, m := range st {
		state := "pending"
		switch {
		case m.Applied && !m.Known:
			state = "applied " + m.AppliedAt.Format("2006-01-02 15:04:05Z") + " (unknown to this binary)"
			unknown++
		case m.Applied:
			state = "applied " + m.AppliedAt.Format("2006-01-02 15:04:05Z")
		default:
			pending++
		}
		fmt.Fprintf(tw, "%04d\t%s\t%s\n", m.Version, m.Name, state)
	}
	tw.Flush()
	switch {
	case unknown > 0:
		fmt.Fprintf(out, "%d migration(s) unknown to this binary: the database was written by a newer Parley\n", unknown)
	case pending > 0:
		fmt.Fprintf(out, "%d migration(s) pending: run parley db migrate\n", pending)
	default:
		fmt.Fprintln(out, "schema is up to date")
	}
}

func sqliteVersion(ctx context.Context, out io.Writer, dir string) error {
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		return fmt.Errorf("storage (sqlite in %s): %w", dir, err)
	}
	defer st.Close()
	applied, known, err := st.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("storage (sqlite in %s): %w", dir, err)
	}
	fmt.Fprintf(out, "SQLite database %s/%s: migrations are applied automatically when it is opened\n", dir, sqlite.FileName)
	fmt.Fprintf(out, "schema version %d (this binary knows %d)\n", applied, known)
	return nil
}

// copySteps copy every table of the schema that holds data of its own,
// in this order; each names the tables it fills. A table that a
// migration adds must appear here or in derivedTables: the copy refuses
// to run on a database with a table in neither, and
// TestCopyCoversEveryTable fails.
var copySteps = []struct {
	what   string
	tables []string
	fn     func(*copier) error
}{
	{"accounts", []string{"accounts", "credentials"}, (*copier).accounts},
	{"rosters", []string{"roster_items", "roster_versions", "pending_in"}, (*copier).rosters},
	{"offline messages", []string{"offline"}, (*copier).offline},
	{"vCards", []string{"vcards"}, (*copier).vcards},
	{"block lists", []string{"blocklist"}, (*copier).blocklists},
	{"archive", []string{"archive"}, (*copier).archive},
	{"archive preferences", []string{"archive_prefs"}, (*copier).archivePrefs},
	{"push registrations", []string{"push_registrations"}, (*copier).pushes},
	{"queued push notifications", []string{"push_jobs"}, (*copier).pushJobs},
	{"PEP", []string{"pep_nodes", "pep_items"}, (*copier).pep},
	{"private XML", []string{"private_xml"}, (*copier).privateXML},
	{"uploads", []string{"uploads"}, (*copier).uploads},
	{"invitations", []string{"invites"}, (*copier).invites},
	{"roles", []string{"account_roles"}, (*copier).roles},
	{"settings", []string{"settings"}, (*copier).settings},
	{"admin API tokens", []string{"api_tokens"}, (*copier).apiTokens},
	{"rooms", []string{"muc_rooms", "muc_affiliations"}, (*copier).rooms},
	{"FAST tokens", []string{"fast_tokens"}, (*copier).fastTokens},
	{"last activity", []string{"last_activity"}, (*copier).lastActivity},
	{"suspensions", []string{"account_suspensions"}, (*copier).suspensions},
	{"spam reports", []string{"spam_reports"}, (*copier).spamReports},
	{"account settings", []string{"account_settings"}, (*copier).accountSettings},
}

// derivedTables are the tables of either backend that db copy does not
// copy, and why: each backend builds them from the copied rows, or they
// describe the database rather than the data.
var derivedTables = map[string]string{
	"schema_migrations": "each database records its own migrations",
	"archive_fts":       "SQLite full-text index, built from the archive by triggers",
	"archive_fts_docs":  "SQLite full-text index, built from the archive by triggers",
	"archive_fts_state": "full-text index state of this database, set when the server opens it (mam.fulltext)",
	"archive_counts":    "PostgreSQL per-conversation counters, kept by triggers on archive",
	"account_usage":     "bytes stored per account (quotas), kept by triggers on offline, private_xml, pep_items and archive",
}

// copiedTables lists the tables of copySteps, in copy order.
func copiedTables() []string {
	var ts []string
	for _, s := range copySteps {
		ts = append(ts, s.tables...)
	}
	return ts
}

// unknownTables returns the tables that are neither copied nor derived.
func unknownTables(tables []string) []string {
	copied := copiedTables()
	var out []string
	for _, t := range tables {
		if _, derived := derivedTables[t]; !derived && !slices.Contains(copied, t) {
			out = append(out, t)
		}
	}
	return out
}

// archivePage is how many archived messages are copied per transaction.
const archivePage = 500

type copier struct {
	ctx    context.Context
	src    *sqlite.Store
	dst    *pg.Store
	copied map[string]int
	notes  []string
}

func runCopy(ctx context.Context, out io.Writer, from, to, schema string) error {
	src, err := sqlite.Open(ctx, from)
	if err != nil {
		return fmt.Errorf("source (sqlite in %s): %w", from, err)
	}
	defer src.Close()
	dst, err := pg.Open(ctx, pg.Config{DSN: to, Schema: schema, Migrate: true})
	if err != nil {
		return fmt.Errorf("target (%s): %w", describePG(to, schema), err)
	}
	defer dst.Close()
	for _, db := range []struct {
		name   string
		tables func(context.Context) ([]string, error)
	}{{"source (sqlite in " + from + ")", src.Tables}, {"target (" + describePG(to, schema) + ")", dst.Tables}} {
		tables, err := db.tables(ctx)
		if err != nil {
			return fmt.Errorf("%s: listing tables: %w", db.name, err)
		}
		if u := unknownTables(tables); len(u) > 0 {
			return fmt.Errorf("%s has tables this version of parley does not know how to copy: %v (copy with the parley version that wrote them)", db.name, u)
		}
	}

	c := &copier{ctx: ctx, src: src, dst: dst, copied: map[string]int{}}
	for _, s := range copySteps {
		if err := s.fn(c); err != nil {
			return fmt.Errorf("copying %s: %w", s.what, err)
		}
	}
	fmt.Fprintf(out, "copied %s/%s to %s\n", from, sqlite.FileName, describePG(to, schema))
	for _, n := range c.notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	return verifyCopy(ctx, out, src, dst, c.copied)
}

func verifyCopy(ctx context.Context, out io.Writer, src *sqlite.Store, dst *pg.Store, copied map[string]int) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TABLE\tSQLITE\tPOSTGRES\tNEW\t")
	var missing []string
	for _, t := range copiedTables() {
		ns, err := src.ExportCount(ctx, t)
		if err != nil {
			return fmt.Errorf("counting %s in sqlite: %w", t, err)
		}
		nd, err := dst.Count(ctx, t)
		if err != nil {
			return fmt.Errorf("counting %s in postgres: %w", t, err)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", t, ns, nd, copied[t])
		if nd < ns {
			missing = append(missing, fmt.Sprintf("%s (%d of %d)", t, nd, ns))
		}
	}
	tw.Flush()
	if len(missing) > 0 {
		return fmt.Errorf("verification failed: PostgreSQL has fewer rows than SQLite in %v", missing)
	}
	fmt.Fprintln(out, "verified: PostgreSQL has every row of SQLite")
	return nil
}

func (c *copier) accounts() error {
	users, err := c.src.ListAccounts(c.ctx, "")
	if err != nil {
		return err
	}
	for _, u := range users {
		creds, err := c.src.Credentials(c.ctx, u)
		if err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
		err = c.dst.CreateAccount(c.ctx, u, creds)
		switch {
		case err == nil:
			c.copied["accounts"]++
			c.copied["credentials"] += len(creds)
		case errors.Is(err, storage.ErrExists):
			have, err := c.dst.Credentials(c.ctx, u)
			if err != nil {
				return fmt.Errorf("%s: %w", u, err)
			}
			if !sameCreds(have, creds) {
				c.notes = append(c.notes, fmt.Sprintf("account %s exists in PostgreSQL with other credentials; kept them", u))
			}
		default:
			return fmt.Errorf("%s: %w", u, err)
		}
	}
	return nil
}

func sameCreds(a, b []storage.SCRAMCredential) bool {
	return slices.EqualFunc(a, b, func(x, y storage.SCRAMCredential) bool {
		return x.Hash == y.Hash && x.Iterations == y.Iterations && string(x.Salt) == string(y.Salt) &&
			string(x.StoredKey) == string(y.StoredKey) && string(x.ServerKey) == string(y.ServerKey)
	})
}

// eachOwner calls fn for each owner with records of kind in the source.
func (c *copier) eachOwner(kind string, fn func(owner string) error) error {
	owners, err := c.src.ExportOwners(c.ctx, kind)
	if err != nil {
		return err
	}
	for _, o := range owners {
		if err := fn(o); err != nil {
			return fmt.Errorf("%s: %w", o, err)
		}
	}
	return nil
}

// addMissing adds each record of src that have lacks (same compares them
// as the target's key does), counting the additions under table.
func addMissing[T any](c *copier, table string, src, have []T, same func(a, b T) bool, add func(T) error) error {
	for _, r := range src {
		if slices.ContainsFunc(have, func(h T) bool { return same(h, r) }) {
			continue
		}
		if err := add(r); err != nil {
			return err
		}
		c.copied[table]++
	}
	return nil
}

// setIfAbsent calls set when get finds nothing in the target
// (storage.ErrNotFound), counting it under table; a record the target has
// is kept (set there since the move began, it is the newer).
func (c *copier) setIfAbsent(table string, get func() error, set func() error) error {
	if err := get(); err == nil {
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := set(); err != nil {
		return err
	}
	c.copied[table]++
	return nil
}

// created counts a record created in the target under table; one that
// exists there already (storage.ErrExists) is kept as it is.
func (c *copier) created(table string, err error) error {
	switch {
	case err == nil:
		c.copied[table]++
	case !errors.Is(err, storage.ErrExists):
		return err
	}
	return nil
}

func (c *copier) rosters() error {
	return c.eachOwner("roster", func(o string) error {
		items, ver, err := c.src.RosterItems(c.ctx, o)
		if err != nil {
			return err
		}
		haveItems, haveVer, err := c.dst.RosterItems(c.ctx, o)
		if err != nil {
			return err
		}
		if err := c.dst.ImportRoster(c.ctx, o, items, ver); err != nil {
			return err
		}
		for _, it := range items {
			if !slices.ContainsFunc(haveItems, func(h storage.RosterItem) bool { return h.JID == it.JID }) {
				c.copied["roster_items"]++
			}
		}
		if haveVer == "0" && ver != "0" {
			c.copied["roster_versions"]++
		}
		pending, err := c.src.PendingIn(c.ctx, o)
		if err != nil {
			return err
		}
		have, err := c.dst.PendingIn(c.ctx, o)
		if err != nil {
			return err
		}
		return addMissing(c, "pending_in", pending, have,
			func(a, b storage.PendingSubscription) bool { return a.From == b.From },
			func(p storage.PendingSubscription) error { return c.dst.AddPendingIn(c.ctx, o, p) })
	})
}

func (c *copier) offline() error {
	return c.eachOwner("offline", func(o string) error {
		msgs, err := c.src.OfflineMessages(c.ctx, o)
		if err != nil {
			return err
		}
		n, err := c.dst.ImportOffline(c.ctx, o, msgs)
		c.copied["offline"] += n
		return err
	})
}

func (c *copier) vcards() error {
	return c.eachOwner("vcards", func(o string) error {
		raw, err := c.src.VCard(c.ctx, o)
		if err != nil {
			return err
		}
		return c.setIfAbsent("vcards", func() error { _, err := c.dst.VCard(c.ctx, o); return err },
			func() error { return c.dst.SetVCard(c.ctx, o, raw) })
	})
}

func (c *copier) blocklists() error {
	return c.eachOwner("blocklist", func(o string) error {
		jids, err := c.src.BlockList(c.ctx, o)
		if err != nil {
			return err
		}
		have, err := c.dst.BlockList(c.ctx, o)
		if err != nil {
			return err
		}
		var add []string
		for _, j := range jids {
			if !slices.Contains(have, j) {
				add = append(add, j)
			}
		}
		c.copied["blocklist"] += len(add)
		return c.dst.Block(c.ctx, o, add)
	})
}

func (c *copier) archive() error {
	return c.eachOwner("archive", func(o string) error {
		after := ""
		for {
			msgs, err := c.src.ExportArchive(c.ctx, o, after, archivePage)
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return nil
			}
			n, err := c.dst.ImportArchive(c.ctx, msgs)
			if err != nil {
				return err
			}
			c.copied["archive"] += n
			after = msgs[len(msgs)-1].ID
		}
	})
}

func (c *copier) archivePrefs() error {
	return c.eachOwner("archive_prefs", func(o string) error {
		p, err := c.src.ArchivePrefs(c.ctx, o)
		if err != nil {
			return err
		}
		return c.setIfAbsent("archive_prefs", func() error { _, err := c.dst.ArchivePrefs(c.ctx, o); return err },
			func() error { return c.dst.SetArchivePrefs(c.ctx, o, p) })
	})
}

func (c *copier) pushes() error {
	return c.eachOwner("push", func(o string) error {
		regs, err := c.src.Pushes(c.ctx, o)
		if err != nil {
			return err
		}
		have, err := c.dst.Pushes(c.ctx, o)
		if err != nil {
			return err
		}
		return addMissing(c, "push_registrations", regs, have,
			func(a, b storage.PushRegistration) bool { return a.JID == b.JID && a.Node == b.Node },
			func(r storage.PushRegistration) error { return c.dst.AddPush(c.ctx, o, r) })
	})
}

func (c *copier) pep() error {
	return c.eachOwner("pep", func(o string) error {
		nodes, err := c.src.PEPNodes(c.ctx, o)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			items, err := c.src.PEPItems(c.ctx, o, n.Name, nil, 0)
			if err != nil {
				return err
			}
			if _, err := c.dst.PEPNode(c.ctx, o, n.Name); errors.Is(err, storage.ErrNotFound) {
				c.copied["pep_nodes"]++
			} else if err != nil {
				return err
			}
			k, err := c.dst.ImportPEPNode(c.ctx, o, n, items)
			if err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			c.copied["pep_items"] += k
		}
		return nil
	})
}

func (c *copier) uploads() error {
	return c.eachOwner("uploads", func(o string) error {
		ups, err := c.src.OwnerUploads(c.ctx, o)
		if err != nil {
			return err
		}
		for _, u := range ups {
			ok, err := c.dst.ImportUpload(c.ctx, u)
			if err != nil {
				return err
			}
			if ok {
				c.copied["uploads"]++
			}
		}
		return nil
	})
}

// invites copies invitations; one already in PostgreSQL is kept as it is
// (its uses may have been taken there).
func (c *copier) invites() error {
	invs, err := c.src.ListInvites(c.ctx, "")
	if err != nil {
		return err
	}
	for _, inv := range invs {
		if err := c.created("invites", c.dst.CreateInvite(c.ctx, inv)); err != nil {
			return fmt.Errorf("invitation %s: %w", inv.ID, err)
		}
	}
	return nil
}

// pushJobs copies the queue of notifications still to be delivered, with
// their due times and attempt counts; a job the target has already (same
// owner, service, node, creation time and payload) is not copied again.
func (c *copier) pushJobs() error {
	all := func(st storage.PushJobs) ([]storage.PushJob, error) {
		return st.DuePushJobs(c.ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt32)
	}
	jobs, err := all(c.src)
	if err != nil {
		return err
	}
	have, err := all(c.dst)
	if err != nil {
		return err
	}
	return addMissing(c, "push_jobs", jobs, have, func(a, b storage.PushJob) bool {
		return a.Owner == b.Owner && a.JID == b.JID && a.Node == b.Node && a.Created.Equal(b.Created) &&
			string(a.Payload) == string(b.Payload)
	}, func(j storage.PushJob) error {
		if _, err := c.dst.EnqueuePushJob(c.ctx, j); err != nil {
			return fmt.Errorf("%s: %w", j.Owner, err)
		}
		return nil
	})
}

func (c *copier) roles() error {
	for _, role := range storage.KnownRoles {
		members, err := c.src.RoleMembers(c.ctx, role)
		if err != nil {
			return err
		}
		for _, m := range members {
			has, err := c.dst.HasRole(c.ctx, m, role)
			if err != nil {
				return err
			}
			if !has {
				if err := c.dst.GrantRole(c.ctx, m, role); err != nil {
					return fmt.Errorf("%s: %w", m, err)
				}
				c.copied["account_roles"]++
			}
		}
	}
	return nil
}

// settings copies server settings that PostgreSQL does not have yet (a
// value set there since is newer).
func (c *copier) settings() error {
	all, err := c.src.AllSettings(c.ctx)
	if err != nil {
		return err
	}
	for k, v := range all {
		if err := c.setIfAbsent("settings", func() error { _, err := c.dst.Setting(c.ctx, k); return err },
			func() error { return c.dst.SetSetting(c.ctx, k, v) }); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func (c *copier) apiTokens() error {
	toks, err := c.src.ListAPITokens(c.ctx)
	if err != nil {
		return err
	}
	for _, t := range toks {
		if err := c.created("api_tokens", c.dst.CreateAPIToken(c.ctx, t)); err != nil {
			return fmt.Errorf("token %s: %w", t.ID, err)
		}
	}
	return nil
}

func (c *copier) privateXML() error {
	return c.eachOwner("private", func(o string) error {
		elems, err := c.src.ExportPrivateXML(c.ctx, o)
		if err != nil {
			return err
		}
		n, err := c.dst.ImportPrivateXML(c.ctx, o, elems)
		c.copied["private_xml"] += n
		return err
	})
}

// rooms copies persistent MUC rooms and their affiliations; a room that
// exists in PostgreSQL keeps its configuration and gains the affiliations
// it lacks. Room archives and vCards are copied with the others (their
// owner is the room JID).
func (c *copier) rooms() error {
	return c.eachOwner("muc_rooms", func(jid string) error {
		room, err := c.src.Room(c.ctx, jid)
		if err != nil {
			return err
		}
		affs, err := c.src.RoomAffiliations(c.ctx, jid)
		if err != nil {
			return err
		}
		switch err := c.dst.CreateRoom(c.ctx, room, affs); {
		case err == nil:
			c.copied["muc_rooms"]++
			c.copied["muc_affiliations"] += len(affs)
			return nil
		case !errors.Is(err, storage.ErrExists):
			return err
		}
		have, err := c.dst.RoomAffiliations(c.ctx, jid)
		if err != nil {
			return err
		}
		return addMissing(c, "muc_affiliations", affs, have,
			func(a, b storage.MUCAffiliation) bool { return a.JID == b.JID },
			func(a storage.MUCAffiliation) error { return c.dst.SetRoomAffiliation(c.ctx, jid, a) })
	})
}

// fastTokens copies the XEP-0484 token digests, so clients keep logging
// in with their tokens after the move.
func (c *copier) fastTokens() error {
	return c.eachOwner("fast_tokens", func(owner string) error {
		clients, err := c.src.FASTClients(c.ctx, owner)
		if err != nil {
			return err
		}
		for _, fc := range clients {
			added, err := c.dst.ImportFASTClient(c.ctx, owner, fc)
			if err != nil {
				return fmt.Errorf("client %s: %w", fc.ClientID, err)
			}
			if added {
				c.copied["fast_tokens"]++
			}
		}
		return nil
	})
}

// suspensions copies account suspensions PostgreSQL does not have yet.
func (c *copier) suspensions() error {
	list, err := c.src.ListSuspensions(c.ctx)
	if err != nil {
		return err
	}
	for _, sp := range list {
		if err := c.setIfAbsent("account_suspensions", func() error { _, err := c.dst.AccountSuspension(c.ctx, sp.Account); return err },
			func() error { return c.dst.SuspendAccount(c.ctx, sp) }); err != nil {
			return fmt.Errorf("%s: %w", sp.Account, err)
		}
	}
	return nil
}

// spamReports copies XEP-0377 reports; a report with the same reporter,
// reported JID, time, reason and text is already there.
func (c *copier) spamReports() error {
	reports, err := c.src.SpamReports(c.ctx, "", 0)
	if err != nil {
		return err
	}
	have := map[string][]storage.SpamReport{}
	for _, r := range reports {
		if _, ok := have[r.Reported]; !ok {
			if have[r.Reported], err = c.dst.SpamReports(c.ctx, r.Reported, 0); err != nil {
				return err
			}
		}
		if slices.ContainsFunc(have[r.Reported], func(h storage.SpamReport) bool {
			return h.Reporter == r.Reporter && h.Created.Equal(r.Created) && h.Reason == r.Reason && h.Text == r.Text
		}) {
			continue
		}
		if _, err := c.dst.AddSpamReport(c.ctx, r, 0); err != nil {
			return fmt.Errorf("report by %s: %w", r.Reporter, err)
		}
		c.copied["spam_reports"]++
	}
	return nil
}

// accountSettings copies per-account settings PostgreSQL does not have yet.
func (c *copier) accountSettings() error {
	return c.eachOwner("account_settings", func(o string) error {
		src, err := c.src.AccountSettingsOf(c.ctx, o)
		if err != nil {
			return err
		}
		dst, err := c.dst.AccountSettingsOf(c.ctx, o)
		if err != nil {
			return err
		}
		for k, v := range src {
			if _, ok := dst[k]; ok {
				continue
			}
			if err := c.dst.SetAccountSetting(c.ctx, o, k, v); err != nil {
				return err
			}
			c.copied["account_settings"]++
		}
		return nil
	})
}

// lastActivity copies when each user last went offline (XEP-0012); a
// record the target has already (the user logged out there since) is
// kept when it is newer.
func (c *copier) lastActivity() error {
	return c.eachOwner("last_activity", func(owner string) error {
		at, status, err := c.src.LastActivity(c.ctx, owner)
		if err != nil {
			return err
		}
		if have, _, err := c.dst.LastActivity(c.ctx, owner); err == nil && !have.Before(at) {
			return nil
		}
		if err := c.dst.SetLastActivity(c.ctx, owner, at, status); err != nil {
			return err
		}
		c.copied["last_activity"]++
		return nil
	})
}
