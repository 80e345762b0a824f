package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

// offlineLockClass is the first key of the per-owner advisory lock of
// StoreOffline (the second is a hash of the owner).
const offlineLockClass = 0x4f66666c // "Offl"

// StoreOffline holds a per-owner advisory lock for its (implicit)
// transaction, which
// gives PostgreSQL what SQLite's single writer gives for free:
//
//   - the quota check and the insert are atomic, so concurrent senders
//     cannot together overshoot max;
//   - one owner's IDs are handed out in commit order, so a reader never
//     sees a message with a higher ID while one with a lower ID is still
//     uncommitted; DeleteOffline(upTo) computed from what the reader saw
//     then cannot delete a message it has not seen.
//
// Different owners do not wait for each other (barring hash collisions).
func (s *Store) StoreOffline(ctx context.Context, owner string, raw []byte, stamp time.Time, max int) (int64, error) {
	var id int64
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, offlineLockClass, owner)
	// The conditional insert returns no row when the quota is full. Its
	// snapshot is taken after the lock was granted, so it counts every
	// message committed by the owner's previous StoreOffline.
	b.Queue(`INSERT INTO offline (owner, raw, stamp)
		 SELECT $1, $2, $3
		 WHERE $4::integer <= 0 OR (SELECT COUNT(*) FROM offline WHERE owner = $1) < $4::integer
		 RETURNING id`,
		owner, blob(raw), micros(stamp), max)
	err := s.batch(ctx, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		err := br.QueryRow().Scan(&id)
		if isNoRows(err) {
			return storage.ErrQuotaExceeded
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// OfflineMessages returns the queue in arrival order. IDs grow with
// arrival, which is what DeleteOffline's upTo relies on.
func (s *Store) OfflineMessages(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	var out []storage.OfflineMessage
	err := s.query(ctx, `SELECT id, raw, stamp FROM offline WHERE owner = $1 ORDER BY id`, []any{owner},
		func(rows pgx.Rows) error {
			var m storage.OfflineMessage
			if err := rows.Scan(&m.ID, &m.Raw, &m.Stamp); err != nil {
				return err
			}
			m.Stamp = m.Stamp.UTC()
			out = append(out, m)
			return nil
		})
	return out, err
}

func (s *Store) DeleteOffline(ctx context.Context, owner string, upTo int64) error {
	_, err := s.exec(ctx, `DELETE FROM offline WHERE owner = $1 AND id <= $2`, owner, upTo)
	return err
}

func (s *Store) CountOffline(ctx context.Context, owner string) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM offline WHERE owner = $1`, []any{owner}, &n)
	return n, err
}
