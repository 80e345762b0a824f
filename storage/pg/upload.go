package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.Uploads = (*Store)(nil)

// uploadLockClass is the first key of the per-owner advisory lock of
// CreateUpload (the second is a hash of the owner).
const uploadLockClass = 0x55706c64 // "Upld"

const uploadColumns = `id, owner, filename, size, content_type, state, created, expires, completed`

func scanUpload(row pgx.Row) (storage.Upload, error) {
	var (
		u         storage.Upload
		state     int16
		completed *time.Time
	)
	if err := row.Scan(&u.ID, &u.Owner, &u.Filename, &u.Size, &u.ContentType, &state, &u.Created, &u.Expires, &completed); err != nil {
		return u, err
	}
	u.State = storage.UploadState(state)
	u.Created, u.Expires = u.Created.UTC(), u.Expires.UTC()
	if completed != nil {
		u.Completed = completed.UTC()
	}
	return u, nil
}

func (s *Store) uploads(ctx context.Context, sql string, args ...any) ([]storage.Upload, error) {
	var out []storage.Upload
	err := s.query(ctx, sql, args, func(rows pgx.Rows) error {
		u, err := scanUpload(rows)
		if err != nil {
			return err
		}
		out = append(out, u)
		return nil
	})
	return out, err
}

// CreateUpload checks the quota and inserts the slot under a per-owner
// advisory lock, so concurrent requests of one owner cannot both pass.
func (s *Store) CreateUpload(ctx context.Context, u storage.Upload, quota int64) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if quota > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, uploadLockClass, u.Owner); err != nil {
				return err
			}
			var used int64
			if err := tx.QueryRow(ctx,
				`SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = $1 AND (state <> 0 OR expires > $2)`,
				u.Owner, micros(u.Created)).Scan(&used); err != nil {
				return err
			}
			if used+u.Size > quota {
				return storage.ErrQuotaExceeded
			}
		}
		tag, err := tx.Exec(ctx,
			`INSERT INTO uploads (`+uploadColumns+`) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, NULL) ON CONFLICT DO NOTHING`,
			u.ID, u.Owner, u.Filename, u.Size, u.ContentType, micros(u.Created), micros(u.Expires))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		return nil
	})
}

func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	var u storage.Upload
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		u, err = scanUpload(s.pool.QueryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, id))
		return err
	})
	if isNoRows(err) {
		return storage.Upload{}, storage.ErrNotFound
	}
	return u, err
}

// StartUpload claims a pending slot. The UPDATE locks the row, so of two
// concurrent PUTs exactly one succeeds.
func (s *Store) StartUpload(ctx context.Context, id string) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE uploads SET state = 1 WHERE id = $1 AND state = 0`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM uploads WHERE id = $1)`, id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return storage.ErrNotFound
		}
		return storage.ErrExists
	})
}

func (s *Store) CompleteUpload(ctx context.Context, id string, t time.Time) error {
	k, err := s.exec(ctx, `UPDATE uploads SET state = 2, completed = $1 WHERE id = $2 AND state = 1`, micros(t), id)
	return affectedOne(k, err)
}

func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM uploads WHERE id = $1`, id)
	return err
}

func (s *Store) OwnerUploads(ctx context.Context, owner string) ([]storage.Upload, error) {
	return s.uploads(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE owner = $1 ORDER BY created, id`, owner)
}

func (s *Store) UploadsCompletedBefore(ctx context.Context, t time.Time, limit int) ([]storage.Upload, error) {
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = int64(limit)
	}
	return s.uploads(ctx,
		`SELECT `+uploadColumns+` FROM uploads WHERE state = 2 AND completed < $1 ORDER BY completed, id LIMIT $2::bigint`,
		micros(t), lim)
}

func (s *Store) DeleteStaleUploads(ctx context.Context, pendingBefore, startedBefore time.Time) (int, error) {
	n, err := s.exec(ctx,
		`DELETE FROM uploads WHERE (state = 0 AND expires < $1) OR (state = 1 AND expires < $2)`,
		micros(pendingBefore), micros(startedBefore))
	return int(n), err
}

func (s *Store) UploadStats(ctx context.Context) (storage.UploadStats, error) {
	var st storage.UploadStats
	err := s.query(ctx, `SELECT owner, COUNT(*), SUM(size) FROM uploads WHERE state = 2 GROUP BY owner ORDER BY owner`, nil,
		func(rows pgx.Rows) error {
			var u storage.UploadUsage
			if err := rows.Scan(&u.Owner, &u.Files, &u.Bytes); err != nil {
				return err
			}
			st.Files += u.Files
			st.Bytes += u.Bytes
			st.Owners = append(st.Owners, u)
			return nil
		})
	return st, err
}
