package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The archive log: archive rows are committed first into a table of their
// own in a second database file, and moved from there into parley.db's
// archive table in large batches by a background goroutine (the mover).
//
// Why: an archive row lands in five B-trees of parley.db (the table and
// indexes led by the owner), so a commit dirties a few pages per owner it
// holds, and every dirty page is a WAL frame written (two write system
// calls in SQLite) and later copied back. Under chat load a group commit
// holds a few rows of each of hundreds of owners: at 5,000 msg/s the
// writer spent a third of its time writing WAL frames, a commit took
// 25–50 ms, and every message waited for one (store before forward).
// The log is a table appended at its end, without an index, so a commit
// dirties pages in proportion to the bytes it adds; the mover
// inserts thousands of rows a commit, a few dozen per owner, on a write
// lock of its own (another file), so no message waits for it.
//
// Readers see the log through settle: before a query or a change of an
// owner's archive, the rows of that owner still in the log are moved
// (readers that cover every owner wait for the whole log). Origin-id
// lookups (FindArchivedByOrigin) run while a message is routed and must
// not wait: the origin-ids of the rows in the log are kept in memory,
// since an index on them in the log would be written all over at each
// commit (a third of the append's cost).
//
// Crash safety: a row is moved by committing it into parley.db (fsynced:
// synchronous FULL for that transaction) and then deleting it from the
// log, so a crash between the two leaves it in both. Moves therefore use
// INSERT OR IGNORE, which skips a row already in the archive
// (archive_by_id is unique on owner and id; ids are never reused). The
// same makes a second process on the data directory harmless (an admin
// command opening the store while the server runs moves rows too): each
// deletes from the log only the seqs it moved, and seqs are never given
// twice (AUTOINCREMENT keeps the highest ever given). The delete is
// fsynced too: otherwise a power cut could bring back rows whose owner's
// archive was deleted since, and the next start would move them again.

// LogFileName is the archive log's database file, beside FileName.
const LogFileName = "parley-archive-log.db"

const archiveLogSchema = `CREATE TABLE IF NOT EXISTS archive_log (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order; never reused
	owner         TEXT    NOT NULL,
	ts            INTEGER NOT NULL,
	id            TEXT    NOT NULL,
	with_bare     TEXT    NOT NULL,
	with_resource TEXT    NOT NULL,
	origin_id     TEXT    NOT NULL,
	from_full     TEXT    NOT NULL,
	raw           BLOB    NOT NULL
);
DROP INDEX IF EXISTS archive_log_by_origin`

const (
	// moveEvery: rows wait at most this long in the log when nobody
	// asks for them (a reader's settle moves them at once). The longer,
	// the more rows of each owner a move holds (each owner's index pages
	// are written once a move).
	moveEvery = time.Second
	// maxMoveRows bounds a move: one statement that holds the write
	// connection (other writes to parley.db wait) for ~0.4 s at most. At
	// 10,000 archived msg/s, 16,384 rather than 8,192 rows a move (and
	// moveEvery 1 s rather than 0.5 s) took 6–12 % less server CPU.
	maxMoveRows = 16384
	// moveRetry: the wait after a failed move.
	moveRetry = time.Second
)

// logMaxBytes bounds the raw bytes waiting in the log: appends wait for
// the mover beyond it, so that a load the mover cannot keep up with
// shows as commit latency rather than as a log that grows without end.
// 32 MiB: over a second of the mover's work at its fastest. A variable
// for tests.
var logMaxBytes int64 = 32 << 20

// logRowOverhead is what a row costs in the log beyond its raw XML (the
// other columns, and its pendingRow in memory), counted against
// logMaxBytes.
const logRowOverhead = 200

var (
	logBacklog = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "storage", Name: "archive_log_rows",
		Help: "SQLite: archive rows committed to the archive log and not yet moved into the archive.",
	})
	logMoves = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "storage", Name: "archive_log_move_rows",
		Help:    "SQLite: rows per move from the archive log into the archive.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})
	logMoveErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "storage", Name: "archive_log_move_errors_total",
		Help: "SQLite: failed moves from the archive log into the archive (retried).",
	})
	logDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "storage", Name: "archive_log_dropped_total",
		Help: "SQLite: archive-log rows the archive refused (logged one by one); none is expected.",
	})
)

