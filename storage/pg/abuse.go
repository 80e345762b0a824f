package pg

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.Suspensions     = (*Store)(nil)
	_ storage.SpamReports     = (*Store)(nil)
	_ storage.AccountSettings = (*Store)(nil)
	_ storage.UsageReader     = (*Store)(nil)
)

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	m := micros(t)
	return &m
}

// SuspendAccount implements storage.Suspensions.
func (s *Store) SuspendAccount(ctx context.Context, sp storage.Suspension) error {
	n, err := s.exec(ctx, `INSERT INTO account_suspensions (owner, reason, by, since, until)
		SELECT bare, $2, $3, $4, $5 FROM accounts WHERE bare = $1
		ON CONFLICT (owner) DO UPDATE SET reason = excluded.reason, by = excluded.by, since = excluded.since, until = excluded.until`,
		sp.Account, sp.Reason, sp.By, micros(sp.Since), optionalTime(sp.Until))
	if err == nil && n == 0 {
		return storage.ErrNotFound
	}
	return err
}

// UnsuspendAccount implements storage.Suspensions.
func (s *Store) UnsuspendAccount(ctx context.Context, bare string) error {
	n, err := s.exec(ctx, `DELETE FROM account_suspensions WHERE owner = $1`, bare)
	if err == nil && n == 0 {
		return storage.ErrNotFound
	}
	return err
}

const suspensionCols = `owner, reason, by, since, until`

func scanSuspension(sc interface{ Scan(...any) error }) (storage.Suspension, error) {
	var sp storage.Suspension
	var until *time.Time
	err := sc.Scan(&sp.Account, &sp.Reason, &sp.By, &sp.Since, &until)
	sp.Since = sp.Since.UTC()
	if until != nil {
		sp.Until = until.UTC()
	}
	return sp, err
}

// AccountSuspension implements storage.Suspensions.
func (s *Store) AccountSuspension(ctx context.Context, bare string) (storage.Suspension, error) {
	var sp storage.Suspension
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		sp, err = scanSuspension(s.pool.QueryRow(ctx, `SELECT `+suspensionCols+` FROM account_suspensions WHERE owner = $1`, bare))
		return err
	})
	if isNoRows(err) {
		return storage.Suspension{}, storage.ErrNotFound
	}
	return sp, err
}

// ListSuspensions implements storage.Suspensions.
func (s *Store) ListSuspensions(ctx context.Context) ([]storage.Suspension, error) {
	var out []storage.Suspension
	err := s.query(ctx, `SELECT `+suspensionCols+` FROM account_suspensions ORDER BY owner`, nil, func(rows pgx.Rows) error {
		sp, err := scanSuspension(rows)
		out = append(out, sp)
		return err
	})
	return out, err
}

