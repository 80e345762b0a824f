package pg

import (
	"context"

	"github.com/parley-xmpp/parley/storage"
)

func (s *Store) VCard(ctx context.Context, owner string) ([]byte, error) {
	var raw []byte
	err := s.queryRow(ctx, `SELECT raw FROM vcards WHERE owner = $1`, []any{owner}, &raw)
	if isNoRows(err) {
		return nil, storage.ErrNotFound
	}
	return raw, err
}

func (s *Store) SetVCard(ctx context.Context, owner string, raw []byte) error {
	_, err := s.exec(ctx,
		`INSERT INTO vcards (owner, raw) VALUES ($1, $2)
		 ON CONFLICT (owner) DO UPDATE SET raw = excluded.raw`,
		owner, blob(raw))
	return err
}

// BlockList returns the JIDs in the order they were first blocked.
func (s *Store) BlockList(ctx context.Context, owner string) ([]string, error) {
	return s.strings(ctx, `SELECT jid FROM blocklist WHERE owner = $1 ORDER BY seq`, owner)
}

// Block ignores JIDs that are already blocked (XEP-0191 blocking is
// idempotent). One statement inserts them all, in the order given.
func (s *Store) Block(ctx context.Context, owner string, jids []string) error {
	if len(jids) == 0 {
		return ctx.Err()
	}
	_, err := s.exec(ctx,
		`INSERT INTO blocklist (owner, jid)
		 SELECT $1, j FROM unnest($2::text[]) WITH ORDINALITY AS u (j, n) ORDER BY n
		 ON CONFLICT DO NOTHING`,
		owner, jids)
	return err
}

// Unblock removes the given JIDs, or every JID when jids is empty.
func (s *Store) Unblock(ctx context.Context, owner string, jids []string) error {
	if len(jids) == 0 {
		_, err := s.exec(ctx, `DELETE FROM blocklist WHERE owner = $1`, owner)
		return err
	}
	_, err := s.exec(ctx, `DELETE FROM blocklist WHERE owner = $1 AND jid = ANY ($2::text[])`, owner, jids)
	return err
}
