package pg

// Full-text search of the archive (XEP-0431): migration 0009 adds the
// tsvector column archive.fts, filled by a trigger for every message whose
// searchable text is not NULL (never for an encrypted one), with a GIN
// index. The trigger exists only while full-text search is on
// (Config.Fulltext, migration 0011): with it off an insert leaves fts
// NULL, and turning it on again fills fts for the rows archived
// meanwhile, at Open.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

// fulltextFilter is the QueryArchive condition for ArchiveQuery.Fulltext:
// every word of text must occur ('simple' configuration, like the index).
func fulltextFilter(args *params, text string) string {
	return "fts @@ plainto_tsquery('simple', " + args.add(text) + ")"
}

// The trigger of migration 0009. On the partitioned table it is cloned
// onto every partition, present and future; dropping it drops the clones.
const (
	ftsCreateTrigger = `CREATE TRIGGER archive_fts BEFORE INSERT OR UPDATE OF raw ON archive
	FOR EACH ROW EXECUTE FUNCTION parley_archive_fts_row()`
	ftsDropTrigger = `DROP TRIGGER IF EXISTS archive_fts ON archive`
)

// ftsBackfillBatch is how many archive rows one backfill transaction
// covers, so that no transaction runs long or holds many row locks.
const ftsBackfillBatch = 5000

// setFulltext brings the database to mode (see storage.FulltextIndex).
// Turning indexing on backfills here, synchronously, before Open returns:
// that happens only after search was off, and a server that starts with
// a complete index never serves partial results. Several nodes sharing
// the database must agree on the setting; the last one opened decides.
func (s *Store) setFulltext(ctx context.Context, mode storage.FulltextIndex) error {
	if mode == storage.FulltextKeep {
		return nil
	}
	var enabled, complete bool
	var gen int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT enabled, complete, generation FROM archive_fts_state FOR UPDATE`).
			Scan(&enabled, &complete, &gen); err != nil {
			return err
		}
		switch {
		case mode == storage.FulltextOff && enabled:
			if _, err := tx.Exec(ctx, ftsDropTrigger); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE archive_fts_state SET enabled = false, complete = false`)
			return err
		case mode == storage.FulltextOn && !enabled:
			for _, q := range []string{ftsDropTrigger, ftsCreateTrigger} {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			gen++
			_, err := tx.Exec(ctx, `UPDATE archive_fts_state SET enabled = true, complete = false, generation = $1`, gen)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	if mode == storage.FulltextOff || complete {
		return nil
	}
	return s.backfillFulltext(ctx, gen)
}

// backfillFulltext sets fts of every archived row, in batches in primary
// key order, writing only rows whose fts is not current (those archived
// or changed while indexing was off): rows inserted meanwhile have it
// from the trigger. Interrupted, it starts again at the next Open with
// FulltextOn.
func (s *Store) backfillFulltext(ctx context.Context, gen int64) error {
	var (
		owner, id string
		ts        time.Time
		first     = true
	)
	for {
		cond, args := "true", []any{ftsBackfillBatch}
		if !first {
			cond, args = "(owner, id, ts) > ($2, $3, $4)", append(args, owner, id, ts)
		}
		bctx, cancel := context.WithTimeout(ctx, max(s.timeout, time.Minute))
		err := s.pool.QueryRow(bctx, `WITH b AS (
				SELECT owner, id, ts, fts, parley_archive_fts(raw) AS v FROM archive
				WHERE `+cond+` ORDER BY owner, id, ts LIMIT $1
			), u AS (
				UPDATE archive a SET fts = b.v FROM b
				WHERE a.owner = b.owner AND a.id = b.id AND a.ts = b.ts AND b.fts IS DISTINCT FROM b.v
			)
			SELECT owner, id, ts FROM b ORDER BY owner DESC, id DESC, ts DESC LIMIT 1`, args...).Scan(&owner, &id, &ts)
		cancel()
		if err == pgx.ErrNoRows {
			break
		}
		if err != nil {
			return fmt.Errorf("full-text index: backfill: %w", err)
		}
		first = false
	}
	if _, err := s.pool.Exec(ctx, `UPDATE archive_fts_state SET complete = true WHERE enabled AND generation = $1`, gen); err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	return nil
}

// fulltextAvailable is QueryArchive's check, in its transaction:
// searching is refused unless the index is kept and complete.
func fulltextAvailable(ctx context.Context, tx pgx.Tx) error {
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT enabled AND complete FROM archive_fts_state`).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return storage.ErrFulltextUnavailable
	}
	return nil
}
