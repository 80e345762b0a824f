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
	return s.pushJobs(ctx,
		`SELECT id, owner, jid, node, reg_created, payload, due, attempts, created FROM push_jobs
		 WHERE due <= $1 ORDER BY due, id LIMIT $2`,
		micros(now), limit)
}

// ClaimPushJobs leases due jobs in one statement. FOR UPDATE SKIP LOCKED
// makes concurrent claimers (other nodes on the same database) pass over
// the rows one of them is taking instead of waiting for them and then
// taking them again.
func (s *Store) ClaimPushJobs(ctx context.Context, now, until time.Time, limit int) ([]storage.PushJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.pushJobs(ctx,
		`UPDATE push_jobs SET due = $2
		 WHERE id IN (SELECT id FROM push_jobs WHERE due <= $1 ORDER BY due, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		 RETURNING id, owner, jid, node, reg_created, payload, due, attempts, created`,
		micros(now), micros(until), limit)
}

func (s *Store) pushJobs(ctx context.Context, sql string, args ...any) ([]storage.PushJob, error) {
	var out []storage.PushJob
	err := s.query(ctx, sql, args, func(rows pgx.Rows) error {
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
