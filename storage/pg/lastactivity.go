package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.LastActivity = (*Store)(nil)

// SetLastActivity implements storage.LastActivity.
func (s *Store) SetLastActivity(ctx context.Context, owner string, at time.Time, status string) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, owner, "SHARE"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO last_activity (owner, stamp, status) VALUES ($1, $2, $3)
			 ON CONFLICT (owner) DO UPDATE SET stamp = excluded.stamp, status = excluded.status`,
			owner, at, status)
		return err
	})
}

// LastActivity implements storage.LastActivity.
func (s *Store) LastActivity(ctx context.Context, owner string) (time.Time, string, error) {
	var at time.Time
	var status string
	err := s.queryRow(ctx, `SELECT stamp, status FROM last_activity WHERE owner = $1`, []any{owner}, &at, &status)
	if isNoRows(err) {
		return time.Time{}, "", storage.ErrNotFound
	}
	return at.UTC(), status, err
}
