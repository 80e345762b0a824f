package pg

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

// noVersion is reported for a roster that has never changed, which is
// necessarily empty.
const noVersion = "0"

// bumpVersion increments owner's roster version and returns the new value.
//
// A new counter starts at the database clock in microseconds instead of 1:
// deleting an account deletes its counter, and if the account is created
// again a client that cached the old roster must not find its old version
// number reused for a different roster (XEP-0237 would tell it nothing
// changed). The database's clock is the same for every Parley node.
//
// The upsert locks the counter row until the transaction ends, so
// concurrent changes to one roster are serialised and never share a
// version.
const bumpVersionSQL = `INSERT INTO roster_versions (owner, ver)
	VALUES ($1, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
	ON CONFLICT (owner) DO UPDATE SET ver = roster_versions.ver + 1
	RETURNING ver`

func bumpVersion(ctx context.Context, tx pgx.Tx, owner string) (string, error) {
	var v int64
	err := tx.QueryRow(ctx, bumpVersionSQL, owner).Scan(&v)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

func (s *Store) RosterVersion(ctx context.Context, owner string) (string, error) {
	var v int64
	err := s.queryRow(ctx, `SELECT COALESCE((SELECT ver FROM roster_versions WHERE owner = $1), 0)`, []any{owner}, &v)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

const rosterColumns = `contact, name, subscription, ask, approved, groups`

func scanRosterItem(row pgx.Row) (storage.RosterItem, error) {
	var it storage.RosterItem
	if err := row.Scan(&it.JID, &it.Name, &it.Subscription, &it.Ask, &it.Approved, &it.Groups); err != nil {
		return it, err
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it, nil
}

// RosterItems returns the roster sorted by contact JID, together with the
// version it corresponds to. One statement reads both, so they come from
// one snapshot (and one round trip): the version row is joined with the
// items, and an empty roster yields a single row without an item.
func (s *Store) RosterItems(ctx context.Context, owner string) ([]storage.RosterItem, string, error) {
	var (
		items []storage.RosterItem
		ver   int64
	)
	err := s.query(ctx,
		`SELECT v.ver, i.contact, COALESCE(i.name, ''), COALESCE(i.subscription, ''),
		        COALESCE(i.ask, false), COALESCE(i.approved, false), i.groups
		 FROM (SELECT COALESCE((SELECT ver FROM roster_versions WHERE owner = $1), 0) AS ver) v
		 LEFT JOIN roster_items i ON i.owner = $1
		 ORDER BY i.contact`, []any{owner},
		func(rows pgx.Rows) error {
			var (
				it      storage.RosterItem
				contact *string
			)
			if err := rows.Scan(&ver, &contact, &it.Name, &it.Subscription, &it.Ask, &it.Approved, &it.Groups); err != nil {
				return err
			}
			if contact == nil {
				return nil // empty roster
			}
			it.JID = *contact
			if len(it.Groups) == 0 {
				it.Groups = nil
			}
			items = append(items, it)
			return nil
		})
	if err != nil {
		return nil, "", err
	}
	return items, strconv.FormatInt(ver, 10), nil
}

func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	var it storage.RosterItem
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		it, err = scanRosterItem(s.pool.QueryRow(ctx,
			`SELECT `+rosterColumns+` FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact))
		return err
	})
	if isNoRows(err) {
		return storage.RosterItem{}, storage.ErrNotFound
	}
	return it, err
}

// UpsertRosterItem always bumps the version, even when the stored item is
// unchanged: callers only write when something happened, and a spurious
// bump merely costs a client one full roster fetch. Both statements go in
// one round trip, as one implicit transaction.
func (s *Store) UpsertRosterItem(ctx context.Context, owner string, item storage.RosterItem) (string, error) {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO roster_items (owner, `+rosterColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		 ON CONFLICT (owner, contact) DO UPDATE SET
		   name = excluded.name, subscription = excluded.subscription,
		   ask = excluded.ask, approved = excluded.approved, groups = excluded.groups`,
		owner, item.JID, item.Name, item.Subscription, item.Ask, item.Approved, nonNil(item.Groups))
	b.Queue(bumpVersionSQL, owner)
	var ver int64
	err := s.batch(ctx, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.QueryRow().Scan(&ver)
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(ver, 10), nil
}

// DeleteRosterItem returns ErrNotFound, leaving the version alone, when the
// contact is not in the roster.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) (string, error) {
	var ver string
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		ver, err = bumpVersion(ctx, tx, owner)
		return err
	})
	return ver, err
}

// AddPendingIn replaces an earlier request from the same contact: only the
// latest presence stanza is worth redelivering.
func (s *Store) AddPendingIn(ctx context.Context, owner string, p storage.PendingSubscription) error {
	_, err := s.exec(ctx,
		`INSERT INTO pending_in (owner, contact, raw, stamp) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (owner, contact) DO UPDATE SET raw = excluded.raw, stamp = excluded.stamp`,
		owner, p.From, blob(p.Raw), micros(p.Stamp))
	return err
}

// RemovePendingIn is a no-op when there is no such request.
func (s *Store) RemovePendingIn(ctx context.Context, owner, contact string) error {
	_, err := s.exec(ctx, `DELETE FROM pending_in WHERE owner = $1 AND contact = $2`, owner, contact)
	return err
}

// PendingIn returns the requests oldest first.
func (s *Store) PendingIn(ctx context.Context, owner string) ([]storage.PendingSubscription, error) {
	var out []storage.PendingSubscription
	err := s.query(ctx, `SELECT contact, raw, stamp FROM pending_in WHERE owner = $1 ORDER BY stamp, contact`,
		[]any{owner}, func(rows pgx.Rows) error {
			var p storage.PendingSubscription
			if err := rows.Scan(&p.From, &p.Raw, &p.Stamp); err != nil {
				return err
			}
			p.Stamp = p.Stamp.UTC()
			out = append(out, p)
			return nil
		})
	return out, err
}
