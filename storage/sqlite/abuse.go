package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.Suspensions     = (*Store)(nil)
	_ storage.SpamReports     = (*Store)(nil)
	_ storage.AccountSettings = (*Store)(nil)
	_ storage.UsageReader     = (*Store)(nil)
)

// SuspendAccount implements storage.Suspensions.
func (s *Store) SuspendAccount(ctx context.Context, sp storage.Suspension) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := accountExists(ctx, tx, sp.Account); err != nil {
			return err
		} else if !ok {
			return storage.ErrNotFound
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO account_suspensions (owner, reason, by, since, until) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (owner) DO UPDATE SET reason = excluded.reason, by = excluded.by, since = excluded.since, until = excluded.until`,
			sp.Account, sp.Reason, sp.By, toMicros(sp.Since), expiresMicros(sp.Until))
		return err
	})
}

// UnsuspendAccount implements storage.Suspensions.
func (s *Store) UnsuspendAccount(ctx context.Context, bare string) error {
	return oneRow(s.w.ExecContext(ctx, `DELETE FROM account_suspensions WHERE owner = ?`, bare))
}

const suspensionCols = `owner, reason, by, since, until`

func scanSuspension(sc scanner) (storage.Suspension, error) {
	var sp storage.Suspension
	var since, until int64
	err := sc.Scan(&sp.Account, &sp.Reason, &sp.By, &since, &until)
	sp.Since = fromMicros(since)
	if until != 0 {
		sp.Until = fromMicros(until)
	}
	return sp, err
}

// AccountSuspension implements storage.Suspensions.
func (s *Store) AccountSuspension(ctx context.Context, bare string) (storage.Suspension, error) {
	sp, err := scanSuspension(s.r.QueryRowContext(ctx, `SELECT `+suspensionCols+` FROM account_suspensions WHERE owner = ?`, bare))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Suspension{}, storage.ErrNotFound
	}
	return sp, err
}

// ListSuspensions implements storage.Suspensions.
func (s *Store) ListSuspensions(ctx context.Context) ([]storage.Suspension, error) {
	return queryAll(ctx, s.r, `SELECT `+suspensionCols+` FROM account_suspensions ORDER BY owner`, nil, scanSuspension)
}

// AddSpamReport implements storage.SpamReports.
func (s *Store) AddSpamReport(ctx context.Context, r storage.SpamReport, max int) (int64, error) {
	ids, err := json.Marshal(nonNil(r.StanzaIDs))
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		if max > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM spam_reports WHERE owner = ?`, r.Reporter).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return storage.ErrQuotaExceeded
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO spam_reports (owner, reported, reason, text, stanza_ids, created)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			r.Reporter, r.Reported, r.Reason, r.Text, string(ids), toMicros(r.Created)).Scan(&id)
	})
	return id, err
}

// SpamReports implements storage.SpamReports.
func (s *Store) SpamReports(ctx context.Context, reported string, limit int) ([]storage.SpamReport, error) {
	if limit <= 0 {
		limit = -1
	}
	q := `SELECT id, owner, reported, reason, text, stanza_ids, created FROM spam_reports`
	args := []any{}
	if reported != "" {
		q += ` WHERE reported = ?`
		args = append(args, reported)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY created DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.SpamReport
	for rows.Next() {
		var r storage.SpamReport
		var ids string
		var created int64
		if err := rows.Scan(&r.ID, &r.Reporter, &r.Reported, &r.Reason, &r.Text, &ids, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(ids), &r.StanzaIDs); err != nil {
			return nil, err
		}
		r.Created = fromMicros(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// SpamReportCounts implements storage.SpamReports.
func (s *Store) SpamReportCounts(ctx context.Context, limit int) ([]storage.SpamReportCount, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, `SELECT reported, COUNT(*), COUNT(DISTINCT owner), MAX(created) FROM spam_reports
		GROUP BY reported ORDER BY COUNT(DISTINCT owner) DESC, COUNT(*) DESC, reported LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.SpamReportCount
	for rows.Next() {
		var c storage.SpamReportCount
		var last int64
		if err := rows.Scan(&c.Reported, &c.Reports, &c.Reporters, &last); err != nil {
			return nil, err
		}
		c.Last = fromMicros(last)
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteSpamReports implements storage.SpamReports.
func (s *Store) DeleteSpamReports(ctx context.Context, reported string) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM spam_reports WHERE reported = ?`, reported)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// AccountSetting implements storage.AccountSettings.
func (s *Store) AccountSetting(ctx context.Context, bare, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM account_settings WHERE owner = ? AND key = ?`, bare, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", storage.ErrNotFound
	}
	return v, err
}

// SetAccountSetting implements storage.AccountSettings.
func (s *Store) SetAccountSetting(ctx context.Context, bare, key, value string) error {
	if value == "" {
		_, err := s.w.ExecContext(ctx, `DELETE FROM account_settings WHERE owner = ? AND key = ?`, bare, key)
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO account_settings (owner, key, value) VALUES (?, ?, ?)
		ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value`, bare, key, value)
	return err
}

// AccountSettingsOf implements storage.AccountSettings.
func (s *Store) AccountSettingsOf(ctx context.Context, bare string) (map[string]string, error) {
	return s.stringMap(ctx, `SELECT key, value FROM account_settings WHERE owner = ?`, bare)
}

// stringMap runs a query returning key and value columns.
func (s *Store) stringMap(ctx context.Context, q string, args ...any) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// AccountUsage implements storage.UsageReader.
func (s *Store) AccountUsage(ctx context.Context, bare string) (storage.Usage, error) {
	// Archive bytes are counted (by a trigger) as rows reach the
	// archive; those still in the archive log are counted here, read
	// first: a move in between counts them twice, never not at all.
	// Quotas are checked on every offline message and PEP publish, which
	// must not wait for a move.
	logged := s.log.pendingBytes(bare)
	rows, err := s.r.QueryContext(ctx, `SELECT kind, bytes FROM account_usage WHERE owner = ?`, bare)
	if err != nil {
		return storage.Usage{}, err
	}
	defer rows.Close()
	var u storage.Usage
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			return storage.Usage{}, err
		}
		u.Set(kind, n)
	}
	u.Archive += logged
	return u, rows.Err()
}

// TrimArchive implements storage.UsageReader: it keeps the newest
// messages that fit in maxBytes and deletes the rest in one statement.
func (s *Store) TrimArchive(ctx context.Context, owner string, maxBytes int64) (int, error) {
	if err := s.log.settle(ctx, owner); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE rowid IN (
			SELECT rowid FROM (
				SELECT rowid, SUM(length(CAST(raw AS BLOB))) OVER (ORDER BY ts DESC, id DESC) AS kept
				FROM archive WHERE owner = ?)
			WHERE kept > ?)`, owner, maxBytes)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
