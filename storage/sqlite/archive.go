package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.Archive          = (*Store)(nil)
	_ storage.ArchiveSubmitter = (*Store)(nil)
)

// maxArchiveIDs bounds the 'ids' filter so that the query stays below
// SQLite's bound-parameter limit.
const maxArchiveIDs = 500

// AppendArchive implements storage.ArchiveWriter. With group commit
// (OpenOptions) concurrent calls share transactions; either way it
// returns only once the row is committed.
func (s *Store) AppendArchive(ctx context.Context, owner string, msg storage.ArchivedMessage) (string, error) {
	r := newArchiveRow(owner, msg)
	if err := s.archiveW.Do(ctx, r); err != nil {
		return "", err
	}
	return r.id, nil
}

// SubmitArchive implements storage.ArchiveSubmitter.
func (s *Store) SubmitArchive(ctx context.Context, owner string, msg storage.ArchivedMessage, then func(error)) (string, storage.Completion, error) {
	r := newArchiveRow(owner, msg)
	f, err := s.archiveW.Submit(ctx, r, then)
	if err != nil {
		return "", nil, err
	}
	return r.id, f, nil
}

// DeleteArchive implements storage.ArchiveWriter.
func (s *Store) DeleteArchive(ctx context.Context, owner string) error {
	// The owner's rows in the archive log first (see deleteOwner).
	if err := s.log.deleteOwner(ctx, owner); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE owner = ?`, owner); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM archive_prefs WHERE owner = ?`, owner)
		return err
	})
}

// DeleteArchiveBefore implements storage.ArchiveWriter.
func (s *Store) DeleteArchiveBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	if err := s.log.settle(ctx, ""); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE rowid IN (
			SELECT rowid FROM archive WHERE ts < ? ORDER BY ts LIMIT ?)`, toMicros(t), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// SetArchivePrefs implements storage.ArchiveWriter.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p storage.ArchivePrefs) error {
	always, err := json.Marshal(nonNil(p.Always))
	if err != nil {
		return err
	}
	never, err := json.Marshal(nonNil(p.Never))
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO archive_prefs (owner, dflt, always, never) VALUES (?, ?, ?, ?)
			ON CONFLICT (owner) DO UPDATE SET dflt = excluded.dflt, always = excluded.always, never = excluded.never`,
			owner, p.Default, string(always), string(never))
		return err
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ArchivePrefs implements storage.ArchiveReader.
func (s *Store) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	var p storage.ArchivePrefs
	var always, never string
	err := s.r.QueryRowContext(ctx, `SELECT dflt, always, never FROM archive_prefs WHERE owner = ?`, owner).
		Scan(&p.Default, &always, &never)
	if errors.Is(err, sql.ErrNoRows) {
		return p, storage.ErrNotFound
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(always), &p.Always); err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(never), &p.Never); err != nil {
		return p, err
	}
	return p, nil
}

const archiveColumns = `id, ts, with_bare, with_resource, origin_id, from_full, raw`

func scanArchived(row scanner, owner string) (storage.ArchivedMessage, error) {
	m := storage.ArchivedMessage{Owner: owner}
	var ts int64
	if err := row.Scan(&m.ID, &ts, &m.With, &m.WithResource, &m.OriginID, &m.FromFull, &m.Raw); err != nil {
		return m, err
	}
	m.Timestamp = fromMicros(ts)
	return m, nil
}

