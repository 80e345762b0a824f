// Command parley-storebench measures the storage backends the way the
// server uses them: archive inserts (rows/s, several writers as several
// connections would be), MAM-style page queries (median and p99) and the
// drain of an offline queue, on SQLite and PostgreSQL side by side.
//
//	go run ./cmd/parley-storebench -messages 1000000 -users 1000
//	go run ./cmd/parley-storebench -backends sqlite -messages 100000
//
// PostgreSQL is PARLEY_TEST_POSTGRES or the local server; it runs in a
// schema of its own that is dropped at the end.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/pg"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

func main() {
	messages := flag.Int("messages", 1000000, "archived messages to seed")
	users := flag.Int("users", 1000, "users the messages are spread over")
	writers := flag.Int("writers", 8, "concurrent writers while seeding")
	queries := flag.Int("queries", 2000, "page queries to time")
	offline := flag.Int("offline", 10000, "offline messages to store and drain")
	backends := flag.String("backends", "sqlite,postgres", "comma-separated: sqlite, postgres")
	flag.Parse()
	for _, b := range strings.Split(*backends, ",") {
		st, cleanup, err := open(strings.TrimSpace(b))
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", b, err)
			os.Exit(1)
		}
		run(b, st, *messages, *users, *writers, *queries, *offline)
		cleanup()
	}
}

func open(backend string) (storage.Store, func(), error) {
	ctx := context.Background()
	switch backend {
	case "sqlite":
		dir, err := os.MkdirTemp("", "parley-storebench-")
		if err != nil {
			return nil, nil, err
		}
		st, err := sqlite.Open(ctx, dir)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close(); os.RemoveAll(dir) }, nil
	case "postgres":
		dsn := os.Getenv("PARLEY_TEST_POSTGRES")
		if dsn == "" {
			dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		}
		schema := "parley_bench_" + strings.ToLower(rand.Text()[:10])
		st, err := pg.Open(ctx, pg.Config{DSN: dsn, Schema: schema, Migrate: true, MaxConns: 16})
		if err != nil {
			return nil, nil, err
		}
		return st, func() {
			st.Close()
			// Drop the schema through a fresh store connection.
			if c, err := pg.Open(ctx, pg.Config{DSN: dsn, Migrate: false, PartitionMonthsAhead: -1}); err == nil {
				_ = c.DropSchema(ctx, schema)
				c.Close()
			}
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q", backend)
}

func run(name string, st storage.Store, messages, users, writers, queries, offline int) {
	ctx := context.Background()
	body := []byte("<message to='u1@example.org' from='u2@example.org/phone' type='chat' id='x'><body>" +
		strings.Repeat("hello ", 20) + "</body></message>")
	owner := func(i int) string { return fmt.Sprintf("u%d@example.org", i%users) }
	with := func(i int) string { return fmt.Sprintf("u%d@example.org", (i/users)%20) }

	// Seed: each writer appends its share, as that many sessions would.
	start := time.Now()
	base := start.Add(-time.Duration(messages) * time.Millisecond)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= messages {
					return
				}
				_, err := st.AppendArchive(ctx, owner(i), storage.ArchivedMessage{
					With: with(i), Timestamp: base.Add(time.Duration(i) * time.Millisecond),
					FromFull: with(i) + "/phone", Raw: body,
				})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	insert := time.Since(start)
	fmt.Printf("%-8s insert  %d messages, %d users, %d writers: %.0f rows/s (%v, %d errors)\n",
		name, messages, users, writers, float64(messages)/insert.Seconds(), insert.Round(time.Millisecond), failed.Load())

	// Queries: the 20 newest of one conversation, then the next page after
	// an id, as a client paging through history does.
	var newest, after []time.Duration
	for q := 0; q < queries; q++ {
		o := owner(q * 7919)
		t0 := time.Now()
		page, err := st.QueryArchive(ctx, o, storage.ArchiveQuery{With: with(q), Last: true, Max: 20})
		newest = append(newest, time.Since(t0))
		if err != nil || len(page.Messages) == 0 {
			continue
		}
		t0 = time.Now()
		_, _ = st.QueryArchive(ctx, o, storage.ArchiveQuery{PageAfter: page.Messages[0].ID, Max: 20})
		after = append(after, time.Since(t0))
	}
	fmt.Printf("%-8s query   20 newest of a conversation: median %v p99 %v (%d queries)\n", name, pct(newest, 50), pct(newest, 99), len(newest))
	fmt.Printf("%-8s query   next page after an id:       median %v p99 %v (%d queries)\n", name, pct(after, 50), pct(after, 99), len(after))

	// Offline queue: store, then drain as a login does.
	t0 := time.Now()
	for i := 0; i < offline; i++ {
		if _, err := st.StoreOffline(ctx, "drain@example.org", body, time.Now(), 0); err != nil {
			fmt.Fprintf(os.Stderr, "store offline: %v\n", err)
			return
		}
	}
	storeDur := time.Since(t0)
	t0 = time.Now()
	msgs, err := st.OfflineMessages(ctx, "drain@example.org")
	if err == nil && len(msgs) > 0 {
		err = st.DeleteOffline(ctx, "drain@example.org", msgs[len(msgs)-1].ID)
	}
	fmt.Printf("%-8s offline store %d: %v; drain (read + delete): %v (err %v)\n", name, offline, storeDur.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), err)
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Microsecond)
}
