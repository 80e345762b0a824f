package pg

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

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

// CreateAccount inserts the account and its credentials in one
// transaction. Of several concurrent calls for one name exactly one wins;
// the others wait for it on the primary key and get ErrExists.
func (s *Store) CreateAccount(ctx context.Context, bare string, creds []storage.SCRAMCredential) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO accounts (bare, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			bare, domainOf(bare))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		return insertCredentials(ctx, tx, bare, creds)
	})
}

// SetCredentials locks the account row, so it cannot interleave with a
// DeleteAccount or another SetCredentials.
func (s *Store) SetCredentials(ctx context.Context, bare string, creds []storage.SCRAMCredential) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, bare, "UPDATE"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM credentials WHERE bare = $1`, bare); err != nil {
			return err
		}
		// FAST tokens (XEP-0484) must not outlive the password they
		// were obtained with.
		if _, err := tx.Exec(ctx, `DELETE FROM fast_tokens WHERE owner = $1`, bare); err != nil {
			return err
		}
		return insertCredentials(ctx, tx, bare, creds)
	})
}

// insertCredentials inserts all of creds with one statement.
func insertCredentials(ctx context.Context, tx pgx.Tx, bare string, creds []storage.SCRAMCredential) error {
	if len(creds) == 0 {
		return nil
	}
	var (
		hashes           = make([]string, len(creds))
		salts, stored    = make([][]byte, len(creds)), make([][]byte, len(creds))
		server           = make([][]byte, len(creds))
		iterations, poss = make([]int32, len(creds)), make([]int32, len(creds))
	)
	for i, c := range creds {
		hashes[i], salts[i], stored[i], server[i] = c.Hash, blob(c.Salt), blob(c.StoredKey), blob(c.ServerKey)
		iterations[i], poss[i] = int32(c.Iterations), int32(i)
	}
	_, err := tx.Exec(ctx,
		`INSERT INTO credentials (bare, pos, hash, salt, iterations, stored_key, server_key)
		 SELECT $1::text, * FROM unnest($2::integer[], $3::text[], $4::bytea[], $5::integer[], $6::bytea[], $7::bytea[])`,
		bare, poss, hashes, salts, iterations, stored, server)
	return err
}

// Credentials returns the credentials in the order they were given. One
// statement, so the account check and the credentials see one snapshot.
func (s *Store) Credentials(ctx context.Context, bare string) ([]storage.SCRAMCredential, error) {
	var (
		creds []storage.SCRAMCredential
		found bool
	)
	err := s.query(ctx,
		`SELECT c.hash, c.salt, c.iterations, c.stored_key, c.server_key
		 FROM accounts a LEFT JOIN credentials c ON c.bare = a.bare
		 WHERE a.bare = $1 ORDER BY c.pos`, []any{bare},
		func(rows pgx.Rows) error {
			found = true
			var (
				hash       *string
				iterations *int32
				c          storage.SCRAMCredential
			)
			if err := rows.Scan(&hash, &c.Salt, &iterations, &c.StoredKey, &c.ServerKey); err != nil {
				return err
			}
			if hash == nil { // the account has no credentials
				return nil
			}
			c.Hash, c.Iterations = *hash, int(*iterations)
			creds = append(creds, c)
			return nil
		})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, storage.ErrNotFound
	}
	return creds, nil
}

func (s *Store) AccountExists(ctx context.Context, bare string) (bool, error) {
	var ok bool
	err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE bare = $1)`, []any{bare}, &ok)
	return ok, err
}

// ownedTables hold per-user rows keyed by owner; credentials go with the
// accounts row through ON DELETE CASCADE.
var ownedTables = []string{
	"roster_items", "roster_versions", "pending_in", "offline", "vcards", "blocklist",
	"archive", "archive_prefs", "push_registrations", "pep_items", "pep_nodes", "private_xml", "push_jobs",
	"invites", "account_roles", "account_suspensions", "spam_reports", "account_settings", "account_usage",
}

// DeleteAccount removes the account and everything it owns in one
// transaction.
func (s *Store) DeleteAccount(ctx context.Context, bare string) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM accounts WHERE bare = $1`, bare)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		b := &pgx.Batch{}
		for _, table := range ownedTables {
			b.Queue(`DELETE FROM `+table+` WHERE owner = $1`, bare)
		}
		// The user's standing in rooms (member, owner, registered nick).
		b.Queue(`DELETE FROM muc_affiliations WHERE jid = $1`, bare)
		return tx.SendBatch(ctx, b).Close()
	})
}

// ListAccounts lists bare JIDs in byte order.
func (s *Store) ListAccounts(ctx context.Context, domain string) ([]string, error) {
	sql, args := `SELECT bare FROM accounts ORDER BY bare`, []any(nil)
	if domain != "" {
		sql, args = `SELECT bare FROM accounts WHERE domain = $1 ORDER BY bare`, []any{domain}
	}
	return s.strings(ctx, sql, args...)
}

// strings runs a query returning one text column.
func (s *Store) strings(ctx context.Context, sql string, args ...any) ([]string, error) {
	var out []string
	err := s.query(ctx, sql, args, func(rows pgx.Rows) error {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}
