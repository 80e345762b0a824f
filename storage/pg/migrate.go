package pg

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

func embeddedMigrations() fs.FS {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}

// migrationLockClass is the first key of the advisory lock that
// serialises migrations; the second is a hash of the schema, so
// installations in different schemas of one database do not wait for each
// other. (The two-key lock space never overlaps the one-key space.)
const migrationLockClass = 0x5061726c // "Parl"

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

const lockMigrations = `SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '')))`

// migrate applies every migration in fsys that the database has not seen,
// each in its own transaction together with its schema_migrations row.
// PostgreSQL DDL is transactional, so a failing migration leaves the schema
// as the previous one left it. Each transaction first takes an advisory
// lock, so nodes starting at once apply every migration exactly once: the
// ones that wait find it applied.
func migrate(ctx context.Context, conn *pgx.Conn, fsys fs.FS) ([]string, error) {
	ms, err := storage.LoadMigrations(fsys, ".")
	if err != nil {
		return nil, err
	}
	// Created under the lock too: concurrent CREATE TABLE IF NOT EXISTS
	// can fail on the catalog's unique index.
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockMigrations, migrationLockClass); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createMigrationsTable)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := checkNotNewer(ctx, conn, ms); err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range ms {
		done, err := applyMigration(ctx, conn, m)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if done {
			applied = append(applied, m.Name)
		}
	}
	return applied, nil
}

// checkNotNewer refuses a database written by a newer Parley: its schema
// may mean something this binary does not understand.
func checkNotNewer(ctx context.Context, conn *pgx.Conn, ms []storage.Migration) error {
	var current int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if len(ms) > 0 && current > ms[len(ms)-1].Version {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", current, ms[len(ms)-1].Version)
	}
	return nil
}

// applyMigration applies m unless it is recorded as applied, and reports
// whether it did.
func applyMigration(ctx context.Context, conn *pgx.Conn, m storage.Migration) (bool, error) {
	done := false
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockMigrations, migrationLockClass); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, m.Version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		// No arguments: pgx sends the file with the simple protocol, which
		// runs several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done && err == nil, err
}

// MigrationStatus describes one migration, known to this binary or
// recorded in the database.
type MigrationStatus struct {
	Version int
	Name    string
	// Applied reports that the database records the migration as
	// applied, at AppliedAt.
	Applied   bool
	AppliedAt time.Time
	// Known reports that this binary ships the migration; an applied but
	// unknown migration means a newer Parley wrote the database.
	Known bool
}

// readStatus merges the known migrations with schema_migrations.
func readStatus(ctx context.Context, conn *pgx.Conn, fsys fs.FS) ([]MigrationStatus, error) {
	ms, err := storage.LoadMigrations(fsys, ".")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*MigrationStatus{}
	var out []MigrationStatus
	for _, m := range ms {
		out = append(out, MigrationStatus{Version: m.Version, Name: m.Name, Known: true})
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, err
	}
	if exists {
		rows, err := conn.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			return nil, err
		}
		type row struct {
			v  int
			n  string
			at time.Time
		}
		recorded, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.v, &x.n, &x.at)
			return x, err
		})
		if err != nil {
			return nil, err
		}
		for i := range out {
			byVersion[out[i].Version] = &out[i]
		}
		var extra []MigrationStatus
		for _, r := range recorded {
			if st, ok := byVersion[r.v]; ok {
				st.Applied, st.AppliedAt = true, r.at.UTC()
			} else {
				extra = append(extra, MigrationStatus{Version: r.v, Name: r.n, Applied: true, AppliedAt: r.at.UTC()})
			}
		}
		out = append(out, extra...)
		slices.SortFunc(out, func(a, b MigrationStatus) int { return a.Version - b.Version })
	}
	return out, nil
}

// checkCurrent fails unless every known migration is applied and none
// unknown is (for Open without Migrate).
func checkCurrent(ctx context.Context, conn *pgx.Conn, fsys fs.FS) error {
	st, err := readStatus(ctx, conn, fsys)
	if err != nil {
		return err
	}
	for _, m := range st {
		switch {
		case !m.Known:
			return fmt.Errorf("database schema has migration %d (%s), which this binary does not know", m.Version, m.Name)
		case !m.Applied:
			return fmt.Errorf("migration %s is not applied (run parley db migrate)", m.Name)
		}
	}
	return nil
}

// Migrate connects to dsn and applies the pending migrations, returning
// the names of those it applied (none when the schema was up to date). It
// is safe to run while Parley nodes start: migrations are serialised by an
// advisory lock. The schema is the DSN's search_path (for example
// "postgres://host/db?search_path=parley").
func Migrate(ctx context.Context, dsn string) ([]string, error) {
	return MigrateSchema(ctx, dsn, "")
}

// Status connects to dsn and reports every migration this binary knows,
// whether applied or not, plus any the database records that it does not
// know, ordered by version.
func Status(ctx context.Context, dsn string) ([]MigrationStatus, error) {
	return StatusSchema(ctx, dsn, "")
}
