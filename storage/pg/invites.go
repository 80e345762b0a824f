package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.Invites   = (*Store)(nil)
	_ storage.Roles     = (*Store)(nil)
	_ storage.Settings  = (*Store)(nil)
	_ storage.APITokens = (*Store)(nil)
)

const inviteCols = `id, token_hash, domain, username, owner, admin, created, expires, uses_left`

func scanInvite(sc interface{ Scan(...any) error }) (storage.Invite, error) {
	var inv storage.Invite
	var expires *time.Time
	err := sc.Scan(&inv.ID, &inv.TokenHash, &inv.Domain, &inv.Username, &inv.Owner, &inv.Admin, &inv.Created, &expires, &inv.UsesLeft)
	inv.Created = inv.Created.UTC()
	if expires != nil {
		inv.Expires = expires.UTC()
	}
	return inv, err
}

func inviteArgs(inv storage.Invite) []any {
	var expires *time.Time
	if !inv.Expires.IsZero() {
		e := micros(inv.Expires)
		expires = &e
	}
	return []any{inv.ID, blob(inv.TokenHash), inv.Domain, inv.Username, inv.Owner, inv.Admin, micros(inv.Created), expires, inv.UsesLeft}
}

// CreateInvite implements storage.Invites.
func (s *Store) CreateInvite(ctx context.Context, inv storage.Invite) error {
	_, err := s.exec(ctx, `INSERT INTO invites (`+inviteCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, inviteArgs(inv)...)
	if isSQLState(err, "23505") {
		return storage.ErrExists
	}
	return err
}

// InviteByHash implements storage.Invites.
func (s *Store) InviteByHash(ctx context.Context, hash []byte) (storage.Invite, error) {
	var inv storage.Invite
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		inv, err = scanInvite(s.pool.QueryRow(ctx, `SELECT `+inviteCols+` FROM invites WHERE token_hash = $1`, blob(hash)))
		return err
	})
	if isNoRows(err) {
		return storage.Invite{}, storage.ErrNotFound
	}
	return inv, err
}

// ListInvites implements storage.Invites.
func (s *Store) ListInvites(ctx context.Context, domain string) ([]storage.Invite, error) {
	q, args := `SELECT `+inviteCols+` FROM invites ORDER BY created DESC, id`, []any(nil)
	if domain != "" {
		q, args = `SELECT `+inviteCols+` FROM invites WHERE domain = $1 ORDER BY created DESC, id`, []any{domain}
	}
	var out []storage.Invite
	err := s.query(ctx, q, args, func(rows pgx.Rows) error {
		inv, err := scanInvite(rows)
		out = append(out, inv)
		return err
	})
	return out, err
}

// DeleteInvite implements storage.Invites.
func (s *Store) DeleteInvite(ctx context.Context, id string) error {
	n, err := s.exec(ctx, `DELETE FROM invites WHERE id = $1`, id)
	if err == nil && n == 0 {
		return storage.ErrNotFound
	}
	return err
}

// UseInvite implements storage.Invites.
func (s *Store) UseInvite(ctx context.Context, hash []byte, now time.Time) (storage.Invite, error) {
	var inv storage.Invite
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		inv, err = scanInvite(tx.QueryRow(ctx, `SELECT `+inviteCols+` FROM invites WHERE token_hash = $1 FOR UPDATE`, blob(hash)))
		if isNoRows(err) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		if inv.UsesLeft <= 0 || (!inv.Expires.IsZero() && !now.Before(inv.Expires)) {
			return storage.ErrNotFound
		}
		if inv.UsesLeft == 1 {
			_, err = tx.Exec(ctx, `DELETE FROM invites WHERE id = $1`, inv.ID)
		} else {
			_, err = tx.Exec(ctx, `UPDATE invites SET uses_left = uses_left - 1 WHERE id = $1`, inv.ID)
		}
		return err
	})
	return inv, err
}

