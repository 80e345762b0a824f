package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// noVersion is reported for a roster that has never changed, which is
// necessarily empty.
const noVersion = "0"

// bumpVersion increments owner's roster version and returns the new value.
//
// A new counter starts at the current Unix time in microseconds instead of
// 1. Deleting an account deletes its counter; if the account is created
// again, a client that cached the old roster must not find its old version
// number reused for a different roster (XEP-0237 would tell it nothing
// changed). Starting from the clock keeps new numbers above old ones as
// long as no two roster changes share a clock tick, which takes
// microseconds: with milliseconds, an account deleted and created again
// within the millisecond of its last changes reused their numbers.
func bumpVersion(ctx context.Context, tx *sql.Tx, owner string) (string, error) {
	var v int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO roster_versions (owner, ver) VALUES (?, ?)
		 ON CONFLICT (owner) DO UPDATE SET ver = ver + 1
		 RETURNING ver`,
		owner, time.Now().UnixMicro()).Scan(&v)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

func rosterVersion(ctx context.Context, q querier, owner string) (string, error) {
	var v int64
	err := q.QueryRowContext(ctx, `SELECT ver FROM roster_versions WHERE owner = ?`, owner).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return noVersion, nil
	}
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

func (s *Store) RosterVersion(ctx context.Context, owner string) (string, error) {
	return rosterVersion(ctx, s.r, owner)
}

const rosterColumns = `contact, name, subscription, ask, approved, groups`

func scanRosterItem(sc scanner) (storage.RosterItem, error) {
	var (
		it     storage.RosterItem
		groups string
	)
	if err := sc.Scan(&it.JID, &it.Name, &it.Subscription, &it.Ask, &it.Approved, &groups); err != nil {
		return it, err
	}
	if err := json.Unmarshal([]byte(groups), &it.Groups); err != nil {
		return it, err
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it, nil
}

// RosterItems returns the roster sorted by contact JID, together with the
// version it corresponds to.
func (s *Store) RosterItems(ctx context.Context, owner string) ([]storage.RosterItem, string, error) {
	var (
		items []storage.RosterItem
		ver   string
	)
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			`SELECT `+rosterColumns+` FROM roster_items WHERE owner = ? ORDER BY contact`, owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			it, err := scanRosterItem(rows)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		ver, err = rosterVersion(ctx, tx, owner)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return items, ver, nil
}

func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	it, err := scanRosterItem(s.r.QueryRowContext(ctx,
		`SELECT `+rosterColumns+` FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.RosterItem{}, storage.ErrNotFound
	}
	return it, err
}

// UpsertRosterItem always bumps the version, even when the stored item is
// unchanged: callers only write when something happened, and a spurious
// bump merely costs a client one full roster fetch.
func (s *Store) UpsertRosterItem(ctx context.Context, owner string, item storage.RosterItem) (string, error) {
	groups := item.Groups
	if groups == nil {
		groups = []string{}
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return "", err
	}
	var ver string
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO roster_items (owner, `+rosterColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (owner, contact) DO UPDATE SET
			   name = excluded.name, subscription = excluded.subscription,
			   ask = excluded.ask, approved = excluded.approved, groups = excluded.groups`,
			owner, item.JID, item.Name, item.Subscription, item.Ask, item.Approved, string(gj)); err != nil {
			return err
		}
		ver, err = bumpVersion(ctx, tx, owner)
		return err
	})
	return ver, err
}

// DeleteRosterItem returns ErrNotFound, leaving the version alone, when the
// contact is not in the roster.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) (string, error) {
	var ver string
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
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
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO pending_in (owner, contact, raw, stamp) VALUES (?, ?, ?, ?)
		 ON CONFLICT (owner, contact) DO UPDATE SET raw = excluded.raw, stamp = excluded.stamp`,
		owner, p.From, blob(p.Raw), toMicros(p.Stamp))
	return err
}

// RemovePendingIn is a no-op when there is no such request.
func (s *Store) RemovePendingIn(ctx context.Context, owner, contact string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM pending_in WHERE owner = ? AND contact = ?`, owner, contact)
	return err
}

// PendingIn returns the requests oldest first.
func (s *Store) PendingIn(ctx context.Context, owner string) ([]storage.PendingSubscription, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT contact, raw, stamp FROM pending_in WHERE owner = ? ORDER BY stamp, contact`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.PendingSubscription
	for rows.Next() {
		var (
			p  storage.PendingSubscription
			us int64
		)
		if err := rows.Scan(&p.From, &p.Raw, &us); err != nil {
			return nil, err
		}
		p.Stamp = fromMicros(us)
		out = append(out, p)
	}
	return out, rows.Err()
}
