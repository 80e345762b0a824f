package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.PEP = (*Store)(nil)

func encodeConfig(c map[string][]string) (string, error) {
	if c == nil {
		c = map[string][]string{}
	}
	b, err := json.Marshal(c)
	return string(b), err
}

func decodeConfig(s string) (map[string][]string, error) {
	c := map[string][]string{}
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, err
	}
	return c, nil
}

// CreatePEPNode inserts a node; ErrExists when the name is taken.
func (s *Store) CreatePEPNode(ctx context.Context, owner string, n storage.PEPNode) error {
	cfg, err := encodeConfig(n.Config)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx,
		`INSERT INTO pep_nodes (owner, node, config, created) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		owner, n.Name, cfg, toMicros(n.Created))
	if err != nil {
		return err
	}
	if k, err := res.RowsAffected(); err != nil {
		return err
	} else if k == 0 {
		return storage.ErrExists
	}
	return nil
}

func scanNode(row scanner) (storage.PEPNode, error) {
	var (
		n   storage.PEPNode
		cfg string
		us  int64
	)
	if err := row.Scan(&n.Name, &cfg, &us); err != nil {
		return n, err
	}
	c, err := decodeConfig(cfg)
	if err != nil {
		return n, err
	}
	n.Config, n.Created = c, fromMicros(us)
	return n, nil
}

func (s *Store) PEPNode(ctx context.Context, owner, node string) (storage.PEPNode, error) {
	n, err := scanNode(s.r.QueryRowContext(ctx,
		`SELECT node, config, created FROM pep_nodes WHERE owner = ? AND node = ?`, owner, node))
	if errors.Is(err, sql.ErrNoRows) {
		return n, storage.ErrNotFound
	}
	return n, err
}

func (s *Store) PEPNodes(ctx context.Context, owner string) ([]storage.PEPNode, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT node, config, created FROM pep_nodes WHERE owner = ? ORDER BY node`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.PEPNode
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func (s *Store) SetPEPNodeConfig(ctx context.Context, owner, node string, config map[string][]string) error {
	cfg, err := encodeConfig(config)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE pep_nodes SET config = ? WHERE owner = ? AND node = ?`, cfg, owner, node)
	return affectedOne(res, err)
}

func (s *Store) DeletePEPNode(ctx context.Context, owner, node string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ?`, owner, node); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM pep_nodes WHERE owner = ? AND node = ?`, owner, node)
		return affectedOne(res, err)
	})
}

// affectedOne maps "no row changed" to ErrNotFound.
func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	k, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if k == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func nodeExists(ctx context.Context, tx *sql.Tx, owner, node string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM pep_nodes WHERE owner = ? AND node = ?`, owner, node).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

func (s *Store) PublishPEPItem(ctx context.Context, owner, node string, it storage.PEPItem, maxItems int) ([]string, error) {
	var trimmed []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		trimmed = nil
		if err := nodeExists(ctx, tx, owner, node); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?`, owner, node, it.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO pep_items (owner, node, id, seq, payload, publisher, stamp)
			 VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pep_items WHERE owner = ? AND node = ?), ?, ?, ?)`,
			owner, node, it.ID, owner, node, blob(it.Payload), it.Publisher, toMicros(it.Stamp)); err != nil {
			return err
		}
		if maxItems <= 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT id FROM pep_items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT -1 OFFSET ?`, owner, node, maxItems)
		if err != nil {
			return err
		}
		ids, err := scanStrings(rows)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?`, owner, node, id); err != nil {
				return err
			}
		}
		trimmed = ids
		return nil
	})
	return trimmed, err
}

func (s *Store) RetractPEPItem(ctx context.Context, owner, node, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := nodeExists(ctx, tx, owner, node); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?`, owner, node, id)
		return affectedOne(res, err)
	})
}

func (s *Store) PurgePEPItems(ctx context.Context, owner, node string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := nodeExists(ctx, tx, owner, node); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ?`, owner, node)
		return err
	})
}

func (s *Store) PEPItems(ctx context.Context, owner, node string, ids []string, last int) ([]storage.PEPItem, error) {
	var out []storage.PEPItem
	err := s.read(ctx, func(tx *sql.Tx) error {
		out = nil
		if err := nodeExists(ctx, tx, owner, node); err != nil {
			return err
		}
		q := `SELECT id, payload, publisher, stamp FROM pep_items WHERE owner = ? AND node = ?`
		args := []any{owner, node}
		switch {
		case len(ids) > 0:
			q += ` AND id IN (?` + strings.Repeat(", ?", len(ids)-1) + `) ORDER BY seq`
			for _, id := range ids {
				args = append(args, id)
			}
		case last > 0:
			q = `SELECT id, payload, publisher, stamp FROM (
				SELECT seq, id, payload, publisher, stamp FROM pep_items WHERE owner = ? AND node = ?
				ORDER BY seq DESC LIMIT ?) ORDER BY seq`
			args = append(args, last)
		default:
			q += ` ORDER BY seq`
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				it storage.PEPItem
				us int64
			)
			if err := rows.Scan(&it.ID, &it.Payload, &it.Publisher, &us); err != nil {
				return err
			}
			it.Stamp = fromMicros(us)
			out = append(out, it)
		}
		return rows.Err()
	})
	return out, err
}