// AddSpamReport implements storage.SpamReports. The reporter's row lock
// on accounts (or, for a reporter without account, none) is not needed:
// the count is a bound against floods, off by a few under concurrency.
func (s *Store) AddSpamReport(ctx context.Context, r storage.SpamReport, max int) (int64, error) {
	var id int64
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if max > 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM spam_reports WHERE owner = $1`, r.Reporter).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return storage.ErrQuotaExceeded
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO spam_reports (owner, reported, reason, text, stanza_ids, created)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			r.Reporter, r.Reported, r.Reason, r.Text, nonNil(r.StanzaIDs), micros(r.Created)).Scan(&id)
	})
	return id, err
}

// SpamReports implements storage.SpamReports.
func (s *Store) SpamReports(ctx context.Context, reported string, limit int) ([]storage.SpamReport, error) {
	q := `SELECT id, owner, reported, reason, text, stanza_ids, created FROM spam_reports`
	var args []any
	if reported != "" {
		q += ` WHERE reported = $1`
		args = append(args, reported)
	}
	q += ` ORDER BY created DESC, id DESC`
	if limit > 0 {
		args = append(args, limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	var out []storage.SpamReport
	err := s.query(ctx, q, args, func(rows pgx.Rows) error {
		var r storage.SpamReport
		err := rows.Scan(&r.ID, &r.Reporter, &r.Reported, &r.Reason, &r.Text, &r.StanzaIDs, &r.Created)
		r.Created = r.Created.UTC()
		out = append(out, r)
		return err
	})
	return out, err
}

// SpamReportCounts implements storage.SpamReports.
func (s *Store) SpamReportCounts(ctx context.Context, limit int) ([]storage.SpamReportCount, error) {
	q := `SELECT reported, COUNT(*), COUNT(DISTINCT owner), MAX(created) FROM spam_reports
		GROUP BY reported ORDER BY COUNT(DISTINCT owner) DESC, COUNT(*) DESC, reported`
	var args []any
	if limit > 0 {
		q += ` LIMIT $1`
		args = append(args, limit)
	}
	var out []storage.SpamReportCount
	err := s.query(ctx, q, args, func(rows pgx.Rows) error {
		var c storage.SpamReportCount
		err := rows.Scan(&c.Reported, &c.Reports, &c.Reporters, &c.Last)
		c.Last = c.Last.UTC()
		out = append(out, c)
		return err
	})
	return out, err
}

// DeleteSpamReports implements storage.SpamReports.
func (s *Store) DeleteSpamReports(ctx context.Context, reported string) (int, error) {
	n, err := s.exec(ctx, `DELETE FROM spam_reports WHERE reported = $1`, reported)
	return int(n), err
}

// AccountSetting implements storage.AccountSettings.
func (s *Store) AccountSetting(ctx context.Context, bare, key string) (string, error) {
	var v string
	err := s.queryRow(ctx, `SELECT value FROM account_settings WHERE owner = $1 AND key = $2`, []any{bare, key}, &v)
	if isNoRows(err) {
		return "", storage.ErrNotFound
	}
	return v, err
}

// SetAccountSetting implements storage.AccountSettings.
func (s *Store) SetAccountSetting(ctx context.Context, bare, key, value string) error {
	if value == "" {
		_, err := s.exec(ctx, `DELETE FROM account_settings WHERE owner = $1 AND key = $2`, bare, key)
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO account_settings (owner, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value`, bare, key, value)
	return err
}

// AccountSettingsOf implements storage.AccountSettings.
func (s *Store) AccountSettingsOf(ctx context.Context, bare string) (map[string]string, error) {
	return s.stringMap(ctx, `SELECT key, value FROM account_settings WHERE owner = $1`, bare)
}

// stringMap runs a query returning key and value columns.
func (s *Store) stringMap(ctx context.Context, q string, args ...any) (map[string]string, error) {
	out := map[string]string{}
	err := s.query(ctx, q, args, func(rows pgx.Rows) error {
		var k, v string
		err := rows.Scan(&k, &v)
		out[k] = v
		return err
	})
	return out, err
}

// AccountUsage implements storage.UsageReader.
func (s *Store) AccountUsage(ctx context.Context, bare string) (storage.Usage, error) {
	var u storage.Usage
	err := s.query(ctx, `SELECT kind, bytes FROM account_usage WHERE owner = $1`, []any{bare}, func(rows pgx.Rows) error {
		var kind string
		var n int64
		err := rows.Scan(&kind, &n)
		u.Set(kind, n)
		return err
	})
	return u, err
}

// TrimArchive implements storage.UsageReader: it keeps the newest
// messages that fit in maxBytes and deletes the rest in one statement.
func (s *Store) TrimArchive(ctx context.Context, owner string, maxBytes int64) (int, error) {
	n, err := s.exec(ctx, `DELETE FROM archive a USING (
			SELECT id, ts FROM (
				SELECT id, ts, SUM(octet_length(raw)) OVER (ORDER BY ts DESC, id DESC) AS kept
				FROM archive WHERE owner = $1) w
			WHERE kept > $2) d
		WHERE a.owner = $1 AND a.id = d.id AND a.ts = d.ts`, owner, maxBytes)
	return int(n), err
}
