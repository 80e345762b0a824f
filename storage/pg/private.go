package pg

import (
	"context"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.PrivateXML = (*Store)(nil)

// PrivateXML implements storage.PrivateXML.
func (s *Store) PrivateXML(ctx context.Context, owner, ns string) ([]byte, error) {
	var raw []byte
	err := s.queryRow(ctx, `SELECT raw FROM private_xml WHERE owner = $1 AND ns = $2`, []any{owner, ns}, &raw)
	if isNoRows(err) {
		return nil, storage.ErrNotFound
	}
	return raw, err
}

// SetPrivateXML implements storage.PrivateXML.
func (s *Store) SetPrivateXML(ctx context.Context, owner, ns string, raw []byte) error {
	_, err := s.exec(ctx,
		`INSERT INTO private_xml (owner, ns, raw) VALUES ($1, $2, $3)
		 ON CONFLICT (owner, ns) DO UPDATE SET raw = excluded.raw`,
		owner, ns, blob(raw))
	return err
}

// CountPrivateXML implements storage.PrivateXML.
func (s *Store) CountPrivateXML(ctx context.Context, owner string) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM private_xml WHERE owner = $1`, []any{owner}, &n)
	return n, err
}
