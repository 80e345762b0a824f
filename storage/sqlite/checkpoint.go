package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints run on a connection of their own, not on the writer.
//
// With wal_autocheckpoint the commit that found the WAL over the limit
// copied the whole WAL back into the database file and fsynced both
// before it returned: under archive load one group commit in ten stalled
// for that long (12 % of the writer's CPU in BenchmarkInsertArchiveBatch,
// more in wall-clock time, since the fsyncs wait for the disk), and every
// message waiting for that commit waited too. Now a checkpointer
// goroutine copies committed frames into the database file every
// checkpointEvery (PASSIVE: it never blocks the writer or the readers).
//
// The WAL starts over (is written again from its beginning) only when a
// write transaction begins while every frame has been copied; under
// steady load commits land while the checkpointer copies, so that never
// happens by itself. Once the WAL holds walRestartPages the checkpointer
// therefore takes the write connection for a moment, between two write
// transactions, and copies there the frames committed since its last
// pass (a commit or two, not the whole WAL). The next write transaction
// then starts the WAL over, unless a reader still uses it: the WAL grows
// meanwhile (as before), nobody waits for readers. journal_size_limit
// truncates what a burst made the file grow to.
const checkpointEvery = 250 * time.Millisecond

// walRestartPages: 40 MiB of 4 KiB pages, the previous wal_autocheckpoint
// bound. A variable for tests.
var walRestartPages = 10000

type checkpointer struct {
	db *sql.DB // its own connection
	w  *sql.DB // the write connection
	// limit is walRestartPages when started.
	limit int
	stop  chan struct{}
	done  sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// For tests: frames found copied into the database file, and passes
	// on the write connection.
	copied, onWriter atomic.Int64
}

func startCheckpointer(file string, w *sql.DB) (*checkpointer, error) {
	db, err := openOne(dsn(file))
	if err != nil {
		return nil, err
	}
	c := &checkpointer{db: db, w: w, limit: walRestartPages, stop: make(chan struct{})}
	c.done.Add(1)
	go c.loop()
	return c, nil
}

func (c *checkpointer) loop() {
	defer c.done.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if err := c.checkpoint(); err != nil {
			slog.Warn("sqlite: checkpoint failed", "err", err)
		}
	}
}

// checkpoint copies what it can without waiting; when the WAL has grown
// past walRestartPages, it copies the rest on the write connection, so
// that the next write transaction starts the WAL over.
func (c *checkpointer) checkpoint() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*busyTimeout)
	defer cancel()
	log, done, err := passive(ctx, c.db)
	c.copied.Add(int64(done))
	if err != nil || log < c.limit {
		return err
	}
	// Once more here, so that what is left for the writer is only what
	// was committed during a pass.
	if _, _, err := passive(ctx, c.db); err != nil {
		return err
	}
	conn, err := c.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	c.onWriter.Add(1)
	_, _, err = passive(ctx, conn)
	return err
}

// passive runs a PASSIVE checkpoint on q: the WAL's frames and how many
// of them are now in the database file.
func passive(ctx context.Context, q querier) (log, done int, err error) {
	var busy int
	err = q.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done)
	return log, max(done, 0), err
}

// close stops the goroutine and closes its connection; a Store may be
// closed more than once.
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() {
		close(c.stop)
		c.done.Wait()
		c.closeErr = c.db.Close()
	})
	return c.closeErr
}