// ArchiveMetadata implements storage.ArchiveReader.
func (s *Store) ArchiveMetadata(ctx context.Context, owner string) (first, last *storage.ArchivedMessage, err error) {
	if err := s.log.settle(ctx, owner); err != nil {
		return nil, nil, err
	}
	err = s.read(ctx, func(tx *sql.Tx) error {
		for _, dir := range []string{"ASC", "DESC"} {
			m, err := scanArchived(tx.QueryRowContext(ctx, `SELECT `+archiveColumns+` FROM archive WHERE owner = ?
				ORDER BY ts `+dir+`, id `+dir+` LIMIT 1`, owner), owner)
			if errors.Is(err, sql.ErrNoRows) {
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
	// The log first: a row moved meanwhile is in the archive before it
	// leaves the log. A match in the log is taken as the newest: its
	// rows were archived after the archive's (only a row archived with
	// an older timestamp of its own could be older).
	if r, ok, err := s.log.findByOrigin(ctx, owner, originID, fromFull, toMicros(since)); err != nil || ok {
		return storage.ArchivedMessage{Owner: owner, ID: r.id, Timestamp: fromMicros(r.ts), With: r.msg.With,
			WithResource: r.msg.WithResource, OriginID: r.msg.OriginID, FromFull: r.msg.FromFull, Raw: r.msg.Raw}, err
	}
	// Named: for a bound origin_id SQLite cannot prove the partial
	// index's origin_id <> '' and, for the ORDER BY, walked every row of
	// the owner inside the window (13.9 ms with 2,000 of them,
	// BenchmarkFindArchivedByOrigin) on every message with an origin-id.
	m, err := scanArchived(s.r.QueryRowContext(ctx, `SELECT `+archiveColumns+` FROM archive INDEXED BY archive_by_origin
		WHERE owner = ? AND origin_id = ? AND origin_id <> '' AND from_full = ? AND ts >= ?
		ORDER BY ts DESC, id DESC LIMIT 1`, owner, originID, fromFull, toMicros(since)), owner)
	if errors.Is(err, sql.ErrNoRows) {
		return m, storage.ErrNotFound
	}
	return m, err
}

// NewestArchived implements storage.ArchiveReader (archive_by_ts answers
// max(ts) without a scan).
func (s *Store) NewestArchived(ctx context.Context) (time.Time, error) {
	if err := s.log.settle(ctx, ""); err != nil {
		return time.Time{}, err
	}
	var ts sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT max(ts) FROM archive`).Scan(&ts); err != nil || !ts.Valid {
		return time.Time{}, err
	}
	return fromMicros(ts.Int64), nil
}

// archiveKey is a position in an archive's order.
type archiveKey struct {
	ts int64
	id string
}

func lookupKey(ctx context.Context, tx *sql.Tx, owner, id string) (archiveKey, error) {
	k := archiveKey{id: id}
	err := tx.QueryRowContext(ctx, `SELECT ts FROM archive WHERE owner = ? AND id = ?`, owner, id).Scan(&k.ts)
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("archive message %q: %w", id, storage.ErrNotFound)
	}
	return k, err
}

// QueryArchive implements storage.ArchiveReader with keyset paging on
// (owner, ts, id).
func (s *Store) QueryArchive(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	var page storage.ArchivePage
	if len(q.IDs) > maxArchiveIDs {
		return page, fmt.Errorf("sqlite: more than %d archive ids in one query", maxArchiveIDs)
	}
	if err := s.log.settle(ctx, owner); err != nil {
		return page, err
	}
	if err := q.Validate(); err != nil {
		return page, err
	}
	err := s.read(ctx, func(tx *sql.Tx) error {
		// The filter.
		where := []string{"owner = ?"}
		args := []any{owner}
		if q.With != "" {
			where = append(where, "with_bare = ?")
			args = append(args, q.With)
			if q.WithResource != "" {
				where = append(where, "with_resource = ?")
				args = append(args, q.WithResource)
			}
		}
		if !q.Start.IsZero() {
			where = append(where, "ts >= ?")
			args = append(args, toMicros(q.Start))
		}
		if !q.End.IsZero() {
			where = append(where, "ts <= ?")
			args = append(args, toMicros(q.End))
		}
		if q.AfterID != "" {
			k, err := lookupKey(ctx, tx, owner, q.AfterID)
			if err != nil {
				return err
			}
			where = append(where, "(ts, id) > (?, ?)")
			args = append(args, k.ts, k.id)
		}
		if q.BeforeID != "" {
			k, err := lookupKey(ctx, tx, owner, q.BeforeID)
			if err != nil {
				return err
			}
			where = append(where, "(ts, id) < (?, ?)")
			args = append(args, k.ts, k.id)
		}
		if q.IDs != nil {
			ids := slices.Compact(slices.Sorted(slices.Values(q.IDs)))
			var n int
			in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
			idArgs := make([]any, 0, len(ids)+1)
			idArgs = append(idArgs, owner)
			for _, id := range ids {
				idArgs = append(idArgs, id)
			}
			if len(ids) > 0 {
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive WHERE owner = ? AND id IN `+in, idArgs...).Scan(&n); err != nil {
					return err
				}
			}
			if n != len(ids) {
				return fmt.Errorf("archive ids: %w", storage.ErrNotFound)
			}
			if len(ids) == 0 {
				where = append(where, "0")
			} else {
				where = append(where, "id IN "+in)
				args = append(args, idArgs[1:]...)
			}
		}
		if strings.TrimSpace(q.Fulltext) != "" {
			if err := fulltextAvailable(ctx, tx); err != nil {
				return err
			}
			w, a := fulltextFilter(owner, q.Fulltext)
			where = append(where, w)
			args = append(args, a...)
		}
		filter := strings.Join(where, " AND ")
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive WHERE `+filter, args...).Scan(&page.Count); err != nil {
			return err
		}

		// The page.
		backward := q.Last || q.PageBefore != ""
		pwhere, pargs := filter, slices.Clone(args)
		if q.PageAfter != "" {
			k, err := lookupKey(ctx, tx, owner, q.PageAfter)
			if err != nil {
				return err
			}
			pwhere += " AND (ts, id) > (?, ?)"
			pargs = append(pargs, k.ts, k.id)
		}
		if q.PageBefore != "" {
			k, err := lookupKey(ctx, tx, owner, q.PageBefore)
			if err != nil {
				return err
			}
			pwhere += " AND (ts, id) < (?, ?)"
			pargs = append(pargs, k.ts, k.id)
		}
		if q.Max <= 0 {
			page.Complete = page.Count == 0
			return nil
		}
		dir := "ASC"
		if backward {
			dir = "DESC"
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive WHERE `+pwhere+`
			ORDER BY ts `+dir+`, id `+dir+` LIMIT ? OFFSET ?`, append(pargs, q.Max+1, q.Index)...)
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
		if err := rows.Err(); err != nil {
			return err
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
			return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive WHERE `+filter+` AND (ts, id) < (?, ?)`,
				append(slices.Clone(args), toMicros(f.Timestamp), f.ID)...).Scan(&page.FirstIndex)
		}
		return nil
	})
	if err != nil {
		return storage.ArchivePage{}, err
	}
	return page, nil
}
