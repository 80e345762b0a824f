package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strconv"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.FASTTokens = (*Store)(nil)

const fastColumns = `client_id, software, device, cur_digest, cur_mech, cur_issued, cur_expiry,
	new_digest, new_mech, new_issued, new_expiry`

func scanFASTClient(r scanner) (storage.FASTClient, error) {
	var (
		c             storage.FASTClient
		curD, newD    []byte
		curM, newM    sql.NullString
		curI, curE    sql.NullInt64
		newI, newE    sql.NullInt64
		software, dev string
		clientID      string
	)
	if err := r.Scan(&clientID, &software, &dev, &curD, &curM, &curI, &curE, &newD, &newM, &newI, &newE); err != nil {
		return c, err
	}
	c.ClientID, c.Software, c.Device = clientID, software, dev
	c.Current = fastToken(curD, curM, curI, curE)
	c.New = fastToken(newD, newM, newI, newE)
	return c, nil
}

func fastToken(d []byte, m sql.NullString, issued, expiry sql.NullInt64) *storage.FASTToken {
	if d == nil || !m.Valid {
		return nil
	}
	return &storage.FASTToken{Digest: d, Mechanism: m.String, Issued: fromMicros(issued.Int64), Expiry: fromMicros(expiry.Int64)}
}

// FASTClient implements storage.FASTTokens.
func (s *Store) FASTClient(ctx context.Context, owner, clientID string) (storage.FASTClient, error) {
	c, err := scanFASTClient(s.r.QueryRowContext(ctx,
		`SELECT `+fastColumns+` FROM fast_tokens WHERE owner = ? AND client_id = ?`, owner, clientID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, storage.ErrNotFound
	}
	return c, err
}

// IssueFASTToken implements storage.FASTTokens.
func (s *Store) IssueFASTToken(ctx context.Context, owner string, c storage.FASTClient, tok storage.FASTToken) error {
	now := toMicros(tok.Issued)
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := accountExists(ctx, tx, owner); err != nil {
			return err
		} else if !ok {
			return storage.ErrNotFound
		}
		// Expired tokens are of no use; a row with neither slot left goes.
		for _, q := range []string{
			`UPDATE fast_tokens SET cur_digest = NULL, cur_mech = NULL, cur_issued = NULL, cur_expiry = NULL
			 WHERE owner = ? AND cur_expiry <= ?`,
			`UPDATE fast_tokens SET new_digest = NULL, new_mech = NULL, new_issued = NULL, new_expiry = NULL
			 WHERE owner = ? AND new_expiry <= ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, owner, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM fast_tokens WHERE owner = ? AND cur_digest IS NULL AND new_digest IS NULL`, owner); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO fast_tokens (owner, client_id, software, device, new_digest, new_mech, new_issued, new_expiry)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (owner, client_id) DO UPDATE SET software = excluded.software, device = excluded.device,
			   new_digest = excluded.new_digest, new_mech = excluded.new_mech,
			   new_issued = excluded.new_issued, new_expiry = excluded.new_expiry`,
			owner, c.ClientID, c.Software, c.Device, blob(tok.Digest), tok.Mechanism, now, toMicros(tok.Expiry)); err != nil {
			return err
		}
		// Over the cap: forget the clients whose newest token is oldest.
		_, err := tx.ExecContext(ctx,
			`DELETE FROM fast_tokens WHERE owner = ? AND client_id IN (
			   SELECT client_id FROM fast_tokens WHERE owner = ?
			   ORDER BY MAX(COALESCE(cur_issued, 0), COALESCE(new_issued, 0)) DESC, client_id
			   LIMIT -1 OFFSET `+strconv.Itoa(storage.MaxFASTClients)+`)`, owner, owner)
		return err
	})
}

// UseFASTToken implements storage.FASTTokens.
func (s *Store) UseFASTToken(ctx context.Context, owner, clientID string, digest []byte) error {
	_, err := s.w.ExecContext(ctx,
		`UPDATE fast_tokens SET cur_digest = new_digest, cur_mech = new_mech, cur_issued = new_issued, cur_expiry = new_expiry,
		   new_digest = NULL, new_mech = NULL, new_issued = NULL, new_expiry = NULL
		 WHERE owner = ? AND client_id = ? AND new_digest = ?`, owner, clientID, blob(digest))
	return err
}

// RevokeFASTTokens implements storage.FASTTokens.
func (s *Store) RevokeFASTTokens(ctx context.Context, owner, clientID string) error {
	var err error
	if clientID == "" {
		_, err = s.w.ExecContext(ctx, `DELETE FROM fast_tokens WHERE owner = ?`, owner)
	} else {
		_, err = s.w.ExecContext(ctx, `DELETE FROM fast_tokens WHERE owner = ? AND client_id = ?`, owner, clientID)
	}
	return err
}

// FASTClients implements storage.FASTTokens.
func (s *Store) FASTClients(ctx context.Context, owner string) ([]storage.FASTClient, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+fastColumns+` FROM fast_tokens WHERE owner = ? ORDER BY client_id`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.FASTClient
	for rows.Next() {
		c, err := scanFASTClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

var _ storage.CredentialUpgrades = (*Store)(nil)

// UpgradeCredential implements storage.CredentialUpgrades.
func (s *Store) UpgradeCredential(ctx context.Context, bare string, c storage.SCRAMCredential) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := accountExists(ctx, tx, bare); err != nil {
			return err
		} else if !ok {
			return storage.ErrNotFound
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE credentials SET salt = ?, iterations = ?, stored_key = ?, server_key = ? WHERE bare = ? AND hash = ?`,
			blob(c.Salt), c.Iterations, blob(c.StoredKey), blob(c.ServerKey), bare, c.Hash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO credentials (bare, pos, hash, salt, iterations, stored_key, server_key)
			 VALUES (?, (SELECT COALESCE(MAX(pos), -1) + 1 FROM credentials WHERE bare = ?), ?, ?, ?, ?, ?)`,
			bare, bare, c.Hash, blob(c.Salt), c.Iterations, blob(c.StoredKey), blob(c.ServerKey))
		return err
	})
}