// ReturnInvite implements storage.Invites.
func (s *Store) ReturnInvite(ctx context.Context, inv storage.Invite) error {
	inv.UsesLeft = 1
	_, err := s.exec(ctx, `INSERT INTO invites (`+inviteCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET uses_left = invites.uses_left + 1`, inviteArgs(inv)...)
	return err
}

// DeleteExpiredInvites implements storage.Invites.
func (s *Store) DeleteExpiredInvites(ctx context.Context, now time.Time) (int, error) {
	n, err := s.exec(ctx, `DELETE FROM invites WHERE expires <= $1`, micros(now))
	return int(n), err
}

// GrantRole implements storage.Roles.
func (s *Store) GrantRole(ctx context.Context, bare, role string) error {
	_, err := s.exec(ctx, `INSERT INTO account_roles (owner, role) VALUES ($1, $2) ON CONFLICT DO NOTHING`, bare, role)
	return err
}

// RevokeRole implements storage.Roles.
func (s *Store) RevokeRole(ctx context.Context, bare, role string) error {
	_, err := s.exec(ctx, `DELETE FROM account_roles WHERE owner = $1 AND role = $2`, bare, role)
	return err
}

// HasRole implements storage.Roles.
func (s *Store) HasRole(ctx context.Context, bare, role string) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM account_roles WHERE owner = $1 AND role = $2`, []any{bare, role}, &one)
	if isNoRows(err) {
		return false, nil
	}
	return err == nil, err
}

// RoleMembers implements storage.Roles.
func (s *Store) RoleMembers(ctx context.Context, role string) ([]string, error) {
	return s.strings(ctx, `SELECT owner FROM account_roles WHERE role = $1 ORDER BY owner`, role)
}

// Setting implements storage.Settings.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.queryRow(ctx, `SELECT value FROM settings WHERE key = $1`, []any{key}, &v)
	if isNoRows(err) {
		return "", storage.ErrNotFound
	}
	return v, err
}

// SetSetting implements storage.Settings.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if value == "" {
		_, err := s.exec(ctx, `DELETE FROM settings WHERE key = $1`, key)
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// SettingOrSet implements storage.Settings.
func (s *Store) SettingOrSet(ctx context.Context, key, value string) (string, error) {
	if _, err := s.exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
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
	_, err := s.exec(ctx, `INSERT INTO api_tokens (id, token_hash, name, created) VALUES ($1, $2, $3, $4)`,
		t.ID, blob(t.TokenHash), t.Name, micros(t.Created))
	if isSQLState(err, "23505") {
		return storage.ErrExists
	}
	return err
}

func scanAPIToken(sc interface{ Scan(...any) error }) (storage.APIToken, error) {
	var t storage.APIToken
	err := sc.Scan(&t.ID, &t.TokenHash, &t.Name, &t.Created)
	t.Created = t.Created.UTC()
	return t, err
}

// APITokenByHash implements storage.APITokens.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (storage.APIToken, error) {
	var t storage.APIToken
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		t, err = scanAPIToken(s.pool.QueryRow(ctx, `SELECT id, token_hash, name, created FROM api_tokens WHERE token_hash = $1`, blob(hash)))
		return err
	})
	if isNoRows(err) {
		return storage.APIToken{}, storage.ErrNotFound
	}
	return t, err
}

// ListAPITokens implements storage.APITokens.
func (s *Store) ListAPITokens(ctx context.Context) ([]storage.APIToken, error) {
	var out []storage.APIToken
	err := s.query(ctx, `SELECT id, token_hash, name, created FROM api_tokens ORDER BY created, id`, nil, func(rows pgx.Rows) error {
		t, err := scanAPIToken(rows)
		out = append(out, t)
		return err
	})
	return out, err
}

// DeleteAPIToken implements storage.APITokens.
func (s *Store) DeleteAPIToken(ctx context.Context, id string) error {
	n, err := s.exec(ctx, `DELETE FROM api_tokens WHERE id = $1`, id)
	if err == nil && n == 0 {
		return storage.ErrNotFound
	}
	return err
}
