package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.Archive          = (*Store)(nil)
	_ storage.ArchiveSubmitter = (*Store)(nil)
)

// AppendArchive implements storage.ArchiveWriter. With group commit
// (Config.GroupCommit) concurrent calls share transactions; either way it
// returns only once the row is committed.
func (s *Store) AppendArchive(ctx context.Context, owner string, msg storage.ArchivedMessage) (string, error) {
	r := newArchiveRow(owner, msg)
	if err := s.appendArchive(ctx, r); err != nil {
		return "", err
	}
	return r.id, nil
}

// DeleteArchive implements storage.ArchiveWriter.
func (s *Store) DeleteArchive(ctx context.Context, owner string) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM archive WHERE owner = $1`, owner); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM archive_prefs WHERE owner = $1`, owner)
		return err
	})
}

// DeleteArchiveBefore implements storage.ArchiveWriter. Several nodes
// running retention at once do not delete a row twice; a batch may then
// delete fewer than limit rows.
func (s *Store) DeleteArchiveBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = int64(limit)
	}
	n, err := s.exec(ctx,
		`DELETE FROM archive a USING (
		   SELECT owner, id FROM archive WHERE ts < $1 ORDER BY ts LIMIT $2::bigint
		 ) old WHERE a.owner = old.owner AND a.id = old.id`,
		micros(t), lim)
	return int(n), err
}

// SetArchivePrefs implements storage.ArchiveWriter.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p storage.ArchivePrefs) error {
	_, err := s.exec(ctx,
		`INSERT INTO archive_prefs (owner, dflt, always, never) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (owner) DO UPDATE SET dflt = excluded.dflt, always = excluded.always, never = excluded.never`,
		owner, p.Default, nonNil(p.Always), nonNil(p.Never))
	return err
}

// ArchivePrefs implements storage.ArchiveReader.
func (s *Store) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	var p storage.ArchivePrefs
	err := s.queryRow(ctx, `SELECT dflt, always, never FROM archive_prefs WHERE owner = $1`, []any{owner},
		&p.Default, &p.Always, &p.Never)
	if isNoRows(err) {
		return storage.ArchivePrefs{}, storage.ErrNotFound
	}
	if len(p.Always) == 0 {
		p.Always = nil
	}
	if len(p.Never) == 0 {
		p.Never = nil
	}
	return p, err
}

const archiveColumns = `id, ts, with_bare, with_resource, origin_id, from_full, raw`

func scanArchived(row pgx.Row, owner string) (storage.ArchivedMessage, error) {
	m := storage.ArchivedMessage{Owner: owner}
	if err := row.Scan(&m.ID, &m.Timestamp, &m.With, &m.WithResource, &m.OriginID, &m.FromFull, &m.Raw); err != nil {
		return m, err
	}
	m.Timestamp = m.Timestamp.UTC()
	return m, nil
}