func init() {
	prometheus.MustRegister(logBacklog, logMoves, logMoveErrors, logDropped)
}

// archiveLog is the log's connections and the mover's state.
type archiveLog struct {
	w    *sql.DB // one connection: appends and deletes
	r    *sql.DB // reads
	ckpt *checkpointer

	// appendMu makes seq order commit order: the mover takes the rows
	// it read (up to some seq) as all those committed up to it.
	appendMu sync.Mutex
	seq      int64 // last seq given

	mu        sync.Mutex
	committed int64                    // last seq committed
	moved     int64                    // every committed row with seq <= moved is in the archive
	owners    map[string]*pendingOwner // the rows committed and not moved, by owner
	backlog   int64                    // their bytes (logMaxBytes): raw XML and logRowOverhead each
	rows      int64                    // how many
	changed   chan struct{}            // closed and replaced when moved or backlog change
	err       error                    // the last move's error, until one succeeds

	kick    chan struct{} // buffered 1: a reader waits
	stop    chan struct{}
	stopped chan struct{} // closed when the mover has ended
	done    sync.WaitGroup
	once    sync.Once
}

// pendingOwner is an owner's rows in the log.
type pendingOwner struct {
	rows  []pendingRow // oldest first
	bytes int64        // their raw XML (what account_usage counts)
}

type pendingRow struct {
	seq, bytes, ts   int64
	id, origin, from string // origin "": none, and id and from not kept
}

// addPending notes a committed row; l.mu is held.
func (l *archiveLog) addPending(owner string, r pendingRow) {
	p := l.owners[owner]
	if p == nil {
		p = &pendingOwner{}
		l.owners[owner] = p
	}
	if r.origin == "" {
		r.id, r.from = "", ""
	}
	p.rows = append(p.rows, r)
	p.bytes += r.bytes
	l.backlog += r.bytes + logRowOverhead
	l.rows++
}

// dropPending forgets owner's rows up to seq last (moved or deleted);
// l.mu is held.
func (l *archiveLog) dropPending(owner string, last int64) {
	p := l.owners[owner]
	if p == nil {
		return
	}
	i := 0
	for ; i < len(p.rows) && p.rows[i].seq <= last; i++ {
		p.bytes -= p.rows[i].bytes
		l.backlog -= p.rows[i].bytes + logRowOverhead
		l.rows--
	}
	if i == len(p.rows) {
		delete(l.owners, owner)
	} else {
		p.rows = p.rows[i:]
	}
}

