package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.LastActivity = (*Store)(nil)

// SetLastActivity implements storage.LastActivity.
func (s *Store) SetLastActivity(ctx context.Context, owner string, at time.Time, status string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := accountExists(ctx, tx, owner); err != nil {
			return err
		} else if !ok {
			return storage.ErrNotFound
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO last_activity (owner, stamp, status) VALUES (?, ?, ?)
			 ON CONFLICT (owner) DO UPDATE SET stamp = excluded.stamp, status = excluded.status`,
			owner, toMicros(at), status)
		return err
	})
}

// LastActivity implements storage.LastActivity.
func (s *Store) LastActivity(ctx context.Context, owner string) (time.Time, string, error) {
	var us int64
	var status string
	err := s.r.QueryRowContext(ctx, `SELECT stamp, status FROM last_activity WHERE owner = ?`, owner).Scan(&us, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", storage.ErrNotFound
	}
	if err != nil {
		return time.Time{}, "", err
	}
	return fromMicros(us), status, nil
}
