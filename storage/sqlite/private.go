package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.PrivateXML = (*Store)(nil)

// PrivateXML implements storage.PrivateXML.
func (s *Store) PrivateXML(ctx context.Context, owner, ns string) ([]byte, error) {
	var raw []byte
	err := s.r.QueryRowContext(ctx, `SELECT raw FROM private_xml WHERE owner = ? AND ns = ?`, owner, ns).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	return raw, err
}

// SetPrivateXML implements storage.PrivateXML.
func (s *Store) SetPrivateXML(ctx context.Context, owner, ns string, raw []byte) error {
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO private_xml (owner, ns, raw) VALUES (?, ?, ?)
		 ON CONFLICT (owner, ns) DO UPDATE SET raw = excluded.raw`,
		owner, ns, blob(raw))
	return err
}

// CountPrivateXML implements storage.PrivateXML.
func (s *Store) CountPrivateXML(ctx context.Context, owner string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM private_xml WHERE owner = ?`, owner).Scan(&n)
	return n, err
}