// openArchiveLog opens (creating) the log beside file and reads what it
// holds; the mover starts with startMover.
func openArchiveLog(ctx context.Context, dir string) (*archiveLog, error) {
	file := filepath.Join(dir, LogFileName)
	w, err := openOne(dsn(file, writerPragmas...) + "&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	l := &archiveLog{w: w, owners: map[string]*pendingOwner{}, changed: make(chan struct{}),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	fail := func(err error) (*archiveLog, error) {
		l.closeConns()
		return nil, fmt.Errorf("sqlite: archive log %s: %w", file, err)
	}
	for _, stmt := range strings.Split(archiveLogSchema, ";\n") {
		if _, err := w.ExecContext(ctx, stmt); err != nil {
			return fail(err)
		}
	}
	if l.r, err = sql.Open(driverName, dsn(file, "query_only(1)")); err != nil {
		return fail(err)
	}
	l.r.SetMaxOpenConns(4)
	l.r.SetMaxIdleConns(4)
	rows, err := w.QueryContext(ctx, `SELECT seq, owner, length(CAST(raw AS BLOB)), ts, id, origin_id, from_full FROM archive_log ORDER BY seq`)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var owner string
		var r pendingRow
		if err := rows.Scan(&r.seq, &owner, &r.bytes, &r.ts, &r.id, &r.origin, &r.from); err != nil {
			rows.Close()
			return fail(err)
		}
		l.addPending(owner, r)
		l.seq = max(l.seq, r.seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	var given sql.NullInt64
	if err := w.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'archive_log'`).Scan(&given); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fail(err)
	}
	l.seq = max(l.seq, given.Int64)
	l.committed = l.seq
	if err := w.QueryRowContext(ctx, `SELECT coalesce(min(seq) - 1, ?) FROM archive_log`, l.seq).Scan(&l.moved); err != nil {
		return fail(err)
	}
	logBacklog.Set(float64(l.rows))
	if l.ckpt, err = startCheckpointer(file, w); err != nil {
		return fail(err)
	}
	return l, nil
}

func (l *archiveLog) closeConns() error {
	var errs []error
	if l.ckpt != nil {
		errs = append(errs, l.ckpt.close())
	}
	if l.r != nil {
		errs = append(errs, l.r.Close())
	}
	return errors.Join(append(errs, l.w.Close())...)
}

const insertLogSQL = `INSERT INTO archive_log (seq, owner, ts, id, with_bare, with_resource, origin_id, from_full, raw) VALUES `

// appendRows commits rows to the log, atomically. It waits first while
// the log holds logMaxBytes (the mover is behind).
func (l *archiveLog) appendRows(ctx context.Context, rows []archiveRow) error {
	if err := l.waitRoom(ctx); err != nil {
		return err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	first := l.seq + 1
	var err error
	if len(rows) <= rowsPerStatement {
		q, args := insertRows(insertLogSQL, rows, first)
		_, err = l.w.ExecContext(ctx, q, args...)
	} else {
		err = inTx(ctx, l.w, func(tx *sql.Tx) error {
			for i := 0; i < len(rows); i += rowsPerStatement {
				part := rows[i:min(len(rows), i+rowsPerStatement)]
				q, args := insertRows(insertLogSQL, part, first+int64(i))
				if _, err := tx.ExecContext(ctx, q, args...); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Past these seqs even when it failed: should a failed commit have
	// gone through after all, its seqs are not given again.
	l.seq += int64(len(rows))
	if err != nil {
		return err
	}
	l.mu.Lock()
	for i, r := range rows {
		l.addPending(r.owner, pendingRow{seq: first + int64(i), bytes: int64(len(r.msg.Raw)), ts: r.ts,
			id: r.id, origin: r.msg.OriginID, from: r.msg.FromFull})
	}
	l.committed = l.seq
	logBacklog.Set(float64(l.rows))
	full := l.rows >= maxMoveRows
	l.mu.Unlock()
	if full {
		l.wake()
	}
	return nil
}

// waitRoom waits while the log is full.
func (l *archiveLog) waitRoom(ctx context.Context) error {
	for {
		l.mu.Lock()
		full, ch := l.backlog >= logMaxBytes, l.changed
		l.mu.Unlock()
		if !full {
			return nil
		}
		l.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *archiveLog) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// settle returns once every row of owner committed so far (of every
// owner when owner is "") is in the archive.
func (l *archiveLog) settle(ctx context.Context, owner string) error {
	l.mu.Lock()
	target := l.committed
	if owner != "" {
		target = 0 // none waits
		if p := l.owners[owner]; p != nil {
			target = p.rows[len(p.rows)-1].seq
		}
	}
	l.mu.Unlock()
	for {
		l.mu.Lock()
		moved, ch, err := l.moved, l.changed, l.err
		l.mu.Unlock()
		if moved >= target {
			return nil
		}
		l.wake()
		select {
		case <-ch:
		case <-l.stopped:
			return errors.New("sqlite: store closed")
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("sqlite: archive rows not yet moved from the archive log: %w", err)
			}
			return ctx.Err()
		}
	}
}

// pendingBytes is the raw XML of owner's rows in the log.
func (l *archiveLog) pendingBytes(owner string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.owners[owner]; p != nil {
		return p.bytes
	}
	return 0
}

// startMover starts the goroutine that moves the log's rows into the
// archive of s.
func (l *archiveLog) startMover(s *Store) {
	l.done.Add(1)
	go l.mover(s)
}

func (l *archiveLog) mover(s *Store) {
	defer l.done.Done()
	defer close(l.stopped)
	t := time.NewTicker(moveEvery)
	defer t.Stop()
	for {
		stopping := false
		select {
		case <-l.stop:
			stopping = true
		case <-l.kick:
		case <-t.C:
		}
		for {
			n, err := l.moveOnce(s)
			if err != nil {
				logMoveErrors.Inc()
				slog.Error("sqlite: moving rows from the archive log into the archive failed; retrying", "err", err)
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				if stopping {
					return // the rows stay in the log for the next start
				}
				select {
				case <-l.stop:
					return
				case <-time.After(moveRetry):
				}
				continue
			}
			if n < maxMoveRows {
				break
			}
		}
		if stopping {
			return
		}
	}
}

// moveOnce moves the oldest rows of the log (up to maxMoveRows) and
// returns how many it moved.
func (l *archiveLog) moveOnce(s *Store) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), archiveWriteTimeout)
	defer cancel()
	l.mu.Lock()
	// Seqs are given in commit order (appendMu), so every row up to
	// committed is committed.
	first, last := l.moved+1, min(l.committed, l.moved+maxMoveRows)
	l.mu.Unlock()
	if last < first {
		return 0, nil
	}
	if err := s.moveRange(ctx, first, last); err != nil {
		if !rowSpecific(err) {
			return 0, err
		}
		// One row the archive refuses: row by row.
		if err := l.moveRows(ctx, s, last); err != nil {
			return 0, err
		}
	}
	// Failing here leaves them in both; the next move skips them.
	if err := withConn(ctx, l.w, "", func(conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, `DELETE FROM archive_log WHERE seq BETWEEN ? AND ?`, first, last)
		return err
	}); err != nil {
		return 0, err
	}
	l.mu.Lock()
	n := last - l.moved
	l.moved = last
	l.err = nil
	for o := range l.owners {
		l.dropPending(o, last)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	logBacklog.Set(float64(l.rows))
	l.mu.Unlock()
	logMoves.Observe(float64(n))
	return int(n), nil
}

// moveRange copies the log's rows first…last into the archive in one
// statement on the write connection, with the log attached for it: the
// rows go from one B-tree to the others inside SQLite. Rows already there
// are skipped (see above).
func (s *Store) moveRange(ctx context.Context, first, last int64) error {
	return withConn(ctx, s.w, s.logFile, func(conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, `INSERT OR IGNORE INTO main.archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
			SELECT owner, ts, id, with_bare, with_resource, origin_id, from_full, raw FROM alog.archive_log
			WHERE seq BETWEEN ? AND ? ORDER BY seq`, first, last)
		return err
	})
}

// withConn runs fn on db's connection with synchronous FULL (its commits
// fsynced: the log forgets moved rows next, or has forgotten them) and,
// when attach is set, that file attached as alog. The connection is put
// back as it was, or dropped from the pool if it cannot be (the pool then
// opens a new one with the DSN's pragmas): a writer left at FULL would
// fsync every commit, one left with alog attached would lock the log at
// every BEGIN IMMEDIATE. Those statements run without fn's deadline, so
// that a deadline cannot strike between them.
func withConn(ctx context.Context, db *sql.DB, attach string, fn func(conn *sql.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	bg, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	var attached, full bool
	defer func() {
		var errs []error
		if full {
			_, err := conn.ExecContext(bg, `PRAGMA main.synchronous = NORMAL`)
			errs = append(errs, err)
		}
		if attached {
			_, err := conn.ExecContext(bg, `DETACH DATABASE alog`)
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			slog.Warn("sqlite: a write connection could not be reset; it is replaced", "err", err)
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if attach != "" {
		attached = true
		if _, err := conn.ExecContext(bg, `ATTACH DATABASE ? AS alog`, attach); err != nil {
			return err
		}
	}
	full = true
	if _, err := conn.ExecContext(bg, `PRAGMA main.synchronous = FULL`); err != nil {
		return err
	}
	return fn(conn)
}

// moveRows moves the rows up to last one by one, dropping (and logging)
// those the archive refuses, so that they cannot hold back the others.
func (l *archiveLog) moveRows(ctx context.Context, s *Store, last int64) error {
	for {
		rows, err := l.oldest(ctx, last)
		if err != nil || len(rows) == 0 {
			return err
		}
		for _, r := range rows {
			if err := s.insertMoved(ctx, r.archiveRow); err != nil {
				if !rowSpecific(err) {
					return err
				}
				logDropped.Inc()
				slog.Error("sqlite: the archive refused a row of the archive log; it is dropped", "owner", r.owner, "id", r.id, "err", err)
			}
			if err := withConn(ctx, l.w, "", func(conn *sql.Conn) error {
				_, err := conn.ExecContext(ctx, `DELETE FROM archive_log WHERE seq = ?`, r.seq)
				return err
			}); err != nil {
				return err
			}
		}
	}
}

// loggedRow is a row read back from the log.
type loggedRow struct {
	seq int64
	archiveRow
}

// oldest reads the log's first rows up to seq last, at most 1,000, in
// seq order.
func (l *archiveLog) oldest(ctx context.Context, last int64) ([]loggedRow, error) {
	q, err := l.r.QueryContext(ctx, `SELECT seq, owner, ts, id, with_bare, with_resource, origin_id, from_full, raw
		FROM archive_log WHERE seq <= ? ORDER BY seq LIMIT 1000`, last)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	var rows []loggedRow
	for q.Next() {
		var r loggedRow
		m := &r.msg
		if err := q.Scan(&r.seq, &r.owner, &r.ts, &r.id, &m.With, &m.WithResource, &m.OriginID, &m.FromFull, &m.Raw); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, q.Err()
}

// insertMoved commits one row into the archive, fsynced (see moveRange).
func (s *Store) insertMoved(ctx context.Context, r archiveRow) error {
	return withConn(ctx, s.w, "", func(conn *sql.Conn) error {
		q, args := insertRows(`INSERT OR IGNORE INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw) VALUES `, []archiveRow{r}, 0)
		_, err := conn.ExecContext(ctx, q, args...)
		return err
	})
}

// deleteOwner deletes owner's rows from the log, before its archive is
// deleted: a move that read them has then already inserted them (its
// statement held parley.db's write lock first), and no later one can.
// Appends wait meanwhile, so that the rows forgotten in memory are
// exactly those deleted.
func (l *archiveLog) deleteOwner(ctx context.Context, owner string) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if _, err := l.w.ExecContext(ctx, `DELETE FROM archive_log WHERE owner = ?`, owner); err != nil {
		return err
	}
	l.mu.Lock()
	l.dropPending(owner, l.seq)
	logBacklog.Set(float64(l.rows))
	l.mu.Unlock()
	return nil
}

// findByOrigin is FindArchivedByOrigin in the log: the newest (by
// timestamp, then id) of owner's rows there with that origin-id from
// fromFull at since or later. A row moved meanwhile is not found here; it
// is in the archive by then.
func (l *archiveLog) findByOrigin(ctx context.Context, owner, originID, fromFull string, since int64) (archiveRow, bool, error) {
	var best pendingRow
	l.mu.Lock()
	if p := l.owners[owner]; p != nil && originID != "" {
		for _, r := range p.rows {
			if r.origin == originID && r.from == fromFull && r.ts >= since &&
				(best.seq == 0 || r.ts > best.ts || r.ts == best.ts && r.id > best.id) {
				best = r
			}
		}
	}
	l.mu.Unlock()
	r := archiveRow{owner: owner}
	if best.seq == 0 {
		return r, false, nil
	}
	m := &r.msg
	err := l.r.QueryRowContext(ctx, `SELECT ts, id, with_bare, with_resource, origin_id, from_full, raw FROM archive_log WHERE seq = ?`, best.seq).
		Scan(&r.ts, &r.id, &m.With, &m.WithResource, &m.OriginID, &m.FromFull, &m.Raw)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

// close stops the mover after a last move of whatever the log holds.
func (l *archiveLog) close() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		err = l.closeConns()
	})
	return err
}
