package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPartitionMonthsAhead is used when Config.PartitionMonthsAhead is
// zero.
const DefaultPartitionMonthsAhead = 3

// partitionInterval is how often the background loop started by Open
// calls EnsurePartitions.
const partitionInterval = 24 * time.Hour

// partitionLockClass is the first key of the advisory lock that
// serialises partition maintenance (the second is a hash of the schema).
const partitionLockClass = 0x50617274 // "Part"

// partitionName is the archive partition of the month (UTC) that starts
// at month.
func partitionName(month time.Time) string { return "archive_p" + month.Format("200601") }

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// EnsurePartitions makes sure the archive has a partition for the month
// of now (UTC) and for each of the monthsAhead months after it, creating
// those missing. Rows that the default partition holds for such a month
// are moved into the new partition. Safe to call from several nodes at
// once (an advisory lock serialises it); it returns the names of the
// partitions it created.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time, monthsAhead int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, max(time.Minute, 10*s.timeout))
	defer cancel()
	var created []string
	first := monthStart(now)
	for i := 0; i <= max(0, monthsAhead); i++ {
		from := first.AddDate(0, i, 0)
		ok, err := s.ensurePartition(ctx, from)
		if err != nil {
			return created, fmt.Errorf("archive partition %s: %w", partitionName(from), err)
		}
		if ok {
			created = append(created, partitionName(from))
		}
	}
	return created, nil
}

// ensurePartition creates the partition of the month starting at from
// unless it exists, and reports whether it did.
func (s *Store) ensurePartition(ctx context.Context, from time.Time) (bool, error) {
	name := partitionName(from)
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, quoteIdent(name)).Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	to := from.AddDate(0, 1, 0)
	lit := func(t time.Time) string { return "'" + t.Format("2006-01-02 15:04:05") + "+00'" }
	done := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '')))`, partitionLockClass); err != nil {
			return err
		}
		// Read pg_class itself: to_regclass may answer from a catalog
		// cache that has not seen what another node just committed.
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class
				WHERE relname = $1 AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))`, name).Scan(&exists); err != nil || exists {
			return err
		}
		// New rows for the month must not slip into the default
		// partition between moving its rows out and attaching.
		if _, err := tx.Exec(ctx, `LOCK TABLE archive_default IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		id := quoteIdent(name)
		if _, err := tx.Exec(ctx, `CREATE TABLE `+id+` (LIKE archive INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `WITH moved AS (
				DELETE FROM archive_default WHERE ts >= $1 AND ts < $2 RETURNING *)
			INSERT INTO `+id+` SELECT * FROM moved`, from, to); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE archive ATTACH PARTITION `+id+
			` FOR VALUES FROM (`+lit(from)+`) TO (`+lit(to)+`)`); err != nil {
			return err
		}
		done = true
		return nil
	})
	if isSQLState(err, "42P07") { // created by another node meanwhile
		return false, nil
	}
	return done && err == nil, err
}

// partitionLoop calls EnsurePartitions daily until stop is closed.
func (s *Store) partitionLoop(monthsAhead int) {
	defer close(s.loopDone)
	t := time.NewTicker(partitionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-s.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			// A failure (database away) is retried at the next tick;
			// rows meanwhile land in the default partition.
			if _, err := s.EnsurePartitions(ctx, time.Now(), monthsAhead); err != nil && ctx.Err() == nil {
				s.log.Warn("storage: creating archive partitions ahead of time failed; retrying tomorrow", "err", err)
			}
			cancel()
		}
	}
}
