package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// StoreOffline checks the quota and inserts in one write transaction, so
// concurrent senders cannot together overshoot max.
func (s *Store) StoreOffline(ctx context.Context, owner string, raw []byte, stamp time.Time, max int) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if max > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM offline WHERE owner = ?`, owner).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return storage.ErrQuotaExceeded
			}
		}
		return tx.QueryRowContext(ctx,
			`INSERT INTO offline (owner, raw, stamp) VALUES (?, ?, ?) RETURNING id`,
			owner, blob(raw), toMicros(stamp)).Scan(&id)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// OfflineMessages returns the queue in arrival order. IDs grow with
// arrival, which is what DeleteOffline's upTo relies on.
func (s *Store) OfflineMessages(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, raw, stamp FROM offline WHERE owner = ? ORDER BY id`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.OfflineMessage
	for rows.Next() {
		var (
			m  storage.OfflineMessage
			us int64
		)
		if err := rows.Scan(&m.ID, &m.Raw, &us); err != nil {
			return nil, err
		}
		m.Stamp = fromMicros(us)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *Store) DeleteOffline(ctx context.Context, owner string, upTo int64) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM offline WHERE owner = ? AND id <= ?`, owner, upTo)
	return err
}

func (s *Store) CountOffline(ctx context.Context, owner string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM offline WHERE owner = ?`, owner).Scan(&n)
	return n, err
}
