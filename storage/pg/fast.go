package pg

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.FASTTokens = (*Store)(nil)

const fastColumns = `client_id, software, device, cur_digest, cur_mech, cur_issued, cur_expiry,
	new_digest, new_mech, new_issued, new_expiry`

func scanFASTClient(r pgx.Row) (storage.FASTClient, error) {
	var (
		c          storage.FASTClient
		curD, newD []byte
		curM, newM *string
		curI, curE *time.Time
		newI, newE *time.Time
	)
	if err := r.Scan(&c.ClientID, &c.Software, &c.Device, &curD, &curM, &curI, &curE, &newD, &newM, &newI, &newE); err != nil {
		return c, err
	}
	c.Current = fastToken(curD, curM, curI, curE)
	c.New = fastToken(newD, newM, newI, newE)
	return c, nil
}

func fastToken(d []byte, m *string, issued, expiry *time.Time) *storage.FASTToken {
	if d == nil || m == nil || issued == nil || expiry == nil {
		return nil
	}
	return &storage.FASTToken{Digest: d, Mechanism: *m, Issued: issued.UTC(), Expiry: expiry.UTC()}
}

// FASTClient implements storage.FASTTokens.
func (s *Store) FASTClient(ctx context.Context, owner, clientID string) (storage.FASTClient, error) {
	var c storage.FASTClient
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		c, err = scanFASTClient(s.pool.QueryRow(ctx,
			`SELECT `+fastColumns+` FROM fast_tokens WHERE owner = $1 AND client_id = $2`, owner, clientID))
		return err
	})
	if isNoRows(err) {
		return c, storage.ErrNotFound
	}
	return c, err
}

// IssueFASTToken implements storage.FASTTokens.
func (s *Store) IssueFASTToken(ctx context.Context, owner string, c storage.FASTClient, tok storage.FASTToken) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, owner, "SHARE"); err != nil {
			return err
		}
		// Expired tokens are of no use; a row with neither slot left goes.
		for _, q := range []string{
			`UPDATE fast_tokens SET cur_digest = NULL, cur_mech = NULL, cur_issued = NULL, cur_expiry = NULL
			 WHERE owner = $1 AND cur_expiry <= $2`,
			`UPDATE fast_tokens SET new_digest = NULL, new_mech = NULL, new_issued = NULL, new_expiry = NULL
			 WHERE owner = $1 AND new_expiry <= $2`,
		} {
			if _, err := tx.Exec(ctx, q, owner, tok.Issued); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx,
			`DELETE FROM fast_tokens WHERE owner = $1 AND cur_digest IS NULL AND new_digest IS NULL`, owner); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO fast_tokens (owner, client_id, software, device, new_digest, new_mech, new_issued, new_expiry)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			 ON CONFLICT (owner, client_id) DO UPDATE SET software = excluded.software, device = excluded.device,
			   new_digest = excluded.new_digest, new_mech = excluded.new_mech,
			   new_issued = excluded.new_issued, new_expiry = excluded.new_expiry`,
			owner, c.ClientID, c.Software, c.Device, blob(tok.Digest), tok.Mechanism, tok.Issued, tok.Expiry); err != nil {
			return err
		}
		// Over the cap: forget the clients whose newest token is oldest.
		_, err := tx.Exec(ctx,
			`DELETE FROM fast_tokens WHERE owner = $1 AND client_id IN (
			   SELECT client_id FROM fast_tokens WHERE owner = $1
			   ORDER BY GREATEST(cur_issued, new_issued) DESC NULLS LAST, client_id
			   OFFSET `+strconv.Itoa(storage.MaxFASTClients)+`)`, owner)
		return err
	})
}

// UseFASTToken implements storage.FASTTokens.
func (s *Store) UseFASTToken(ctx context.Context, owner, clientID string, digest []byte) error {
	_, err := s.exec(ctx,
		`UPDATE fast_tokens SET cur_digest = new_digest, cur_mech = new_mech, cur_issued = new_issued, cur_expiry = new_expiry,
		   new_digest = NULL, new_mech = NULL, new_issued = NULL, new_expiry = NULL
		 WHERE owner = $1 AND client_id = $2 AND new_digest = $3`, owner, clientID, blob(digest))
	return err
}

// RevokeFASTTokens implements storage.FASTTokens.
func (s *Store) RevokeFASTTokens(ctx context.Context, owner, clientID string) error {
	var err error
	if clientID == "" {
		_, err = s.exec(ctx, `DELETE FROM fast_tokens WHERE owner = $1`, owner)
	} else {
		_, err = s.exec(ctx, `DELETE FROM fast_tokens WHERE owner = $1 AND client_id = $2`, owner, clientID)
	}
	return err
}

// FASTClients implements storage.FASTTokens.
func (s *Store) FASTClients(ctx context.Context, owner string) ([]storage.FASTClient, error) {
	var out []storage.FASTClient
	err := s.query(ctx, `SELECT `+fastColumns+` FROM fast_tokens WHERE owner = $1 ORDER BY client_id`, []any{owner},
		func(rows pgx.Rows) error {
			c, err := scanFASTClient(rows)
			if err == nil {
				out = append(out, c)
			}
			return err
		})
	return out, err
}

// ImportFASTClient stores a client's tokens as they are, both slots
// (`parley db copy`); it reports false and changes nothing when the
// account already has a record for the client.
func (s *Store) ImportFASTClient(ctx context.Context, owner string, c storage.FASTClient) (bool, error) {
	slot := func(t *storage.FASTToken) (d []byte, m *string, issued, expiry *time.Time) {
		if t == nil {
			return nil, nil, nil, nil
		}
		return blob(t.Digest), &t.Mechanism, &t.Issued, &t.Expiry
	}
	cd, cm, ci, ce := slot(c.Current)
	nd, nm, ni, ne := slot(c.New)
	n, err := s.exec(ctx,
		`INSERT INTO fast_tokens (owner, client_id, software, device, cur_digest, cur_mech, cur_issued, cur_expiry,
		   new_digest, new_mech, new_issued, new_expiry)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		 ON CONFLICT (owner, client_id) DO NOTHING`,
		owner, c.ClientID, c.Software, c.Device, cd, cm, ci, ce, nd, nm, ni, ne)
	return n > 0, err
}

var _ storage.CredentialUpgrades = (*Store)(nil)

// lockAccount locks the account's row FOR mode (UPDATE or SHARE), so the
// write cannot interleave with a DeleteAccount; storage.ErrNotFound when
// there is no such account.
func lockAccount(ctx context.Context, tx pgx.Tx, bare, mode string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE bare = $1 FOR `+mode, bare).Scan(&one)
	if isNoRows(err) {
		return storage.ErrNotFound
	}
	return err
}

// UpgradeCredential implements storage.CredentialUpgrades.
func (s *Store) UpgradeCredential(ctx context.Context, bare string, c storage.SCRAMCredential) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, bare, "UPDATE"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx,
			`UPDATE credentials SET salt = $1, iterations = $2, stored_key = $3, server_key = $4 WHERE bare = $5 AND hash = $6`,
			blob(c.Salt), c.Iterations, blob(c.StoredKey), blob(c.ServerKey), bare, c.Hash)
		if err != nil || tag.RowsAffected() > 0 {
			return err
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO credentials (bare, pos, hash, salt, iterations, stored_key, server_key)
			 VALUES ($1, (SELECT COALESCE(MAX(pos), -1) + 1 FROM credentials WHERE bare = $1), $2, $3, $4, $5, $6)`,
			bare, c.Hash, blob(c.Salt), c.Iterations, blob(c.StoredKey), blob(c.ServerKey))
		return err
	})
}
