package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.MUCRooms      = (*Store)(nil)
	_ storage.ArchiveEditor = (*Store)(nil)
)

const roomColumns = `jid, name, public, config, subject, subject_by, subject_at, created`

func scanRoom(sc scanner) (storage.MUCRoom, error) {
	var r storage.MUCRoom
	var public int
	var subjectAt, created int64
	err := sc.Scan(&r.JID, &r.Name, &public, &r.Config, &r.Subject, &r.SubjectBy, &subjectAt, &created)
	r.Public = public != 0
	r.SubjectAt, r.Created = fromMicros(subjectAt), fromMicros(created)
	if r.Config == nil {
		r.Config = []byte{}
	}
	return r, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateRoom implements storage.MUCRooms.
func (s *Store) CreateRoom(ctx context.Context, room storage.MUCRoom, affs []storage.MUCAffiliation) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO muc_rooms (`+roomColumns+`, service)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			room.JID, room.Name, boolInt(room.Public), blob(room.Config), room.Subject, room.SubjectBy,
			toMicros(room.SubjectAt), toMicros(room.Created), domainOf(room.JID))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrExists
		}
		for _, a := range affs {
			if err := setAffiliation(ctx, tx, room.JID, a); err != nil {
				return err
			}
		}
		return nil
	})
}

// Room implements storage.MUCRooms.
func (s *Store) Room(ctx context.Context, jid string) (storage.MUCRoom, error) {
	r, err := scanRoom(s.r.QueryRowContext(ctx, `SELECT `+roomColumns+` FROM muc_rooms WHERE jid = ?`, jid))
	if errors.Is(err, sql.ErrNoRows) {
		return r, storage.ErrNotFound
	}
	return r, err
}

// Rooms implements storage.MUCRooms.
func (s *Store) Rooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	return queryAll(ctx, s.r, `SELECT `+roomColumns+` FROM muc_rooms WHERE service = ? ORDER BY jid`, []any{service}, scanRoom)
}

// UpdateRoom implements storage.MUCRooms.
func (s *Store) UpdateRoom(ctx context.Context, room storage.MUCRoom) error {
	res, err := s.w.ExecContext(ctx, `UPDATE muc_rooms SET name = ?, public = ?, config = ?, subject = ?,
		subject_by = ?, subject_at = ? WHERE jid = ?`,
		room.Name, boolInt(room.Public), blob(room.Config), room.Subject, room.SubjectBy, toMicros(room.SubjectAt), room.JID)
	return oneRow(res, err)
}

// DeleteRoom implements storage.MUCRooms; affiliations go with the room
// (ON DELETE CASCADE).
func (s *Store) DeleteRoom(ctx context.Context, jid string) error {
	var res sql.Result
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM vcards WHERE owner = ?`, jid); err != nil {
			return err
		}
		var err error
		res, err = tx.ExecContext(ctx, `DELETE FROM muc_rooms WHERE jid = ?`, jid)
		return err
	})
	if err != nil {
		return err
	}
	return oneRow(res, nil)
}

const affColumns = `jid, affiliation, nick, last_nick, reason, notify`

func scanAff(sc scanner, extra ...any) (storage.MUCAffiliation, error) {
	var a storage.MUCAffiliation
	err := sc.Scan(append(extra, &a.JID, &a.Affiliation, &a.Nick, &a.LastNick, &a.Reason, &a.Notify)...)
	return a, err
}

// RoomAffiliations implements storage.MUCRooms.
func (s *Store) RoomAffiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	return queryAll(ctx, s.r, `SELECT `+affColumns+` FROM muc_affiliations WHERE room = ? ORDER BY jid`, []any{room},
		func(sc scanner) (storage.MUCAffiliation, error) { return scanAff(sc) })
}

func setAffiliation(ctx context.Context, tx *sql.Tx, room string, a storage.MUCAffiliation) error {
	if a.Affiliation == "" || a.Affiliation == "none" {
		_, err := tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE room = ? AND jid = ?`, room, a.JID)
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO muc_affiliations (room, `+affColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, nick = excluded.nick,
		last_nick = excluded.last_nick, reason = excluded.reason, notify = excluded.notify`,
		room, a.JID, a.Affiliation, a.Nick, a.LastNick, a.Reason, a.Notify)
	return err
}

// SetRoomAffiliation implements storage.MUCRooms.
func (s *Store) SetRoomAffiliation(ctx context.Context, room string, a storage.MUCAffiliation) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM muc_rooms WHERE jid = ?`, room).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return storage.ErrNotFound
		}
		return setAffiliation(ctx, tx, room, a)
	})
}

// UserRoomAffiliations implements storage.MUCRooms.
func (s *Store) UserRoomAffiliations(ctx context.Context, jid string) ([]storage.RoomAffiliation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT room, `+affColumns+` FROM muc_affiliations WHERE jid = ? ORDER BY room`, jid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.RoomAffiliation
	for rows.Next() {
		var ra storage.RoomAffiliation
		a, err := scanAff(rows, &ra.Room)
		if err != nil {
			return nil, err
		}
		ra.MUCAffiliation = a
		out = append(out, ra)
	}
	return out, rows.Err()
}

// DeleteUserRoomAffiliations implements storage.MUCRooms.
func (s *Store) DeleteUserRoomAffiliations(ctx context.Context, jid string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE jid = ?`, jid)
	return err
}

// ReplaceArchived implements storage.ArchiveEditor. The full-text
// trigger re-indexes the row.
func (s *Store) ReplaceArchived(ctx context.Context, owner, id string, raw []byte) error {
	if err := s.log.settle(ctx, owner); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE archive SET raw = ? WHERE owner = ? AND id = ?`, blob(raw), owner, id)
	return oneRow(res, err)
}
