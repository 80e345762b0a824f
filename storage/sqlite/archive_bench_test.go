package sqlite

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

// BenchmarkAppendArchive is the archive writer (the archive log and its
// mover) under the load of
// parley-bench's throughput scenario: 100 pairs chatting, so 200 owners,
// each message two rows, many sessions waiting on group commit at once
// (the server's defaults: batches of up to 4,000 rows, 1 ms wait). The
// archive already holds rows (-seed), as a running server's does. One op
// is one row; rows/s is the figure to compare. Full-text indexing is
// off, as by default on a server.
//
//	go test ./storage/sqlite -run '^$' -bench AppendArchive -benchtime 200000x -count 5
func BenchmarkAppendArchive(b *testing.B) {
	const owners, writers, window, seed = 200, 200, 16, 100000
	ctx := context.Background()
	st, err := OpenOptions(ctx, b.TempDir(), Options{GroupCommit: groupcommit.Options{
		Enabled: true, MaxBatch: storage.DefaultConfig().GroupCommitMaxBatch, MaxWait: time.Millisecond}, Fulltext: storage.FulltextOff})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	row := func(i int) (string, storage.ArchivedMessage) {
		o := i % owners
		peer := o ^ 1
		return fmt.Sprintf("user%d@example.org", o), storage.ArchivedMessage{
			With:         fmt.Sprintf("user%d@example.org", peer),
			WithResource: "bench",
			OriginID:     fmt.Sprintf("o-%d", i),
			FromFull:     fmt.Sprintf("user%d@example.org/bench", peer),
			Raw: fmt.Appendf(nil, "<message type='chat' to='user%d@example.org' id='%x' from='user%d@example.org/bench'>"+
				"<body>pb:1:%d:%d:%d</body><origin-id xmlns='urn:xmpp:sid:0' id='o-%d'/></message>",
				o, i, peer, o, i, time.Now().UnixNano(), i),
		}
	}
	// Each writer is a session: it submits its rows without waiting for
	// their commits, up to window at a time (the server's c2s reader
	// holds the SM acknowledgement, not the next stanza).
	run := func(n int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				var pending []storage.Completion
				for {
					i := int(next.Add(1))
					if i > n {
						break
					}
					owner, m := row(i)
					_, c, err := st.SubmitArchive(ctx, owner, m, nil)
					if err != nil {
						b.Error(err)
						return
					}
					pending = append(pending, c)
					if len(pending) == window {
						<-pending[0].Done()
						if err := pending[0].Err(); err != nil {
							b.Error(err)
						}
						pending = pending[1:]
					}
				}
				for _, c := range pending {
					<-c.Done()
					if err := c.Err(); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
	run(seed)
	if err := st.log.settle(ctx, ""); err != nil {
		b.Fatal(err)
	}
	rows0, commits0 := batches(b)
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	run(b.N)
	// Rows are committed to the archive log; the time and CPU to move
	// them into the archive count too.
	if err := st.log.settle(ctx, ""); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	rows, commits := batches(b)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
	// The machine is shared: CPU time per row says more than rows/s.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/row")
	b.ReportMetric((rows-rows0)/(commits-commits0), "rows/commit")
}

// batches reads the group-commit metrics: rows written and commits.
func batches(b *testing.B) (rows, commits float64) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "parley_storage_archive_batch_rows" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "backend" && l.GetValue() == "sqlite" {
					return m.GetHistogram().GetSampleSum(), float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	b.Fatal("no archive batch metrics")
	return 0, 0
}

// BenchmarkInsertArchiveBatch is the writer alone, without group commit's
// goroutines: batches of a fixed size spread over 200 owners, on an
// archive that already holds 100,000 rows. Deterministic, so that CPU
// time per row (and instruction counts under callgrind) compare across
// builds on a busy machine.
func BenchmarkInsertArchiveBatch(b *testing.B) {
	for _, size := range []int{256, 1024, 4000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			const owners, seed = 200, 100000
			ctx := context.Background()
			st, err := OpenOptions(ctx, b.TempDir(), Options{Fulltext: storage.FulltextOff})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			i := 0
			var took []time.Duration
			insert := func(n int) {
				for n > 0 {
					batch := make([]archiveRow, min(n, size))
					for j := range batch {
						i++
						o, peer := i%owners, i%owners^1
						batch[j] = newArchiveRow(fmt.Sprintf("user%d@example.org", o), storage.ArchivedMessage{
							With: fmt.Sprintf("user%d@example.org", peer), WithResource: "bench",
							OriginID: fmt.Sprintf("o-%d", i), FromFull: fmt.Sprintf("user%d@example.org/bench", peer),
							Raw: fmt.Appendf(nil, "<message type='chat' to='user%d@example.org' id='%x' from='user%d@example.org/bench'>"+
								"<body>pb:1:%d:%d:%d</body><origin-id xmlns='urn:xmpp:sid:0' id='o-%d'/></message>",
								o, i, peer, o, i, time.Now().UnixNano(), i),
						})
					}
					start := time.Now()
					if err := st.insertArchiveRows(ctx, batch); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
					n -= len(batch)
				}
			}
			insert(seed)
			took = took[:0]
			cpu0 := cpuTime()
			b.ResetTimer()
			insert(b.N)
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/row")
			// A commit that runs a checkpoint takes much longer than the
			// others: the slowest commits show it.
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-commit-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-commit-ms")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-commit-ms")
		})
	}
}
