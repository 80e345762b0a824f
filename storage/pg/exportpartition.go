package pg

// Cold storage of old archive months: the rows of a monthly partition are
// read in one snapshot (ReadArchivePartition), written elsewhere by the
// caller, then the partition is detached (DetachArchivePartition),
// checked against what was read (ArchivePartitionSum) and dropped
// (DropArchivePartition). See `parley archive export-partition`.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

// ArchivePartition is a monthly table of the archive.
type ArchivePartition struct {
	Name  string    // archive_pYYYYMM
	Month time.Time // its first instant, UTC
	// Attached is false for a table an interrupted export detached
	// but did not drop: its rows are no longer visible to queries.
	Attached bool
}

// PartitionSum identifies the rows of a partition: their number and a
// sum of hashes of their (owner, id). Two equal sums of one partition
// mean, in practice, the same rows.
type PartitionSum struct {
	Rows int64
	Hash string
}

var partitionNameRE = regexp.MustCompile(`^archive_p([0-9]{6})$`)

// ArchivePartitionsBefore returns the monthly archive partitions of the
// months before before (UTC), oldest first, with the tables that an
// interrupted export detached and did not drop.
func (s *Store) ArchivePartitionsBefore(ctx context.Context, before time.Time) ([]ArchivePartition, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname, c.relispartition FROM pg_class c
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
		  AND c.relkind = 'r' AND c.relname ~ '^archive_p[0-9]{6}$'
		  AND (NOT c.relispartition OR EXISTS (SELECT 1 FROM pg_inherits i
		       WHERE i.inhrelid = c.oid AND i.inhparent = 'archive'::regclass))
		ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ArchivePartition
	for rows.Next() {
		var p ArchivePartition
		if err := rows.Scan(&p.Name, &p.Attached); err != nil {
			return nil, err
		}
		m := partitionNameRE.FindStringSubmatch(p.Name)
		month, err := time.Parse("200601", m[1])
		if err != nil {
			continue // not a name Parley gives
		}
		p.Month = month.UTC()
		if p.Month.Before(monthStart(before)) {
			out = append(out, p)
		}
	}
	return out, rows.Err()
}

