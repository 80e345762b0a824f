package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.PushJobs = (*Store)(nil)

// EnqueuePushJob inserts a job and returns its rowid.
func (s *Store) EnqueuePushJob(ctx context.Context, j storage.PushJob) (int64, error) {
	res, err := s.w.ExecContext(ctx,
		`INSERT INTO push_jobs (owner, jid, node, reg_created, payload, due, attempts, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		j.Owner, j.JID, j.Node, toMicros(j.RegCreated), blob(j.Payload), toMicros(j.Due), j.Attempts, toMicros(j.Created))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (s *Store) DuePushJobs(ctx context.Context, now time.Time, limit int) ([]storage.PushJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	return pushJobs(ctx, s.r,
		`SELECT id, owner, jid, node, reg_created, payload, due, attempts, created FROM push_jobs
		 WHERE due <= ? ORDER BY due, id LIMIT ?`, toMicros(now), limit)
}

// ClaimPushJobs leases due jobs in one statement on the writer, so two
// claims never see the same job as due.
func (s *Store) ClaimPushJobs(ctx context.Context, now, until time.Time, limit int) ([]storage.PushJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	return pushJobs(ctx, s.w,
		`UPDATE push_jobs SET due = ?
		 WHERE id IN (SELECT id FROM push_jobs WHERE due <= ? ORDER BY due, id LIMIT ?)
		 RETURNING id, owner, jid, node, reg_created, payload, due, attempts, created`,
		toMicros(until), toMicros(now), limit)
}

func pushJobs(ctx context.Context, db *sql.DB, query string, args ...any) ([]storage.PushJob, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.PushJob
	for rows.Next() {
		var (
			j                storage.PushJob
			reg, due, create int64
		)
		if err := rows.Scan(&j.ID, &j.Owner, &j.JID, &j.Node, &reg, &j.Payload, &due, &j.Attempts, &create); err != nil {
			return nil, err
		}
		j.RegCreated, j.Due, j.Created = fromMicros(reg), fromMicros(due), fromMicros(create)
		out = append(out, j)
	}
	return out, rows.Err()
}

func (s *Store) RescheduleJob(ctx context.Context, id int64, next time.Time, attempts int) error {
	_, err := s.w.ExecContext(ctx, `UPDATE push_jobs SET due = ?, attempts = ? WHERE id = ?`, toMicros(next), attempts, id)
	return err
}

func (s *Store) DeleteJob(ctx context.Context, id int64) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM push_jobs WHERE id = ?`, id)
	return err
}
