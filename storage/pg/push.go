package pg

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

// AddPush inserts or replaces the (owner, jid, node) registration.
func (s *Store) AddPush(ctx context.Context, owner string, r storage.PushRegistration) error {
	var form []byte // nil is NULL: no publish options
	if len(r.Form) > 0 {
		form = r.Form
	}
	_, err := s.exec(ctx,
		`INSERT INTO push_registrations (owner, jid, node, form, created) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (owner, jid, node) DO UPDATE SET form = excluded.form, created = excluded.created`,
		owner, r.JID, r.Node, form, micros(r.Created))
	return err
}

func (s *Store) RemovePush(ctx context.Context, owner, jid, node string) error {
	if node == "" {
		_, err := s.exec(ctx, `DELETE FROM push_registrations WHERE owner = $1 AND jid = $2`, owner, jid)
		return err
	}
	_, err := s.exec(ctx, `DELETE FROM push_registrations WHERE owner = $1 AND jid = $2 AND node = $3`, owner, jid, node)
	return err
}

// Pushes returns registrations ordered by JID and node (the contract
// promises no order).
func (s *Store) Pushes(ctx context.Context, owner string) ([]storage.PushRegistration, error) {
	var out []storage.PushRegistration
	err := s.query(ctx, `SELECT jid, node, form, created FROM push_registrations WHERE owner = $1 ORDER BY jid, node`,
		[]any{owner}, func(rows pgx.Rows) error {
			var r storage.PushRegistration
			if err := rows.Scan(&r.JID, &r.Node, &r.Form, &r.Created); err != nil {
				return err
			}
			r.Created = r.Created.UTC()
			out = append(out, r)
			return nil
		})
	return out, err
}
