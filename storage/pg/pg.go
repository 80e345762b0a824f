// Package pg is Parley's PostgreSQL storage backend, for production and
// for clusters of several Parley nodes sharing one database. It talks to
// the server through a pgx/v5 connection pool.
//
// Behaviour mirrors storage/sqlite, which the contract suite in
// storage/storagetest pins down; where PostgreSQL needs extra care to
// keep SQLite's guarantees (SQLite has a single writer, PostgreSQL many),
// the method comments say how.
//
// Every call runs under Config.QueryTimeout, so a database that has gone
// away or hangs never blocks a caller for longer than that; such failures
// are recognised by IsUnavailable. The pool reconnects by itself once the
// database is back.
package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

// DefaultQueryTimeout is used when Config.QueryTimeout is zero.
const DefaultQueryTimeout = 5 * time.Second

// Config configures Open.
type Config struct {
	// DSN is a libpq connection string, URL ("postgres://user@host/db")
	// or key=value ("host=... dbname=...") form.
	DSN string
	// MaxConns bounds the pool; 0 means pgxpool's default
	// (max(4, number of CPUs)).
	MaxConns int
	// Schema, when set, is the only schema on the search_path of every
	// connection, and Open creates it if it does not exist. Meant for
	// tests and for sharing one database between installations.
	Schema string
	// Migrate applies pending migrations at Open. Callers normally set
	// it; without it Open refuses a database whose schema is not up to
	// date.
	Migrate bool
	// QueryTimeout bounds every call (including waiting for a pooled
	// connection); DefaultQueryTimeout when zero.
	QueryTimeout time.Duration
	// PartitionMonthsAhead is how many months after the current one get
	// an archive partition ahead of time (see EnsurePartitions), at Open
	// and then daily until Close; DefaultPartitionMonthsAhead when zero.
	// Negative disables partition maintenance (rows of months without a
	// partition then go to the default partition).
	PartitionMonthsAhead int
	// Logger receives partition maintenance failures; slog.Default()
	// when nil.
	Logger *slog.Logger
	// GroupCommit batches concurrent AppendArchive calls into shared
	// transactions (see storage/groupcommit).
	GroupCommit groupcommit.Options
	// Fulltext says whether the XEP-0431 full-text index is kept (see
	// storage.FulltextIndex); switching it on fills the index for the
	// rows archived meanwhile before Open returns. The zero value leaves
	// the database as it is.
	Fulltext storage.FulltextIndex
}

// Store implements storage.Store on PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	timeout time.Duration

	log       *slog.Logger
	stop      chan struct{} // closed by Close: stops the partition loop
	loopDone  chan struct{} // closed when the partition loop has ended; nil without loop
	closeOnce sync.Once

	archiveW *groupcommit.Committer[archiveRow] // AppendArchive's writer
}

var (
	_ storage.Store             = (*Store)(nil)
	_ storage.PushRegistrations = (*Store)(nil)
)

// Open connects to the database, applies migrations when cfg.Migrate is
// set (otherwise checks that none is pending) and returns the Store.
// Errors name the server and database but never the password.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, openError(cfg.DSN, nil, err)
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = int32(cfg.MaxConns)
	}
	timeout := cfg.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	if cfg.Schema != "" {
		pcfg.ConnConfig.RuntimeParams["search_path"] = quoteIdent(cfg.Schema)
	}
	// A dead server must not make a connection attempt outlast a call.
	if pcfg.ConnConfig.ConnectTimeout == 0 || pcfg.ConnConfig.ConnectTimeout > timeout {
		pcfg.ConnConfig.ConnectTimeout = timeout
	}

	parent := ctx
	// Opening is not a query: a short QueryTimeout must not fail a start
	// on a busy machine.
	ctx, cancel := context.WithTimeout(ctx, max(timeout, 30*time.Second))
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, openError(cfg.DSN, &pcfg.ConnConfig.Config, err)
	}
	s := &Store{pool: pool, timeout: timeout, stop: make(chan struct{})}

	if cfg.Schema != "" {
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoteIdent(cfg.Schema)); err != nil {
			// Two processes creating it at once: one loses the race on
			// the catalog's unique index, and the schema is there.
			if !isSQLState(err, "23505") && !isSQLState(err, "42P06") {
				pool.Close()
				return nil, openError(cfg.DSN, &pcfg.ConnConfig.Config, fmt.Errorf("create schema %s: %w", cfg.Schema, err))
			}
		}
	}

	// Migrations may take longer than one query (building an index on a
	// big table); they get a generous bound of their own.
	mctx, mcancel := context.WithTimeout(parent, max(time.Minute, 10*timeout))
	defer mcancel()
	if err := s.prepareSchema(mctx, cfg.Migrate); err != nil {
		pool.Close()
		return nil, openError(cfg.DSN, &pcfg.ConnConfig.Config, err)
	}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, openError(cfg.DSN, &pcfg.ConnConfig.Config, err)
	}
	// Without a bound of its own: a backfill covers the whole archive, in
	// short transactions.
	if err := s.setFulltext(parent, cfg.Fulltext); err != nil {
		pool.Close()
		return nil, openError(cfg.DSN, &pcfg.ConnConfig.Config, err)
	}
	if months := cfg.PartitionMonthsAhead; months >= 0 {
		if months == 0 {
			months = DefaultPartitionMonthsAhead
		}
		s.log = cfg.Logger
		if s.log == nil {
			s.log = slog.Default()
		}
		// Not fatal: without a partition for its month a message goes to
		// the default partition, and the daily loop tries again (a
		// database role without the right to create tables must not keep
		// the server from starting).
		if _, err := s.EnsurePartitions(mctx, time.Now(), months); err != nil {
			s.log.Warn("storage: creating archive partitions ahead of time failed; retrying daily",
				"err", openError(cfg.DSN, &pcfg.ConnConfig.Config, err))
		}
		s.loopDone = make(chan struct{})
		go s.partitionLoop(months)
	}
	s.archiveW = s.newArchiveWriter(cfg.GroupCommit)
	return s, nil
}

