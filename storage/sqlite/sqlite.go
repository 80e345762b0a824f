// Package sqlite is Parley's embedded storage backend: one SQLite database
// file in the data directory, accessed through the pure-Go modernc.org/sqlite
// driver.
//
// SQLite allows one writer at a time. Rather than letting goroutines race
// for the write lock and retry on SQLITE_BUSY, the Store funnels all writes
// through a pool of exactly one connection; Go's pool then queues writers
// (honouring their contexts) and readers use a separate pool, which WAL
// mode lets run alongside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file Open creates inside the data directory.
const FileName = "parley.db"

// busyTimeout covers lock waits that the single-writer pool cannot prevent:
// other processes on the same file (backups, admin tools) and WAL
// checkpoints.
const busyTimeout = 5 * time.Second

// Store implements storage.Store on SQLite.
type Store struct {
	w *sql.DB // exactly one connection: all writes
	r *sql.DB // read-only pool

	archiveW *groupcommit.Committer[archiveRow] // AppendArchive's writer (into log)
	log      *archiveLog                        // archive rows not yet in the archive (archivelog.go)
	logFile  string                             // its file
	ckpt     *checkpointer                      // the WAL's checkpoints
}

var _ storage.Store = (*Store)(nil)

// Open creates dir (mode 0700) if needed, opens or creates dir/parley.db and
// brings its schema up to date. It leaves the full-text index as it is
// (storage.FulltextKeep); see OpenOptions.
func Open(ctx context.Context, dir string) (*Store, error) {
	return open(ctx, dir, migrationsRoot(), true)
}

func migrationsRoot() fs.FS {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}

// open opens dir/parley.db; with migrateOK false it changes no schema and
// fails unless the database has exactly the migrations in migrations.
func open(ctx context.Context, dir string, migrations fs.FS, migrateOK bool) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, FileName)
	// The driver splits the DSN at the first '?', so such a path cannot be
	// expressed.
	if strings.ContainsRune(file, '?') {
		return nil, fmt.Errorf("sqlite: path %q must not contain '?'", file)
	}

	// Take the write lock at BEGIN, so a transaction never fails halfway
	// because it could not upgrade from a read lock.
	registerDriver()
	w, err := openOne(dsn(file, writerPragmas...) + "&_txlock=immediate")
	if err != nil {
		return nil, err
	}

	// The writer must create the file and switch it to WAL before any
	// reader opens it.
	check := migrate
	if !migrateOK {
		check = checkCurrent
	}
	if err := check(ctx, w, migrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}

	r, err := sql.Open(driverName, dsn(file, "query_only(1)"))
	if err != nil {
		w.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)

	ckpt, err := startCheckpointer(file, w)
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	l, err := openArchiveLog(ctx, dir)
	if err != nil {
		ckpt.close()
		w.Close()
		r.Close()
		return nil, err
	}
	s := &Store{w: w, r: r, ckpt: ckpt, log: l, logFile: filepath.Join(dir, LogFileName)}
	s.archiveW = s.newArchiveWriter(groupcommit.Options{})
	l.startMover(s)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return s, nil
}

// writerPragmas tune the one write connection. Archive rows of many users
// land on many B-tree pages, so every commit writes many pages to the WAL:
//
//   - cache_size: 32 MiB of page cache (the default is 2 MiB), so the
//     pages of the archive indexes that busy accounts touch stay cached
//     between commits instead of being read back from the WAL;
//   - wal_autocheckpoint: off; the checkpointer (checkpoint.go) copies
//     the WAL back into the database file on a connection of its own, so
//     that no commit waits for a checkpoint. journal_size_limit gives the
//     WAL file's space back when it starts over after a burst;
//   - temp_store: statement journals (a multi-statement transaction keeps
//     one per statement that could fail halfway) in memory, not in
//     temporary files.
var writerPragmas = []string{"journal_mode(WAL)", "cache_size(-32768)", "wal_autocheckpoint(0)",
	"journal_size_limit(67108864)", "temp_store(MEMORY)"}

// openOne opens a pool of exactly one connection, kept open.
func openOne(dsn string) (*sql.DB, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// dsn builds a driver DSN that sets the pragmas every connection needs
// plus extra ones.
func dsn(file string, extra ...string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	// Durability: see docs/production.md ("SQLite and power loss"). In
	// WAL mode NORMAL does not fsync at each commit, only at checkpoints:
	// a committed transaction survives the server process dying (it is in
	// the WAL file, in the operating system's cache), but a power cut or a
	// kernel crash can lose the commits since the last checkpoint. The
	// database is never corrupted either way.
	q.Add("_pragma", "synchronous(NORMAL)")
	for _, p := range extra {
		q.Add("_pragma", p)
	}
	return file + "?" + q.Encode()
}

// Ping checks that both pools can reach the database.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return err
	}
	return s.w.PingContext(ctx)
}

// Close writes the archive rows queued for group commit, moves the
// archive log's rows into the archive and closes the pools. The last
// connection to a file checkpoints its WAL back into it.
func (s *Store) Close() error {
	s.archiveW.Close()
	return errors.Join(s.log.close(), s.ckpt.close(), s.r.Close(), s.w.Close())
}

// write runs fn in a write transaction, committing when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return inTx(ctx, s.w, fn)
}

// inTx runs fn in a transaction on db, committing when fn returns nil.
func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// read runs fn in a read transaction, so that several queries see one
// snapshot of the database.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // nothing to commit
	return fn(tx)
}

// Times are stored as Unix microseconds: exact for every time.Time from
// year 1 on, and the same precision PostgreSQL keeps.
func toMicros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// blob keeps NOT NULL blob columns happy when the caller passes nil.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
