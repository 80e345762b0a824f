package pg

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

var (
	_ storage.MUCRooms      = (*Store)(nil)
	_ storage.ArchiveEditor = (*Store)(nil)
)

const roomColumns = `jid, name, public, config, subject, subject_by, subject_at, created`

func scanRoom(sc interface{ Scan(...any) error }) (storage.MUCRoom, error) {
	var r storage.MUCRoom
	err := sc.Scan(&r.JID, &r.Name, &r.Public, &r.Config, &r.Subject, &r.SubjectBy, &r.SubjectAt, &r.Created)
	r.SubjectAt, r.Created = r.SubjectAt.UTC(), r.Created.UTC()
	if r.Config == nil {
		r.Config = []byte{}
	}
	return r, err
}

// CreateRoom implements storage.MUCRooms.
func (s *Store) CreateRoom(ctx context.Context, room storage.MUCRoom, affs []storage.MUCAffiliation) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO muc_rooms (`+roomColumns+`, service)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
			room.JID, room.Name, room.Public, blob(room.Config), room.Subject, room.SubjectBy,
			micros(room.SubjectAt), micros(room.Created), domainOf(room.JID))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
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
	var r storage.MUCRoom
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		r, err = scanRoom(s.pool.QueryRow(ctx, `SELECT `+roomColumns+` FROM muc_rooms WHERE jid = $1`, jid))
		return err
	})
	if isNoRows(err) {
		return r, storage.ErrNotFound
	}
	return r, err
}

// Rooms implements storage.MUCRooms.
func (s *Store) Rooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	var out []storage.MUCRoom
	err := s.query(ctx, `SELECT `+roomColumns+` FROM muc_rooms WHERE service = $1 ORDER BY jid`, []any{service},
		func(rows pgx.Rows) error {
			r, err := scanRoom(rows)
			out = append(out, r)
			return err
		})
	return out, err
}

// UpdateRoom implements storage.MUCRooms.
func (s *Store) UpdateRoom(ctx context.Context, room storage.MUCRoom) error {
	n, err := s.exec(ctx, `UPDATE muc_rooms SET name = $1, public = $2, config = $3, subject = $4,
		subject_by = $5, subject_at = $6 WHERE jid = $7`,
		room.Name, room.Public, blob(room.Config), room.Subject, room.SubjectBy, micros(room.SubjectAt), room.JID)
	return affectedOne(n, err)
}

// DeleteRoom implements storage.MUCRooms; affiliations go with the room
// (ON DELETE CASCADE).
func (s *Store) DeleteRoom(ctx context.Context, jid string) error {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM vcards WHERE owner = $1`, jid); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM muc_rooms WHERE jid = $1`, jid)
		n = tag.RowsAffected()
		return err
	})
	return affectedOne(n, err)
}

const affColumns = `jid, affiliation, nick, last_nick, reason, notify`

func scanAff(sc interface{ Scan(...any) error }, extra ...any) (storage.MUCAffiliation, error) {
	var a storage.MUCAffiliation
	err := sc.Scan(append(extra, &a.JID, &a.Affiliation, &a.Nick, &a.LastNick, &a.Reason, &a.Notify)...)
	return a, err
}

// RoomAffiliations implements storage.MUCRooms.
func (s *Store) RoomAffiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	var out []storage.MUCAffiliation
	err := s.query(ctx, `SELECT `+affColumns+` FROM muc_affiliations WHERE room = $1 ORDER BY jid`, []any{room},
		func(rows pgx.Rows) error {
			a, err := scanAff(rows)
			out = append(out, a)
			return err
		})
	return out, err
}

func setAffiliation(ctx context.Context, tx pgx.Tx, room string, a storage.MUCAffiliation) error {
	if a.Affiliation == "" || a.Affiliation == "none" {
		_, err := tx.Exec(ctx, `DELETE FROM muc_affiliations WHERE room = $1 AND jid = $2`, room, a.JID)
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO muc_affiliations (room, `+affColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, nick = excluded.nick,
		last_nick = excluded.last_nick, reason = excluded.reason, notify = excluded.notify`,
		room, a.JID, a.Affiliation, a.Nick, a.LastNick, a.Reason, a.Notify)
	return err
}

// SetRoomAffiliation implements storage.MUCRooms. The room row is locked
// (FOR SHARE) so a concurrent DeleteRoom cannot leave the new row behind.
func (s *Store) SetRoomAffiliation(ctx context.Context, room string, a storage.MUCAffiliation) error {
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM muc_rooms WHERE jid = $1 FOR SHARE`, room).Scan(&one)
		if isNoRows(err) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		return setAffiliation(ctx, tx, room, a)
	})
}

// UserRoomAffiliations implements storage.MUCRooms.
func (s *Store) UserRoomAffiliations(ctx context.Context, jid string) ([]storage.RoomAffiliation, error) {
	var out []storage.RoomAffiliation
	err := s.query(ctx, `SELECT room, `+affColumns+` FROM muc_affiliations WHERE jid = $1 ORDER BY room`, []any{jid},
		func(rows pgx.Rows) error {
			var ra storage.RoomAffiliation
			a, err := scanAff(rows, &ra.Room)
			ra.MUCAffiliation = a
			out = append(out, ra)
			return err
		})
	return out, err
}

// DeleteUserRoomAffiliations implements storage.MUCRooms.
func (s *Store) DeleteUserRoomAffiliations(ctx context.Context, jid string) error {
	_, err := s.exec(ctx, `DELETE FROM muc_affiliations WHERE jid = $1`, jid)
	return err
}

// ReplaceArchived implements storage.ArchiveEditor. The full-text
// trigger re-indexes the row; counts do not change.
func (s *Store) ReplaceArchived(ctx context.Context, owner, id string, raw []byte) error {
	return affectedOne(s.exec(ctx, `UPDATE archive SET raw = $1 WHERE owner = $2 AND id = $3`, blob(raw), owner, id))
}