// DefaultPartitionRowsBefore counts the archive rows older than before
// that the default partition holds (months that had no partition of their
// own when the rows arrived); they are not part of any monthly partition.
func (s *Store) DefaultPartitionRowsBefore(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM archive_default WHERE ts < $1`, monthStart(before)).Scan(&n)
	return n, err
}

// sumSQL computes a PartitionSum of a table.
const sumSQL = `SELECT count(*), COALESCE(sum(hashtextextended(owner || ' ' || id, 0)::numeric), 0)::text FROM `

// ArchivePartitionSum returns the PartitionSum of a partition or detached
// table as it is now.
func (s *Store) ArchivePartitionSum(ctx context.Context, name string) (PartitionSum, error) {
	if !partitionNameRE.MatchString(name) {
		return PartitionSum{}, fmt.Errorf("%q is not an archive partition", name)
	}
	var sum PartitionSum
	err := s.pool.QueryRow(ctx, sumSQL+quoteIdent(name)).Scan(&sum.Rows, &sum.Hash)
	return sum, err
}

// ReadArchivePartition calls fn with every row of the partition (or
// detached table) name, by owner and then in archive order, all read in
// one snapshot, and returns the PartitionSum of that snapshot. It is not
// bound by the store's query timeout: a month can be large.
func (s *Store) ReadArchivePartition(ctx context.Context, name string, fn func(storage.ArchivedMessage) error) (PartitionSum, error) {
	var sum PartitionSum
	if !partitionNameRE.MatchString(name) {
		return sum, fmt.Errorf("%q is not an archive partition", name)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return sum, err
	}
	defer conn.Release()
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		id := quoteIdent(name)
		if err := tx.QueryRow(ctx, sumSQL+id).Scan(&sum.Rows, &sum.Hash); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT owner, `+archiveColumns+` FROM `+id+` ORDER BY owner, ts, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var owner string
			m := storage.ArchivedMessage{}
			if err := rows.Scan(&owner, &m.ID, &m.Timestamp, &m.With, &m.WithResource, &m.OriginID, &m.FromFull, &m.Raw); err != nil {
				return err
			}
			m.Owner, m.Timestamp = owner, m.Timestamp.UTC()
			if err := fn(m); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	return sum, err
}

// detachLockTimeout bounds the wait for the archive's lock: DETACH
// PARTITION needs it exclusively for a moment, and waiting behind a long
// query would stall every archive write queued behind us.
const detachLockTimeout = "10s"

// DetachArchivePartition detaches the partition name from the archive
// (its rows leave the archive's queries; new rows of its month would go
// to the default partition). It does nothing for a detached table.
func (s *Store) DetachArchivePartition(ctx context.Context, name string) error {
	if !partitionNameRE.MatchString(name) {
		return fmt.Errorf("%q is not an archive partition", name)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+detachLockTimeout+`'`); err != nil {
			return err
		}
		// Not while EnsurePartitions creates one.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '')))`, partitionLockClass); err != nil {
			return err
		}
		attached, err := isPartition(ctx, tx, name)
		if err != nil || !attached {
			return err
		}
		if _, err = tx.Exec(ctx, `ALTER TABLE archive DETACH PARTITION `+quoteIdent(name)); err != nil {
			return err
		}
		// The rows left the archive without a DELETE, so the counters'
		// triggers did not see them: take them off here, in the same
		// transaction, counter rows locked in key order as the triggers do.
		q := quoteIdent(name)
		if _, err = tx.Exec(ctx, `SELECT 1 FROM archive_counts c
			WHERE (c.owner, c.with_bare) IN (SELECT owner, with_bare FROM `+q+`)
			ORDER BY c.owner, c.with_bare FOR UPDATE`); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `UPDATE archive_counts c SET n = c.n - d.n
			FROM (SELECT owner, with_bare, count(*) AS n FROM `+q+` GROUP BY owner, with_bare) d
			WHERE c.owner = d.owner AND c.with_bare = d.with_bare`); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `DELETE FROM archive_counts WHERE n <= 0`); err != nil {
			return err
		}
		// The per-account byte usage (quotas) likewise.
		if _, err = tx.Exec(ctx, `SELECT 1 FROM account_usage u
			WHERE u.kind = 'archive' AND u.owner IN (SELECT owner FROM `+q+`)
			ORDER BY u.owner FOR UPDATE`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE account_usage u SET bytes = u.bytes - d.n
			FROM (SELECT owner, SUM(octet_length(raw)) AS n FROM `+q+` GROUP BY owner) d
			WHERE u.owner = d.owner AND u.kind = 'archive'`)
		return err
	})
}

// DropArchivePartition drops a table that DetachArchivePartition
// detached. It refuses a table that is still a partition of the archive.
func (s *Store) DropArchivePartition(ctx context.Context, name string) error {
	if !partitionNameRE.MatchString(name) {
		return fmt.Errorf("%q is not an archive partition", name)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		attached, err := isPartition(ctx, tx, name)
		if err != nil {
			return err
		}
		if attached {
			return errors.New(name + " is still a partition of the archive; detach it first")
		}
		_, err = tx.Exec(ctx, `DROP TABLE `+quoteIdent(name))
		return err
	})
}

// isPartition reports whether the table name (which must exist) of the
// current schema is a partition.
func isPartition(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	var attached bool
	err := tx.QueryRow(ctx, `SELECT relispartition FROM pg_class
		WHERE relname = $1 AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())`, name).Scan(&attached)
	if isNoRows(err) {
		return false, fmt.Errorf("no table %s: %w", name, storage.ErrNotFound)
	}
	return attached, err
}
