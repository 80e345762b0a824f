// Command parley-storebench measures the storage backends the way the
// server uses them, on SQLite and PostgreSQL side by side:
//
//   - archive inserts with many concurrent writers (as many sessions
//     chatting at once), with and without group commit;
//   - MAM-style page queries on a seeded archive (median and p99): the
//     20 newest messages of a conversation, the next page after an id
//     (RSM <after/>) and an after-id filter (XEP-0313 extended);
//   - the drain of an offline queue.
//
// A summary table at the end puts the figures side by side.
//
//	go run ./cmd/parley-storebench -messages 1000000 -users 1000
//	go run ./cmd/parley-storebench -backends sqlite -messages 100000
//	go run ./cmd/parley-storebench -messages 0 -insert 200000 -writers 64   # inserts only
//
// PostgreSQL is PARLEY_TEST_POSTGRES or the local server; it runs in a
// schema of its own that is dropped at the end (kept with -keep, e.g. to
// run EXPLAIN ANALYZE on the seeded archive; -schema reuses one).
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
	"text/tabwriter"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
	"github.com/parley-xmpp/parley/storage/pg"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

type options struct {
	messages, users, writers, seedWriters, queries, offline, insert int
	gcModes                                                         []bool
	maxBatch                                                        int
	maxWait                                                         time.Duration
	keep, vacuum                                                    bool
	fulltext                                                        bool
	schema                                                          string
}

// result is one row of the summary table.
type result struct {
	backend     string
	groupCommit bool
	insertRate  float64 // rows/s, -insert rows on an empty archive
	insertErrs  int64
	queried     bool
	newest      [2]time.Duration // median, p99
	after       [2]time.Duration
	afterID     [2]time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.messages, "messages", 1000000, "archived messages to seed for the page queries (0: no queries)")
	flag.IntVar(&o.users, "users", 1000, "users the messages are spread over")
	flag.IntVar(&o.insert, "insert", 100000, "messages to insert into an empty archive for the insert figures")
	flag.IntVar(&o.writers, "writers", 64, "concurrent writers for the insert figures")
	flag.IntVar(&o.seedWriters, "seed-writers", 64, "concurrent writers while seeding")
	flag.IntVar(&o.queries, "queries", 2000, "page queries to time")
	flag.IntVar(&o.offline, "offline", 10000, "offline messages to store and drain")
	backends := flag.String("backends", "sqlite,postgres", "comma-separated: sqlite, postgres")
	gc := flag.String("group-commit", "off,on", "comma-separated group-commit modes to measure: off, on (queries run on the last)")
	flag.IntVar(&o.maxBatch, "max-batch", 0, "group commit: most rows per batch (0: default)")
	flag.DurationVar(&o.maxWait, "max-wait", 0, "group commit: wait for more rows after the first (0: default, negative: none)")
	flag.BoolVar(&o.keep, "keep", false, "postgres: keep the schema at the end (its name is printed)")
	flag.BoolVar(&o.vacuum, "vacuum", true, "postgres: VACUUM (ANALYZE) the archive after seeding, as autovacuum does on a production server")
	flag.BoolVar(&o.fulltext, "fulltext", false, "keep the XEP-0431 full-text index (mam.fulltext; off by default, as on a server)")
	flag.StringVar(&o.schema, "schema", "", "postgres: use this schema (created if missing) instead of a new random one")
	flag.Parse()
	for _, m := range strings.Split(*gc, ",") {
		switch strings.TrimSpace(m) {
		case "off":
			o.gcModes = append(o.gcModes, false)
		case "on":
			o.gcModes = append(o.gcModes, true)
		default:
			fmt.Fprintf(os.Stderr, "-group-commit: %q is neither on nor off\n", m)
			os.Exit(2)
		}
	}
	var results []result
	for _, b := range strings.Split(*backends, ",") {
		b = strings.TrimSpace(b)
		for i, gcOn := range o.gcModes {
			st, cleanup, err := open(b, gcOn, o)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", b, err)
				os.Exit(1)
			}
			r := result{backend: b, groupCommit: gcOn}
			r.insertRate, r.insertErrs = insertPhase(b, gcOn, st, o)
			if i == len(o.gcModes)-1 && o.messages > 0 {
				r.queried = true
				seedAndQuery(b, st, o, &r)
			}
			results = append(results, r)
			cleanup()
		}
	}
	summary(results, o)
}

