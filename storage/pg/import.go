package pg

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

// Import helpers for copying another backend's data in (`parley db
// copy`). They keep what the storage interfaces would assign afresh
// (roster versions, offline and archive IDs, timestamps, publication
// order) and are idempotent: records that exist are left alone.

// Tables lists, sorted, the tables of the schema: partitioned tables
// count as one (the archive's monthly partitions are not listed), and
// so does a table an interrupted export-partition detached. `parley db
// copy` checks it against the tables it knows how to copy.
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
		  AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname !~ '^archive_p[0-9]{6}$'
		ORDER BY c.relname`)
}

// Count returns the number of rows of one of Tables.
func (s *Store) Count(ctx context.Context, table string) (int64, error) {
	if err := s.knownTable(ctx, table); err != nil {
		return 0, err
	}
	var n int64
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM `+quoteIdent(table), nil, &n)
	return n, err
}

// ImportPrivateXML stores owner's XEP-0049 elements, keyed by namespace,
// leaving those it has alone, and returns how many it stored.
func (s *Store) ImportPrivateXML(ctx context.Context, owner string, elems map[string][]byte) (int, error) {
	n := 0
	for ns, raw := range elems {
		k, err := s.exec(ctx, `INSERT INTO private_xml (owner, ns, raw) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			owner, ns, blob(raw))
		if err != nil {
			return n, err
		}
		n += int(k)
	}
	return n, nil
}

// ImportRoster upserts owner's roster items and sets the roster version to
// ver (as RosterVersion reports it) without bumping it; a higher version
// already stored is kept, so versions never go back.
func (s *Store) ImportRoster(ctx context.Context, owner string, items []storage.RosterItem, ver string) error {
	v, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return fmt.Errorf("roster version %q of %s: %w", ver, owner, err)
	}
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for _, item := range items {
			if _, err := tx.Exec(ctx, `INSERT INTO roster_items (owner, `+rosterColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
				 ON CONFLICT (owner, contact) DO UPDATE SET
				   name = excluded.name, subscription = excluded.subscription,
				   ask = excluded.ask, approved = excluded.approved, groups = excluded.groups`,
				owner, item.JID, item.Name, item.Subscription, item.Ask, item.Approved, nonNil(item.Groups)); err != nil {
				return err
			}
		}
		if v == 0 {
			return nil // never changed: no row, as in storage/sqlite
		}
		_, err := tx.Exec(ctx, `INSERT INTO roster_versions (owner, ver) VALUES ($1, $2)
			 ON CONFLICT (owner) DO UPDATE SET ver = GREATEST(roster_versions.ver, excluded.ver)`, owner, v)
		return err
	})
}

// ImportOffline stores owner's offline messages under their IDs, skipping
// IDs already present, and moves the ID sequence past them. It returns how
// many it stored.
func (s *Store) ImportOffline(ctx context.Context, owner string, msgs []storage.OfflineMessage) (int, error) {
	n := 0
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		for _, m := range msgs {
			tag, err := tx.Exec(ctx, `INSERT INTO offline (id, owner, raw, stamp) OVERRIDING SYSTEM VALUE
				 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`, m.ID, owner, blob(m.Raw), micros(m.Stamp))
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		// The sequence must never hand out an imported ID.
		_, err := tx.Exec(ctx, `SELECT setval(seq, GREATEST(COALESCE(pg_sequence_last_value(seq), 0),
				(SELECT COALESCE(MAX(id), 0) FROM offline), 1))
			 FROM (SELECT pg_get_serial_sequence('offline', 'id')::regclass AS seq) x`)
		return err
	})
	return n, err
}

// ImportArchive stores messages (Owner, ID and Timestamp as given),
// skipping those whose (owner, ID) is already present, in one statement,
// and returns how many it stored.
func (s *Store) ImportArchive(ctx context.Context, msgs []storage.ArchivedMessage) (int, error) {
	n := len(msgs)
	owners, ids, withs, ress, origins, froms := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	stamps, raws := make([]time.Time, n), make([][]byte, n)
	for i, m := range msgs {
		if m.ID == "" || m.Owner == "" {
			return 0, fmt.Errorf("archived message without owner or ID")
		}
		owners[i], ids[i], withs[i], ress[i], origins[i], froms[i] = m.Owner, m.ID, m.With, m.WithResource, m.OriginID, m.FromFull
		stamps[i], raws[i] = micros(m.Timestamp), blob(m.Raw)
	}
	k, err := s.exec(ctx, `INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
		 SELECT u.owner, u.ts, u.id, u.with_bare, u.with_resource, u.origin_id, u.from_full, u.raw
		 FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[])
		   AS u (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
		 WHERE NOT EXISTS (SELECT 1 FROM archive a WHERE a.owner = u.owner AND a.id = u.id)
		 ON CONFLICT DO NOTHING`,
		owners, stamps, ids, withs, ress, origins, froms, raws)
	return int(k), err
}

// ImportPEPNode creates the node unless it exists (keeping the existing
// configuration) and adds the items it lacks, in the order given (oldest
// first). It returns how many items it stored.
func (s *Store) ImportPEPNode(ctx context.Context, owner string, node storage.PEPNode, items []storage.PEPItem) (int, error) {
	cfg, err := encodeConfig(node.Config)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		if _, err := tx.Exec(ctx, `INSERT INTO pep_nodes (owner, node, config, created) VALUES ($1, $2, $3::jsonb, $4)
			 ON CONFLICT DO NOTHING`, owner, node.Name, cfg, micros(node.Created)); err != nil {
			return err
		}
		for _, it := range items {
			tag, err := tx.Exec(ctx, `INSERT INTO pep_items (owner, node, id, payload, publisher, stamp)
				 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
				owner, node.Name, it.ID, blob(it.Payload), it.Publisher, micros(it.Stamp))
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	return n, err
}

// ImportUpload stores an upload record as it is (any state) unless its ID
// exists, and reports whether it stored it.
func (s *Store) ImportUpload(ctx context.Context, u storage.Upload) (bool, error) {
	var completed *time.Time
	if !u.Completed.IsZero() {
		c := micros(u.Completed)
		completed = &c
	}
	k, err := s.exec(ctx, `INSERT INTO uploads (`+uploadColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		 ON CONFLICT DO NOTHING`,
		u.ID, u.Owner, u.Filename, u.Size, u.ContentType, int16(u.State), micros(u.Created), micros(u.Expires), completed)
	return k == 1, err
}

// CountMentions counts the rows of one of Tables in which some column
// holds needle, as text or in its bytes: tests use it to check that no
// row of a deleted account is left, in whichever table a migration adds.
func (s *Store) CountMentions(ctx context.Context, table, needle string) (int64, error) {
	if err := s.knownTable(ctx, table); err != nil {
		return 0, err
	}
	// A row's text form shows bytea columns in hex.
	var n int64
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM `+quoteIdent(table)+` t
		WHERE strpos(t::text, $1) > 0 OR strpos(t::text, encode(convert_to($1, 'UTF8'), 'hex')) > 0`, []any{needle}, &n)
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
		return fmt.Errorf("pg: unknown table %q", table)
	}
	return nil
}
