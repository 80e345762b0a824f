package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sqlitedrv "modernc.org/sqlite"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

// Options tunes a Store beyond Open's defaults.
type Options struct {
	// GroupCommit batches concurrent AppendArchive calls into shared
	// transactions (see storage/groupcommit). SQLite has one writer, so
	// without it concurrent archive writes queue for the write
	// connection one transaction each.
	GroupCommit groupcommit.Options
	// Fulltext says whether the XEP-0431 full-text index is kept (see
	// storage.FulltextIndex); switching it on rebuilds the index before
	// OpenOptions returns.
	Fulltext storage.FulltextIndex
	// NoMigrate opens a database that another binary manages (as
	// pg.Config without Migrate): no migration is applied, and the open
	// fails unless the database has exactly the migrations this binary
	// knows, so that what it writes is what that binary reads.
	NoMigrate bool
}

// OpenOptions is Open with Options.
func OpenOptions(ctx context.Context, dir string, o Options) (*Store, error) {
	s, err := open(ctx, dir, migrationsRoot(), !o.NoMigrate)
	if err != nil {
		return nil, err
	}
	if err := s.setFulltext(ctx, o.Fulltext); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.archiveW.Close() // the default one has no goroutine
	s.archiveW = s.newArchiveWriter(o.GroupCommit)
	return s, nil
}

// archiveRow is one AppendArchive call, ready to insert.
type archiveRow struct {
	owner string
	ts    int64 // microseconds
	id    string
	msg   storage.ArchivedMessage
}

func newArchiveRow(owner string, msg storage.ArchivedMessage) archiveRow {
	ts := msg.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	ts = fromMicros(toMicros(ts))
	return archiveRow{owner: owner, ts: toMicros(ts), id: storage.NewArchiveID(ts), msg: msg}
}

const insertArchiveSQL = `INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw) VALUES `

// rowsPerStatement bounds the rows of one INSERT: 8 parameters a row stay
// within SQLite's 32766 parameters a statement (the archive log's seq is
// written out in the statement, not bound). As many as the default
// storage.group_commit_max_batch (4000), so that a full batch is still one
// statement: split in two it costs statement journals (at 4,096 rows in
// two statements BenchmarkInsertArchiveBatch took twice the CPU a row of
// one 4,000-row statement).
const rowsPerStatement = 32766 / 8

// archiveInsert returns the INSERT statement into the archive for rows
// and its arguments.
func archiveInsert(rows []archiveRow) (string, []any) {
	return insertRows(insertArchiveSQL, rows, 0)
}

// insertRows returns a multi-row INSERT of rows, head naming the table
// and columns, and its arguments. With first > 0 each row starts with its
// seq (first, first+1, …) written out (the archive log's).
func insertRows(head string, rows []archiveRow, first int64) (string, []any) {
	var b strings.Builder
	b.Grow(len(head) + len(rows)*len("(1234567890,?,?,?,?,?,?,?,?),"))
	b.WriteString(head)
	args := make([]any, 0, 8*len(rows))
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		if first > 0 {
			b.WriteString(strconv.FormatInt(first+int64(i), 10))
			b.WriteByte(',')
		}
		b.WriteString("?,?,?,?,?,?,?,?)")
		args = append(args, r.owner, r.ts, r.id, r.msg.With, r.msg.WithResource, r.msg.OriginID, r.msg.FromFull, blob(r.msg.Raw))
	}
	return b.String(), args
}

func (s *Store) appendArchive(ctx context.Context, r archiveRow) error {
	return s.log.appendRows(ctx, []archiveRow{r})
}

// rowSpecific reports whether a failed batch may have failed because of
// one of its rows (a constraint, a value too big or of the wrong type),
// so that retrying row by row lets the others through.
func rowSpecific(err error) bool {
	var se *sqlitedrv.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // primary result code
	case 18, 19, 20: // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH
		return true
	}
	return false
}

// archiveWriteTimeout bounds one group-commit transaction: a batch is
// not bound to any one caller's context.
const archiveWriteTimeout = 30 * time.Second

// newArchiveWriter returns the committer that AppendArchive writes
// through: with group commit, concurrent rows share one transaction;
// without, each row is its own.
func (s *Store) newArchiveWriter(o groupcommit.Options) *groupcommit.Committer[archiveRow] {
	return groupcommit.New(o, groupcommit.Config[archiveRow]{
		Batch: s.log.appendRows,
		One:   s.appendArchive,
		Retry: rowSpecific,
		Context: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), archiveWriteTimeout)
		},
		Observe: groupcommit.ObserveArchive("sqlite"),
	})
}
