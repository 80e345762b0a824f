package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/parley-xmpp/parley/storage"
)

func (s *Store) VCard(ctx context.Context, owner string) ([]byte, error) {
	var raw []byte
	err := s.r.QueryRowContext(ctx, `SELECT raw FROM vcards WHERE owner = ?`, owner).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	return raw, err
}

func (s *Store) SetVCard(ctx context.Context, owner string, raw []byte) error {
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO vcards (owner, raw) VALUES (?, ?)
		 ON CONFLICT (owner) DO UPDATE SET raw = excluded.raw`,
		owner, blob(raw))
	return err
}

// BlockList returns the JIDs in the order they were first blocked.
func (s *Store) BlockList(ctx context.Context, owner string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT jid FROM blocklist WHERE owner = ? ORDER BY rowid`, owner)
	if err != nil {
		return nil, err
	}
	return scanStrings(rows)
}

// Block ignores JIDs that are already blocked (XEP-0191 blocking is
// idempotent).
func (s *Store) Block(ctx context.Context, owner string, jids []string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, j := range jids {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO blocklist (owner, jid) VALUES (?, ?) ON CONFLICT DO NOTHING`, owner, j); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) Unblock(ctx context.Context, owner string, jids []string) error {
	if len(jids) == 0 {
		_, err := s.w.ExecContext(ctx, `DELETE FROM blocklist WHERE owner = ?`, owner)
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, j := range jids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM blocklist WHERE owner = ? AND jid = ?`, owner, j); err != nil {
				return err
			}
		}
		return nil
	})
}
