package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.Uploads = (*Store)(nil)

const uploadColumns = `id, owner, filename, size, content_type, state, created, expires, completed`

func scanUpload(row scanner) (storage.Upload, error) {
	var (
		u                storage.Upload
		created, expires int64
		completed        sql.NullInt64
	)
	if err := row.Scan(&u.ID, &u.Owner, &u.Filename, &u.Size, &u.ContentType, &u.State, &created, &expires, &completed); err != nil {
		return u, err
	}
	u.Created, u.Expires = fromMicros(created), fromMicros(expires)
	if completed.Valid {
		u.Completed = fromMicros(completed.Int64)
	}
	return u, nil
}

func scanUploads(rows *sql.Rows) ([]storage.Upload, error) {
	defer rows.Close()
	var out []storage.Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CreateUpload checks the quota and inserts the slot in one write
// transaction, so concurrent requests of one owner cannot both pass.
func (s *Store) CreateUpload(ctx context.Context, u storage.Upload, quota int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if quota > 0 {
			var used int64
			if err := tx.QueryRowContext(ctx,
				`SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = ? AND (state <> 0 OR expires > ?)`,
				u.Owner, toMicros(u.Created)).Scan(&used); err != nil {
				return err
			}
			if used+u.Size > quota {
				return storage.ErrQuotaExceeded
			}
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO uploads (`+uploadColumns+`) VALUES (?, ?, ?, ?, ?, 0, ?, ?, NULL) ON CONFLICT DO NOTHING`,
			u.ID, u.Owner, u.Filename, u.Size, u.ContentType, toMicros(u.Created), toMicros(u.Expires))
		return affectedOr(res, err, storage.ErrExists)
	})
}

func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	u, err := scanUpload(s.r.QueryRowContext(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, storage.ErrNotFound
	}
	return u, err
}

func (s *Store) StartUpload(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uploads SET state = 1 WHERE id = ? AND state = 0`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n > 0 {
			return nil
		}
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM uploads WHERE id = ?`, id).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return storage.ErrNotFound
		}
		return storage.ErrExists
	})
}

func (s *Store) CompleteUpload(ctx context.Context, id string, t time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE uploads SET state = 2, completed = ? WHERE id = ? AND state = 1`, toMicros(t), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, id)
	return err
}

func (s *Store) OwnerUploads(ctx context.Context, owner string) ([]storage.Upload, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE owner = ? ORDER BY created, id`, owner)
	if err != nil {
		return nil, err
	}
	return scanUploads(rows)
}

func (s *Store) UploadsCompletedBefore(ctx context.Context, t time.Time, limit int) ([]storage.Upload, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+uploadColumns+` FROM uploads WHERE state = 2 AND completed < ? ORDER BY completed, id LIMIT ?`,
		toMicros(t), limit)
	if err != nil {
		return nil, err
	}
	return scanUploads(rows)
}

func (s *Store) DeleteStaleUploads(ctx context.Context, pendingBefore, startedBefore time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx,
		`DELETE FROM uploads WHERE (state = 0 AND expires < ?) OR (state = 1 AND expires < ?)`,
		toMicros(pendingBefore), toMicros(startedBefore))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) UploadStats(ctx context.Context) (storage.UploadStats, error) {
	var st storage.UploadStats
	rows, err := s.r.QueryContext(ctx,
		`SELECT owner, COUNT(*), SUM(size) FROM uploads WHERE state = 2 GROUP BY owner ORDER BY owner`)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var u storage.UploadUsage
		if err := rows.Scan(&u.Owner, &u.Files, &u.Bytes); err != nil {
			return st, err
		}
		st.Files += u.Files
		st.Bytes += u.Bytes
		st.Owners = append(st.Owners, u)
	}
	return st, rows.Err()
}
