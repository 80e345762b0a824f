package mam

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// archiveQuota keeps archives within MaxAccountBytes. It reads an
// account's usage only after the account has archived a twentieth of its
// quota since the last check, so a message costs no
// extra query; when the archive is over, the oldest messages are deleted
// in the background, one trim per account at a time, down to nine tenths
// of the quota.
type archiveQuota struct {
	max   int64
	usage storage.UsageReader
	log   *slog.Logger

	mu       sync.Mutex
	pending  map[string]int64 // bytes archived since the last check
	trimming map[string]bool
}

// maxPendingOwners bounds the accounts tracked between checks.
const maxPendingOwners = 100_000

func newArchiveQuota(max int64, usage storage.UsageReader, log *slog.Logger) *archiveQuota {
	if max <= 0 || usage == nil {
		return nil
	}
	return &archiveQuota{max: max, usage: usage, log: log, pending: map[string]int64{}, trimming: map[string]bool{}}
}

func (q *archiveQuota) step() int64 { return max(q.max/20, 1) }

func (q *archiveQuota) added(owner string, n int) {
	if q == nil {
		return
	}
	q.mu.Lock()
	if len(q.pending) >= maxPendingOwners && q.pending[owner] == 0 {
		clear(q.pending) // the checks of a few accounts come later
	}
	q.pending[owner] += int64(n)
	due := q.pending[owner] >= q.step() && !q.trimming[owner]
	if due {
		delete(q.pending, owner)
		q.trimming[owner] = true
	}
	q.mu.Unlock()
	if due {
		go q.enforce(owner)
	}
}

// enforce checks owner's archive, and checks it again as long as the
// account archived another step while the previous check ran: those
// writes found the check busy and started none, so without the second
// look an archive filled during a (slow) trim stayed over its quota
// until the account's next message.
func (q *archiveQuota) enforce(owner string) {
	for {
		q.check(owner)
		q.mu.Lock()
		again := q.pending[owner] >= q.step()
		if again {
			delete(q.pending, owner)
		} else {
			delete(q.trimming, owner)
		}
		q.mu.Unlock()
		if !again {
			return
		}
	}
}

func (q *archiveQuota) check(owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := q.usage.AccountUsage(ctx, owner)
	if err != nil {
		q.log.Warn("mam: reading archive usage", "user", owner, "err", err)
		return
	}
	if u.Archive <= q.max {
		return
	}
	n, err := q.usage.TrimArchive(ctx, owner, q.max/10*9)
	if err != nil {
		q.log.Warn("mam: trimming an archive over its quota", "user", owner, "err", err)
		return
	}
	trimmed.Add(float64(n))
	q.log.Info("mam: archive over its quota; oldest messages deleted", "user", owner, "messages", n, "quota", q.max)
}
