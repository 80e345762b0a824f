package pg

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

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

// CreatePEPNode inserts a node; ErrExists when the name is taken.
func (s *Store) CreatePEPNode(ctx context.Context, owner string, n storage.PEPNode) error {
	cfg, err := encodeConfig(n.Config)
	if err != nil {
		return err
	}
	k, err := s.exec(ctx,
		`INSERT INTO pep_nodes (owner, node, config, created) VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT DO NOTHING`,
		owner, n.Name, cfg, micros(n.Created))
	if err != nil {
		return err
	}
	if k == 0 {
		return storage.ErrExists
	}
	return nil
}

const nodeColumns = `node, config::text, created`

func scanNode(row pgx.Row) (storage.PEPNode, error) {
	var (
		n   storage.PEPNode
		cfg string
	)
	if err := row.Scan(&n.Name, &cfg, &n.Created); err != nil {
		return n, err
	}
	n.Config = map[string][]string{}
	if err := json.Unmarshal([]byte(cfg), &n.Config); err != nil {
		return n, err
	}
	n.Created = n.Created.UTC()
	return n, nil
}

func (s *Store) PEPNode(ctx context.Context, owner, node string) (storage.PEPNode, error) {
	var n storage.PEPNode
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		n, err = scanNode(s.pool.QueryRow(ctx,
			`SELECT `+nodeColumns+` FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node))
		return err
	})
	if isNoRows(err) {
		return storage.PEPNode{}, storage.ErrNotFound
	}
	return n, err
}

func (s *Store) PEPNodes(ctx context.Context, owner string) ([]storage.PEPNode, error) {
	var out []storage.PEPNode
	err := s.query(ctx, `SELECT `+nodeColumns+` FROM pep_nodes WHERE owner = $1 ORDER BY node`, []any{owner},
		func(rows pgx.Rows) error {
			n, err := scanNode(rows)
			if err != nil {
				return err
			}
			out = append(out, n)
			return nil
		})
	return out, err
}

func (s *Store) SetPEPNodeConfig(ctx context.Context, owner, node string, config map[string][]string) error {
	cfg, err := encodeConfig(config)
	if err != nil {
		return err
	}
	k, err := s.exec(ctx, `UPDATE pep_nodes SET config = $1::jsonb WHERE owner = $2 AND node = $3`, cfg, owner, node)
	return affectedOne(k, err)
}

// DeletePEPNode removes the node; its items go with it (ON DELETE
// CASCADE).
func (s *Store) DeletePEPNode(ctx context.Context, owner, node string) error {
	k, err := s.exec(ctx, `DELETE FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node)
	return affectedOne(k, err)
}

// affectedOne maps "no row changed" to ErrNotFound.
func affectedOne(k int64, err error) error {
	if err != nil {
		return err
	}
	if k == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// lockNode locks the node row for the transaction: ErrNotFound when there
// is no such node. Writers of one node are serialised, and a node cannot
// be deleted under them.
func lockNode(ctx context.Context, tx pgx.Tx, owner, node string, forUpdate bool) error {
	sql := `SELECT 1 FROM pep_nodes WHERE owner = $1 AND node = $2`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	var one int
	err := tx.QueryRow(ctx, sql, owner, node).Scan(&one)
	if isNoRows(err) {
		return storage.ErrNotFound
	}
	return err
}

// PublishPEPItem implements storage.PEP; trimmed lists the removed ids
// newest first.
func (s *Store) PublishPEPItem(ctx context.Context, owner, node string, it storage.PEPItem, maxItems int) ([]string, error) {
	var trimmed []string
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		trimmed = nil
		if err := lockNode(ctx, tx, owner, node, true); err != nil {
			return err
		}
		// Delete and insert rather than upsert: a replaced item becomes the
		// newest, with a new seq.
		if _, err := tx.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND id = $3`, owner, node, it.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO pep_items (owner, node, id, payload, publisher, stamp) VALUES ($1, $2, $3, $4, $5, $6)`,
			owner, node, it.ID, blob(it.Payload), it.Publisher, micros(it.Stamp)); err != nil {
			return err
		}
		if maxItems <= 0 {
			return nil
		}
		return queryEach(ctx, tx,
			`WITH gone AS (
			   DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND id IN (
			     SELECT id FROM pep_items WHERE owner = $1 AND node = $2 ORDER BY seq DESC OFFSET $3)
			   RETURNING id, seq)
			 SELECT id FROM gone ORDER BY seq DESC`,
			[]any{owner, node, int64(maxItems)}, func(rows pgx.Rows) error {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				trimmed = append(trimmed, id)
				return nil
			})
	})
	return trimmed, err
}

func (s *Store) RetractPEPItem(ctx context.Context, owner, node, id string) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockNode(ctx, tx, owner, node, true); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND id = $3`, owner, node, id)
		return affectedOne(tag.RowsAffected(), err)
	})
}

func (s *Store) PurgePEPItems(ctx context.Context, owner, node string) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockNode(ctx, tx, owner, node, true); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2`, owner, node)
		return err
	})
}

// PEPItems implements storage.PEP, reading the node and its items in one
// snapshot.
func (s *Store) PEPItems(ctx context.Context, owner, node string, ids []string, last int) ([]storage.PEPItem, error) {
	var out []storage.PEPItem
	err := s.read(ctx, func(ctx context.Context, tx pgx.Tx) error {
		out = nil
		if err := lockNode(ctx, tx, owner, node, false); err != nil {
			return err
		}
		sql := `SELECT id, payload, publisher, stamp FROM pep_items WHERE owner = $1 AND node = $2 ORDER BY seq`
		args := []any{owner, node}
		switch {
		case len(ids) > 0:
			sql = `SELECT id, payload, publisher, stamp FROM pep_items
				WHERE owner = $1 AND node = $2 AND id = ANY ($3::text[]) ORDER BY seq`
			args = append(args, ids)
		case last > 0:
			sql = `SELECT id, payload, publisher, stamp FROM (
				SELECT seq, id, payload, publisher, stamp FROM pep_items WHERE owner = $1 AND node = $2
				ORDER BY seq DESC LIMIT $3) newest ORDER BY seq`
			args = append(args, int64(last))
		}
		return queryEach(ctx, tx, sql, args, func(rows pgx.Rows) error {
			var it storage.PEPItem
			if err := rows.Scan(&it.ID, &it.Payload, &it.Publisher, &it.Stamp); err != nil {
				return err
			}
			it.Stamp = it.Stamp.UTC()
			out = append(out, it)
			return nil
		})
	})
	return out, err
}
