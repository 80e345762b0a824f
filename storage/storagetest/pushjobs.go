package storagetest

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// pushJobsOpener returns a new, empty push job queue and arranges (with
// t.Cleanup) for it to be closed.
type pushJobsOpener = func(t *testing.T) storage.PushJobs

// runPushJobs runs the durable push job queue contract as subtests of t:
// jobs survive reopening the database, and when the backend is shared
// by nodes, claims through two stores on one database never overlap.
func runPushJobs(t *testing.T, b Backend) {
	open := func(t *testing.T) storage.PushJobs { return b.open(t) }
	t.Run("Empty", func(t *testing.T) {
		got, err := open(t).DuePushJobs(t.Context(), stamp(1e6), 10)
		must(t, "DuePushJobs", err)
		if len(got) != 0 {
			t.Fatalf("DuePushJobs on an empty store = %+v", got)
		}
	})
	t.Run("RoundTrip", func(t *testing.T) { testPushJobsRoundTrip(t, open) })
	t.Run("DueOrderLimit", func(t *testing.T) { testPushJobsDue(t, open) })
	t.Run("RescheduleDelete", func(t *testing.T) { testPushJobsReschedule(t, open) })
	t.Run("Claim", func(t *testing.T) { testPushJobsClaim(t, open) })
	t.Run("ConcurrentClaims", func(t *testing.T) {
		db := b.NewDatabase(t)
		handles := []storage.PushJobs{db(Options{})}
		if b.SharedByNodes {
			handles = append(handles, db(Options{})) // a second node
		}
		testPushJobsConcurrentClaims(t, handles)
	})
	t.Run("Reopen", func(t *testing.T) {
		db := b.NewDatabase(t)
		st := db(Options{})
		j := pushJob("juliet@capulet.example", 0)
		id, err := st.EnqueuePushJob(t.Context(), j)
		must(t, "EnqueuePushJob", err)
		j.ID = id
		st.Close()
		got, err := db(Options{}).DuePushJobs(t.Context(), stamp(0), 10)
		must(t, "DuePushJobs after reopening", err)
		wantJobs(t, "after reopening", got, j)
	})
}

func pushJob(owner string, dueSec int) storage.PushJob {
	return storage.PushJob{
		Owner: owner, JID: "push-5.client.example", Node: "n ü 'q' <x>",
		RegCreated: stamp(-100), Payload: stanza1, Due: stamp(dueSec), Created: stamp(-1),
	}
}

func wantJobs(t *testing.T, what string, got []storage.PushJob, want ...storage.PushJob) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.ID == w.ID && g.Owner == w.Owner && g.JID == w.JID && g.Node == w.Node &&
			g.RegCreated.Equal(w.RegCreated) && bytes.Equal(g.Payload, w.Payload) &&
			g.Due.Equal(w.Due) && g.Attempts == w.Attempts && g.Created.Equal(w.Created)
	}
	if !ok {
		t.Fatalf("%s:\n got %s\nwant %s", what, fmtJobs(got), fmtJobs(want))
	}
}

func fmtJobs(js []storage.PushJob) string {
	var b bytes.Buffer
	for _, j := range js {
		fmt.Fprintf(&b, "\n  {id=%d %q %q %q reg=%s due=%s attempts=%d created=%s payload=%q}", j.ID, j.Owner, j.JID, j.Node,
			j.RegCreated.UTC().Format(time.RFC3339Nano), j.Due.UTC().Format(time.RFC3339Nano), j.Attempts,
			j.Created.UTC().Format(time.RFC3339Nano), j.Payload)
	}
	return b.String()
}

func testPushJobsRoundTrip(t *testing.T, open pushJobsOpener) {
	st := open(t)
	ctx := t.Context()
	a := pushJob("juliet@capulet.example", 0)
	a.Attempts = 2
	a.ID = 12345 // ignored
	id, err := st.EnqueuePushJob(ctx, a)
	must(t, "EnqueuePushJob", err)
	a.ID = id
	b := pushJob("romeo@montague.example", 0)
	b.Payload = allBytes(3)
	idb, err := st.EnqueuePushJob(ctx, b)
	must(t, "EnqueuePushJob", err)
	if idb == id {
		t.Fatalf("two jobs got the same ID %d", id)
	}
	b.ID = idb
	got, err := st.DuePushJobs(ctx, stamp(0), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "due jobs", got, a, b)
}

func testPushJobsDue(t *testing.T, open pushJobsOpener) {
	st := open(t)
	ctx := t.Context()
	var jobs []storage.PushJob
	for _, sec := range []int{30, 10, 20, 10, 40} {
		j := pushJob("juliet@capulet.example", sec)
		id, err := st.EnqueuePushJob(ctx, j)
		must(t, "EnqueuePushJob", err)
		j.ID = id
		jobs = append(jobs, j)
	}
	got, err := st.DuePushJobs(ctx, stamp(9), 10)
	must(t, "DuePushJobs before any is due", err)
	wantJobs(t, "nothing due yet", got)
	got, err = st.DuePushJobs(ctx, stamp(10), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "due at exactly now, ties by ID", got, jobs[1], jobs[3])
	got, err = st.DuePushJobs(ctx, stamp(30), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "earliest first", got, jobs[1], jobs[3], jobs[2], jobs[0])
	got, err = st.DuePushJobs(ctx, stamp(100), 2)
	must(t, "DuePushJobs with a limit", err)
	wantJobs(t, "limited", got, jobs[1], jobs[3])
}

