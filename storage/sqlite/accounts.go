package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/parley-xmpp/parley/storage"
)

// domainOf returns the domainpart of a bare JID; a JID without a localpart
// is all domain.
func domainOf(bare string) string {
	if i := strings.LastIndexByte(bare, '@'); i >= 0 {
		return bare[i+1:]
	}
	return bare
}

func (s *Store) CreateAccount(ctx context.Context, bare string, creds []storage.SCRAMCredential) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO accounts (bare, domain) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			bare, domainOf(bare))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrExists
		}
		return insertCredentials(ctx, tx, bare, creds)
	})
}

func (s *Store) SetCredentials(ctx context.Context, bare string, creds []storage.SCRAMCredential) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := accountExists(ctx, tx, bare); err != nil {
			return err
		} else if !ok {
			return storage.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE bare = ?`, bare); err != nil {
			return err
		}
		// FAST tokens (XEP-0484) must not outlive the password they
		// were obtained with.
		if _, err := tx.ExecContext(ctx, `DELETE FROM fast_tokens WHERE owner = ?`, bare); err != nil {
			return err
		}
		return insertCredentials(ctx, tx, bare, creds)
	})
}

func insertCredentials(ctx context.Context, tx *sql.Tx, bare string, creds []storage.SCRAMCredential) error {
	for i, c := range creds {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO credentials (bare, pos, hash, salt, iterations, stored_key, server_key)
			 VALUES (?, ?, ?, ?, ?, ?, ?)`,
			bare, i, c.Hash, blob(c.Salt), c.Iterations, blob(c.StoredKey), blob(c.ServerKey)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) Credentials(ctx context.Context, bare string) ([]storage.SCRAMCredential, error) {
	// One statement (one snapshot, no transaction to begin and end): the
	// account's row, joined with its credentials if it has any. Every
	// login asks.
	rows, err := s.r.QueryContext(ctx,
		`SELECT c.hash, COALESCE(c.salt, x''), COALESCE(c.iterations, 0), COALESCE(c.stored_key, x''), COALESCE(c.server_key, x'')
		 FROM accounts a LEFT JOIN credentials c ON c.bare = a.bare
		 WHERE a.bare = ? ORDER BY c.pos`, bare)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	var creds []storage.SCRAMCredential
	for rows.Next() {
		found = true
		var hash sql.NullString
		var c storage.SCRAMCredential
		if err := rows.Scan(&hash, &c.Salt, &c.Iterations, &c.StoredKey, &c.ServerKey); err != nil {
			return nil, err
		}
		if hash.Valid { // NULL: an account without credentials
			c.Hash = hash.String
			creds = append(creds, c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, storage.ErrNotFound
	}
	return creds, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func accountExists(ctx context.Context, q querier, bare string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE bare = ?`, bare).Scan(&n)
	return n > 0, err
}

func (s *Store) AccountExists(ctx context.Context, bare string) (bool, error) {
	return accountExists(ctx, s.r, bare)
}

// ownedTables hold per-user rows keyed by owner; credentials go with the
// accounts row through ON DELETE CASCADE.
var ownedTables = []string{"roster_items", "roster_versions", "pending_in", "offline", "vcards", "blocklist", "archive", "archive_prefs", "push_registrations", "pep_items", "pep_nodes", "private_xml", "push_jobs", "invites", "account_roles", "account_suspensions", "spam_reports", "account_settings", "account_usage"}

func (s *Store) DeleteAccount(ctx context.Context, bare string) error {
	// The owner's rows in the archive log first, as in DeleteArchive.
	if err := s.log.deleteOwner(ctx, bare); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE bare = ?`, bare)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		for _, table := range ownedTables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE owner = ?`, bare); err != nil {
				return err
			}
		}
		// The user's standing in rooms (member, owner, registered nick).
		_, err = tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE jid = ?`, bare)
		return err
	})
}

func (s *Store) ListAccounts(ctx context.Context, domain string) ([]string, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if domain == "" {
		rows, err = s.r.QueryContext(ctx, `SELECT bare FROM accounts ORDER BY bare`)
	} else {
		rows, err = s.r.QueryContext(ctx, `SELECT bare FROM accounts WHERE domain = ? ORDER BY bare`, domain)
	}
	if err != nil {
		return nil, err
	}
	return scanStrings(rows)
}

func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
