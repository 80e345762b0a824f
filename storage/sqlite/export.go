package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-xmpp/parley/storage"
)

// Read-only helpers for exporting a database to another backend
// (`parley db copy`). Together with the storage interfaces they reach
// every record: the interfaces are keyed by owner, these list the owners
// and the records the interfaces cannot enumerate.

// SchemaVersion returns the highest migration applied to the database and
// the highest this binary knows.
func (s *Store) SchemaVersion(ctx context.Context) (applied, known int, err error) {
	ms, err := loadMigrations(migrationsRoot())
	if err != nil {
		return 0, 0, err
	}
	if len(ms) > 0 {
		known = ms[len(ms)-1].version
	}
	err = s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&applied)
	return applied, known, err
}

// exportTables maps the owner-keyed kinds to their tables.
var exportTables = map[string]string{
	"roster":           `SELECT owner FROM roster_items UNION SELECT owner FROM roster_versions UNION SELECT owner FROM pending_in`,
	"offline":          `SELECT DISTINCT owner FROM offline`,
	"vcards":           `SELECT owner FROM vcards`,
	"blocklist":        `SELECT DISTINCT owner FROM blocklist`,
	"archive":          `SELECT DISTINCT owner FROM archive`,
	"archive_prefs":    `SELECT owner FROM archive_prefs`,
	"push":             `SELECT DISTINCT owner FROM push_registrations`,
	"pep":              `SELECT DISTINCT owner FROM pep_nodes`,
	"uploads":          `SELECT DISTINCT owner FROM uploads`,
	"private":          `SELECT DISTINCT owner FROM private_xml`,
	"muc_rooms":        `SELECT jid AS owner FROM muc_rooms`,
	"fast_tokens":      `SELECT DISTINCT owner FROM fast_tokens`,
	"last_activity":    `SELECT owner FROM last_activity`,
	"account_settings": `SELECT DISTINCT owner FROM account_settings`,
}

// ExportOwners lists, sorted, the owners that have records of kind:
// "roster" (items, version or pending subscriptions), "offline",
// "vcards", "blocklist", "archive", "archive_prefs", "push", "pep",
// "uploads", "private" or "muc_rooms" (the rooms' JIDs).
func (s *Store) ExportOwners(ctx context.Context, kind string) ([]string, error) {
	q, ok := exportTables[kind]
	if !ok {
		return nil, fmt.Errorf("sqlite: unknown export kind %q", kind)
	}
	// Exports see every archive row committed before they start.
	if err := s.log.settle(ctx, ""); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT owner FROM (`+q+`) ORDER BY owner`)
	if err != nil {
		return nil, err
	}
	return scanStrings(rows)
}

// Tables lists, sorted, every table of the database that holds rows of
// its own: ordinary tables and virtual tables such as the full-text
// index, without the shadow tables that store a virtual table's data
// and without SQLite's internal tables. `parley db copy` checks it
// against the tables it knows how to copy, so that a table added by a
// migration cannot be left behind unnoticed.
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM pragma_table_list
		WHERE schema = 'main' AND type IN ('table', 'virtual') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
		ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return scanStrings(rows)
}

// ExportCount counts the rows of one of Tables (for verifying a copy).
func (s *Store) ExportCount(ctx context.Context, table string) (int64, error) {
	if err := s.knownTable(ctx, table); err != nil {
		return 0, err
	}
	if err := s.log.settle(ctx, ""); err != nil {
		return 0, err
	}
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`"`).Scan(&n)
	return n, err
}

// ExportPrivateXML returns every XEP-0049 element owner stored, keyed by
// namespace.
func (s *Store) ExportPrivateXML(ctx context.Context, owner string) (map[string][]byte, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT ns, raw FROM private_xml WHERE owner = ? ORDER BY ns`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var ns string
		var raw []byte
		if err := rows.Scan(&ns, &raw); err != nil {
			return nil, err
		}
		out[ns] = raw
	}
	return out, rows.Err()
}

// ExportArchive returns up to limit archived messages of owner after the
// message afterID ("" for the start), in archive order (timestamp, ID),
// with their IDs and timestamps.
func (s *Store) ExportArchive(ctx context.Context, owner, afterID string, limit int) ([]storage.ArchivedMessage, error) {
	if err := s.log.settle(ctx, owner); err != nil {
		return nil, err
	}
	var out []storage.ArchivedMessage
	err := s.read(ctx, func(tx *sql.Tx) error {
		var rows *sql.Rows
		var err error
		if afterID == "" {
			rows, err = tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive WHERE owner = ?
				ORDER BY ts, id LIMIT ?`, owner, limit)
		} else {
			rows, err = tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive WHERE owner = ?
				AND (ts, id) > (SELECT ts, id FROM archive WHERE owner = ? AND id = ?)
				ORDER BY ts, id LIMIT ?`, owner, owner, afterID, limit)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanArchived(rows, owner)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// CountMentions counts the rows of one of Tables in which some column
// holds needle, as text or in its bytes: tests use it to check that no
// row of a deleted account is left, in whichever table a migration adds.
func (s *Store) CountMentions(ctx context.Context, table, needle string) (int64, error) {
	if err := s.knownTable(ctx, table); err != nil {
		return 0, err
	}
	if err := s.log.settle(ctx, ""); err != nil {
		return 0, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return 0, err
	}
	cols, err := scanStrings(rows)
	if err != nil {
		return 0, err
	}
	var where []string
	for _, c := range cols {
		where = append(where, `instr(CAST("`+c+`" AS BLOB), CAST(?1 AS BLOB)) > 0`)
	}
	if len(where) == 0 {
		return 0, nil
	}
	var n int64
	err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`" WHERE `+strings.Join(where, " OR "), needle).Scan(&n)
	return n, err
}

// knownTable fails unless table is one of Tables (table names are
// spliced into SQL).
func (s *Store) knownTable(ctx context.Context, table string) error {
	tables, err := s.Tables(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, table) {
		return fmt.Errorf("sqlite: unknown table %q", table)
	}
	return nil
}
