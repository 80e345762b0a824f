package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.Invites   = (*Store)(nil)
	_ storage.Roles     = (*Store)(nil)
	_ storage.Settings  = (*Store)(nil)
	_ storage.APITokens = (*Store)(nil)
)

const inviteCols = `id, token_hash, domain, username, owner, admin, created, expires, uses_left`

func scanInvite(sc scanner) (storage.Invite, error) {
	var inv storage.Invite
	var admin int
	var created, expires int64
	err := sc.Scan(&inv.ID, &inv.TokenHash, &inv.Domain, &inv.Username, &inv.Owner, &admin, &created, &expires, &inv.UsesLeft)
	inv.Admin = admin != 0
	inv.Created = fromMicros(created)
	if expires != 0 {
		inv.Expires = fromMicros(expires)
	}
	return inv, err
}

func expiresMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return toMicros(t)
}

func insertInvite(ctx context.Context, tx *sql.Tx, inv storage.Invite) error {
	admin := 0
	if inv.Admin {
		admin = 1
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO invites (`+inviteCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, blob(inv.TokenHash), inv.Domain, inv.Username, inv.Owner, admin, toMicros(inv.Created),
		expiresMicros(inv.Expires), inv.UsesLeft)
	return err
}

// CreateInvite implements storage.Invites.
func (s *Store) CreateInvite(ctx context.Context, inv storage.Invite) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM invites WHERE id = ? OR token_hash = ?`, inv.ID, blob(inv.TokenHash)).Scan(&one)
		if err == nil {
			return storage.ErrExists
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return insertInvite(ctx, tx, inv)
	})
}

// InviteByHash implements storage.Invites.
func (s *Store) InviteByHash(ctx context.Context, hash []byte) (storage.Invite, error) {
	inv, err := scanInvite(s.r.QueryRowContext(ctx, `SELECT `+inviteCols+` FROM invites WHERE token_hash = ?`, blob(hash)))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Invite{}, storage.ErrNotFound
	}
	return inv, err
}

// ListInvites implements storage.Invites.
func (s *Store) ListInvites(ctx context.Context, domain string) ([]storage.Invite, error) {
	q, args := `SELECT `+inviteCols+` FROM invites ORDER BY created DESC, id`, []any(nil)
	if domain != "" {
		q, args = `SELECT `+inviteCols+` FROM invites WHERE domain = ? ORDER BY created DESC, id`, []any{domain}
	}
	return queryAll(ctx, s.r, q, args, scanInvite)
}

// DeleteInvite implements storage.Invites.
func (s *Store) DeleteInvite(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "invites", id)
}

// UseInvite implements storage.Invites.
func (s *Store) UseInvite(ctx context.Context, hash []byte, now time.Time) (storage.Invite, error) {
	var inv storage.Invite
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		inv, err = scanInvite(tx.QueryRowContext(ctx, `SELECT `+inviteCols+` FROM invites WHERE token_hash = ?`, blob(hash)))
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		if inv.UsesLeft <= 0 || (!inv.Expires.IsZero() && !now.Before(inv.Expires)) {
			return storage.ErrNotFound
		}
		if inv.UsesLeft == 1 {
			_, err = tx.ExecContext(ctx, `DELETE FROM invites WHERE id = ?`, inv.ID)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE invites SET uses_left = uses_left - 1 WHERE id = ?`, inv.ID)
		}
		return err
	})
	return inv, err
}

// ReturnInvite implements storage.Invites.
func (s *Store) ReturnInvite(ctx context.Context, inv storage.Invite) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE invites SET uses_left = uses_left + 1 WHERE id = ?`, inv.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		inv.UsesLeft = 1
		return insertInvite(ctx, tx, inv)
	})
}

// DeleteExpiredInvites implements storage.Invites.
func (s *Store) DeleteExpiredInvites(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM invites WHERE expires <> 0 AND expires <= ?`, toMicros(now))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// GrantRole implements storage.Roles.
func (s *Store) GrantRole(ctx context.Context, bare, role string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO account_roles (owner, role) VALUES (?, ?) ON CONFLICT DO NOTHING`, bare, role)
	return err
}

// RevokeRole implements storage.Roles.
func (s *Store) RevokeRole(ctx context.Context, bare, role string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM account_roles WHERE owner = ? AND role = ?`, bare, role)
	return err
}

// HasRole implements storage.Roles.
func (s *Store) HasRole(ctx context.Context, bare, role string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM account_roles WHERE owner = ? AND role = ?`, bare, role).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// RoleMembers implements storage.Roles.
func (s *Store) RoleMembers(ctx context.Context, role string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT owner FROM account_roles WHERE role = ? ORDER BY owner`, role)
	if err != nil {
		return nil, err
	}
	return scanStrings(rows)
}

// Setting implements storage.Settings.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", storage.ErrNotFound
	}
	return v, err
}

// SetSetting implements storage.Settings.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if value == "" {
		_, err := s.w.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, key)
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// SettingOrSet implements storage.Settings.
func (s *Store) SettingOrSet(ctx context.Context, key, value string) (string, error) {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
		return "", err
	}
	return s.Setting(ctx, key)
}

// AllSettings implements storage.Settings.
func (s *Store) AllSettings(ctx context.Context) (map[string]string, error) {
	return s.stringMap(ctx, `SELECT key, value FROM settings`)
}

// CreateAPIToken implements storage.APITokens.
func (s *Store) CreateAPIToken(ctx context.Context, t storage.APIToken) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM api_tokens WHERE id = ? OR token_hash = ?`, t.ID, blob(t.TokenHash)).Scan(&one)
		if err == nil {
			return storage.ErrExists
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO api_tokens (id, token_hash, name, created) VALUES (?, ?, ?, ?)`,
			t.ID, blob(t.TokenHash), t.Name, toMicros(t.Created))
		return err
	})
}

func scanAPIToken(sc scanner) (storage.APIToken, error) {
	var t storage.APIToken
	var created int64
	err := sc.Scan(&t.ID, &t.TokenHash, &t.Name, &created)
	t.Created = fromMicros(created)
	return t, err
}

// APITokenByHash implements storage.APITokens.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (storage.APIToken, error) {
	t, err := scanAPIToken(s.r.QueryRowContext(ctx, `SELECT id, token_hash, name, created FROM api_tokens WHERE token_hash = ?`, blob(hash)))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.APIToken{}, storage.ErrNotFound
	}
	return t, err
}

// ListAPITokens implements storage.APITokens.
func (s *Store) ListAPITokens(ctx context.Context) ([]storage.APIToken, error) {
	return queryAll(ctx, s.r, `SELECT id, token_hash, name, created FROM api_tokens ORDER BY created, id`, nil, scanAPIToken)
}

// DeleteAPIToken implements storage.APITokens.
func (s *Store) DeleteAPIToken(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "api_tokens", id)
}

// deleteByID deletes the row of table (a constant) with id; ErrNotFound
// when there is none.
func (s *Store) deleteByID(ctx context.Context, table, id string) error {
	return oneRow(s.w.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id))
}
