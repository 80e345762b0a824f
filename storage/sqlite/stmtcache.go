package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver this one wraps
)

// driverName is the database/sql driver the Store opens: modernc's SQLite
// driver with a cache of prepared statements per connection. database/sql
// prepares the text of every Query and Exec anew on the driver, and SQLite
// parsing and planning a statement costs more than running the simple
// lookups the server makes on every login and message (credentials,
// account checks): a fifth of a login storm's CPU in profiles.
const driverName = "parley-sqlite"

var registerOnce sync.Once

func registerDriver() {
	registerOnce.Do(func() {
		// Wrap the driver modernc registered, which carries the SQL
		// functions registered on it (parley_fts_text).
		db, err := sql.Open("sqlite", "")
		if err != nil {
			panic(err) // sql.Open of a registered driver does not fail
		}
		d := db.Driver()
		_ = db.Close()
		sql.Register(driverName, cachingDriver{d})
	})
}

// Statements cached per connection, and the longest text cached (a
// multi-row INSERT of a batch is long and seldom the same twice).
const (
	stmtCacheSize   = 128
	maxCachedLength = 2048
)

type cachingDriver struct{ d driver.Driver }

func (d cachingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.d.Open(name)
	if err != nil {
		return nil, err
	}
	return &cachingConn{inner: c, stmts: map[string]*cachedStmt{}}, nil
}

// innerConn is what modernc's connection implements and the cache uses or
// passes on.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is one connection. database/sql uses a connection from one
// goroutine at a time, so the cache needs no lock.
type cachingConn struct {
	inner driver.Conn
	stmts map[string]*cachedStmt
	tick  uint64
}

type cachedStmt struct {
	st   driver.Stmt
	busy bool // rows of it are open
	used uint64
}

func (c *cachingConn) in() innerConn { return c.inner.(innerConn) }

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }
func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.in().BeginTx(context.Background(), driver.TxOptions{})
}
func (c *cachingConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	return c.in().BeginTx(ctx, o)
}
func (c *cachingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.in().PrepareContext(ctx, q)
}
func (c *cachingConn) Ping(ctx context.Context) error         { return c.in().Ping(ctx) }
func (c *cachingConn) ResetSession(ctx context.Context) error { return c.in().ResetSession(ctx) }
func (c *cachingConn) IsValid() bool                          { return c.in().IsValid() }

func (c *cachingConn) Close() error {
	for q, s := range c.stmts {
		_ = s.st.Close()
		delete(c.stmts, q)
	}
	return c.inner.Close()
}

// cacheable reports whether a statement text is worth keeping: short, and
// one statement (a script is parsed statement by statement anyway).
func cacheable(q string) bool {
	return len(q) <= maxCachedLength && !strings.Contains(strings.TrimRight(q, "; \t\r\n"), ";")
}

// stmt returns the cached statement for q, preparing it if needed; nil when
// q is not cached or its statement is in use.
func (c *cachingConn) stmt(ctx context.Context, q string) (*cachedStmt, error) {
	if !cacheable(q) {
		return nil, nil
	}
	c.tick++
	if s, ok := c.stmts[q]; ok {
		if s.busy {
			return nil, nil
		}
		s.used = c.tick
		return s, nil
	}
	st, err := c.in().PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(c.stmts) >= stmtCacheSize {
		c.evict()
	}
	s := &cachedStmt{st: st, used: c.tick}
	c.stmts[q] = s
	return s, nil
}

// evict closes the least recently used statement that is not in use.
func (c *cachingConn) evict() {
	var oldest string
	var at uint64
	for q, s := range c.stmts {
		if !s.busy && (oldest == "" || s.used < at) {
			oldest, at = q, s.used
		}
	}
	if oldest != "" {
		_ = c.stmts[oldest].st.Close()
		delete(c.stmts, oldest)
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.in().ExecContext(ctx, q, args)
	}
	return s.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.in().QueryContext(ctx, q, args)
	}
	r, err := s.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: r, s: s}, nil
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}