func open(backend string, gcOn bool, o options) (storage.Store, func(), error) {
	ctx := context.Background()
	gc := groupcommit.Options{Enabled: gcOn, MaxBatch: o.maxBatch, MaxWait: o.maxWait}
	switch backend {
	case "sqlite":
		dir, err := os.MkdirTemp("", "parley-storebench-")
		if err != nil {
			return nil, nil, err
		}
		st, err := sqlite.OpenOptions(ctx, dir, sqlite.Options{GroupCommit: gc, Fulltext: fulltextIndex(o)})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close(); os.RemoveAll(dir) }, nil
	case "postgres":
		dsn := os.Getenv("PARLEY_TEST_POSTGRES")
		if dsn == "" {
			dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		}
		schema := o.schema
		if schema == "" {
			schema = "parley_bench_" + strings.ToLower(rand.Text()[:10])
		}
		st, err := pg.Open(ctx, pg.Config{DSN: dsn, Schema: schema, Migrate: true, MaxConns: 16, GroupCommit: gc,
			Fulltext: fulltextIndex(o)})
		if err != nil {
			return nil, nil, err
		}
		lastPG = st
		return st, func() {
			st.Close()
			if o.keep || o.schema != "" {
				fmt.Printf("postgres schema %s kept\n", schema)
				return
			}
			// Drop the schema through a fresh store connection.
			if c, err := pg.Open(ctx, pg.Config{DSN: dsn, Migrate: false, PartitionMonthsAhead: -1}); err == nil {
				_ = c.DropSchema(ctx, schema)
				c.Close()
			}
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q", backend)
}

var body = []byte("<message to='u1@example.org' from='u2@example.org/phone' type='chat' id='x'><body>" +
	strings.Repeat("hello ", 20) + "</body></message>")

// appendMany appends messages [from, to) with writers goroutines, message i
// going to owner i%users at base+i ms, and returns the time taken and the
// number of failed appends.
func appendMany(st storage.Store, o options, from, to, writers int, base time.Time) (time.Duration, int64) {
	ctx := context.Background()
	start := time.Now()
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= to {
					return
				}
				_, err := st.AppendArchive(ctx, owner(o, i), storage.ArchivedMessage{
					With: with(o, i), Timestamp: base.Add(time.Duration(i) * time.Millisecond),
					FromFull: with(o, i) + "/phone", Raw: body,
				})
				if err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "append: %v\n", err)
					}
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), failed.Load()
}

func owner(o options, i int) string { return fmt.Sprintf("u%d@example.org", i%o.users) }
func with(o options, i int) string  { return fmt.Sprintf("u%d@example.org", (i/o.users)%20) }

// base is the time of message 0: the archive ends about now.
func base(o options) time.Time {
	return time.Now().Add(-time.Duration(max(o.messages, o.insert)) * time.Millisecond)
}