func testPushJobsReschedule(t *testing.T, open pushJobsOpener) {
	st := open(t)
	ctx := t.Context()
	a, b := pushJob("juliet@capulet.example", 0), pushJob("juliet@capulet.example", 1)
	var err error
	a.ID, err = st.EnqueuePushJob(ctx, a)
	must(t, "EnqueuePushJob", err)
	b.ID, err = st.EnqueuePushJob(ctx, b)
	must(t, "EnqueuePushJob", err)

	must(t, "RescheduleJob", st.RescheduleJob(ctx, a.ID, stamp(60), 3))
	a.Due, a.Attempts = stamp(60), 3
	got, err := st.DuePushJobs(ctx, stamp(59), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "after rescheduling a", got, b)
	got, err = st.DuePushJobs(ctx, stamp(60), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "after a's new due time", got, b, a)

	must(t, "DeleteJob", st.DeleteJob(ctx, b.ID))
	must(t, "DeleteJob again", st.DeleteJob(ctx, b.ID))
	must(t, "RescheduleJob of a deleted job", st.RescheduleJob(ctx, b.ID, stamp(0), 1))
	got, err = st.DuePushJobs(ctx, stamp(100), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "after deleting b", got, a)
	must(t, "DeleteJob", st.DeleteJob(ctx, a.ID))
	got, err = st.DuePushJobs(ctx, stamp(100), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "after deleting all", got)
}

func sortJobs(js []storage.PushJob) []storage.PushJob {
	slices.SortFunc(js, func(a, b storage.PushJob) int { return cmp.Compare(a.ID, b.ID) })
	return js
}

func testPushJobsClaim(t *testing.T, open pushJobsOpener) {
	st := open(t)
	ctx := t.Context()
	var jobs []storage.PushJob
	for _, sec := range []int{30, 10, 20, 40} {
		j := pushJob("juliet@capulet.example", sec)
		j.Attempts = sec / 10
		id, err := st.EnqueuePushJob(ctx, j)
		must(t, "EnqueuePushJob", err)
		j.ID = id
		jobs = append(jobs, j)
	}
	got, err := st.ClaimPushJobs(ctx, stamp(9), stamp(100), 10)
	must(t, "ClaimPushJobs before any is due", err)
	wantJobs(t, "nothing due yet", got)

	// The earliest due first under a limit; claimed jobs are leased.
	got, err = st.ClaimPushJobs(ctx, stamp(30), stamp(100), 2)
	must(t, "ClaimPushJobs", err)
	leased := func(j storage.PushJob, until int) storage.PushJob { j.Due = stamp(until); return j }
	wantJobs(t, "claimed with a limit", sortJobs(got), leased(jobs[1], 100), leased(jobs[2], 100))
	got, err = st.ClaimPushJobs(ctx, stamp(35), stamp(200), 10)
	must(t, "ClaimPushJobs", err)
	wantJobs(t, "a second claim gets the rest due only", got, leased(jobs[0], 200))
	got, err = st.DuePushJobs(ctx, stamp(99), 10)
	must(t, "DuePushJobs", err)
	wantJobs(t, "leased jobs are not due", got, jobs[3])

	// A lease that ran out: the job can be claimed again.
	got, err = st.ClaimPushJobs(ctx, stamp(100), stamp(300), 10)
	must(t, "ClaimPushJobs after the lease", err)
	wantJobs(t, "claimed again after the lease", sortJobs(got), leased(jobs[1], 300), leased(jobs[2], 300), leased(jobs[3], 300))
	got, err = st.ClaimPushJobs(ctx, stamp(100), stamp(300), 0)
	must(t, "ClaimPushJobs with limit 0", err)
	wantJobs(t, "limit 0", got)
}

// testPushJobsConcurrentClaims: claimers racing on one database (through
// several handles on it, like several nodes) never get the same job, and
// together get every job.
func testPushJobsConcurrentClaims(t *testing.T, handles []storage.PushJobs) {
	const jobs, claimers, batch = 300, 8, 5
	st := handles[0]
	ctx := t.Context()
	for i := range jobs {
		_, err := st.EnqueuePushJob(ctx, pushJob("juliet@capulet.example", i%7))
		must(t, "EnqueuePushJob", err)
	}
	var (
		mu     sync.Mutex
		claims = map[int64]int{}
		errs   []error
		wg     sync.WaitGroup
	)
	for c := range claimers {
		h := handles[c%len(handles)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := h.ClaimPushJobs(ctx, stamp(10), stamp(1000), batch)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, j := range got {
					claims[j.ID]++
				}
				mu.Unlock()
				if err != nil || len(got) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("ClaimPushJobs failed %d times, first: %v", len(errs), errs[0])
	}
	for id, n := range claims {
		if n != 1 {
			t.Errorf("job %d claimed %d times", id, n)
		}
	}
	if len(claims) != jobs {
		t.Fatalf("%d jobs claimed, want all %d", len(claims), jobs)
	}
	got, err := st.DuePushJobs(ctx, stamp(999), jobs)
	must(t, "DuePushJobs", err)
	wantJobs(t, "due while every job is leased", got)
}
