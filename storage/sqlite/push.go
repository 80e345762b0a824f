package sqlite

import (
	"context"

	"github.com/parley-xmpp/parley/storage"
)

var _ storage.PushRegistrations = (*Store)(nil)

// AddPush inserts or replaces the (owner, jid, node) registration.
func (s *Store) AddPush(ctx context.Context, owner string, r storage.PushRegistration) error {
	var form any // NULL: no publish options
	if len(r.Form) > 0 {
		form = r.Form
	}
	_, err := s.w.ExecContext(ctx,
		`INSERT OR REPLACE INTO push_registrations (owner, jid, node, form, created) VALUES (?, ?, ?, ?, ?)`,
		owner, r.JID, r.Node, form, toMicros(r.Created))
	return err
}

func (s *Store) RemovePush(ctx context.Context, owner, jid, node string) error {
	if node == "" {
		_, err := s.w.ExecContext(ctx, `DELETE FROM push_registrations WHERE owner = ? AND jid = ?`, owner, jid)
		return err
	}
	_, err := s.w.ExecContext(ctx, `DELETE FROM push_registrations WHERE owner = ? AND jid = ? AND node = ?`, owner, jid, node)
	return err
}

// Pushes returns registrations in insertion order (the contract promises
// none).
func (s *Store) Pushes(ctx context.Context, owner string) ([]storage.PushRegistration, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT jid, node, form, created FROM push_registrations WHERE owner = ? ORDER BY rowid`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.PushRegistration
	for rows.Next() {
		var (
			r  storage.PushRegistration
			us int64
		)
		if err := rows.Scan(&r.JID, &r.Node, &r.Form, &us); err != nil {
			return nil, err
		}
		r.Created = fromMicros(us)
		out = append(out, r)
	}
	return out, rows.Err()
}