// ArchiveMetadata implements storage.ArchiveReader.
func (s *Store) ArchiveMetadata(ctx context.Context, owner string) (first, last *storage.ArchivedMessage, err error) {
	err = s.read(ctx, func(ctx context.Context, tx pgx.Tx) error {
		first, last = nil, nil
		for _, dir := range []string{"ASC", "DESC"} {
			m, err := scanArchived(tx.QueryRow(ctx, `SELECT `+archiveColumns+` FROM archive WHERE owner = $1
				ORDER BY ts `+dir+`, id `+dir+` LIMIT 1`, owner), owner)
			if isNoRows(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if dir == "ASC" {
				first = &m
			} else {
				last = &m
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return first, last, nil
}

// FindArchivedByOrigin implements storage.ArchiveReader.
func (s *Store) FindArchivedByOrigin(ctx context.Context, owner, originID, fromFull string, since time.Time) (storage.ArchivedMessage, error) {
	if originID == "" {
		return storage.ArchivedMessage{}, storage.ErrNotFound
	}
	var m storage.ArchivedMessage
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		// The partial index archive_by_origin answers this: origin_id
		// <> '' lets a generic plan use it, and ordering by ts alone
		// (which it holds) keeps the planner from walking the owner's
		// rows of the window in (ts, id) order for the LIMIT (7.3 ms
		// with 2,000 of them, BenchmarkFindArchivedByOrigin, on every
		// message with an origin-id). Rows tied on ts here would be
		// copies of one message.
		m, err = scanArchived(s.pool.QueryRow(ctx, `SELECT `+archiveColumns+` FROM archive
			WHERE owner = $1 AND origin_id = $2 AND origin_id <> '' AND from_full = $3 AND ts >= $4
			ORDER BY ts DESC LIMIT 1`, owner, originID, fromFull, micros(since)), owner)
		return err
	})
	if isNoRows(err) {
		return storage.ArchivedMessage{}, storage.ErrNotFound
	}
	return m, err
}

// NewestArchived implements storage.ArchiveReader (each partition's
// archive_by_ts answers max(ts) without a scan).
func (s *Store) NewestArchived(ctx context.Context) (time.Time, error) {
	var ts *time.Time
	err := s.run(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT max(ts) FROM archive`).Scan(&ts)
	})
	if err != nil || ts == nil {
		return time.Time{}, err
	}
	return ts.UTC(), nil
}

// archiveKey is a position in an archive's order.
type archiveKey struct {
	ts time.Time
	id string
}

func lookupKey(ctx context.Context, tx pgx.Tx, owner, id string) (archiveKey, error) {
	k := archiveKey{id: id}
	ts, err := lookupTS(ctx, tx, owner, id)
	k.ts = ts
	if isNoRows(err) {
		return k, fmt.Errorf("archive message %q: %w", id, storage.ErrNotFound)
	}
	return k, err
}

// readCountAndPage reads the results of QueryArchive's batch: the count,
// then, when withPage, the page's rows (Max+1 of them at most).
func readCountAndPage(br pgx.BatchResults, owner string, withPage bool, page *storage.ArchivePage) error {
	err := func() error {
		if err := br.QueryRow().Scan(&page.Count); err != nil {
			return err
		}
		if !withPage {
			return nil
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanArchived(rows, owner)
			if err != nil {
				return err
			}
			page.Messages = append(page.Messages, m)
		}
		return rows.Err()
	}()
	return errors.Join(err, br.Close())
}

// params collects positional query arguments.
type params []any

// add appends v and returns its placeholder.
func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

// QueryArchive implements storage.ArchiveReader with keyset paging on
// (owner, ts, id). Its queries run in one repeatable-read snapshot, so
// Count, FirstIndex and the page agree even while messages arrive.
func (s *Store) QueryArchive(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	var page storage.ArchivePage
	if err := q.Validate(); err != nil {
		return page, err
	}
	err := s.read(ctx, func(ctx context.Context, tx pgx.Tx) error {
		page = storage.ArchivePage{}
		// The filter.
		var args params
		where := []string{"owner = " + args.add(owner)}
		if q.With != "" {
			where = append(where, "with_bare = "+args.add(q.With))
			if q.WithResource != "" {
				where = append(where, "with_resource = "+args.add(q.WithResource))
			}
		}
		if !q.Start.IsZero() {
			where = append(where, "ts >= "+args.add(micros(q.Start)))
		}
		if !q.End.IsZero() {
			where = append(where, "ts <= "+args.add(micros(q.End)))
		}
		for _, bound := range []struct{ id, op string }{{q.AfterID, ">"}, {q.BeforeID, "<"}} {
			if bound.id == "" {
				continue
			}
			k, err := lookupKey(ctx, tx, owner, bound.id)
			if err != nil {
				return err
			}
			where = append(where, "(ts, id) "+bound.op+" ("+args.add(k.ts)+", "+args.add(k.id)+")")
		}
		if q.IDs != nil {
			ids := slices.Compact(slices.Sorted(slices.Values(q.IDs)))
			if len(ids) == 0 {
				where = append(where, "false")
			} else {
				var n int
				if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM archive WHERE owner = $1 AND id = ANY ($2::text[])`,
					owner, ids).Scan(&n); err != nil {
					return err
				}
				if n != len(ids) {
					return fmt.Errorf("archive ids: %w", storage.ErrNotFound)
				}
				where = append(where, "id = ANY ("+args.add(ids)+"::text[])")
			}
		}
		if strings.TrimSpace(q.Fulltext) != "" {
			if err := fulltextAvailable(ctx, tx); err != nil {
				return err
			}
			where = append(where, fulltextFilter(&args, q.Fulltext))
		}
		filter := strings.Join(where, " AND ")

		// The page.
		backward := q.Last || q.PageBefore != ""
		pwhere, pargs := filter, slices.Clone(args)
		for _, bound := range []struct{ id, op string }{{q.PageAfter, ">"}, {q.PageBefore, "<"}} {
			if bound.id == "" {
				continue
			}
			k, err := lookupKey(ctx, tx, owner, bound.id)
			if err != nil {
				return err
			}
			pwhere += " AND (ts, id) " + bound.op + " (" + pargs.add(k.ts) + ", " + pargs.add(k.id) + ")"
		}
		// The count and the page go in one round trip (one snapshot: the
		// transaction is repeatable read).
		b := &pgx.Batch{}
		b.Queue(countSQL(where, q.WithResource, filter), args...)
		if q.Max > 0 {
			dir := "ASC"
			if backward {
				dir = "DESC"
			}
			limit := pargs.add(int64(q.Max) + 1)
			offset := pargs.add(int64(q.Index))
			b.Queue(`SELECT `+archiveColumns+` FROM archive WHERE `+pwhere+`
			ORDER BY ts `+dir+`, id `+dir+` LIMIT `+limit+` OFFSET `+offset, pargs...)
		}
		if err := readCountAndPage(tx.SendBatch(ctx, b), owner, q.Max > 0, &page); err != nil {
			return err
		}
		if q.Max <= 0 {
			page.Complete = page.Count == 0
			return nil
		}
		page.Complete = len(page.Messages) <= q.Max
		if !page.Complete {
			page.Messages = page.Messages[:q.Max]
		}
		if backward {
			slices.Reverse(page.Messages)
		}
		if len(page.Messages) > 0 {
			f := page.Messages[0]
			return firstIndex(ctx, tx, filter, args, f.Timestamp, f.ID, page.Count, &page.FirstIndex)
		}
		return nil
	})
	if err != nil {
		return storage.ArchivePage{}, err
	}
	return page, nil
}
