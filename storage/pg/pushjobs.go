package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.PushJobs = (*Store)(nil)

// EnqueuePushJob inserts a job and returns its identity.
func (s *Store) EnqueuePushJob(ctx context.Context, j storage.PushJob) (int64, error) {
	var id int64
	err := s.queryRow(ctx,
		`INSERT INTO push_jobs (owner, jid, node, reg_created, payload, due, attempts, created)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		[]any{j.Owner, j.JID, j.Node, micros(j.RegCreated), blob(j.Payload), micros(j.Due), j.Attempts, micros(j.Created)}, &id)
	return id, err
}

func (s *Store) DuePushJobs(ctx context.Context, now time.Time, limit int) ([]storage.PushJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []storage.PushJob
	err := s.query(ctx,
		`SELECT id, owner, jid, node, reg_created, payload, due, attempts, created FROM push_jobs
		 WHERE due <= $1 ORDER BY due, id LIMIT $2`,
		[]any{micros(now), limit}, func(rows pgx.Rows) error {
			var j storage.PushJob
			if err := rows.Scan(&j.ID, &j.Owner, &j.JID, &j.Node, &j.RegCreated, &j.Payload, &j.Due, &j.Attempts, &j.Created); err != nil {
				return err
			}
			j.RegCreated, j.Due, j.Created = j.RegCreated.UTC(), j.Due.UTC(), j.Created.UTC()
			out = append(out, j)
			return nil
		})
	return out, err
}

func (s *Store) RescheduleJob(ctx context.Context, id int64, next time.Time, attempts int) error {
	_, err := s.exec(ctx, `UPDATE push_jobs SET due = $1, attempts = $2 WHERE id = $3`, micros(next), attempts, id)
	return err
}

func (s *Store) DeleteJob(ctx context.Context, id int64) error {
	_, err := s.exec(ctx, `DELETE FROM push_jobs WHERE id = $1`, id)
	return err
}