func (s *Store) prepareSchema(ctx context.Context, apply bool) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if apply {
		_, err := migrate(ctx, conn.Conn(), embeddedMigrations())
		return err
	}
	return checkCurrent(ctx, conn.Conn(), embeddedMigrations())
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.queryRow(ctx, `SELECT 1`, nil, &one)
}

// Close stops the partition maintenance loop, writes the archive rows
// queued for group commit and closes the pool, waiting for connections in
// use to be returned.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.archiveW.Close()
		close(s.stop)
		if s.loopDone != nil {
			<-s.loopDone
		}
		s.pool.Close()
	})
	return nil
}

// run calls fn under the query timeout. When that timeout (and not the
// caller's own deadline) cuts fn short, the error also matches ErrTimeout.
func (s *Store) run(ctx context.Context, fn func(ctx context.Context) error) error {
	tctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errTimeoutCause)
	defer cancel()
	err := fn(tctx)
	if err != nil && ctx.Err() == nil && context.Cause(tctx) == errTimeoutCause {
		err = fmt.Errorf("%w (%v): %w", ErrTimeout, s.timeout, err)
	}
	return err
}

// write runs fn in a read-committed transaction, committing when fn
// returns nil, all under the query timeout.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.run(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}

// read runs fn in a read-only repeatable-read transaction, so that several
// queries see one snapshot of the database.
func (s *Store) read(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.run(ctx, func(ctx context.Context) error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
			func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}

// batch sends the queued statements in one round trip and calls fn to
// read their results, all under the query timeout. Outside a transaction
// PostgreSQL runs such a pipeline as one implicit transaction: it commits
// only if every statement succeeds, and locks taken by one statement are
// held until the end (yet in read committed each statement still gets a
// fresh snapshot, taken after the locks before it were granted).
func (s *Store) batch(ctx context.Context, b *pgx.Batch, fn func(br pgx.BatchResults) error) error {
	return s.run(ctx, func(ctx context.Context) error {
		br := s.pool.SendBatch(ctx, b)
		err := fn(br)
		return errors.Join(err, br.Close())
	})
}

// exec runs one statement under the query timeout and returns the number
// of rows it affected.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (n int64, err error) {
	err = s.run(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// queryRow runs a query expected to return at most one row and scans it,
// under the query timeout; pgx.ErrNoRows when there is none.
func (s *Store) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	return s.run(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, sql, args...).Scan(dest...)
	})
}

// query runs a query under the query timeout and calls fn for each row.
func (s *Store) query(ctx context.Context, sql string, args []any, fn func(pgx.Rows) error) error {
	return s.run(ctx, func(ctx context.Context) error { return queryEach(ctx, s.pool, sql, args, fn) })
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func queryEach(ctx context.Context, q querier, sql string, args []any, fn func(pgx.Rows) error) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Times are stored as timestamptz, which keeps microseconds. Like
// storage/sqlite, finer parts are truncated, and times come back in UTC.
func micros(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

// blob keeps NOT NULL bytea columns happy when the caller passes nil: pgx
// sends a nil slice as NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func isSQLState(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
