package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

// archiveRow is one AppendArchive call, ready to insert.
type archiveRow struct {
	owner string
	ts    time.Time
	id    string
	msg   storage.ArchivedMessage
}

func newArchiveRow(owner string, msg storage.ArchivedMessage) archiveRow {
	ts := msg.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	ts = micros(ts)
	return archiveRow{owner: owner, ts: ts, id: storage.NewArchiveID(ts), msg: msg}
}

// insertArchive inserts one row (its own implicit transaction).
func (s *Store) insertArchive(ctx context.Context, r archiveRow) error {
	_, err := s.exec(ctx,
		`INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.owner, r.ts, r.id, r.msg.With, r.msg.WithResource, r.msg.OriginID, r.msg.FromFull, blob(r.msg.Raw))
	return err
}

// insertArchiveBatch inserts rows with one statement, so one implicit
// transaction and one commit (one WAL flush) for all of them. The
// statement text does not depend on the number of rows, so one prepared
// statement serves every batch size.
func (s *Store) insertArchiveBatch(ctx context.Context, rows []archiveRow) error {
	if len(rows) == 1 {
		return s.insertArchive(ctx, rows[0])
	}
	n := len(rows)
	owners, ids, withs, ress, origins, froms := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	tss, raws := make([]time.Time, n), make([][]byte, n)
	for i, r := range rows {
		owners[i], tss[i], ids[i] = r.owner, r.ts, r.id
		withs[i], ress[i], origins[i], froms[i], raws[i] = r.msg.With, r.msg.WithResource, r.msg.OriginID, r.msg.FromFull, blob(r.msg.Raw)
	}
	_, err := s.exec(ctx,
		`INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
		 SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[])`,
		owners, tss, ids, withs, ress, origins, froms, raws)
	return err
}

// rowSpecific reports whether a failed batch insert may have failed
// because of one of its rows (invalid data, a constraint), so that
// retrying row by row lets the others through. Outages and timeouts are
// not: retrying would only multiply the wait.
func rowSpecific(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || IsUnavailable(err) {
		return false
	}
	class := pe.Code[:min(2, len(pe.Code))]
	return class == "22" || class == "23" // data exception, integrity constraint violation
}

// newArchiveWriter returns the committer that AppendArchive writes
// through: with group commit, concurrent rows share one statement and one
// commit; without, each row is its own statement.
func (s *Store) newArchiveWriter(o groupcommit.Options) *groupcommit.Committer[archiveRow] {
	return groupcommit.New(o, groupcommit.Config[archiveRow]{
		// Each write runs under the query timeout (s.exec); a batch is
		// not bound to any one caller's context.
		Batch:   s.insertArchiveBatch,
		One:     s.insertArchive,
		Retry:   rowSpecific,
		Observe: groupcommit.ObserveArchive("postgres"),
	})
}

// appendArchive stores a row and returns once it is committed.
func (s *Store) appendArchive(ctx context.Context, r archiveRow) error {
	err := s.archiveW.Do(ctx, r)
	if errors.Is(err, groupcommit.ErrClosed) {
		return fmt.Errorf("pg: store closed: %w", puddle.ErrClosedPool)
	}
	return err
}

// SubmitArchive implements storage.ArchiveSubmitter.
func (s *Store) SubmitArchive(ctx context.Context, owner string, msg storage.ArchivedMessage, then func(error)) (string, storage.Completion, error) {
	r := newArchiveRow(owner, msg)
	f, err := s.archiveW.Submit(ctx, r, then)
	if errors.Is(err, groupcommit.ErrClosed) {
		return "", nil, fmt.Errorf("pg: store closed: %w", puddle.ErrClosedPool)
	}
	if err != nil {
		return "", nil, err
	}
	return r.id, f, nil
}