func gcName(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// insertPhase inserts o.insert messages into the empty archive.
func insertPhase(name string, gcOn bool, st storage.Store, o options) (float64, int64) {
	if o.insert <= 0 {
		return 0, 0
	}
	d, failed := appendMany(st, o, 0, o.insert, o.writers, base(o))
	rate := float64(o.insert) / d.Seconds()
	fmt.Printf("%-8s insert  group commit %-3s %d messages, %d writers: %.0f rows/s (%v, %d errors)\n",
		name, gcName(gcOn), o.insert, o.writers, rate, d.Round(time.Millisecond), failed)
	return rate, failed
}

func seedAndQuery(name string, st storage.Store, o options, r *result) {
	ctx := context.Background()
	if rest := o.messages - o.insert; rest > 0 {
		d, failed := appendMany(st, o, max(0, o.insert), o.messages, o.seedWriters, base(o))
		fmt.Printf("%-8s seed    %d more messages to %d, %d users, %d writers: %.0f rows/s (%v, %d errors)\n",
			name, rest, o.messages, o.users, o.seedWriters, float64(rest)/d.Seconds(), d.Round(time.Millisecond), failed)
	}
	if name == "postgres" && o.vacuum {
		// Freshly bulk-loaded tables have no visibility map, so every
		// count visits the heap; a production server's autovacuum sets
		// it within minutes. Measure the steady state.
		t0 := time.Now()
		if err := lastPG.VacuumArchive(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "vacuum: %v\n", err)
		} else {
			fmt.Printf("%-8s vacuum  (analyze) archive: %v\n", name, time.Since(t0).Round(time.Millisecond))
		}
	}

	// Queries: the 20 newest of one conversation, then the next page after
	// an id, as a client paging through history does; and the messages
	// after an id (a client catching up from its last known message).
	var newest, after, afterID []time.Duration
	for q := 0; q < o.queries; q++ {
		ow := owner(o, q*7919)
		t0 := time.Now()
		page, err := st.QueryArchive(ctx, ow, storage.ArchiveQuery{With: with(o, q), Last: true, Max: 20})
		newest = append(newest, time.Since(t0))
		if err != nil || len(page.Messages) == 0 {
			if err != nil {
				fmt.Fprintf(os.Stderr, "query: %v\n", err)
			}
			continue
		}
		t0 = time.Now()
		if _, err := st.QueryArchive(ctx, ow, storage.ArchiveQuery{PageAfter: page.Messages[0].ID, Max: 20}); err != nil {
			fmt.Fprintf(os.Stderr, "query: %v\n", err)
		}
		after = append(after, time.Since(t0))
		t0 = time.Now()
		if _, err := st.QueryArchive(ctx, ow, storage.ArchiveQuery{AfterID: page.Messages[0].ID, Max: 20}); err != nil {
			fmt.Fprintf(os.Stderr, "query: %v\n", err)
		}
		afterID = append(afterID, time.Since(t0))
	}
	r.newest = [2]time.Duration{pct(newest, 50), pct(newest, 99)}
	r.after = [2]time.Duration{pct(after, 50), pct(after, 99)}
	r.afterID = [2]time.Duration{pct(afterID, 50), pct(afterID, 99)}
	fmt.Printf("%-8s query   20 newest of a conversation: median %v p99 %v (%d queries)\n", name, r.newest[0], r.newest[1], len(newest))
	fmt.Printf("%-8s query   next page after an id:       median %v p99 %v (%d queries)\n", name, r.after[0], r.after[1], len(after))
	fmt.Printf("%-8s query   after-id filter, 20:         median %v p99 %v (%d queries)\n", name, r.afterID[0], r.afterID[1], len(afterID))

	// Offline queue: store, then drain as a login does.
	t0 := time.Now()
	for i := 0; i < o.offline; i++ {
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
	fmt.Printf("%-8s offline store %d: %v; drain (read + delete): %v (err %v)\n", name, o.offline, storeDur.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), err)
}

func summary(results []result, o options) {
	fmt.Printf("\nsummary: inserts of %d messages into an empty archive by %d writers; queries on %d messages over %d users\n",
		o.insert, o.writers, o.messages, o.users)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\tgroup commit\tinsert rows/s\tnewest-20 median\tp99\tafter page median\tp99\tafter-id median\tp99\t")
	for _, r := range results {
		q := func(d [2]time.Duration) string {
			if !r.queried {
				return "-\t-"
			}
			return d[0].String() + "\t" + d[1].String()
		}
		rate := fmt.Sprintf("%.0f", r.insertRate)
		if r.insertErrs > 0 {
			rate += fmt.Sprintf(" (%d errors)", r.insertErrs)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.backend, gcName(r.groupCommit), rate, q(r.newest), q(r.after), q(r.afterID))
	}
	w.Flush()
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Microsecond)
}

// lastPG is the PostgreSQL store last opened.
var lastPG *pg.Store

func fulltextIndex(o options) storage.FulltextIndex {
	if o.fulltext {
		return storage.FulltextOn
	}
	return storage.FulltextOff
}
